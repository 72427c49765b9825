//! TLS for the mail watcher (IMAP) and the approval handler (SMTP): the extra trusted
//! roots of a `ca_file`, and certificate errors told apart from other failures by their
//! type (`rustls::Error::InvalidCertificate`), then explained for people.
//!
//! A certificate the program does not accept is a set-up problem: waiting does not fix
//! it, so the caller stops (exit 78) or fails the approval at once instead of retrying.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, CertificateError};

/// A `ca_file` setting: the path (as written, or already joined to the credentials
/// folder), and its name for messages (`credentials/<name>`, or the absolute path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub shown: String,
}

impl CaFile {
    /// `value` as written in a credentials file, relative to `credentials_dir` unless
    /// absolute.
    pub fn new(value: &str, credentials_dir: &Path) -> CaFile {
        CaFile {
            path: credentials_dir.join(value),
            shown: if Path::new(value).is_absolute() {
                value.to_string()
            } else {
                format!("credentials/{value}")
            },
        }
    }
}

/// Why a `ca_file` gives no certificates (`shown`: its name for messages).
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read ca_file {shown}: {source}")]
    Read {
        shown: String,
        source: std::io::Error,
    },
    #[error("ca_file {shown} is not a valid PEM file: {source}")]
    NotPem {
        shown: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("ca_file {shown} holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")")]
    NoCertificate { shown: String },
}

/// The certificates of a PEM `ca_file` (`shown`: its name for messages). At least one.
pub fn load_ca_file(path: &Path, shown: &str) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let shown = || shown.to_string();
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        shown: shown(),
        source,
    })?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        certs.push(cert.map_err(|source| CaFileError::NotPem {
            shown: shown(),
            source,
        })?);
    }
    if certs.is_empty() {
        return Err(CaFileError::NoCertificate { shown: shown() });
    }
    Ok(certs)
}

/// The certificate error somewhere in `err`'s chain, looking inside `io::Error`s (a TLS
/// stream reports a failed handshake as an `io::Error` that wraps the rustls error, and
/// `io::Error::source` skips that wrapped error).
pub fn certificate_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a CertificateError> {
    find_in_chain(err, |e| match e {
        rustls::Error::InvalidCertificate(ce) => Some(ce),
        _ => None,
    })
}

/// The rustls error somewhere in `err`'s chain (see [`certificate_error`]).
pub fn tls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    find_in_chain(err, Some)
}

/// The first rustls error in `err`'s chain (looking inside `io::Error`s) that `pick` takes.
fn find_in_chain<'a, T>(
    err: &'a (dyn StdError + 'static),
    pick: fn(&'a rustls::Error) -> Option<T>,
) -> Option<T> {
    let mut next: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>().and_then(pick) {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &'a (dyn StdError + 'static) = inner;
            if let Some(found) = find_in_chain(inner, pick) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

/// An I/O error as people read it: a TLS failure inside it is explained (rustls' own
/// text shows Rust names such as `UnknownIssuer` or `AlertReceived(HandshakeFailure)`).
pub fn io_error_text(e: &std::io::Error) -> String {
    match tls_error(e) {
        Some(t) => tls_error_text(t),
        None => e.to_string(),
    }
}

/// A TLS error that is not about the certificate, in words.
pub fn tls_error_text(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(ce) => format!(
            "the server's certificate is not accepted: {}",
            certificate_reason(ce, Roots::Public)
        ),
        E::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({})",
            words(&format!("{alert:?}"))
        ),
        E::PeerIncompatible(why) => format!(
            "the server's TLS is not compatible with this program ({})",
            words(&format!("{why:?}"))
        ),
        E::PeerMisbehaved(why) => format!(
            "the server broke the TLS protocol ({})",
            words(&format!("{why:?}"))
        ),
        E::InvalidMessage(why) => format!(
            "the server sent a malformed TLS message ({}); is this port really TLS?",
            words(&format!("{why:?}"))
        ),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "the server sent an unexpected TLS message".to_string()
        }
        E::NoCertificatesPresented => "the server presented no certificate".to_string(),
        E::DecryptError => "a TLS message from the server could not be decrypted".to_string(),
        other => {
            let text = other.to_string();
            if text.contains(' ') {
                format!("TLS failed: {text}")
            } else {
                format!("TLS failed: {}", words(&text))
            }
        }
    }
}

/// Where the user can do something about a certificate error.
#[derive(Debug, Clone, Copy)]
pub struct CertSetup<'a> {
    /// The host name the client checks the certificate against.
    pub host: &'a str,
    /// The credentials file, e.g. `credentials/gmail.toml`.
    pub creds_file: &'a str,
    /// `ca_file` as configured (its shown name), if any.
    pub ca_file: Option<&'a str>,
    /// The page that explains it, e.g. `docs/gmail.md`.
    pub docs: &'a str,
}

/// One line: why the certificate is refused and what to change, naming `ca_file` and the
/// credentials file.
pub fn explain_certificate(ce: &CertificateError, setup: CertSetup<'_>) -> String {
    let CertSetup {
        host,
        creds_file,
        ca_file,
        docs,
    } = setup;
    let why = certificate_reason(
        ce,
        match ca_file {
            Some(ca) => Roots::CaFile(ca),
            None => Roots::NoCaFile,
        },
    );
    let fix = match classify(ce) {
        Kind::UnknownIssuer => match ca_file {
            None => format!(
                "if the server uses a certificate from a private CA or a self-signed one, save \
                 that CA certificate (PEM) in credentials/ and name it with `ca_file` in \
                 {creds_file}"
            ),
            Some(ca) => format!(
                "check that `ca_file` in {creds_file} ({ca}) holds the certificate of the CA \
                 that issued the server's certificate"
            ),
        },
        Kind::CaAsServer => format!(
            "give the server a certificate for {host} issued by that CA (not the CA \
             certificate itself), and name the CA certificate with `ca_file` in {creds_file}"
        ),
        Kind::ServerAsCa => format!(
            "`ca_file` in {creds_file} must hold the CA certificate, not a server's certificate"
        ),
        Kind::WrongName => format!(
            "set `host` in {creds_file} to a name the certificate lists (`ca_file` cannot \
             change which names a certificate is for)"
        ),
        Kind::Time => format!(
            "check this computer's clock; otherwise the server needs a new certificate \
             (`ca_file` in {creds_file} cannot change this)"
        ),
        Kind::Other => format!(
            "the server needs a valid certificate for {host}, or `ca_file` in {creds_file} the \
             CA that issued it"
        ),
    };
    format!(
        "the server's certificate is not accepted: {why}. A certificate error does not pass by waiting: {fix}; see {docs}"
    )
}

enum Kind {
    UnknownIssuer,
    CaAsServer,
    ServerAsCa,
    WrongName,
    Time,
    Other,
}

fn classify(ce: &CertificateError) -> Kind {
    use CertificateError as C;
    match ce {
        C::UnknownIssuer => Kind::UnknownIssuer,
        C::NotValidForName | C::NotValidForNameContext { .. } => Kind::WrongName,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            Kind::Time
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => Kind::CaAsServer,
            Some(webpki::Error::EndEntityUsedAsCa) => Kind::ServerAsCa,
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// The roots a certificate was checked against.
#[derive(Clone, Copy)]
enum Roots<'a> {
    /// The public roots; the client has no `ca_file` setting.
    Public,
    /// The public roots; a `ca_file` could be set but is not.
    NoCaFile,
    /// The public roots and this `ca_file`.
    CaFile(&'a str),
}

/// Why the certificate is refused, in words.
fn certificate_reason(ce: &CertificateError, roots: Roots<'_>) -> String {
    use CertificateError as C;
    match ce {
        C::UnknownIssuer => match roots {
            Roots::Public => "it was not issued by a certificate authority this program trusts \
                              (the public roots)"
                .to_string(),
            Roots::NoCaFile => "it was not issued by a certificate authority this program \
                                trusts (the public roots; no `ca_file` is set)"
                .to_string(),
            Roots::CaFile(ca) => format!(
                "it was issued neither by a public certificate authority nor by one in \
                 ca_file {ca}"
            ),
        },
        C::NotValidForName => "it is not valid for the server's name".to_string(),
        C::NotValidForNameContext { .. } => {
            // rustls' text: "certificate not valid for name \"x\"; certificate is only valid for y"
            let text = ce.to_string();
            text.strip_prefix("certificate ")
                .unwrap_or(&text)
                .replace("; certificate is only valid for", ": it is only valid for")
        }
        C::Expired => "it has expired".to_string(),
        C::ExpiredContext { time, not_after } => format!(
            "it expired {} ago",
            ago(time.as_secs().saturating_sub(not_after.as_secs()))
        ),
        C::NotValidYet => "it is not valid yet".to_string(),
        C::NotValidYetContext { time, not_before } => format!(
            "it becomes valid only in {}",
            ago(not_before.as_secs().saturating_sub(time.as_secs()))
        ),
        C::Revoked => "it has been revoked".to_string(),
        C::BadEncoding => "it is malformed".to_string(),
        C::BadSignature => "its signature is invalid".to_string(),
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm => {
            "it is signed with an algorithm this program does not support".to_string()
        }
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm this program does not support".to_string()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for servers (its extended key usage)".to_string()
        }
        C::UnhandledCriticalExtension => {
            "it has a critical extension this program does not understand".to_string()
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "the server presents a CA certificate as its own (a CA certificate cannot \
                 identify a server)"
                    .to_string()
            }
            Some(webpki::Error::EndEntityUsedAsCa) => {
                "its chain uses a server's certificate as a CA".to_string()
            }
            Some(webpki::Error::NameConstraintViolation) => {
                "the issuing CA is not allowed to certify this name".to_string()
            }
            Some(webpki::Error::PathLenConstraintViolated)
            | Some(webpki::Error::MaximumPathDepthExceeded) => {
                "its chain of CAs is too long".to_string()
            }
            Some(e) => format!("it is invalid ({})", words(&e.to_string())),
            None => format!("it is invalid ({})", other.0),
        },
        other => {
            let text = other.to_string();
            if text.contains(' ') {
                format!("it is invalid ({text})")
            } else {
                format!("it is invalid ({})", words(&text))
            }
        }
    }
}

/// A number of seconds as "3 days", "5 hours", "12 minutes", "40 seconds".
fn ago(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 2 * 60 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

/// A Rust name in words: `HandshakeFailure` → "handshake failure"; `Unknown(42)` →
/// "unknown 42".
pub fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut prev: Option<char> = None;
    for c in name.chars() {
        match c {
            '(' | ')' | '{' | '}' | '"' | '_' => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
                prev = Some(' ');
                continue;
            }
            _ => {}
        }
        if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit()) {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
        prev = Some(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn setup(ca: Option<&str>) -> CertSetup<'_> {
        CertSetup {
            host: "mail.example.com",
            creds_file: "credentials/gmail.toml",
            ca_file: ca,
            docs: "docs/gmail.md",
        }
    }

    #[test]
    fn rust_names_become_words() {
        assert_eq!(words("HandshakeFailure"), "handshake failure");
        assert_eq!(words("CaUsedAsEndEntity"), "ca used as end entity");
        assert_eq!(words("Unknown(42)"), "unknown 42");
        assert_eq!(
            words("NoCipherSuitesInCommon"),
            "no cipher suites in common"
        );
    }

    #[test]
    fn an_unknown_issuer_names_ca_file_and_the_credentials_file() {
        let text = explain_certificate(&CertificateError::UnknownIssuer, setup(None));
        insta::assert_snapshot!(text, @"the server's certificate is not accepted: it was not issued by a certificate authority this program trusts (the public roots; no `ca_file` is set). A certificate error does not pass by waiting: if the server uses a certificate from a private CA or a self-signed one, save that CA certificate (PEM) in credentials/ and name it with `ca_file` in credentials/gmail.toml; see docs/gmail.md");
        let text = explain_certificate(
            &CertificateError::UnknownIssuer,
            setup(Some("credentials/my-ca.pem")),
        );
        insta::assert_snapshot!(text, @"the server's certificate is not accepted: it was issued neither by a public certificate authority nor by one in ca_file credentials/my-ca.pem. A certificate error does not pass by waiting: check that `ca_file` in credentials/gmail.toml (credentials/my-ca.pem) holds the certificate of the CA that issued the server's certificate; see docs/gmail.md");
    }

    #[test]
    fn a_ca_certificate_used_by_the_server_is_explained() {
        let ce = CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )));
        let text = explain_certificate(&ce, setup(Some("ca.pem")));
        insta::assert_snapshot!(text, @"the server's certificate is not accepted: the server presents a CA certificate as its own (a CA certificate cannot identify a server). A certificate error does not pass by waiting: give the server a certificate for mail.example.com issued by that CA (not the CA certificate itself), and name the CA certificate with `ca_file` in credentials/gmail.toml; see docs/gmail.md");
    }

    #[test]
    fn no_rust_names_in_any_explanation() {
        use std::time::Duration;
        use tokio_rustls::rustls::pki_types::UnixTime;
        let t = |s| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let all = [
            CertificateError::BadEncoding,
            CertificateError::Expired,
            CertificateError::ExpiredContext {
                time: t(1_000_000),
                not_after: t(1_000_000 - 3 * 86_400),
            },
            CertificateError::NotValidYet,
            CertificateError::Revoked,
            CertificateError::UnhandledCriticalExtension,
            CertificateError::UnknownIssuer,
            CertificateError::UnknownRevocationStatus,
            CertificateError::BadSignature,
            CertificateError::NotValidForName,
            CertificateError::InvalidPurpose,
            CertificateError::ApplicationVerificationFailure,
            CertificateError::Other(rustls::OtherError(Arc::new(
                webpki::Error::EndEntityUsedAsCa,
            ))),
            CertificateError::Other(rustls::OtherError(Arc::new(
                webpki::Error::MalformedExtensions,
            ))),
        ];
        for ce in &all {
            let text = explain_certificate(ce, setup(None));
            assert!(text.contains("`ca_file`"), "{text}");
            assert!(text.contains("credentials/gmail.toml"), "{text}");
            let camel = text.split(|c: char| !c.is_alphanumeric()).any(|w| {
                w.chars().next().is_some_and(char::is_uppercase)
                    && w.chars().skip(1).any(char::is_uppercase)
                    && w.chars().any(char::is_lowercase)
            });
            assert!(!camel, "a Rust name in: {text}");
        }
        let expired = explain_certificate(&all[2], setup(None));
        assert!(expired.contains("it expired 3 days ago"), "{expired}");
    }

    #[test]
    fn certificate_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(matches!(
            certificate_error(&io),
            Some(CertificateError::UnknownIssuer)
        ));
        let other = std::io::Error::other(rustls::Error::DecryptError);
        assert!(certificate_error(&other).is_none());
        assert!(tls_error(&other).is_some());
        assert_eq!(
            io_error_text(&other),
            "a TLS message from the server could not be decrypted"
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(certificate_error(&plain).is_none());
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ca.pem");
        let e = load_ca_file(&p, "credentials/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read ca_file credentials/ca.pem: "),
            "{e}"
        );
        std::fs::write(&p, "not a certificate\n").expect("write");
        assert_eq!(
            load_ca_file(&p, "credentials/ca.pem")
                .unwrap_err()
                .to_string(),
            "ca_file credentials/ca.pem holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")"
        );
    }
}
