//! Reaching the IMAP server: TCP, TLS or STARTTLS (rustls with the ring provider; public
//! roots from webpki-roots plus an optional `ca_file`), the greeting, and logging in with
//! a password or XOAUTH2.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ai_employee_vault::credentials::Secret;
use ai_employee_vault::tls::{self, CertSetup};
use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::config::{CREDENTIALS_FILE, Config, TlsMode};

/// The connection under the IMAP client: plain (loopback only) or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub type ImapSession = Session<Stream>;

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a connection or login did not work.
#[derive(Debug)]
pub enum ConnError {
    /// The server refused the credentials (its reason): the watcher needs setup.
    Refused(String),
    /// Anything that may pass: network, timeouts, a server going away.
    Transient(String),
    /// The server's certificate is not accepted (the one-line reason, naming `ca_file`):
    /// a set-up problem, not retried.
    Certificate(String),
}

/// Why the TLS settings cannot be made: the watcher cannot run until `ca_file` is fixed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    CaFile(#[from] tls::CaFileError),
    #[error(
        "ca_file {shown} holds a certificate that cannot be a trusted root ({})",
        tls::tls_error_text(.source)
    )]
    NotARoot {
        shown: String,
        source: tokio_rustls::rustls::Error,
    },
    #[error("TLS set-up failed: {}", tls::tls_error_text(.0))]
    Rustls(tokio_rustls::rustls::Error),
}

/// The TLS settings: public roots plus the `ca_file`'s certificates.
pub fn tls_config(cfg: &Config) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &cfg.ca_file {
        for cert in tls::load_ca_file(&ca.path, &ca.shown)? {
            roots.add(cert).map_err(|source| TlsSetupError::NotARoot {
                shown: ca.shown.clone(),
                source,
            })?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `fut` within `limit`; its error (a one-line reason) or the timeout is transient.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ConnError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ConnError::Transient(format!("{what}: {e}"))),
        Err(_) => Err(ConnError::Transient(format!(
            "{what}: no answer within {}s",
            limit.as_secs_f64()
        ))),
    }
}

/// Connect, secure the connection and read the greeting: an unauthenticated client.
pub async fn connect(cfg: &Config, tls: &Arc<ClientConfig>) -> Result<Client<Stream>, ConnError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = within(cfg.timeout, "failed to connect", async {
        TcpStream::connect((cfg.host.as_str(), cfg.port))
            .await
            .map_err(|e| format!("{addr}: {}", tls::io_error_text(&e)))
    })
    .await?;
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("failed to set TCP_NODELAY: {e}");
    }
    keepalive(&tcp);
    match cfg.tls {
        TlsMode::None => {
            let mut client = Client::new(Stream::Plain(tcp));
            greeting(&mut client, cfg.timeout).await?;
            Ok(client)
        }
        TlsMode::Tls => {
            let s = handshake(cfg, tls, tcp).await?;
            let mut client = Client::new(Stream::Tls(Box::new(s)));
            greeting(&mut client, cfg.timeout).await?;
            Ok(client)
        }
        TlsMode::StartTls => {
            let mut client = Client::new(Stream::Plain(tcp));
            greeting(&mut client, cfg.timeout).await?;
            within(cfg.timeout, "STARTTLS", async {
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| imap_error_text(&e))
            })
            .await?;
            let Stream::Plain(tcp) = client.into_inner() else {
                return Err(ConnError::Transient("STARTTLS on a TLS connection".into()));
            };
            let s = handshake(cfg, tls, tcp).await?;
            Ok(Client::new(Stream::Tls(Box::new(s))))
        }
    }
}

async fn handshake(
    cfg: &Config,
    tls: &Arc<ClientConfig>,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, ConnError> {
    let name = ServerName::try_from(cfg.host.clone())
        .map_err(|e| ConnError::Transient(format!("invalid host name {}: {e}", cfg.host)))?;
    let connect = TlsConnector::from(tls.clone()).connect(name, tcp);
    match tokio::time::timeout(cfg.timeout, connect).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => match tls::certificate_error(&e) {
            Some(ce) => Err(ConnError::Certificate(format!(
                "{}:{}: {}",
                cfg.host,
                cfg.port,
                tls::explain_certificate(
                    ce,
                    CertSetup {
                        host: &cfg.host,
                        creds_file: CREDENTIALS_FILE,
                        ca_file: cfg.ca_file.as_ref().map(|c| c.shown.as_str()),
                        docs: "docs/gmail.md",
                    }
                )
            ))),
            None => Err(ConnError::Transient(format!(
                "TLS handshake failed: {}",
                tls::io_error_text(&e)
            ))),
        },
        Err(_) => Err(ConnError::Transient(format!(
            "TLS handshake failed: no answer within {}s",
            cfg.timeout.as_secs_f64()
        ))),
    }
}

/// `* OK …` (or PREAUTH); `* BYE` and anything else is a refusal to talk now.
async fn greeting(client: &mut Client<Stream>, limit: Duration) -> Result<(), ConnError> {
    let resp = within(limit, "no greeting", async {
        client
            .read_response()
            .await
            .map_err(|e| tls::io_error_text(&e))
    })
    .await?;
    let Some(resp) = resp else {
        return Err(ConnError::Transient(
            "the server closed the connection before its greeting".into(),
        ));
    };
    match resp.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data { information, .. } => Err(ConnError::Transient(format!(
            "the server refused the connection: {}",
            information.as_deref().unwrap_or("(no reason given)")
        ))),
        _ => Err(ConnError::Transient("unexpected greeting".into())),
    }
}

/// LOGIN with a password.
pub async fn login(
    client: Client<Stream>,
    cfg: &Config,
    user: &str,
    password: &Secret,
) -> Result<ImapSession, ConnError> {
    let r = tokio::time::timeout(cfg.timeout, client.login(user, password.expose())).await;
    auth_result(r, cfg.timeout, &[password.expose()])
}

/// The SASL XOAUTH2 exchange: the initial response, then an empty answer to the
/// server's error challenge (so it can send its NO).
struct XOAuth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

/// AUTHENTICATE XOAUTH2 with `response` (the unencoded SASL string).
pub async fn xoauth2(
    client: Client<Stream>,
    cfg: &Config,
    response: String,
    secret: &str,
) -> Result<ImapSession, ConnError> {
    let auth = XOAuth2 {
        response: Some(response),
    };
    let r = tokio::time::timeout(cfg.timeout, client.authenticate("XOAUTH2", auth)).await;
    auth_result(r, cfg.timeout, &[secret])
}

type AuthResult = Result<ImapSession, (async_imap::error::Error, Client<Stream>)>;

fn auth_result(
    r: Result<AuthResult, tokio::time::error::Elapsed>,
    limit: Duration,
    secrets: &[&str],
) -> Result<ImapSession, ConnError> {
    use async_imap::error::Error;
    match r {
        Ok(Ok(s)) => Ok(s),
        Ok(Err((Error::No(reason) | Error::Bad(reason), _))) => {
            Err(ConnError::Refused(redact(&server_text(&reason), secrets)))
        }
        Ok(Err((e, _))) => Err(ConnError::Transient(format!(
            "login failed: {}",
            redact(&imap_error_text(&e), secrets)
        ))),
        Err(_) => Err(ConnError::Transient(format!(
            "login: no answer within {}s",
            limit.as_secs_f64()
        ))),
    }
}

/// An IMAP client error in words. The server's own reason is kept; async-imap's Rust
/// notation around it (`code: None, info: Some("…")`) is not.
pub fn imap_error_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::{Error, ParseError};
    match e {
        Error::Io(io) => tls::io_error_text(io),
        Error::No(r) => format!("the server refused: {}", server_text(r)),
        Error::Bad(r) => format!("the server rejected the command: {}", server_text(r)),
        Error::ConnectionLost => "the connection was lost".to_string(),
        Error::Parse(p) => match p {
            ParseError::Invalid(_) => "the server sent an answer that cannot be parsed".into(),
            ParseError::Unexpected(_) => "the server sent an unexpected answer".into(),
            ParseError::Authentication(..) => {
                "the server's authentication challenge cannot be read".into()
            }
            ParseError::DataNotUtf8(..) => "the server sent text that is not UTF-8".into(),
            ParseError::ExpectedResponseNotFound(what) => {
                format!("the server did not answer {what}")
            }
        },
        Error::Validate(v) => format!("the character '{}' cannot be sent in a command", v.0),
        Error::Append => "the message could not be appended".to_string(),
        other => other.to_string(),
    }
}

/// The server's words in async-imap's text of a NO or BAD answer, which it writes as
/// `code: <response code>, info: <text>` in Rust's debug notation (`None`,
/// `Some(Alert)`, `Some("Login failed.")`): `[ALERT] Login failed.`.
pub fn server_text(raw: &str) -> String {
    let raw = raw.trim();
    let Some(rest) = raw.strip_prefix("code: ") else {
        return if raw.is_empty() {
            "(no reason given)".to_string()
        } else {
            raw.to_string()
        };
    };
    // The code's end: ", info: " outside brackets and quotes.
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    let mut split = None;
    for (i, c) in rest.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 && rest[i..].starts_with(", info: ") => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(split) = split else {
        return raw.to_string();
    };
    let code = debug_code(&rest[..split]);
    let info = debug_option_str(&rest[split + ", info: ".len()..]);
    match (code, info) {
        (Some(c), Some(i)) if !i.trim().is_empty() => format!("[{c}] {}", i.trim()),
        (None, Some(i)) if !i.trim().is_empty() => i.trim().to_string(),
        (Some(c), _) => format!("[{c}]"),
        (None, _) => "(no reason given)".to_string(),
    }
}

/// `Some(TryCreate)` → `TRYCREATE`, `Some(UidValidity(5))` → `UIDVALIDITY 5`; `None` and
/// anything more involved → None.
fn debug_code(text: &str) -> Option<String> {
    let inner = text.strip_prefix("Some(")?.strip_suffix(')')?;
    let (name, arg) = match inner.split_once('(') {
        Some((n, a)) => (n, a.strip_suffix(')')),
        None => (inner, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let name = name.to_ascii_uppercase();
    match arg {
        None => Some(name),
        Some(a) if a.chars().all(|c| c.is_ascii_digit()) => Some(format!("{name} {a}")),
        Some(_) => Some(name),
    }
}

/// `Some("a \"b\"")` → `a "b"`; `None` → None.
fn debug_option_str(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix("Some(\"")?.strip_suffix("\")")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                // \u{XXXX}
                let hex: String = chars
                    .by_ref()
                    .skip_while(|c| *c == '{')
                    .take_while(|c| *c != '}')
                    .collect();
                if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Some(out)
}

/// `text` with every secret replaced (a server may echo what it was sent).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s, "[redacted]");
        }
    }
    if out.is_empty() {
        "(no reason given)".into()
    } else {
        out
    }
}

/// TCP keepalive, so a connection that died silently (a laptop's network gone) is noticed
/// within minutes even while idling.
fn keepalive(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let set = |level: libc::c_int, opt: libc::c_int, v: libc::c_int| {
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    #[cfg(target_os = "linux")]
    {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 15);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_reasons_come_out_of_async_imaps_debug_text() {
        use async_imap::imap_proto::ResponseCode;
        // Made the way async-imap makes them, so a change of its format shows here.
        let made = |code: Option<ResponseCode<'_>>, info: Option<&str>| {
            format!("code: {code:?}, info: {info:?}")
        };
        assert_eq!(
            server_text(&made(None, Some("Login failed: authentication failure"))),
            "Login failed: authentication failure"
        );
        assert_eq!(
            server_text(&made(Some(ResponseCode::Alert), Some("Quota \"x\", 90%"))),
            "[ALERT] Quota \"x\", 90%"
        );
        assert_eq!(
            server_text(&made(Some(ResponseCode::UidValidity(5)), None)),
            "[UIDVALIDITY 5]"
        );
        assert_eq!(server_text(&made(None, None)), "(no reason given)");
        assert_eq!(
            server_text(&made(None, Some("tab\there, info: \u{e9}"))),
            "tab\there, info: \u{e9}"
        );
        assert_eq!(server_text("plain words"), "plain words");
        let e = async_imap::error::Error::No(made(None, Some("Mailbox doesn't exist: Nope")));
        insta::assert_snapshot!(imap_error_text(&e), @"the server refused: Mailbox doesn't exist: Nope");
    }

    #[test]
    fn secrets_are_redacted_from_server_text() {
        assert_eq!(
            redact("[AUTHENTICATIONFAILED] bad hunter2", &["hunter2"]),
            "[AUTHENTICATIONFAILED] bad [redacted]"
        );
        assert_eq!(redact("", &["x"]), "(no reason given)");
    }
}
