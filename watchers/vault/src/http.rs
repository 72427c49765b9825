//! The one HTTP client set-up (ureq) for everything that calls out: `[[notify]]`
//! webhooks, the OAuth token endpoint, the WhatsApp Cloud API.

use std::time::Duration;

use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// Statuses come back as values (callers judge them), redirects are not followed (they
/// could carry a token to another host), `timeout` bounds the whole call, and the user
/// agent names the product. Finish with `.build().into()`, after any further settings.
pub fn client(timeout: Duration) -> ConfigBuilder<AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("ai-employee/", env!("CARGO_PKG_VERSION")))
}

/// The most of a reply's body that is read: the replies read here (the WhatsApp API's,
/// the OAuth token endpoint's) are short JSON objects.
pub const REPLY_LIMIT: u64 = 64 * 1024;

/// The body of `response` as text, at most [`REPLY_LIMIT`] bytes (a longer one is an
/// error, never buffered whole).
pub fn reply_text(response: &mut ureq::http::Response<ureq::Body>) -> Result<String, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(REPLY_LIMIT)
        .read_to_string()
}

/// The body of `response`, at most `limit` bytes (a longer one is an error, never
/// buffered whole).
pub fn reply_bytes(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Vec<u8>, ureq::Error> {
    response.body_mut().with_config().limit(limit).read_to_vec()
}

/// A ureq error as people read it: its TLS failures explained (ureq shows rustls' own
/// text, which uses Rust names such as `UnknownIssuer`), everything else as ureq says it.
pub fn error_text(e: &ureq::Error) -> String {
    use crate::tls;
    match e {
        ureq::Error::Rustls(t) => tls::tls_error_text(t),
        ureq::Error::Io(io) => tls::io_error_text(io),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_explained() {
        use tokio_rustls::rustls::{CertificateError, Error as TlsError};
        let e = ureq::Error::Rustls(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            e.to_string(),
            "rustls: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            error_text(&e),
            "the server's certificate is not accepted: it was not issued by a certificate \
             authority this program trusts (the public roots)"
        );
        let io = ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(error_text(&io), "connection refused");
    }
}
