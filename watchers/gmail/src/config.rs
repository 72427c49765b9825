//! `credentials/gmail.toml`: where the mailbox is and how to log in.
//!
//! ```toml
//! host = "imap.gmail.com"        # default
//! port = 993                     # default: 993 for tls, 143 for starttls and none
//! tls = "tls"                    # "tls" | "starttls" | "none" (none: loopback hosts only)
//! username = "me@gmail.com"
//! password = "abcd efgh ijkl mnop"        # a Gmail app password, or …
//! # oauth_token_file = "gmail-token.json" # … an OAuth token, relative to credentials/
//! # ca_file = "my-ca.pem"                 # an extra trusted root (self-hosted servers)
//! # timeout = "30s"                       # per network operation
//! ```
//! Unknown keys are errors with `file:line:column` (a typo must not silently drop the
//! password). Secrets are kept in [`Secret`], which never prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_employee_vault::credentials::{Fields, Secret, is_loopback};
use ai_employee_vault::tls::CaFile;

/// Vault-relative path of the credentials file.
pub const CREDENTIALS_FILE: &str = "credentials/gmail.toml";
const DEFAULT_HOST: &str = "imap.gmail.com";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "password",
    "oauth_token_file",
    "ca_file",
    "timeout",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, port 993).
    Tls,
    /// A plain connection upgraded with STARTTLS before logging in (required).
    StartTls,
    /// No encryption: loopback hosts only.
    None,
}

#[derive(Debug, Clone)]
pub enum Auth {
    /// LOGIN with a password (a Gmail app password).
    Password(Secret),
    /// AUTHENTICATE XOAUTH2 with an access token from an OAuth token file.
    OAuth {
        /// Absolute path of the token file.
        path: PathBuf,
        /// Vault-relative name, for messages.
        rel: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub auth: Auth,
    /// An extra trusted root certificate (PEM), besides the public roots.
    pub ca_file: Option<CaFile>,
    /// Limit of each network operation (connect, TLS, a command and its answer).
    pub timeout: Duration,
}

/// Read `credentials/gmail.toml` of `vault`. The error is the one-line reason the watcher
/// cannot run.
pub fn load(vault: &Path) -> Result<Config, String> {
    let path = vault.join(CREDENTIALS_FILE);
    let text = match ai_employee_vault::credentials::read_file(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no credentials: create {} (IMAP host, username and an app password or \
                 OAuth token file); see docs/gmail.md",
                path.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e}; see docs/gmail.md",
                path.display()
            ));
        }
    };
    warn_if_readable_by_others(&path);
    let credentials_dir = vault.join(ai_employee_vault::layout::Folder::Credentials);
    parse(CREDENTIALS_FILE, &text, &credentials_dir)
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.mode() & 0o077 != 0
    {
        tracing::warn!(
            "{CREDENTIALS_FILE} can be read by other users (mode {:o}): run `chmod 600` on it",
            m.mode() & 0o777
        );
    }
}

/// Parse the file's text; relative file names are taken from `credentials_dir`.
pub fn parse(rel: &str, text: &str, credentials_dir: &Path) -> Result<Config, String> {
    let f = Fields::parse(rel, text)?;
    for (key, _) in f.doc.as_table().iter() {
        if !KEYS.contains(&key) {
            return Err(f.err_key(
                key,
                format!("unknown key `{key}` (known: {})", KEYS.join(", ")),
            ));
        }
    }
    let host = f.opt_str("host")?.unwrap_or(DEFAULT_HOST);
    if host.trim().is_empty() || host.contains(char::is_whitespace) {
        return Err(f.err_value("host", "`host` must be a host name or address".into()));
    }
    let tls = match f.opt_str("tls")?.unwrap_or("tls") {
        "tls" => TlsMode::Tls,
        "starttls" => TlsMode::StartTls,
        "none" => TlsMode::None,
        other => {
            return Err(f.err_value(
                "tls",
                format!("`tls` must be \"tls\", \"starttls\" or \"none\", not {other:?}"),
            ));
        }
    };
    if tls == TlsMode::None && !is_loopback(host) {
        return Err(f.err_value(
            "tls",
            format!(
                "tls = \"none\" would send the password or token unencrypted to {host}: use \
                 \"tls\" or \"starttls\" (\"none\" is allowed only for a loopback host)"
            ),
        ));
    }
    let port = match f.opt_int("port")? {
        None => match tls {
            TlsMode::Tls => 993,
            TlsMode::StartTls | TlsMode::None => 143,
        },
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| f.err_value("port", format!("`port` must be 1 to 65535, not {p}")))?,
    };
    let username = f.required_str("username")?;
    if username.trim().is_empty() {
        return Err(f.err_value("username", "`username` is empty".into()));
    }
    let auth = match (f.opt_str("password")?, f.opt_str("oauth_token_file")?) {
        (Some(_), Some(_)) => {
            return Err(f.err_key(
                "oauth_token_file",
                "set either `password` or `oauth_token_file`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(format!(
                "{rel}: missing `password` (a Gmail app password) or `oauth_token_file` \
                 (an OAuth token file in credentials/)"
            ));
        }
        (Some(p), None) => {
            if p.is_empty() {
                return Err(f.err_value("password", "`password` is empty".into()));
            }
            Auth::Password(Secret::from(p.to_string()))
        }
        (None, Some(t)) => {
            if t.trim().is_empty() {
                return Err(f.err_value("oauth_token_file", "`oauth_token_file` is empty".into()));
            }
            Auth::OAuth {
                path: credentials_dir.join(t),
                rel: relative_name(t),
            }
        }
    };
    let ca_file = match f.opt_str("ca_file")? {
        Some(c) if c.trim().is_empty() => {
            return Err(f.err_value("ca_file", "`ca_file` is empty".into()));
        }
        Some(c) => Some(CaFile::new(c, credentials_dir)),
        None => None,
    };
    Ok(Config {
        host: host.to_string(),
        port,
        tls,
        username: username.to_string(),
        auth,
        ca_file,
        timeout: f.opt_duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT),
    })
}

/// `credentials/<name>` for a name relative to `credentials/`; an absolute name as is.
fn relative_name(name: &str) -> String {
    if Path::new(name).is_absolute() {
        name.to_string()
    } else {
        format!("credentials/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Config {
        match parse(CREDENTIALS_FILE, text, Path::new("/v/credentials")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        parse(CREDENTIALS_FILE, text, Path::new("/v/credentials"))
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_gmail_over_tls() {
        let c = parse_ok("username = \"me@gmail.com\"\npassword = \"abcd efgh\"\n");
        assert_eq!(c.host, "imap.gmail.com");
        assert_eq!(c.port, 993);
        assert_eq!(c.tls, TlsMode::Tls);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.ca_file.is_none());
        assert!(matches!(&c.auth, Auth::Password(p) if p.expose() == "abcd efgh"));
        assert!(!format!("{c:?}").contains("abcd"));
    }

    #[test]
    fn starttls_oauth_and_files_relative_to_credentials() {
        let c = parse_ok(
            "host = \"mail.example.com\"\ntls = \"starttls\"\nusername = \"u\"\n\
             oauth_token_file = \"token.json\"\nca_file = \"ca.pem\"\ntimeout = \"5s\"\n",
        );
        assert_eq!(c.port, 143);
        assert_eq!(c.tls, TlsMode::StartTls);
        let ca = c.ca_file.as_ref().expect("ca_file");
        assert_eq!(ca.path, Path::new("/v/credentials/ca.pem"));
        assert_eq!(ca.shown, "credentials/ca.pem");
        assert_eq!(c.timeout, Duration::from_secs(5));
        match &c.auth {
            Auth::OAuth { path, rel } => {
                assert_eq!(path, Path::new("/v/credentials/token.json"));
                assert_eq!(rel, "credentials/token.json");
            }
            Auth::Password(_) => panic!("expected OAuth"),
        }
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let cases = [
            (
                "username = \"u\"\npassword = \"p\"\npasword = \"x\"\n",
                "credentials/gmail.toml:3:1: unknown key `pasword` (known: host, port, tls, \
                 username, password, oauth_token_file, ca_file, timeout)",
            ),
            (
                "username = \"u\"\npassword = \"p\"\nport = 0\n",
                "credentials/gmail.toml:3:8: `port` must be 1 to 65535, not 0",
            ),
            (
                "username = \"u\"\npassword = \"p\"\ntls = \"ssl\"\n",
                "credentials/gmail.toml:3:7: `tls` must be \"tls\", \"starttls\" or \"none\", not \"ssl\"",
            ),
            (
                "username = \"u\"\npassword = \"p\"\ntls = \"none\"\n",
                "credentials/gmail.toml:3:7: tls = \"none\" would send the password or token \
                 unencrypted to imap.gmail.com: use \"tls\" or \"starttls\" (\"none\" is allowed \
                 only for a loopback host)",
            ),
            (
                "password = \"p\"\n",
                "credentials/gmail.toml: missing `username`",
            ),
            (
                "username = \"u\"\n",
                "credentials/gmail.toml: missing `password` (a Gmail app password) or \
                 `oauth_token_file` (an OAuth token file in credentials/)",
            ),
            (
                "username = \"u\"\npassword = \"p\"\noauth_token_file = \"t.json\"\n",
                "credentials/gmail.toml:3:1: set either `password` or `oauth_token_file`, not both",
            ),
            (
                "username = \"u\"\npassword = 12\n",
                "credentials/gmail.toml:2:12: `password` must be a string, found an integer",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_err(text), want, "{text}");
        }
    }

    #[test]
    fn plain_text_is_allowed_on_loopback() {
        let c =
            parse_ok("host = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\n");
        assert_eq!((c.tls, c.port), (TlsMode::None, 143));
    }
}
