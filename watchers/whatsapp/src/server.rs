//! The HTTP side: the GET verification handshake and signed POST deliveries.
//!
//! | Request | Answer |
//! |---|---|
//! | GET with `hub.mode=subscribe` and the right `hub.verify_token` | 200, `hub.challenge` as plain text |
//! | GET otherwise | 403 (400 without a challenge) |
//! | POST larger than `--max-body` | 413 |
//! | POST whose body takes longer than `--body-timeout` | 408, connection closed |
//! | POST without a valid `X-Hub-Signature-256` | 401 |
//! | POST that is not JSON | 400 |
//! | POST, valid | 200 once its tasks are durable; 500 if they could not be written |
//!
//! Checks run in that order: size, signature, JSON. Nothing a client sends stops the
//! server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::conns::{ConnMark, Shared};
use super::credentials::WebhookSecrets;
use super::keywords::Keywords;
use super::payload;
use super::task::{self, Priority};
use super::writer::WriterHandle;

/// Longest `hub.challenge` echoed back (Meta sends a number).
const MAX_CHALLENGE: usize = 1024;

/// What every request needs.
pub struct App {
    pub secrets: WebhookSecrets,
    pub keywords: Keywords,
    pub high: Keywords,
    pub max_body: usize,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
    /// The connections (for the slow-client log).
    pub conns: Arc<Shared>,
    pub writer: WriterHandle,
}

pub fn router(path: &str, app: Arc<App>) -> Router {
    Router::new()
        .route(path, get(verify).post(receive))
        .with_state(app)
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// GET: Meta's subscription handshake.
async fn verify(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (k, v) in query_pairs(uri.query().unwrap_or("")) {
        match k.as_str() {
            "hub.mode" => mode = Some(v),
            "hub.verify_token" => token = Some(v),
            "hub.challenge" => challenge = Some(v),
            _ => {}
        }
    }
    let token_ok = token.is_some_and(|t| {
        constant_time_eq(t.as_bytes(), app.secrets.verify_token.expose().as_bytes())
    });
    if mode.as_deref() != Some("subscribe") || !token_ok {
        tracing::warn!(
            "refused a verification request (403): {}",
            if mode.as_deref() != Some("subscribe") {
                "hub.mode is not \"subscribe\""
            } else {
                "wrong hub.verify_token"
            }
        );
        return text(StatusCode::FORBIDDEN, "forbidden\n");
    }
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE => {
            tracing::info!("webhook verified (subscription handshake answered)");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                c,
            )
                .into_response()
        }
        _ => text(StatusCode::BAD_REQUEST, "missing hub.challenge\n"),
    }
}

/// POST: a delivery of messages and status updates.
async fn receive(
    State(app): State<Arc<App>>,
    conn: Option<Extension<ConnMark>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Utc::now();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        tracing::warn!("refused a delivery over {} bytes (413)", app.max_body);
        return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
    }
    let capacity = declared.map_or(0, |n| n as usize);
    let read = read_capped(body, app.max_body, capacity);
    let bytes = match tokio::time::timeout(app.body_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(ReadError::TooLarge)) => {
            tracing::warn!("refused a delivery over {} bytes (413)", app.max_body);
            return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Ok(Err(ReadError::Broken)) => {
            return text(StatusCode::BAD_REQUEST, "could not read the body\n");
        }
        Err(_) => {
            app.conns.slow().body_timeout();
            // The rest of the body may still come: the connection cannot be reused.
            return (
                StatusCode::REQUEST_TIMEOUT,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CONNECTION, "close"),
                ],
                "body too slow\n",
            )
                .into_response();
        }
    };
    // The request is complete: its connection is no longer closed to make room.
    let _busy = conn.as_ref().map(|Extension(c)| c.busy());
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_ok(
        app.secrets.app_secret.expose().as_bytes(),
        &bytes,
        signature,
    ) {
        tracing::warn!(
            "refused a delivery with {} X-Hub-Signature-256 (401)",
            if signature.is_some() { "a wrong" } else { "no" }
        );
        return text(StatusCode::UNAUTHORIZED, "invalid signature\n");
    }
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("refused a signed delivery that is not JSON (400): {e}");
            return text(StatusCode::BAD_REQUEST, "malformed JSON\n");
        }
    };
    let delivery = payload::read(&json);
    for what in &delivery.ignored {
        tracing::debug!("ignored {what}");
    }
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    for m in &delivery.texts {
        let matched = app.keywords.matches(&m.text);
        if matched.is_empty() {
            tracing::debug!("message {} from {}: no keyword, no task", m.id, m.from);
            continue;
        }
        let priority = if app.high.matches(&m.text).is_empty() {
            Priority::Normal
        } else {
            Priority::High
        };
        tasks.push(task::build(m, &matched, priority, arrived));
        senders.push((m.id.clone(), m.from.clone()));
    }
    if tasks.is_empty() {
        return text(StatusCode::OK, "ok\n");
    }
    match app.writer.write(tasks).await {
        Ok(names) => {
            for ((id, from), name) in senders.iter().zip(names) {
                match name {
                    Some(name) => tracing::info!("new task {name} from {from} (message {id})"),
                    None => tracing::debug!("message {id} from {from} already has a task"),
                }
            }
            text(StatusCode::OK, "ok\n")
        }
        Err(e) => {
            tracing::error!("answered 500 so that Meta delivers again: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to store the task\n",
            )
        }
    }
}

enum ReadError {
    TooLarge,
    Broken,
}

/// The whole body, refusing more than `max` bytes however it is sent (with or without a
/// Content-Length).
async fn read_capped(body: Body, max: usize, capacity: usize) -> Result<Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(capacity.min(max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ReadError::Broken)?;
        if buf.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body keyed by the
/// app secret. The comparison is constant-time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Equal contents, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `a=1&b=x%20y` → `[("a","1"), ("b","x y")]` (form encoding: `+` is a space).
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| -> Option<u8> {
        let h = b.get(i..i + 2)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let Some(v) = hex(i + 1) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn signatures() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let good = sign("s3cret", body);
        assert!(signature_ok(b"s3cret", body, Some(&good)));
        assert!(signature_ok(
            b"s3cret",
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!signature_ok(b"other", body, Some(&good)));
        assert!(!signature_ok(b"s3cret", b"{}", Some(&good)));
        assert!(!signature_ok(b"s3cret", body, None));
        assert!(!signature_ok(
            b"s3cret",
            body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!signature_ok(
            b"s3cret",
            body,
            Some(&good[..good.len() - 2])
        ));
        assert!(!signature_ok(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_ok(b"s3cret", body, Some("sha256=")));
        // A sha1 header (X-Hub-Signature) is not accepted in its place.
        assert!(!signature_ok(b"s3cret", body, Some("sha1=00")));
    }

    #[test]
    fn queries() {
        assert_eq!(
            query_pairs("hub.mode=subscribe&hub.verify_token=a%20b%2Bc+d&hub.challenge=12&x"),
            vec![
                ("hub.mode".to_string(), "subscribe".to_string()),
                ("hub.verify_token".to_string(), "a b+c d".to_string()),
                ("hub.challenge".to_string(), "12".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+5"), "% 5");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
