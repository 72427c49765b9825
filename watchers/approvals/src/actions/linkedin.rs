//! `linkedin_post`: the post appended to `LINKEDIN_QUEUE.md` for a human to publish. It
//! stays inside the vault and leaves a mark named by the approval's identity, so after a
//! crash the handler can check whether the effect happened instead of guessing.

use std::io::{self, Write};
use std::path::Path;

use ai_employee_vault::nofollow::{Dir, How};

use super::Outcome;
use super::{Action, Attempt, Context, Found, Plan, Refused};
use crate::outcome::results;
use crate::request::Linkedin;

pub const NAME: &str = "linkedin_post";

pub const QUEUE_FILE: &str = "LINKEDIN_QUEUE.md";

/// `linkedin_post`: the post, queued under the approval's identity.
pub struct Post {
    post: Linkedin,
    /// The attempt `prepare` was given, for `perform`.
    attempt: Option<Attempt>,
}

impl Post {
    pub fn new(post: Linkedin) -> Post {
        Post {
            post,
            attempt: None,
        }
    }
}

impl Action for Post {
    /// Nothing to check: the post was checked with the request. The mark is the queue
    /// entry's marker.
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        self.attempt = Some(cx.attempt());
        Ok(Plan {
            effect: Some(linkedin_effect(cx.tag)),
            ..Plan::default()
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        let Some(a) = &self.attempt else {
            return super::unprepared();
        };
        match queue_post(&a.vault, &a.tag, &a.file, &a.at, &self.post) {
            Ok(fresh) => Outcome::Success {
                detail: if fresh {
                    format!("appended to {QUEUE_FILE}")
                } else {
                    format!("already in {QUEUE_FILE}")
                },
                fields: vec![],
            },
            Err(e) => Outcome::Transient(format!("cannot append to {QUEUE_FILE}: {e}")),
        }
    }

    fn result(&self) -> &'static str {
        results::QUEUED
    }
}

/// After a restart: the post with this tag is in the queue.
pub fn found(vault: &Path, tag: &str) -> Option<Found> {
    queued(vault, tag).then(|| Found {
        result: results::QUEUED,
        fields: vec![],
    })
}

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
