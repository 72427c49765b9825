//! One approval file, start to end: read, identify, consult the ledger, validate, then
//! the ledger's protocol around its action (`actions/`): prepare (a refusal records
//! nothing) → the intent, durable → perform, once → the outcome, durable → the move to
//! `Done/` or `Failed/`. A crash between any two steps is finished from the ledger at the
//! next start, and an external call is never repeated. The loop that feeds it lives in
//! `lib.rs`; `handler/tests.rs` tests the protocol with a fake action.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ai_employee_vault::atomic::FileId;
use ai_employee_vault::frontmatter;
use ai_employee_vault::layout::{Folder, Vault};
use ai_employee_vault::nofollow::{self, Dir, Kind};
use chrono::Utc;
use serde_json::json;

use super::actions::Outcome;
use super::actions::{Actions, Catalog, Context};
use super::audit::{Audit, Entry, Subject};
use super::credentials::Credentials;
use super::dashboard_rows::DashboardRows;
use super::ledger::{Key, Ledger, LedgerError, Record, State};
use super::outcome::{self, Decision, Destination, results, time_text};
use super::reading::{Fingerprint, ReadError, read_approval};
use super::request::{self, Request};
use super::retry::{AfterTransient, RetryPolicy};
use super::util::{identity_tag, redact, sha256_hex};

/// How long an external call may go on after SIGTERM before the handler exits anyway
/// (leaving the intent open: the next start reports the outcome as unknown).
const STOP_GRACE: Duration = Duration::from_millis(400);

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It left `Approved/` (or was not there).
    Finished,
    /// It stays in `Approved/` until this instant (transient failure).
    RetryAt(Instant),
    /// SIGTERM arrived during an external call; the handler must exit now.
    Interrupted,
    /// Could not be handled now (an I/O error, logged); looked at again after `--rescan`.
    Deferred,
    /// Not complete yet (another process has it open for writing, or it changed too
    /// recently to be trusted): look again after this long, or as soon as its writer
    /// closes it.
    Later(Duration),
}

pub struct Options {
    pub dry_run: bool,
    pub policy: RetryPolicy,
    /// Where open writers cannot be seen (no leases): how long a file must have been
    /// unchanged before it is read.
    pub settle: Duration,
}

/// How often a file that another process holds open for writing is looked at again
/// (besides the event its close gives).
const WRITER_RECHECK: Duration = Duration::from_secs(1);

pub struct Handler {
    vault: PathBuf,
    ledger: Ledger,
    actions: Box<dyn Catalog>,
    audit: Audit,
    dashboard: DashboardRows,
    opts: Options,
    stop: Arc<AtomicBool>,
    retries: HashMap<String, Instant>,
    /// Names found open for writing (logged once each).
    writing: HashSet<String>,
    /// Outcomes known but not yet in the ledger (its write failed: a full disk).
    unrecorded: HashMap<Key, Unrecorded>,
}

/// An attempt that ended with a known outcome the ledger could not record. Kept until the
/// record can be written, so that the intent left open in the ledger is not taken for an
/// attempt cut short by a crash (which would turn a sent email into "outcome unknown").
/// Only a stop of the handler loses it, and then "outcome unknown" is the truth.
struct Unrecorded {
    ended: Ended,
    content: Option<String>,
}

/// What came of an attempt, to be recorded ([`Handler::conclude`]).
#[derive(Debug, Clone)]
struct Ended {
    attempt: u32,
    subject: Subject,
    outcome: Outcome,
    /// What a success is recorded as (`sent`, `queued`, `recorded`, `dry_run`).
    success: &'static str,
    /// Frontmatter kept on the file whatever the outcome (an email's Message-ID).
    extra: Vec<(String, String)>,
}

/// The frontmatter that keeps an email's Message-ID on its file.
fn message_id_field(id: Option<String>) -> Vec<(String, String)> {
    id.map(|id| vec![("message_id".to_string(), id)])
        .unwrap_or_default()
}

/// The file being handled.
struct Item<'a> {
    name: &'a str,
    sha: &'a str,
    text: &'a str,
    /// Device and inode it was read from.
    id: FileId,
    /// What `stat` said when it was read.
    snap: Fingerprint,
    /// The content key (the duplicate rule), once it is known.
    content: Option<String>,
}

impl Item<'_> {
    /// The decision to move this file to `folder` now, with `result`.
    fn decision(
        &self,
        vault: &Path,
        folder: Destination,
        result: &str,
        error: Option<String>,
        fields: Vec<(String, String)>,
    ) -> Decision {
        let at = time_text(Utc::now());
        Decision::new(
            vault, self.name, self.text, folder, result, error, at, fields,
        )
    }
}

/// The content key of an approval text, if it is a valid request.
fn content_of(text: &str, vault: &Path) -> Option<String> {
    let doc = frontmatter::parse(text).ok()?;
    request::validate(&doc, Utc::now(), vault)
        .ok()
        .map(|r| r.content_key())
}

/// The refusal of a duplicate of `prev`.
fn duplicate_error(req: &Request, prev: &super::ledger::Executed) -> String {
    let what = if prev.dest.is_empty() {
        Folder::Approved.rel(&prev.file)
    } else {
        prev.dest.clone()
    };
    format!(
        "duplicate of {what} ({} at {}): the same {} with the same content was carried out \
         within the last {} days; to carry it out again, add `allow_duplicate: true`",
        prev.result,
        prev.at,
        req.action.name(),
        super::ledger::REMEMBER.num_days()
    )
}

impl Handler {
    /// A handler for the five actions of this crate ([`Actions`]).
    pub fn new(
        vault: PathBuf,
        ledger: Ledger,
        creds: Credentials,
        opts: Options,
        stop: Arc<AtomicBool>,
    ) -> Handler {
        Handler::with_actions(vault, ledger, Box::new(Actions::new(creds)), opts, stop)
    }

    /// A handler that takes its actions from `actions`.
    pub fn with_actions(
        vault: PathBuf,
        ledger: Ledger,
        actions: Box<dyn Catalog>,
        opts: Options,
        stop: Arc<AtomicBool>,
    ) -> Handler {
        let layout = Vault::new(vault.clone());
        let audit = Audit::new(layout.logs_dir());
        let dashboard = DashboardRows::start(layout.dashboard());
        Handler {
            vault,
            ledger,
            actions,
            audit,
            dashboard,
            opts,
            stop,
            retries: HashMap::new(),
            writing: HashSet::new(),
            unrecorded: HashMap::new(),
        }
    }

    /// Names waiting for a retry, and the earliest instant one is due.
    pub fn waiting(&self, name: &str) -> bool {
        self.retries.contains_key(name)
    }

    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.values().min().copied()
    }

    /// Names whose retry is due, removed from the schedule.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due: Vec<String> = self
            .retries
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        due.sort();
        for n in &due {
            self.retries.remove(n);
        }
        due
    }

    /// A Dashboard row about the handler's set-up (`Some`: actions not enabled, with
    /// why; `None`: every action enabled), written only when it differs from what the
    /// last start reported: a handler restarted in a loop, or every morning, adds no row
    /// until something changed. What was reported lives in
    /// `.ai-employee/approvals.setup` (missing: everything was enabled).
    pub fn setup_row(&self, details: Option<String>) {
        const NAME: &str = "approvals.setup";
        let state = Dir::open(&self.vault)
            .and_then(|root| Ok(root.folder(ai_employee_vault::layout::STATE_DIR)?));
        let before = state
            .as_ref()
            .ok()
            .and_then(|d| d.read(NAME, Some(64 * 1024)).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let now = details.clone().unwrap_or_default();
        if before == now {
            return;
        }
        match &details {
            Some(d) => self.dashboard.push("⚠ Not set up", d.clone()),
            None => self
                .dashboard
                .push("✓ Set up", "every action enabled".to_string()),
        }
        let saved = state.and_then(|d| d.write_atomic(NAME, now.as_bytes(), 0o600));
        if let Err(e) = saved {
            tracing::warn!(
                "failed to remember the set-up state (the row may repeat at the next start): {e}"
            );
        }
    }

    pub fn shutdown(self, limit: Duration) {
        self.dashboard.finish(limit);
    }

    fn secrets(&self) -> Vec<String> {
        self.actions.secrets()
    }

    /// At start: ledger entries left unfinished whose file is no longer in `Approved/`
    /// (a person moved or deleted it while the handler was down). Each is closed with an
    /// audit line; an attempt whose outcome is unknown also gets a Dashboard row.
    pub fn close_unfinished(&mut self) {
        for ((name, sha), state) in self.ledger.unfinished() {
            let same = self
                .approved()
                .ok()
                .and_then(|d| d.read(&name, None).ok())
                .is_some_and(|b| sha256_hex(&b) == sha);
            if same {
                continue; // handled by the start-up pass
            }
            let at = time_text(Utc::now());
            match state {
                State::InFlight {
                    attempt, action, ..
                } => {
                    let error = format!(
                        "outcome unknown — check before re-approving: the handler stopped during \
                         attempt {attempt} and {} has since been moved or changed",
                        Folder::Approved.rel(&name)
                    );
                    tracing::warn!("{name}: {error}");
                    self.audit_line(
                        &Subject {
                            action_type: action,
                            ..Subject::unknown()
                        },
                        &name,
                        &sha,
                        attempt,
                        results::OUTCOME_UNKNOWN,
                        Some(&error),
                    );
                    self.dashboard
                        .push("⚠ Outcome unknown", format!("{name}: {error}"));
                }
                State::Decided { decision, .. } => {
                    tracing::info!("{name}: already {}; it has left Approved/", decision.result);
                }
                _ => {}
            }
            let rec = Record::Done {
                file: name.clone(),
                sha256: sha.clone(),
                dest: String::new(),
                at,
                result: None,
                content: None,
                changed: None,
            };
            if let Err(e) = self.ledger.append(rec, false) {
                tracing::warn!("{e}");
            }
        }
    }

    /// Handle `Approved/<name>`.
    pub fn process(&mut self, name: &str) -> Step {
        let rel = Folder::Approved.rel(name);
        // Neither Approved/ nor the file is ever reached through a symlink.
        let approved = match self.approved() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("cannot look at {rel}: {e}");
                return Step::Deferred;
            }
        };
        let meta = match approved.stat(name) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Step::Finished,
            Err(e) => {
                tracing::warn!("cannot look at {rel}: {e}");
                return Step::Deferred;
            }
        };
        if meta.is_dir() {
            tracing::debug!("{rel} is a folder; ignored");
            return Step::Finished;
        }
        if meta.kind == Kind::Symlink {
            let target = approved
                .read_link(name)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return self.park(
                name,
                &format!(
                    "is a symbolic link (to {target:?}): only regular files in Approved/ are executed"
                ),
            );
        }
        if !meta.is_file() {
            return self.park(name, "is not a regular file");
        }
        if meta.size > request::MAX_FILE_BYTES {
            return self.park(name, &too_large(meta.size));
        }
        let (bytes, snap) = match read_approval(&approved, name, self.opts.settle) {
            Ok(b) => b,
            Err(ReadError::Gone) => return Step::Finished,
            Err(ReadError::Writing) => {
                if self.writing.insert(name.to_string()) {
                    tracing::info!(
                        "{rel} is open for writing in another process; it is read \
                         once closed"
                    );
                }
                return Step::Later(WRITER_RECHECK);
            }
            Err(ReadError::Unsettled(wait)) => {
                tracing::debug!("{rel} changed recently; looking again in {wait:?}");
                return Step::Later(wait);
            }
            Err(ReadError::Symlink) => {
                return self.park(
                    name,
                    "is a symbolic link: only regular files in Approved/ are executed",
                );
            }
            Err(ReadError::TooLarge(n)) => return self.park(name, &too_large(n)),
            Err(ReadError::NotRegular) => return self.park(name, "is not a regular file"),
            Err(ReadError::Io(e)) => {
                tracing::warn!("cannot read {rel}: {e}");
                return Step::Deferred;
            }
        };
        self.writing.remove(name);
        let sha = sha256_hex(&bytes);
        let Ok(text) = String::from_utf8(bytes) else {
            return self.park(name, "is not UTF-8 text");
        };
        let mut item = Item {
            name,
            sha: &sha,
            text: &text,
            id: snap.id(),
            snap,
            content: None,
        };
        // The file that was carried out, changed after its action had started and left
        // behind: not a new approval of its own.
        if let Some(c) = self.ledger.changed_after(name)
            && c.id == item.id
            && c.sha != sha
        {
            let error = format!(
                "{rel} was changed after its action had started: the version carried \
                 out is {}; this version was not carried out (move it back to Approved/ to \
                 approve it)",
                c.dest
            );
            let subject = Subject::of_text(&text, &self.vault);
            return self.conclude_failed(&item, &subject, 0, results::REFUSED, error, vec![]);
        }
        let key: Key = (name.to_string(), sha.clone());
        let attempt = match self.ledger.state(&key) {
            None => 1,
            Some(State::Open {
                attempts,
                last_error,
                ..
            }) => {
                if attempts >= self.opts.policy.max_attempts {
                    let subject = Subject::of_text(&text, &self.vault);
                    let error = format!(
                        "gave up after {attempts} attempts: {}",
                        last_error.unwrap_or_default()
                    );
                    return self.conclude_failed(
                        &item,
                        &subject,
                        attempts,
                        results::FAILED,
                        error,
                        vec![],
                    );
                }
                attempts + 1
            }
            Some(State::InFlight {
                attempt,
                action,
                effect,
                message_id,
                at,
            }) => {
                if let Some(u) = self.unrecorded.remove(&key)
                    && u.ended.attempt == attempt
                {
                    tracing::info!(
                        "{name}: recording the outcome of attempt {attempt}, which the ledger \
                         could not take before"
                    );
                    item.content = u.content;
                    return self.conclude(&item, u.ended);
                }
                item.content = content_of(&text, &self.vault);
                match self.recover_in_flight(&item, attempt, &action, effect, message_id, &at) {
                    Some(step) => return step,
                    None => attempt,
                }
            }
            Some(State::Decided { decision, content }) => {
                tracing::info!(
                    "{name}: finishing the move decided before a restart ({})",
                    decision.result
                );
                item.content = content;
                return self.finish(&item, &decision);
            }
            Some(State::Finished {
                dest, at, result, ..
            }) if result.as_deref().is_none_or(|r| results::ONCE.contains(&r)) => {
                let error = format!(
                    "already handled at {at}{}: the same file name and content were approved \
                     before; change the file to run it again",
                    if dest.is_empty() {
                        String::new()
                    } else {
                        format!(" (see {dest})")
                    }
                );
                return self.refuse_duplicate(&item, error);
            }
            // Refused, failed or rehearsed before: nothing was carried out; a new run.
            Some(State::Finished { .. }) => 1,
        };
        let doc = match frontmatter::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                return self.conclude_failed(
                    &item,
                    &Subject::unknown(),
                    0,
                    results::REFUSED,
                    e.to_string(),
                    vec![],
                );
            }
        };
        let req = match request::validate(&doc, Utc::now(), &self.vault) {
            Ok(r) => r,
            Err(e) => {
                let subject = Subject::of_text(&text, &self.vault);
                return self.conclude_failed(
                    &item,
                    &subject,
                    0,
                    results::REFUSED,
                    e.to_string(),
                    vec![],
                );
            }
        };
        let content = req.content_key();
        if !req.allow_duplicate
            && let Some(prev) = self.ledger.executed(&content, Utc::now())
        {
            let error = duplicate_error(&req, &prev);
            return self.conclude_failed(
                &item,
                &Subject::of_request(&req),
                0,
                results::REFUSED,
                error,
                vec![],
            );
        }
        item.content = Some(content);
        self.execute(&item, &req, attempt)
    }

    /// An intent without an outcome, found at start. A local action is checked (its mark
    /// is there or not); an external one is never repeated. `None`: the local effect did
    /// not happen, run the attempt normally.
    fn recover_in_flight(
        &mut self,
        item: &Item,
        attempt: u32,
        action: &str,
        effect: Option<String>,
        message_id: Option<String>,
        at: &str,
    ) -> Option<Step> {
        let subject = Subject::of_text(item.text, &self.vault);
        if let Some(effect) = effect {
            let tag = identity_tag(item.name, item.sha);
            let Some(found) = self.actions.found(&self.vault, action, &effect, &tag) else {
                tracing::info!(
                    "{}: attempt {attempt} stopped before its effect; running it",
                    item.name
                );
                return None;
            };
            tracing::info!(
                "{}: attempt {attempt} had completed ({effect}) before a restart",
                item.name
            );
            let outcome = Outcome::Success {
                detail: format!("{effect} (found after a restart)"),
                fields: found.fields,
            };
            return Some(self.conclude(
                item,
                Ended {
                    attempt,
                    subject,
                    outcome,
                    success: found.result,
                    extra: vec![],
                },
            ));
        }
        let error = format!(
            "outcome unknown — check before re-approving: the handler stopped during attempt \
             {attempt} ({action}, started {at}), after the request may have been sent"
        );
        Some(self.conclude_failed(
            item,
            &subject,
            attempt,
            results::OUTCOME_UNKNOWN,
            error,
            message_id_field(message_id),
        ))
    }

    /// The ledger's protocol for one attempt: prepare the action (a refusal records
    /// nothing), record the intent durably, perform the action once, record what came of
    /// it. A crash between any two steps is recovered from the ledger at the next start
    /// ([`Handler::recover_in_flight`]): an external call is never repeated.
    fn execute(&mut self, item: &Item, req: &Request, attempt: u32) -> Step {
        let subject = Subject::of_request(req);
        let tag = identity_tag(item.name, item.sha);
        let now = Utc::now();
        let cx = Context {
            vault: &self.vault,
            file: item.name,
            sha: item.sha,
            tag: &tag,
            approved_by: &req.approved_by,
            now,
            dry_run: self.opts.dry_run,
        };
        let mut action = self.actions.action(req);
        // Credentials first, then what will be sent: a refusal comes before any intent.
        let plan = match action.prepare(&cx) {
            Ok(p) => p,
            Err(refused) => {
                return self.conclude_failed(
                    item,
                    &subject,
                    0,
                    results::REFUSED,
                    refused.to_string(),
                    vec![],
                );
            }
        };
        if self.opts.dry_run || plan.rehearse {
            let detail = format!(
                "dry run: {} to {} not carried out",
                req.action.name(),
                subject.target
            );
            let outcome = Outcome::Success {
                detail,
                fields: vec![],
            };
            return self.conclude(
                item,
                Ended {
                    attempt,
                    subject,
                    outcome,
                    success: results::DRY_RUN,
                    extra: vec![],
                },
            );
        }
        // Nothing has happened yet: a file changed since it was read is read again, so
        // what is carried out (and archived) is the file as it is now.
        if !self.unchanged(item) {
            tracing::info!("{}: changed since it was read; reading it again", item.name);
            return Step::Later(Duration::ZERO);
        }
        // The intent, durable before anything happens.
        let intent = Record::Intent {
            file: item.name.to_string(),
            sha256: item.sha.to_string(),
            attempt,
            action: req.action.name().to_string(),
            at: time_text(now),
            effect: plan.effect.clone(),
            message_id: plan.message_id.clone(),
        };
        if let Err(e) = self.ledger.append(intent, true) {
            tracing::error!("{}: not executed: {e}", item.name);
            return Step::Deferred;
        }
        tracing::info!(
            "{}: {} attempt {attempt} → {}",
            item.name,
            req.action.name(),
            subject.target
        );
        let success = action.result();
        let outcome = if plan.effect.is_some() && !action.finds_its_own_mark() {
            // A write in the vault: quick, and found by its mark after a crash.
            action.perform()
        } else {
            match interruptible(&self.stop, move || action.perform()) {
                Some(o) => o,
                None => return Step::Interrupted,
            }
        };
        let outcome = outcome.redacted(&self.secrets());
        let extra = message_id_field(plan.message_id);
        self.conclude(
            item,
            Ended {
                attempt,
                subject,
                outcome,
                success,
                extra,
            },
        )
    }

    /// Record and carry out what an attempt's outcome means. If the ledger cannot take
    /// the record, the outcome is kept (see [`Unrecorded`]) for the next look at the file.
    fn conclude(&mut self, item: &Item, ended: Ended) -> Step {
        let attempt = ended.attempt;
        let kept = Unrecorded {
            ended: ended.clone(),
            content: item.content.clone(),
        };
        let step = self.record_outcome(item, ended);
        let key: Key = (item.name.to_string(), item.sha.to_string());
        if matches!(self.ledger.state(&key), Some(State::InFlight { attempt: a, .. }) if a == attempt)
        {
            self.unrecorded.insert(key, kept);
        }
        step
    }

    fn record_outcome(&mut self, item: &Item, ended: Ended) -> Step {
        let Ended {
            attempt,
            subject,
            outcome,
            success: result,
            extra,
        } = ended;
        let subject = &subject;
        match outcome {
            Outcome::Success { detail, mut fields } => {
                fields.extend(extra);
                tracing::info!("{}: {result}: {detail}", item.name);
                let d = item.decision(&self.vault, Destination::Done, result, None, fields);
                if !self.decide(item, &d) {
                    return Step::Deferred;
                }
                self.audit_line(subject, item.name, item.sha, attempt, result, None);
                self.finish(item, &d)
            }
            Outcome::Transient(error) => match self.opts.policy.after_transient(attempt) {
                AfterTransient::RetryIn(delay) => {
                    let rec = Record::Transient {
                        file: item.name.to_string(),
                        sha256: item.sha.to_string(),
                        attempt,
                        at: time_text(Utc::now()),
                        error: error.clone(),
                    };
                    if let Err(e) = self.ledger.append(rec, true) {
                        tracing::error!("{e}");
                        return Step::Deferred;
                    }
                    tracing::warn!(
                        "{}: attempt {attempt} failed, trying again in {}: {error}",
                        item.name,
                        ai_employee_vault::units::format_duration(delay)
                    );
                    self.audit_line(
                        subject,
                        item.name,
                        item.sha,
                        attempt,
                        results::RETRYING,
                        Some(&error),
                    );
                    let at = Instant::now() + delay;
                    self.retries.insert(item.name.to_string(), at);
                    Step::RetryAt(at)
                }
                AfterTransient::GiveUp => {
                    let error = format!("gave up after {attempt} attempts: {error}");
                    self.conclude_failed(item, subject, attempt, results::FAILED, error, extra)
                }
            },
            Outcome::Permanent(error) => {
                self.conclude_failed(item, subject, attempt, results::FAILED, error, extra)
            }
            Outcome::Unknown(error) => {
                let error = format!("outcome unknown — check before re-approving: {error}");
                self.conclude_failed(
                    item,
                    subject,
                    attempt,
                    results::OUTCOME_UNKNOWN,
                    error,
                    extra,
                )
            }
        }
    }

    /// `Failed/` with `error`, an audit line and a Dashboard row.
    fn conclude_failed(
        &mut self,
        item: &Item,
        subject: &Subject,
        attempt: u32,
        result: &str,
        error: String,
        fields: Vec<(String, String)>,
    ) -> Step {
        let error = redact(&error, &self.secrets());
        tracing::warn!("{}: {result}: {error}", item.name);
        let d = item.decision(
            &self.vault,
            Destination::Failed,
            result,
            Some(error.clone()),
            fields,
        );
        if !self.decide(item, &d) {
            return Step::Deferred;
        }
        self.audit_line(subject, item.name, item.sha, attempt, result, Some(&error));
        let status = match result {
            results::REFUSED => "✗ Refused",
            results::OUTCOME_UNKNOWN => "⚠ Outcome unknown",
            _ => "✗ Failed",
        };
        self.dashboard
            .push(status, format!("{}: {}", item.name, clip(&error, 300)));
        // For the supervisor's `[[notify]]` webhooks (approval_failed); best effort.
        ai_employee_vault::control::client::send_event(
            &self.vault,
            "approval_failed",
            &format!("{}: {result}: {}", item.name, clip(&error, 300)),
        );
        self.finish(item, &d)
    }

    /// A second copy of something already carried out. Not recorded in the ledger (the
    /// identity keeps its "carried out" state); a crash here at worst refuses it twice.
    fn refuse_duplicate(&mut self, item: &Item, error: String) -> Step {
        tracing::warn!("{}: {}: {error}", item.name, results::REFUSED);
        let d = item.decision(
            &self.vault,
            Destination::Failed,
            results::REFUSED,
            Some(error.clone()),
            vec![],
        );
        let subject = Subject::of_text(item.text, &self.vault);
        self.audit_line(
            &subject,
            item.name,
            item.sha,
            0,
            results::REFUSED,
            Some(&error),
        );
        self.dashboard
            .push("✗ Refused", format!("{}: {}", item.name, clip(&error, 300)));
        match outcome::finish(&self.vault, item.name, item.sha, item.id, item.text, &d) {
            Ok((dest, _)) => {
                tracing::info!("{} → {dest}", item.name);
                Step::Finished
            }
            Err(e) => {
                tracing::error!("{}: failed to move it to {}: {e}", item.name, d.dest);
                Step::Deferred
            }
        }
    }

    /// `Approved/`, opened without following a symlink.
    fn approved(&self) -> Result<Dir, nofollow::FolderError> {
        nofollow::open_folder(&self.vault.join(Folder::Approved))
    }

    /// Whether `Approved/<name>` is still exactly the file that was read.
    fn unchanged(&self, item: &Item) -> bool {
        self.approved()
            .ok()
            .and_then(|approved| approved.stat(item.name).ok())
            .is_some_and(|s| Fingerprint::of(s) == item.snap)
    }

    /// Record the decision (durably) before anything moves.
    fn decide(&mut self, item: &Item, d: &Decision) -> bool {
        let content = if results::EXECUTED.contains(&d.result.as_str()) {
            item.content.clone()
        } else {
            None
        };
        let rec = Record::Final {
            file: item.name.to_string(),
            sha256: item.sha.to_string(),
            at: d.at.clone(),
            decision: d.clone(),
            content,
        };
        match self.ledger.append(rec, true) {
            Ok(()) => true,
            Err(e) => {
                log_ledger_error(item.name, &e);
                false
            }
        }
    }

    fn finish(&mut self, item: &Item, d: &Decision) -> Step {
        match outcome::finish(&self.vault, item.name, item.sha, item.id, item.text, d) {
            Ok((dest, left)) => {
                // Still there, same file, other bytes (`finish` removes it only with the
                // bytes that were read): changed in place after its action had started.
                let changed = (results::ONCE.contains(&d.result.as_str())
                    && left == outcome::Left::Changed)
                    .then_some(item.id);
                if changed.is_some() {
                    tracing::warn!(
                        "{}: changed after its action had started; the version carried out is \
                         {dest}, the changed file will be refused",
                        item.name
                    );
                }
                let rec = Record::Done {
                    file: item.name.to_string(),
                    sha256: item.sha.to_string(),
                    dest: dest.clone(),
                    at: d.at.clone(),
                    result: None,
                    content: None,
                    changed,
                };
                if let Err(e) = self.ledger.append(rec, changed.is_some()) {
                    tracing::warn!("{e}");
                }
                tracing::info!("{} → {dest}", item.name);
                Step::Finished
            }
            Err(e) => {
                tracing::error!("{}: failed to move it to {}: {e}", item.name, d.dest);
                Step::Deferred
            }
        }
    }

    /// A file that cannot be read as an approval: moved aside with a note.
    fn park(&mut self, name: &str, why: &str) -> Step {
        let at = time_text(Utc::now());
        let error = format!("{} {why}", Folder::Approved.rel(name));
        tracing::warn!("refused: {error}");
        match outcome::park_unreadable(&self.vault, name, &error, &at) {
            Ok(note) => {
                self.audit_line(
                    &Subject::unknown(),
                    name,
                    "",
                    0,
                    results::REFUSED,
                    Some(&error),
                );
                self.dashboard.push("✗ Refused", clip(&error, 300));
                tracing::info!("{name} → {note}");
                Step::Finished
            }
            Err(e) => {
                tracing::error!("{name}: failed to move it to Failed/: {e}");
                Step::Deferred
            }
        }
    }

    fn audit_line(
        &self,
        subject: &Subject,
        name: &str,
        sha: &str,
        attempt: u32,
        result: &str,
        error: Option<&str>,
    ) {
        let mut parameters = subject.parameters.clone();
        if let Some(map) = parameters.as_object_mut() {
            map.insert("file".into(), json!(name));
            if !sha.is_empty() {
                map.insert("sha256".into(), json!(sha));
            }
            if attempt > 0 {
                map.insert("attempt".into(), json!(attempt));
            }
            if self.opts.dry_run {
                map.insert("dry_run".into(), json!(true));
            }
        }
        let entry = Entry {
            action_type: subject.action_type.clone(),
            target: subject.target.clone(),
            parameters,
            approved_by: subject.approved_by.clone(),
            result: result.to_string(),
            error: error.map(str::to_string),
        };
        self.audit.write(Utc::now(), &entry, &self.secrets());
    }
}

fn log_ledger_error(name: &str, e: &LedgerError) {
    tracing::error!("{name}: {e}");
}

fn too_large(len: u64) -> String {
    format!(
        "is {len} bytes, over the 1 MiB ({} bytes) limit for approval files",
        request::MAX_FILE_BYTES
    )
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// Run the call `f` on its own thread so that SIGTERM is noticed while it blocks.
/// `None`: the stop flag was set and `f` did not finish within [`STOP_GRACE`] (its intent
/// stays open: the next start reports the outcome as unknown).
fn interruptible(
    stop: &AtomicBool,
    f: impl FnOnce() -> Outcome + Send + 'static,
) -> Option<Outcome> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("send".into())
        .spawn(move || {
            // No receiver only when the handler gave up on the call (SIGTERM): its result
            // is lost on purpose, the open intent says "outcome unknown".
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        // Nothing was sent.
        return Some(Outcome::Transient(format!(
            "cannot start a thread for the call: {e}"
        )));
    }
    let mut stop_seen: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(v) => return Some(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    let since = *stop_seen.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STOP_GRACE {
                        return None;
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Some(Outcome::Unknown(
                    "internal error: the call ended without a result".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
