//! A fetched message, MIME-decoded: encoded headers (RFC 2047), multipart, charsets,
//! text/plain preferred and HTML turned into text (mail-parser does the decoding).

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

/// What a task needs from a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Email {
    /// Display form of the first sender: `"Doe, J" <j@x>`, `Jane <j@x>` or `j@x`.
    pub from: String,
    /// The first sender's address alone.
    pub from_address: Option<String>,
    pub subject: String,
    /// `<id@host>`, as in the header.
    pub message_id: Option<String>,
    /// The thread's root as the headers tell it: the first `References` id, else
    /// `In-Reply-To`, else the message's own id.
    pub thread_root: Option<String>,
    /// The `Date` header.
    pub date: Option<DateTime<Utc>>,
    /// The decoded text, at most `max_text` bytes.
    pub text: String,
    /// Bytes of decoded text left out by the cap.
    pub text_cut: usize,
    /// Names of attachments.
    pub attachments: Vec<String>,
}

/// Decode `raw` (the whole message, or its first bytes when it was too large to fetch).
pub fn decode(raw: &[u8], max_text: usize) -> Email {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Email {
            subject: String::new(),
            ..Email::default()
        };
    };
    let first = msg.from().and_then(Address::first);
    let from_address = first.and_then(|a| a.address()).map(str::to_string);
    let from = first
        .map(|a| display_address(a.name(), a.address()))
        .unwrap_or_default();
    let message_id = msg.message_id().map(angle);
    let thread_root = first_id(msg.references())
        .or_else(|| first_id(msg.in_reply_to()))
        .or_else(|| message_id.clone());
    let date = msg
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    let mut text = String::new();
    for i in 0..msg.text_body_count() {
        if let Some(t) = msg.body_text(i) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&t);
        }
    }
    if text.trim().is_empty() {
        // An HTML-only message whose text body was not recognised as such.
        if let Some(h) = msg.body_html(0) {
            text = mail_parser::decoders::html::html_to_text(&h);
        }
    }
    let text = normalize(&text);
    let (text, text_cut) = cap(text, max_text);
    let attachments = msg
        .attachments()
        .filter_map(|p| p.attachment_name().map(str::to_string))
        .collect();
    Email {
        from,
        from_address,
        subject: msg.subject().map(one_line).unwrap_or_default(),
        message_id,
        thread_root,
        date,
        text,
        text_cut,
        attachments,
    }
}

/// `"Doe, J" <j@x>` (quoted when the name has specials), `Jane Doe <j@x>`, or `j@x`.
pub fn display_address(name: Option<&str>, address: Option<&str>) -> String {
    let name = name.map(one_line);
    let name = name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match (name, address) {
        (Some(n), Some(a)) if n != a => format!("{} <{a}>", quote_name(n)),
        (_, Some(a)) => a.to_string(),
        (Some(n), None) => n.to_string(),
        (None, None) => String::new(),
    }
}

/// RFC 5322 display name: a quoted string when it has anything but atoms and spaces.
fn quote_name(name: &str) -> String {
    const SPECIALS: &[char] = &[
        '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '.', '"',
    ];
    if name.contains(SPECIALS) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        name.to_string()
    }
}

fn angle(id: &str) -> String {
    format!("<{}>", id.trim_matches(|c| c == '<' || c == '>'))
}

fn first_id(v: &HeaderValue<'_>) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(angle(t)),
        HeaderValue::TextList(l) => l.first().map(|t| angle(t)),
        _ => None,
    }
    .filter(|s| s.len() > 2)
}

/// Control characters (a folded header's newline) turned into spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `\r\n` → `\n`, other control characters but tab dropped, trailing space trimmed.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.replace("\r\n", "\n").split('\n') {
        let clean: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        out.push_str(clean.trim_end());
        out.push('\n');
    }
    let trimmed = out.trim_matches('\n');
    trimmed.to_string()
}

/// At most `max` bytes, cut at a character boundary; returns the bytes left out.
fn cap(mut text: String, max: usize) -> (String, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let cut = text.len() - at;
    text.truncate(at);
    (text, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_decoded_and_the_sender_keeps_its_quotes() {
        let raw = b"From: \"Doe, J\" <j@x.example>\r\n\
            Subject: =?UTF-8?B?R3LDvMOfZTogIkhpIiAndGhlcmUn?=\r\n\
            Message-ID: <abc@x.example>\r\n\
            References: <root@x.example> <mid@x.example>\r\n\
            Date: Tue, 03 Nov 2026 10:00:00 +0100\r\n\
            \r\n\
            Hello\r\n";
        let e = decode(raw, 1000);
        assert_eq!(e.from, "\"Doe, J\" <j@x.example>");
        assert_eq!(e.from_address.as_deref(), Some("j@x.example"));
        assert_eq!(e.subject, "Grüße: \"Hi\" 'there'");
        assert_eq!(e.message_id.as_deref(), Some("<abc@x.example>"));
        assert_eq!(e.thread_root.as_deref(), Some("<root@x.example>"));
        assert_eq!(
            e.date.map(|d| d.to_rfc3339()),
            Some("2026-11-03T09:00:00+00:00".into())
        );
        assert_eq!(e.text, "Hello");
    }

    #[test]
    fn html_only_and_latin1() {
        let raw = b"From: a@b\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
            <html><body><p>Hello <b>world</b></p><p>---</p></body></html>\r\n";
        let e = decode(raw, 1000);
        assert!(e.text.contains("Hello world"), "{:?}", e.text);
        assert!(!e.text.contains("<b>"), "{:?}", e.text);
        let raw = b"From: a@b\r\nSubject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 cr\xe8me\r\n";
        assert_eq!(decode(raw, 1000).text, "Café crème");
    }

    #[test]
    fn text_is_capped_at_a_character_boundary() {
        let (t, cut) = cap("ééé".into(), 3);
        assert_eq!((t.as_str(), cut), ("é", 4));
        let (t, cut) = cap("abc".into(), 3);
        assert_eq!((t.as_str(), cut), ("abc", 0));
    }

    #[test]
    fn display_forms() {
        assert_eq!(
            display_address(Some("Jane Doe"), Some("j@x")),
            "Jane Doe <j@x>"
        );
        assert_eq!(display_address(None, Some("j@x")), "j@x");
        assert_eq!(display_address(Some("j@x"), Some("j@x")), "j@x");
        assert_eq!(
            display_address(Some("A \"B\" C"), Some("j@x")),
            "\"A \\\"B\\\" C\" <j@x>"
        );
    }
}
