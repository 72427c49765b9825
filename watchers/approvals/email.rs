//! `send_email`: the message built with lettre and sent over one SMTP connection.
//!
//! The session is driven step by step (connect, STARTTLS, AUTH, MAIL, RCPT, DATA, the
//! message) rather than through `SmtpTransport::send`, to know which side of the point of
//! no return a failure falls on:
//!
//! - before the message text is sent, nothing can have been delivered: a network error,
//!   a timeout or a 4xx reply is [`Outcome::Transient`], a 5xx reply is
//!   [`Outcome::Permanent`];
//! - after it, a 4xx/5xx reply to the final `.` still means "not accepted", but a lost
//!   connection or a timeout leaves the delivery unknown: [`Outcome::Unknown`], never
//!   retried.
//!
//! Login is AUTH PLAIN/LOGIN with a password, or AUTH XOAUTH2 with an OAuth2 access token
//! from the token file. A token the server refuses (535) is refreshed once
//! ([`TokenSource::refresh_rejected`]) and the login tried again on the same connection.

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Auth, Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::Outcome;
use super::credentials::{OauthLogin, SmtpConfig, TlsMode};
use super::request::Email;
use crate::watchers::credentials::Secret;
use crate::watchers::oauth::{OauthError, TokenSource};

/// Build the MIME message (From from the credentials file, a deterministic Message-ID).
pub fn build(cfg: &SmtpConfig, email: &Email, message_id: &str) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject(email.subject.clone())
        .message_id(Some(message_id.to_string()))
        .date_now();
    for m in &email.to {
        b = b.to(m.clone());
    }
    for m in &email.cc {
        b = b.cc(m.clone());
    }
    for m in &email.bcc {
        b = b.bcc(m.clone());
    }
    let text = SinglePart::plain(email.body.clone());
    let built = if email.attachments.is_empty() {
        b.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for a in &email.attachments {
            parts = parts.singlepart(
                Attachment::new(a.file_name.clone())
                    .body(a.bytes.clone(), content_type(&a.file_name)),
            );
        }
        b.multipart(parts)
    };
    built.map_err(|e| format!("cannot build the email: {e}"))
}

fn content_type(name: &str) -> ContentType {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let mime = match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") | Some("md") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("html") | Some("htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// Send `message` through the server in `cfg`. `tokens`: the token file of `cfg.oauth`
/// (XOAUTH2 login).
pub fn send(cfg: &SmtpConfig, message: &Message, tokens: Option<&TokenSource>) -> Outcome {
    let server = format!("{}:{}", cfg.host, cfg.port);
    // The access token first: no connection is opened for nothing when it cannot be had.
    let oauth = match (&cfg.oauth, tokens) {
        (Some(login), Some(tokens)) => match tokens.access_token() {
            Ok(token) => Some((login, tokens, token)),
            Err(e) => return token_failure(&server, e),
        },
        (Some(_), None) => {
            return Outcome::Permanent("internal error: no token file for XOAUTH2".into());
        }
        (None, _) => None,
    };
    let hello = ClientId::default();
    let tls = match cfg.tls {
        TlsMode::None => None,
        TlsMode::StartTls | TlsMode::Tls => match TlsParameters::new(cfg.host.clone()) {
            Ok(p) => Some(p),
            Err(e) => return Outcome::Permanent(format!("SMTP {server}: TLS setup failed: {e}")),
        },
    };
    let wrapper = match cfg.tls {
        TlsMode::Tls => tls.as_ref(),
        _ => None,
    };
    let mut conn = match SmtpConnection::connect(
        (cfg.host.as_str(), cfg.port),
        Some(cfg.timeout),
        &hello,
        wrapper,
        None,
    ) {
        Ok(c) => c,
        Err(e) => return before_commit(&server, "connect", &e),
    };
    let outcome = session(
        cfg,
        &mut conn,
        &hello,
        tls.as_ref(),
        oauth,
        message,
        &server,
    );
    if matches!(outcome, Outcome::Success { .. }) {
        let _ = conn.quit();
    } else {
        conn.abort();
    }
    outcome
}

fn session(
    cfg: &SmtpConfig,
    conn: &mut SmtpConnection,
    hello: &ClientId,
    tls: Option<&TlsParameters>,
    oauth: Option<(&OauthLogin, &TokenSource, Secret)>,
    message: &Message,
    server: &str,
) -> Outcome {
    if cfg.tls == TlsMode::StartTls
        && let Some(params) = tls
        && let Err(e) = conn.starttls(params, hello)
    {
        return before_commit(server, "STARTTLS", &e);
    }
    if let Some((user, password)) = &cfg.login
        && let Err(e) = conn.auth(
            &[Mechanism::Plain, Mechanism::Login],
            &Credentials::new(user.clone(), password.expose().to_string()),
        )
    {
        return before_commit(server, "login", &e);
    }
    if let Some((login, tokens, token)) = oauth
        && let Err(outcome) = xoauth2_login(conn, &login.user, tokens, token, server)
    {
        return outcome;
    }
    let envelope = message.envelope();
    let bytes = message.formatted();
    let mut options = Vec::new();
    let non_ascii = envelope.from().is_some_and(|a| !a.to_string().is_ascii())
        || envelope.to().iter().any(|a| !a.to_string().is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Outcome::Permanent(format!(
                "SMTP {server}: the server cannot take non-ASCII addresses (no SMTPUTF8)"
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if let Err(e) = conn.command(Mail::new(envelope.from().cloned(), options)) {
        return before_commit(server, "MAIL FROM", &e);
    }
    for rcpt in envelope.to() {
        if let Err(e) = conn.command(Rcpt::new(rcpt.clone(), vec![])) {
            return before_commit(server, &format!("RCPT TO <{rcpt}>"), &e);
        }
    }
    if let Err(e) = conn.command(Data) {
        return before_commit(server, "DATA", &e);
    }
    // The point of no return: from here a lost reply may hide a delivery. The text and
    // its final "." go out in one write (lettre's `message` makes two, and Nagle's
    // algorithm then holds the "." until the server's delayed ACK: 40 ms per message).
    let sent = match String::from_utf8(dot_stuff(&bytes)) {
        Ok(text) => conn.command(Payload(text)),
        Err(_) => conn.message(&bytes),
    };
    match sent {
        Ok(reply) => {
            let text = one_line(&format!(
                "{} {}",
                reply.code(),
                reply.message().collect::<Vec<_>>().join(" ")
            ));
            Outcome::Success {
                detail: format!("{server}: {text}"),
                fields: vec![("smtp_reply".to_string(), text)],
            }
        }
        Err(e) if e.is_transient() => {
            Outcome::Transient(format!("SMTP {server} did not accept the message: {e}"))
        }
        Err(e) if e.is_permanent() => {
            Outcome::Permanent(format!("SMTP {server} refused the message: {e}"))
        }
        Err(e) => Outcome::Unknown(format!(
            "SMTP {server}: the connection failed after the message was sent ({e})"
        )),
    }
}

/// AUTH XOAUTH2; a refused token (535) is refreshed once and tried again.
fn xoauth2_login(
    conn: &mut SmtpConnection,
    user: &str,
    tokens: &TokenSource,
    token: Secret,
    server: &str,
) -> Result<(), Outcome> {
    if !conn
        .server_info()
        .supports_auth_mechanism(Mechanism::Xoauth2)
    {
        return Err(Outcome::Permanent(format!(
            "SMTP {server}: the server does not offer AUTH XOAUTH2 (set `password` instead of \
             `oauth_token_file`, or check `host`)"
        )));
    }
    match xoauth2(conn, user, &token) {
        Ok(()) => return Ok(()),
        Err(Xoauth2Error::Refused(_)) => {
            tracing::info!("SMTP {server}: the access token was refused; refreshing it");
        }
        Err(Xoauth2Error::Smtp(e)) => return Err(before_commit(server, "login (XOAUTH2)", &e)),
    }
    let fresh = tokens
        .refresh_rejected(&token)
        .map_err(|e| token_failure(server, e))?;
    match xoauth2(conn, user, &fresh) {
        Ok(()) => Ok(()),
        Err(Xoauth2Error::Refused(reply)) => Err(Outcome::Permanent(format!(
            "SMTP {server}: login (XOAUTH2) as {user} refused even with a freshly refreshed \
             token from {} ({reply}): check `username` and that the token has the scope \
             https://mail.google.com/ (see docs/oauth.md)",
            tokens.rel()
        ))),
        Err(Xoauth2Error::Smtp(e)) => Err(before_commit(server, "login (XOAUTH2)", &e)),
    }
}

enum Xoauth2Error {
    /// 535: the server does not accept this token.
    Refused(String),
    /// Anything else (a 4xx, a lost connection, a timeout).
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for Xoauth2Error {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        if e.status().map(u16::from) == Some(535) {
            Xoauth2Error::Refused(one_line(&e.to_string()))
        } else {
            Xoauth2Error::Smtp(e)
        }
    }
}

/// One AUTH XOAUTH2 exchange. A server that refuses the token may first send a 334
/// challenge with the error details (Gmail does); the empty reply then gets the final 535.
fn xoauth2(conn: &mut SmtpConnection, user: &str, token: &Secret) -> Result<(), Xoauth2Error> {
    let creds = Credentials::new(user.to_string(), token.expose().to_string());
    let reply = conn.command(Auth::new(Mechanism::Xoauth2, creds, None)?)?;
    if reply.has_code(334) {
        let end = conn.command(EmptyLine)?;
        // Success after an error challenge is not in the protocol: not logged in.
        return Err(Xoauth2Error::Refused(format!(
            "unexpected reply {} after the error challenge",
            end.code()
        )));
    }
    Ok(())
}

/// The empty client response that ends an XOAUTH2 exchange after an error challenge.
struct EmptyLine;

impl std::fmt::Display for EmptyLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\r\n")
    }
}

/// No access token: nothing was sent.
fn token_failure(server: &str, e: OauthError) -> Outcome {
    match e {
        OauthError::Unusable(m) => {
            Outcome::Permanent(format!("SMTP {server}: cannot log in with XOAUTH2: {m}"))
        }
        OauthError::Transient(m) => {
            Outcome::Transient(format!("SMTP {server}: no OAuth access token yet: {m}"))
        }
    }
}

/// The message text with SMTP transparency (a "." that starts a line is doubled) and the
/// terminating `CRLF . CRLF`, sent as one "command".
struct Payload(String);

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)?;
        f.write_str("\r\n.\r\n")
    }
}

/// RFC 5321 §4.5.2 transparency, as lettre's own codec does it.
fn dot_stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in text {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = prev == b'\r' && b == b'\n';
        prev = b;
    }
    out
}

/// Classify a failure before the message text was sent (nothing delivered).
fn before_commit(server: &str, step: &str, e: &lettre::transport::smtp::Error) -> Outcome {
    let text = format!("SMTP {server}: {step} failed: {}", one_line(&e.to_string()));
    if e.is_permanent() || e.is_tls() || e.is_client() {
        Outcome::Permanent(text)
    } else {
        // 4xx replies, refused or dropped connections, timeouts, garbled replies.
        Outcome::Transient(text)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchers::approvals::credentials::parse_smtp;

    #[test]
    fn dot_stuffing_doubles_a_leading_dot_only() {
        assert_eq!(
            dot_stuff(b".a\r\nb.\r\n.\r\n..c\n.d"),
            b"..a\r\nb.\r\n..\r\n...c\n.d"
        );
    }

    #[test]
    fn tls_parameters_build_for_a_host_name() {
        assert!(TlsParameters::new("smtp.example.com".to_string()).is_ok());
    }

    #[test]
    fn connection_refused_is_transient() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let cfg = parse_smtp(
            "smtp.toml",
            &format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"a@b.c\"\n"),
        )
        .expect("valid");
        let email = Email {
            to: vec!["x@y.z".parse().expect("addr")],
            cc: vec![],
            bcc: vec![],
            subject: "s".into(),
            body: "b".into(),
            attachments: vec![],
            message_id: None,
        };
        let m = build(&cfg, &email, "<id@x>").expect("builds");
        assert!(matches!(send(&cfg, &m, None), Outcome::Transient(_)));
    }
}
