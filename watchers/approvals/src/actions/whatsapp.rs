//! `send_whatsapp`: one text message through the WhatsApp Cloud API,
//! `POST {base_url}/{phone_number_id}/messages` with a bearer token.
//!
//! Classification: no connection (DNS, refused, connect timeout) → transient; HTTP 429 and
//! 5xx → transient (Meta's documented "try again"); other 4xx → permanent; a failure after
//! the request was sent (timeout waiting for the reply, connection reset) → unknown, never
//! retried.

use std::time::Duration;

use serde_json::json;

use super::Outcome;
use super::{Action, Context, Creds, Plan, Refused, rehearsal};
use crate::credentials::WhatsappConfig;
use crate::outcome::results;
use crate::request::Whatsapp;

pub const NAME: &str = "send_whatsapp";

/// `send_whatsapp`: the message, and `credentials/whatsapp.toml` as it was when the
/// attempt started.
pub struct SendWhatsapp {
    msg: Whatsapp,
    creds: Creds<WhatsappConfig>,
    /// The credentials `prepare` accepted, for `perform`.
    ready: Option<WhatsappConfig>,
}

impl SendWhatsapp {
    pub fn new(msg: Whatsapp, creds: Creds<WhatsappConfig>) -> SendWhatsapp {
        SendWhatsapp {
            msg,
            creds,
            ready: None,
        }
    }
}

impl Action for SendWhatsapp {
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        let Some(cfg) = self.creds.ready(NAME, cx.dry_run)? else {
            return Ok(rehearsal());
        };
        self.ready = Some(cfg.clone());
        Ok(Plan {
            effect: None,
            message_id: None,
            rehearse: cfg.dry_run,
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        match &self.ready {
            Some(cfg) => send(cfg, &self.msg),
            None => super::unprepared(),
        }
    }

    fn result(&self) -> &'static str {
        results::SENT
    }
}

/// The request body Meta expects for a text message.
pub fn payload(msg: &Whatsapp) -> serde_json::Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": msg.to,
        "type": "text",
        "text": { "preview_url": false, "body": msg.body },
    })
}

pub fn send(cfg: &WhatsappConfig, msg: &Whatsapp) -> Outcome {
    let url = format!("{}/{}/messages", cfg.base_url, cfg.phone_number_id);
    let body = payload(msg).to_string();
    let (status, text, reply, api) = match call(cfg, &url, Some(&body)) {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };
    match status {
        200..=299 => {
            let id = reply
                .pointer("/messages/0/id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let mut fields = Vec::new();
            if !id.is_empty() {
                fields.push(("whatsapp_message_id".to_string(), id.clone()));
            }
            Outcome::Success {
                detail: format!("{api}: HTTP {status} {id}"),
                fields,
            }
        }
        429 | 500..=599 => {
            Outcome::Transient(format!("{api}: HTTP {status}{}", reason(&reply, &text)))
        }
        _ => Outcome::Permanent(format!(
            "{api} refused the message: HTTP {status}{}",
            reason(&reply, &text)
        )),
    }
}

/// Check the token and sender of `cfg` against the API without sending anything
/// (`ai-employee setup whatsapp`): `GET {base_url}/{phone_number_id}`, which answers the
/// phone number's details to a token that may use it. `Success`'s detail names the
/// number; any other outcome says what failed.
pub fn check(cfg: &WhatsappConfig) -> Outcome {
    let url = format!(
        "{}/{}?fields=display_phone_number,verified_name",
        cfg.base_url, cfg.phone_number_id
    );
    let (status, text, reply, api) = match call(cfg, &url, None) {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };
    match status {
        200..=299 => {
            let number = reply
                .get("display_phone_number")
                .and_then(|v| v.as_str())
                .unwrap_or(&cfg.phone_number_id);
            Outcome::Success {
                detail: format!("{api}: the token may send from {number}"),
                fields: Vec::new(),
            }
        }
        401 | 403 => Outcome::Permanent(format!(
            "{api} refused the token: HTTP {status}{}",
            reason(&reply, &text)
        )),
        429 | 500..=599 => {
            Outcome::Transient(format!("{api}: HTTP {status}{}", reason(&reply, &text)))
        }
        _ => Outcome::Permanent(format!(
            "{api}: phone number ID {} not usable: HTTP {status}{}",
            cfg.phone_number_id,
            reason(&reply, &text)
        )),
    }
}

/// `POST url` with the JSON `body`, or `GET url` without one, with the token: the reply's
/// status, text and JSON, and the API's name for messages; a request that got no reply,
/// as its outcome.
fn call(
    cfg: &WhatsappConfig,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, String, serde_json::Value, String), Outcome> {
    let agent: ureq::Agent = ai_employee_vault::http::client(cfg.timeout)
        .timeout_connect(Some((cfg.timeout / 2).min(Duration::from_secs(10))))
        .build()
        .into();
    let auth = format!("Bearer {}", cfg.token.expose());
    let response = match body {
        Some(body) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body),
        None => agent.get(url).header("Authorization", &auth).call(),
    };
    let mut response = response.map_err(|e| classify_error(&cfg.base_url, &e))?;
    let status = response.status().as_u16();
    // A reply that cannot be read (cut off, too long) leaves the status to judge by.
    let text = ai_employee_vault::http::reply_text(&mut response).unwrap_or_default();
    let reply = serde_json::from_str(&text).unwrap_or_default();
    Ok((
        status,
        text,
        reply,
        format!("WhatsApp API {}", cfg.base_url),
    ))
}

/// `: <Meta's error message>` or the start of the body.
fn reason(reply: &serde_json::Value, text: &str) -> String {
    let msg = reply
        .pointer("/error/message")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if msg.is_empty() {
        String::new()
    } else {
        format!(": {msg}")
    }
}

fn classify_error(base: &str, e: &ureq::Error) -> Outcome {
    use std::io::ErrorKind;
    use ureq::{Error, Timeout};
    let text = format!(
        "WhatsApp API {base}: {}",
        ai_employee_vault::http::error_text(e)
    );
    match e {
        Error::HostNotFound | Error::ConnectionFailed => Outcome::Transient(text),
        Error::Timeout(Timeout::Resolve | Timeout::Connect) => Outcome::Transient(text),
        Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkDown
            ) =>
        {
            Outcome::Transient(text)
        }
        Error::Timeout(_) | Error::Io(_) | Error::Protocol(_) => {
            Outcome::Unknown(format!("{text} (the request may have reached the server)"))
        }
        _ => Outcome::Permanent(text),
    }
}
