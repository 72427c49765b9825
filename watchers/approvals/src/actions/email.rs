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

use std::path::{Path, PathBuf};

use ai_employee_vault::credentials::Secret;
use ai_employee_vault::layout::Folder;
use ai_employee_vault::oauth::{OauthError, TokenSource};
use ai_employee_vault::tls::{self, CertSetup};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Auth, Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::Outcome;
use super::{Action, Context, Creds, Plan, Refused, rehearsal};
use crate::credentials::{OauthLogin, SMTP_FILE, SmtpConfig, TlsMode};
use crate::outcome::results;
use crate::request::Email;

pub const NAME: &str = "send_email";

/// `send_email`: the email, and `credentials/smtp.toml` as it was when the attempt
/// started; `prepare` checks them and builds the message.
pub struct SendEmail {
    email: Email,
    creds: Creds<SmtpConfig>,
    /// What `prepare` built for `perform`.
    ready: Option<Ready>,
}

/// A message and the way to send it.
struct Ready {
    cfg: SmtpConfig,
    message: Outgoing,
    /// The token file of an XOAUTH2 login.
    tokens: Option<TokenSource>,
    /// Where a relative `ca_file` is.
    credentials_dir: PathBuf,
}

impl SendEmail {
    pub fn new(email: Email, creds: Creds<SmtpConfig>) -> SendEmail {
        SendEmail {
            email,
            creds,
            ready: None,
        }
    }
}

impl Action for SendEmail {
    /// The credentials, the OAuth token file they name, then the message (its Message-ID
    /// from the approval, else made from the approval's identity).
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        let Some(cfg) = self.creds.ready(NAME, cx.dry_run)? else {
            return Ok(rehearsal());
        };
        // An OAuth token file that is missing or unusable: nothing to log in with.
        let tokens = cfg.oauth.as_ref().map(|o| o.source(cx.vault));
        if let Some(t) = &tokens {
            t.check().map_err(|problem| Refused::TokenFile {
                action: NAME,
                problem: problem.to_string(),
            })?;
        }
        let id = self
            .email
            .message_id
            .clone()
            .unwrap_or_else(|| format!("<{}@{}>", cx.tag, cfg.from.email.domain()));
        let message = build(cfg, &self.email, &id)?;
        let plan = Plan {
            effect: None,
            message_id: Some(id),
            rehearse: cfg.dry_run,
        };
        self.ready = Some(Ready {
            cfg: cfg.clone(),
            message,
            tokens,
            credentials_dir: cx.vault.join(Folder::Credentials),
        });
        Ok(plan)
    }

    fn perform(self: Box<Self>) -> Outcome {
        match self.ready {
            Some(r) => send(&r.cfg, &r.message, r.tokens.as_ref(), &r.credentials_dir),
            None => super::unprepared(),
        }
    }

    fn result(&self) -> &'static str {
        results::SENT
    }
}

/// The longest line RFC 5322 allows (without its CRLF).
const MAX_LINE: usize = 998;

/// An email ready for the wire: its envelope and its text in canonical form, checked by
/// [`canonical`] when it was built.
#[derive(Debug, Clone)]
pub struct Outgoing {
    envelope: Envelope,
    text: String,
}

/// Build the MIME message (From from the credentials file, a deterministic Message-ID).
///
/// What goes on the wire is strict RFC 5321/5322, whatever the approval holds:
/// - the email text's line breaks (CRLF, LF or a lone CR) all become CRLF; text with
///   other control characters (a NUL, say) is sent quoted-printable (`=00`);
/// - every attachment is base64, so its bytes arrive exactly as they are in the file;
/// - the result is checked once more ([`canonical`]): only CRLF line breaks, no NUL, no
///   line over 998 octets. An email that fails the check is refused, never sent.
pub fn build(cfg: &SmtpConfig, email: &Email, message_id: &str) -> Result<Outgoing, BuildError> {
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
    let text = SinglePart::plain(text_body(&email.body));
    let built = if email.attachments.is_empty() {
        b.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for a in &email.attachments {
            let body = Body::new_with_encoding(a.bytes.clone(), ContentTransferEncoding::Base64)
                .map_err(|_| BuildError::Attachment(a.rel.clone()))?;
            parts = parts.singlepart(
                Attachment::new(a.file_name.clone())
                    .body(body, content_type(&a.file_name, &a.bytes)),
            );
        }
        b.multipart(parts)
    };
    let message = built?;
    let text = String::from_utf8(message.formatted()).map_err(|_| BuildError::NotUtf8)?;
    canonical(text.as_bytes())?;
    Ok(Outgoing {
        envelope: message.envelope().clone(),
        text,
    })
}

/// Why an approved email cannot be sent as it is (it is refused, never sent).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The attachment as written in the approval.
    #[error("cannot encode the attachment {0:?}")]
    Attachment(String),
    #[error("cannot build the email: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("cannot build the email: its text is not UTF-8")]
    NotUtf8,
    #[error("cannot send this email: its text would break SMTP ({0})")]
    NotCanonical(#[from] NotCanonical),
}

/// The first offence against the line rules of SMTP and RFC 5322 (offsets in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCanonical {
    #[error("a NUL byte at offset {0}")]
    Nul(usize),
    #[error("a carriage return without line feed at offset {0}")]
    BareCr(usize),
    #[error("a line feed without carriage return at offset {0}")]
    BareLf(usize),
    #[error("a line of {len} octets at offset {at}, over the {MAX_LINE} allowed")]
    LongLine { len: usize, at: usize },
}

/// The email text as a MIME body: line breaks of any convention become CRLF (lettre
/// turns each LF into CRLF); control characters other than tab go out quoted-printable,
/// never raw.
fn text_body(text: &str) -> Body {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let controls = text
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != '\n');
    if controls {
        // Quoted-printable never fails to encode; the fallback cannot happen.
        Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable)
            .unwrap_or_else(|t| Body::new(String::from_utf8_lossy(&t).into_owned()))
    } else {
        Body::new(text)
    }
}

/// RFC 5321 §2.3.8 and RFC 5322 §2.1.1, 2.3: lines end in CRLF and only there (no bare CR
/// or LF), no NUL, no line longer than 998 octets. The error names the first offence.
pub fn canonical(text: &[u8]) -> Result<(), NotCanonical> {
    let mut line_start = 0;
    // Each line (its CRLF excluded) up to `end`.
    let line = |line_start: usize, end: usize| match end - line_start {
        len if len > MAX_LINE => Err(NotCanonical::LongLine {
            len,
            at: line_start,
        }),
        _ => Ok(()),
    };
    for (i, &b) in text.iter().enumerate() {
        match b {
            0 => return Err(NotCanonical::Nul(i)),
            b'\r' if text.get(i + 1) != Some(&b'\n') => return Err(NotCanonical::BareCr(i)),
            b'\n' if i == 0 || text[i - 1] != b'\r' => return Err(NotCanonical::BareLf(i)),
            b'\n' => {
                line(line_start, i - 1)?;
                line_start = i + 1;
            }
            _ => {}
        }
    }
    line(line_start, text.len())
}

/// The attachment's type by its extension; a "text" file that is not UTF-8 is sent as
/// bytes (`application/octet-stream`), never as UTF-8 text it is not.
fn content_type(name: &str, bytes: &[u8]) -> ContentType {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let text = std::str::from_utf8(bytes).is_ok();
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
    let mime = if mime.contains("charset=utf-8") && !text {
        "application/octet-stream"
    } else {
        mime
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// Where the failures of one send are reported from: `host:port`, and what the user can
/// change about a certificate error.
struct Site<'a> {
    server: String,
    cfg: &'a SmtpConfig,
}

impl<'a> Site<'a> {
    fn of(cfg: &'a SmtpConfig) -> Site<'a> {
        Site {
            server: format!("{}:{}", cfg.host, cfg.port),
            cfg,
        }
    }

    fn cert_setup(&self) -> CertSetup<'_> {
        CertSetup {
            host: &self.cfg.host,
            creds_file: SMTP_FILE,
            ca_file: self.cfg.ca_file.as_ref().map(|c| c.shown.as_str()),
            docs: "docs/approvals.md",
        }
    }
}

/// Send `message` through the server in `cfg`. `tokens`: the token file of `cfg.oauth`
/// (XOAUTH2 login). `credentials_dir`: where a relative `ca_file` is.
pub fn send(
    cfg: &SmtpConfig,
    message: &Outgoing,
    tokens: Option<&TokenSource>,
    credentials_dir: &Path,
) -> Outcome {
    let site = Site::of(cfg);
    let mut conn = match open(&site, tokens, credentials_dir) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let outcome = transaction(&site, &mut conn, message);
    if matches!(outcome, Outcome::Success { .. }) {
        // The message was accepted: a QUIT that fails changes nothing about that.
        let _ = conn.quit();
    } else {
        conn.abort();
    }
    outcome
}

/// Check the server and login of `cfg` without sending anything (`ai-employee setup
/// smtp`): connect, EHLO, STARTTLS or TLS, AUTH as `send` does them, then QUIT.
/// `Success`'s detail says what was accepted; any other outcome, what failed.
pub fn check(cfg: &SmtpConfig, tokens: Option<&TokenSource>, credentials_dir: &Path) -> Outcome {
    let site = Site::of(cfg);
    let mut conn = match open(&site, tokens, credentials_dir) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let _ = conn.quit();
    let login = match (&cfg.login, &cfg.oauth) {
        (Some((user, _)), _) => format!("logged in as {user}"),
        (None, Some(o)) => format!("logged in as {} (XOAUTH2)", o.user),
        (None, None) => "EHLO accepted (no login)".to_string(),
    };
    Outcome::Success {
        detail: format!("{}: {login}", site.server),
        fields: Vec::new(),
    }
}

/// The session up to the first command of a message: connect and EHLO, TLS or
/// STARTTLS, then the login (password, or XOAUTH2 with one refresh). The connection is
/// closed on failure.
fn open(
    site: &Site<'_>,
    tokens: Option<&TokenSource>,
    credentials_dir: &Path,
) -> Result<SmtpConnection, Outcome> {
    let cfg = site.cfg;
    let server = site.server.as_str();
    // The access token first: no connection is opened for nothing when it cannot be had.
    let oauth = match (&cfg.oauth, tokens) {
        (Some(login), Some(tokens)) => match tokens.access_token() {
            Ok(token) => Some((login, tokens, token)),
            Err(e) => return Err(token_failure(server, e)),
        },
        (Some(_), None) => {
            return Err(Outcome::Permanent(
                "internal error: no token file for XOAUTH2".into(),
            ));
        }
        (None, _) => None,
    };
    let hello = ClientId::default();
    let tls = match cfg.tls {
        TlsMode::None => None,
        TlsMode::StartTls | TlsMode::Tls => Some(tls_parameters(site, credentials_dir)?),
    };
    let wrapper = match cfg.tls {
        TlsMode::Tls => tls.as_ref(),
        _ => None,
    };
    let mut conn = SmtpConnection::connect(
        (cfg.host.as_str(), cfg.port),
        Some(cfg.timeout),
        &hello,
        wrapper,
        None,
    )
    .map_err(|e| before_commit(site, "connect", &e))?;
    match log_in(site, &mut conn, &hello, tls.as_ref(), oauth) {
        Ok(()) => Ok(conn),
        Err(outcome) => {
            conn.abort();
            Err(outcome)
        }
    }
}

/// The TLS settings: the public roots, plus the certificates of `ca_file`.
fn tls_parameters(site: &Site<'_>, credentials_dir: &Path) -> Result<TlsParameters, Outcome> {
    let server = &site.server;
    let mut b = TlsParameters::builder(site.cfg.host.clone());
    if let Some(ca) = &site.cfg.ca_file {
        let certs = tls::load_ca_file(&credentials_dir.join(&ca.path), &ca.shown).map_err(|e| {
            Outcome::Permanent(format!(
                "SMTP {server}: {e} (`ca_file` in {SMTP_FILE}; see docs/approvals.md)"
            ))
        })?;
        for cert in certs {
            let cert = Certificate::from_der(cert.to_vec()).map_err(|e| {
                Outcome::Permanent(format!(
                    "SMTP {server}: ca_file {}: {} (`ca_file` in {SMTP_FILE})",
                    ca.shown,
                    error_text(&e)
                ))
            })?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| {
        let about = match &site.cfg.ca_file {
            Some(ca) => format!(" (is ca_file {} a CA certificate?)", ca.shown),
            None => String::new(),
        };
        Outcome::Permanent(format!(
            "SMTP {server}: TLS set-up failed: {}{about}",
            error_text(&e)
        ))
    })
}

/// STARTTLS (when asked for) and the login, on a connection that said EHLO.
fn log_in(
    site: &Site<'_>,
    conn: &mut SmtpConnection,
    hello: &ClientId,
    tls: Option<&TlsParameters>,
    oauth: Option<(&OauthLogin, &TokenSource, Secret)>,
) -> Result<(), Outcome> {
    let cfg = site.cfg;
    if cfg.tls == TlsMode::StartTls
        && let Some(params) = tls
        && let Err(e) = conn.starttls(params, hello)
    {
        return Err(before_commit(site, "STARTTLS", &e));
    }
    if let Some((user, password)) = &cfg.login
        && let Err(e) = conn.auth(
            &[Mechanism::Plain, Mechanism::Login],
            &Credentials::new(user.clone(), password.expose().to_string()),
        )
    {
        return Err(before_commit(site, "login", &e));
    }
    if let Some((login, tokens, token)) = oauth {
        xoauth2_login(site, conn, &login.user, tokens, token)?;
    }
    Ok(())
}

/// One message: MAIL, its RCPTs, DATA and the text, on a logged-in connection.
fn transaction(site: &Site<'_>, conn: &mut SmtpConnection, message: &Outgoing) -> Outcome {
    let server = site.server.as_str();
    let envelope = &message.envelope;
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
    if !message.text.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    // One approval, one transaction: one MAIL, its RCPTs, one DATA.
    if let Err(e) = conn.command(Mail::new(envelope.from().cloned(), options)) {
        return before_commit(site, "MAIL FROM", &e);
    }
    for rcpt in envelope.to() {
        if let Err(e) = conn.command(Rcpt::new(rcpt.clone(), vec![])) {
            return before_commit(site, &format!("RCPT TO <{rcpt}>"), &e);
        }
    }
    if let Err(e) = conn.command(Data) {
        return before_commit(site, "DATA", &e);
    }
    // The point of no return: from here a lost reply may hide a delivery. The text and
    // its final "." go out in one write (lettre's `message` makes two, and Nagle's
    // algorithm then holds the "." until the server's delayed ACK: 40 ms per message).
    match conn.command(Payload(dot_stuff(&message.text))) {
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
        Err(e) if e.is_transient() => Outcome::Transient(format!(
            "SMTP {server} did not accept the message: {}",
            error_text(&e)
        )),
        Err(e) if e.is_permanent() => Outcome::Permanent(format!(
            "SMTP {server} refused the message: {}",
            error_text(&e)
        )),
        Err(e) => Outcome::Unknown(format!(
            "SMTP {server}: the connection failed after the message was sent ({})",
            error_text(&e)
        )),
    }
}

/// AUTH XOAUTH2; a refused token (535) is refreshed once and tried again.
fn xoauth2_login(
    site: &Site<'_>,
    conn: &mut SmtpConnection,
    user: &str,
    tokens: &TokenSource,
    token: Secret,
) -> Result<(), Outcome> {
    let server = site.server.as_str();
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
        Err(Xoauth2Error::Smtp(e)) => return Err(before_commit(site, "login (XOAUTH2)", &e)),
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
        Err(Xoauth2Error::Smtp(e)) => Err(before_commit(site, "login (XOAUTH2)", &e)),
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

/// The message text, dot-stuffed, and the end of the data: the text's last line is
/// ended by CRLF if it is not already, then `.` CRLF.
struct Payload(String);

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)?;
        if !(self.0.is_empty() || self.0.ends_with("\r\n")) {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// RFC 5321 §4.5.2 transparency: a "." that starts a line is doubled. Lines are what
/// CRLF ends: [`build`] made sure no bare CR or LF is left that another reader could
/// take for a line end.
fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out
}

/// Classify a failure before the message text was sent (nothing delivered). A certificate
/// the client does not accept is a set-up problem (permanent), found by its type.
fn before_commit(site: &Site<'_>, step: &str, e: &lettre::transport::smtp::Error) -> Outcome {
    let server = &site.server;
    if let Some(ce) = tls::certificate_error(e) {
        return Outcome::Permanent(format!(
            "SMTP {server}: {step} failed: {}",
            tls::explain_certificate(ce, site.cert_setup())
        ));
    }
    let text = format!("SMTP {server}: {step} failed: {}", error_text(e));
    if e.is_permanent() || e.is_tls() || e.is_client() {
        Outcome::Permanent(text)
    } else {
        // 4xx replies, refused or dropped connections, timeouts, garbled replies.
        Outcome::Transient(text)
    }
}

/// An SMTP error in words: a TLS failure inside it explained, the rest one line.
fn error_text(e: &lettre::transport::smtp::Error) -> String {
    match tls::tls_error(e) {
        Some(t) => tls::tls_error_text(t),
        None => one_line(&e.to_string()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::parse_smtp;
    use crate::request::Attachment as Attached;
    use mail_parser::MimeHeaders;

    fn cfg(port: u16) -> SmtpConfig {
        parse_smtp(
            "smtp.toml",
            &format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"a@b.c\"\n"),
        )
        .expect("valid")
    }

    fn email(body: &str, attachments: Vec<Attached>) -> Email {
        Email {
            to: vec!["x@y.z".parse().expect("addr")],
            cc: vec![],
            bcc: vec![],
            subject: "s".into(),
            body: body.into(),
            attachments,
            message_id: None,
        }
    }

    fn attached(name: &str, bytes: &[u8]) -> Attached {
        Attached {
            rel: Folder::Inbox.rel(name),
            file_name: name.to_string(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn dot_stuffing_doubles_a_leading_dot_only() {
        assert_eq!(
            dot_stuff(".a\r\nb.\r\n.\r\n..c\r\n.d"),
            "..a\r\nb.\r\n..\r\n...c\r\n..d"
        );
        assert_eq!(Payload("a\r\n".into()).to_string(), "a\r\n.\r\n");
        assert_eq!(Payload("a".into()).to_string(), "a\r\n.\r\n");
    }

    #[test]
    fn canonical_names_the_first_offence() {
        let offence = |text: &[u8]| canonical(text).map_err(|e| e.to_string());
        assert_eq!(canonical(b"a\r\nb\r\n"), Ok(()));
        assert_eq!(canonical(b""), Ok(()));
        assert_eq!(
            offence(b"a\r\nb\nc").unwrap_err(),
            "a line feed without carriage return at offset 4"
        );
        assert_eq!(
            offence(b"a\rb").unwrap_err(),
            "a carriage return without line feed at offset 1"
        );
        assert_eq!(offence(b"a\0").unwrap_err(), "a NUL byte at offset 1");
        assert!(canonical(&[b'x'; 998]).is_ok());
        assert_eq!(
            offence(&[b'x'; 999]).unwrap_err(),
            "a line of 999 octets at offset 0, over the 998 allowed"
        );
        // The same limit for a line that ends with CRLF, named by where it starts.
        let mut long = b"ok\r\n".to_vec();
        long.extend_from_slice(&[b'y'; 999]);
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            offence(&long).unwrap_err(),
            "a line of 999 octets at offset 4, over the 998 allowed"
        );
    }

    /// Small deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn bytes(&mut self, n: usize, alphabet: &[u8]) -> Vec<u8> {
            (0..n)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn whatever_the_approval_holds_the_message_is_canonical_and_decodes_to_it() {
        let hostile: &[u8] = b"\r\n.\0\t xX=-";
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..300 {
            let n = (rng.next() % 300) as usize;
            let body_bytes = rng.bytes(n, hostile);
            let body = String::from_utf8(body_bytes).expect("ascii");
            let body = if round % 3 == 0 {
                format!("{body} Grüße €")
            } else {
                body
            };
            let long = (rng.next() % 2000) as usize;
            let att = if round % 2 == 0 {
                rng.bytes(long, hostile)
            } else {
                (0..long).map(|_| rng.next() as u8).collect()
            };
            let names = ["a.txt", "b.bin", "x\r\n.\r\nMAIL FROM.txt", "ü.csv"];
            let name = names[round % names.len()];
            let e = email(&body, vec![attached(name, &att)]);
            let out = build(&cfg(25), &e, "<id@b.c>").expect("builds");
            canonical(out.text.as_bytes()).expect("canonical");
            let stuffed = dot_stuff(&out.text);
            assert!(
                !stuffed.split("\r\n").any(|l| l == "."),
                "a lone dot line on the wire"
            );
            let msg = mail_parser::MessageParser::default()
                .parse(out.text.as_bytes())
                .expect("parses");
            let text = msg.body_text(0).expect("text");
            let want = body.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(
                text.replace("\r\n", "\n").trim_end(),
                want.trim_end(),
                "round {round}"
            );
            let a = msg.attachments().next().expect("attachment");
            assert_eq!(a.contents(), &att[..], "round {round}");
            assert_eq!(a.attachment_name(), Some(name), "round {round}");
        }
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
        let c = cfg(port);
        let m = build(&c, &email("b", vec![]), "<id@x>").expect("builds");
        assert!(matches!(
            send(&c, &m, None, Path::new("/nonexistent")),
            Outcome::Transient(_)
        ));
    }
}
