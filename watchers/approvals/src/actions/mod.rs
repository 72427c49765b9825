//! The allow-listed actions, one module each, behind one trait.
//!
//! An [`Action`] is carried out in two steps: [`Action::prepare`] checks the request and
//! the credentials and builds what will be sent, with no side effect; [`Action::perform`]
//! is the one side effect. The handler records the [`Plan`] that `prepare` returns (the
//! intent) before it calls `perform`, and records the [`Outcome`] after it; nothing here
//! writes the ledger, the audit log or the Dashboard (`handler.rs` does, exactly once).
//!
//! | module | action | its side effect |
//! |---|---|---|
//! | `email.rs` | `send_email` | one SMTP transaction |
//! | `whatsapp.rs` | `send_whatsapp` | one Cloud API request |
//! | `linkedin.rs` | `linkedin_post` | a post appended to `LINKEDIN_QUEUE.md` |
//! | `payment.rs` | `payment` | a task for a human in `Needs_Action/` (nothing is paid) |
//! | `run_task.rs` | `run_task` | none: the approval itself, which the task loop acts on once the file is in `Done/` |
//! | `github.rs` | `github_comment` | one comment on a GitHub issue, carrying a marker it looks for before posting |

pub mod email;
pub mod github;
pub mod linkedin;
pub mod payment;
pub mod run_task;
pub mod whatsapp;

#[cfg(test)]
pub mod fake;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::credentials::{Channel, Credentials, Loaded};
use super::outcome::time_text;
use super::request::{self, Request};
use super::util::redact;

/// The result of one external or local call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Carried out. `fields` are added to the file's frontmatter.
    Success {
        detail: String,
        fields: Vec<(String, String)>,
    },
    /// Failed without effect; may be tried again.
    Transient(String),
    /// Refused by the other side, without effect; not retried.
    Permanent(String),
    /// May or may not have had an effect; never retried.
    Unknown(String),
}

impl Outcome {
    /// The same outcome with every secret in its texts replaced.
    pub fn redacted(self, secrets: &[String]) -> Outcome {
        match self {
            Outcome::Success { detail, fields } => Outcome::Success {
                detail: redact(&detail, secrets),
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k, redact(&v, secrets)))
                    .collect(),
            },
            Outcome::Transient(e) => Outcome::Transient(redact(&e, secrets)),
            Outcome::Permanent(e) => Outcome::Permanent(redact(&e, secrets)),
            Outcome::Unknown(e) => Outcome::Unknown(redact(&e, secrets)),
        }
    }
}

/// One approval's action, from its checks to its side effect.
pub trait Action: Send {
    /// Check the request and the credentials, and build what will be sent: no side
    /// effect. `Err`: the approval is refused, before any intent is recorded.
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused>;
    /// The one side effect, as prepared; called only after a successful
    /// [`Action::prepare`] and once its intent is recorded. After a crash, a call to
    /// another system is never made again; a local action is, only if its mark is not
    /// there ([`Catalog::found`]).
    fn perform(self: Box<Self>) -> Outcome;
    /// What a success is recorded as (`sent`, `queued`, `recorded`, `approved`).
    fn result(&self) -> &'static str;
    /// Whether [`Action::perform`] looks on the other side for the mark of an earlier
    /// attempt before it acts (`github_comment`'s marker): its [`Plan::effect`] then
    /// names a mark on another system, `perform` runs where SIGTERM can cut the wait
    /// short, and an attempt a crash interrupted is run again (it finds its mark or acts
    /// once) instead of being reported as unknown.
    fn finds_its_own_mark(&self) -> bool {
        false
    }
}

/// What an action is prepared with: the approval and the attempt.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub vault: &'a Path,
    /// The file's name in `Approved/` and the SHA-256 of its bytes.
    pub file: &'a str,
    pub sha: &'a str,
    /// [`crate::util::identity_tag`] of the file: names the Message-ID, the queue marker, the
    /// payment task.
    pub tag: &'a str,
    pub approved_by: &'a str,
    /// When the attempt started (the intent's time).
    pub now: DateTime<Utc>,
    /// `--dry-run`: missing credentials are no reason to refuse (nothing will be sent).
    pub dry_run: bool,
}

impl Context<'_> {
    /// The attempt, kept by a local action from `prepare` for `perform`.
    fn attempt(&self) -> Attempt {
        Attempt {
            vault: self.vault.to_path_buf(),
            file: self.file.to_string(),
            sha: self.sha.to_string(),
            tag: self.tag.to_string(),
            approved_by: self.approved_by.to_string(),
            at: time_text(self.now),
        }
    }
}

/// [`Context`] as a local action keeps it between `prepare` and `perform`.
#[derive(Debug, Clone)]
struct Attempt {
    vault: PathBuf,
    file: String,
    sha: String,
    tag: String,
    approved_by: String,
    /// When the attempt started, as written (the intent's `at`).
    at: String,
}

/// What [`Action::prepare`] settled; the handler records it in the intent before
/// [`Action::perform`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Where a local action leaves its mark, to be checked after a restart
    /// ([`Catalog::found`]). `None`: a call to another system, which runs where SIGTERM
    /// can cut the wait short and is never repeated once its intent is recorded.
    pub effect: Option<String>,
    /// The email's Message-ID, kept on the file whatever the outcome (a re-approval
    /// after an unknown outcome sends the very same message).
    pub message_id: Option<String>,
    /// Only rehearse it: the credentials say `dry_run = true`, or are missing under
    /// `--dry-run`.
    pub rehearse: bool,
}

/// A local action's mark, found after a restart: the attempt had completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// What the success is recorded as.
    pub result: &'static str,
    /// Frontmatter added to the file.
    pub fields: Vec<(String, String)>,
}

/// Why an approval is refused before anything is recorded (it goes to `Failed/` with
/// this text and can be moved back once the cause is fixed).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "{action} needs {rel}, which does not exist: create it (see docs/approvals.md), then \
         move this file back to Approved/"
    )]
    NoCredentials {
        action: &'static str,
        rel: &'static str,
    },
    /// The file holds only other keys (the WhatsApp webhook's); `keys`: what is missing.
    #[error(
        "{action} needs {keys} in {rel}, which has only other keys (the WhatsApp webhook's): \
         add them (see docs/approvals.md), then move this file back to Approved/"
    )]
    CredentialsUnset {
        action: &'static str,
        keys: String,
        rel: &'static str,
    },
    /// The credentials file cannot be used (`problem` names it and what is wrong).
    #[error(
        "{action} cannot run: {problem} (see docs/approvals.md); then move this file back to \
         Approved/"
    )]
    CredentialsInvalid {
        action: &'static str,
        problem: String,
    },
    /// The OAuth token file the credentials name cannot be used.
    #[error("{action} cannot run: {problem}; then move this file back to Approved/")]
    TokenFile {
        action: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Email(#[from] email::BuildError),
}

/// A credentials file as it was when an action was made for an approval.
pub struct Creds<T> {
    /// Vault-relative name, for messages.
    rel: &'static str,
    loaded: Loaded<T>,
}

impl<T: Clone> Creds<T> {
    /// `channel` as it is now (read again if the file changed).
    pub fn now(channel: &mut Channel<T>) -> Creds<T> {
        Creds {
            rel: channel.rel(),
            loaded: channel.current().clone(),
        }
    }
}

impl<T> Creds<T> {
    /// The credentials `action` needs: `Ok(Some)` when ready, `Ok(None)` when missing
    /// under `--dry-run` (nothing will be sent).
    fn ready(&self, action: &'static str, dry_run: bool) -> Result<Option<&T>, Refused> {
        let rel = self.rel;
        match &self.loaded {
            Loaded::Ready(c) => Ok(Some(c)),
            Loaded::Missing if dry_run => Ok(None),
            Loaded::Missing => Err(Refused::NoCredentials { action, rel }),
            Loaded::Unset(keys) => Err(Refused::CredentialsUnset {
                action,
                keys: keys.clone(),
                rel,
            }),
            Loaded::Invalid(problem) => Err(Refused::CredentialsInvalid {
                action,
                problem: problem.clone(),
            }),
        }
    }
}

/// The plan of an action that cannot run for want of credentials, under `--dry-run`:
/// rehearsed only.
fn rehearsal() -> Plan {
    Plan {
        rehearse: true,
        ..Plan::default()
    }
}

/// [`Action::perform`] without a successful `prepare` (the handler never does that).
fn unprepared() -> Outcome {
    Outcome::Permanent("internal error: no channel for this action".into())
}

/// Where the handler gets the action for a request: [`Actions`], or a test's.
pub trait Catalog {
    /// The action that carries out `req`, with the credentials it needs as they are now
    /// (a credentials file is read again when it changed).
    fn action(&mut self, req: &Request) -> Box<dyn Action>;
    /// Every secret loaded now: removed from every text the handler writes.
    fn secrets(&self) -> Vec<String>;
    /// After a restart, for an attempt of `action` whose intent named the mark `effect`:
    /// the mark, if it is there (the effect happened; `None`: it did not).
    fn found(&self, vault: &Path, action: &str, effect: &str, tag: &str) -> Option<Found>;
}

/// The six actions this handler carries out, and the credentials three of them need.
pub struct Actions {
    creds: Credentials,
}

impl Actions {
    pub fn new(creds: Credentials) -> Actions {
        Actions { creds }
    }
}

impl Catalog for Actions {
    fn action(&mut self, req: &Request) -> Box<dyn Action> {
        match &req.action {
            request::Action::Email(e) => Box::new(email::SendEmail::new(
                e.clone(),
                Creds::now(&mut self.creds.smtp),
            )),
            request::Action::Whatsapp(w) => Box::new(whatsapp::SendWhatsapp::new(
                w.clone(),
                Creds::now(&mut self.creds.whatsapp),
            )),
            request::Action::Linkedin(p) => Box::new(linkedin::Post::new(p.clone())),
            request::Action::Payment(p) => Box::new(payment::Task::new(p.clone())),
            request::Action::RunTask(r) => Box::new(run_task::RunTask::new(r.clone())),
            request::Action::GithubComment(c) => Box::new(github::PostComment::new(
                c.clone(),
                Creds::now(&mut self.creds.github),
            )),
        }
    }

    fn secrets(&self) -> Vec<String> {
        self.creds.secrets()
    }

    fn found(&self, vault: &Path, action: &str, effect: &str, tag: &str) -> Option<Found> {
        match action {
            linkedin::NAME => linkedin::found(vault, tag),
            payment::NAME => payment::found(vault, effect),
            run_task::NAME => Some(run_task::found()),
            // Looked for on GitHub by the attempt itself, which runs again.
            github::NAME => None,
            _ => None,
        }
    }
}
