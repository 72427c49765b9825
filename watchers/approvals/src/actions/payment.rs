//! `payment`: a task for a human in `Needs_Action/`; nothing is ever paid. The task is
//! named by the approval's identity, so after a crash the handler can check whether it
//! was written instead of guessing.

use std::io;
use std::path::Path;

use ai_employee_vault::frontmatter;
use ai_employee_vault::frontmatter::{Priority, Status, TaskFrontmatter};
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{self, Dir};
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::Outcome;
use super::{Action, Attempt, Context, Found, Plan, Refused};
use crate::outcome::results;
use crate::request::Payment;

pub const NAME: &str = "payment";

/// The frontmatter of a manual payment task, after `type: payment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentTask {
    pub status: Status,
    pub priority: Priority,
    /// When the approval was carried out, RFC 3339.
    pub received: String,
    /// A number when that keeps every digit, else the text ([`frontmatter::decimal`]).
    pub amount: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub recipient: String,
    pub reason: String,
    pub approved_by: String,
    /// The approval's file name and SHA-256.
    pub approval_file: String,
    pub approval_sha256: String,
}

impl TaskFrontmatter for PaymentTask {
    const TYPE: &'static str = "payment";
}

/// `payment`: the task for a human, named when it is prepared.
pub struct Task {
    payment: Payment,
    /// The attempt `prepare` was given and the task's vault-relative path, for `perform`.
    ready: Option<(Attempt, String)>,
}

impl Task {
    pub fn new(payment: Payment) -> Task {
        Task {
            payment,
            ready: None,
        }
    }
}

impl Action for Task {
    /// The task's name (the mark): the attempt's time, the recipient, the identity.
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        let task = payment_task(
            &cx.now.format("%Y%m%d-%H%M%S").to_string(),
            &self.payment.recipient,
            cx.tag,
        );
        self.ready = Some((cx.attempt(), task.clone()));
        Ok(Plan {
            effect: Some(task),
            ..Plan::default()
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        let Some((a, task)) = &self.ready else {
            return super::unprepared();
        };
        let written = record_payment(
            &a.vault,
            task,
            &a.file,
            &a.sha,
            &a.approved_by,
            &a.at,
            &self.payment,
        );
        match written {
            // Written now, or by an attempt before a restart: the task is there.
            Ok(_) => Outcome::Success {
                detail: format!("manual payment task {task}"),
                fields: vec![("payment_task".to_string(), task.clone())],
            },
            Err(e) => Outcome::Transient(format!("cannot write {task}: {e}")),
        }
    }

    fn result(&self) -> &'static str {
        results::RECORDED
    }
}

/// After a restart: the task `effect` (vault-relative) exists.
pub fn found(vault: &Path, effect: &str) -> Option<Found> {
    Dir::open(vault)
        .is_ok_and(|root| root.exists(effect))
        .then(|| Found {
            result: results::RECORDED,
            fields: vec![("payment_task".to_string(), effect.to_string())],
        })
}

/// `Needs_Action/PAYMENT_<stamp>_<recipient>_<tag6>.md`, fixed before the intent is
/// recorded.
pub fn payment_task(stamp: &str, recipient: &str, tag: &str) -> String {
    let slug: String = recipient
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .take(40)
        .collect();
    let slug = if slug.is_empty() {
        "recipient".to_string()
    } else {
        slug
    };
    let short: String = tag.chars().take(6).collect();
    Folder::NeedsAction.rel(&format!("PAYMENT_{stamp}_{slug}_{short}.md"))
}

/// Write the payment task (atomically, never over an existing file). Returns false if it
/// already exists.
pub fn record_payment(
    vault: &Path,
    task_rel: &str,
    file: &str,
    sha: &str,
    approved_by: &str,
    at: &str,
    p: &Payment,
) -> io::Result<bool> {
    let front = PaymentTask {
        status: Status::Pending,
        priority: Priority::High,
        received: at.to_string(),
        amount: frontmatter::decimal(&p.amount),
        currency: p.currency.clone(),
        recipient: p.recipient.clone(),
        reason: p.reason.clone(),
        approved_by: approved_by.to_string(),
        approval_file: file.to_string(),
        approval_sha256: sha.to_string(),
    };
    let amount = match &p.currency {
        Some(c) => format!("{} {c}", p.amount),
        None => p.amount.clone(),
    };
    let body = format!(
        "# Manual payment needed\n\nApproved: pay **{amount}** to **{}** for: {}\n\n\
         ai-employee never pays anything itself. Make the payment, then move this file to \
         Done/.\n",
        p.recipient, p.reason
    );
    let (dir, name) = nofollow::folder_of(&vault.join(task_rel))?;
    dir.create_new(
        &name,
        frontmatter::render_task(&front, &body).as_bytes(),
        0o600,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(amount: &str, currency: Option<&str>) -> Payment {
        Payment {
            amount: amount.to_string(),
            currency: currency.map(str::to_string),
            recipient: "ACME: Ltd".to_string(),
            reason: "yes".to_string(),
        }
    }

    fn written(p: &Payment) -> String {
        let vault = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(vault.path().join("Needs_Action")).expect("mkdir");
        let rel = payment_task("20260107-103100", &p.recipient, "abcdef123456");
        assert_eq!(
            rel,
            "Needs_Action/PAYMENT_20260107-103100_acme-ltd_abcdef.md"
        );
        let wrote = record_payment(
            vault.path(),
            &rel,
            "APPROVAL_pay.md",
            "0123abcd",
            "human",
            "2026-01-07T10:31:00Z",
            p,
        )
        .expect("written");
        assert!(wrote);
        // A second write finds it there and leaves it.
        assert!(!record_payment(vault.path(), &rel, "x.md", "0", "h", "t", p).expect("looked"));
        std::fs::read_to_string(vault.path().join(&rel)).expect("read")
    }

    #[test]
    fn the_payment_task_is_written_byte_for_byte() {
        assert_eq!(
            written(&payment("120.50", Some("EUR"))),
            "---\ntype: payment\nstatus: pending\npriority: high\n\
             received: '2026-01-07T10:31:00Z'\namount: 120.5\ncurrency: EUR\n\
             recipient: 'ACME: Ltd'\nreason: 'yes'\napproved_by: human\n\
             approval_file: APPROVAL_pay.md\napproval_sha256: 0123abcd\n---\n\
             # Manual payment needed\n\nApproved: pay **120.50 EUR** to **ACME: Ltd** for: \
             yes\n\nai-employee never pays anything itself. Make the payment, then move this \
             file to Done/.\n"
        );
        assert_eq!(
            written(&payment("1234567.0123456789", None)),
            "---\ntype: payment\nstatus: pending\npriority: high\n\
             received: '2026-01-07T10:31:00Z'\namount: '1234567.0123456789'\n\
             recipient: 'ACME: Ltd'\nreason: 'yes'\napproved_by: human\n\
             approval_file: APPROVAL_pay.md\napproval_sha256: 0123abcd\n---\n\
             # Manual payment needed\n\nApproved: pay **1234567.0123456789** to **ACME: Ltd** \
             for: yes\n\nai-employee never pays anything itself. Make the payment, then move \
             this file to Done/.\n"
        );
    }

    #[test]
    fn the_payment_task_reads_back_as_written() {
        let p = payment("120.50", Some("EUR"));
        let (front, body) =
            frontmatter::parse_task::<PaymentTask>(&written(&p)).expect("a payment task");
        assert_eq!(front.amount, frontmatter::decimal("120.50"));
        assert_eq!(front.currency.as_deref(), Some("EUR"));
        assert_eq!(front.reason, "yes");
        assert_eq!(front.priority, Priority::High);
        assert!(body.starts_with("# Manual payment needed\n"));
    }
}
