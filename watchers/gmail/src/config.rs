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

use ai_employee_vault::credentials::{
    self, Fields, Guide, LoadError, MAIL_SERVER_KEYS, Secret, is_loopback,
};
use ai_employee_vault::tls::CaFile;
use ai_employee_vault::toml_fields::{Diagnostics, Recorded};

/// Vault-relative path of the credentials file.
pub const CREDENTIALS_FILE: &str = "credentials/gmail.toml";
const DEFAULT_HOST: &str = "imap.gmail.com";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The keys of `gmail.toml` besides [`MAIL_SERVER_KEYS`].
const KEYS: &[&str] = &["ca_file", "timeout"];

/// `tls`, in the order messages list them.
const TLS_MODES: &[(&str, TlsMode)] = &[
    ("tls", TlsMode::Tls),
    ("starttls", TlsMode::StartTls),
    ("none", TlsMode::None),
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

/// What the watcher says when the file is missing, unreadable or invalid.
const GUIDE: Guide = Guide {
    create: "(IMAP host, username and an app password or OAuth token file); see docs/gmail.md, \
             or run: ai-employee setup gmail",
    unreadable: "; see docs/gmail.md",
    invalid: "",
};

/// Read `credentials/gmail.toml` of `vault`. The error is the reason the watcher cannot
/// run: one line, or one line per problem of the file.
pub fn load(vault: &Path) -> Result<Config, LoadError> {
    let path = vault.join(CREDENTIALS_FILE);
    let text = GUIDE.read(&path)?;
    credentials::warn_if_readable_by_others(&path, CREDENTIALS_FILE);
    let credentials_dir = vault.join(ai_employee_vault::layout::Folder::Credentials);
    parse(CREDENTIALS_FILE, &text, &credentials_dir).map_err(|e| GUIDE.invalid(e))
}

/// Parse the file's text; relative file names are taken from `credentials_dir`.
pub fn parse(rel: &str, text: &str, credentials_dir: &Path) -> Result<Config, Diagnostics> {
    Fields::read(rel, text, |f| read(f, credentials_dir))
}

fn read(f: &mut Fields<'_>, credentials_dir: &Path) -> Result<Config, Recorded> {
    f.only_keys(&[MAIL_SERVER_KEYS, KEYS].concat());
    let host = f.host(Some(DEFAULT_HOST));
    let tls = f.choice("tls", TLS_MODES, "tls");
    if let (Ok(host), Ok(TlsMode::None)) = (host, tls)
        && !is_loopback(host)
    {
        f.value_error(
            "tls",
            format!(
                "tls = \"none\" would send the password or token unencrypted to {host}: use \
                 \"tls\" or \"starttls\" (\"none\" is allowed only for a loopback host)"
            ),
        );
    }
    let port = f.port(match tls {
        Ok(TlsMode::Tls) | Err(_) => 993,
        Ok(TlsMode::StartTls | TlsMode::None) => 143,
    });
    let username = f.required_str("username").and_then(|u| match u.trim() {
        "" => Err(f.value_error("username", "`username` is empty".into())),
        _ => Ok(u),
    });
    let auth = auth(f, credentials_dir);
    let ca_file = f.nonblank("ca_file");
    let timeout = f.duration("timeout");
    Ok(Config {
        host: host?.to_string(),
        port: port?,
        tls: tls?,
        username: username?.to_string(),
        auth: auth?,
        ca_file: ca_file?.map(|c| CaFile::new(c, credentials_dir)),
        timeout: timeout?.unwrap_or(DEFAULT_TIMEOUT),
    })
}

/// `password` or `oauth_token_file`, exactly one.
fn auth(f: &mut Fields<'_>, credentials_dir: &Path) -> Result<Auth, Recorded> {
    let (password, token_file) = (f.str("password"), f.str("oauth_token_file"));
    match (password?, token_file?) {
        (Some(_), Some(_)) => Err(f.key_error(
            "oauth_token_file",
            "set either `password` or `oauth_token_file`, not both".into(),
        )),
        (None, None) => Err(f.missing(
            "missing `password` (a Gmail app password) or `oauth_token_file` (an OAuth token \
             file in credentials/)"
                .into(),
        )),
        (Some(""), None) => Err(f.value_error("password", "`password` is empty".into())),
        (Some(p), None) => Ok(Auth::Password(Secret::from(p.to_string()))),
        (None, Some(t)) if t.trim().is_empty() => {
            Err(f.value_error("oauth_token_file", "`oauth_token_file` is empty".into()))
        }
        (None, Some(t)) => Ok(Auth::OAuth {
            path: credentials_dir.join(t),
            rel: relative_name(t),
        }),
    }
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
            .map(|e| e.to_string())
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

    #[test]
    fn every_problem_at_once_one_line_each() {
        assert_eq!(
            parse_err("username = \" \"\nport = 0\ntls = \"ssl\"\n"),
            "credentials/gmail.toml: missing `password` (a Gmail app password) or \
             `oauth_token_file` (an OAuth token file in credentials/)\n\
             credentials/gmail.toml:1:12: `username` is empty\n\
             credentials/gmail.toml:2:8: `port` must be 1 to 65535, not 0\n\
             credentials/gmail.toml:3:7: `tls` must be \"tls\", \"starttls\" or \"none\", not \"ssl\""
        );
        // A misspelt key stands for the missing one: it is not reported twice.
        assert_eq!(
            parse_err("username = \"u\"\npasword = \"p\"\n"),
            "credentials/gmail.toml:2:1: unknown key `pasword` (known: host, port, tls, \
             username, password, oauth_token_file, ca_file, timeout)"
        );
    }

    #[test]
    fn a_missing_or_invalid_file_says_what_to_do() {
        let vault = tempfile::tempdir().expect("tempdir");
        let path = vault.path().join(CREDENTIALS_FILE);
        let err = load(vault.path()).err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "no credentials: create {} (IMAP host, username and an app password or OAuth \
                 token file); see docs/gmail.md, or run: ai-employee setup gmail",
                path.display()
            ))
        );
        std::fs::create_dir(vault.path().join("credentials")).expect("mkdir");
        std::fs::write(&path, "password = \"p\"\n").expect("write");
        let err = load(vault.path()).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("credentials/gmail.toml: missing `username`")
        );
    }
}
