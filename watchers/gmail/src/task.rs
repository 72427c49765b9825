//! What an email task says (SPEC §1): quoted YAML frontmatter, a readable summary, and
//! the decoded text in a fenced block (so nothing in it — `---`, `#`, HTML — is read as
//! Markdown structure or frontmatter).

use ai_employee_vault::frontmatter::{self, Priority, Status, TaskFrontmatter};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::importance::{Reason, priority};
use super::message::Email;

/// The frontmatter of an email task (SPEC §1), after `type: email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTask {
    pub status: Status,
    pub priority: Priority,
    /// RFC 3339 in UTC, whole seconds.
    pub received: String,
    pub from: String,
    pub subject: String,
    /// `<id@host>`, or empty when the message has none.
    pub message_id: String,
    /// Gmail's thread id (X-GM-THRID), else the thread's root message id, else empty.
    pub thread_id: String,
    pub uid: u32,
    pub mailbox: String,
}

impl TaskFrontmatter for EmailTask {
    const TYPE: &'static str = "email";
}

/// Where the message was found.
pub struct Origin<'a> {
    pub mailbox: &'a str,
    pub uid: u32,
    /// X-GM-THRID on Gmail.
    pub gmail_thread: Option<u64>,
    /// INTERNALDATE (when the server received it).
    pub internal_date: Option<DateTime<Utc>>,
    /// The whole message's size (RFC822.SIZE).
    pub size: u32,
    /// Whether only the first part of the message was fetched.
    pub partial: bool,
}

/// When the message was received: INTERNALDATE, else the Date header, else `now`.
pub fn received(o: &Origin<'_>, e: &Email, now: DateTime<Utc>) -> DateTime<Utc> {
    o.internal_date.or(e.date).unwrap_or(now)
}

/// The task file's text.
pub fn render(o: &Origin<'_>, e: &Email, reasons: &[Reason], received: DateTime<Utc>) -> String {
    let thread_id = match o.gmail_thread {
        Some(t) => t.to_string(),
        None => e.thread_root.clone().unwrap_or_default(),
    };
    let front = EmailTask {
        status: Status::Pending,
        priority: priority(reasons),
        received: received.to_rfc3339_opts(SecondsFormat::Secs, true),
        from: e.from.clone(),
        subject: e.subject.clone(),
        message_id: e.message_id.clone().unwrap_or_default(),
        thread_id,
        uid: o.uid,
        mailbox: o.mailbox.to_string(),
    };

    let why: Vec<String> = reasons.iter().map(Reason::describe).collect();
    let subject = if e.subject.is_empty() {
        "(no subject)"
    } else {
        e.subject.as_str()
    };
    let mut body = format!(
        "# Email: {subject}\n\n\
         Important unread mail ({why}). It is still unread in the mailbox.\n\n\
         - From: {from}\n\
         - Subject: {subject}\n\
         - Received: {when}\n\
         - Mailbox: {mailbox} (UID {uid})\n",
        why = why.join(", "),
        from = if e.from.is_empty() {
            "(unknown)"
        } else {
            &e.from
        },
        when = received.format("%Y-%m-%d %H:%M:%S UTC"),
        mailbox = o.mailbox,
        uid = o.uid,
    );
    if !e.attachments.is_empty() {
        body.push_str(&format!("- Attachments: {}\n", e.attachments.join(", ")));
    }
    body.push_str("\n## Message\n\n");
    if e.text.is_empty() {
        body.push_str("(no text)\n");
    } else {
        body.push_str(&frontmatter::code_block("text", &e.text));
    }
    if e.text_cut > 0 || o.partial {
        body.push_str(&format!(
            "\nThe text was shortened ({} of the message's {} bytes shown here); the whole \
             message is in the mailbox.\n",
            e.text.len(),
            o.size
        ));
    }
    frontmatter::render_task(&front, &body)
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::frontmatter::{get_str, parse};

    use super::*;

    #[test]
    fn tricky_values_round_trip_and_the_text_stays_in_its_fence() {
        let e = Email {
            from: "\"Doe, J\" <j@x>".into(),
            from_address: Some("j@x".into()),
            subject: "Re: Invoice #12: \"urgent\" 'now'".into(),
            message_id: Some("<m@x>".into()),
            thread_root: Some("<root@x>".into()),
            date: None,
            text: "---\ntype: fake\n---\n```\n# not a heading".into(),
            text_cut: 0,
            attachments: vec![],
        };
        let o = Origin {
            mailbox: "INBOX",
            uid: 7,
            gmail_thread: None,
            internal_date: DateTime::from_timestamp(1_795_000_000, 0),
            size: 100,
            partial: false,
        };
        let when = received(&o, &e, Utc::now());
        let text = render(&o, &e, &[Reason::Flagged], when);
        let doc = match parse(&text) {
            Ok(d) => d,
            Err(err) => panic!("{err}: {text}"),
        };
        assert_eq!(get_str(&doc.front, "type"), Some("email"));
        assert_eq!(get_str(&doc.front, "from"), Some("\"Doe, J\" <j@x>"));
        assert_eq!(
            get_str(&doc.front, "subject"),
            Some("Re: Invoice #12: \"urgent\" 'now'")
        );
        assert_eq!(get_str(&doc.front, "priority"), Some("high"));
        assert_eq!(get_str(&doc.front, "thread_id"), Some("<root@x>"));
        assert_eq!(
            get_str(&doc.front, "received"),
            Some("2026-11-18T11:06:40Z")
        );
        assert_eq!(doc.front.get("uid").and_then(|v| v.as_u64()), Some(7));
        assert!(
            doc.body.contains("````text\n---\ntype: fake"),
            "{}",
            doc.body
        );
        assert!(!doc.body.contains("shortened"));
    }

    #[test]
    fn gmail_thread_ids_win() {
        let e = Email::default();
        let o = Origin {
            mailbox: "INBOX",
            uid: 1,
            gmail_thread: Some(1_278_455_344_230_334_865),
            internal_date: None,
            size: 10,
            partial: true,
        };
        let text = render(&o, &e, &[Reason::GmailImportant], Utc::now());
        let doc = parse(&text).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            get_str(&doc.front, "thread_id"),
            Some("1278455344230334865")
        );
        assert_eq!(get_str(&doc.front, "priority"), Some("normal"));
        assert_eq!(get_str(&doc.front, "message_id"), Some(""));
        assert!(doc.body.contains("shortened"));
    }

    #[test]
    fn notes_read_back_as_their_typed_frontmatter() {
        let e = Email {
            from: "Ana <a@x>".into(),
            subject: "2026-01-01".into(),
            ..Email::default()
        };
        let o = Origin {
            mailbox: "INBOX",
            uid: 9,
            gmail_thread: Some(5),
            internal_date: None,
            size: 1,
            partial: false,
        };
        let when = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let text = render(&o, &e, &[Reason::Flagged], when);
        let read = frontmatter::parse_task::<EmailTask>(&text).map(|(t, _)| t);
        assert_eq!(
            read,
            Ok(EmailTask {
                status: Status::Pending,
                priority: Priority::High,
                received: "2027-01-15T08:00:00Z".into(),
                from: "Ana <a@x>".into(),
                subject: "2026-01-01".into(),
                message_id: String::new(),
                thread_id: "5".into(),
                uid: 9,
                mailbox: "INBOX".into(),
            })
        );
    }

    #[test]
    fn notes_are_written_byte_for_byte() {
        let e = Email {
            from: "\"Doe, J\" <j@x>".into(),
            subject: "yes".into(),
            message_id: Some("<m@x>".into()),
            text: "Pay `now`".into(),
            text_cut: 3,
            attachments: vec!["a.pdf".into(), "b.png".into()],
            ..Email::default()
        };
        let o = Origin {
            mailbox: "INBOX",
            uid: 7,
            gmail_thread: Some(12),
            internal_date: DateTime::from_timestamp(1_795_000_000, 0),
            size: 100,
            partial: false,
        };
        let reasons = [Reason::Flagged, Reason::Keyword("pay".into())];
        assert_eq!(
            render(&o, &e, &reasons, received(&o, &e, Utc::now())),
            "---\ntype: email\nstatus: pending\npriority: high\n\
             received: '2026-11-18T11:06:40Z'\nfrom: '\"Doe, J\" <j@x>'\nsubject: 'yes'\n\
             message_id: <m@x>\nthread_id: '12'\nuid: 7\nmailbox: INBOX\n---\n\
             # Email: yes\n\n\
             Important unread mail (flagged, mentions \"pay\"). It is still unread in the \
             mailbox.\n\n\
             - From: \"Doe, J\" <j@x>\n- Subject: yes\n- Received: 2026-11-18 11:06:40 UTC\n\
             - Mailbox: INBOX (UID 7)\n- Attachments: a.pdf, b.png\n\n## Message\n\n\
             ```text\nPay `now`\n```\n\n\
             The text was shortened (9 of the message's 100 bytes shown here); the whole \
             message is in the mailbox.\n"
        );
        let o = Origin {
            mailbox: "Work/2026",
            uid: 1,
            gmail_thread: None,
            internal_date: None,
            size: 10,
            partial: false,
        };
        let when = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(
            render(&o, &Email::default(), &[Reason::GmailImportant], when),
            "---\ntype: email\nstatus: pending\npriority: normal\n\
             received: '2027-01-15T08:00:00Z'\nfrom: ''\nsubject: ''\nmessage_id: ''\n\
             thread_id: ''\nuid: 1\nmailbox: Work/2026\n---\n\
             # Email: (no subject)\n\n\
             Important unread mail (marked important by Gmail). It is still unread in the \
             mailbox.\n\n\
             - From: (unknown)\n- Subject: (no subject)\n- Received: 2027-01-15 08:00:00 UTC\n\
             - Mailbox: Work/2026 (UID 1)\n\n## Message\n\n(no text)\n"
        );
    }
}
