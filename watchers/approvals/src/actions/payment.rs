//! `payment`: a task for a human in `Needs_Action/`; nothing is ever paid. The task is
//! named by the approval's identity, so after a crash the handler can check whether it
//! was written instead of guessing.

use std::io;
use std::path::Path;

use ai_employee_vault::frontmatter;
use ai_employee_vault::nofollow;
use serde_norway::Mapping;

use crate::request::Payment;

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
    format!("Needs_Action/PAYMENT_{stamp}_{slug}_{short}.md")
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
    let mut front = Mapping::new();
    frontmatter::set(&mut front, "type", "payment");
    frontmatter::set(&mut front, "status", "pending");
    frontmatter::set(&mut front, "priority", "high");
    frontmatter::set(&mut front, "received", at);
    frontmatter::set(&mut front, "amount", frontmatter::decimal(&p.amount));
    if let Some(c) = &p.currency {
        frontmatter::set(&mut front, "currency", c.as_str());
    }
    frontmatter::set(&mut front, "recipient", p.recipient.as_str());
    frontmatter::set(&mut front, "reason", p.reason.as_str());
    frontmatter::set(&mut front, "approved_by", approved_by);
    frontmatter::set(&mut front, "approval_file", file);
    frontmatter::set(&mut front, "approval_sha256", sha);
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
    dir.create_new(&name, frontmatter::render(&front, &body).as_bytes(), 0o600)
}
