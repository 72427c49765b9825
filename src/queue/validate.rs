//! Checks of what arrives from the queue, which is untrusted: a result may come from a
//! compromised or buggy worker, a task message from whoever can write to the stream.
//!
//! [`validate_result`] is the one gate between a worker's answer and the vault: the
//! schema and version, every text field bounded and free of control characters, the
//! numbers finite, the session id safe to pass back as an argument, and every file
//! confined to `Plans/<name>.md` or `Pending_Approval/<name>.md` (relative, one level, no
//! `..`, no hidden or odd names, no two names that one file system would confuse), with
//! a cap on each file, on their total and on their count. No input makes it panic, and its
//! cost is linear in the input's size.

use std::collections::BTreeSet;
use std::fmt;

use ai_employee_vault::layout::Folder;

use super::wire::{ResultMessage, TaskMessage, VERSION};
use crate::agent::events::RunResult;

/// The caps a result must keep to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files in one result.
    pub max_files: usize,
    /// Bytes of one file.
    pub max_file_bytes: usize,
    /// Bytes of all files of one result.
    pub max_total_bytes: usize,
    /// Bytes of the whole message (JSON), checked before it is parsed.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 64,
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
            // JSON escapes can double a text (a quote is two bytes), plus the other fields.
            max_message_bytes: 8 * 1024 * 1024 + 64 * 1024,
        }
    }
}

/// The most bytes of a task message a worker takes (task text, handbook and prompt).
pub const MAX_TASK_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The longest task id, worker name or host name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;
/// The most files' attempts, turns and iterations a result may claim.
const MAX_COUNT: u64 = 1_000_000;
/// The highest cost a result may claim, in USD (a bigger one is a bug or a lie).
const MAX_COST_USD: f64 = 1_000_000.0;

/// A result that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidResult {
    /// The message; its `files` are the same as [`ValidResult::files`], in order.
    pub message: ResultMessage,
    /// The files, each with its folder and bare name.
    pub files: Vec<ResultFile>,
}

/// One file of a valid result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFile {
    /// [`Folder::Plans`] or [`Folder::PendingApproval`].
    pub folder: Folder,
    /// A bare name ending in `.md`.
    pub name: String,
    pub content: String,
}

/// Why a result (or a task message) was refused. `task_id` and `attempt` are what the
/// message named, when that much could be read, so the loop can retry the right task.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub task_id: Option<String>,
    pub attempt: Option<u32>,
    pub why: Why,
}

/// The class of a refusal.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// Bigger than [`Limits::max_message_bytes`].
    MessageTooBig {
        bytes: usize,
        max: usize,
    },
    /// Not JSON, or not the schema.
    Schema(String),
    /// A `v` this build does not read.
    Version(u64),
    /// A field out of bounds (`field`: what is wrong).
    Field {
        field: &'static str,
        problem: String,
    },
    /// A file's path outside what a result may write.
    Path {
        path: String,
        problem: &'static str,
    },
    /// Two files of the result with the same name (on a case-insensitive file system).
    Duplicate {
        path: String,
    },
    FileTooBig {
        path: String,
        bytes: usize,
        max: usize,
    },
    TooManyFiles {
        count: usize,
        max: usize,
    },
    TotalTooBig {
        bytes: usize,
        max: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "result refused: ")?;
        match &self.why {
            Why::MessageTooBig { bytes, max } => {
                write!(f, "the message is {bytes} bytes, more than {max}")
            }
            Why::Schema(e) => write!(f, "not a result message: {e}"),
            Why::Version(v) => write!(f, "version {v} is not known (this build reads {VERSION})"),
            Why::Field { field, problem } => write!(f, "{field}: {problem}"),
            Why::Path { path, problem } => write!(f, "file {path:?}: {problem}"),
            Why::Duplicate { path } => write!(f, "file {path:?} appears twice"),
            Why::FileTooBig { path, bytes, max } => {
                write!(f, "file {path:?} is {bytes} bytes, more than {max}")
            }
            Why::TooManyFiles { count, max } => write!(f, "{count} files, more than {max}"),
            Why::TotalTooBig { bytes, max } => {
                write!(f, "the files are {bytes} bytes in all, more than {max}")
            }
        }?;
        if let Some(t) = &self.task_id {
            write!(f, " (task {:?}", clip(t))?;
            if let Some(a) = self.attempt {
                write!(f, ", attempt {a}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// At most 80 characters of `s`, for a message.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The minimum a refused message is read for: whom it concerns.
#[derive(serde::Deserialize)]
struct Whom {
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    v: Option<u64>,
}

/// Check a worker's result (the JSON body of a results stream entry).
pub fn validate_result(bytes: &[u8], limits: &Limits) -> Result<ValidResult, Refusal> {
    if bytes.len() > limits.max_message_bytes {
        return Err(Refusal {
            task_id: None,
            attempt: None,
            why: Why::MessageTooBig {
                bytes: bytes.len(),
                max: limits.max_message_bytes,
            },
        });
    }
    let message: ResultMessage = parse(bytes)?;
    let refuse = |why: Why| Refusal {
        task_id: Some(message.task_id.clone()),
        attempt: Some(message.attempt),
        why,
    };
    check_result_fields(&message).map_err(refuse)?;
    if message.files.len() > limits.max_files {
        return Err(refuse(Why::TooManyFiles {
            count: message.files.len(),
            max: limits.max_files,
        }));
    }
    let mut total = 0usize;
    let mut seen = BTreeSet::new();
    let mut files = Vec::with_capacity(message.files.len());
    for file in &message.files {
        let (folder, name) = confine(&file.path).map_err(|problem| {
            refuse(Why::Path {
                path: clip(&file.path),
                problem,
            })
        })?;
        // Names one case-insensitive (or normalising) file system would take as one.
        if !seen.insert(format!("{}/{}", folder.name(), name.to_lowercase())) {
            return Err(refuse(Why::Duplicate {
                path: clip(&file.path),
            }));
        }
        let bytes = file.content.len();
        if bytes > limits.max_file_bytes {
            return Err(refuse(Why::FileTooBig {
                path: clip(&file.path),
                bytes,
                max: limits.max_file_bytes,
            }));
        }
        if file.content.contains('\0') {
            return Err(refuse(Why::Path {
                path: clip(&file.path),
                problem: "its text has a NUL byte",
            }));
        }
        total = total.saturating_add(bytes);
        if total > limits.max_total_bytes {
            return Err(refuse(Why::TotalTooBig {
                bytes: total,
                max: limits.max_total_bytes,
            }));
        }
        files.push(ResultFile {
            folder,
            name: name.to_string(),
            content: file.content.clone(),
        });
    }
    Ok(ValidResult { message, files })
}

/// Check a task message (the JSON body of a tasks stream entry), as a worker reads it.
pub fn validate_task(bytes: &[u8]) -> Result<TaskMessage, Refusal> {
    if bytes.len() > MAX_TASK_MESSAGE_BYTES {
        return Err(Refusal {
            task_id: None,
            attempt: None,
            why: Why::MessageTooBig {
                bytes: bytes.len(),
                max: MAX_TASK_MESSAGE_BYTES,
            },
        });
    }
    let message: TaskMessage = parse(bytes)?;
    let refuse = |field: &'static str, problem: String| Refusal {
        task_id: Some(message.task_id.clone()),
        attempt: Some(message.attempt),
        why: Why::Field { field, problem },
    };
    if let Err(p) = task_id(&message.task_id) {
        return Err(refuse("task_id", p));
    }
    if message.attempt == 0 {
        return Err(refuse("attempt", "must be at least 1".into()));
    }
    let a = &message.agent;
    match a.command.first() {
        None => return Err(refuse("agent.command", "must not be empty".into())),
        Some(p) if p.trim().is_empty() => {
            return Err(refuse(
                "agent.command",
                "the program must not be empty".into(),
            ));
        }
        Some(_) => {}
    }
    for (field, args) in [
        ("agent.command", Some(&a.command)),
        ("agent.resume", Some(&a.resume)),
        ("agent.verify", a.verify.as_ref()),
    ] {
        for arg in args.into_iter().flatten() {
            if arg.contains('\0') {
                return Err(refuse(field, "an argument has a NUL byte".into()));
            }
            if let Err(e) = crate::config::template::parse(arg) {
                return Err(refuse(field, format!("{arg:?}: {e}")));
            }
        }
    }
    if a.verify.as_ref().is_some_and(Vec::is_empty) {
        return Err(refuse("agent.verify", "must not be empty".into()));
    }
    if !(1..=20).contains(&a.max_iterations) {
        return Err(refuse(
            "agent.max_iterations",
            "must be from 1 to 20".into(),
        ));
    }
    if a.timeout_ms == 0 || a.timeout_ms > 7 * 24 * 3_600_000 {
        return Err(refuse(
            "agent.timeout_ms",
            "must be more than 0 and at most a week".into(),
        ));
    }
    if a.kill_after_ms > 3_600_000 {
        return Err(refuse(
            "agent.kill_after_ms",
            "must be at most an hour".into(),
        ));
    }
    if let Some(image) = &a.image
        && let Err(p) = crate::agent::container::check_image(image)
    {
        return Err(refuse("agent.image", p));
    }
    for (k, v) in &a.env {
        // Variables that change what a program loads or finds would widen the allowed
        // programs to anything.
        let loader = ["LD_", "DYLD_"].iter().any(|p| k.starts_with(p))
            || ["PATH", "NODE_OPTIONS", "BASH_ENV", "ENV"].contains(&k.as_str());
        if loader {
            return Err(refuse(
                "agent.env",
                format!("{:?} may not be set by the queue", clip(k)),
            ));
        }
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(refuse(
                "agent.env",
                format!("{:?} is not a variable", clip(k)),
            ));
        }
    }
    for (field, text) in [
        ("task", &message.task),
        ("handbook", &message.handbook),
        ("prompt", &message.prompt),
        ("agent.continue_prompt", &a.continue_prompt),
    ] {
        if text.contains('\0') {
            return Err(refuse(field, "has a NUL byte".into()));
        }
    }
    Ok(message)
}

/// A message with a version.
trait Versioned: serde::de::DeserializeOwned {
    fn version(&self) -> u32;
    fn whom(&self) -> (String, u32);
}

impl Versioned for ResultMessage {
    fn version(&self) -> u32 {
        self.v
    }
    fn whom(&self) -> (String, u32) {
        (self.task_id.clone(), self.attempt)
    }
}

impl Versioned for TaskMessage {
    fn version(&self) -> u32 {
        self.v
    }
    fn whom(&self) -> (String, u32) {
        (self.task_id.clone(), self.attempt)
    }
}

/// JSON → `T` of this version, or a refusal naming the task if the message names one.
fn parse<T: Versioned>(bytes: &[u8]) -> Result<T, Refusal> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(m) if m.version() == VERSION => Ok(m),
        Ok(m) => {
            let (task_id, attempt) = m.whom();
            Err(Refusal {
                task_id: Some(clip(&task_id)),
                attempt: Some(attempt),
                why: Why::Version(u64::from(m.version())),
            })
        }
        Err(e) => {
            // Read again for whom it concerns only on a refusal (rare).
            let whom = serde_json::from_slice::<Whom>(bytes).ok();
            let (task_id, attempt, v) = whom.map_or((None, None, None), |w| {
                (w.task_id.map(|t| clip(&t)), w.attempt, w.v)
            });
            let why = match v {
                Some(v) if v != u64::from(VERSION) => Why::Version(v),
                _ => Why::Schema(crate::agent::task::one_line(&e.to_string(), 200)),
            };
            Err(Refusal {
                task_id,
                attempt,
                why,
            })
        }
    }
}

fn check_result_fields(m: &ResultMessage) -> Result<(), Why> {
    let field = |field: &'static str, problem: String| Why::Field { field, problem };
    task_id(&m.task_id).map_err(|p| field("task_id", p))?;
    if m.attempt == 0 {
        return Err(field("attempt", "must be at least 1".into()));
    }
    for (name, value) in [("worker", &m.worker), ("host", &m.host)] {
        plain_name(value).map_err(|p| field(name, p))?;
    }
    if let Some(r) = &m.reason {
        if r.len() > MAX_REASON_BYTES {
            return Err(field(
                "reason",
                format!("{} bytes, more than {MAX_REASON_BYTES}", r.len()),
            ));
        }
        if r.contains('\0') {
            return Err(field("reason", "has a NUL byte".into()));
        }
    }
    if !m.cost_usd.is_finite() || !(0.0..=MAX_COST_USD).contains(&m.cost_usd) {
        return Err(field(
            "cost_usd",
            format!("must be from 0 to {MAX_COST_USD}, found {}", m.cost_usd),
        ));
    }
    if m.turns > MAX_COUNT || u64::from(m.iterations) > MAX_COUNT {
        return Err(field("turns", format!("must be at most {MAX_COUNT}")));
    }
    if let Some(s) = &m.session_id
        && !crate::agent::outcome::session_id_is_safe(s)
    {
        return Err(field(
            "session_id",
            "must be letters, digits, '-' and '_' (at most 128), starting with a letter or \
             digit"
                .into(),
        ));
    }
    if m.status == RunResult::NeedsSetup || m.status == RunResult::Interrupted {
        // A worker that cannot run the agent, or was stopped, answers nothing: the entry is
        // reclaimed by another worker.
        return Err(field(
            "status",
            format!("{:?} is not a worker's answer", m.status),
        ));
    }
    Ok(())
}

/// A task id: a file stem of the vault.
fn task_id(id: &str) -> Result<(), String> {
    plain_name(id)?;
    if id.starts_with('.') {
        return Err("must not start with '.'".into());
    }
    if id.contains(['/', '\\']) {
        return Err("must not contain '/' or '\\'".into());
    }
    Ok(())
}

/// Not empty, at most [`MAX_NAME_BYTES`], no control character, no space at either end.
fn plain_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(format!("{} bytes, more than {MAX_NAME_BYTES}", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if s.trim() != s {
        return Err("must not start or end with a space".into());
    }
    Ok(())
}

/// `Plans/<name>.md` or `Pending_Approval/<name>.md` → the folder and the name.
pub fn confine(path: &str) -> Result<(Folder, &str), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    if path.contains('\\') {
        return Err("the path has a backslash");
    }
    if path.chars().any(char::is_control) {
        return Err("the path has a control character");
    }
    let mut parts = path.split('/');
    let (Some(folder), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("the path must be Plans/<name>.md or Pending_Approval/<name>.md");
    };
    if folder == ".." || name == ".." || folder == "." || name == "." {
        return Err("the path has '.' or '..'");
    }
    let folder = match folder {
        "Plans" => Folder::Plans,
        "Pending_Approval" => Folder::PendingApproval,
        _ => return Err("only Plans/ and Pending_Approval/ may be written"),
    };
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.starts_with('.') {
        return Err("the name is hidden (starts with '.')");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("the name is longer than 255 bytes");
    }
    if name.trim() != name {
        return Err("the name starts or ends with a space");
    }
    let Some(stem) = name.strip_suffix(".md") else {
        return Err("the name must end in .md");
    };
    if stem.is_empty() || stem.trim().is_empty() {
        return Err("the name has nothing before .md");
    }
    Ok((folder, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::wire::FileOut;

    fn good() -> ResultMessage {
        ResultMessage {
            v: VERSION,
            task_id: "EMAIL_20260101T000000_hello".into(),
            attempt: 2,
            worker: "w1".into(),
            host: "host-a".into(),
            status: RunResult::WaitingApproval,
            reason: None,
            cost_usd: 0.25,
            turns: 4,
            session_id: Some("0b9c-11aa_x".into()),
            iterations: 1,
            files: vec![
                FileOut {
                    path: "Plans/PLAN_hello.md".into(),
                    content: "# Plan\n".into(),
                },
                FileOut {
                    path: "Pending_Approval/EMAIL_reply.md".into(),
                    content: "---\ntype: approval_request\n---\n".into(),
                },
            ],
            finished_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        }
    }

    fn check(m: &ResultMessage) -> Result<ValidResult, Refusal> {
        validate_result(&m.to_json(), &Limits::default())
    }

    fn refused(m: &ResultMessage) -> Why {
        match check(m) {
            Ok(_) => panic!("accepted: {m:?}"),
            Err(r) => {
                assert_eq!(r.task_id.as_deref(), Some(m.task_id.as_str()));
                r.why
            }
        }
    }

    #[test]
    fn a_good_result_passes_with_its_files_typed() {
        let v = check(&good()).unwrap();
        assert_eq!(v.files.len(), 2);
        assert_eq!(v.files[0].folder, Folder::Plans);
        assert_eq!(v.files[0].name, "PLAN_hello.md");
        assert_eq!(v.files[1].folder, Folder::PendingApproval);
        assert_eq!(v.message, good());
    }

    #[test]
    fn paths_outside_plans_and_pending_approval_are_refused() {
        for path in [
            "",
            "/etc/passwd",
            "/Plans/x.md",
            "../Plans/x.md",
            "Plans/../Approved/x.md",
            "Plans/../../x.md",
            "Plans/..",
            "Plans/.",
            "./Plans/x.md",
            "Plans/sub/x.md",
            "Plans//x.md",
            "Plans/",
            "Plans",
            "Approved/x.md",
            "Done/x.md",
            "credentials/gmail.toml",
            "ai-employee.toml",
            "Dashboard.md",
            "plans/x.md",
            "Plans\\..\\x.md",
            "Plans/x.md\0.txt",
            "Plans/x\n.md",
            "Plans/.hidden.md",
            "Plans/x.txt",
            "Plans/x.MD",
            "Plans/.md",
            "Plans/ x.md",
            "Plans/x.md ",
            "Plans/ .md",
            "Pending_Approval/x.sh",
        ] {
            let mut m = good();
            m.files[0].path = path.into();
            match refused(&m) {
                Why::Path { .. } => {}
                other => panic!("{path:?}: {other:?}"),
            }
        }
        let mut m = good();
        m.files[0].path = format!("Plans/{}.md", "a".repeat(300));
        assert!(matches!(refused(&m), Why::Path { .. }));
    }

    #[test]
    fn duplicates_even_by_case_are_refused() {
        let mut m = good();
        m.files[1].path = "Plans/plan_HELLO.md".into();
        assert!(matches!(refused(&m), Why::Duplicate { .. }));
        // The same name in the two folders is two files.
        let mut m = good();
        m.files[1].path = "Pending_Approval/PLAN_hello.md".into();
        assert!(check(&m).is_ok());
    }

    #[test]
    fn sizes_and_counts_are_capped() {
        let limits = Limits {
            max_files: 3,
            max_file_bytes: 10,
            max_total_bytes: 25,
            max_message_bytes: 2000,
        };
        let with = |files: Vec<(&str, usize)>| {
            let mut m = good();
            m.files = files
                .into_iter()
                .map(|(p, n)| FileOut {
                    path: p.into(),
                    content: "x".repeat(n),
                })
                .collect();
            validate_result(&m.to_json(), &limits).map_err(|r| r.why)
        };
        assert!(with(vec![("Plans/a.md", 10), ("Plans/b.md", 10)]).is_ok());
        assert!(matches!(
            with(vec![("Plans/a.md", 11)]),
            Err(Why::FileTooBig {
                bytes: 11,
                max: 10,
                ..
            })
        ));
        assert!(matches!(
            with(vec![
                ("Plans/a.md", 10),
                ("Plans/b.md", 10),
                ("Plans/c.md", 10)
            ]),
            Err(Why::TotalTooBig { .. })
        ));
        assert!(matches!(
            with(vec![
                ("Plans/a.md", 1),
                ("Plans/b.md", 1),
                ("Plans/c.md", 1),
                ("Plans/d.md", 1)
            ]),
            Err(Why::TooManyFiles { count: 4, max: 3 })
        ));
        let huge = vec![b' '; 2001];
        assert!(matches!(
            validate_result(&huge, &limits).map_err(|r| r.why),
            Err(Why::MessageTooBig { bytes: 2001, .. })
        ));
        // The default caps: a 2 MiB file is refused.
        let mut m = good();
        m.files[0].content = "y".repeat(2 * 1024 * 1024);
        assert!(matches!(refused(&m), Why::FileTooBig { .. }));
    }

    #[test]
    fn bad_schema_and_versions_are_refused() {
        let limits = Limits::default();
        let why = |b: &[u8]| validate_result(b, &limits).map_err(|r| r.why).err();
        assert!(matches!(why(b""), Some(Why::Schema(_))));
        assert!(matches!(why(b"not json"), Some(Why::Schema(_))));
        assert!(matches!(why(b"[]"), Some(Why::Schema(_))));
        assert!(matches!(why(b"{}"), Some(Why::Schema(_))));
        assert!(matches!(why(b"\xff\xfe"), Some(Why::Schema(_))));
        // An unknown field, a missing one, a wrong type, an unknown status.
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v["extra"] = true.into();
        let r = validate_result(v.to_string().as_bytes(), &limits).unwrap_err();
        assert!(matches!(r.why, Why::Schema(_)));
        assert_eq!(r.task_id.as_deref(), Some("EMAIL_20260101T000000_hello"));
        assert_eq!(r.attempt, Some(2));
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("files");
        assert!(matches!(
            why(v.to_string().as_bytes()),
            Some(Why::Schema(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v["attempt"] = "2".into();
        assert!(matches!(
            why(v.to_string().as_bytes()),
            Some(Why::Schema(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v["status"] = "shipped".into();
        assert!(matches!(
            why(v.to_string().as_bytes()),
            Some(Why::Schema(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v["files"][0]["mode"] = 0o777.into();
        assert!(matches!(
            why(v.to_string().as_bytes()),
            Some(Why::Schema(_))
        ));
        // Another version, with or without new fields.
        let mut m = good();
        m.v = 2;
        assert_eq!(check(&m).unwrap_err().why, Why::Version(2));
        let mut v: serde_json::Value = serde_json::from_slice(&good().to_json()).unwrap();
        v["v"] = 3.into();
        v["new_field"] = 1.into();
        assert!(matches!(
            why(v.to_string().as_bytes()),
            Some(Why::Version(3))
        ));
    }

    #[test]
    fn fields_out_of_bounds_are_refused() {
        type Change = Box<dyn Fn(&mut ResultMessage)>;
        let cases: Vec<(&str, Change)> = vec![
            ("task_id", Box::new(|m| m.task_id = String::new())),
            ("task_id", Box::new(|m| m.task_id = "../x".into())),
            ("task_id", Box::new(|m| m.task_id = ".hidden".into())),
            ("task_id", Box::new(|m| m.task_id = "a\nb".into())),
            ("task_id", Box::new(|m| m.task_id = "x".repeat(256))),
            ("attempt", Box::new(|m| m.attempt = 0)),
            ("worker", Box::new(|m| m.worker = "w\u{1b}[31m".into())),
            ("host", Box::new(|m| m.host = String::new())),
            ("reason", Box::new(|m| m.reason = Some("r".repeat(5000)))),
            ("cost_usd", Box::new(|m| m.cost_usd = -1.0)),
            ("cost_usd", Box::new(|m| m.cost_usd = 1e12)),
            ("turns", Box::new(|m| m.turns = u64::MAX)),
            (
                "session_id",
                Box::new(|m| m.session_id = Some("--evil".into())),
            ),
            (
                "session_id",
                Box::new(|m| m.session_id = Some("a b".into())),
            ),
            ("status", Box::new(|m| m.status = RunResult::NeedsSetup)),
        ];
        for (field, change) in cases {
            let mut m = good();
            change(&mut m);
            match refused(&m) {
                Why::Field { field: f, .. } => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // A NaN cost cannot even be written as JSON: it arrives as null, a schema error.
        let mut m = good();
        m.cost_usd = f64::NAN;
        assert!(matches!(refused(&m), Why::Schema(_)));
        let mut m = good();
        m.files[0].content = "a\0b".into();
        assert!(matches!(refused(&m), Why::Path { .. }));
    }

    #[test]
    fn refusals_read_as_one_line_naming_the_task() {
        let mut m = good();
        m.files[0].path = "../../etc/cron.d/x.md".into();
        let text = check(&m).unwrap_err().to_string();
        assert_eq!(
            text,
            "result refused: file \"../../etc/cron.d/x.md\": the path must be Plans/<name>.md \
             or Pending_Approval/<name>.md (task \"EMAIL_20260101T000000_hello\", attempt 2)"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn task_messages_are_checked_too() {
        use crate::queue::wire::AgentSpec;
        let t = TaskMessage {
            v: VERSION,
            task_id: "T1".into(),
            attempt: 1,
            task: "# T1\n".into(),
            handbook: String::new(),
            prompt: "do it".into(),
            agent: AgentSpec {
                command: vec!["claude".into(), "-p".into(), "{prompt}".into()],
                resume: vec!["--resume".into(), "{session_id}".into()],
                continue_prompt: "go on".into(),
                verify: None,
                max_iterations: 3,
                timeout_ms: 60_000,
                kill_after_ms: 1000,
                env: Default::default(),
                runner: None,
                image: None,
            },
            published_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        };
        assert_eq!(validate_task(&t.to_json()).unwrap(), t);
        type Change = Box<dyn Fn(&mut TaskMessage)>;
        let bad: Vec<Change> = vec![
            Box::new(|t| t.task_id = "../../x".into()),
            Box::new(|t| t.attempt = 0),
            Box::new(|t| t.agent.command.clear()),
            Box::new(|t| t.agent.command[0] = " ".into()),
            Box::new(|t| t.agent.command.push("{nope}".into())),
            Box::new(|t| t.agent.max_iterations = 0),
            Box::new(|t| t.agent.timeout_ms = 0),
            Box::new(|t| t.agent.verify = Some(vec![])),
            Box::new(|t| {
                t.agent.env.insert("A=B".into(), "x".into());
            }),
            Box::new(|t| {
                t.agent.env.insert("LD_PRELOAD".into(), "/tmp/x.so".into());
            }),
            Box::new(|t| {
                t.agent.env.insert("PATH".into(), "/tmp".into());
            }),
            Box::new(|t| t.v = 9),
            Box::new(|t| t.agent.image = Some("--privileged".into())),
        ];
        for change in bad {
            let mut m = t.clone();
            change(&mut m);
            assert!(validate_task(&m.to_json()).is_err(), "{m:?}");
        }
    }
}
