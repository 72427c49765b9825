//! `ai-employee watch approvals`: executes what a human moved into `Approved/` (the
//! safety valve). Operator documentation: `docs/approvals.md`.
//!
//! | file | owns |
//! |---|---|
//! | `lib.rs` | options, start-up (vault, lock, which actions are enabled), the event loop |
//! | `arrivals.rs` | which files in `Approved/` to look at, and when (OS events, listings, settling) |
//! | `handler.rs` | one file start to end: ledger state, validate, duplicates, then the ledger's protocol around its action (prepare → intent → perform → outcome), decide, move; unit tests with a fake action in `handler/tests.rs` |
//! | `reading.rs` | an approval read only when whole (read leases, else a settle window and a re-check) |
//! | `request.rs` | frontmatter → validated request, or the reason it is refused |
//! | `ledger.rs` | the fsynced intent/outcome ledger (exactly once across crashes, what was carried out in the last 7 days), compacted |
//! | `outcome.rs` | the decision and the idempotent move to `Done/` or `Failed/` |
//! | `retry.rs` | capped exponential backoff (pure) |
//! | `util.rs` | SHA-256 in hex, the identity tag of an approval, secrets redacted |
//! | `actions/` | the six actions behind one trait (`prepare` → `perform` → `result`) and their `Outcome`, one module each: `email.rs` (SMTP), `whatsapp.rs` (Cloud API), `linkedin.rs` (the queue), `payment.rs` (a task for a human), `run_task.rs` (the task loop's approval to run the agent: no effect of its own), `github.rs` (a comment on a GitHub issue, with a marker looked for before posting) |
//! | `credentials.rs` | `credentials/smtp.toml`, `credentials/whatsapp.toml`, `credentials/github.toml` |
//! | `setup.rs` | the live checks `ai-employee setup smtp` and `setup whatsapp` run before saving, with the actions' own client code |
//! | `audit.rs`, `dashboard_rows.rs` | `Logs/YYYY-MM-DD.json` (and what it says about an approval), Dashboard rows |

mod actions;
mod arrivals;
mod audit;
mod credentials;
mod dashboard_rows;
mod handler;
mod ledger;
mod outcome;
mod reading;
pub mod request;
mod retry;
pub mod setup;
mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::exit_codes;
use ai_employee_vault::folder_events::{FolderEvents, folder_check_every};
use ai_employee_vault::layout::{Folder, STATE_DIR};
use ai_employee_vault::lock::LockError;
use ai_employee_vault::nofollow::Dir;
use ai_employee_vault::units::{parse_flag_duration, parse_positive_duration};
use ai_employee_vault::watcher::{WatcherCtx, WatcherError, run_watcher};
use clap::Args as ClapArgs;

use handler::{Handler, Options, Step};

const NAME: &str = "approvals";

/// The vault folders the handler reads or writes. None may be a symlink: `Approved/` as
/// a link to `Pending_Approval/` would execute drafts nobody approved, `Done/` as a link
/// would write outside the vault.
const FOLDERS: [Folder; 5] = [
    Folder::Approved,
    Folder::Done,
    Folder::Failed,
    Folder::Logs,
    Folder::NeedsAction,
];

/// The first of the handler's folders that is now a symlink, as the one-line reason.
fn symlinked_folder(root: &Dir) -> Option<String> {
    FOLDERS
        .iter()
        .map(|f| f.name())
        .chain(std::iter::once(STATE_DIR))
        .find_map(|f| match root.folder(f) {
            Err(e) if e.is_symlink() => Some(e.to_string()),
            _ => None,
        })
}

#[derive(Debug, ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,
    /// Do everything but the action itself (no email, no WhatsApp message, no queue entry,
    /// no payment task); files go to Done/ with `result: dry_run`
    #[arg(long)]
    pub dry_run: bool,
    /// Attempts before an approval that keeps failing transiently goes to Failed/
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub retry_initial: Duration,
    /// Longest delay between two attempts
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_positive_duration)]
    pub retry_max: Duration,
    /// How long a file written in place (not moved in) must stay unchanged before it is read
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_flag_duration)]
    pub settle: Duration,
    /// How often Approved/ is listed in full without OS file events (with them, every minute), and a file that hit an I/O error is looked at again
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_positive_duration)]
    pub rescan: Duration,
}

pub fn run(args: Args) -> i32 {
    run_watcher(NAME, &args.vault, |ctx| handle(ctx, &args))
}

/// Start-up (the vault, its folders, the lock, the ledger), then the loop until stopped.
fn handle(mut ctx: WatcherCtx, args: &Args) -> Result<(), WatcherError> {
    let vault = ctx.vault().root().to_path_buf();
    if !vault.is_dir() {
        return Err(WatcherError::Setup(format!(
            "no vault at {}: create it with `ai-employee init`",
            vault.display()
        )));
    }
    let cant_create = |message| WatcherError::Start {
        code: exit_codes::CANT_CREATE,
        message,
    };
    let root = Dir::open(&vault)
        .map_err(|e| cant_create(format!("failed to open {}: {e}", vault.display())))?;
    for (folder, private) in FOLDERS
        .iter()
        .map(|f| (f.name(), false))
        .chain(std::iter::once((STATE_DIR, true)))
    {
        match root.make_folder(folder, private) {
            Ok(_) => {}
            Err(e) if e.is_symlink() => return Err(WatcherError::Setup(e.to_string())),
            Err(e) => return Err(cant_create(format!("failed to create {folder}: {e}"))),
        }
    }
    // One handler per vault: two would execute the same file twice.
    let _lock = ctx.lock().map_err(|e| WatcherError::Start {
        code: exit_codes::LOCKED,
        message: match e {
            LockError::HeldBy { pid, .. } => {
                format!("another approval handler (pid {pid}) is running for this vault")
            }
            e => e.to_string(),
        },
    })?;
    let mut creds = credentials::Credentials::load(&vault);
    // Each action is enabled by its own credentials; LinkedIn posts and payments need
    // none, so the handler always has something to do and never stops for credentials.
    let actions = creds.actions(args.dry_run);
    let ledger =
        ledger::Ledger::open(&ctx.vault().state_file("approvals.ledger")).map_err(|e| {
            WatcherError::Start {
                code: exit_codes::FAILURE,
                message: e.to_string(),
            }
        })?;
    tracing::debug!(
        "ledger: {} records, {} approvals remembered",
        ledger.records(),
        ledger.identities()
    );
    let policy = retry::RetryPolicy {
        max_attempts: args.max_attempts,
        initial: args.retry_initial,
        max: args.retry_max.max(args.retry_initial),
    };
    let watching = format!(
        "watching {} (dry run: {}, attempts: {}, retry delays: {})",
        ctx.vault().folder(Folder::Approved).display(),
        args.dry_run,
        policy.max_attempts,
        policy
            .delays()
            .into_iter()
            .map(ai_employee_vault::units::format_duration)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut handler = Handler::new(
        vault.clone(),
        ledger,
        creds,
        Options {
            dry_run: args.dry_run,
            policy,
            settle: args.settle,
        },
        ctx.stop_flag(),
    );
    report_actions(&handler, &actions);
    // The last start-up line: what the handler can do is said before it.
    tracing::info!("{watching}");
    handler.close_unfinished();
    let rescan = args.rescan;
    let mut arrivals =
        arrivals::Arrivals::new(&ctx.vault().folder(Folder::Approved), args.settle, rescan);
    // The loop sleeps until an event, a retry, a check or the heartbeat is due; a stop
    // signal wakes it at once.
    ctx.wake_on_stop(arrivals.waker())
        .map_err(|e| WatcherError::failed_to("set up signal handling", e))?;
    // A change to one of the folders' names in the vault folder asks for a check at once.
    // The first turn checks anyway: a folder swapped after the start-up check and before
    // these events were watched made no event here.
    let folders_changed = Arc::new(AtomicBool::new(true));
    let names: Vec<&str> = FOLDERS
        .iter()
        .map(|f| f.name())
        .chain(std::iter::once(STATE_DIR))
        .collect();
    let name_events = {
        let (changed, wake) = (folders_changed.clone(), arrivals.waker());
        FolderEvents::watch_names_or_none(&vault, &names, move || {
            changed.store(true, Ordering::Relaxed);
            wake();
        })
    };
    let check_every = folder_check_every(name_events.is_some());

    let mut folders_checked = Instant::now();
    'run: while !ctx.stopping() {
        ctx.beat();
        if folders_changed.swap(false, Ordering::Relaxed)
            || folders_checked.elapsed() >= check_every
        {
            folders_checked = Instant::now();
            if let Some(problem) = symlinked_folder(&root) {
                // Nothing is read or moved through it (every access refuses the link);
                // stop so the supervisor shows the vault as needing setup.
                tracing::error!("stopping: {problem}");
                handler.shutdown(Duration::from_millis(250));
                return Err(WatcherError::Setup(problem));
            }
        }
        let now = Instant::now();
        let mut wait = check_every.saturating_sub(folders_checked.elapsed());
        if let Some(t) = handler.next_retry() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if let Some(beat) = ctx.next_beat_in() {
            wait = wait.min(beat);
        }
        let ready = arrivals.poll(wait, &|n| handler.waiting(n));
        let due = handler.take_due(Instant::now());
        for name in due.into_iter().chain(ready) {
            if ctx.stopping() {
                break 'run;
            }
            ctx.beat();
            arrivals.forget(&name);
            match handler.process(&name) {
                Step::Interrupted => break 'run,
                Step::Later(wait) => arrivals.later(&name, wait),
                // An I/O error (a full disk, say): looked at again after `--rescan`.
                Step::Deferred => arrivals.later(&name, rescan),
                Step::Finished | Step::RetryAt(_) => {}
            }
        }
    }
    tracing::info!("stopping");
    handler.shutdown(Duration::from_millis(250));
    Ok(())
}

/// Say at start which actions are enabled and which are not, and why: in the log (a
/// warning when one is not) and, then, as a Dashboard row.
fn report_actions(handler: &Handler, actions: &[(&'static str, credentials::ActionState)]) {
    let enabled: Vec<String> = actions
        .iter()
        .filter_map(|(a, r)| match r {
            Ok(None) => Some(a.to_string()),
            Ok(Some(note)) => Some(format!("{a} ({note})")),
            Err(_) => None,
        })
        .collect();
    let disabled: Vec<String> = actions
        .iter()
        .filter_map(|(a, r)| r.as_ref().err().map(|why| format!("{a} ({why})")))
        .collect();
    if disabled.is_empty() {
        tracing::info!("actions enabled: {}", enabled.join(", "));
        handler.setup_row(None);
        return;
    }
    let not = format!(
        "not enabled: {}: see docs/approvals.md",
        disabled.join(", ")
    );
    tracing::warn!("actions enabled: {}; {not}", enabled.join(", "));
    handler.setup_row(Some(not));
}
