//! Entry points for the fuzz targets in `fuzz/` (built only with the `fuzzing` feature).
//!
//! Each function takes the fuzzer's bytes, runs one parser of untrusted input the way the
//! program does, and panics when a property the program relies on does not hold (a panic
//! inside the parser is a finding too). The properties:
//! - the process table: never a panic; a table `check` accepts can be represented by the
//!   runtime (every duration can be added to the monotonic clock).
//! - frontmatter: what parses renders back to text that parses to the same document;
//!   what the flat reader takes, it reads as serde_norway does.
//! - task notes written from untrusted text (email, WhatsApp, a dropped file's name):
//!   they parse back, every field reads back as the value it was written from, and no
//!   field of the sender's choosing appears.
//! - an approval request: validation never panics.
//! - the control socket's request lines: what parses serializes and parses back equal.
//! - the Dashboard table merge: the row is added once and no line of the file is lost.
//! - an agent's answer: never a panic; a failure reason is one clean line of at most 500
//!   characters; a session id kept can never read as an option; a cost kept is a finite,
//!   non-negative number; set-up detection never fires on a run that succeeded.
//! - a worker's result from the queue: never a panic; an accepted one keeps every cap and
//!   only names `Plans/<name>.md` / `Pending_Approval/<name>.md`, and reads back the same
//!   from its own JSON; a task message likewise never panics.
//! - the priority score: finite, never negative with non-negative weights, and the sum of
//!   its parts, for any text, sender, priority, deadline and waiting time.
//! - a page of GitHub issues: never a panic; each issue's task note parses back with its
//!   fields as they came, only its own keys, and the issue's text inside one fence that
//!   no line of the text can close.

use ai_employee_vault::frontmatter;
use chrono::{DateTime, Utc};
use serde_norway::{Mapping, Value};

/// A fixed clock, so a finding reproduces.
fn fixed_now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The process table (`check`, `supervise`, `reload`).
pub fn process_table(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(cfg) = crate::config::parse(t, crate::config::Source::BuiltIn) {
        run_machine(&cfg);
    }
}

/// Drive each child of an accepted table through crashes, backoff, a stop timeout and
/// the clock far ahead: the state machine's time arithmetic must hold for every value
/// `check` accepts.
fn run_machine(cfg: &crate::config::Config) {
    use crate::process::ExitStatus;
    use crate::supervisor::machine::{Child, Event, Then};
    fn feed(c: &mut Child, event: Event, now: std::time::Instant) {
        // The actions are not carried out: the machine's own time arithmetic is under test.
        let _ = c.on_event(event, now);
    }
    let t0 = std::time::Instant::now();
    for spec in &cfg.processes {
        let stop = spec.stop_timeout.unwrap_or(cfg.supervisor.stop_timeout);
        let mut c = Child::new(spec.clone(), stop);
        feed(&mut c, Event::Start, t0);
        let mut now = t0;
        for pid in 100..104 {
            feed(&mut c, Event::Spawned { pid }, now);
            let status = ExitStatus::Code(1);
            let exited = Event::Exited {
                pid,
                status,
                group_alive: false,
            };
            feed(&mut c, exited, now);
            if let Some(d) = c.deadline() {
                now = now.max(d);
                feed(&mut c, Event::Tick, now);
            }
        }
        feed(&mut c, Event::Spawned { pid: 200 }, now);
        feed(&mut c, Event::Stop(Then::Rest), now);
        if let Some(d) = c.deadline() {
            feed(&mut c, Event::Tick, d);
        }
    }
}

/// Task and approval frontmatter.
pub fn frontmatter(data: &[u8]) {
    let Some(t) = text(data) else { return };
    // The input as the YAML between the markers: the flat reader never differs.
    if let Some(front) = frontmatter::parse_flat(t) {
        match serde_norway::from_str::<Value>(t) {
            Ok(Value::Mapping(m)) => assert_eq!(front, m, "the flat reader differs on {t:?}"),
            other => panic!("the flat reader took {t:?}, serde_norway read {other:?}"),
        }
    }
    let Ok(doc) = frontmatter::parse(t) else {
        return;
    };
    let again = frontmatter::render(&doc.front, &doc.body);
    match frontmatter::parse(&again) {
        Ok(back) => assert_eq!(back, doc, "render → parse changed the document:\n{again}"),
        Err(e) => panic!("rendered frontmatter does not parse ({e}):\n{again}"),
    }
}

/// The fields of a rendered task note, parsed back.
fn parsed_note(note: &str) -> Mapping {
    match frontmatter::parse(note) {
        Ok(doc) => doc.front,
        Err(e) => panic!("a task note does not parse ({e}):\n{note}"),
    }
}

fn assert_field(front: &Mapping, key: &str, want: &str, note: &str) {
    let got = front.get(key);
    assert_eq!(
        got,
        Some(&Value::String(want.to_string())),
        "field {key} did not round-trip in:\n{note}"
    );
}

/// The fields every task note from a message starts with.
const NOTE_KEYS: [&str; 5] = ["type", "status", "priority", "received", "from"];

/// The note's fields are [`NOTE_KEYS`] and then `more`, and nothing else.
fn assert_keys(front: &Mapping, more: &[&str], note: &str) {
    let got: Vec<&str> = front.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        got,
        [&NOTE_KEYS[..], more].concat(),
        "unexpected fields in:\n{note}"
    );
}

/// A WhatsApp webhook body → the task notes written from it.
pub fn whatsapp_delivery(data: &[u8]) {
    use ai_employee_whatsapp::{payload, task};
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let delivery = payload::read(&json);
    for m in &delivery.texts {
        let keywords = vec!["urgent".to_string()];
        let t = task::build(m, &keywords, task::Priority::High, fixed_now());
        let front = parsed_note(&t.text);
        assert_keys(&front, &["contact_name", "keywords", "message_id"], &t.text);
        assert_field(&front, "type", "whatsapp", &t.text);
        assert_field(&front, "status", "pending", &t.text);
        assert_field(&front, "from", &m.from, &t.text);
        assert_field(
            &front,
            "contact_name",
            m.contact_name.as_deref().unwrap_or_default(),
            &t.text,
        );
        assert_field(&front, "message_id", &m.id, &t.text);
    }
}

/// A raw email (RFC 5322 bytes from the IMAP server) → its task note.
pub fn email(data: &[u8]) {
    use ai_employee_gmail::{importance::Reason, message, task};
    let e = message::decode(data, 64 * 1024);
    let origin = task::Origin {
        mailbox: "INBOX",
        uid: 7,
        gmail_thread: None,
        internal_date: None,
        size: u32::try_from(data.len()).unwrap_or(u32::MAX),
        partial: false,
    };
    let received = task::received(&origin, &e, fixed_now());
    let note = task::render(&origin, &e, &[Reason::Flagged], received);
    let front = parsed_note(&note);
    assert_field(&front, "type", "email", &note);
    assert_field(&front, "status", "pending", &note);
    assert_field(&front, "from", &e.from, &note);
    assert_field(&front, "subject", &e.subject, &note);
    assert_keys(
        &front,
        &["subject", "message_id", "thread_id", "uid", "mailbox"],
        &note,
    );
}

/// A dropped file's name → its task note.
pub fn file_name(data: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(data);
    let facts = ai_employee_filesystem::task::Facts {
        original_name: name,
        size: data.len() as u64,
        sha256_hex: "00",
        received: fixed_now(),
    };
    let note = ai_employee_filesystem::task::render(&facts);
    let front = parsed_note(&note);
    assert_field(&front, "type", "file_drop", &note);
    assert_field(&front, "original_name", &name.to_string_lossy(), &note);
    assert_field(&front, "status", "pending", &note);
    // The name its copy and note get: never empty, never a path, never a second note.
    let clean = ai_employee_filesystem::names::sanitize(name);
    assert!(!clean.is_empty() && !clean.contains('/'), "{clean:?}");
    assert!(
        clean.len() <= ai_employee_filesystem::names::MAX_NAME_BYTES,
        "{clean:?}"
    );
    let lower = clean.to_ascii_lowercase();
    assert!(!lower.ends_with(".md") || lower == ".md", "{clean:?}");
}

/// An approval request as the handler reads it from `Approved/`.
pub fn approval_request(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(doc) = frontmatter::parse(t) else {
        return;
    };
    // Refused or accepted: the property is only that validation returns.
    let _ =
        ai_employee_approvals::request::validate(&doc, fixed_now(), std::path::Path::new("/vault"));
}

/// One request line on the control socket.
pub fn control_request(data: &[u8]) {
    use ai_employee_vault::control::Request;
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let line = match serde_json::to_vec(&req) {
        Ok(l) => l,
        Err(e) => panic!("a parsed request does not serialize: {e}"),
    };
    match serde_json::from_slice::<Request>(&line) {
        Ok(back) => assert_eq!(back, req),
        Err(e) => panic!("a serialized request does not parse back: {e}"),
    }
}

/// Dashboard.md as a person left it, plus the details of a status row to insert.
pub fn dashboard_merge(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (details, file) = data.split_at(split);
    let file = file.get(1..).unwrap_or_default();
    let details = String::from_utf8_lossy(details);
    ai_employee_vault::dashboard::fuzz_insert(file, &details);
}

/// An agent run's standard output (and, after a NUL byte, its standard error).
pub fn agent_answer(data: &[u8]) {
    use crate::agent::outcome::{self, Status};
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (stdout, stderr) = data.split_at(split);
    let stderr = String::from_utf8_lossy(stderr.get(1..).unwrap_or_default());
    let a = outcome::parse_output(stdout);
    if let Status::Failed(reason) = &a.status {
        assert!(!reason.is_empty() && reason.chars().count() <= outcome::MAX_REASON_CHARS);
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert_eq!(reason.trim(), reason);
    }
    if let Some(id) = &a.session_id {
        assert!(
            outcome::session_id_is_safe(id) && !id.starts_with('-'),
            "{id:?}"
        );
    }
    if let Some(c) = a.cost_usd {
        assert!(c.is_finite() && c >= 0.0, "{c}");
    }
    assert_eq!(a.status, outcome::status_line(&a.text));
    if !a.json {
        assert_eq!(a.text, String::from_utf8_lossy(stdout));
    }
    if !a.is_error {
        assert_eq!(outcome::needs_setup(Some(0), &a, &stderr), None);
    }
    if let Some(reason) = outcome::needs_setup(Some(1), &a, &stderr) {
        assert!(
            !reason.is_empty() && !reason.chars().any(char::is_control),
            "{reason:?}"
        );
    }
}

/// A task's facts as the loop reads them: `priority`, `from` and the text, separated by
/// NUL bytes, after 8 bytes of times (deadline and queued, as offsets in minutes).
pub fn score(data: &[u8]) {
    use crate::agent::score;
    let Some((times, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let minutes = |b: [u8; 4]| chrono::TimeDelta::minutes(i64::from(i32::from_le_bytes(b)));
    let [d0, d1, d2, d3, q0, q1, q2, q3] = *times;
    let now = fixed_now();
    let rest = String::from_utf8_lossy(rest);
    let mut parts = rest.splitn(3, '\0');
    let priority = parts.next();
    let sender = parts.next();
    let text = parts.next().unwrap_or_default();
    let facts = score::Facts {
        priority,
        deadline: now.checked_add_signed(minutes([d0, d1, d2, d3])),
        sender,
        text,
        kind: priority,
        queued_at: now
            .checked_sub_signed(minutes([q0, q1, q2, q3]))
            .unwrap_or(now),
    };
    let mut settings = crate::config::AgentSettings {
        vip_senders: vec![
            "boss@example.com".into(),
            "@client.org".into(),
            "+1 415 555 0123".into(),
        ],
        ..crate::config::AgentSettings::default()
    };
    settings.urgency_keywords.push("right now".into());
    settings.urgency_keywords.push("sofort erledigen".into());
    let s = score::score(&facts, &settings, now);
    for part in [s.total, s.urgency, s.deadline, s.sender, s.age] {
        assert!(part.is_finite() && part >= 0.0, "{s:?}");
    }
    assert!(
        (s.total - (s.urgency + s.deadline + s.sender + s.age)).abs() < 1e-9,
        "{s:?}"
    );
    assert!(s.urgency <= settings.weights.urgency && s.deadline <= settings.weights.deadline);
    if let Some(why) = score::needs_run_approval(&facts, &settings) {
        assert!(
            why == "payment" || settings.approval_keywords.contains(&why),
            "{why}"
        );
    }
}

/// A reply of `GET /repos/{owner}/{repo}/issues` → the task notes written from it.
pub fn github_issues(data: &[u8]) {
    use ai_employee_github::{issue, task};
    use ai_employee_vault::github::Repo;
    let Ok(page) = issue::parse_page(data) else {
        return;
    };
    let Ok(repo) = Repo::parse("acme/widgets") else {
        return;
    };
    for is in &page.issues {
        let t = task::build(
            &repo,
            is,
            ai_employee_vault::frontmatter::Priority::Normal,
            fixed_now(),
            4096,
        );
        let front = parsed_note(&t.text);
        for (key, want) in [
            ("type", "github_issue"),
            ("status", "pending"),
            ("repo", "acme/widgets"),
            ("title", is.title.as_str()),
            ("url", is.url.as_str()),
            ("author", is.author.as_str()),
            ("from", is.author.as_str()),
            ("created_at", is.created_at.as_str()),
            ("updated_at", is.updated_at.as_str()),
        ] {
            assert_field(&front, key, want, &t.text);
        }
        let keys: Vec<&str> = front.keys().filter_map(Value::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "status",
                "priority",
                "received",
                "repo",
                "number",
                "title",
                "url",
                "author",
                "from",
                "labels",
                "created_at",
                "updated_at"
            ],
            "unexpected fields in:\n{}",
            t.text
        );
        assert_eq!(
            t.stem.as_deref(),
            Some(format!("GITHUB_acme_widgets_{}", is.number).as_str())
        );
        // The text sits in one fence; no line of it can close the fence.
        let body = t
            .text
            .split_once("\n## Issue text\n\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let Some(first) = body.lines().next() else {
            panic!("no issue text section in:\n{}", t.text);
        };
        if first == "(no text)" {
            continue;
        }
        let fence = first.strip_suffix("markdown").unwrap_or_default();
        assert!(
            fence.len() >= 3 && fence.bytes().all(|b| b == b'`'),
            "{first:?}"
        );
        let mut closed = false;
        for line in body.lines().skip(1) {
            if line == fence {
                closed = true;
                break;
            }
            let t = line.trim();
            assert!(
                !(t.len() >= fence.len() && t.bytes().all(|b| b == b'`')),
                "{line:?} closes the fence early"
            );
        }
        assert!(closed, "the fence is not closed:\n{body}");
    }
}

/// A result from the queue's results stream (`queue::validate_result`), and the same bytes
/// as a task message (`queue::validate::validate_task`).
pub fn queue_result(data: &[u8]) {
    use crate::queue::validate::{Limits, confine, validate_task};
    let _ = validate_task(data);
    let limits = Limits {
        max_files: 4,
        max_file_bytes: 64,
        max_total_bytes: 128,
        max_message_bytes: 4096,
    };
    let Ok(v) = crate::queue::validate_result(data, &limits) else {
        return;
    };
    assert!(v.files.len() <= limits.max_files);
    assert_eq!(v.files.len(), v.message.files.len());
    let mut total = 0;
    for (f, raw) in v.files.iter().zip(&v.message.files) {
        let (folder, name) = confine(&raw.path).unwrap_or_else(|p| panic!("{p}"));
        assert_eq!((folder, name), (f.folder, f.name.as_str()));
        assert!(!name.contains('/') && !name.starts_with('.') && name.ends_with(".md"));
        assert!(f.content.len() <= limits.max_file_bytes);
        total += f.content.len();
    }
    assert!(total <= limits.max_total_bytes);
    let again = crate::queue::validate_result(&v.message.to_json(), &Limits::default());
    assert_eq!(again.map(|a| a.message), Ok(v.message));
}

/// Every input a fuzz target once failed on, kept in `fuzz/regressions/<target>/`, must pass.
#[cfg(test)]
mod tests {
    type Target = fn(&[u8]);
    const TARGETS: &[(&str, Target)] = &[
        ("process_table", super::process_table),
        ("frontmatter", super::frontmatter),
        ("whatsapp_delivery", super::whatsapp_delivery),
        ("email", super::email),
        ("file_name", super::file_name),
        ("approval_request", super::approval_request),
        ("control_request", super::control_request),
        ("dashboard_merge", super::dashboard_merge),
        ("agent_answer", super::agent_answer),
        ("score", super::score),
        ("github_issues", super::github_issues),
        ("queue_result", super::queue_result),
    ];

    #[test]
    fn every_past_finding_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut failed = Vec::new();
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for entry in dir.flatten() {
                let path = entry.path();
                let data = std::fs::read(&path).unwrap();
                replayed += 1;
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
            }
        }
        assert!(
            failed.is_empty(),
            "fuzz regressions fail again: {failed:#?}"
        );
        assert!(
            replayed > 0,
            "no regression inputs under {}",
            root.display()
        );
    }
}
