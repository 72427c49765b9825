//! What a WhatsApp task says (SPEC §1): frontmatter (`type: whatsapp`, `status`,
//! `priority`, `received`, `from`, `contact_name`, `keywords`, `message_id`) and a short
//! summary quoting the message.
//!
//! The message is quoted line by line (`> `) with every character that Markdown or
//! Obsidian would interpret escaped by a backslash, so a message holding `---`, a heading,
//! a link, `[[wiki links]]` or HTML shows as the sender typed it and cannot change the
//! structure of the file around it.

use ai_employee_vault::frontmatter::{self, Status, TaskFrontmatter};
use ai_employee_vault::tasks::NewTask;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::payload::TextMessage;

pub const PREFIX: &str = "WHATSAPP";

pub use ai_employee_vault::frontmatter::Priority;

/// The frontmatter of a WhatsApp task (SPEC §1), after `type: whatsapp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsAppTask {
    pub status: Status,
    pub priority: Priority,
    /// RFC 3339 in UTC, whole seconds.
    pub received: String,
    /// The sender's number (digits, no `+`).
    pub from: String,
    /// The sender's profile name, or empty.
    pub contact_name: String,
    /// The keywords the message matched.
    pub keywords: Vec<String>,
    pub message_id: String,
}

impl TaskFrontmatter for WhatsAppTask {
    const TYPE: &'static str = "whatsapp";
}

/// The task for `m`, keyed by its message id. `received` is the message's own timestamp,
/// or when the delivery arrived if it has none.
pub fn build(
    m: &TextMessage,
    keywords: &[String],
    priority: Priority,
    arrived: DateTime<Utc>,
) -> NewTask {
    let received = m.timestamp.unwrap_or(arrived);
    let title = match &m.contact_name {
        Some(n) => n.clone(),
        None if !m.from.is_empty() => m.from.clone(),
        None => "message".to_string(),
    };
    NewTask {
        key: m.id.clone(),
        prefix: PREFIX,
        when: received,
        title,
        stem: None,
        text: render(m, keywords, priority, received),
    }
}

pub fn render(
    m: &TextMessage,
    keywords: &[String],
    priority: Priority,
    received: DateTime<Utc>,
) -> String {
    let front = WhatsAppTask {
        status: Status::Pending,
        priority,
        received: received.to_rfc3339_opts(SecondsFormat::Secs, true),
        from: m.from.clone(),
        contact_name: m.contact_name.clone().unwrap_or_default(),
        keywords: keywords.to_vec(),
        message_id: m.id.clone(),
    };

    let sender = match (&m.contact_name, m.from.is_empty()) {
        (Some(n), false) => format!("{} (+{})", inline(n), inline(&m.from)),
        (Some(n), true) => inline(n),
        (None, false) => format!("+{}", inline(&m.from)),
        (None, true) => "an unknown sender".to_string(),
    };
    let keyword_list = keywords
        .iter()
        .map(|k| inline(k))
        .collect::<Vec<_>>()
        .join(", ");
    let body = format!(
        "# WhatsApp message from {sender}\n\n\
         Matched keywords: {keyword_list}. Priority: {priority}.\n\n\
         {quote}\n\n\
         - From: {sender}\n\
         - Received: {when}\n\
         - Message ID: {id}\n",
        priority = priority.as_str(),
        quote = quote(&m.text),
        when = received.format("%Y-%m-%d %H:%M:%S UTC"),
        id = inline(&m.id),
    );
    frontmatter::render_task(&front, &body)
}

/// The message as a Markdown block quote that renders as typed.
pub fn quote(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        return ">".to_string();
    }
    text.split('\n')
        .map(|line| {
            let escaped = escape_line(line);
            if escaped.is_empty() {
                ">".to_string()
            } else {
                format!("> {escaped}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of text on one line, escaped.
fn inline(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    escape_line(flat.trim())
}

/// Characters Markdown (CommonMark, GFM) or Obsidian give a meaning anywhere in a line:
/// emphasis, code, links, wiki links, HTML, entities, tags, highlights, math, comments,
/// tables, strikethrough.
const ACTIVE: &[char] = &[
    '\\', '`', '*', '_', '[', ']', '<', '>', '&', '#', '=', '$', '%', '|', '~', '^',
];

/// Escape one line: the always-active characters, and at the start of the line what
/// would open a list or a block (`-`, `+`, `1.`, `1)`). Leading spaces are kept as
/// non-breaking spaces so they cannot make an indented code block.
fn escape_line(line: &str) -> String {
    let line = line.replace('\t', " ");
    let line = line.as_str();
    let mut out = String::with_capacity(line.len() + 8);
    let indent = line.len() - line.trim_start_matches(' ').len();
    for _ in 0..indent {
        out.push('\u{a0}');
    }
    let rest = &line[indent..];
    let mut chars = rest.char_indices().peekable();
    // A block marker at the start of the line.
    if let Some(&(_, c)) = chars.peek()
        && matches!(c, '-' | '+')
    {
        out.push('\\');
    } else {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && matches!(rest.as_bytes().get(digits), Some(b'.' | b')')) {
            out.push_str(&rest[..digits]);
            out.push('\\');
            for _ in 0..digits {
                chars.next();
            }
        }
    }
    for (_, c) in chars {
        if ACTIVE.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::frontmatter::{get_str, parse};

    use super::*;

    /// Undo [`quote`]: what a Markdown renderer shows.
    fn unquote(q: &str) -> String {
        q.split('\n')
            .map(|l| {
                let l = l
                    .strip_prefix("> ")
                    .or_else(|| l.strip_prefix('>'))
                    .unwrap_or_else(|| panic!("unquoted line {l:?}"));
                let mut out = String::new();
                let mut it = l.chars();
                while let Some(c) = it.next() {
                    match c {
                        '\\' => out.extend(it.next()),
                        '\u{a0}' => out.push(' '),
                        c => out.push(c),
                    }
                }
                out
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn message(text: &str, name: Option<&str>) -> TextMessage {
        TextMessage {
            id: "wamid.HBgL: \"x\"==".into(),
            from: "15551234567".into(),
            contact_name: name.map(str::to_string),
            timestamp: DateTime::from_timestamp(1_795_000_000, 0),
            text: text.into(),
        }
    }

    #[test]
    fn frontmatter_round_trips_tricky_values() {
        for name in [
            "Doe, J: \"the boss\" 'x'",
            "yes",
            "0123",
            "🚀 Rocket — ☕",
            "- [x] # not a heading",
            "a\nb",
        ] {
            let m = message("urgent: pay", Some(name));
            let kw = vec!["urgent".to_string(), "pay: now".to_string()];
            let t = build(&m, &kw, Priority::High, Utc::now());
            assert_eq!(t.key, m.id);
            assert_eq!(t.prefix, "WHATSAPP");
            assert_eq!(t.title, name);
            let doc = parse(&t.text).expect("parses");
            let g = |k: &str| get_str(&doc.front, k).map(str::to_string);
            assert_eq!(g("type").as_deref(), Some("whatsapp"));
            assert_eq!(g("status").as_deref(), Some("pending"));
            assert_eq!(g("priority").as_deref(), Some("high"));
            assert_eq!(g("received").as_deref(), Some("2026-11-18T11:06:40Z"));
            assert_eq!(g("from").as_deref(), Some("15551234567"));
            assert_eq!(g("contact_name").as_deref(), Some(name));
            assert_eq!(g("message_id").as_deref(), Some(m.id.as_str()));
            let kws: Vec<&str> = doc
                .front
                .get("keywords")
                .and_then(|v| v.as_sequence())
                .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(kws, vec!["urgent", "pay: now"]);
            // The heading stays one line.
            let heading = doc.body.lines().next().unwrap_or_default();
            assert!(heading.starts_with("# WhatsApp message from "), "{heading}");
        }
    }

    #[test]
    fn the_message_is_quoted_as_typed_and_cannot_break_out() {
        let nasty = "---\ntype: email\n---\n# Heading\n\n- item\n+ item\n12. twelve\n3) three\n\
                     [[Company_Handbook]] ![[secret.png]] [x](http://e.vil) <img src=x>\n\
                     `code` **bold** _it_ ~~del~~ ==hi== $x$ %%c%% #tag a|b &amp; \\n\n\
                     ```\n    indented\n\t tab\r\nend\r\n\n";
        let m = message(nasty, None);
        let text = render(&m, &["help".into()], Priority::Normal, Utc::now());
        let doc = parse(&text).expect("parses");
        assert_eq!(get_str(&doc.front, "type"), Some("whatsapp"));
        assert_eq!(get_str(&doc.front, "contact_name"), Some(""));
        let quoted: Vec<&str> = doc.body.lines().filter(|l| l.starts_with('>')).collect();
        let expected = nasty
            .replace("\r\n", "\n")
            .trim_end_matches('\n')
            .replace('\t', " ");
        assert_eq!(unquote(&quoted.join("\n")), expected);
        // Nothing outside the quote came from the message.
        for l in doc.body.lines().filter(|l| !l.starts_with('>')) {
            assert!(!l.contains("Heading") && !l.contains("item"), "{l}");
        }
        // Every character Markdown would act on is escaped.
        for l in &quoted {
            let mut it = l.trim_start_matches('>').chars();
            while let Some(c) = it.next() {
                if c == '\\' {
                    it.next();
                } else {
                    assert!(!ACTIVE.contains(&c), "{c:?} unescaped in {l:?}");
                }
            }
        }
        assert!(quoted.contains(&"> \\---"), "{quoted:?}");
        assert!(quoted.contains(&"> 12\\. twelve"), "{quoted:?}");
        assert!(quoted.contains(&">"), "blank lines stay inside the quote");
    }

    #[test]
    fn summary_lines() {
        let m = message("Invoice #7 due", Some("Ana"));
        let when = m.timestamp.unwrap_or_default();
        let text = render(&m, &["invoice".into()], Priority::Normal, when);
        let doc = parse(&text).expect("parses");
        assert!(
            doc.body
                .starts_with("# WhatsApp message from Ana (+15551234567)\n"),
            "{}",
            doc.body
        );
        assert!(doc.body.contains("> Invoice \\#7 due\n"), "{}", doc.body);
        assert!(
            doc.body
                .contains("Matched keywords: invoice. Priority: normal.")
        );
        assert!(doc.body.contains("- Received: 2026-11-18 11:06:40 UTC\n"));
        let mut anon = message("", None);
        anon.from.clear();
        anon.timestamp = None;
        let arrived = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let t = build(&anon, &[], Priority::Normal, arrived);
        assert_eq!(t.title, "message");
        assert_eq!(t.when, arrived);
        assert!(t.text.contains("from an unknown sender"));
    }

    #[test]
    fn notes_read_back_as_their_typed_frontmatter() {
        let m = message("help", None);
        let t = build(&m, &["help".into()], Priority::Normal, Utc::now());
        let read = frontmatter::parse_task::<WhatsAppTask>(&t.text).map(|(t, _)| t);
        assert_eq!(
            read,
            Ok(WhatsAppTask {
                status: Status::Pending,
                priority: Priority::Normal,
                received: "2026-11-18T11:06:40Z".into(),
                from: "15551234567".into(),
                contact_name: String::new(),
                keywords: vec!["help".into()],
                message_id: m.id.clone(),
            })
        );
    }

    #[test]
    fn notes_are_written_byte_for_byte() {
        let mut m = message("urgent: pay\n- now", Some("on"));
        m.id = "wamid.X==".into();
        let kw = [
            "urgent".to_string(),
            "pay: now".to_string(),
            "no".to_string(),
        ];
        assert_eq!(
            build(&m, &kw, Priority::High, Utc::now()).text,
            "---\ntype: whatsapp\nstatus: pending\npriority: high\n\
             received: '2026-11-18T11:06:40Z'\nfrom: '15551234567'\ncontact_name: 'on'\n\
             keywords:\n- urgent\n- 'pay: now'\n- 'no'\nmessage_id: wamid.X==\n---\n\
             # WhatsApp message from on (+15551234567)\n\n\
             Matched keywords: urgent, pay: now, no. Priority: high.\n\n\
             > urgent: pay\n> \\- now\n\n\
             - From: on (+15551234567)\n- Received: 2026-11-18 11:06:40 UTC\n\
             - Message ID: wamid.X\\=\\=\n"
        );
        let mut anon = message("", None);
        anon.id.clear();
        anon.from.clear();
        let when = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(
            render(&anon, &[], Priority::Normal, when),
            "---\ntype: whatsapp\nstatus: pending\npriority: normal\n\
             received: '2027-01-15T08:00:00Z'\nfrom: ''\ncontact_name: ''\nkeywords: []\n\
             message_id: ''\n---\n\
             # WhatsApp message from an unknown sender\n\n\
             Matched keywords: . Priority: normal.\n\n>\n\n\
             - From: an unknown sender\n- Received: 2027-01-15 08:00:00 UTC\n- Message ID: \n"
        );
    }
}
