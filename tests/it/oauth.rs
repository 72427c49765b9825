//! OAuth2 token files (`watchers/vault/src/oauth.rs`) against a real HTTP token endpoint
//! stand-in on 127.0.0.1 ([`TokenServer`], also used by the mail watcher's and the approval
//! handler's tests): refresh, the lock between racing users of one file, refused grants, a
//! dead or hanging endpoint, and secrets kept out of error messages.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ai_employee_vault::credentials::Secret;
use ai_employee_vault::oauth::{OauthError, TokenSource, xoauth2_response};
use serde_json::{Value, json};

use crate::common::{HttpRequest, read_http_request, wait_until};

// ---------------------------------------------------------------------------------------
// The token endpoint stand-in.
// ---------------------------------------------------------------------------------------

/// The OAuth client the stand-in accepts.
pub const CLIENT_ID: &str = "1234-test.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "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gs";

/// A Google-like OAuth2 token endpoint on 127.0.0.1 (a free port), with an introspection
/// endpoint for servers that check the tokens it issued (Dovecot's oauth2 passdb, the
/// SMTP fixture).
///
/// - `POST /token` (form: `grant_type=refresh_token`, `refresh_token`, `client_id`,
///   `client_secret`): a new access token for the refresh token's user, valid for
///   `set_expires_in` seconds (default 3599). Unknown or revoked refresh token: 400
///   `invalid_grant`; wrong client: 401 `invalid_client`.
/// - any other path (`/introspect`, `/tokeninfo`, …), GET or POST, with the token as
///   `token=` or `access_token=` (query string or form body) or as
///   `Authorization: Bearer`: `{"active": true, "username", "email", …}` for a token it
///   issued that has not expired or been revoked, `{"active": false}` otherwise.
pub struct TokenServer {
    port: u16,
    state: Arc<Mutex<State>>,
    refreshes: Arc<AtomicUsize>,
    introspections: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct State {
    /// access token → (user, valid until).
    access: HashMap<String, (String, Instant)>,
    /// refresh token → user.
    refresh: HashMap<String, String>,
    expires_in: u64,
    failing: Option<u16>,
    counter: u64,
}

/// A process-wide counter so tokens differ across servers in one test binary.
static MINTED: AtomicU64 = AtomicU64::new(0);

impl State {
    fn mint(&mut self, user: &str) -> String {
        self.counter += 1;
        let n = MINTED.fetch_add(1, Ordering::Relaxed);
        let token = format!(
            "ya29.test-{n}-{}-{:x}",
            self.counter,
            crate::common::now_ns()
        );
        let until = Instant::now() + Duration::from_secs(self.expires_in);
        self.access.insert(token.clone(), (user.to_string(), until));
        token
    }
}

impl TokenServer {
    /// Listen on a free loopback port.
    pub fn start() -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            access: HashMap::new(),
            refresh: HashMap::new(),
            expires_in: 3599,
            failing: None,
            counter: 0,
        }));
        let refreshes = Arc::new(AtomicUsize::new(0));
        let introspections = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            state: state.clone(),
            refreshes: refreshes.clone(),
            introspections: introspections.clone(),
            hang: hang.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
        TokenServer {
            port,
            state,
            refreshes,
            introspections,
            hang,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `token_uri` for token files.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The introspection endpoint (append `?token=` for servers that add the token to the
    /// URL).
    pub fn introspect_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    /// Refresh requests answered so far (successful or not, hung ones included).
    pub fn refresh_count(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Introspection requests answered so far.
    pub fn introspect_count(&self) -> usize {
        self.introspections.load(Ordering::SeqCst)
    }

    /// Lifetime of the access tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().expect("lock").expires_in = secs;
    }

    /// Answer every refresh with this HTTP status (and a JSON error) instead; `None`: work.
    pub fn set_failing(&self, status: Option<u16>) {
        self.state.lock().expect("lock").failing = status;
    }

    /// Read refresh requests but never answer them (until set back to false).
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }

    /// Mint a valid access token for `user` (for an initial token file).
    pub fn issue_for(&self, user: &str) -> String {
        self.state.lock().expect("lock").mint(user)
    }

    /// A refresh token the endpoint accepts for `user`.
    pub fn refresh_token_for(&self, user: &str) -> String {
        let mut st = self.state.lock().expect("lock");
        st.counter += 1;
        let token = format!("1//refresh-{}-{}-not-in-logs", st.counter, user);
        st.refresh.insert(token.clone(), user.to_string());
        token
    }

    /// Refresh tokens are refused from now on (`invalid_grant`), as after the user revoked
    /// access.
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().expect("lock").refresh.clear();
    }

    /// Access tokens issued so far are no longer active (introspection says so), while
    /// the files still think them valid.
    pub fn revoke_access_tokens(&self) {
        self.state.lock().expect("lock").access.clear();
    }

    /// Is `token` one this server issued, still valid?
    pub fn is_active(&self, token: &str) -> bool {
        active_user(&self.state, token).is_some()
    }

    /// A token file as google-auth writes it for `user`: a fresh refresh token, and an
    /// access token valid `valid_for` seconds more (an already expired one when negative;
    /// then the endpoint does not know it either), plus fields this product does not use.
    pub fn token_json(&self, user: &str, valid_for: i64) -> String {
        let refresh = self.refresh_token_for(user);
        let token = if valid_for > 0 {
            let mut st = self.state.lock().expect("lock");
            let saved = st.expires_in;
            st.expires_in = valid_for as u64;
            let t = st.mint(user);
            st.expires_in = saved;
            t
        } else {
            format!("ya29.expired-{}", crate::common::now_ns())
        };
        let expiry = chrono::Utc::now() + chrono::Duration::seconds(valid_for);
        let v = json!({
            "token": token,
            "refresh_token": refresh,
            "token_uri": self.token_url(),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["https://mail.google.com/"],
            "universe_domain": "googleapis.com",
            "account": "",
            "expiry": expiry.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        });
        v.to_string()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hang.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    refreshes: Arc<AtomicUsize>,
    introspections: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn active_user(state: &Mutex<State>, token: &str) -> Option<String> {
    let st = state.lock().expect("lock");
    st.access
        .get(token)
        .filter(|(_, until)| Instant::now() < *until)
        .map(|(user, _)| user.clone())
}

/// One request per connection (`Connection: close`).
fn serve(mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_http_request(&conn) else {
        return;
    };
    let (status, body) = if req.path == "/token" {
        shared.refreshes.fetch_add(1, Ordering::SeqCst);
        if shared.hang.load(Ordering::SeqCst) {
            // Hold the connection without answering until told otherwise.
            while shared.hang.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        refresh(&req, &shared.state)
    } else {
        shared.introspections.fetch_add(1, Ordering::SeqCst);
        introspect(&req, &shared.state)
    };
    let resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes());
    let _ = conn.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn refresh(req: &HttpRequest, state: &Mutex<State>) -> (u16, String) {
    let form = parse_form(&req.body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let mut st = state.lock().expect("lock");
    if let Some(status) = st.failing {
        // Echo what was sent, as a careless server might: it must not reach messages.
        let body = json!({
            "error": "temporarily_unavailable",
            "error_description": "try again later",
            "debug": format!("refresh_token={} client_secret={}", get("refresh_token"), get("client_secret")),
        });
        return (status, body.to_string());
    }
    if req.method != "POST" || get("grant_type") != "refresh_token" {
        return (400, json!({"error": "unsupported_grant_type"}).to_string());
    }
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return (
            401,
            json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})
                .to_string(),
        );
    }
    let Some(user) = st.refresh.get(get("refresh_token")).cloned() else {
        return (
            400,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                .to_string(),
        );
    };
    let token = st.mint(&user);
    let body = json!({
        "access_token": token,
        "expires_in": st.expires_in,
        "scope": "https://mail.google.com/",
        "token_type": "Bearer",
    });
    (200, body.to_string())
}

fn introspect(req: &HttpRequest, state: &Mutex<State>) -> (u16, String) {
    let mut fields = parse_form(&req.query);
    fields.extend(parse_form(&req.body));
    let bearer = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = fields
        .get("token")
        .or_else(|| fields.get("access_token"))
        .cloned()
        .or(bearer)
        .unwrap_or_default();
    match active_user(state, &token) {
        Some(user) => (
            200,
            json!({"active": true, "username": user, "email": user, "scope": "https://mail.google.com/"})
                .to_string(),
        ),
        None => (200, json!({"active": false}).to_string()),
    }
}

/// `a=b&c=d`, percent- and `+`-decoded.
fn parse_form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

const USER: &str = "owner@example.com";
const REL: &str = "credentials/token.json";

/// A `credentials/` folder with a token file (mode 0600) and its TokenSource.
struct Setup {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Setup {
    fn new(json: &str) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("aie-oauth-")
            .tempdir()
            .expect("tempdir");
        let creds = dir.path().join("credentials");
        std::fs::create_dir(&creds).expect("mkdir");
        let path = creds.join("token.json");
        std::fs::write(&path, json).expect("write token file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Setup { dir, path }
    }

    fn source(&self) -> TokenSource {
        TokenSource::new(self.path.clone(), REL.to_string())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.path).expect("read")).expect("json")
    }

    fn mode(&self) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&self.path)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    }
}

/// The refresh token, client secret and any access token of `file` do not occur in `msg`.
fn assert_no_secrets(msg: &str, file: &Value) {
    for key in ["token", "refresh_token", "client_secret"] {
        let secret = file[key].as_str().unwrap_or("");
        assert!(
            secret.is_empty() || !msg.contains(secret),
            "{key} leaked into: {msg}"
        );
    }
    assert!(
        !msg.contains(CLIENT_SECRET),
        "client secret leaked into: {msg}"
    );
    assert!(
        !msg.contains("1//refresh"),
        "refresh token leaked into: {msg}"
    );
    assert!(!msg.contains("ya29."), "access token leaked into: {msg}");
}

#[test]
fn a_valid_token_is_used_without_calling_the_endpoint() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, 3600));
    let before = std::fs::read(&s.path).expect("read");
    let stored = s.json()["token"].as_str().expect("token").to_string();
    for _ in 0..3 {
        let token = s.source().access_token().expect("token");
        assert_eq!(token.expose(), stored);
    }
    assert_eq!(server.refresh_count(), 0);
    assert_eq!(
        std::fs::read(&s.path).expect("read"),
        before,
        "file untouched"
    );
    assert!(s.source().check().is_ok());
}

#[test]
fn an_expired_token_is_refreshed_once_and_written_back_keeping_mode_and_fields() {
    let server = TokenServer::start();
    let mut file: Value = serde_json::from_str(&server.token_json(USER, -30)).expect("json");
    file["quota_project_id"] = json!("my-project");
    let s = Setup::new(&file.to_string());
    let old = file["token"].as_str().expect("token").to_string();

    let token = s.source().access_token().expect("refreshed");
    assert_ne!(token.expose(), old);
    assert!(
        server.is_active(token.expose()),
        "a token the endpoint issued"
    );
    assert_eq!(server.refresh_count(), 1);

    let now = s.json();
    assert_eq!(now["token"].as_str(), Some(token.expose()));
    let expiry = chrono::DateTime::parse_from_rfc3339(now["expiry"].as_str().expect("expiry"))
        .expect("rfc 3339 expiry");
    let left = expiry.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(3500) && left <= chrono::Duration::seconds(3600),
        "{left}"
    );
    for key in [
        "refresh_token",
        "client_id",
        "client_secret",
        "token_uri",
        "scopes",
        "universe_domain",
        "account",
        "quota_project_id",
    ] {
        assert_eq!(now[key], file[key], "{key} kept");
    }
    assert_eq!(s.mode(), 0o600, "still private");
    let lock = s.path.with_file_name(".token.json.lock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&lock)
            .expect("lock file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let names: Vec<String> = std::fs::read_dir(s.path.parent().expect("dir"))
        .expect("ls")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".tmp-")),
        "no temp file left: {names:?}"
    );

    // Now valid: used as is.
    let again = s.source().access_token().expect("token");
    assert_eq!(again, token);
    assert_eq!(server.refresh_count(), 1);
}

#[test]
fn a_token_with_less_than_a_minute_left_is_refreshed() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, 30));
    let old = s.json()["token"].as_str().expect("token").to_string();
    let token = s.source().access_token().expect("refreshed");
    assert_ne!(token.expose(), old);
    assert_eq!(server.refresh_count(), 1);
}

#[test]
fn a_file_without_expiry_counts_as_expired_and_access_token_is_read_as_token() {
    let server = TokenServer::start();
    let mut file: Value = serde_json::from_str(&server.token_json(USER, 3600)).expect("json");
    let obj = file.as_object_mut().expect("object");
    obj.remove("expiry");
    let old = obj.remove("token").expect("token");
    obj.insert("access_token".into(), old.clone());
    let s = Setup::new(&file.to_string());
    let token = s.source().access_token().expect("refreshed");
    assert_ne!(Some(token.expose()), old.as_str());
    assert_eq!(server.refresh_count(), 1);
    let now = s.json();
    assert_eq!(now["token"].as_str(), Some(token.expose()));
    assert_eq!(now["access_token"].as_str(), Some(token.expose()));
    assert!(now["expiry"].is_string());
}

#[test]
fn eight_racing_users_of_one_file_call_the_endpoint_once() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, -30));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            // Each its own TokenSource: its own lock file descriptor, as another process.
            let source = s.source();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                source.access_token()
            })
        })
        .collect();
    let tokens: Vec<Secret> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("token"))
        .collect();
    assert_eq!(server.refresh_count(), 1, "exactly one refresh");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all got the same token"
    );
    assert_eq!(s.json()["token"].as_str(), Some(tokens[0].expose()));
}

#[test]
fn refresh_rejected_refreshes_unless_another_user_already_did() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, 3600));
    let first = s.source().access_token().expect("stored token");
    server.revoke_access_tokens();
    assert!(!server.is_active(first.expose()));

    let second = s.source().refresh_rejected(&first).expect("refreshed");
    assert_ne!(second, first);
    assert!(server.is_active(second.expose()));
    assert_eq!(server.refresh_count(), 1);

    // Another user of the file saw `first` refused too, a moment later: it gets the token
    // already refreshed, without a second call.
    let third = s.source().refresh_rejected(&first).expect("token");
    assert_eq!(third, second);
    assert_eq!(server.refresh_count(), 1);
    assert_eq!(s.source().access_token().expect("token"), second);
}

#[test]
fn a_refused_grant_or_client_is_unusable_naming_the_file() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, -30));
    server.revoke_refresh_tokens();
    let file = s.json();
    match s.source().access_token() {
        Err(OauthError::Unusable(msg)) => {
            assert!(msg.starts_with("credentials/token.json: "), "{msg}");
            assert!(msg.contains("invalid_grant"), "{msg}");
            assert!(msg.contains("docs/oauth.md"), "{msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
            assert_no_secrets(&msg, &file);
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&s.path).expect("read"),
        file.to_string(),
        "unchanged"
    );

    let mut wrong: Value = serde_json::from_str(&server.token_json(USER, -30)).expect("json");
    wrong["client_secret"] = json!("GOCSPX-wrong-secret");
    let s = Setup::new(&wrong.to_string());
    match s.source().access_token() {
        Err(OauthError::Unusable(msg)) => {
            assert!(msg.contains("invalid_client"), "{msg}");
            assert!(!msg.contains("GOCSPX-wrong-secret"), "{msg}");
            assert_no_secrets(&msg, &wrong);
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
}

#[test]
fn server_errors_and_rate_limits_are_transient_and_never_echo_secrets() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, -30));
    let file = s.json();
    for status in [500, 503, 429] {
        server.set_failing(Some(status));
        match s.source().access_token() {
            Err(OauthError::Transient(msg)) => {
                assert!(msg.starts_with("credentials/token.json: "), "{msg}");
                assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
                assert!(msg.contains("temporarily_unavailable"), "{msg}");
                assert_no_secrets(&msg, &file);
            }
            other => panic!("expected Transient for {status}, got {other:?}"),
        }
    }
    server.set_failing(None);
    let token = s.source().access_token().expect("works again");
    assert!(server.is_active(token.expose()));
}

#[test]
fn an_endpoint_that_is_down_is_transient_at_once() {
    let server = TokenServer::start();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut file: Value = serde_json::from_str(&server.token_json(USER, -30)).expect("json");
    file["token_uri"] = json!(format!("http://127.0.0.1:{port}/token"));
    let s = Setup::new(&file.to_string());
    let start = Instant::now();
    match s.source().access_token() {
        Err(OauthError::Transient(msg)) => {
            assert!(msg.starts_with("credentials/token.json: "), "{msg}");
            assert!(msg.contains(&port.to_string()), "names the endpoint: {msg}");
            assert_no_secrets(&msg, &file);
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_hanging_endpoint_is_transient_within_the_timeout() {
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, -30));
    server.set_hang(true);
    let source = s.source().with_timeout(Duration::from_millis(800));
    let start = Instant::now();
    let got = source.access_token();
    let took = start.elapsed();
    match got {
        Err(OauthError::Transient(msg)) => assert_no_secrets(&msg, &s.json()),
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        server.refresh_count(),
        1,
        "the request reached the endpoint"
    );

    // The lock was released: the next call (endpoint back) succeeds.
    server.set_hang(false);
    let token = s.source().access_token().expect("token");
    assert!(server.is_active(token.expose()));
}

#[test]
fn a_waiting_user_gets_the_token_refreshed_by_the_lock_holder() {
    // One user hangs in the endpoint while holding the lock; another waits for the lock,
    // then finds the refreshed token without a call of its own.
    let server = TokenServer::start();
    let s = Setup::new(&server.token_json(USER, -30));
    server.set_hang(true);
    let holder = {
        let src = s.source();
        std::thread::spawn(move || src.access_token())
    };
    assert!(wait_until(Duration::from_secs(10), || server
        .refresh_count()
        == 1));
    let waiter = {
        let src = s.source();
        std::thread::spawn(move || src.access_token())
    };
    server.set_hang(false);
    let held = holder.join().expect("thread");
    assert!(matches!(held, Err(OauthError::Transient(_))), "{held:?}");
    // The hung call failed without writing, so the waiter refreshes once itself.
    let token = waiter.join().expect("thread").expect("token");
    assert_eq!(server.refresh_count(), 2);
    assert!(server.is_active(token.expose()));
}

#[test]
fn check_names_the_file_and_what_is_wrong() {
    let server = TokenServer::start();
    let good: Value = serde_json::from_str(&server.token_json(USER, 3600)).expect("json");
    let cases: Vec<(String, &str)> = vec![
        ("{\"token\": \"ya29.x\"".to_string(), "invalid JSON"),
        ("[1, 2]".to_string(), "expected a JSON object"),
        (
            {
                let mut v = good.clone();
                v.as_object_mut().expect("object").remove("refresh_token");
                v.to_string()
            },
            "missing `refresh_token`",
        ),
        (
            {
                let mut v = good.clone();
                v.as_object_mut().expect("object").remove("client_secret");
                v.to_string()
            },
            "missing `client_secret`",
        ),
        (
            {
                let mut v = good.clone();
                v["token_uri"] = json!("http://oauth2.example.com/token");
                v.to_string()
            },
            "`token_uri` must start with https://",
        ),
    ];
    for (text, want) in cases {
        let s = Setup::new(&text);
        let e = s.source().check().expect_err(want).to_string();
        assert!(e.starts_with("credentials/token.json: "), "{e}");
        assert!(e.contains(want), "{e} should say {want}");
        assert!(!e.contains('\n'), "one line: {e}");
        assert_no_secrets(&e, &good);
        assert!(matches!(
            s.source().access_token(),
            Err(OauthError::Unusable(_))
        ));
    }
    let s = Setup::new(&good.to_string());
    std::fs::remove_file(&s.path).expect("rm");
    let e = s.source().check().expect_err("missing").to_string();
    assert!(e.starts_with("credentials/token.json: not found"), "{e}");
    assert!(e.contains("docs/oauth.md"), "{e}");
    assert_eq!(server.refresh_count(), 0);
}

#[test]
fn introspection_knows_issued_tokens_only() {
    let server = TokenServer::start();
    let token = server.issue_for(USER);
    let ask = |url: String, body: Option<String>| -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = match body {
            Some(b) => agent
                .post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(&b)
                .expect("post"),
            None => agent.get(&url).call().expect("get"),
        };
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json")
    };
    let yes = ask(server.introspect_url(), Some(format!("token={token}")));
    assert_eq!(yes["active"], json!(true));
    assert_eq!(yes["username"], json!(USER));
    assert_eq!(yes["email"], json!(USER));
    let yes = ask(
        format!("{}?access_token={token}", server.introspect_url()),
        None,
    );
    assert_eq!(yes["active"], json!(true));
    let no = ask(server.introspect_url(), Some("token=ya29.made-up".into()));
    assert_eq!(no, json!({"active": false}));
    server.revoke_access_tokens();
    let no = ask(server.introspect_url(), Some(format!("token={token}")));
    assert_eq!(no["active"], json!(false));
    assert_eq!(server.introspect_count(), 4);
    // The XOAUTH2 response carries the token as the server will see it.
    let resp = xoauth2_response(USER, &Secret::from(token.clone()));
    assert_eq!(resp, format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
}

/// Tokens expire on the server at the time it said.
#[test]
fn tokens_expire_on_the_server_as_announced() {
    let server = TokenServer::start();
    server.set_expires_in(1);
    let token = server.issue_for(USER);
    assert!(server.is_active(&token));
    assert!(wait_until(Duration::from_secs(5), || !server.is_active(&token)));
}
