//! The approval gate's files: the request to run a sensitive task
//! (`Pending_Approval/RUN_<task>.md`, action `run_task`, which the approval handler
//! executes like every approval), the drafts the agent links to its task (`task: <id>`),
//! and where each request is now.

use std::io;

use ai_employee_vault::frontmatter;
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{Dir, Kind};
use chrono::{DateTime, Utc};
use serde_norway::Mapping;

use super::task::{self, TaskDoc, time_text};

/// Where an approval request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    Pending(String),
    Approved(String),
    Done(String),
    Rejected(String),
    Failed(String),
}

impl Where {
    /// A person (and the approval handler) decided it.
    pub fn decided(&self) -> bool {
        matches!(self, Where::Done(_) | Where::Rejected(_) | Where::Failed(_))
    }

    /// For the agent's continuation prompt.
    pub fn describe(&self) -> String {
        match self {
            Where::Pending(p) => format!("still waiting ({p})"),
            Where::Approved(p) => format!("approved, being carried out ({p})"),
            Where::Done(p) => format!("approved and carried out ({p})"),
            Where::Rejected(p) => format!("rejected by a person ({p})"),
            Where::Failed(p) => format!("approved but it failed; see the result in {p}"),
        }
    }
}

/// Find the request `rel` (`Pending_Approval/NAME`) by its name in the folders it moves
/// through.
pub fn locate<'a>(of: impl Fn(Folder) -> &'a Dir, rel: &str) -> Option<Where> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let is_file = |f: Folder| of(f).stat(name).is_ok_and(|s| s.kind == Kind::File);
    // Decided first: a file copied rather than moved counts where it ended.
    if is_file(Folder::Rejected) {
        return Some(Where::Rejected(Folder::Rejected.rel(name)));
    }
    if is_file(Folder::Failed) {
        return Some(Where::Failed(Folder::Failed.rel(name)));
    }
    if is_file(Folder::Done) {
        return Some(Where::Done(Folder::Done.rel(name)));
    }
    if is_file(Folder::Approved) {
        return Some(Where::Approved(Folder::Approved.rel(name)));
    }
    if is_file(Folder::PendingApproval) {
        return Some(Where::Pending(Folder::PendingApproval.rel(name)));
    }
    None
}

/// The `result` the approval handler wrote into a request it finished (`rel` names it,
/// `Done/NAME`; `dir` is its folder).
pub fn result_of(dir: &Dir, rel: &str) -> Option<String> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    TaskDoc::read(dir, name)
        .ok()
        .and_then(|(d, _)| d.str("result").map(str::to_string))
}

/// The requests in `pending` whose frontmatter says `task: <id>`.
pub fn drafts_of(pending: &Dir, id: &str) -> Vec<String> {
    let Ok(list) = pending.list() else {
        return Vec::new();
    };
    let mut out: Vec<String> = list
        .into_iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| e.name.into_string().ok())
        .filter(|n| task::is_task_name(n))
        .filter(|n| TaskDoc::read(pending, n).is_ok_and(|(d, _)| d.str("task") == Some(id)))
        .collect();
    out.sort();
    out
}

/// Write `RUN_<id>.md` into `pending` (never replacing a file there: an existing request
/// of the same name is reused). Returns its name.
pub fn request_run(
    pending: &Dir,
    id: &str,
    title: &str,
    reason: &str,
    task_file: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> io::Result<String> {
    let name = format!("RUN_{id}.md");
    let mut front = Mapping::new();
    for (k, v) in [
        ("type", "approval_request"),
        ("action", "run_task"),
        ("task", id),
        ("title", title),
        ("reason", reason),
    ] {
        frontmatter::set(&mut front, k, v);
    }
    frontmatter::set(&mut front, "created", time_text(now));
    frontmatter::set(&mut front, "expires", time_text(expires));
    frontmatter::set(&mut front, "status", "pending");
    let body = format!(
        "The task loop asks to run the AI agent on this task: {title} ({task_file}).\n\n\
         Why it asks: {reason}.\n\n\
         Move this file to Approved/ to let it run, or to Rejected/ to reject the task.\n"
    );
    let text = frontmatter::render(&front, &body);
    pending.create_new(&name, text.as_bytes(), 0o644)?;
    Ok(name)
}
