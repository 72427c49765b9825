//! The ledger's protocol with a fake action ([`crate::actions::fake`]): exactly once
//! across crashes, and every way to `Failed/`, without SMTP or HTTP.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ai_employee_vault::frontmatter;
use serde_json::json;

use super::{Handler, Options, Step};
use crate::actions::Outcome;
use crate::actions::fake::{Crash, Fake};
use crate::actions::run_task;
use crate::credentials::Credentials;
use crate::ledger::{Ledger, Record, State};
use crate::outcome::time_text;
use crate::retry::RetryPolicy;
use crate::util::sha256_hex;

/// A vault, the fake every request gets, and the stop flag of the handlers made here.
struct Bench {
    _dir: tempfile::TempDir,
    vault: PathBuf,
    fake: Fake,
    stop: Arc<AtomicBool>,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = dir.path().to_path_buf();
        for f in ["Approved", "Done", "Failed", "Logs", ".ai-employee"] {
            std::fs::create_dir(vault.join(f)).expect("folder");
        }
        Bench {
            _dir: dir,
            vault,
            fake: Fake::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn options(&self) -> Options {
        Options {
            dry_run: false,
            policy: RetryPolicy {
                max_attempts: 3,
                initial: Duration::from_secs(10),
                max: Duration::from_secs(60),
            },
            settle: Duration::ZERO,
        }
    }

    /// A handler as it starts: the ledger read again from the file (what survives a crash).
    fn handler(&self) -> Handler {
        self.handler_with(self.options())
    }

    /// A handler with this crate's own actions (no credentials: `run_task`, LinkedIn
    /// posts and payments can run).
    fn real_handler(&self, opts: Options) -> Handler {
        let ledger =
            Ledger::open(&self.vault.join(".ai-employee/approvals.ledger")).expect("ledger opens");
        let mut h = Handler::new(
            self.vault.clone(),
            ledger,
            Credentials::load(&self.vault),
            opts,
            self.stop.clone(),
        );
        h.close_unfinished();
        h
    }

    fn handler_with(&self, opts: Options) -> Handler {
        let ledger =
            Ledger::open(&self.vault.join(".ai-employee/approvals.ledger")).expect("ledger opens");
        let mut h = Handler::with_actions(
            self.vault.clone(),
            ledger,
            self.fake.catalog(),
            opts,
            self.stop.clone(),
        );
        h.close_unfinished();
        h
    }

    /// Put an approval of `body` into `Approved/<name>`; its text.
    fn approve(&self, name: &str, body: &str) -> String {
        let text = format!("---\ntype: approval_request\naction: linkedin_post\n---\n{body}\n");
        std::fs::write(self.vault.join("Approved").join(name), &text).expect("approve");
        text
    }

    fn in_approved(&self, name: &str) -> bool {
        self.vault.join("Approved").join(name).exists()
    }

    /// A field of `<folder>/<name>`; `None` if the file or the field is not there.
    fn field(&self, folder: &str, name: &str, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.vault.join(folder).join(name)).ok()?;
        let doc = frontmatter::parse(&text).ok()?;
        frontmatter::get_str(&doc.front, key).map(str::to_string)
    }

    fn ledger_text(&self) -> String {
        std::fs::read_to_string(self.vault.join(".ai-employee/approvals.ledger"))
            .unwrap_or_default()
    }

    /// Every line of the audit log.
    fn audit(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.vault.join("Logs")).expect("Logs/") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "json") {
                all.push_str(&std::fs::read_to_string(path).expect("audit"));
            }
        }
        all
    }

    /// Process `name` with a call that SIGTERM interrupts: the handler gives up on it and
    /// stops, the call ends later (its result is lost).
    fn interrupt_the_call(&self, name: &str) {
        let (entered, release) = self.fake.hang(self.stop.clone());
        assert_eq!(self.handler().process(name), Step::Interrupted);
        assert!(entered.try_recv().is_ok(), "interrupted during the call");
        release.send(()).expect("the call is still waiting");
        self.stop.store(false, Ordering::SeqCst);
    }

    /// (prepares, performs, side effects) so far.
    fn calls(&self) -> (u32, u32, usize) {
        let s = self.fake.script();
        (s.prepares, s.performs, s.effects.len())
    }
}

/// Run `h.process(name)` where the fake crashes on purpose: the handler dies with it.
fn crash(mut h: Handler, name: &str) {
    let died = catch_unwind(AssertUnwindSafe(|| h.process(name)));
    assert!(died.is_err(), "the handler was meant to die in the action");
}

#[test]
fn a_success_is_performed_once_and_its_copies_are_refused() {
    let b = Bench::new();
    let text = b.approve("a.md", "Hello");
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(b.calls(), (1, 1, 1));
    assert!(!b.in_approved("a.md"));
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("sent"));
    assert_eq!(b.field("Done", "a.md", "status").as_deref(), Some("done"));
    let tag = crate::util::identity_tag("a.md", &sha256_hex(text.as_bytes()));
    assert_eq!(
        b.field("Done", "a.md", "message_id"),
        Some(format!("<{tag}@fake>"))
    );
    // The intent was durable before the call, the decision before the move.
    let ledger = b.ledger_text();
    let kinds: Vec<&str> = ledger.lines().filter_map(|l| l.split('"').nth(3)).collect();
    assert_eq!(kinds, ["intent", "final", "done"]);

    // The same file again (a sync conflict's copy, say), in this run and after a restart.
    b.approve("a.md", "Hello");
    assert_eq!(h.process("a.md"), Step::Finished);
    let error = b.field("Failed", "a.md", "error").unwrap_or_default();
    assert!(error.starts_with("already handled at "), "{error}");
    drop(h);
    b.approve("a.md", "Hello");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert!(b.field("Failed", "a-2.md", "error").is_some());
    // The same content under another name: the duplicate rule.
    b.approve("b.md", "Hello");
    assert_eq!(b.handler().process("b.md"), Step::Finished);
    let error = b.field("Failed", "b.md", "error").unwrap_or_default();
    assert!(
        error.starts_with("duplicate of Done/a.md (sent at "),
        "{error}"
    );
    assert_eq!(b.calls(), (1, 1, 1), "carried out once");
}

#[test]
fn a_refusal_in_prepare_records_no_intent_and_runs_once_fixed() {
    let b = Bench::new();
    b.fake.script().refuse = Some("credentials/fake.toml: line 1: no key".into());
    b.approve("a.md", "Hello");
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(b.calls(), (1, 0, 0));
    assert_eq!(
        b.field("Failed", "a.md", "result").as_deref(),
        Some("refused")
    );
    assert_eq!(
        b.field("Failed", "a.md", "error").as_deref(),
        Some(
            "fake cannot run: credentials/fake.toml: line 1: no key (see docs/approvals.md); \
             then move this file back to Approved/"
        )
    );
    assert!(!b.ledger_text().contains("\"intent\""));
    assert!(b.audit().contains("\"result\":\"refused\""));
    // Fixed, and the file moved back as it came out of Failed/: it runs.
    b.fake.script().refuse = None;
    std::fs::rename(b.vault.join("Failed/a.md"), b.vault.join("Approved/a.md")).expect("move back");
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("sent"));
    assert_eq!(b.calls(), (2, 1, 1));
}

#[test]
fn a_transient_failure_is_tried_again_across_a_restart_then_given_up() {
    let b = Bench::new();
    b.fake.script().outcomes.extend([
        Outcome::Transient("busy".into()),
        Outcome::Transient("busy".into()),
    ]);
    b.approve("a.md", "Hello");
    let mut h = b.handler();
    let before = Instant::now();
    let Step::RetryAt(at) = h.process("a.md") else {
        panic!("not scheduled for a retry");
    };
    assert!(at >= before + Duration::from_secs(10));
    assert!(b.in_approved("a.md"));
    assert!(h.waiting("a.md"));
    assert_eq!(h.take_due(at), ["a.md"]);
    // A restart in between: the ledger says one attempt failed.
    drop(h);
    let mut h = b.handler();
    assert!(matches!(h.process("a.md"), Step::RetryAt(_)));
    // The third attempt succeeds.
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("sent"));
    assert_eq!(b.calls(), (3, 3, 1));
    assert_eq!(b.audit().matches("\"result\":\"retrying\"").count(), 2);

    // With no attempts left, a transient failure is final.
    b.fake
        .script()
        .outcomes
        .extend([Outcome::Transient("busy".into())]);
    b.approve("c.md", "Other");
    let mut h = b.handler_with(Options {
        policy: RetryPolicy {
            max_attempts: 1,
            ..b.options().policy
        },
        ..b.options()
    });
    assert_eq!(h.process("c.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "c.md", "result").as_deref(),
        Some("failed")
    );
    assert_eq!(
        b.field("Failed", "c.md", "error").as_deref(),
        Some("gave up after 1 attempts: busy")
    );
}

#[test]
fn a_permanent_failure_goes_to_failed_with_what_was_prepared() {
    let b = Bench::new();
    b.fake
        .script()
        .outcomes
        .push_back(Outcome::Permanent("550 no such mailbox".into()));
    b.approve("a.md", "Hello");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "a.md", "result").as_deref(),
        Some("failed")
    );
    assert_eq!(
        b.field("Failed", "a.md", "error").as_deref(),
        Some("550 no such mailbox")
    );
    assert!(b.field("Failed", "a.md", "message_id").is_some());
    assert_eq!(b.calls(), (1, 1, 0));
}

#[test]
fn an_unknown_outcome_is_never_repeated() {
    let b = Bench::new();
    b.fake.script().outcomes.push_back(Outcome::Unknown(
        "the connection dropped after the text".into(),
    ));
    b.approve("a.md", "Hello");
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "a.md", "result").as_deref(),
        Some("outcome_unknown")
    );
    assert_eq!(
        b.field("Failed", "a.md", "error").as_deref(),
        Some("outcome unknown — check before re-approving: the connection dropped after the text")
    );
    // The very same file approved again: refused, not sent a second time.
    b.approve("a.md", "Hello");
    assert_eq!(h.process("a.md"), Step::Finished);
    assert!(b.field("Failed", "a-2.md", "error").is_some());
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn an_external_call_cut_short_by_sigterm_is_never_repeated() {
    let b = Bench::new();
    b.approve("a.md", "Hello");
    b.interrupt_the_call("a.md");
    assert!(b.in_approved("a.md"));
    // The next start: the intent is open, the call may have happened.
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "a.md", "result").as_deref(),
        Some("outcome_unknown")
    );
    let error = b.field("Failed", "a.md", "error").unwrap_or_default();
    assert!(
        error.starts_with(
            "outcome unknown — check before re-approving: the handler stopped during attempt 1 \
             (linkedin_post, started "
        ) && error.ends_with("), after the request may have been sent"),
        "{error}"
    );
    // The Message-ID stays with the file (a re-approval sends the very same message).
    assert!(b.field("Failed", "a.md", "message_id").is_some());
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn an_interrupted_call_whose_file_was_moved_away_is_closed_at_start() {
    let b = Bench::new();
    b.approve("a.md", "Hello");
    b.interrupt_the_call("a.md");
    // A person moves it away while the handler is down.
    std::fs::remove_file(b.vault.join("Approved/a.md")).expect("remove");
    let h = b.handler();
    let audit = b.audit();
    assert!(
        audit.contains(
            "the handler stopped during attempt 1 and Approved/a.md has since been moved or \
             changed"
        ),
        "{audit}"
    );
    assert!(audit.contains("\"result\":\"outcome_unknown\""), "{audit}");
    assert!(h.ledger.unfinished().is_empty());
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn a_call_that_panics_has_an_unknown_outcome() {
    let b = Bench::new();
    b.fake.script().crash = Some(Crash::AfterEffect);
    b.approve("a.md", "Hello");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "a.md", "error").as_deref(),
        Some(
            "outcome unknown — check before re-approving: internal error: the call ended \
             without a result"
        )
    );
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn a_local_effect_cut_short_before_it_happened_runs_after_the_restart() {
    let b = Bench::new();
    {
        let mut s = b.fake.script();
        s.local = true;
        s.crash = Some(Crash::BeforeEffect);
    }
    b.approve("a.md", "Hello");
    crash(b.handler(), "a.md");
    assert!(b.ledger_text().contains("\"effect\":\"FAKE#"));
    assert_eq!(b.calls(), (1, 1, 0));
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("queued"));
    // The same attempt, run again (its effect had not happened): one effect in all.
    assert_eq!(b.calls(), (2, 2, 1));
    assert!(!b.ledger_text().contains("\"attempt\":2"));
}

#[test]
fn a_local_effect_that_happened_before_a_crash_is_found_not_repeated() {
    let b = Bench::new();
    {
        let mut s = b.fake.script();
        s.local = true;
        s.crash = Some(Crash::AfterEffect);
    }
    let text = b.approve("a.md", "Hello");
    crash(b.handler(), "a.md");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    let tag = crate::util::identity_tag("a.md", &sha256_hex(text.as_bytes()));
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("queued"));
    assert_eq!(
        b.field("Done", "a.md", "fake_mark"),
        Some(format!("FAKE#{tag}"))
    );
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn a_decision_not_yet_moved_is_finished_without_performing_again() {
    let b = Bench::new();
    b.approve("a.md", "Hello");
    // Done/ cannot take the file: the decision is recorded, the move fails.
    std::fs::remove_dir(b.vault.join("Done")).expect("rmdir");
    std::fs::write(b.vault.join("Done"), "not a folder").expect("file");
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Deferred);
    assert!(b.in_approved("a.md"));
    let key = (
        "a.md".to_string(),
        sha256_hex(&std::fs::read(b.vault.join("Approved/a.md")).expect("read")),
    );
    assert!(matches!(h.ledger.state(&key), Some(State::Decided { .. })));
    // Looked at again in this run: still no folder, still not performed again.
    assert_eq!(h.process("a.md"), Step::Deferred);
    drop(h);
    std::fs::remove_file(b.vault.join("Done")).expect("rm");
    std::fs::create_dir(b.vault.join("Done")).expect("mkdir");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert_eq!(b.field("Done", "a.md", "result").as_deref(), Some("sent"));
    assert_eq!(b.calls(), (1, 1, 1));
}

#[test]
fn a_file_edited_while_its_action_is_prepared_is_read_again_first() {
    let b = Bench::new();
    b.approve("a.md", "Hello");
    b.fake.script().edit =
        Some("---\ntype: approval_request\naction: linkedin_post\n---\nHello, edited\n".into());
    let mut h = b.handler();
    assert_eq!(h.process("a.md"), Step::Later(Duration::ZERO));
    assert!(!b.ledger_text().contains("\"intent\""));
    assert_eq!(h.process("a.md"), Step::Finished);
    let done = std::fs::read_to_string(b.vault.join("Done/a.md")).expect("done");
    assert!(done.contains("Hello, edited"), "{done}");
    assert_eq!(b.calls(), (2, 1, 1));
}

#[test]
fn dry_run_prepares_but_never_performs() {
    let b = Bench::new();
    b.approve("a.md", "Hello");
    let mut h = b.handler_with(Options {
        dry_run: true,
        ..b.options()
    });
    assert_eq!(h.process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Done", "a.md", "result").as_deref(),
        Some("dry_run")
    );
    assert_eq!(b.field("Done", "a.md", "message_id"), None);
    assert!(!b.ledger_text().contains("\"intent\""));
    assert!(b.audit().contains("\"dry_run\":true"));
    assert_eq!(b.calls(), (1, 0, 0));
}

#[test]
fn secrets_never_reach_failed_or_the_audit_log() {
    let b = Bench::new();
    {
        let mut s = b.fake.script();
        s.secret = Some("hunter2-s3cret".into());
        s.outcomes.push_back(Outcome::Permanent(
            "535 login hunter2-s3cret refused".into(),
        ));
    }
    b.approve("a.md", "Hello");
    assert_eq!(b.handler().process("a.md"), Step::Finished);
    assert_eq!(
        b.field("Failed", "a.md", "error").as_deref(),
        Some("535 login [redacted] refused")
    );
    let audit = b.audit();
    assert!(audit.contains("535 login [redacted] refused"), "{audit}");
    assert!(!audit.contains("hunter2"), "{audit}");
}

// ---------------------------------------------------------------------------------------
// `run_task` (the task loop's approval to run the agent), with the real action.
// ---------------------------------------------------------------------------------------

const RUN: &str = "---\ntype: approval_request\naction: run_task\ntask: EMAIL_20261206T050000_deploy\ntitle: \"Deploy the site\"\ncreated: 2026-12-06T05:00:00Z\nstatus: pending\n---\nMove this file to Approved/ to let it run.\n";

impl Bench {
    fn approve_text(&self, name: &str, text: &str) {
        std::fs::write(self.vault.join("Approved").join(name), text).expect("approve");
    }

    /// `name` through a new handler with the real actions (as after a restart).
    fn process_real(&self, name: &str) {
        let step = self.real_handler(self.options()).process(name);
        assert_eq!(step, Step::Finished, "{name}");
    }

    fn failed_error(&self, name: &str) -> String {
        self.field("Failed", name, "error").unwrap_or_default()
    }

    /// `Failed/<name>` says why, starting with `prefix`.
    fn assert_refused(&self, name: &str, prefix: &str) {
        let error = self.failed_error(name);
        assert!(error.starts_with(prefix), "{name}: {error}");
    }

    /// The audit log's lines as JSON.
    fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.audit()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

#[test]
fn run_task_is_approved_once_and_traced_to_its_task() {
    let b = Bench::new();
    let task = "EMAIL_20261206T050000_deploy";
    b.approve_text("RUN_x.md", RUN);
    let mut h = b.real_handler(b.options());
    assert_eq!(h.process("RUN_x.md"), Step::Finished);
    assert!(!b.in_approved("RUN_x.md"));
    for (key, want) in [("result", "approved"), ("status", "done"), ("task", task)] {
        assert_eq!(
            b.field("Done", "RUN_x.md", key).as_deref(),
            Some(want),
            "{key}"
        );
    }
    let lines = b.audit_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let a = &lines[0];
    assert_eq!(
        (&a["action_type"], &a["target"], &a["result"]),
        (&json!("run_task"), &json!(task), &json!("approved"))
    );
    assert_eq!(a["parameters"]["task"], task);
    assert_eq!(a["parameters"]["title"], "Deploy the site");
    // A local action: a crash after its intent is not an "outcome unknown".
    let ledger = b.ledger_text();
    assert!(
        ledger.contains(&format!("\"effect\":\"approval to run task {task}\"")),
        "{ledger}"
    );
    // The same file approved again: already handled, in this run and after a restart.
    b.approve_text("RUN_x.md", RUN);
    assert_eq!(h.process("RUN_x.md"), Step::Finished);
    b.assert_refused("RUN_x.md", "already handled at ");
    assert!(b.failed_error("RUN_x.md").contains("(see Done/RUN_x.md)"));
    drop(h);
    b.approve_text("RUN_x.md", RUN);
    b.process_real("RUN_x.md");
    b.assert_refused("RUN_x-2.md", "already handled at ");
    // The file from Done/ dragged back: already executed.
    std::fs::rename(
        b.vault.join("Done/RUN_x.md"),
        b.vault.join("Approved/RUN_y.md"),
    )
    .expect("move back");
    b.process_real("RUN_y.md");
    b.assert_refused("RUN_y.md", "already executed (result: approved at ");
    // A sync-conflict copy under another name is a duplicate; a new request for the same
    // task (another `created`) is not.
    b.approve_text("RUN_x (1).md", &RUN.replace("pending", "approved"));
    b.process_real("RUN_x (1).md");
    b.assert_refused("RUN_x (1).md", "duplicate of Done/RUN_x.md (approved at ");
    b.approve_text("RUN_z.md", &RUN.replace("2026-12-06T05", "2026-12-07T08"));
    b.process_real("RUN_z.md");
    assert_eq!(
        b.field("Done", "RUN_z.md", "result").as_deref(),
        Some("approved")
    );
    let approved = b
        .audit_lines()
        .iter()
        .filter(|l| l["result"] == "approved")
        .count();
    assert_eq!(approved, 2);
}

#[test]
fn run_task_cut_short_by_a_crash_after_its_intent_is_approved_not_unknown() {
    let b = Bench::new();
    // Valid when its intent was recorded, expired by the restart: the approval stood.
    let text = RUN.replace("status:", "expires: 2026-01-01T00:00:00Z\nstatus:");
    b.approve_text("RUN_x.md", &text);
    // What a handler that died between the intent and the outcome leaves behind.
    {
        let mut ledger =
            Ledger::open(&b.vault.join(".ai-employee/approvals.ledger")).expect("ledger opens");
        let intent = Record::Intent {
            file: "RUN_x.md".into(),
            sha256: sha256_hex(text.as_bytes()),
            attempt: 1,
            action: run_task::NAME.into(),
            at: time_text(chrono::Utc::now()),
            effect: Some(run_task::run_task_effect("EMAIL_20261206T050000_deploy")),
            message_id: None,
        };
        ledger.append(intent, true).expect("intent");
    }
    let mut h = b.real_handler(b.options());
    assert_eq!(h.process("RUN_x.md"), Step::Finished);
    assert_eq!(
        b.field("Done", "RUN_x.md", "result").as_deref(),
        Some("approved")
    );
    assert!(!b.ledger_text().contains("\"attempt\":2"));
    let lines = b.audit_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["result"], "approved");
}

#[test]
fn run_task_refusals_go_to_failed_and_a_dry_run_is_not_an_approval() {
    let b = Bench::new();
    let expired = RUN.replace("status:", "expires: 2026-01-01T00:00:00Z\nstatus:");
    b.approve_text("RUN_old.md", &expired);
    b.approve_text(
        "RUN_none.md",
        "---\ntype: approval_request\naction: run_task\n---\n",
    );
    b.approve_text(
        "RUN_bad.md",
        &RUN.replace("task: EMAIL_", "task: ../EMAIL_"),
    );
    for name in ["RUN_old.md", "RUN_none.md", "RUN_bad.md"] {
        b.process_real(name);
        let result = b.field("Failed", name, "result");
        assert_eq!(result.as_deref(), Some("refused"), "{name}");
    }
    assert_eq!(
        b.failed_error("RUN_old.md"),
        "approval expired at 2026-01-01T00:00:00Z: ask again rather than act late"
    );
    assert_eq!(
        b.failed_error("RUN_none.md"),
        "missing field `task` (run_task needs `task`, the id of the task to run)"
    );
    b.assert_refused("RUN_bad.md", "field `task` is not a task id: \"../EMAIL_");
    // The refused request that names a valid task is still traced to it.
    let lines = b.audit_lines();
    let old = lines
        .iter()
        .find(|l| l["parameters"]["task"] == "EMAIL_20261206T050000_deploy")
        .expect("the expired one's line");
    assert_eq!(old["result"], "refused");
    assert_eq!(old["action_type"], "run_task");
    assert_eq!(old["target"], "EMAIL_20261206T050000_deploy");
    // Rehearsed only: `dry_run`, not `approved`.
    b.approve_text("RUN_dry.md", RUN);
    let mut h = b.real_handler(Options {
        dry_run: true,
        ..b.options()
    });
    assert_eq!(h.process("RUN_dry.md"), Step::Finished);
    assert_eq!(
        b.field("Done", "RUN_dry.md", "result").as_deref(),
        Some("dry_run")
    );
}
