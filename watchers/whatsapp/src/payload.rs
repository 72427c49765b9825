//! The webhook's JSON: the text messages in a delivery, everything else set aside.
//!
//! ```text
//! { "object": "whatsapp_business_account",
//!   "entry": [ { "changes": [ { "field": "messages",
//!     "value": { "metadata": { "phone_number_id": "…" },
//!                "contacts": [ { "profile": { "name": "…" }, "wa_id": "…" } ],
//!                "messages": [ { "from": "…", "id": "wamid.…", "timestamp": "1700000000",
//!                                "type": "text", "text": { "body": "…" } } ],
//!                "statuses": [ … ] } } ] } ] }
//! ```
//! The walk is lenient: a signed delivery whose shape is unexpected is set aside, not
//! refused (a refusal would make Meta send it again and again). Only bytes that are not
//! JSON at all are refused.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One text message.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMessage {
    /// `wamid.…`: unique per message, the same on every re-delivery.
    pub id: String,
    /// The sender's WhatsApp id (their phone number in international form, digits only).
    pub from: String,
    /// The sender's profile name, when the delivery names the contact.
    pub contact_name: Option<String>,
    /// When WhatsApp received it (None when the delivery has no usable timestamp).
    pub timestamp: Option<DateTime<Utc>>,
    pub text: String,
}

/// What a delivery holds.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery {
    pub texts: Vec<TextMessage>,
    /// Why each other item was set aside (for the debug log; no message content).
    pub ignored: Vec<String>,
}

/// Walk a parsed delivery.
pub fn read(root: &Value) -> Delivery {
    let mut out = Delivery::default();
    if let Some(object) = root.get("object").and_then(Value::as_str)
        && object != "whatsapp_business_account"
    {
        out.ignored
            .push(format!("a delivery for object {object:?}"));
        return out;
    }
    for entry in list(root, "entry") {
        for change in list(entry, "changes") {
            let field = change.get("field").and_then(Value::as_str).unwrap_or("");
            let Some(value) = change.get("value") else {
                out.ignored
                    .push(format!("a change without a value (field {field:?})"));
                continue;
            };
            if field != "messages" {
                out.ignored.push(format!("a change of field {field:?}"));
                continue;
            }
            let statuses = list(value, "statuses").count();
            if statuses > 0 {
                out.ignored.push(format!("{statuses} status update(s)"));
            }
            let contacts: Vec<&Value> = list(value, "contacts").collect();
            for m in list(value, "messages") {
                read_message(m, &contacts, &mut out);
            }
        }
    }
    out
}

fn read_message(m: &Value, contacts: &[&Value], out: &mut Delivery) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let kind = s(m, "type").unwrap_or_default();
    let Some(id) = s(m, "id").filter(|id| !id.is_empty()) else {
        out.ignored
            .push(format!("a {kind:?} message without an id"));
        return;
    };
    if kind != "text" {
        out.ignored.push(format!("{kind:?} message {id}"));
        return;
    }
    let Some(text) = m
        .get("text")
        .and_then(|t| t.get("body"))
        .and_then(Value::as_str)
    else {
        out.ignored
            .push(format!("text message {id} without a body"));
        return;
    };
    let from = s(m, "from").unwrap_or_default();
    // The contact whose wa_id is the sender; a delivery naming one contact names the
    // sender.
    let contact = contacts
        .iter()
        .find(|c| !from.is_empty() && c.get("wa_id").and_then(Value::as_str) == Some(&from))
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let contact_name = contact
        .and_then(|c| c.get("profile"))
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|n| !n.trim().is_empty());
    let from = if from.is_empty() {
        contact
            .and_then(|c| c.get("wa_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        from
    };
    out.texts.push(TextMessage {
        id,
        from,
        contact_name,
        timestamp: m.get("timestamp").and_then(timestamp),
        text: text.to_string(),
    });
}

/// Unix seconds, as a string (what Meta sends) or a number.
fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0)
}

/// The items of the array `v[key]` (none when it is missing or not an array).
fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(id: &str, from: &str, body: &str) -> Value {
        json!({"from": from, "id": id, "timestamp": "1795000000", "type": "text",
               "text": {"body": body}})
    }

    #[test]
    fn every_entry_change_and_message() {
        let v = json!({
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [{"field": "messages", "value": {
                    "metadata": {"phone_number_id": "42"},
                    "contacts": [
                        {"profile": {"name": "Ana"}, "wa_id": "111"},
                        {"profile": {"name": "Bo"}, "wa_id": "222"}
                    ],
                    "messages": [msg("wamid.1", "222", "hi"), msg("wamid.2", "111", "yo")]
                }}]},
                {"id": "2", "changes": [
                    {"field": "messages", "value": {
                        "contacts": [{"profile": {"name": "Cy"}, "wa_id": "333"}],
                        "messages": [
                            msg("wamid.3", "333", "help"),
                            {"from": "333", "id": "wamid.4", "type": "image",
                             "image": {"id": "x"}}
                        ]}},
                    {"field": "messages", "value": {"statuses": [
                        {"id": "wamid.9", "status": "delivered"}]}}
                ]}
            ]
        });
        let d = read(&v);
        let got: Vec<(&str, &str, Option<&str>)> = d
            .texts
            .iter()
            .map(|t| (t.id.as_str(), t.from.as_str(), t.contact_name.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("wamid.1", "222", Some("Bo")),
                ("wamid.2", "111", Some("Ana")),
                ("wamid.3", "333", Some("Cy")),
            ]
        );
        assert_eq!(
            d.texts[0].timestamp.map(|t| t.timestamp()),
            Some(1_795_000_000)
        );
        assert_eq!(
            d.ignored,
            vec![
                "\"image\" message wamid.4".to_string(),
                "1 status update(s)".to_string()
            ]
        );
    }

    #[test]
    fn odd_shapes_are_set_aside() {
        assert_eq!(read(&json!([])), Delivery::default());
        assert_eq!(read(&json!({"entry": "x"})), Delivery::default());
        let d = read(&json!({"object": "page", "entry": []}));
        assert_eq!(
            d.ignored,
            vec!["a delivery for object \"page\"".to_string()]
        );
        let d = read(
            &json!({"entry": [{"changes": [{"field": "messages", "value": {
            "messages": [
                {"type": "text", "text": {"body": "no id"}},
                {"id": "wamid.5", "type": "text"},
                {"id": "wamid.6", "type": "text", "text": {"body": "ok"}, "timestamp": 12}
            ]}}]}]}),
        );
        assert_eq!(d.texts.len(), 1);
        assert_eq!(d.texts[0].from, "");
        assert_eq!(d.texts[0].contact_name, None);
        assert_eq!(d.texts[0].timestamp.map(|t| t.timestamp()), Some(12));
        assert_eq!(d.ignored.len(), 2);
        let d = read(&json!({"entry": [{"changes": [{"field": "account_update",
            "value": {}}]}]}));
        assert_eq!(
            d.ignored,
            vec!["a change of field \"account_update\"".to_string()]
        );
    }
}
