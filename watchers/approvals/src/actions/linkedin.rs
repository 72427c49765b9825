//! `linkedin_post`: the post appended to `LINKEDIN_QUEUE.md` for a human to publish. It
//! stays inside the vault and leaves a mark named by the approval's identity, so after a
//! crash the handler can check whether the effect happened instead of guessing.

use std::io::{self, Write};
use std::path::Path;

use ai_employee_vault::nofollow::{Dir, How};

use crate::request::Linkedin;

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
