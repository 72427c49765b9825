//! OAuth2 access tokens for IMAP and SMTP (XOAUTH2), shared by the mail watcher and the
//! approval handler.
//!
//! The token file is Google's "authorized user" JSON, as google-auth's
//! `Credentials.to_json()` writes it (the `token.json` of the Gmail Python quickstart):
//! `token`, `refresh_token`, `token_uri`, `client_id`, `client_secret`, `scopes`,
//! `expiry`. When the stored access token has less than [`MIN_VALIDITY`] left, it is
//! refreshed at `token_uri` and the file is rewritten atomically (unknown fields kept).
//!
//! Several processes may use the same file (the mail watcher and the approval handler).
//! A refresh happens under an exclusive `flock` on a sidecar file `.<name>.lock` next to
//! the token file (not on the token file itself: the atomic rewrite replaces its inode),
//! and the file is read again once the lock is held: if another process refreshed it
//! meanwhile, its token is used and the endpoint is not called again.
//!
//! Nothing here ever puts an access token, a refresh token or a client secret into an
//! error message or a log line.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::credentials::{Secret, host_of, is_loopback};

/// A stored access token is used only while it stays valid at least this much longer.
pub const MIN_VALIDITY: Duration = Duration::from_secs(60);

/// Default limit for one call to the token endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Lifetime assumed when the token endpoint does not say (`expires_in` missing).
const DEFAULT_EXPIRES_IN: i64 = 3600;

/// Longest lifetime believed (a larger `expires_in` is cut to this).
const MAX_EXPIRES_IN: i64 = 366 * 24 * 3600;

/// Where the user is told to look when the token cannot be used.
const DOCS: &str = "docs/oauth.md";

/// Access tokens from one token file.
#[derive(Debug, Clone)]
pub struct TokenSource {
    path: PathBuf,
    rel: String,
    timeout: Duration,
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OauthError {
    /// Not fixable by retrying (file missing/invalid, `invalid_grant`, `invalid_client`):
    /// exit 78 material. One line naming the file.
    #[error("{0}")]
    Unusable(String),
    /// Network error, timeout, 5xx, 429: retry later with backoff.
    #[error("{0}")]
    Transient(String),
}

/// What is wrong with the contents of a token file (the caller names the file).
#[derive(Debug, thiserror::Error)]
enum TokenFileError {
    /// serde_json's message names only the position and the kind of problem, never the
    /// text around it.
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("invalid token file: expected a JSON object")]
    NotAnObject,
    #[error("`{0}` must be a string")]
    NotAString(String),
    #[error("missing `{0}`")]
    Missing(String),
    #[error("`token_uri` is not a URL: {0}")]
    NotAUrl(String),
    #[error("`token_uri` must start with https:// (plain http only to this machine): {0}")]
    Insecure(String),
}

/// The XOAUTH2 initial client response, not base64-encoded:
/// `user=<user>\x01auth=Bearer <token>\x01\x01`.
pub fn xoauth2_response(user: &str, token: &Secret) -> String {
    format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose())
}

impl TokenSource {
    /// `path`: the token file; `rel`: how messages name it (e.g. "credentials/token.json").
    pub fn new(path: PathBuf, rel: String) -> TokenSource {
        TokenSource {
            path,
            rel,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The limit for one call to the token endpoint (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> TokenSource {
        self.timeout = timeout;
        self
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How messages name the token file.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Can the file be used? (exists, parses, has refresh_token, client_id, client_secret,
    /// token_uri). Err: one line naming the file and what is wrong (caller exits 78).
    pub fn check(&self) -> Result<(), OauthError> {
        self.read().map(|_| ())
    }

    /// A current access token: the stored one when valid for at least 60 s more, else
    /// refreshed under the lock (the file is read again once the lock is held: another
    /// process may have refreshed it) and written back atomically. Blocking (HTTP): async
    /// callers use `spawn_blocking`.
    pub fn access_token(&self) -> Result<Secret, OauthError> {
        let file = self.read()?;
        if let Some(token) = file.valid_token(Utc::now()) {
            return Ok(token);
        }
        let _lock = self.lock()?;
        let file = self.read()?;
        if let Some(token) = file.valid_token(Utc::now()) {
            tracing::debug!("{}: refreshed by another process meanwhile", self.rel);
            return Ok(token);
        }
        self.refresh(file)
    }

    /// The server refused `rejected`: refresh now, unless the file already holds a
    /// different token (another process refreshed meanwhile); then return that one.
    pub fn refresh_rejected(&self, rejected: &Secret) -> Result<Secret, OauthError> {
        let _lock = self.lock()?;
        let file = self.read()?;
        if let Some(token) = file.valid_token(Utc::now())
            && token != *rejected
        {
            tracing::debug!("{}: refreshed by another process meanwhile", self.rel);
            return Ok(token);
        }
        self.refresh(file)
    }

    fn unusable(&self, what: impl fmt::Display) -> OauthError {
        OauthError::Unusable(format!("{}: {what}", self.rel))
    }

    fn read(&self) -> Result<TokenFile, OauthError> {
        let text = match crate::credentials::read_file(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.unusable(format!(
                    "not found (create an OAuth token file: see {DOCS})"
                )));
            }
            Err(e) => return Err(self.unusable(format!("cannot read: {e}"))),
        };
        TokenFile::parse(&text).map_err(|e| self.unusable(e))
    }

    /// Take the exclusive lock on the sidecar file (blocks until it is free).
    fn lock(&self) -> Result<crate::sys::FileLock, OauthError> {
        let lock_path = lock_path(&self.path);
        let f = crate::credentials::open_file(&lock_path, crate::nofollow::How::read_write(0o600))
            .map_err(|e| self.unusable(format!("cannot open {}: {e}", lock_path.display())))?;
        crate::sys::lock(f).map_err(|e| {
            OauthError::Transient(format!(
                "{}: cannot lock {}: {e}",
                self.rel,
                lock_path.display()
            ))
        })
    }

    /// Call the token endpoint, write the new token back, return it. Called with the lock
    /// held.
    fn refresh(&self, mut file: TokenFile) -> Result<Secret, OauthError> {
        tracing::info!("{}: refreshing the access token", self.rel);
        let endpoint = format!("token endpoint {}", file.token_uri);
        let agent: ureq::Agent = crate::http::client(self.timeout).build().into();
        let sent = agent.post(&file.token_uri).send_form([
            ("grant_type", "refresh_token"),
            ("refresh_token", file.refresh_token.expose()),
            ("client_id", file.client_id.as_str()),
            ("client_secret", file.client_secret.expose()),
        ]);
        let mut response = sent.map_err(|e| {
            OauthError::Transient(format!(
                "{}: {endpoint}: {}",
                self.rel,
                file.scrub(&crate::http::error_text(&e))
            ))
        })?;
        let status = response.status().as_u16();
        let text = crate::http::reply_text(&mut response).map_err(|e| {
            OauthError::Transient(format!(
                "{}: {endpoint}: reading the reply: {}",
                self.rel,
                file.scrub(&crate::http::error_text(&e))
            ))
        })?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let now = Utc::now();
        let token = match classify(status, &reply) {
            Reply::Token(token) => token,
            Reply::Refused(reason) => {
                return Err(self.unusable(format!(
                    "{endpoint} refused the refresh token (HTTP {status}{}); create a new \
                     token file (see {DOCS})",
                    file.scrub(&reason)
                )));
            }
            Reply::Failed(reason) => {
                return Err(OauthError::Transient(format!(
                    "{}: {endpoint}: HTTP {status}{}",
                    self.rel,
                    file.scrub(&reason)
                )));
            }
        };
        file.update(&token, now);
        // A file that cannot be written does not make the new token less valid: use it,
        // and say why every refresh will call the endpoint again.
        let written = serde_json::to_vec_pretty(&file.map)
            .map_err(io::Error::other)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                crate::credentials::write_file(&self.path, &bytes)
            });
        if let Err(e) = written {
            tracing::warn!("{}: cannot write the refreshed token back: {e}", self.rel);
        }
        tracing::info!(
            "{}: access token refreshed, valid until {}",
            self.rel,
            format_expiry(token.expiry(now))
        );
        Ok(token.access_token)
    }
}

/// `<dir>/.<file name>.lock`.
fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".to_string());
    crate::atomic::parent_dir(path).join(format!(".{name}.lock"))
}

/// The token file, parsed; `map` keeps every field for the rewrite.
#[derive(Debug)]
struct TokenFile {
    map: Map<String, Value>,
    token: Option<Secret>,
    refresh_token: Secret,
    client_id: String,
    client_secret: Secret,
    token_uri: String,
    expiry: Option<DateTime<Utc>>,
}

impl TokenFile {
    fn parse(text: &str) -> Result<TokenFile, TokenFileError> {
        let value: Value = serde_json::from_str(text).map_err(TokenFileError::Json)?;
        let Value::Object(map) = value else {
            return Err(TokenFileError::NotAnObject);
        };
        let opt = |key: &str| -> Result<Option<String>, TokenFileError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(TokenFileError::NotAString(key.to_string())),
            }
        };
        let required = |key: &str| -> Result<String, TokenFileError> {
            opt(key)?.ok_or_else(|| TokenFileError::Missing(key.to_string()))
        };
        let token = match opt("token")? {
            Some(t) => Some(t),
            None => opt("access_token")?,
        };
        let refresh_token = required("refresh_token")?;
        let client_id = required("client_id")?;
        let client_secret = required("client_secret")?;
        let token_uri = required("token_uri")?;
        check_token_uri(&token_uri)?;
        let expiry = match map.get("expiry") {
            Some(Value::String(s)) => parse_expiry(s),
            _ => None,
        };
        Ok(TokenFile {
            token: token.map(Secret::from),
            refresh_token: Secret::from(refresh_token),
            client_id,
            client_secret: Secret::from(client_secret),
            token_uri,
            expiry,
            map,
        })
    }

    /// The stored access token if it stays valid at least [`MIN_VALIDITY`] after `now`.
    fn valid_token(&self, now: DateTime<Utc>) -> Option<Secret> {
        let token = self.token.as_ref()?;
        is_fresh(self.expiry, now).then(|| token.clone())
    }

    /// Store a new token from the endpoint in the map (and in the typed fields).
    fn update(&mut self, token: &NewToken, now: DateTime<Utc>) {
        let expiry = token.expiry(now);
        let access = Value::String(token.access_token.expose().to_string());
        self.map.insert("token".to_string(), access.clone());
        if self.map.contains_key("access_token") {
            self.map.insert("access_token".to_string(), access);
        }
        self.map
            .insert("expiry".to_string(), Value::String(format_expiry(expiry)));
        if let Some(r) = &token.refresh_token {
            self.map.insert(
                "refresh_token".to_string(),
                Value::String(r.expose().into()),
            );
            self.refresh_token = r.clone();
        }
        self.token = Some(token.access_token.clone());
        self.expiry = Some(expiry);
    }

    /// `text` with the secrets of this file replaced by `[redacted]`.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secrets = [
            self.token.as_ref().map(Secret::expose),
            Some(self.refresh_token.expose()),
            Some(self.client_secret.expose()),
        ];
        for s in secrets.into_iter().flatten() {
            if !s.is_empty() {
                out = out.replace(s, "[redacted]");
            }
        }
        out
    }
}

/// `https://…`, or `http://…` to a loopback host only.
fn check_token_uri(uri: &str) -> Result<(), TokenFileError> {
    let lower = uri.to_ascii_lowercase();
    let host = host_of(uri).unwrap_or("");
    if host.is_empty() {
        return Err(TokenFileError::NotAUrl(uri.to_string()));
    }
    if lower.starts_with("https://") || (lower.starts_with("http://") && is_loopback(host)) {
        Ok(())
    } else {
        Err(TokenFileError::Insecure(uri.to_string()))
    }
}

/// Valid at least [`MIN_VALIDITY`] after `now`? An unknown expiry counts as expired.
fn is_fresh(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let min = chrono::Duration::seconds(MIN_VALIDITY.as_secs() as i64);
    expiry.is_some_and(|e| e - now >= min)
}

/// google-auth writes `2026-01-07T10:30:00.123456Z` (naive UTC plus `Z`); older files may
/// lack the `Z` or carry an offset.
fn parse_expiry(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The format google-auth writes and reads.
fn format_expiry(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A token from the endpoint.
struct NewToken {
    access_token: Secret,
    expires_in: i64,
    refresh_token: Option<Secret>,
}

impl NewToken {
    fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::seconds(self.expires_in)
    }
}

/// What the token endpoint said.
enum Reply {
    Token(NewToken),
    /// The grant or the client is refused: a new token file is needed.
    Refused(String),
    /// Anything else: try again later.
    Failed(String),
}

/// Decide from the status and the JSON body (never keeping more of the body than the
/// `error` and `error_description` fields).
fn classify(status: u16, reply: &Value) -> Reply {
    let field = |k: &str| reply.get(k).and_then(Value::as_str).map(one_line);
    if (200..300).contains(&status) {
        let Some(access) = field("access_token").filter(|t| !t.is_empty()) else {
            return Reply::Failed(": the reply carries no access_token".to_string());
        };
        let expires_in = match reply.get("expires_in") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n| *n > 0)
        .map_or(DEFAULT_EXPIRES_IN, |n| n.min(MAX_EXPIRES_IN));
        return Reply::Token(NewToken {
            access_token: Secret::from(access),
            expires_in,
            refresh_token: field("refresh_token")
                .filter(|t| !t.is_empty())
                .map(Secret::from),
        });
    }
    let error = field("error");
    let reason = match (&error, field("error_description")) {
        (Some(e), Some(d)) => format!(": {e}: {d}"),
        (Some(e), None) => format!(": {e}"),
        _ => String::new(),
    };
    let refused = matches!(
        error.as_deref(),
        Some("invalid_grant" | "invalid_client" | "unauthorized_client")
    );
    if refused && matches!(status, 400 | 401) {
        Reply::Refused(reason)
    } else {
        Reply::Failed(reason)
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        parse_expiry(s).expect("valid time")
    }

    const FILE: &str = r#"{"token": "ya29.access", "refresh_token": "1//refresh",
        "token_uri": "https://oauth2.googleapis.com/token", "client_id": "id.apps",
        "client_secret": "GOCSPX-secret", "scopes": ["https://mail.google.com/"],
        "universe_domain": "googleapis.com", "account": "",
        "expiry": "2026-01-07T10:30:00.123456Z"}"#;

    #[test]
    fn parses_the_google_auth_file() {
        let f = TokenFile::parse(FILE).expect("parses");
        assert_eq!(f.token.as_ref().map(Secret::expose), Some("ya29.access"));
        assert_eq!(f.refresh_token.expose(), "1//refresh");
        assert_eq!(f.client_id, "id.apps");
        assert_eq!(f.client_secret.expose(), "GOCSPX-secret");
        assert_eq!(f.token_uri, "https://oauth2.googleapis.com/token");
        assert_eq!(f.expiry, Some(t("2026-01-07T10:30:00.123456+00:00")));
    }

    #[test]
    fn access_token_is_an_alias_of_token() {
        let f = TokenFile::parse(
            r#"{"access_token": "a", "refresh_token": "r", "client_id": "c",
               "client_secret": "s", "token_uri": "http://127.0.0.1:9/token"}"#,
        )
        .expect("parses");
        assert_eq!(f.token.as_ref().map(Secret::expose), Some("a"));
        assert_eq!(f.expiry, None);
    }

    #[test]
    fn missing_fields_are_named_without_secrets() {
        for key in ["refresh_token", "client_id", "client_secret", "token_uri"] {
            let mut v: Value = serde_json::from_str(FILE).expect("json");
            v.as_object_mut().expect("object").remove(key);
            let e = TokenFile::parse(&v.to_string())
                .expect_err("missing field")
                .to_string();
            assert_eq!(e, format!("missing `{key}`"));
        }
        let e = TokenFile::parse("{\"token\": \"ya29.x\"")
            .expect_err("bad json")
            .to_string();
        assert!(e.starts_with("invalid JSON"), "{e}");
        assert!(!e.contains("ya29"), "{e}");
        assert!(TokenFile::parse("[]").is_err());
        let e = TokenFile::parse(r#"{"refresh_token": 5}"#)
            .expect_err("wrong type")
            .to_string();
        assert_eq!(e, "`refresh_token` must be a string");
    }

    #[test]
    fn token_uri_must_be_https_or_loopback_http() {
        assert!(check_token_uri("https://oauth2.googleapis.com/token").is_ok());
        assert!(check_token_uri("http://127.0.0.1:8080/token").is_ok());
        assert!(check_token_uri("http://localhost/token").is_ok());
        assert!(check_token_uri("http://[::1]:80/token").is_ok());
        assert!(check_token_uri("http://oauth2.googleapis.com/token").is_err());
        assert!(check_token_uri("ftp://127.0.0.1/token").is_err());
        assert!(check_token_uri("token").is_err());
    }

    #[test]
    fn expiry_formats_are_read() {
        let want = t("2026-01-07T10:30:00Z");
        assert_eq!(parse_expiry("2026-01-07T10:30:00"), Some(want));
        assert_eq!(parse_expiry("2026-01-07T10:30:00Z"), Some(want));
        assert_eq!(parse_expiry("2026-01-07T11:30:00+01:00"), Some(want));
        assert_eq!(
            parse_expiry("2026-01-07T10:30:00.5Z"),
            Some(want + chrono::Duration::milliseconds(500))
        );
        assert_eq!(parse_expiry("tomorrow"), None);
        assert_eq!(
            format_expiry(t("2026-01-07T10:30:00.123456Z")),
            "2026-01-07T10:30:00.123456Z"
        );
        assert_eq!(parse_expiry(&format_expiry(want)), Some(want), "round trip");
    }

    #[test]
    fn a_token_is_used_only_with_a_minute_to_spare() {
        let now = t("2026-01-07T10:00:00Z");
        assert!(is_fresh(Some(t("2026-01-07T11:00:00Z")), now));
        assert!(is_fresh(Some(t("2026-01-07T10:01:00Z")), now));
        assert!(!is_fresh(Some(t("2026-01-07T10:00:59Z")), now));
        assert!(!is_fresh(Some(t("2026-01-07T09:00:00Z")), now));
        assert!(!is_fresh(None, now));

        let f = TokenFile::parse(FILE).expect("parses");
        assert!(f.valid_token(t("2026-01-07T10:00:00Z")).is_some());
        assert!(f.valid_token(t("2026-01-07T10:29:30Z")).is_none());
        let mut v: Value = serde_json::from_str(FILE).expect("json");
        v["expiry"] = json!("soon");
        let f = TokenFile::parse(&v.to_string()).expect("parses");
        assert!(
            f.valid_token(t("2000-01-01T00:00:00Z")).is_none(),
            "unknown = expired"
        );
        v["expiry"] = json!("2026-01-07T10:30:00Z");
        v.as_object_mut().expect("object").remove("token");
        let f = TokenFile::parse(&v.to_string()).expect("parses");
        assert!(
            f.valid_token(t("2000-01-01T00:00:00Z")).is_none(),
            "no token"
        );
    }

    #[test]
    fn update_keeps_unknown_fields() {
        let mut f = TokenFile::parse(FILE).expect("parses");
        let now = t("2026-01-07T12:00:00Z");
        f.update(
            &NewToken {
                access_token: Secret::from("ya29.new".to_string()),
                expires_in: 3599,
                refresh_token: None,
            },
            now,
        );
        assert_eq!(f.map["token"], json!("ya29.new"));
        assert_eq!(f.map["expiry"], json!("2026-01-07T12:59:59.000000Z"));
        assert_eq!(f.map["refresh_token"], json!("1//refresh"));
        assert_eq!(f.map["scopes"], json!(["https://mail.google.com/"]));
        assert_eq!(f.map["universe_domain"], json!("googleapis.com"));
        assert_eq!(f.map["account"], json!(""));
        assert!(!f.map.contains_key("access_token"));
        let again = TokenFile::parse(&Value::Object(f.map.clone()).to_string()).expect("parses");
        assert!(again.valid_token(now).is_some());

        f.update(
            &NewToken {
                access_token: Secret::from("ya29.newer".to_string()),
                expires_in: 60,
                refresh_token: Some(Secret::from("1//rotated".to_string())),
            },
            now,
        );
        assert_eq!(f.map["refresh_token"], json!("1//rotated"));
        assert_eq!(f.refresh_token.expose(), "1//rotated");
    }

    #[test]
    fn endpoint_replies_are_classified() {
        let ok = classify(200, &json!({"access_token": "ya29.x", "expires_in": 3599}));
        assert!(matches!(ok, Reply::Token(ref n) if n.expires_in == 3599
            && n.access_token.expose() == "ya29.x" && n.refresh_token.is_none()));
        let long = classify(200, &json!({"access_token": "a", "expires_in": i64::MAX}));
        assert!(matches!(long, Reply::Token(ref n) if n.expires_in == MAX_EXPIRES_IN));
        let ok = classify(200, &json!({"access_token": "a", "refresh_token": "r"}));
        assert!(
            matches!(ok, Reply::Token(ref n) if n.expires_in == DEFAULT_EXPIRES_IN
            && n.refresh_token.as_ref().map(Secret::expose) == Some("r"))
        );
        assert!(matches!(classify(200, &json!({})), Reply::Failed(_)));
        assert!(matches!(classify(200, &Value::Null), Reply::Failed(_)));

        let grant = json!({"error": "invalid_grant", "error_description": "Token has been\n expired or revoked."});
        match classify(400, &grant) {
            Reply::Refused(r) => {
                assert_eq!(r, ": invalid_grant: Token has been expired or revoked.")
            }
            _ => panic!("invalid_grant is refused"),
        }
        for e in ["invalid_client", "unauthorized_client"] {
            assert!(matches!(
                classify(401, &json!({"error": e})),
                Reply::Refused(_)
            ));
        }
        assert!(matches!(classify(503, &grant), Reply::Failed(_)));
        assert!(matches!(classify(429, &json!({})), Reply::Failed(_)));
        assert!(matches!(
            classify(400, &json!({"error": "invalid_request"})),
            Reply::Failed(_)
        ));
        match classify(500, &json!({"debug": "refresh_token=1//x"})) {
            Reply::Failed(r) => assert_eq!(r, "", "only error fields are kept"),
            _ => panic!("500 is a failure"),
        }
    }

    #[test]
    fn scrub_removes_the_secrets() {
        let f = TokenFile::parse(FILE).expect("parses");
        let s = f.scrub("ya29.access 1//refresh GOCSPX-secret id.apps");
        assert_eq!(s, "[redacted] [redacted] [redacted] id.apps");
    }

    #[test]
    fn xoauth2_initial_response() {
        let token = Secret::from("ya29.abc".to_string());
        assert_eq!(
            xoauth2_response("me@gmail.com", &token),
            "user=me@gmail.com\x01auth=Bearer ya29.abc\x01\x01"
        );
    }

    #[test]
    fn the_lock_is_a_hidden_sidecar() {
        assert_eq!(
            lock_path(Path::new("/v/credentials/token.json")),
            Path::new("/v/credentials/.token.json.lock")
        );
        assert_eq!(
            lock_path(Path::new("token.json")),
            Path::new("./.token.json.lock")
        );
    }

    #[test]
    fn errors_display_their_message() {
        let e = OauthError::Unusable("credentials/token.json: missing `client_id`".into());
        assert_eq!(e.to_string(), "credentials/token.json: missing `client_id`");
    }
}
