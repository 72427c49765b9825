//! `credentials/smtp.toml`, `credentials/whatsapp.toml` and `credentials/github.toml`: how
//! to reach the outside world.
//! The SMTP login is a password or an OAuth2 token file (XOAUTH2, `oauth_token_file`),
//! read through [`TokenSource`].
//!
//! All are optional, each enables one action (`send_email`, `send_whatsapp`,
//! `github_comment`); a file
//! that is missing or invalid disables only its action. They are re-read when they change
//! (size, mtime, inode), so adding or fixing one needs no restart. Secrets are kept in [`Secret`], whose `Debug` and
//! `Display` never show the value.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ai_employee_vault::credentials::Secret;
use ai_employee_vault::credentials::{
    Fields, MAIL_SERVER_KEYS, host_of, is_loopback, warn_if_open,
};
use ai_employee_vault::github::{self, GithubCredentials};
use ai_employee_vault::layout::Folder;
use ai_employee_vault::oauth::TokenSource;
use ai_employee_vault::tls::CaFile;
use ai_employee_vault::toml_fields::{Diagnostics, Recorded};
use lettre::message::Mailbox;
use toml_edit::Value;

/// `Folder::Credentials.rel("smtp.toml")`, as a constant.
pub const SMTP_FILE: &str = "credentials/smtp.toml";
/// `Folder::Credentials.rel("whatsapp.toml")`, as a constant.
pub const WHATSAPP_FILE: &str = "credentials/whatsapp.toml";
pub const DEFAULT_WHATSAPP_BASE_URL: &str = "https://graph.facebook.com/v21.0";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (loopback hosts only when a password is set).
    None,
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// `username` and `password` (AUTH PLAIN or LOGIN).
    pub login: Option<(String, Secret)>,
    /// `username` and `oauth_token_file` (AUTH XOAUTH2); never together with `login`.
    pub oauth: Option<OauthLogin>,
    pub from: Mailbox,
    pub timeout: Duration,
    pub dry_run: bool,
    /// Extra trusted root certificates (PEM), besides the public roots.
    pub ca_file: Option<CaFile>,
}

/// XOAUTH2 login: the account and its token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthLogin {
    pub user: String,
    /// As written in `smtp.toml`: relative to `credentials/`.
    pub token_file: String,
}

impl OauthLogin {
    /// The token file of this login in `vault`.
    pub fn source(&self, vault: &Path) -> TokenSource {
        TokenSource::new(
            vault.join(Folder::Credentials).join(&self.token_file),
            Folder::Credentials.rel(&self.token_file),
        )
    }
}

#[derive(Debug, Clone)]
pub struct WhatsappConfig {
    pub token: Secret,
    pub phone_number_id: String,
    pub base_url: String,
    pub timeout: Duration,
    pub dry_run: bool,
}

/// One credentials file as last read.
#[derive(Debug, Clone)]
pub enum Loaded<T> {
    Missing,
    /// The file exists but holds none of this action's keys (`whatsapp.toml` with only
    /// the webhook watcher's settings); the text says what is missing.
    Unset(String),
    Invalid(String),
    Ready(T),
}

/// What a parser makes of a credentials file: `Ok(None)` when it holds none of the
/// action's keys.
type Parser<T> = fn(&str, &str) -> Result<Option<T>, Diagnostics>;

/// A credentials file, re-read when it changes on disk.
#[derive(Debug)]
pub struct Channel<T> {
    rel: &'static str,
    path: PathBuf,
    sig: Option<(u64, i64, i64, u64)>,
    loaded: Loaded<T>,
    parse: Parser<T>,
}

impl<T> Channel<T> {
    fn new(vault: &Path, rel: &'static str, parse: Parser<T>) -> Self {
        let mut c = Channel {
            rel,
            path: vault.join(rel),
            sig: None,
            loaded: Loaded::Missing,
            parse,
        };
        c.refresh();
        c
    }

    /// Vault-relative name, for messages.
    pub fn rel(&self) -> &'static str {
        self.rel
    }

    /// The current contents (re-read first if the file changed).
    pub fn current(&mut self) -> &Loaded<T> {
        self.refresh();
        &self.loaded
    }

    fn refresh(&mut self) {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        // Never through a symlink (see `credentials::open_file`).
        let opened = ai_employee_vault::credentials::open_file(
            &self.path,
            ai_employee_vault::nofollow::How::READ,
        );
        let meta = match opened.and_then(|f| Ok((f.metadata()?, f))) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.sig = None;
                self.loaded = Loaded::Missing;
                return;
            }
            Err(e) => {
                self.sig = None;
                self.loaded = Loaded::Invalid(format!("{}: cannot read: {e}", self.rel));
                return;
            }
        };
        let (meta, mut file) = meta;
        let sig = (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.len());
        if self.sig == Some(sig) {
            return;
        }
        self.sig = Some(sig);
        warn_if_open(self.rel, meta.mode());
        let mut text = String::new();
        self.loaded = match file.read_to_string(&mut text).map(|_| text) {
            Ok(text) => match (self.parse)(self.rel, &text) {
                Ok(Some(v)) => Loaded::Ready(v),
                Ok(None) => Loaded::Unset(self.unset_keys()),
                // One line: the reason goes into an approval's `error` and a Dashboard row.
                Err(e) => Loaded::Invalid(e.one_line()),
            },
            Err(e) => Loaded::Invalid(format!("{}: cannot read: {e}", self.rel)),
        };
    }
}

/// Every channel the handler knows.
#[derive(Debug)]
pub struct Credentials {
    pub smtp: Channel<SmtpConfig>,
    pub whatsapp: Channel<WhatsappConfig>,
    pub github: Channel<GithubCredentials>,
    vault: PathBuf,
}

impl Credentials {
    pub fn load(vault: &Path) -> Credentials {
        Credentials {
            smtp: Channel::new(vault, SMTP_FILE, |rel, text| {
                parse_smtp(rel, text).map(Some)
            }),
            whatsapp: Channel::new(vault, WHATSAPP_FILE, parse_whatsapp_if_set),
            github: Channel::new(vault, github::CREDENTIALS_FILE, |rel, text| {
                github::parse(rel, text).map(Some)
            }),
            vault: vault.to_path_buf(),
        }
    }

    /// Every secret currently loaded (for redaction of error text).
    pub fn secrets(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Loaded::Ready(c) = &self.smtp.loaded
            && let Some((_, p)) = &c.login
        {
            v.push(p.expose().to_string());
        }
        if let Loaded::Ready(c) = &self.whatsapp.loaded {
            v.push(c.token.expose().to_string());
        }
        if let Loaded::Ready(c) = &self.github.loaded {
            v.push(c.token.expose().to_string());
        }
        v
    }

    /// Which actions can run now, each with its [`ActionState`]. LinkedIn posts,
    /// payments and `run_task` need no credentials and are always enabled.
    pub fn actions(&mut self, dry_run: bool) -> Vec<(&'static str, ActionState)> {
        let vault = self.vault.clone();
        let email = match self.smtp.current() {
            Loaded::Ready(c) => match &c.oauth {
                Some(o) => o
                    .source(&vault)
                    .check()
                    .map(|()| None)
                    .map_err(|e| NotEnabled::Invalid(e.to_string())),
                None => Ok(None),
            },
            other => channel_state(other, SMTP_FILE, dry_run),
        };
        let whatsapp = channel_state(self.whatsapp.current(), WHATSAPP_FILE, dry_run);
        let github = channel_state(self.github.current(), github::CREDENTIALS_FILE, dry_run);
        vec![
            ("linkedin_post", Ok(None)),
            ("payment", Ok(None)),
            ("run_task", Ok(None)),
            ("send_email", email),
            ("send_whatsapp", whatsapp),
            ("github_comment", github),
        ]
    }
}

/// `Ok(note)`: enabled (the note says "dry run" when it will only be rehearsed for want of
/// credentials); `Err`: not enabled, and why.
pub type ActionState = Result<Option<&'static str>, NotEnabled>;

/// Why an action is not enabled: its credentials file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEnabled {
    #[error("{0} does not exist")]
    Missing(&'static str),
    /// The file holds none of the action's keys.
    #[error("{rel} has no {keys}, only other keys")]
    Unset { rel: &'static str, keys: String },
    /// The file's problems on one line, or its OAuth token file's.
    #[error("{0}")]
    Invalid(String),
}

/// [`Credentials::actions`] for one file that is not ready (or is).
fn channel_state<T>(loaded: &Loaded<T>, rel: &'static str, dry_run: bool) -> ActionState {
    match loaded {
        Loaded::Ready(_) => Ok(None),
        Loaded::Missing if dry_run => Ok(Some("dry run")),
        Loaded::Missing => Err(NotEnabled::Missing(rel)),
        Loaded::Unset(keys) => Err(NotEnabled::Unset {
            rel,
            keys: keys.clone(),
        }),
        Loaded::Invalid(e) => Err(NotEnabled::Invalid(e.clone())),
    }
}

impl<T> Channel<T> {
    /// The keys an [`Loaded::Unset`] file lacks, for messages.
    fn unset_keys(&self) -> String {
        match self.rel {
            WHATSAPP_FILE => "`token` and `phone_number_id`".to_string(),
            _ => "settings for this action".to_string(),
        }
    }
}

/// The keys of `smtp.toml` besides [`MAIL_SERVER_KEYS`].
const SMTP_KEYS: &[&str] = &["from", "timeout", "dry_run", "ca_file"];

/// `tls`, in the order messages list them.
const TLS_MODES: &[(&str, TlsMode)] = &[
    ("none", TlsMode::None),
    ("starttls", TlsMode::StartTls),
    ("tls", TlsMode::Tls),
];

/// Parse `credentials/smtp.toml`. Unknown keys are errors (a typo must not silently
/// drop the password).
pub fn parse_smtp(rel: &str, text: &str) -> Result<SmtpConfig, Diagnostics> {
    Fields::read(rel, text, read_smtp)
}

fn read_smtp(f: &mut Fields<'_>) -> Result<SmtpConfig, Recorded> {
    f.only_keys(&[MAIL_SERVER_KEYS, SMTP_KEYS].concat());
    let host = f.host(None);
    let tls = f.choice("tls", TLS_MODES, "starttls");
    let port = f.port(match tls {
        Ok(TlsMode::None) => 25,
        Ok(TlsMode::StartTls) | Err(_) => 587,
        Ok(TlsMode::Tls) => 465,
    });
    let login = smtp_login(f);
    if let (Ok(host), Ok(TlsMode::None), Ok((login, oauth))) = (host, tls, &login)
        && (login.is_some() || oauth.is_some())
        && !is_loopback(host)
    {
        let what = if oauth.is_some() {
            "the OAuth token"
        } else {
            "the password"
        };
        f.value_error(
            "tls",
            format!(
                "tls = \"none\" would send {what} unencrypted to {host}: use \"starttls\" \
                 or \"tls\" (\"none\" is allowed with a login only for a loopback host)"
            ),
        );
    }
    let from = f.required_str("from").and_then(|text| {
        text.parse::<Mailbox>().map_err(|_| {
            f.value_error(
                "from",
                format!("`from` is not an email address: {text:?} (e.g. \"Me <me@example.com>\")"),
            )
        })
    });
    // Relative to credentials/: joined when the email is sent.
    let ca_file = f.nonblank("ca_file");
    let timeout = f.duration("timeout");
    let dry_run = f.boolean("dry_run");
    let (login, oauth) = login?;
    Ok(SmtpConfig {
        host: host?.to_string(),
        port: port?,
        tls: tls?,
        login,
        oauth,
        from: from?,
        timeout: timeout?.unwrap_or(DEFAULT_TIMEOUT),
        dry_run: dry_run?.unwrap_or(false),
        ca_file: ca_file?.map(|c| CaFile::new(c, Path::new(""))),
    })
}

/// A password login (AUTH PLAIN or LOGIN), an OAuth one, or neither.
type Login = (Option<(String, Secret)>, Option<OauthLogin>);

/// The SMTP login: `username` with a `password` (AUTH PLAIN or LOGIN), or with an
/// `oauth_token_file` (XOAUTH2), or neither.
fn smtp_login(f: &mut Fields<'_>) -> Result<Login, Recorded> {
    let (username, password, token_file) = (
        f.str("username"),
        f.str("password"),
        f.str("oauth_token_file"),
    );
    match (username?, password?, token_file?) {
        (_, Some(_), Some(_)) => Err(f.key_error(
            "oauth_token_file",
            "`oauth_token_file` and `password` cannot both be set: choose one way to log in".into(),
        )),
        (Some(u), Some(p), None) => Ok((Some((u.to_string(), Secret::from(p.to_string()))), None)),
        (Some(u), None, Some(t)) => {
            let oauth = OauthLogin {
                user: u.to_string(),
                token_file: token_file_name(f, t)?,
            };
            Ok((None, Some(oauth)))
        }
        (None, None, None) => Ok((None, None)),
        (None, None, Some(_)) => Err(f.lacking(
            "oauth_token_file",
            "`oauth_token_file` is set but `username` (the mail account) is not".into(),
        )),
        (Some(_), None, None) => Err(f.lacking(
            "username",
            "`username` is set but neither `password` nor `oauth_token_file` is".into(),
        )),
        (None, Some(_), None) => {
            Err(f.lacking("password", "`password` is set but `username` is not".into()))
        }
    }
}

/// `oauth_token_file`: a file name or path inside `credentials/`.
fn token_file_name(f: &mut Fields<'_>, name: &str) -> Result<String, Recorded> {
    use std::path::Component;
    let p = Path::new(name);
    let inside = !name.trim().is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(f.value_error(
            "oauth_token_file",
            format!(
                "`oauth_token_file` must name a file in credentials/ (e.g. \"token.json\"), not {name:?}"
            ),
        ));
    }
    Ok(name.to_string())
}

/// Whether a `whatsapp.toml` has any key this handler uses (`token`, `access_token`,
/// `phone_number_id`); without, it is the WhatsApp webhook watcher's file, written as
/// docs/whatsapp.md asks, before sending was set up.
fn whatsapp_is_set(f: &Fields<'_>) -> bool {
    ["token", "access_token", "phone_number_id"]
        .iter()
        .any(|k| f.has(k))
}

/// Parse `credentials/whatsapp.toml`, or `Ok(None)` for a file with none of the keys
/// this handler uses (see [`whatsapp_is_set`]). Keys this handler does not use are left
/// alone: the WhatsApp webhook watcher keeps its own settings (app secret, verify token)
/// in the same file.
pub fn parse_whatsapp_if_set(rel: &str, text: &str) -> Result<Option<WhatsappConfig>, Diagnostics> {
    Fields::read(rel, text, |f| {
        if whatsapp_is_set(f) {
            read_whatsapp(f).map(Some)
        } else {
            Ok(None)
        }
    })
}

/// Parse `credentials/whatsapp.toml` (as [`parse_whatsapp_if_set`] does when the file
/// has a key of this handler's).
#[cfg(test)]
fn parse_whatsapp(rel: &str, text: &str) -> Result<WhatsappConfig, Diagnostics> {
    Fields::read(rel, text, read_whatsapp)
}

fn read_whatsapp(f: &mut Fields<'_>) -> Result<WhatsappConfig, Recorded> {
    let token_key = if f.has("token") {
        "token"
    } else {
        "access_token"
    };
    let token = match f.str(token_key) {
        Ok(Some(t)) if t.trim().is_empty() => {
            Err(f.value_error(token_key, "the token is empty".into()))
        }
        Ok(Some(t)) => Ok(Secret::from(t.to_string())),
        Ok(None) => Err(f.missing("missing `token` (the WhatsApp Cloud API access token)".into())),
        Err(e) => Err(e),
    };
    let phone_number_id = phone_number_id(f);
    let base_url = whatsapp_base_url(f);
    let timeout = f.duration("timeout");
    let dry_run = f.boolean("dry_run");
    Ok(WhatsappConfig {
        token: token?,
        phone_number_id: phone_number_id?,
        base_url: base_url?,
        timeout: timeout?.unwrap_or(DEFAULT_TIMEOUT),
        dry_run: dry_run?.unwrap_or(false),
    })
}

/// `phone_number_id`: the sender's ID, digits (as a string or an integer).
fn phone_number_id(f: &mut Fields<'_>) -> Result<String, Recorded> {
    let id = match f.value("phone_number_id") {
        None => {
            return Err(f.missing(
                "missing `phone_number_id` (the sender's phone number ID from Meta's app \
                 dashboard, not the phone number)"
                    .into(),
            ));
        }
        Some(Value::String(s)) => s.value().trim().to_string(),
        Some(Value::Integer(i)) => i.value().to_string(),
        Some(_) => {
            return Err(f.value_error(
                "phone_number_id",
                "`phone_number_id` must be a string of digits".into(),
            ));
        }
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(f.value_error(
            "phone_number_id",
            format!("`phone_number_id` must be digits only, not {id:?}"),
        ));
    }
    Ok(id)
}

/// `base_url`: https:// (http:// only for a loopback stand-in), without a trailing `/`.
fn whatsapp_base_url(f: &mut Fields<'_>) -> Result<String, Recorded> {
    let base_url = f
        .str("base_url")?
        .unwrap_or(DEFAULT_WHATSAPP_BASE_URL)
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(f.value_error(
            "base_url",
            format!("`base_url` must start with https:// (or http:// for a local stand-in), not {base_url:?}"),
        ));
    }
    if base_url.starts_with("http://") && !host_of(&base_url).is_some_and(is_loopback) {
        return Err(f.value_error(
            "base_url",
            "`base_url` with http:// would send the token unencrypted: only a loopback host may use it".into(),
        ));
    }
    Ok(base_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_files_are_in_the_credentials_folder() {
        assert_eq!(SMTP_FILE, Folder::Credentials.rel("smtp.toml"));
        assert_eq!(WHATSAPP_FILE, Folder::Credentials.rel("whatsapp.toml"));
    }

    /// Each case's text is refused with exactly its message.
    fn assert_errors<T: std::fmt::Debug>(
        parse: fn(&str, &str) -> Result<T, Diagnostics>,
        rel: &str,
        cases: &[(&str, &str)],
    ) {
        for (text, want) in cases {
            let got = parse(rel, text).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(*want), "{text}");
        }
    }

    const GOOD: &str = "host = \"smtp.example.com\"\nport = 587\ntls = \"starttls\"\nusername = \"me@example.com\"\npassword = \"hunter2-xyz\"\nfrom = \"Me <me@example.com>\"\n";

    #[test]
    fn a_full_smtp_file() {
        let c = parse_smtp(SMTP_FILE, GOOD).expect("valid");
        assert_eq!(c.host, "smtp.example.com");
        assert_eq!(c.port, 587);
        assert_eq!(c.tls, TlsMode::StartTls);
        assert_eq!(c.from.email.to_string(), "me@example.com");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn smtp_defaults_follow_the_tls_mode() {
        let c = parse_smtp(
            SMTP_FILE,
            "host = \"127.0.0.1\"\ntls = \"tls\"\nfrom = \"a@b.c\"\n",
        )
        .expect("valid");
        assert_eq!(c.port, 465);
        assert!(c.login.is_none());
    }

    #[test]
    fn smtp_errors_name_the_file_line_and_column() {
        let cases = [
            (
                "host = \"h\"\nfrom = \"a@b.c\"\npasword = \"x\"\n",
                "credentials/smtp.toml:3:1: unknown key `pasword` (known: host, port, tls, username, password, oauth_token_file, from, timeout, dry_run, ca_file)",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nport = 70000\n",
                "credentials/smtp.toml:3:8: `port` must be 1 to 65535, not 70000",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nport = \"587\"\n",
                "credentials/smtp.toml:3:8: `port` must be an integer, found a string",
            ),
            (
                "host = \"h\"\nfrom = \"nobody\"\n",
                "credentials/smtp.toml:2:8: `from` is not an email address: \"nobody\" (e.g. \"Me <me@example.com>\")",
            ),
            (
                "from = \"a@b.c\"\n",
                "credentials/smtp.toml: missing `host`",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"\n",
                "credentials/smtp.toml:3:7: `tls` must be \"none\", \"starttls\" or \"tls\", not \"ssl\"",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\n",
                "credentials/smtp.toml:3:1: `username` is set but neither `password` nor `oauth_token_file` is",
            ),
            (
                "host = \"smtp.example.com\"\nfrom = \"a@b.c\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\n",
                "credentials/smtp.toml:3:7: tls = \"none\" would send the password unencrypted to smtp.example.com: use \"starttls\" or \"tls\" (\"none\" is allowed with a login only for a loopback host)",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\ntimeout = \"soon\"\n",
                "credentials/smtp.toml:3:11: `timeout`: invalid duration \"soon\" (expected e.g. \"500ms\", \"30s\", \"5m\", \"1h\", \"1d\" or \"1m30s\")",
            ),
            (
                "host = [\n",
                "credentials/smtp.toml:1:9: invalid TOML: unclosed array, expected `]`",
            ),
        ];
        assert_errors(parse_smtp, SMTP_FILE, &cases);
    }

    #[test]
    fn smtp_oauth_login() {
        let c = parse_smtp(
            SMTP_FILE,
            "host = \"smtp.gmail.com\"\nusername = \"me@gmail.com\"\noauth_token_file = \"token.json\"\nfrom = \"me@gmail.com\"\n",
        )
        .expect("valid");
        assert!(c.login.is_none());
        let oauth = c.oauth.expect("oauth login");
        assert_eq!(oauth.user, "me@gmail.com");
        assert_eq!(oauth.token_file, "token.json");
        let src = oauth.source(Path::new("/v"));
        assert_eq!(src.path(), Path::new("/v/credentials/token.json"));
        let cases = [
            (
                "host = \"h\"\nfrom = \"a@b.c\"\noauth_token_file = \"token.json\"\n",
                "credentials/smtp.toml:3:1: `oauth_token_file` is set but `username` (the mail account) is not",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\npassword = \"p\"\noauth_token_file = \"t.json\"\n",
                "credentials/smtp.toml:5:1: `oauth_token_file` and `password` cannot both be set: choose one way to log in",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\noauth_token_file = \"../token.json\"\n",
                "credentials/smtp.toml:4:20: `oauth_token_file` must name a file in credentials/ (e.g. \"token.json\"), not \"../token.json\"",
            ),
            (
                "host = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\noauth_token_file = \"/etc/token.json\"\n",
                "credentials/smtp.toml:4:20: `oauth_token_file` must name a file in credentials/ (e.g. \"token.json\"), not \"/etc/token.json\"",
            ),
            (
                "host = \"smtp.gmail.com\"\nfrom = \"a@b.c\"\ntls = \"none\"\nusername = \"u\"\noauth_token_file = \"t.json\"\n",
                "credentials/smtp.toml:3:7: tls = \"none\" would send the OAuth token unencrypted to smtp.gmail.com: use \"starttls\" or \"tls\" (\"none\" is allowed with a login only for a loopback host)",
            ),
        ];
        assert_errors(parse_smtp, SMTP_FILE, &cases);
    }

    #[test]
    fn whatsapp_file_and_its_errors() {
        let c = parse_whatsapp(
            WHATSAPP_FILE,
            "token = \"EAAB-secret\"\nphone_number_id = 1234567890\napp_secret = \"other watcher's\"\n",
        )
        .expect("valid");
        assert_eq!(c.phone_number_id, "1234567890");
        assert_eq!(c.base_url, DEFAULT_WHATSAPP_BASE_URL);
        assert!(!format!("{c:?}").contains("EAAB"));
        let cases = [
            (
                "phone_number_id = \"1\"\n",
                "credentials/whatsapp.toml: missing `token` (the WhatsApp Cloud API access token)",
            ),
            (
                "token = \"t\"\n",
                "credentials/whatsapp.toml: missing `phone_number_id` (the sender's phone number ID from Meta's app dashboard, not the phone number)",
            ),
            (
                "token = \"t\"\nphone_number_id = \"+1 415\"\n",
                "credentials/whatsapp.toml:2:19: `phone_number_id` must be digits only, not \"+1 415\"",
            ),
            (
                "token = \"t\"\nphone_number_id = \"1\"\nbase_url = \"http://example.com\"\n",
                "credentials/whatsapp.toml:3:12: `base_url` with http:// would send the token unencrypted: only a loopback host may use it",
            ),
        ];
        assert_errors(parse_whatsapp, WHATSAPP_FILE, &cases);
        // The webhook watcher's keys only: not set up for sending (not an error).
        assert!(
            parse_whatsapp_if_set(WHATSAPP_FILE, "app_secret = \"s\"\nverify_token = \"v\"\n")
                .expect("not an error")
                .is_none()
        );
        assert_eq!(
            parse_whatsapp_if_set(WHATSAPP_FILE, "app_secret = \"s\"\ntoken = \"t\"\n")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some(
                "credentials/whatsapp.toml: missing `phone_number_id` (the sender's phone number ID from Meta's app dashboard, not the phone number)"
            )
        );
        let local = parse_whatsapp(
            WHATSAPP_FILE,
            "token = \"t\"\nphone_number_id = \"1\"\nbase_url = \"http://127.0.0.1:8080/v21.0/\"\n",
        )
        .expect("loopback http is fine");
        assert_eq!(local.base_url, "http://127.0.0.1:8080/v21.0");
    }

    #[test]
    fn every_problem_of_a_file_at_once() {
        let text = "host = \"h\"\nport = 0\ntls = \"ssl\"\nfrom = \"nobody\"\npasword = \"x\"\n";
        let want = [
            "credentials/smtp.toml:2:8: `port` must be 1 to 65535, not 0",
            "credentials/smtp.toml:3:7: `tls` must be \"none\", \"starttls\" or \"tls\", not \"ssl\"",
            "credentials/smtp.toml:4:8: `from` is not an email address: \"nobody\" (e.g. \"Me <me@example.com>\")",
            "credentials/smtp.toml:5:1: unknown key `pasword` (known: host, port, tls, username, password, oauth_token_file, from, timeout, dry_run, ca_file)",
        ];
        let got = parse_smtp(SMTP_FILE, text).err().map(|e| e.to_string());
        assert_eq!(got, Some(want.join("\n")));
        // A misspelt `password` is not also reported as missing.
        let cases = [(
            "host = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\npasword = \"x\"\n",
            "credentials/smtp.toml:4:1: unknown key `pasword` (known: host, port, tls, username, password, oauth_token_file, from, timeout, dry_run, ca_file)",
        )];
        assert_errors(parse_smtp, SMTP_FILE, &cases);
        // The handler keeps them on one line: they go into an approval's `error` field.
        let vault = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(vault.path().join("credentials")).expect("mkdir");
        std::fs::write(vault.path().join(SMTP_FILE), text).expect("write");
        let mut creds = Credentials::load(vault.path());
        match creds.smtp.current() {
            Loaded::Invalid(e) => assert_eq!(*e, want.join("; ")),
            other => panic!("{other:?}"),
        }
        // A token without a phone number ID and a bad URL: both, the missing key first.
        let cases = [(
            "token = \"t\"\nbase_url = \"ftp://x\"\n",
            "credentials/whatsapp.toml: missing `phone_number_id` (the sender's phone number ID from Meta's app dashboard, not the phone number)\n\
             credentials/whatsapp.toml:2:12: `base_url` must start with https:// (or http:// for a local stand-in), not \"ftp://x\"",
        )];
        assert_errors(parse_whatsapp, WHATSAPP_FILE, &cases);
    }
}
