//! A stand-in for the GitHub REST API on loopback, behind the same interface the real
//! one has for what the product uses: `GET /repos/{o}/{r}/issues` (state and label
//! filters, `per_page`/`page` pagination with `Link` headers, weak ETags and 304 for
//! `If-None-Match`, pull requests listed among the issues), the issue comments endpoint
//! (`GET` lists, `POST` creates: 201 with `id` and `html_url`), the bearer token checked
//! (401 `Bad credentials` otherwise), and the primary rate limit (`x-ratelimit-*`
//! headers; a 304 costs nothing; no request left → 403 `API rate limit exceeded` until
//! the reset), and `GET /user` (the token's account). Every request is logged with its
//! time.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{HttpRequest, read_http_request};

pub const TOKEN: &str = "github_pat_11TEST0-not-in-logs-5f2c";
pub const OWNER: &str = "acme";
pub const REPO: &str = "widgets";
/// The account the token belongs to (`GET /user`).
pub const LOGIN: &str = "acme-bot";

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub at: SystemTime,
    pub if_none_match: Option<String>,
    pub body: String,
}

/// A scripted answer, sent instead of the normal one.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Default)]
pub struct Hub {
    /// Every issue and pull request of acme/widgets, any state.
    pub issues: Vec<Value>,
    /// The most items per page, whatever `per_page` asks.
    pub page_size: usize,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds since the epoch.
    pub reset: u64,
    /// Answers to listing requests before the normal ones.
    pub script: VecDeque<Scripted>,
    pub log: Vec<Seen>,
    pub comments: BTreeMap<u64, Vec<Value>>,
    next_comment_id: u64,
    /// Record a POSTed comment, then hold the connection without an answer.
    pub hold_posts: bool,
    /// Record this many POSTed comments, then close the connection without an answer.
    pub drop_post_replies: u32,
}

pub struct StandIn {
    pub port: u16,
    pub hub: Arc<Mutex<Hub>>,
    stop: Arc<AtomicBool>,
}

pub fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An open issue (labels by name).
pub fn issue(number: u64, title: &str, body: &str, labels: &[&str]) -> Value {
    json!({
        "id": 1000 + number,
        "node_id": format!("I_kwDO{number}"),
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}"),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/issues/{number}"),
        "number": number,
        "state": "open",
        "title": title,
        "body": body,
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": labels.iter().map(|l| json!({"id": 7, "name": l, "color": "f29513", "default": false})).collect::<Vec<_>>(),
        "assignees": [],
        "comments": 0,
        "created_at": format!("2026-03-{:02}T10:00:00Z", 1 + number % 28),
        "updated_at": "2026-03-30T10:00:00Z",
        "author_association": "OWNER",
    })
}

/// A pull request as the issues listing shows it.
pub fn pull_request(number: u64, title: &str, labels: &[&str]) -> Value {
    let mut v = issue(number, title, "a PR", labels);
    v["pull_request"] = json!({
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}"),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{number}"),
    });
    v
}

impl StandIn {
    pub fn start(issues: Vec<Value>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let port = listener.local_addr().expect("addr").port();
        let hub = Arc::new(Mutex::new(Hub {
            issues,
            page_size: 100,
            limit: 5000,
            remaining: 5000,
            reset: epoch() + 3600,
            next_comment_id: 9000,
            ..Hub::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hub.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, s) = (h.clone(), s.clone());
                std::thread::spawn(move || serve(conn, port, &h, &s));
            }
        });
        StandIn { port, hub, stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("hub lock")
    }

    /// The requests so far.
    pub fn log(&self) -> Vec<Seen> {
        self.hub().log.clone()
    }

    /// Listing requests so far.
    pub fn listings(&self) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.path.ends_with("/issues"))
            .collect()
    }

    pub fn posts(&self) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.method == "POST")
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn etag_of(body: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("W/\"{:016x}\"", h.finish())
}

fn respond(conn: &mut TcpStream, status: u16, headers: &[(String, String)], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

fn serve(mut conn: TcpStream, port: u16, hub: &Mutex<Hub>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_http_request(&conn) else {
        return;
    };
    let (status, headers, body, hold, drop_reply) = answer(&req, port, hub);
    {
        let mut h = hub.lock().expect("hub lock");
        h.log.push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            status,
            at: SystemTime::now(),
            if_none_match: req.header("if-none-match").map(str::to_string),
            body: req.body.clone(),
        });
    }
    if hold {
        // As a server that took the comment and then hangs: no answer until the client
        // goes away or the stand-in stops.
        for _ in 0..600 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    if drop_reply {
        let _ = conn.shutdown(std::net::Shutdown::Both);
        return;
    }
    respond(&mut conn, status, &headers, &body);
}

type Answer = (u16, Vec<(String, String)>, String, bool, bool);

fn answer(req: &HttpRequest, port: u16, hub: &Mutex<Hub>) -> Answer {
    let mut h = hub.lock().expect("hub lock");
    let json_err = |status: u16, msg: &str| -> Answer {
        (
            status,
            vec![],
            json!({"message": msg, "documentation_url": "https://docs.github.com/rest"})
                .to_string(),
            false,
            false,
        )
    };
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return json_err(401, "Bad credentials");
    }
    // The primary rate limit: a new window after the reset.
    let now = epoch();
    if now >= h.reset {
        h.remaining = h.limit;
        h.reset = now + 3600;
    }
    let rate = |h: &Hub| {
        vec![
            ("x-ratelimit-limit".to_string(), h.limit.to_string()),
            ("x-ratelimit-remaining".to_string(), h.remaining.to_string()),
            ("x-ratelimit-reset".to_string(), h.reset.to_string()),
            ("x-ratelimit-resource".to_string(), "core".to_string()),
        ]
    };
    if h.remaining == 0 {
        let mut a = json_err(403, "API rate limit exceeded for user ID 1.");
        a.1 = rate(&h);
        return a;
    }
    if req.path == "/user" && req.method == "GET" {
        let body = json!({"login": LOGIN, "id": 1}).to_string();
        return (200, rate(&h), body, false, false);
    }
    let prefix = format!("/repos/{OWNER}/{REPO}/issues");
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return json_err(404, "Not Found");
    };
    if rest.is_empty() && req.method == "GET" {
        if let Some(s) = h.script.pop_front() {
            h.remaining = h.remaining.saturating_sub(1);
            let mut headers = rate(&h);
            headers.extend(s.headers);
            return (s.status, headers, s.body, false, false);
        }
        let state = query_value(&req.query, "state")
            .unwrap_or("open")
            .to_string();
        let label = query_value(&req.query, "labels").map(decode);
        let per_page: usize = query_value(&req.query, "per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        let per_page = per_page.min(h.page_size).max(1);
        let page: usize = query_value(&req.query, "page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1);
        let mut listed: Vec<&Value> = h
            .issues
            .iter()
            .filter(|i| i["state"] == state)
            .filter(|i| match &label {
                Some(l) => i["labels"]
                    .as_array()
                    .is_some_and(|ls| ls.iter().any(|x| x["name"] == l.as_str())),
                None => true,
            })
            .collect();
        listed.sort_by_key(|i| i["number"].as_u64());
        let start = (page - 1) * per_page;
        let slice: Vec<&Value> = listed.iter().skip(start).take(per_page).copied().collect();
        let body = serde_json::to_string(&slice).expect("json");
        let etag = etag_of(&body);
        let mut headers = vec![("ETag".to_string(), etag.clone())];
        if start + per_page < listed.len() {
            let q: Vec<String> = req
                .query
                .split('&')
                .filter(|kv| !kv.starts_with("page="))
                .map(str::to_string)
                .chain(std::iter::once(format!("page={}", page + 1)))
                .collect();
            headers.push((
                "Link".to_string(),
                format!(
                    "<http://127.0.0.1:{port}{}?{}>; rel=\"next\", <http://127.0.0.1:{port}{}?page=999>; rel=\"last\"",
                    req.path,
                    q.join("&"),
                    req.path
                ),
            ));
        }
        if req.header("if-none-match") == Some(etag.as_str()) {
            // Not modified: no rate limit spent.
            let mut headers = headers;
            headers.extend(rate(&h));
            return (304, headers, String::new(), false, false);
        }
        h.remaining = h.remaining.saturating_sub(1);
        headers.extend(rate(&h));
        return (200, headers, body, false, false);
    }
    // /{n}/comments
    let Some(n) = rest
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix("/comments"))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return json_err(404, "Not Found");
    };
    if !h.issues.iter().any(|i| i["number"] == n) {
        return json_err(404, "Not Found");
    }
    h.remaining = h.remaining.saturating_sub(1);
    match req.method.as_str() {
        "GET" => {
            let list = h.comments.get(&n).cloned().unwrap_or_default();
            let mut headers = rate(&h);
            headers.push(("ETag".into(), etag_of(&format!("{list:?}"))));
            (200, headers, Value::Array(list).to_string(), false, false)
        }
        "POST" => {
            let Ok(v) = serde_json::from_str::<Value>(&req.body) else {
                return json_err(400, "Problems parsing JSON");
            };
            let Some(text) = v["body"].as_str() else {
                return json_err(422, "Validation Failed");
            };
            h.next_comment_id += 1;
            let id = h.next_comment_id;
            let comment = json!({
                "id": id,
                "html_url": format!("https://github.com/{OWNER}/{REPO}/issues/{n}#issuecomment-{id}"),
                "body": text,
                "user": {"login": "ai-employee-bot"},
                "created_at": "2026-04-01T00:00:00Z",
            });
            h.comments.entry(n).or_default().push(comment.clone());
            let hold = h.hold_posts;
            let drop_reply = h.drop_post_replies > 0;
            if drop_reply {
                h.drop_post_replies -= 1;
            }
            (201, rate(&h), comment.to_string(), hold, drop_reply)
        }
        _ => json_err(404, "Not Found"),
    }
}
