//! The two actions that stay inside the vault: `linkedin_post` (appended to
//! `LINKEDIN_QUEUE.md`) and `payment` (a task for a human in `Needs_Action/`; nothing is
//! ever paid). Both leave a mark named by the approval's identity, so after a crash the
//! handler can check whether the effect happened instead of guessing.

use std::io::{self, Write};
use std::path::Path;

use ai_employee_vault::frontmatter;
use ai_employee_vault::nofollow::{self, Dir, How};
use serde_norway::Mapping;

use crate::request::{Linkedin, Payment};

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
    // The queue is never read or written through a symlink.
    let root = Dir::open(vault)?;
    root.create_new(QUEUE_FILE, QUEUE_HEADER.as_bytes(), 0o600)?;
    let marker = queue_marker(tag);
    if String::from_utf8_lossy(&root.read(QUEUE_FILE, None)?).contains(&marker) {
        return Ok(false);
    }
    let entry = format!(
        "\n## {at} (approved in {file})\n\n{}\n\n{marker}\n",
        post.body.trim_end()
    );
    let mut f = root.file(QUEUE_FILE, How::append(0o600))?;
    f.write_all(entry.as_bytes())?;
    f.sync_data()?;
    Ok(true)
}

/// Whether the queue holds the post with this tag.
pub fn queued(vault: &Path, tag: &str) -> bool {
    Dir::open(vault)
        .and_then(|root| root.read(QUEUE_FILE, None))
        .is_ok_and(|t| String::from_utf8_lossy(&t).contains(&queue_marker(tag)))
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
    let (dir, name) = nofollow::folder_of(&vault.join(task_rel))?;
    dir.create_new(&name, frontmatter::render(&front, &body).as_bytes(), 0o600)
}
