//! `tasks show | add | retry | pause | resume`: each changes (or reads) the vault's files
//! the way the loop expects, never through a symlink, each write atomic.

use std::path::Path;

use ai_employee_vault::exit_codes;
use ai_employee_vault::frontmatter;
use ai_employee_vault::layout::{Folder, Vault};
use ai_employee_vault::nofollow::{Dir, Kind};
use chrono::Utc;
use serde_norway::Mapping;

use super::{NOT_RUNNING, loop_runs};
use crate::agent::engine::STOP_FILE;
use crate::agent::task::{self, LoopState, TaskDoc, keys, time_text};
use crate::cli::TaskPriority;
use crate::commands::{Failure, fail};

/// Where tasks can be, in the order `show` and `retry` look.
const FOLDERS: [Folder; 5] = [
    Folder::InProgress,
    Folder::NeedsAction,
    Folder::Failed,
    Folder::Rejected,
    Folder::Done,
];

fn open(vault: &Path, f: Folder) -> Result<Dir, String> {
    let root =
        Dir::open(vault).map_err(|e| format!("cannot open the vault {}: {e}", vault.display()))?;
    root.make_folder(f.name(), false)
        .map_err(|e| format!("cannot open {}: {e}", vault.join(f.name()).display()))
}

/// Find the task `id` (or the one task whose id starts with it).
fn find(vault: &Path, id: &str) -> Result<(Folder, Dir, String), String> {
    let id = id.trim_end_matches(".md");
    let mut prefixed = Vec::new();
    for f in FOLDERS {
        let Ok(dir) = open(vault, f) else { continue };
        let exact = format!("{id}.md");
        if dir.stat(&exact).is_ok_and(|s| s.kind == Kind::File) {
            return Ok((f, dir, exact));
        }
        if let Ok(list) = dir.list() {
            for e in list {
                let Some(n) = e.name.to_str() else { continue };
                if e.kind == Kind::File && task::is_task_name(n) && n.starts_with(id) {
                    prefixed.push((f, n.to_string()));
                }
            }
        }
    }
    match prefixed.len() {
        0 => Err(format!(
            "no task {id:?} in {}",
            FOLDERS.map(Folder::name).join(", ")
        )),
        1 => {
            let (f, n) = prefixed.remove(0);
            Ok((f, open(vault, f)?, n))
        }
        n => Err(format!(
            "{id:?} matches {n} tasks ({}); give more of the name",
            prefixed
                .iter()
                .take(5)
                .map(|(f, n)| f.rel(n))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// [`find`], then read the task.
fn find_and_read(vault: &Path, id: &str) -> Result<(Folder, Dir, String, TaskDoc), String> {
    let (folder, dir, name) = find(vault, id)?;
    let (doc, _) = TaskDoc::read(&dir, &name).map_err(|e| format!("{}: {e}", folder.rel(&name)))?;
    Ok((folder, dir, name, doc))
}

pub fn show(vault: &Path, id: &str) -> i32 {
    let (folder, _, name, doc) = match find_and_read(vault, id) {
        Ok(x) => x,
        Err(e) => return fail(exit_codes::FAILURE, e),
    };
    let tid = task::id_of(&name);
    println!("{}  {}", tid, doc.title(tid));
    println!("  file      {}", folder.rel(&name));
    let state = doc.state().map_or_else(
        || {
            if folder == Folder::NeedsAction {
                "pending (not seen by the loop yet)".to_string()
            } else {
                "-".into()
            }
        },
        |s| s.as_str().to_string(),
    );
    println!("  state     {state}");
    for (label, key) in [
        ("priority", "priority"),
        ("deadline", "deadline"),
        ("from", "from"),
        ("attempt", keys::ATTEMPT),
        ("queued", keys::QUEUED_AT),
        ("started", keys::STARTED_AT),
        ("finished", keys::FINISHED_AT),
        ("retry at", keys::RETRY_AT),
        ("error", keys::LAST_ERROR),
        ("session", keys::SESSION_ID),
        ("cost USD", keys::COST_USD),
        ("turns", keys::TURNS),
        ("run appr.", keys::RUN_APPROVAL),
    ] {
        let v = match doc.front.get(key) {
            Some(serde_norway::Value::String(s)) => s.clone(),
            Some(serde_norway::Value::Number(n)) => n.to_string(),
            Some(serde_norway::Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        println!("  {label:<9} {v}");
    }
    for a in doc.list(keys::APPROVALS) {
        println!("  approval  {a}");
    }
    let log = Vault::new(vault.to_path_buf())
        .logs_dir()
        .join("agent")
        .join(format!("{tid}.log"));
    if log.exists() {
        println!("  log       {}", log.display());
    }
    exit_codes::OK
}

/// `--deadline`: a time, a date, or a duration from now.
fn deadline(s: &str) -> Result<String, String> {
    if let Some(t) = task::parse_time(s) {
        return Ok(time_text(t));
    }
    match ai_employee_vault::units::parse_duration(s) {
        Ok(d) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d))
            .map(time_text)
            .ok_or_else(|| format!("--deadline {s:?}: too far in the future")),
        Err(_) => Err(format!(
            "--deadline {s:?}: expected RFC 3339 (2026-12-07T17:00:00Z), a date (2026-12-07), \
             \"2026-12-07 17:00\" or a duration from now (2h, 3d)"
        )),
    }
}

fn slug(title: &str) -> String {
    let mut s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let s: String = s.chars().take(40).collect();
    if s.is_empty() {
        "task".into()
    } else {
        s.trim_end_matches('-').to_string()
    }
}

pub fn add(
    vault: &Path,
    title: &str,
    body: Option<&str>,
    priority: TaskPriority,
    due: Option<&str>,
) -> i32 {
    let title = title.trim();
    if title.is_empty() {
        return fail(exit_codes::USAGE, "the task needs a title");
    }
    let due = match due.map(deadline).transpose() {
        Ok(d) => d,
        Err(e) => return fail(exit_codes::USAGE, e),
    };
    let dir = match open(vault, Folder::NeedsAction) {
        Ok(d) => d,
        Err(e) => return fail(exit_codes::CONFIG, e),
    };
    let now = Utc::now();
    let mut front = Mapping::new();
    frontmatter::set(&mut front, "type", "task");
    frontmatter::set(&mut front, "title", title);
    frontmatter::set(
        &mut front,
        "priority",
        match priority {
            TaskPriority::High => "high",
            TaskPriority::Medium => "medium",
            TaskPriority::Low => "low",
        },
    );
    if let Some(d) = &due {
        frontmatter::set(&mut front, "deadline", d.as_str());
    }
    frontmatter::set(&mut front, "received", time_text(now));
    frontmatter::set(&mut front, "source", "ai-employee tasks add");
    frontmatter::set(&mut front, "status", "pending");
    let text = frontmatter::render(
        &front,
        &format!("# {title}\n\n{}\n", body.unwrap_or("").trim_end()),
    );
    let stamp = now.format("%Y%m%dT%H%M%S");
    let base = format!("TASK_{stamp}_{}", slug(title));
    for n in 1..100 {
        let name = if n == 1 {
            format!("{base}.md")
        } else {
            format!("{base}-{n}.md")
        };
        match dir.create_new(&name, text.as_bytes(), 0o644) {
            Ok(true) => {
                println!("{}", Folder::NeedsAction.rel(&name));
                return exit_codes::OK;
            }
            Ok(false) => continue,
            Err(e) => {
                return fail(
                    exit_codes::FAILURE,
                    format!("cannot write {}: {e}", Folder::NeedsAction.rel(&name)),
                );
            }
        }
    }
    fail(
        exit_codes::FAILURE,
        format!("{base}.md: every name is taken"),
    )
}

pub fn retry(vault: &Path, id: &str) -> i32 {
    let (folder, dir, name, doc) = match find_and_read(vault, id) {
        Ok(x) => x,
        Err(e) => return fail(exit_codes::FAILURE, e),
    };
    let state = doc.state();
    let from_end = matches!(folder, Folder::Failed | Folder::Rejected);
    match (folder, state) {
        (Folder::Done, _) => {
            return fail(
                exit_codes::FAILURE,
                format!("{} is done; nothing to retry", Folder::Done.rel(&name)),
            );
        }
        (_, Some(LoopState::Running)) => {
            return fail(
                exit_codes::FAILURE,
                format!("{} is running now", folder.rel(&name)),
            );
        }
        (_, Some(LoopState::WaitingApproval)) => {
            return fail(
                exit_codes::FAILURE,
                format!(
                    "{} waits for its approval requests; decide them first",
                    folder.rel(&name)
                ),
            );
        }
        _ => {}
    }
    let edited = task::update(&dir, &name, true, |d| {
        d.set(keys::STATE, LoopState::Pending.as_str());
        d.set(keys::STATUS, "pending");
        d.remove(keys::RETRY_AT);
        d.remove(keys::FINISHED_AT);
        if from_end {
            d.set(keys::ATTEMPT, 0);
        }
    });
    if let Err(e) = edited {
        return fail(
            exit_codes::FAILURE,
            format!("cannot edit {}: {e}", folder.rel(&name)),
        );
    }
    let shown = if from_end {
        let to = match open(vault, Folder::NeedsAction) {
            Ok(d) => d,
            Err(e) => return fail(exit_codes::FAILURE, e),
        };
        match task::move_task(&dir, &to, &name) {
            Ok(n) => Folder::NeedsAction.rel(&n),
            Err(e) => {
                return fail(
                    exit_codes::FAILURE,
                    format!("cannot move {} back: {e}", folder.rel(&name)),
                );
            }
        }
    } else {
        folder.rel(&name)
    };
    println!("{shown}: queued to run again");
    if !loop_runs(vault) {
        eprintln!("(no task loop is running on this vault: it runs when one starts)");
    }
    exit_codes::OK
}

pub fn pause(vault: &Path, now: bool) -> i32 {
    match write_pause(vault, now) {
        Ok(message) => println!("{message}"),
        Err(f) => return f.report(),
    }
    running_note(vault)
}

/// Write the stop file; returns what to tell the user. `top` calls this too.
pub fn write_pause(vault: &Path, now: bool) -> Result<String, Failure> {
    let root = Dir::open(vault).map_err(|e| open_failure(vault, e))?;
    let text = if now { "now\n" } else { "pause\n" };
    if let Err(e) = root.write_atomic(STOP_FILE, text.as_bytes(), 0o644) {
        return Err(Failure {
            code: exit_codes::FAILURE,
            message: format!("cannot write {}: {e}", vault.join(STOP_FILE).display()),
        });
    }
    Ok(if now {
        "paused: no new task starts, and the running ones are stopped (retried after resume)"
            .to_string()
    } else {
        format!("paused: no new task starts; running ones finish ({STOP_FILE} exists)")
    })
}

pub fn resume(vault: &Path) -> i32 {
    match remove_pause(vault) {
        Ok(message) => println!("{message}"),
        Err(f) => return f.report(),
    }
    running_note(vault)
}

/// Remove the stop file; returns what to tell the user. `top` calls this too.
pub fn remove_pause(vault: &Path) -> Result<String, Failure> {
    let root = Dir::open(vault).map_err(|e| open_failure(vault, e))?;
    match root.remove_file(STOP_FILE) {
        Ok(()) => Ok("resumed: tasks start again".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("not paused".to_string()),
        Err(e) => Err(Failure {
            code: exit_codes::FAILURE,
            message: format!("cannot remove {}: {e}", vault.join(STOP_FILE).display()),
        }),
    }
}

fn open_failure(vault: &Path, e: std::io::Error) -> Failure {
    Failure {
        code: exit_codes::CONFIG,
        message: format!("cannot open the vault {}: {e}", vault.display()),
    }
}

fn running_note(vault: &Path) -> i32 {
    if !loop_runs(vault) {
        eprintln!("(no task loop is running on {})", vault.display());
        return NOT_RUNNING;
    }
    exit_codes::OK
}
