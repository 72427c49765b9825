//! What a file-drop task says: the metadata `.md` next to the copy (SPEC §1).

use std::ffi::OsStr;

use ai_employee_vault::frontmatter::{self, Priority, Status, TaskFrontmatter};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The facts a task is written from.
pub struct Facts<'a> {
    pub original_name: &'a OsStr,
    pub size: u64,
    pub sha256_hex: &'a str,
    pub received: DateTime<Utc>,
}

/// The frontmatter of a file-drop task (SPEC §1), after `type: file_drop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDropTask {
    pub original_name: String,
    pub size: u64,
    /// Of the whole file, in lowercase hex.
    pub sha256: String,
    /// RFC 3339 in UTC, with milliseconds.
    pub received: String,
    pub status: Status,
    pub priority: Priority,
    /// False for a file over `--max-size`: no copy was made. Written only then.
    #[serde(default = "copied", skip_serializing_if = "is_copied")]
    pub copied: bool,
}

impl TaskFrontmatter for FileDropTask {
    const TYPE: &'static str = "file_drop";
}

fn copied() -> bool {
    true
}

fn is_copied(copied: &bool) -> bool {
    *copied
}

/// The metadata file's text: frontmatter (`type: file_drop`, `original_name`, `size`,
/// `sha256`, `received`, `status: pending`, `priority: normal`) and a short summary.
pub fn render(f: &Facts<'_>) -> String {
    render_with(f, None)
}

/// The note for a file over the `--max-size` limit `limit`: no copy was made, and the
/// frontmatter says `copied: false`. `sha256` is still the hash of the whole file.
pub fn render_not_copied(f: &Facts<'_>, limit: u64) -> String {
    render_with(f, Some(limit))
}

fn render_with(f: &Facts<'_>, not_copied: Option<u64>) -> String {
    let name = f.original_name.to_string_lossy();
    let front = FileDropTask {
        original_name: name.to_string(),
        size: f.size,
        sha256: f.sha256_hex.to_string(),
        received: f.received.to_rfc3339_opts(SecondsFormat::Millis, true),
        status: Status::Pending,
        priority: Priority::Normal,
        copied: not_copied.is_none(),
    };
    let about_copy = match not_copied {
        None => "A copy sits next to this note (the same name without `.md`); the original \
                 stays in `Inbox/`."
            .to_string(),
        Some(limit) => format!(
            "It is larger than the {} limit for copies (`--max-size` of the filesystem \
             watcher), so no copy was made: the original stays in `Inbox/`.",
            ai_employee_vault::units::format_size(limit)
        ),
    };
    let size = ai_employee_vault::units::format_size_and_bytes(f.size);
    let body = format!(
        "# New file: {title}\n\n\
         A file was dropped into `Inbox/`. {about_copy}\n\n\
         - Original name: {code}\n\
         - Size: {size}\n\
         - SHA-256: `{sha}`\n\
         - Received: {when}\n",
        title = one_line(&name),
        code = code_span(&one_line(&name)),
        sha = f.sha256_hex,
        when = f.received.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    frontmatter::render_task(&front, &body)
}

/// Control characters (a newline in a name) would break the Markdown layout.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` as a Markdown code span, fenced with more backticks than it contains.
fn code_span(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::frontmatter::{get_str, parse};

    use super::*;

    #[test]
    fn tricky_names_round_trip_through_the_frontmatter() {
        let received = DateTime::parse_from_rfc3339("2026-11-21T23:59:01.250Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        for name in [
            "report: Q3 \"final\".pdf",
            "yes",
            "0123",
            "a`b`.txt",
            "x\ny",
        ] {
            let text = render(&Facts {
                original_name: OsStr::new(name),
                size: 2048,
                sha256_hex: "ab",
                received,
            });
            let doc = parse(&text).expect("parses");
            assert_eq!(get_str(&doc.front, "original_name"), Some(name));
            assert_eq!(get_str(&doc.front, "type"), Some("file_drop"));
            assert_eq!(get_str(&doc.front, "status"), Some("pending"));
            assert_eq!(get_str(&doc.front, "priority"), Some("normal"));
            assert_eq!(
                get_str(&doc.front, "received"),
                Some("2026-11-21T23:59:01.250Z")
            );
            assert_eq!(doc.front.get("size").and_then(|v| v.as_u64()), Some(2048));
            assert!(doc.body.contains("2.0 KiB (2048 bytes)"), "{}", doc.body);
        }
    }

    #[test]
    fn code_spans() {
        assert_eq!(code_span("a"), "`a`");
        assert_eq!(code_span("a`b"), "`` a`b ``");
    }

    #[test]
    fn notes_are_written_byte_for_byte() {
        let received = DateTime::parse_from_rfc3339("2026-11-21T23:59:01.250Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let f = Facts {
            original_name: OsStr::new("yes: \"Q3\"\n.pdf"),
            size: 1536,
            sha256_hex: "0123",
            received,
        };
        let front = "---\ntype: file_drop\noriginal_name: |-\n  yes: \"Q3\"\n  .pdf\nsize: 1536\n\
                     sha256: '0123'\nreceived: '2026-11-21T23:59:01.250Z'\nstatus: pending\n\
                     priority: normal\n";
        let facts = "- Original name: `yes: \"Q3\" .pdf`\n- Size: 1.5 KiB (1536 bytes)\n\
                     - SHA-256: `0123`\n- Received: 2026-11-21 23:59:01 UTC\n";
        assert_eq!(
            render(&f),
            format!(
                "{front}---\n# New file: yes: \"Q3\" .pdf\n\n\
                 A file was dropped into `Inbox/`. A copy sits next to this note (the same name \
                 without `.md`); the original stays in `Inbox/`.\n\n{facts}"
            )
        );
        assert_eq!(
            render_not_copied(&f, 1024),
            format!(
                "{front}copied: false\n---\n# New file: yes: \"Q3\" .pdf\n\n\
                 A file was dropped into `Inbox/`. It is larger than the 1KiB limit for copies \
                 (`--max-size` of the filesystem watcher), so no copy was made: the original \
                 stays in `Inbox/`.\n\n{facts}"
            )
        );
    }

    #[test]
    fn notes_read_back_as_their_typed_frontmatter() {
        let f = Facts {
            original_name: OsStr::new("on"),
            size: 7,
            sha256_hex: "ab",
            received: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        };
        let mut want = FileDropTask {
            original_name: "on".into(),
            size: 7,
            sha256: "ab".into(),
            received: "2027-01-15T08:00:00.000Z".into(),
            status: Status::Pending,
            priority: Priority::Normal,
            copied: true,
        };
        let read = |text: &str| frontmatter::parse_task::<FileDropTask>(text).map(|(t, _)| t);
        assert_eq!(read(&render(&f)), Ok(want.clone()));
        want.copied = false;
        assert_eq!(read(&render_not_copied(&f, 1)), Ok(want));
    }
}
