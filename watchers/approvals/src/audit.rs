//! The audit log (SPEC §1): one JSON object per line in `Logs/YYYY-MM-DD.json` (UTC
//! date), one `O_APPEND` write per line, so lines from concurrent writers never mix. The
//! handler (one per vault) is the only writer.

use std::io;
use std::path::{Path, PathBuf};

use ai_employee_vault::frontmatter;
use ai_employee_vault::journal::Journal;
use ai_employee_vault::nofollow;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::actions::run_task::NAME as RUN_TASK;
use super::request::{self, Request};

pub const ACTOR: &str = "ai-employee";

/// One attempt, or one refusal.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action_type: String,
    pub target: String,
    pub parameters: Value,
    pub approved_by: String,
    pub result: String,
    pub error: Option<String>,
}

/// What the audit log says about an approval (best effort for a refused file).
#[derive(Debug, Clone)]
pub struct Subject {
    pub action_type: String,
    pub target: String,
    pub parameters: serde_json::Value,
    pub approved_by: String,
}

impl Subject {
    pub fn of_request(r: &Request) -> Subject {
        let mut parameters = r.action.parameters();
        if let (Some(task), Some(map)) = (&r.task, parameters.as_object_mut()) {
            map.insert("task".into(), json!(task));
        }
        Subject {
            action_type: r.action.name().to_string(),
            target: r.action.target(),
            parameters,
            approved_by: r.approved_by.clone(),
        }
    }

    /// From whatever can be read of the file.
    pub fn of_text(text: &str, vault: &Path) -> Subject {
        let Ok(doc) = frontmatter::parse(text) else {
            return Subject::unknown();
        };
        if let Ok(r) = request::validate(&doc, Utc::now(), vault) {
            return Subject::of_request(&r);
        }
        let action_type = request::action_of(&doc.front);
        // A refused approval is still traced to its task, when it names one.
        let task = frontmatter::get_str(&doc.front, "task").filter(|t| request::is_task_id(t));
        let target = if action_type == RUN_TASK {
            task
        } else {
            ["to", "recipient"]
                .iter()
                .find_map(|k| frontmatter::get_str(&doc.front, k))
        };
        Subject {
            action_type,
            target: target.unwrap_or("").to_string(),
            parameters: task.map_or_else(|| json!({}), |t| json!({ "task": t })),
            approved_by: frontmatter::get_str(&doc.front, "approved_by")
                .unwrap_or("human")
                .to_string(),
        }
    }

    pub fn unknown() -> Subject {
        Subject {
            action_type: "unknown".into(),
            target: String::new(),
            parameters: json!({}),
            approved_by: "human".into(),
        }
    }
}

#[derive(Debug)]
pub struct Audit {
    dir: PathBuf,
}

impl Audit {
    pub fn new(logs_dir: PathBuf) -> Audit {
        Audit { dir: logs_dir }
    }

    pub fn path_for(&self, now: DateTime<Utc>) -> PathBuf {
        self.dir.join(format!("{}.json", now.format("%Y-%m-%d")))
    }

    /// Append `e`; every occurrence of a secret is replaced first. Failures are logged,
    /// never fatal (the ledger, not this log, is what execution depends on).
    pub fn write(&self, now: DateTime<Utc>, e: &Entry, secrets: &[String]) {
        let mut obj = json!({
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "action_type": e.action_type,
            "actor": ACTOR,
            "target": e.target,
            "parameters": e.parameters,
            "approval_status": "approved",
            "approved_by": e.approved_by,
            "result": e.result,
        });
        if let (Some(err), Some(map)) = (&e.error, obj.as_object_mut()) {
            map.insert("error".to_string(), Value::String(err.clone()));
        }
        let mut line = super::util::redact(&obj.to_string(), secrets);
        line.push('\n');
        let path = self.path_for(now);
        // Neither `Logs/` nor the day's file is written through a symlink.
        if let Err(err) = append_line(&path, line.as_bytes()) {
            tracing::warn!(
                "failed to append to the audit log {}: {err}",
                path.display()
            );
        }
    }
}

/// Append one whole line as a record of the vault's append-only journal (see
/// `ai_employee_vault::journal`): one write; a write cut short (a full disk stores the
/// first bytes, then fails) is cut off again, and a fragment left anyway (that cut failed
/// too, or the process died mid-write) is cut off before the next line, so every line
/// stays one JSON object and no entry is glued to a fragment.
fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let (dir, name) = nofollow::folder_of(path)?;
    let (mut journal, _cut) = Journal::open(dir, name)?;
    journal.append(line, false)
}
