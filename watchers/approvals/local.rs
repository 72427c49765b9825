//! The two actions that stay inside the vault: `linkedin_post` (appended to
//! `LINKEDIN_QUEUE.md`) and `payment` (a task for a human in `Needs_Action/`; nothing is
//! ever paid). Both leave a mark named by the approval's identity, so after a crash the
//! handler can check whether the effect happened instead of guessing.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use serde_norway::Mapping;

use crate::vault::atomic;
use crate::vault::frontmatter;

use super::request::{Linkedin, Payment};

pub const QUEUE_FILE: &str = "LINKEDIN_QUEUE.md";

const QUEUE_HEADER: &str = "# LinkedIn queue\n\nPosts a human approved, oldest first. ai-employee only appends here; \
post them, then delete or mark them as you like.\n";

/// The comment that ends a queued post and names its approval.
pub fn queue_marker(tag: &str) -> String {
    format!("<!-- approval {tag} -->")
}

/// Where a local action leaves its mark (recorded in the ledger's intent).
pub fn linkedin_effect(tag: &str) -> String {
    format!("{QUEUE_FILE}#{tag}")
}

/// Append `post` to the queue with one `O_APPEND` write, fsynced. Returns false when a
/// post with this tag is already there (a previous run got that far).
pub fn queue_post(
    vault: &Path,
    tag: &str,
    file: &str,
    at: &str,
    post: &Linkedin,
) -> io::Result<bool> {
    let path = vault.join(QUEUE_FILE);
    atomic::create_new(&path, QUEUE_HEADER.as_bytes())?;
    let marker = queue_marker(tag);
    if std::fs::read_to_string(&path)?.contains(&marker) {
        return Ok(false);
    }
    let entry = format!(
        "\n## {at} (approved in {file})\n\n{}\n\n{marker}\n",
        post.body.trim_end()
    );
    let mut f = OpenOptions::new().append(true).open(&path)?;
    f.write_all(entry.as_bytes())?;
    f.sync_data()?;
    Ok(true)
}

/// Whether the queue holds the post with this tag.
pub fn queued(vault: &Path, tag: &str) -> bool {
    std::fs::read_to_string(vault.join(QUEUE_FILE)).is_ok_and(|t| t.contains(&queue_marker(tag)))
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
    atomic::create_new(
        &vault.join(task_rel),
        frontmatter::render(&front, &body).as_bytes(),
    )
}
