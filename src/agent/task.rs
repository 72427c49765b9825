//! A task file as the loop reads and edits it: the facts the score is made from, and the
//! keys the loop keeps in its frontmatter (`state`, `attempt`, `retry_at` …), which are
//! the loop's durable memory: a restarted loop resumes every task from them.
//!
//! A task is any `*.md` in `Needs_Action/` or `In_Progress/` except hidden files and the
//! copy a filesystem task describes (`FILE_x_report.pdf` beside `FILE_x_report.pdf.md`,
//! which travels with it). A file without frontmatter is a task whose frontmatter is
//! empty; frontmatter that does not parse makes the task invalid (it goes to `Failed/`).

use std::ffi::OsString;
use std::io::{self, Write};

use ai_employee_vault::frontmatter::{self, FrontmatterError};
use ai_employee_vault::nofollow::{Dir, Kind, Replace, Stat};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_norway::{Mapping, Value};

use super::snapshot::TaskState;

/// The largest task file the loop reads (a task is a note, not an attachment).
pub const MAX_TASK_BYTES: u64 = 1024 * 1024;

/// The keys the loop writes (documented in docs/agent.md).
pub mod keys {
    pub const STATE: &str = "state";
    pub const STATUS: &str = "status";
    pub const ATTEMPT: &str = "attempt";
    pub const QUEUED_AT: &str = "queued_at";
    pub const STARTED_AT: &str = "started_at";
    pub const FINISHED_AT: &str = "finished_at";
    pub const RETRY_AT: &str = "retry_at";
    pub const LAST_ERROR: &str = "last_error";
    pub const SESSION_ID: &str = "session_id";
    pub const COST_USD: &str = "cost_usd";
    pub const TURNS: &str = "turns";
    pub const RUN_APPROVAL: &str = "run_approval";
    pub const APPROVALS: &str = "approvals";
    pub const WAITING_SINCE: &str = "waiting_since";
    pub const RESULT: &str = "result";
}

/// Whether `name` in a task folder is a task file.
pub fn is_task_name(name: &str) -> bool {
    name.ends_with(".md") && !name.starts_with('.') && name.len() > 3
}

/// The name of the copy a filesystem task would describe (`X` for `X.md`): only for the
/// filesystem watcher's names ([`may_be_a_copy`]), so that no other task costs a lookup
/// of a copy it cannot have (four per task, in folders of thousands).
pub fn companion_of(name: &str) -> Option<&str> {
    name.strip_suffix(".md").filter(|c| may_be_a_copy(c))
}

/// Whether `name` can be the copy a filesystem task describes (its note `name.md` beside).
pub fn may_be_a_copy(name: &str) -> bool {
    name.starts_with(ai_employee_filesystem::names::TASK_PREFIX)
}

/// A task's id: its file name without `.md`.
pub fn id_of(name: &str) -> &str {
    name.strip_suffix(".md").unwrap_or(name)
}

/// What the loop read from a task file.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDoc {
    pub front: Mapping,
    pub body: String,
}

/// Why a task file cannot be a task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frontmatter(#[from] FrontmatterError),
    #[error("the file is larger than {} KiB", MAX_TASK_BYTES / 1024)]
    TooLarge,
    #[error("the file is not UTF-8 text")]
    NotText,
}

impl TaskError {
    /// Whether the file is there but cannot be a task (→ `Failed/`), rather than gone or
    /// unreadable for a passing reason.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, TaskError::Io(_))
    }

    /// Whether the file is not there (removed, or moved away, by someone else).
    pub fn is_gone(&self) -> bool {
        matches!(self, TaskError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl TaskDoc {
    /// Parse a task file's text. No frontmatter at all is an empty one.
    pub fn parse(text: &str) -> Result<TaskDoc, FrontmatterError> {
        match frontmatter::parse(text) {
            Ok(doc) => Ok(TaskDoc {
                front: doc.front,
                body: doc.body,
            }),
            Err(FrontmatterError::MissingStart) => Ok(TaskDoc {
                front: Mapping::new(),
                body: text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Read `name` in `dir` (never through a symlink).
    pub fn read(dir: &Dir, name: &str) -> Result<(TaskDoc, Vec<u8>), TaskError> {
        let bytes = read_limited(dir, name)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| TaskError::NotText)?;
        Ok((TaskDoc::parse(text)?, bytes))
    }

    pub fn render(&self) -> String {
        frontmatter::render(&self.front, &self.body)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        frontmatter::get_str(&self.front, key)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn time(&self, key: &str) -> Option<DateTime<Utc>> {
        self.str(key).and_then(parse_time)
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        match self.front.get(key)? {
            Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.front.get(key)? {
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
            Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        match self.front.get(key) {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
            _ => Vec::new(),
        }
    }

    /// The loop's state key, if it wrote one.
    pub fn state(&self) -> Option<LoopState> {
        self.str(keys::STATE).and_then(LoopState::parse)
    }

    /// A readable title: `title`, `subject`, the first Markdown heading, else `id`.
    pub fn title(&self, id: &str) -> String {
        let heading = self
            .body
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim())
            .filter(|l| !l.is_empty());
        let t = self
            .str("title")
            .or_else(|| self.str("subject"))
            .or(heading)
            .unwrap_or(id);
        one_line(t, 120)
    }

    /// The text searched for keywords: title, subject and body (the first 64 KiB).
    pub fn keyword_text(&self) -> String {
        let mut s = String::new();
        for k in ["title", "subject"] {
            if let Some(v) = self.str(k) {
                s.push_str(v);
                s.push('\n');
            }
        }
        let mut end = self.body.len().min(64 * 1024);
        while !self.body.is_char_boundary(end) {
            end -= 1;
        }
        s.push_str(&self.body[..end]);
        s
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        frontmatter::set(&mut self.front, key, value);
    }

    pub fn set_time(&mut self, key: &str, t: DateTime<Utc>) {
        self.set(key, time_text(t));
    }

    pub fn remove(&mut self, key: &str) {
        self.front.remove(key);
    }
}

/// The loop's state of a task, as written in its frontmatter (`state:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopState {
    Pending,
    AwaitingRunApproval,
    Running,
    WaitingApproval,
    Retry,
    NeedsReview,
    Done,
    Failed,
    Rejected,
}

impl LoopState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoopState::Pending => "pending",
            LoopState::AwaitingRunApproval => "awaiting_run_approval",
            LoopState::Running => "running",
            LoopState::WaitingApproval => "waiting_approval",
            LoopState::Retry => "retry",
            LoopState::NeedsReview => "needs_review",
            LoopState::Done => "done",
            LoopState::Failed => "failed",
            LoopState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<LoopState> {
        [
            LoopState::Pending,
            LoopState::AwaitingRunApproval,
            LoopState::Running,
            LoopState::WaitingApproval,
            LoopState::Retry,
            LoopState::NeedsReview,
            LoopState::Done,
            LoopState::Failed,
            LoopState::Rejected,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Waiting for approval requests to be decided (to run, or to go on).
    pub fn waits_for_approval(self) -> bool {
        matches!(
            self,
            LoopState::AwaitingRunApproval | LoopState::WaitingApproval
        )
    }

    /// As `tasks` shows it (final states are not shown: their files left the queue).
    pub fn view(self) -> Option<TaskState> {
        Some(match self {
            LoopState::Pending => TaskState::Pending,
            LoopState::AwaitingRunApproval => TaskState::AwaitingRunApproval,
            LoopState::Running => TaskState::Running,
            LoopState::WaitingApproval => TaskState::WaitingApproval,
            LoopState::Retry => TaskState::Retry,
            LoopState::NeedsReview => TaskState::NeedsReview,
            LoopState::Done | LoopState::Failed | LoopState::Rejected => return None,
        })
    }
}

/// RFC 3339, or a date (`2026-12-07`, end of that day UTC), or `2026-12-07 17:00` (UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// How the loop writes times into frontmatter and events.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `s` on one line, control characters dropped, at most `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

fn read_limited(dir: &Dir, name: &str) -> Result<Vec<u8>, TaskError> {
    read_limited_stat(dir, name).map(|(bytes, _)| bytes)
}

/// [`read_limited`], and the file's status as opened.
fn read_limited_stat(dir: &Dir, name: &str) -> Result<(Vec<u8>, Stat), TaskError> {
    let (bytes, st) = match dir.read_stat(name, Some(MAX_TASK_BYTES + 1)) {
        Ok(x) => x,
        // Such a file is there and can never be a task (not a passing failure to read).
        Err(e) if ai_employee_vault::nofollow::is_over_limit(&e) => {
            return Err(TaskError::TooLarge);
        }
        Err(e) => return Err(e.into()),
    };
    if bytes.len() as u64 > MAX_TASK_BYTES {
        return Err(TaskError::TooLarge);
    }
    Ok((bytes, st))
}

/// The prefix of the hidden temporary names [`update`] writes under (and leaves the
/// replaced text under, until it is removed).
pub const TEMP_PREFIX: &str = ".tmp-task-";

/// What becomes of the text an edit replaced, left under a hidden temporary name
/// ([`TEMP_PREFIX`]) in the task's folder once the new text is in place.
pub trait Leftover {
    fn left(&self, dir: &Dir, name: OsString);
}

/// Removed at once.
pub struct RemoveNow;

impl Leftover for RemoveNow {
    fn left(&self, dir: &Dir, name: OsString) {
        // Best effort: a leftover that cannot be removed holds nothing the task still needs.
        let _ = dir.remove_file(&name);
    }
}

/// Edit the frontmatter of `name` in `dir` with `edit`, atomically, without losing a
/// change someone else saves at the same time: the new text is swapped in
/// (`RENAME_EXCHANGE`), and if what it replaced is not what the edit started from, it is
/// swapped back and the edit made again on the newer text. `durable`: fsync before the
/// swap (final states); the loop's intermediate states need only be atomic. Returns the
/// document as written.
pub fn update(
    dir: &Dir,
    name: &str,
    durable: bool,
    edit: impl FnMut(&mut TaskDoc),
) -> Result<TaskDoc, TaskError> {
    update_with(dir, name, durable, &RemoveNow, edit)
}

/// [`update`], with the replaced text handed to `leftover` (the task loop removes it off
/// its scheduling thread: freeing a file's blocks was a tenth of its CPU per task).
pub fn update_with(
    dir: &Dir,
    name: &str,
    durable: bool,
    leftover: &dyn Leftover,
    mut edit: impl FnMut(&mut TaskDoc),
) -> Result<TaskDoc, TaskError> {
    const ROUNDS: usize = 16;
    for _ in 0..ROUNDS {
        // Opened without following a symlink, and refused when not a regular file.
        let (before, stat) = read_limited_stat(dir, name)?;
        let text = std::str::from_utf8(&before).map_err(|_| TaskError::NotText)?;
        let mut doc = TaskDoc::parse(text)?;
        edit(&mut doc);
        let text = doc.render();
        let mut tmp = dir.temp_file(TEMP_PREFIX, "", stat.mode)?;
        tmp.write_all(text.as_bytes())?;
        if durable {
            tmp.file().sync_all()?;
        }
        if !dir.exchange(tmp.name(), name)? {
            // No atomic exchange here: check, then replace.
            if read_limited(dir, name)? != before {
                continue;
            }
            dir.rename(tmp.name(), dir, name, Replace::Yes)?;
            tmp.keep();
            if durable {
                dir.sync()?;
            }
            return Ok(doc);
        }
        // The temp name now holds what was in place.
        let replaced = dir.read(tmp.name(), Some(MAX_TASK_BYTES + 1))?;
        if replaced == before {
            if durable {
                dir.sync()?;
            }
            tmp.keep();
            leftover.left(dir, tmp.name().to_os_string());
            return Ok(doc);
        }
        // Someone saved in between: put theirs back and start again from it.
        dir.exchange(tmp.name(), name)?;
    }
    Err(TaskError::Io(io::Error::other(format!(
        "{name} kept changing; gave up after {ROUNDS} attempts"
    ))))
}

/// Move task `name` (and the copy it describes, if any) from `from` to `to` without
/// replacing anything there: a name already taken gets `-2`, `-3` … before `.md`.
/// Returns the name it has in `to`.
pub fn move_task(from: &Dir, to: &Dir, name: &str) -> io::Result<String> {
    let stem = id_of(name);
    let mut target = name.to_string();
    for n in 2..=1000 {
        match from.rename(name, to, &target, Replace::No) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                target = format!("{stem}-{n}.md");
            }
            Err(e) => return Err(e),
        }
        if n == 1000 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name}: every name up to -1000 is taken"),
            ));
        }
    }
    if let Some(copy) = companion_of(name)
        && from.stat(copy).is_ok_and(|s| s.kind == Kind::File)
    {
        let copy_target = companion_of(&target).unwrap_or(copy);
        if let Err(e) = from.rename(copy, to, copy_target, Replace::No) {
            tracing::warn!("{copy} did not move with its task {name}: {e}");
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_without_frontmatter_is_a_task() {
        let d = TaskDoc::parse("# Call the bank\nabout the loan").unwrap();
        assert!(d.front.is_empty());
        assert_eq!(d.title("x"), "Call the bank");
    }

    #[test]
    fn broken_frontmatter_is_an_error() {
        assert!(TaskDoc::parse("---\ntitle: [\n---\nbody").is_err());
        assert!(TaskDoc::parse("---\ntitle: x\n").is_err());
    }

    #[test]
    fn times() {
        assert!(parse_time("2026-12-07T10:00:00Z").is_some());
        assert!(parse_time("2026-12-07T10:00:00+02:00").is_some());
        assert_eq!(
            parse_time("2026-12-07").map(time_text).as_deref(),
            Some("2026-12-07T23:59:59Z")
        );
        assert!(parse_time("2026-12-07 17:00").is_some());
        assert!(parse_time("tomorrow").is_none());
    }

    #[test]
    fn names() {
        assert!(is_task_name("EMAIL_x.md"));
        assert!(!is_task_name(".tmp-task-1.md"));
        assert!(!is_task_name("FILE_x_report.pdf"));
        assert_eq!(
            companion_of("FILE_x_report.pdf.md"),
            Some("FILE_x_report.pdf")
        );
        assert_eq!(companion_of("FILE_x_notes.md.md"), Some("FILE_x_notes.md"));
        assert_eq!(companion_of(".md"), None);
        // Only the filesystem watcher's tasks describe a copy.
        assert_eq!(companion_of("EMAIL_x.md"), None);
        assert_eq!(companion_of("report.pdf.md"), None);
        assert!(may_be_a_copy("FILE_x_notes.md") && !may_be_a_copy("notes.md"));
    }

    #[test]
    fn update_keeps_a_concurrent_save() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("t.md"), "---\ntitle: a\n---\nbody\n").unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut first = true;
        let doc = update(&dir, "t.md", false, |d| {
            if first {
                first = false;
                // A person saves (rename over) while the loop edits.
                std::fs::write(tmp.path().join("x"), "---\ntitle: b\n---\nedited\n").unwrap();
                std::fs::rename(tmp.path().join("x"), tmp.path().join("t.md")).unwrap();
            }
            d.set(keys::STATE, "running");
        })
        .unwrap();
        assert_eq!(doc.str("title"), Some("b"));
        let text = std::fs::read_to_string(tmp.path().join("t.md")).unwrap();
        assert!(
            text.contains("edited") && text.contains("state: running"),
            "{text}"
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }

    #[test]
    fn move_task_never_replaces_and_takes_the_copy_along() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("a/FILE_r.pdf.md"), "new").unwrap();
        std::fs::write(tmp.path().join("a/FILE_r.pdf"), "pdf").unwrap();
        std::fs::write(tmp.path().join("b/FILE_r.pdf.md"), "old").unwrap();
        let (a, b) = (
            Dir::open(&tmp.path().join("a")).unwrap(),
            Dir::open(&tmp.path().join("b")).unwrap(),
        );
        let name = move_task(&a, &b, "FILE_r.pdf.md").unwrap();
        assert_eq!(name, "FILE_r.pdf-2.md");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b/FILE_r.pdf.md")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b/FILE_r.pdf-2.md")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b/FILE_r.pdf-2")).unwrap(),
            "pdf"
        );
    }
}
