//! The loop itself: one thread, a tokio current-thread runtime. OS file events and a
//! sweep find tasks; the queue is ordered by score; a free slot claims the best runnable
//! task into `In_Progress/` and starts an attempt (`runner`); what an attempt returns
//! moves the task on. Every decision is written into the task's frontmatter before the
//! next step, so a loop killed at any instant resumes from the files (docs/agent.md,
//! "Crash safety").

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ai_employee_vault::dashboard::Row;
use ai_employee_vault::journal::{self, Journal};
use ai_employee_vault::layout::{Folder, Vault};
use ai_employee_vault::nofollow::{Dir, Kind};
use ai_employee_vault::watcher::{WatcherCtx, WatcherError};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::events::{self, EventKind, RunResult, TaskEvent};
use super::gate;
use super::prompt::{self, Fill};
use super::runner::{self, AttemptEnd, AttemptSpec, Progress};
use super::score::{self, Facts};
use super::snapshot::{self, FileRef, Snapshot, Stated, TaskViewRef, Totals};
use super::task::{self, LoopState, TaskDoc, keys};
use crate::config::AgentSettings;
use crate::process::records::{self, Record, RecordLog};

mod alarm;
mod durable;
mod remote;
mod runs;
mod table;
use alarm::Alarm;
use table::Tasks;

/// The stop file (seed 000): while it exists no new task starts; `now` inside it also
/// stops the running ones.
pub const STOP_FILE: &str = ".claude_stop";
/// The loop's record of its agents' process groups, under `.ai-employee/`.
pub const GROUPS_FILE: &str = "agent-groups";
/// How often the folders are listed again, in case an OS event was lost.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// The snapshot is rewritten at least this often, also when nothing changed.
const SNAPSHOT_FRESH: Duration = Duration::from_secs(55);
/// How often waiting approvals are looked at without an event.
const APPROVALS_EVERY: Duration = Duration::from_secs(10);
/// The snapshot is rewritten at most this often (and at least every [`SWEEP_EVERY`]).
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);
/// ... and, with a long queue, no sooner than this many times what its last write took
/// (building, serialising and writing it), so that it costs the loop at most a twentieth
/// of its time however many tasks are known; never further apart than
/// [`SNAPSHOT_MAX_GAP`].
const SNAPSHOT_COST_FACTOR: u32 = 20;
const SNAPSHOT_MAX_GAP: Duration = Duration::from_secs(2);

/// How the loop was started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Process what is runnable now, then exit.
    pub once: bool,
    /// Everything but starting the agent and changing the vault.
    pub dry_run: bool,
}

/// One task the loop knows of.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    /// Its file name in `folder`.
    name: String,
    folder: Folder,
    state: LoopState,
    attempt: u32,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    waiting_since: Option<DateTime<Utc>>,
    last_error: Option<String>,
    session_id: Option<String>,
    title: String,
    priority: Option<String>,
    deadline: Option<DateTime<Utc>>,
    /// The time-independent part of the score (urgency, sender).
    base: f64,
    run_approval: Option<String>,
    approvals: Vec<String>,
    /// The next run resumes the session after its approvals were decided.
    resume_after_approval: bool,
    cost_usd: f64,
    turns: u64,
    pid: Option<u32>,
    /// Dry run: already shown.
    seen_dry: bool,
}

/// A task [claimed](Engine::claim) for a run: its file in `In_Progress/` says `running`.
struct Claimed {
    /// Its file name in `In_Progress/`.
    name: String,
    attempt: u32,
    /// The run resumes its session after its approvals were decided.
    resumed: bool,
    title: String,
}

/// What the event sources send the loop.
enum Input {
    /// Names changed in a watched folder (`None`: the vault root).
    Fs(Option<Folder>, Vec<String>),
    /// The OS watch failed: fall back to sweeps.
    FsError(String),
}

/// The folders whose events the loop follows (besides the vault root's stop file).
const WATCHED: [Folder; 7] = [
    Folder::NeedsAction,
    Folder::InProgress,
    Folder::PendingApproval,
    Folder::Approved,
    Folder::Done,
    Folder::Rejected,
    Folder::Failed,
];

/// The folders' event source; the events stop when it is dropped.
#[cfg(target_os = "linux")]
struct FolderWatch(tokio::task::JoinHandle<()>);

#[cfg(target_os = "linux")]
impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(not(target_os = "linux"))]
struct FolderWatch(#[allow(dead_code)] notify::RecommendedWatcher);

pub struct Engine {
    vault: Vault,
    s: AgentSettings,
    opts: Options,
    template: String,
    dirs: Dirs,
    tasks: Tasks,
    /// The agents' added environment: `[agent] env` and the run marker.
    run_env: BTreeMap<String, String>,
    running: HashMap<String, watch::Sender<bool>>,
    paused: bool,
    pause_now: bool,
    events: Option<Journal>,
    totals: Totals,
    today: Totals,
    today_date: chrono::NaiveDate,
    records: Option<RecordLog>,
    groups: HashMap<i32, Record>,
    recent_runs: VecDeque<Duration>,
    last_completion: Option<DateTime<Utc>>,
    needs_setup: Option<String>,
    started_at: DateTime<Utc>,
    snapshot_dirty: bool,
    last_snapshot: Instant,
    /// The least time between two snapshot writes (see [`SNAPSHOT_COST_FACTOR`]).
    snapshot_gap: Duration,
    rows: Vec<Row>,
    dashboard: Option<(
        std::sync::mpsc::Sender<DashWrite>,
        std::thread::JoinHandle<()>,
    )>,
    /// The `## Tasks` summary last handed to the Dashboard writer, and when.
    last_summary: String,
    last_dashboard: Option<Instant>,
    approvals_dirty: bool,
    /// The last health the loop judged itself to have (`tasks health`'s rules).
    health: super::health::State,
    /// Folders that received a finished task since the last sync.
    unsynced: Vec<Folder>,
    /// The sync thread (none in a dry run, or if it could not be started or died).
    durable: Option<durable::Durable>,
    /// The threads the agents' runs are driven on ([`runs`]), started with the first run
    /// here (none in a dry run, nor while every run is on the queue); `None` inside when
    /// they could not be started.
    runs: std::cell::OnceCell<Option<runs::Runs>>,
    /// While a queue's result is taken in: who ran it, written by the edits of its task
    /// file (its next state) rather than by an edit of their own.
    stamp: Option<remote::Stamp>,
    /// The number of the last sync asked for (the sync thread's, else counted here).
    sync_asked: u64,
    /// Told when the sync thread completed one.
    synced: durable::Synced,
    /// The work queue to workers on other hosts (`[agent] queue`), when set.
    remote: Option<remote::Remote>,
}

/// The vault's folders, opened once (never through a symlink).
struct Dirs {
    root: Dir,
    needs: Dir,
    progress: Dir,
    pending: Dir,
    approved: Dir,
    done: Dir,
    rejected: Dir,
    failed: Dir,
}

impl Dirs {
    fn open(vault: &Vault) -> Result<Dirs, WatcherError> {
        let root = Dir::open(vault.root()).map_err(|e| {
            WatcherError::Setup(format!(
                "cannot open the vault {}: {e}",
                vault.root().display()
            ))
        })?;
        let open = |f: Folder| {
            root.make_folder(f.name(), false).map_err(|e| {
                WatcherError::Setup(format!("cannot open {}: {e}", vault.folder(f).display()))
            })
        };
        Ok(Dirs {
            needs: open(Folder::NeedsAction)?,
            progress: open(Folder::InProgress)?,
            pending: open(Folder::PendingApproval)?,
            approved: open(Folder::Approved)?,
            done: open(Folder::Done)?,
            rejected: open(Folder::Rejected)?,
            failed: open(Folder::Failed)?,
            root,
        })
    }

    fn of(&self, f: Folder) -> &Dir {
        match f {
            Folder::NeedsAction => &self.needs,
            Folder::InProgress => &self.progress,
            Folder::PendingApproval => &self.pending,
            Folder::Approved => &self.approved,
            Folder::Done => &self.done,
            Folder::Rejected => &self.rejected,
            _ => &self.failed,
        }
    }
}

/// Run the loop until SIGTERM / SIGINT (or, with `--once`, until nothing is runnable).
pub fn run(mut ctx: WatcherCtx, s: AgentSettings, opts: Options) -> Result<(), WatcherError> {
    // A loop killed while it spawned an agent may leave the lock with that child until it
    // execs (a moment): wait that long before calling the lock held.
    let deadline = Instant::now() + Duration::from_secs(2);
    let _lock = loop {
        match ctx.single_instance("task loop") {
            Ok(lock) => break lock,
            Err(WatcherError::Start { code, .. })
                if code == ai_employee_vault::exit_codes::LOCKED && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    };
    let vault = ctx.vault().clone();
    let dirs = Dirs::open(&vault)?;
    let template = load_template(&dirs, &vault, &s);
    let rt = ctx.runtime()?;
    let mut engine = Engine::new(vault, s, opts, template, dirs)?;
    rt.block_on(engine.main(&mut ctx))
}

/// The value of the agents' run marker: the vault's real path, the same however the vault
/// was named on the command line.
fn run_marker(vault: &Vault) -> String {
    std::fs::canonicalize(vault.root())
        .unwrap_or_else(|_| vault.root().to_path_buf())
        .display()
        .to_string()
}

/// The prompt template: the vault's file (never through a symlink), else the built-in one.
fn load_template(dirs: &Dirs, vault: &Vault, s: &AgentSettings) -> String {
    let path = vault.root().join(&s.prompt);
    match dirs.root.read(&s.prompt, Some(256 * 1024)) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                warn!(
                    "the prompt template {} is not UTF-8 text; using the built-in one",
                    path.display()
                );
                prompt::DEFAULT_TEMPLATE.to_string()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => prompt::DEFAULT_TEMPLATE.to_string(),
        Err(e) => {
            warn!(
                "cannot read the prompt template {}: {e}; using the built-in one",
                path.display()
            );
            prompt::DEFAULT_TEMPLATE.to_string()
        }
    }
}

impl Engine {
    fn new(
        vault: Vault,
        s: AgentSettings,
        opts: Options,
        template: String,
        dirs: Dirs,
    ) -> Result<Engine, WatcherError> {
        let now = Utc::now();
        let tasks = Tasks::new(s.weights.age_per_hour, now);
        let mut run_env = s.env.clone();
        run_env.insert(
            crate::process::job::RUN_MARKER.to_string(),
            run_marker(&vault),
        );
        let (events, records) = if opts.dry_run {
            (None, None)
        } else {
            let logs = dirs
                .root
                .make_folder(Folder::Logs.name(), false)
                .map_err(|e| {
                    WatcherError::Setup(format!("cannot open {}: {e}", vault.logs_dir().display()))
                })?;
            logs.make_folder("agent", true).map_err(|e| {
                WatcherError::Setup(format!(
                    "cannot open {}/agent: {e}",
                    vault.logs_dir().display()
                ))
            })?;
            let (journal, _) = Journal::open(logs, events::FILE_NAME)
                .map_err(|e| WatcherError::failed_to("open Logs/tasks.jsonl", e))?;
            let groups = vault.state_file(GROUPS_FILE);
            for r in records::kill_leftovers(&groups) {
                warn!(
                    "killed process group {} of an agent run the last loop left behind ({})",
                    r.pgid, r.name
                );
            }
            for pgid in records::kill_marked(crate::process::job::RUN_MARKER, &run_marker(&vault)) {
                warn!(
                    "killed process group {pgid} of an agent run the last loop left behind (found by its {} marker)",
                    crate::process::job::RUN_MARKER
                );
            }
            let log = RecordLog::create(&groups)
                .map_err(|e| WatcherError::failed_to("create the record of agent groups", e))?;
            (Some(journal), Some(log))
        };
        let remote = match &s.queue.url {
            Some(_) if !opts.dry_run => {
                let credentials = crate::queue::credentials::load_vault(vault.root())
                    .map_err(|e| WatcherError::Setup(e.to_string()))?;
                remote::Remote::new(&s.queue, credentials)
            }
            _ => None,
        };
        let (totals, today) = if events.is_some() {
            match super::metrics::read_totals(vault.root(), super::metrics::start_of_local_day(now))
            {
                Ok((all, today, skipped)) => {
                    if skipped > 0 {
                        warn!(
                            "Logs/tasks.jsonl: {skipped} unreadable lines left out of the counters"
                        );
                    }
                    (all, today)
                }
                Err(e) => {
                    warn!("cannot read Logs/tasks.jsonl for the counters: {e}");
                    (Totals::default(), Totals::default())
                }
            }
        } else {
            (Totals::default(), Totals::default())
        };
        Ok(Engine {
            vault,
            s,
            opts,
            template,
            dirs,
            tasks,
            run_env,
            running: HashMap::new(),
            paused: false,
            pause_now: false,
            events,
            totals,
            today,
            today_date: chrono::Local::now().date_naive(),
            records,
            groups: HashMap::new(),
            recent_runs: VecDeque::new(),
            last_completion: None,
            needs_setup: None,
            started_at: now,
            snapshot_dirty: true,
            // The first snapshot is written at once.
            last_snapshot: Instant::now()
                .checked_sub(SNAPSHOT_EVERY)
                .unwrap_or_else(Instant::now),
            snapshot_gap: SNAPSHOT_EVERY,
            rows: Vec::new(),
            dashboard: None,
            last_summary: String::new(),
            last_dashboard: None,
            approvals_dirty: true,
            health: super::health::State::Healthy,
            unsynced: Vec::new(),
            durable: None,
            runs: std::cell::OnceCell::new(),
            stamp: None,
            sync_asked: 0,
            synced: durable::Synced::default(),
            remote,
        })
    }

    async fn main(&mut self, ctx: &mut WatcherCtx) -> Result<(), WatcherError> {
        let mut stop = ctx.stop_signals();
        let (in_tx, mut in_rx) = mpsc::unbounded_channel();
        let _watcher = self.watch_folders(in_tx);
        let (prog_tx, mut prog_rx) = mpsc::unbounded_channel::<Progress>();
        let (end_tx, mut end_rx) = mpsc::unbounded_channel::<(String, AttemptEnd)>();
        // Without a queue, a channel that never yields (its sender kept here).
        let (_no_queue, mut remote_rx) = match &mut self.remote {
            Some(r) => (None, r.start()),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), rx)
            }
        };
        if !self.opts.dry_run {
            self.dashboard = Some(start_dashboard_writer(self.vault.dashboard()));
            self.durable = match durable::Durable::start(&self.dirs, self.synced.clone()) {
                Ok(d) => Some(d),
                Err(e) => {
                    warn!(
                        "cannot start the sync thread ({e}); finished tasks are synced on the loop's thread"
                    );
                    None
                }
            };
        }
        self.check_stop_file();
        self.sweep(Folder::InProgress);
        self.sweep(Folder::NeedsAction);
        info!(
            "task loop started: {} tasks known, {} at most at once{}{}",
            self.tasks.len(),
            self.s.max_concurrent,
            if self.paused {
                ", paused (stop file present)"
            } else {
                ""
            },
            if self.opts.dry_run { ", dry run" } else { "" }
        );
        let mut last_sweep = Instant::now();
        let mut last_approvals = Instant::now();
        let mut stopping = false;
        let mut alarm = Alarm::new();
        let synced = self.synced.clone();
        let mut ended: Vec<(String, AttemptEnd)> = Vec::new();
        loop {
            self.check_approvals_if_due(&mut last_approvals);
            if !stopping && self.needs_setup.is_none() {
                self.schedule(&prog_tx, &end_tx);
            }
            self.flush(false);
            self.ack_applied();
            if stopping && self.running.is_empty() {
                break;
            }
            if self.needs_setup.is_some() && self.running.is_empty() {
                break;
            }
            if self.opts.once
                && self.running.is_empty()
                && self.queue_idle()
                && !self.runnable_now()
            {
                break;
            }
            ctx.beat();
            let wake = self.next_wake(last_sweep, ctx.next_beat_in());
            let acks_waiting = self.acks_waiting();
            tokio::select! {
                // A sync completed that acknowledgements of the queue's results wait for.
                _ = synced.notified(), if acks_waiting => {}
                Some(input) = in_rx.recv() => {
                    let mut batch = vec![input];
                    while let Ok(more) = in_rx.try_recv() {
                        batch.push(more);
                    }
                    self.inputs(batch);
                }
                Some(p) = prog_rx.recv() => self.progress(p),
                Some(first) = end_rx.recv() => ended.push(first),
                Some(ev) = remote_rx.recv() => {
                    self.remote_event(ev);
                    while let Ok(more) = remote_rx.try_recv() {
                        self.remote_event(more);
                    }
                }
                _ = alarm.sleep(wake) => {}
                _ = stop.recv(), if !stopping => {
                    info!("stopping: {} agent runs to stop", self.running.len());
                    stopping = true;
                    for tx in self.running.values() {
                        let _ = tx.send(true); // a run that already ended needs no abort
                    }
                }
            }
            // A run's progress was sent before its end (on its own thread): taken first,
            // so that its run events name the attempt that made them.
            while let Ok(p) = prog_rx.try_recv() {
                self.progress(p);
            }
            // Every run that ended meanwhile, so that one sync makes the batch durable.
            while let Ok(more) = end_rx.try_recv() {
                ended.push(more);
            }
            if !ended.is_empty() {
                self.runs_ended(std::mem::take(&mut ended), !stopping, &prog_tx, &end_tx);
            }
            // A sweep due within the slack goes with this wake-up (a heartbeat's, normally)
            // instead of waking the loop again a moment later.
            if last_sweep.elapsed() + ai_employee_vault::watcher::BEAT_SLACK >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep(Folder::NeedsAction);
                self.timers();
                // Rewritten at least every SNAPSHOT_FRESH (tasks health calls an older one
                // stale), otherwise only on a change.
                if self.last_snapshot.elapsed() >= SNAPSHOT_FRESH {
                    self.snapshot_dirty = true;
                }
                self.judge_health();
            }
        }
        self.flush(true);
        // The last finished tasks are durable before the loop says it stopped.
        if let Some(d) = &mut self.durable {
            d.finish();
        }
        self.ack_applied();
        if let Some((tx, thread)) = self.dashboard.take() {
            drop(tx);
            // Its rows are written before the loop exits; a panic there was already logged.
            let _ = thread.join();
        }
        if let Some(reason) = &self.needs_setup {
            return Err(WatcherError::Setup(format!(
                "the agent cannot run: {reason} (see docs/agent.md, \"Setting up the agent\")"
            )));
        }
        if let Some(r) = self.records.take() {
            r.discard();
        }
        info!("task loop stopped");
        Ok(())
    }

    // ---- discovery ------------------------------------------------------------------

    /// Watch the task folders and the vault root (for the stop file). The events arrive
    /// on the loop's own runtime; only those that can mean a task appeared, changed or
    /// left are asked for: no opens, reads or attribute changes, and in the root only the
    /// stop file's.
    #[cfg(target_os = "linux")]
    fn watch_folders(&self, tx: mpsc::UnboundedSender<Input>) -> Option<FolderWatch> {
        use futures_util::StreamExt;
        use inotify::{EventMask, Inotify, WatchMask};
        let fail = |what: &str, e: std::io::Error| {
            warn!(
                "no file events ({what}: {e}); the folders are listed every {}s",
                SWEEP_EVERY.as_secs()
            );
        };
        let ino = match Inotify::init() {
            Ok(i) => i,
            Err(e) => {
                fail("inotify", e);
                return None;
            }
        };
        // No CREATE: a file written in place is read once its writer closes it, never as
        // the empty or half-written file its creation shows (the sweep finds what
        // appears another way, by `link` say).
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR
            | WatchMask::DONT_FOLLOW;
        let root = self.vault.root();
        let mut map = Vec::new();
        for folder in std::iter::once(None).chain(WATCHED.iter().copied().map(Some)) {
            let dir = folder.map_or_else(|| root.to_path_buf(), |f| root.join(f.name()));
            match ino.watches().add(&dir, mask) {
                Ok(wd) => map.push((wd, folder)),
                Err(e) => warn!("cannot watch {}: {e}", dir.display()),
            }
        }
        let mut events = match ino.into_event_stream(vec![0u8; 64 * 1024]) {
            Ok(s) => s,
            Err(e) => {
                fail("inotify", e);
                return None;
            }
        };
        let task = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let input = match ev {
                    Ok(ev) if ev.mask.contains(EventMask::Q_OVERFLOW) => {
                        Input::FsError("too many file events at once (queue overflow)".into())
                    }
                    Ok(ev)
                        if ev
                            .mask
                            .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) =>
                    {
                        Input::FsError("a watched folder was moved or removed".into())
                    }
                    Ok(ev) => {
                        let Some(&(_, folder)) = map.iter().find(|(wd, _)| *wd == ev.wd) else {
                            continue;
                        };
                        let Some(name) = ev.name.and_then(|n| n.into_string().ok()) else {
                            continue;
                        };
                        if folder.is_none() && name != STOP_FILE {
                            continue;
                        }
                        // Hidden names in the folders are temporary files (the loop's own
                        // edits among them): never a task or an approval request.
                        if folder.is_some() && name.starts_with('.') {
                            continue;
                        }
                        Input::Fs(folder, vec![name])
                    }
                    Err(e) => {
                        let _ = tx.send(Input::FsError(format!("inotify: {e}")));
                        return;
                    }
                };
                if tx.send(input).is_err() {
                    return; // the loop has stopped
                }
            }
        });
        Some(FolderWatch(task))
    }

    #[cfg(not(target_os = "linux"))]
    fn watch_folders(&self, tx: mpsc::UnboundedSender<Input>) -> Option<FolderWatch> {
        use notify::{RecursiveMode, Watcher};
        let root = self.vault.root().to_path_buf();
        let folders = WATCHED;
        let map: Vec<(PathBuf, Folder)> =
            folders.iter().map(|f| (root.join(f.name()), *f)).collect();
        let err_tx = tx.clone();
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                // Opens and reads (ours too) and attribute changes say nothing new.
                if matches!(
                    ev.kind,
                    notify::EventKind::Access(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) {
                    return;
                }
                let mut by: BTreeMap<Option<usize>, Vec<String>> = BTreeMap::new();
                for p in &ev.paths {
                    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let parent = p.parent();
                    let idx = map.iter().position(|(d, _)| Some(d.as_path()) == parent);
                    if idx.is_none() && parent != Some(root.as_path()) {
                        continue;
                    }
                    by.entry(idx).or_default().push(name.to_string());
                }
                for (idx, names) in by {
                    let _ = tx.send(Input::Fs(idx.map(|i| map[i].1), names)); // the loop has stopped
                }
            }
            Err(e) => {
                let _ = err_tx.send(Input::FsError(
                    ai_employee_vault::watcher::notify_error_text(&e),
                )); // as above
            }
        };
        let mut w = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                warn!(
                    "no file events ({}); the folders are listed every {}s",
                    ai_employee_vault::watcher::notify_error_text(&e),
                    SWEEP_EVERY.as_secs()
                );
                return None;
            }
        };
        let vault_root = self.vault.root().to_path_buf();
        for dir in std::iter::once(vault_root.clone())
            .chain(folders.iter().map(|f| vault_root.join(f.name())))
        {
            if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
                warn!(
                    "cannot watch {}: {}",
                    dir.display(),
                    ai_employee_vault::watcher::notify_error_text(&e)
                );
            }
        }
        Some(FolderWatch(w))
    }

    /// The inputs that arrived together. A name with several events in one batch (an
    /// edit swapped in, a move: two to four events each) is looked at once: [`Self::seen`]
    /// reads what is there now, which already reflects every event of the batch.
    fn inputs(&mut self, batch: Vec<Input>) {
        let mut looked: HashSet<(Option<Folder>, String)> = HashSet::new();
        for input in batch {
            match input {
                Input::Fs(folder, names) => {
                    let fresh: Vec<String> = names
                        .into_iter()
                        .filter(|n| looked.insert((folder, n.clone())))
                        .collect();
                    if !fresh.is_empty() {
                        self.input(Input::Fs(folder, fresh));
                    }
                }
                other => self.input(other),
            }
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::FsError(e) => {
                warn!("file events: {e}; listing the folders again");
                self.sweep(Folder::NeedsAction);
            }
            Input::Fs(None, names) => {
                if names.iter().any(|n| n == STOP_FILE) {
                    self.check_stop_file();
                }
            }
            Input::Fs(Some(Folder::NeedsAction), names) => {
                for name in names {
                    self.seen(Folder::NeedsAction, &name);
                }
            }
            Input::Fs(Some(Folder::InProgress), names) => {
                for name in names {
                    self.seen(Folder::InProgress, &name);
                }
            }
            // A request decided (moved by a person or the approval handler): checked when a
            // task waits for one. The loop's own moves of finished tasks into Done/ wake
            // nothing else.
            Input::Fs(Some(_), _) => self.approvals_dirty |= self.any_waiting(),
        }
    }

    /// Remove what edits of task files left behind in `folder` and no edit still uses: the
    /// replaced texts a killed loop had not removed yet ([`durable::stale_leftover`]).
    fn remove_stale_leftovers(&self, folder: Folder, list: &[ai_employee_vault::nofollow::Entry]) {
        if self.opts.dry_run {
            return; // a dry run changes nothing
        }
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let dir = self.dirs.of(folder);
        for e in list {
            let Some(name) = e.name.to_str() else {
                continue;
            };
            if !name.starts_with(task::TEMP_PREFIX) {
                continue;
            }
            if let Ok(st) = dir.stat(name)
                && durable::stale_leftover(name, &st, now_ns)
            {
                match dir.remove_file(name) {
                    Ok(()) => info!(
                        "removed {}, left by an edit that was interrupted",
                        folder.rel(name)
                    ),
                    Err(err) => warn!("cannot remove {}: {err}", folder.rel(name)),
                }
            }
        }
    }

    /// List `folder` and take in every task not known yet.
    fn sweep(&mut self, folder: Folder) {
        let list = match self.dirs.of(folder).list() {
            Ok(l) => l,
            Err(e) => {
                warn!("cannot list {}: {e}", folder.name());
                return;
            }
        };
        self.remove_stale_leftovers(folder, &list);
        let names: HashSet<String> = list
            .iter()
            .filter(|e| e.kind == Kind::File)
            .filter_map(|e| e.name.to_str().map(str::to_string))
            .collect();
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        for name in sorted {
            if !task::is_task_name(name)
                || (task::may_be_a_copy(name) && names.contains(&format!("{name}.md")))
            {
                continue; // the copy a filesystem task describes
            }
            let id = task::id_of(name);
            if self
                .tasks
                .get(id)
                .is_some_and(|e| e.folder == folder && e.name == *name)
            {
                continue;
            }
            self.seen(folder, name);
        }
        // Forget pending tasks someone took away.
        let gone: Vec<String> = self
            .tasks
            .values()
            .filter(|e| {
                e.folder == folder
                    && !names.contains(&e.name)
                    && !self.running.contains_key(&e.id)
                    && !self.on_queue(&e.id)
            })
            .map(|e| e.id.clone())
            .collect();
        for id in gone {
            info!(
                "{id} left {} (moved or removed by someone else)",
                folder.name()
            );
            self.tasks.remove(&id);
            self.snapshot_dirty = true;
        }
    }

    /// A name appeared or changed in a task folder.
    fn seen(&mut self, folder: Folder, name: &str) {
        if !task::is_task_name(name) {
            return;
        }
        let id = task::id_of(name).to_string();
        if self.running.contains_key(&id) || self.on_queue(&id) {
            return; // our own writes while it runs
        }
        let dir = self.dirs.of(folder);
        match dir.stat(name) {
            Ok(s) if s.kind == Kind::File => {}
            Ok(_) => return,
            Err(_) => {
                if self
                    .tasks
                    .get(&id)
                    .is_some_and(|e| e.folder == folder && e.name == name)
                {
                    self.tasks.remove(&id);
                    self.snapshot_dirty = true;
                }
                return;
            }
        }
        if task::may_be_a_copy(name) && dir.stat(format!("{name}.md")).is_ok() {
            return; // a copy described by `name.md`
        }
        let (doc, _) = match TaskDoc::read(dir, name) {
            Ok(d) => d,
            Err(e) if e.is_invalid() => {
                self.invalid(folder, name, &e.to_string());
                return;
            }
            Err(e) => {
                warn!("cannot read {}: {e}", folder.rel(name));
                return;
            }
        };
        let now = Utc::now();
        let known = self.tasks.get(&id).cloned();
        let state = doc.state().unwrap_or(LoopState::Pending);
        let queued_at = doc
            .time(keys::QUEUED_AT)
            .or(known.as_ref().map(|k| k.queued_at))
            .or_else(|| doc.time("received"))
            .unwrap_or(now)
            .min(now);
        let text = doc.keyword_text();
        let facts = Facts {
            priority: doc.str("priority"),
            deadline: doc.time("deadline"),
            sender: doc.str("from"),
            text: &text,
            kind: doc.str("type"),
            queued_at,
        };
        let sc = score::score(&facts, &self.s, queued_at);
        let gate_reason = score::needs_run_approval(&facts, &self.s);
        let mut e = Entry {
            id: id.clone(),
            name: name.to_string(),
            folder,
            state,
            attempt: doc.u32(keys::ATTEMPT).unwrap_or(0),
            queued_at,
            started_at: doc.time(keys::STARTED_AT),
            retry_at: doc.time(keys::RETRY_AT),
            waiting_since: doc.time(keys::WAITING_SINCE),
            last_error: doc.str(keys::LAST_ERROR).map(str::to_string),
            session_id: doc.str(keys::SESSION_ID).map(str::to_string),
            title: doc.title(&id),
            priority: doc.str("priority").map(str::to_string),
            deadline: facts.deadline,
            base: sc.total - sc.deadline - sc.age,
            run_approval: doc.str(keys::RUN_APPROVAL).map(str::to_string),
            approvals: doc.list(keys::APPROVALS),
            resume_after_approval: known.as_ref().is_some_and(|k| k.resume_after_approval),
            cost_usd: doc.f64(keys::COST_USD).unwrap_or(0.0),
            turns: doc.u32(keys::TURNS).map_or(0, u64::from),
            pid: None,
            seen_dry: known.as_ref().is_some_and(|k| k.seen_dry),
        };
        if known.is_none() {
            self.event(TaskEvent::new(now, EventKind::Queued, &id));
        }
        match state {
            LoopState::Running
                if folder == Folder::InProgress
                    && doc.str(remote::RUN_ON) == Some(remote::ON_QUEUE)
                    && self.remote.is_some() =>
            {
                // Published by a loop that is gone: its run is still on the queue.
                self.adopt_remote(e);
                return;
            }
            LoopState::Running => {
                // Claimed by a loop that is gone: that run was interrupted.
                e.state = LoopState::Retry;
                self.tasks.insert(id.clone(), e);
                let mut ev = TaskEvent::new(now, EventKind::Run, &id);
                ev.result = Some(RunResult::Interrupted);
                ev.error = Some("interrupted: the task loop stopped while the agent ran".into());
                self.event(ev);
                self.attempt_failed(
                    &id,
                    "interrupted: the task loop stopped while the agent ran".into(),
                    Some(now),
                );
                return;
            }
            LoopState::Done | LoopState::Failed | LoopState::Rejected => {
                // A loop stopped after writing the final state: its event may not have
                // been written yet (`finish` writes the state, then the event, then moves).
                if folder == Folder::InProgress && !self.final_event_logged(&id, e.attempt) {
                    let at = doc.time(keys::FINISHED_AT).unwrap_or(now);
                    let why = e.last_error.clone().filter(|_| state != LoopState::Done);
                    self.event(final_event(&e, state, at, why));
                }
                self.tasks.insert(id.clone(), e);
                self.finish_move(&id, state);
                return;
            }
            LoopState::Pending
                if e.run_approval.is_none() && gate_reason.is_some() && !doc_approved(&doc) =>
            {
                self.tasks.insert(id.clone(), e);
                if let Some(reason) = gate_reason {
                    self.request_run_approval(&id, &reason);
                }
                return;
            }
            _ => {}
        }
        if known.is_none() {
            info!(
                "queued {} ({}, score {:.2})",
                folder.rel(name),
                e.title,
                self.score_of(&e, now)
            );
        }
        // One that waits for approvals: they may be decided already.
        self.approvals_dirty |= e.state.waits_for_approval();
        self.tasks.insert(id, e);
        self.snapshot_dirty = true;
    }

    fn invalid(&mut self, folder: Folder, name: &str, why: &str) {
        let id = task::id_of(name).to_string();
        warn!(
            "{} is not a valid task: {why}; moving it to Failed/",
            folder.rel(name)
        );
        if self.opts.dry_run {
            return;
        }
        match task::move_task(self.dirs.of(folder), &self.dirs.failed, name) {
            Ok(to) => {
                // The reason beside it: the file itself may not be editable as a task.
                let note = format!("{} could not be read as a task: {why}\n", folder.rel(name));
                if let Err(e) =
                    self.dirs
                        .failed
                        .write_atomic(format!("{to}.error.txt"), note.as_bytes(), 0o644)
                {
                    warn!("cannot write the reason next to Failed/{to}: {e}");
                }
            }
            Err(e) => warn!("cannot move {} to Failed/: {e}", folder.rel(name)),
        }
        self.tasks.remove(&id);
        let mut ev = TaskEvent::new(Utc::now(), EventKind::Invalid, &id);
        ev.error = Some(task::one_line(why, 300));
        self.event(ev);
        self.row(
            "Task_Failed",
            "✗ Invalid",
            &format!("{id}: {}", task::one_line(why, 200)),
        );
    }

    // ---- the stop file ------------------------------------------------------------------

    fn check_stop_file(&mut self) {
        let (paused, now_too) = match self.dirs.root.read(STOP_FILE, Some(64)) {
            Ok(b) => (
                true,
                String::from_utf8_lossy(&b)
                    .trim()
                    .eq_ignore_ascii_case("now"),
            ),
            Err(_) => (self.dirs.root.stat(STOP_FILE).is_ok(), false),
        };
        if paused != self.paused {
            let now = Utc::now();
            self.paused = paused;
            if paused {
                info!(
                    "paused: {STOP_FILE} exists; no new task starts{}",
                    if now_too {
                        ", running ones are stopped"
                    } else {
                        ", running ones finish"
                    }
                );
                self.event(TaskEvent::new(now, EventKind::Paused, ""));
            } else {
                info!("resumed: {STOP_FILE} is gone");
                self.event(TaskEvent::new(now, EventKind::Resumed, ""));
            }
            self.snapshot_dirty = true;
        }
        if paused && now_too && !self.pause_now {
            for tx in self.running.values() {
                let _ = tx.send(true); // a run that already ended needs no abort
            }
        }
        self.pause_now = paused && now_too;
    }

    // ---- scheduling -------------------------------------------------------------------

    fn score_of(&self, e: &Entry, now: DateTime<Utc>) -> f64 {
        let (deadline, age) = score::time_parts(e.deadline, e.queued_at, &self.s, now);
        e.base + deadline + age
    }

    fn is_runnable(&self, e: &Entry, now: DateTime<Utc>) -> bool {
        // A running task's state is `Running`.
        if self.opts.dry_run && e.seen_dry {
            return false;
        }
        match e.state {
            LoopState::Pending => true,
            LoopState::Retry => e.retry_at.is_none_or(|t| t <= now),
            LoopState::WaitingApproval => e.resume_after_approval,
            _ => false,
        }
    }

    fn runnable_now(&self) -> bool {
        let now = Utc::now();
        !self.paused
            && (self.tasks.any_queued() || self.tasks.others().any(|e| self.is_runnable(e, now)))
    }

    /// The runnable task with the highest score (then the oldest, then by id): the best of
    /// the ordered queue against every other runnable task.
    fn pick(&self, now: DateTime<Utc>) -> Option<String> {
        let better = |(a, x): &(f64, &Entry), (b, y): &(f64, &Entry)| {
            a.total_cmp(b)
                .then_with(|| y.queued_at.cmp(&x.queued_at))
                .then_with(|| y.id.cmp(&x.id))
        };
        let best = self
            .tasks
            .others()
            .chain(self.tasks.first_queued())
            .filter(|e| self.is_runnable(e, now))
            .map(|e| (self.score_of(e, now), e))
            .max_by(better);
        #[cfg(debug_assertions)]
        if let Some((score, _)) = best {
            // The ordered queue must agree with scoring every task.
            let all = self
                .tasks
                .values()
                .filter(|e| self.is_runnable(e, now))
                .map(|e| self.score_of(e, now))
                .fold(f64::MIN, f64::max);
            debug_assert!(all - score < 1e-9, "picked {score}, the best scores {all}");
        }
        best.map(|(_, e)| e.id.clone())
    }

    fn schedule(
        &mut self,
        prog: &mpsc::UnboundedSender<Progress>,
        end: &mpsc::UnboundedSender<(String, AttemptEnd)>,
    ) {
        if self.paused {
            return;
        }
        match self.queue_mode() {
            remote::Mode::Queue => return self.schedule_remote(),
            remote::Mode::Hold => return,
            remote::Mode::Local | remote::Mode::Fallback => {}
        }
        while self.running.len() < self.s.max_concurrent as usize {
            let Some(id) = self.pick(Utc::now()) else {
                return;
            };
            self.start(&id, prog, end);
        }
    }

    /// Claim task `id` and start an attempt.
    fn start(
        &mut self,
        id: &str,
        prog: &mpsc::UnboundedSender<Progress>,
        end: &mpsc::UnboundedSender<(String, AttemptEnd)>,
    ) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        let now = Utc::now();
        if self.opts.dry_run {
            let argv = self.argv(&e, &e.name, Folder::InProgress);
            let shown: Vec<&str> = argv
                .iter()
                .map(|a| if a.len() > 80 { "<prompt>" } else { a.as_str() })
                .collect();
            println!(
                "would run {} (score {:.2}): {}",
                e.id,
                self.score_of(&e, now),
                shown.join(" ")
            );
            if let Some(mut x) = self.tasks.get_mut(id) {
                x.seen_dry = true;
            }
            return;
        }
        let Some(Claimed {
            name,
            attempt,
            resumed,
            title,
        }) = self.claim(&e, now, |d| d.remove(remote::RUN_ON))
        else {
            return;
        };
        let values = self.arg_values(&e.id, &name);
        let mut spec = AttemptSpec {
            task: id.to_string(),
            argv: Vec::new(),
            command: self.s.command.clone(),
            resume: self.s.resume.clone(),
            values,
            continue_prompt: prompt::CONTINUE
                .replace("{task_file}", &Folder::InProgress.rel(&name)),
            verify: self.s.verify.clone(),
            max_iterations: self.s.max_iterations,
            cwd: self.vault.root().to_path_buf(),
            env: self.run_env.clone(),
            log: self
                .vault
                .logs_dir()
                .join("agent")
                .join(format!("{id}.log")),
            timeout: self.s.timeout,
            kill_after: self.s.kill_after,
            dry_run: false,
            container: None,
        };
        spec.argv = if resumed {
            let outcome = self.approval_outcome_text(&e);
            let prompt = format!(
                "Task file: {}\n\nThe approval requests you drafted for this task were \
                 decided:\n{outcome}\nFinish the task and end with the status line.",
                Folder::InProgress.rel(&name)
            );
            match &e.session_id {
                Some(sid) => runner::resume_argv(&spec, &prompt, sid),
                None => runner::fill(&spec.command, &spec.values, &prompt, ""),
            }
        } else {
            let mut e2 = e.clone();
            e2.attempt = attempt;
            self.argv(&e2, &name, Folder::InProgress)
        };
        let (abort_tx, abort_rx) = watch::channel(self.pause_now);
        self.running.insert(id.to_string(), abort_tx);
        self.mark_running(id, &name, attempt, title, now);
        info!(
            "started {} (attempt {attempt}{})",
            Folder::InProgress.rel(&name),
            if resumed {
                ", resuming after its approvals"
            } else {
                ""
            }
        );
        let (prog, end) = (prog.clone(), end.clone());
        let task_id = id.to_string();
        let run = async move {
            let result = runner::attempt(spec, prog, abort_rx).await;
            let _ = end.send((task_id, result)); // the loop is gone only after every run ended
        };
        let runs = self.runs.get_or_init(|| match runs::Runs::start() {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(
                    "cannot start the agents' threads ({e}); runs are driven on the loop's thread"
                );
                None
            }
        });
        match runs {
            Some(r) => r.spawn(run),
            None => {
                tokio::spawn(run);
            }
        }
    }

    /// Claim `e` for a run, here or on the queue: the rename into `In_Progress/` is the
    /// commitment (a task already gone is forgotten), then the attempt is counted and the
    /// running state written into its file, with `extra` edits, without an fsync (the
    /// caller makes it durable when it must). `None` when the run cannot start: the task
    /// was forgotten, or it retries in a minute when its file could not be written.
    fn claim(
        &mut self,
        e: &Entry,
        now: DateTime<Utc>,
        mut extra: impl FnMut(&mut TaskDoc),
    ) -> Option<Claimed> {
        let id = e.id.as_str();
        let name = if e.folder == Folder::InProgress {
            e.name.clone()
        } else {
            match task::move_task(&self.dirs.needs, &self.dirs.progress, &e.name) {
                Ok(n) => n,
                Err(err) => {
                    if err.kind() != std::io::ErrorKind::NotFound {
                        warn!("cannot claim {}: {err}", Folder::NeedsAction.rel(&e.name));
                    }
                    self.tasks.remove(id);
                    return None;
                }
            }
        };
        let resumed = e.resume_after_approval;
        let attempt = if resumed {
            e.attempt.max(1)
        } else {
            e.attempt + 1
        };
        let written = self.edit(Folder::InProgress, &name, false, |d| {
            d.set(keys::STATE, LoopState::Running.as_str());
            d.set(keys::ATTEMPT, attempt);
            d.set_time(keys::QUEUED_AT, e.queued_at);
            d.set_time(keys::STARTED_AT, now);
            d.remove(keys::RETRY_AT);
            extra(d);
        });
        match written {
            Ok(doc) => Some(Claimed {
                title: doc.title(id),
                name,
                attempt,
                resumed,
            }),
            Err(err) if err.is_gone() => {
                self.forget_removed(id, &Folder::InProgress.rel(&name));
                None
            }
            Err(err) => {
                warn!(
                    "cannot mark {} as running: {err}",
                    Folder::InProgress.rel(&name)
                );
                if let Some(mut x) = self.tasks.get_mut(id) {
                    x.folder = Folder::InProgress;
                    x.name = name;
                    x.state = LoopState::Retry;
                    x.retry_at = Some(now + chrono::Duration::seconds(60));
                }
                None
            }
        }
    }

    /// The loop's record of a claimed task that now runs (here or on the queue), and its
    /// `started` event.
    fn mark_running(
        &mut self,
        id: &str,
        name: &str,
        attempt: u32,
        title: String,
        now: DateTime<Utc>,
    ) {
        if let Some(mut x) = self.tasks.get_mut(id) {
            x.folder = Folder::InProgress;
            x.name = name.to_string();
            x.state = LoopState::Running;
            x.attempt = attempt;
            x.started_at = Some(now);
            x.retry_at = None;
            x.resume_after_approval = false;
            x.title = title;
        }
        let mut ev = TaskEvent::new(now, EventKind::Started, id);
        ev.attempt = Some(attempt);
        self.event(ev);
        self.snapshot_dirty = true;
    }

    fn arg_values(&self, id: &str, name: &str) -> runner::ArgValues {
        runner::ArgValues {
            task: id.to_string(),
            task_file: Folder::InProgress.rel(name),
            vault: self.vault.root().display().to_string(),
        }
    }

    fn argv(&self, e: &Entry, name: &str, folder: Folder) -> Vec<String> {
        let attachment = task::companion_of(name)
            .filter(|c| self.dirs.of(folder).stat(c).is_ok())
            .map(|c| folder.rel(c));
        let prompt = self.prompt_for(e, &folder.rel(name), attachment.as_deref());
        runner::fill(&self.s.command, &self.arg_values(&e.id, name), &prompt, "")
    }

    /// The prompt template filled for a run of `e` (`e.attempt` the run's attempt) on the
    /// task file `task_file`: here, or on a worker (`engine/remote.rs`).
    fn prompt_for(&self, e: &Entry, task_file: &str, attachment: Option<&str>) -> String {
        let existing = self.existing_approvals(&e.id, e.attempt);
        prompt::render(
            &self.template,
            &Fill {
                task_file,
                task: &e.id,
                title: &e.title,
                attempt: e.attempt,
                max_attempts: self.s.max_attempts,
                last_error: e.last_error.as_deref(),
                existing: &existing,
                attachment,
            },
        )
    }

    // ---- what runs report ---------------------------------------------------------------

    fn progress(&mut self, p: Progress) {
        match p {
            Progress::Started {
                task,
                pgid,
                start_time,
            } => {
                if let Some(mut e) = self.tasks.get_mut(&task) {
                    e.pid = Some(pgid as u32);
                }
                let r = Record {
                    pgid,
                    start_time,
                    name: task,
                };
                if let Some(log) = &mut self.records
                    && let Err(e) = log.add(&r)
                {
                    warn!("cannot record agent group {pgid}: {e}");
                }
                self.groups.insert(pgid, r);
                self.snapshot_dirty = true;
            }
            Progress::Ended { task, pgid } => {
                if let Some(mut e) = self.tasks.get_mut(&task) {
                    e.pid = None;
                }
                self.groups.remove(&pgid);
                if let Some(log) = &mut self.records {
                    if let Err(e) = log.remove(pgid) {
                        warn!("cannot record the end of agent group {pgid}: {e}");
                    }
                    if log.needs_compaction() {
                        let live: Vec<Record> = self.groups.values().cloned().collect();
                        if let Err(e) = log.maybe_compact(&live) {
                            warn!("cannot compact the record of agent groups: {e}");
                        }
                    }
                }
            }
            Progress::Run {
                task,
                iteration,
                result,
                duration,
                cost_usd,
                turns,
                error,
            } => {
                let now = Utc::now();
                let attempt = self.tasks.get(&task).map(|e| e.attempt);
                let mut ev = TaskEvent::new(now, EventKind::Run, &task);
                ev.attempt = attempt;
                ev.iteration = Some(iteration);
                ev.result = Some(result);
                ev.duration_ms = Some(duration.as_millis() as u64);
                ev.cost_usd = cost_usd;
                ev.turns = turns;
                ev.error = error;
                if result != RunResult::Interrupted && result != RunResult::NeedsSetup {
                    self.recent_runs.push_back(duration);
                    if self.recent_runs.len() > 20 {
                        self.recent_runs.pop_front();
                    }
                }
                self.event(ev);
            }
        }
    }

    /// Runs that ended: their slots are given to the next tasks first (when `start`), so
    /// that those agents start on the runs' threads while these tasks are finished here
    /// (their edits and moves are most of the loop's work per task; a slot waited for a
    /// whole batch of them). A run that found the agent unusable starts nothing.
    fn runs_ended(
        &mut self,
        batch: Vec<(String, AttemptEnd)>,
        start: bool,
        prog: &mpsc::UnboundedSender<Progress>,
        end: &mpsc::UnboundedSender<(String, AttemptEnd)>,
    ) {
        if start
            && self.needs_setup.is_none()
            && batch.iter().all(|(_, e)| e.result != RunResult::NeedsSetup)
        {
            for (id, _) in &batch {
                self.running.remove(id);
            }
            self.schedule(prog, end);
        }
        for (id, e) in batch {
            self.attempt_ended(&id, e);
        }
    }

    fn attempt_ended(&mut self, id: &str, end: AttemptEnd) {
        self.running.remove(id);
        self.snapshot_dirty = true;
        // Not the task's fault when the agent cannot run: the attempt is given back.
        let given_back = {
            let Some(mut e) = self.tasks.get_mut(id) else {
                return;
            };
            e.pid = None;
            e.cost_usd += end.cost_usd;
            e.turns += end.turns;
            if end.session_id.is_some() {
                e.session_id.clone_from(&end.session_id);
            }
            (end.result == RunResult::NeedsSetup).then(|| {
                e.attempt = e.attempt.saturating_sub(1);
                e.state = LoopState::Pending;
                (e.attempt, e.name.clone())
            })
        };
        let now = Utc::now();
        match end.result {
            RunResult::NeedsSetup => {
                let reason = end
                    .setup
                    .clone()
                    .unwrap_or_else(|| "the agent cannot run".into());
                warn!(
                    "the agent cannot run: {reason}; no task is started until it is set up (docs/agent.md)"
                );
                self.needs_setup = Some(task::one_line(&reason, 300));
                if let Some((attempt, name)) = given_back
                    && let Err(err) = self.edit(Folder::InProgress, &name, false, |d| {
                        d.set(keys::STATE, LoopState::Pending.as_str());
                        d.set(keys::ATTEMPT, attempt);
                    })
                {
                    warn!("cannot put {} back: {err}", Folder::InProgress.rel(&name));
                }
                for tx in self.running.values() {
                    let _ = tx.send(true); // a run that already ended needs no abort
                }
            }
            RunResult::Done => self.finish(id, LoopState::Done, None, end.session_id.as_deref()),
            RunResult::WaitingApproval => self.wait_for_approvals(id, end.session_id.as_deref()),
            RunResult::Interrupted => {
                // Stopped by the loop's stop or `tasks pause --now`: counted, and run
                // again at once (after the pause).
                self.attempt_failed(id, end.error.unwrap_or_default(), Some(now));
            }
            _ => {
                let why = end.error.unwrap_or_else(|| "the run failed".into());
                self.attempt_failed(id, why, None);
            }
        }
    }

    /// A failed attempt: retry later (at `at`, or after the backoff), or fail the task.
    fn attempt_failed(&mut self, id: &str, why: String, at: Option<DateTime<Utc>>) {
        let Some(e) = self.tasks.get(id) else { return };
        let now = Utc::now();
        let why = task::one_line(&why, 500);
        if e.attempt >= self.s.max_attempts {
            warn!("{id} failed after {} attempts: {why}", e.attempt);
            self.finish(id, LoopState::Failed, Some(why), None);
            return;
        }
        let n = (e.attempt.max(1) - 1) as usize;
        let delay = self
            .s
            .retry_delays
            .get(n)
            .or(self.s.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let retry_at = at.unwrap_or_else(|| {
            now + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(4))
        });
        let (name, folder, attempt) = (e.name.clone(), e.folder, e.attempt);
        info!(
            "{id}: attempt {attempt} failed ({why}); next attempt at {}",
            retry_at.with_timezone(&chrono::Local).format("%H:%M:%S")
        );
        match self.edit(folder, &name, false, |d| {
            d.set(keys::STATE, LoopState::Retry.as_str());
            d.set_time(keys::RETRY_AT, retry_at);
            d.set(keys::LAST_ERROR, why.clone());
            d.set(keys::ATTEMPT, attempt);
        }) {
            Ok(_) => {}
            Err(err) if err.is_gone() => {
                self.forget_removed(id, &folder.rel(&name));
                return;
            }
            Err(err) => warn!("cannot record the retry in {}: {err}", folder.rel(&name)),
        }
        if let Some(mut e) = self.tasks.get_mut(id) {
            e.state = LoopState::Retry;
            e.retry_at = Some(retry_at);
            e.last_error = Some(why.clone());
        }
        let mut ev = TaskEvent::new(now, EventKind::Retry, id);
        ev.attempt = Some(attempt);
        ev.retry_at = Some(retry_at);
        ev.error = Some(why);
        self.event(ev);
        self.snapshot_dirty = true;
    }

    /// Write the final state into the task, then move it to its folder.
    fn finish(&mut self, id: &str, state: LoopState, why: Option<String>, session: Option<&str>) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        let now = Utc::now();
        let status = state.as_str();
        // Not fsynced here: the final states of a batch are made durable together, by one
        // syncfs on the sync thread (`sync_finished`, [`durable`]).
        let res = self.edit(e.folder, &e.name, false, |d| {
            d.set(keys::STATE, status);
            d.set(keys::STATUS, status);
            d.set_time(keys::FINISHED_AT, now);
            d.set(keys::ATTEMPT, e.attempt);
            d.remove(keys::RETRY_AT);
            if e.cost_usd > 0.0 {
                d.set(keys::COST_USD, (e.cost_usd * 1e6).round() / 1e6);
            }
            if e.turns > 0 {
                d.set(keys::TURNS, e.turns);
            }
            if let Some(s) = session.or(e.session_id.as_deref()) {
                d.set(keys::SESSION_ID, s);
            }
            match &why {
                Some(w) => d.set(keys::LAST_ERROR, w.clone()),
                None if state == LoopState::Done => d.remove(keys::LAST_ERROR),
                None => {}
            }
        });
        if let Err(err) = res {
            if err.is_gone() {
                self.forget_removed(id, &e.folder.rel(&e.name));
                return;
            }
            warn!(
                "cannot record the end of {}: {err}; trying again later",
                e.folder.rel(&e.name)
            );
            if let Some(mut x) = self.tasks.get_mut(id) {
                x.state = LoopState::Retry;
                x.retry_at = Some(now + chrono::Duration::seconds(30));
            }
            return;
        }
        self.event(final_event(&e, state, now, why.clone()));
        if let Some(mut x) = self.tasks.get_mut(id) {
            x.state = state;
        }
        self.finish_move(id, state);
        match state {
            LoopState::Failed => {
                let why = why.unwrap_or_default();
                self.row("Task_Failed", "✗ Failed", &format!("{id}: {why}"));
                tell_supervisor(
                    &self.vault,
                    "task_failed",
                    format!("task {id} failed after {} attempts: {why}", e.attempt),
                );
            }
            LoopState::Rejected => {
                self.row(
                    "Task_Rejected",
                    "✗ Rejected",
                    &format!("{id}: {}", why.unwrap_or_default()),
                );
            }
            _ => {
                self.last_completion = Some(now);
                info!(
                    "done: {id} (attempt {}{})",
                    e.attempt,
                    if e.cost_usd > 0.0 {
                        format!(", ${:.4}", e.cost_usd)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }

    /// Whether `Logs/tasks.jsonl` holds the final event of attempt `attempt` of `id`. Looked
    /// for in its last MiB: this runs when a start finds a final state not yet moved,
    /// before that start has written much. A journal that cannot be read counts as
    /// holding it (a missing event is better than one counted twice).
    fn final_event_logged(&self, id: &str, attempt: u32) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        const TAIL: u64 = 1 << 20;
        let path = self.vault.logs_dir().join(events::FILE_NAME);
        let read = ai_employee_vault::nofollow::open_in_folder(
            &path,
            ai_employee_vault::nofollow::How::READ,
        )
        .and_then(|mut f| {
            let len = f.seek(SeekFrom::End(0))?;
            f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
            let mut text = Vec::new();
            f.read_to_end(&mut text)?;
            Ok(text)
        });
        let text = match read {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                warn!("cannot read Logs/{}: {e}", events::FILE_NAME);
                return true;
            }
        };
        // A line cut by the window or torn does not parse and is passed over.
        text.split(|&b| b == b'\n').any(|line| {
            serde_json::from_slice::<TaskEvent>(line).is_ok_and(|ev| {
                ev.task == id
                    && ev.attempt == Some(attempt)
                    && matches!(
                        ev.event,
                        EventKind::Done | EventKind::Failed | EventKind::Rejected
                    )
            })
        })
    }

    /// Move a task whose final state is written to its folder (again after a crash).
    fn finish_move(&mut self, id: &str, state: LoopState) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        let to = match state {
            LoopState::Done => Folder::Done,
            LoopState::Rejected => Folder::Rejected,
            _ => Folder::Failed,
        };
        match task::move_task(self.dirs.of(e.folder), self.dirs.of(to), &e.name) {
            Ok(_) => {
                self.unsynced.push(to);
                self.tasks.remove(id);
            }
            Err(err) => warn!(
                "cannot move {} to {}: {err}",
                e.folder.rel(&e.name),
                to.name()
            ),
        }
        self.snapshot_dirty = true;
    }

    /// Whether `e`'s task file is no longer where the loop left it.
    fn file_gone(&self, e: &Entry) -> bool {
        self.dirs
            .of(e.folder)
            .stat(&e.name)
            .is_err_and(|x| x.kind() == std::io::ErrorKind::NotFound)
    }

    /// A task whose file someone removed or moved away while the loop held it (its run
    /// ended, or it was being claimed): nothing is left to write its state into, so it is
    /// forgotten rather than retried. Its events so far stay in the journal; a file moved
    /// back into `Needs_Action/` is a new task.
    fn forget_removed(&mut self, id: &str, rel: &str) {
        info!("{rel} is gone (removed or moved away while the loop held it): {id} is forgotten");
        self.tasks.remove(id);
        if let Some(r) = &mut self.remote {
            r.forget(id);
        }
        self.snapshot_dirty = true;
    }

    // ---- approvals ----------------------------------------------------------------------

    /// The approval requests a run of attempt `attempt` is told of: those an earlier run
    /// of the task drafted (found by reading `Pending_Approval/`, so only looked for when
    /// there was an earlier run) and those it waits for.
    fn existing_approvals(&self, id: &str, attempt: u32) -> Vec<String> {
        let drafted = if attempt > 1 {
            gate::drafts_of(&self.dirs.pending, id)
        } else {
            Vec::new()
        };
        drafted
            .into_iter()
            .map(|n| Folder::PendingApproval.rel(&n))
            .chain(
                self.tasks
                    .get(id)
                    .map(|e| e.approvals.clone())
                    .unwrap_or_default(),
            )
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn request_run_approval(&mut self, id: &str, reason: &str) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        if self.opts.dry_run {
            println!("{id} needs a person's approval before it runs ({reason})");
            return;
        }
        let now = Utc::now();
        let expires = now
            + chrono::Duration::from_std(self.s.approval_timeout)
                .unwrap_or_else(|_| chrono::Duration::days(1));
        let request = match gate::request_run(
            &self.dirs.pending,
            &e.id,
            &e.title,
            reason,
            &e.folder.rel(&e.name),
            now,
            expires,
        ) {
            Ok(r) => r,
            Err(err) => {
                warn!("cannot write the run approval request for {id}: {err}");
                return;
            }
        };
        let rel = Folder::PendingApproval.rel(&request);
        if let Err(err) = self.edit(e.folder, &e.name, false, |d| {
            d.set(keys::STATE, LoopState::AwaitingRunApproval.as_str());
            d.set(keys::RUN_APPROVAL, rel.clone());
            d.set_time(keys::WAITING_SINCE, now);
            d.set_time(keys::QUEUED_AT, e.queued_at);
        }) {
            warn!(
                "cannot record the approval request in {}: {err}",
                e.folder.rel(&e.name)
            );
        }
        if let Some(mut x) = self.tasks.get_mut(id) {
            x.state = LoopState::AwaitingRunApproval;
            x.run_approval = Some(rel.clone());
            x.waiting_since = Some(now);
        }
        self.approvals_dirty = true;
        info!("{id} waits for a person to approve running it ({reason}): move {rel} to Approved/");
        let mut ev = TaskEvent::new(now, EventKind::ApprovalRequested, id);
        ev.error = Some(reason.to_string());
        self.event(ev);
        self.snapshot_dirty = true;
    }

    fn wait_for_approvals(&mut self, id: &str, session: Option<&str>) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        let drafts: Vec<String> = gate::drafts_of(&self.dirs.pending, id)
            .into_iter()
            .map(|n| Folder::PendingApproval.rel(&n))
            .collect();
        let mut all = e.approvals.clone();
        for d in drafts {
            if !all.contains(&d) {
                all.push(d);
            }
        }
        let open: Vec<&String> = all
            .iter()
            .filter(|a| gate::locate(|f| self.dirs.of(f), a).is_none_or(|s| !s.decided()))
            .collect();
        if open.is_empty() {
            self.attempt_failed(
                id,
                "the agent said it waits for approval but no request of this task is in Pending_Approval/ (a request needs `task: <id>` in its frontmatter)".into(),
                None,
            );
            return;
        }
        let now = Utc::now();
        let list = all.clone();
        if let Err(err) = self.edit(Folder::InProgress, &e.name, false, |d| {
            d.set(keys::STATE, LoopState::WaitingApproval.as_str());
            d.set(
                keys::APPROVALS,
                serde_norway::Value::Sequence(
                    list.iter()
                        .cloned()
                        .map(serde_norway::Value::String)
                        .collect(),
                ),
            );
            d.set_time(keys::WAITING_SINCE, now);
            if let Some(s) = session {
                d.set(keys::SESSION_ID, s);
            }
        }) {
            if err.is_gone() {
                self.forget_removed(id, &Folder::InProgress.rel(&e.name));
                return;
            }
            warn!(
                "cannot record the waiting approvals in {}: {err}",
                Folder::InProgress.rel(&e.name)
            );
        }
        if let Some(mut x) = self.tasks.get_mut(id) {
            x.state = LoopState::WaitingApproval;
            x.approvals = all.clone();
            x.waiting_since = Some(now);
        }
        // A person may have decided some already.
        self.approvals_dirty = true;
        info!(
            "{id} waits for {} approval request(s): {}",
            all.len(),
            all.join(", ")
        );
        let mut ev = TaskEvent::new(now, EventKind::WaitingApproval, id);
        ev.attempt = Some(e.attempt);
        self.event(ev);
        self.snapshot_dirty = true;
    }

    fn approval_outcome_text(&self, e: &Entry) -> String {
        e.approvals
            .iter()
            .map(|a| {
                let state = gate::locate(|f| self.dirs.of(f), a)
                    .map_or("not found".to_string(), |s| s.describe());
                format!("- {a}: {state}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether a task waits for approvals (never one in the ordered queue).
    fn any_waiting(&self) -> bool {
        self.tasks.others().any(|e| e.state.waits_for_approval())
    }

    fn check_approvals_if_due(&mut self, last: &mut Instant) {
        if !self.approvals_dirty && last.elapsed() < APPROVALS_EVERY {
            return;
        }
        self.approvals_dirty = false;
        *last = Instant::now();
        let now = Utc::now();
        let waiting: Vec<Entry> = self
            .tasks
            .others()
            .filter(|e| e.state.waits_for_approval() && !e.resume_after_approval)
            .cloned()
            .collect();
        for e in waiting {
            let requests: Vec<String> = match e.state {
                LoopState::AwaitingRunApproval => e.run_approval.iter().cloned().collect(),
                _ => e.approvals.clone(),
            };
            let found: Vec<Option<gate::Where>> = requests
                .iter()
                .map(|a| gate::locate(|f| self.dirs.of(f), a))
                .collect();
            if let Some(i) = found
                .iter()
                .position(|w| matches!(w, Some(gate::Where::Rejected(_))))
            {
                let why = format!("a person rejected {}", requests[i]);
                self.finish(&e.id, LoopState::Rejected, Some(why), None);
                continue;
            }
            let decided = found
                .iter()
                .all(|w| w.as_ref().is_some_and(gate::Where::decided));
            if decided {
                if e.state == LoopState::AwaitingRunApproval {
                    if found
                        .iter()
                        .any(|w| matches!(w, Some(gate::Where::Failed(_))))
                    {
                        self.needs_review(
                            &e.id,
                            "the approval handler refused the run approval (see Failed/)",
                        );
                        continue;
                    }
                    // Only an executed approval counts (a handler in dry-run mode
                    // moves it to Done/ with `result: dry_run`).
                    let executed = found.iter().all(|w| match w {
                        Some(gate::Where::Done(rel)) => {
                            gate::result_of(&self.dirs.done, rel).as_deref() == Some("approved")
                        }
                        _ => false,
                    });
                    if !executed {
                        self.needs_review(
                            &e.id,
                            "the run approval reached Done/ without `result: approved` (an approval handler in dry-run mode?)",
                        );
                        continue;
                    }
                    info!("{}: a person approved running it", e.id);
                    if let Err(err) = self.edit(e.folder, &e.name, false, |d| {
                        d.set(keys::STATE, LoopState::Pending.as_str());
                        d.set("run_approved", true);
                    }) {
                        warn!(
                            "cannot record the approval in {}: {err}",
                            e.folder.rel(&e.name)
                        );
                    }
                    if let Some(mut x) = self.tasks.get_mut(&e.id) {
                        x.state = LoopState::Pending;
                    }
                    self.event(TaskEvent::new(now, EventKind::RunApproved, &e.id));
                } else if let Some(mut x) = self.tasks.get_mut(&e.id) {
                    x.resume_after_approval = true;
                }
                self.snapshot_dirty = true;
                continue;
            }
            let since = e.waiting_since.unwrap_or(e.queued_at);
            let limit = chrono::Duration::from_std(self.s.approval_timeout)
                .unwrap_or_else(|_| chrono::Duration::days(1));
            if now - since >= limit {
                self.needs_review(
                    &e.id,
                    &format!(
                        "no decision within {}",
                        ai_employee_vault::units::format_duration(self.s.approval_timeout)
                    ),
                );
            }
        }
    }

    fn needs_review(&mut self, id: &str, why: &str) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        warn!("{id} needs human review: {why}");
        if let Err(err) = self.edit(e.folder, &e.name, true, |d| {
            d.set(keys::STATE, LoopState::NeedsReview.as_str());
            d.set(keys::LAST_ERROR, why);
        }) {
            warn!(
                "cannot record the review in {}: {err}",
                e.folder.rel(&e.name)
            );
        }
        if let Some(mut x) = self.tasks.get_mut(id) {
            x.state = LoopState::NeedsReview;
            x.last_error = Some(why.to_string());
        }
        let mut ev = TaskEvent::new(Utc::now(), EventKind::NeedsReview, id);
        ev.error = Some(why.to_string());
        self.event(ev);
        self.row("Task_Review", "⚠ Needs review", &format!("{id}: {why}"));
        tell_supervisor(
            &self.vault,
            "task_needs_review",
            format!("task {id} needs human review: {why}"),
        );
        self.snapshot_dirty = true;
    }

    /// Judge the loop's health by `tasks health`'s rules; a change is a Dashboard row, and
    /// turning degraded or unhealthy the `tasks_unhealthy` event.
    fn judge_health(&mut self) {
        use super::health::{self, Lock, Observed, State};
        if self.opts.dry_run {
            return;
        }
        let now = Utc::now();
        let snap = self.snapshot();
        let last_day =
            match super::metrics::read(self.vault.root(), now - chrono::Duration::hours(24), now) {
                Ok(m) => m,
                Err(e) => {
                    warn!("cannot read Logs/tasks.jsonl for the health check: {e}");
                    return;
                }
            };
        let observed = Observed {
            snapshot: Some(&snap),
            lock: Lock::Held,
            pid_alive: true,
            now,
        };
        let h = health::assess(&observed, &last_day, &self.s);
        if h.state == self.health {
            return;
        }
        let was = self.health;
        self.health = h.state;
        let reasons = h.reasons.join("; ");
        let status = match h.state {
            State::Healthy => "✓ Healthy",
            State::Degraded => "⚠ Degraded",
            State::Unhealthy | State::NotRunning => "✗ Unhealthy",
        };
        let details = if h.state == State::Healthy {
            format!("tasks are healthy again (were {})", was.as_str())
        } else {
            reasons.clone()
        };
        warn!("task health: {} ({details})", h.state.as_str());
        self.row("Tasks_Health", status, &details);
        if h.state > was && h.state != State::Healthy {
            tell_supervisor(
                &self.vault,
                "tasks_unhealthy",
                format!("tasks are {}: {reasons}", h.state.as_str()),
            );
        }
    }

    // ---- time -----------------------------------------------------------------------------

    fn timers(&mut self) {
        let today = chrono::Local::now().date_naive();
        if today != self.today_date {
            self.today_date = today;
            self.today = Totals::default();
            self.snapshot_dirty = true;
        }
    }

    /// How long the loop may sleep: until the next sweep, heartbeat (`beat`: when it has
    /// a heartbeat file to touch), retry, look at approvals or snapshot.
    fn next_wake(&self, last_sweep: Instant, beat: Option<Duration>) -> Duration {
        let now = Utc::now();
        let mut wake = SWEEP_EVERY.saturating_sub(last_sweep.elapsed());
        if let Some(beat) = beat {
            wake = wake.min(beat);
        }
        // Retries and approvals are never in the ordered queue.
        if self.any_waiting() {
            wake = wake.min(APPROVALS_EVERY);
        }
        if !self.paused {
            for e in self.tasks.others() {
                if e.state == LoopState::Retry
                    && let Some(t) = e.retry_at
                {
                    wake = wake.min((t - now).to_std().unwrap_or(Duration::ZERO));
                }
            }
        }
        if self.snapshot_dirty {
            wake = wake.min(
                self.snapshot_gap
                    .saturating_sub(self.last_snapshot.elapsed()),
            );
        }
        wake.max(Duration::from_millis(1))
    }

    // ---- output -------------------------------------------------------------------------

    fn event(&mut self, ev: TaskEvent) {
        let record = super::metrics::Record::from(&ev);
        super::metrics::count(&mut self.totals, &record);
        super::metrics::count(&mut self.today, &record);
        if matches!(ev.event, EventKind::Done) {
            self.last_completion = Some(ev.ts);
        }
        self.snapshot_dirty = true;
        let Some(j) = &mut self.events else { return };
        let mut line = Vec::with_capacity(160);
        if let Err(e) = journal::json_line(&mut line, &ev).and_then(|()| j.append(&line, false)) {
            warn!("cannot append to Logs/tasks.jsonl: {e}");
        }
    }

    fn row(&mut self, action: &str, status: &str, details: &str) {
        self.rows.push(Row {
            timestamp: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
            action: action.to_string(),
            status: status.to_string(),
            details: task::one_line(details, 300),
        });
    }

    /// Edit the frontmatter of task file `name` in `folder` (`task::update`), what it
    /// replaced left to the sync thread.
    fn edit(
        &self,
        folder: Folder,
        name: &str,
        durable: bool,
        mut edit: impl FnMut(&mut TaskDoc),
    ) -> Result<TaskDoc, task::TaskError> {
        let stamp = self
            .stamp
            .as_ref()
            .filter(|s| s.folder == folder && s.name == name);
        task::update_with(
            self.dirs.of(folder),
            name,
            durable,
            &self.leftovers(folder),
            |d| {
                edit(d);
                if let Some(s) = stamp {
                    d.set(remote::WORKER, s.worker.clone());
                    d.set(remote::HOST, s.host.clone());
                }
            },
        )
    }

    /// Where an edit of a task file in `folder` leaves the text it replaced: the sync
    /// thread removes it ([`durable::Leftovers`]).
    fn leftovers(&self, folder: Folder) -> durable::Leftovers {
        self.durable
            .as_ref()
            .map_or_else(|| durable::Leftovers::now(folder), |d| d.leftovers(folder))
    }

    /// Make the batch's finished tasks durable: handed to the sync thread
    /// ([`durable`]), or where it is gone one `syncfs` of the vault's file system here
    /// (where there is none, an fsync of each folder that received one).
    fn sync_finished(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        let mut folders = std::mem::take(&mut self.unsynced);
        if let Some(d) = &mut self.durable {
            match d.request(folders) {
                Ok(n) => {
                    self.sync_asked = n;
                    return;
                }
                // The thread is gone: the folders come back, synced here.
                Err(back) => {
                    self.durable = None;
                    folders = back;
                }
            }
        }
        // Synced here, before anything waits on it.
        self.sync_asked += 1;
        folders.push(Folder::InProgress);
        match self.dirs.root.sync_file_system() {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                folders.sort_by_key(|f| f.name());
                folders.dedup();
                for f in folders {
                    if let Err(err) = self.dirs.of(f).sync() {
                        warn!("cannot sync {}: {err}", f.name());
                    }
                }
            }
            Err(e) => warn!("cannot sync the vault's file system: {e}"),
        }
    }

    /// The number of the last sync that completed.
    fn synced_upto(&self) -> u64 {
        self.durable
            .as_ref()
            .map_or(self.sync_asked, durable::Durable::completed)
    }

    /// Write the snapshot if it changed (at most every [`SNAPSHOT_EVERY`] unless `force`),
    /// and hand Dashboard rows to their writer.
    fn flush(&mut self, force: bool) {
        self.sync_finished();
        // Built at most once per flush, for the Dashboard's section and the file.
        let due = self
            .last_dashboard
            .is_none_or(|t| t.elapsed() >= self.s.dashboard_interval);
        let section = if (due || force) && self.dashboard.is_some() {
            self.last_dashboard = Some(Instant::now());
            let line = super::dashboard::summary(&self.snapshot_of(false));
            (line != self.last_summary).then(|| {
                self.last_summary.clone_from(&line);
                super::dashboard::section_of(line, &chrono::Local::now())
            })
        } else {
            None
        };
        if (!self.rows.is_empty() || section.is_some())
            && let Some((tx, _)) = &self.dashboard
        {
            let write = DashWrite {
                rows: std::mem::take(&mut self.rows),
                section,
            };
            let _ = tx.send(write); // its thread ends only with us
        }
        if self.opts.dry_run
            || !(force
                || (self.snapshot_dirty && self.last_snapshot.elapsed() >= self.snapshot_gap))
        {
            return;
        }
        self.snapshot_dirty = false;
        let t0 = Instant::now();
        self.last_snapshot = t0;
        let snap = self.snapshot();
        let (dir, name) = match ai_employee_vault::nofollow::folder_of(
            &self.vault.state_file(snapshot::FILE_NAME),
        ) {
            Ok(x) => x,
            Err(e) => {
                warn!("cannot open .ai-employee/: {e}");
                return;
            }
        };
        // Serialised straight into the file: no copy of its megabytes in memory.
        if let Err(e) = write_quick(&dir, &name, |w| {
            serde_json::to_writer(w, &snap).map_err(std::io::Error::from)
        }) {
            warn!("cannot write .ai-employee/{}: {e}", snapshot::FILE_NAME);
        }
        self.snapshot_gap =
            (t0.elapsed() * SNAPSHOT_COST_FACTOR).clamp(SNAPSHOT_EVERY, SNAPSHOT_MAX_GAP);
    }

    /// The snapshot, its tasks borrowed from the table (no copy of their strings).
    fn snapshot(&self) -> Snapshot<TaskOut<'_>> {
        self.snapshot_of(true)
    }

    /// The snapshot; `ordered: false` leaves the tasks unscored (0) and unsorted, for
    /// counting them (the Dashboard's summary).
    fn snapshot_of(&self, ordered: bool) -> Snapshot<TaskOut<'_>> {
        let now = Utc::now();
        let mut tasks: Vec<TaskOut<'_>> = self
            .tasks
            .values()
            .filter_map(|e| {
                Some(TaskOut {
                    e,
                    state: e.state.view()?,
                    score: if ordered {
                        (self.score_of(e, now) * 1000.0).round() / 1000.0
                    } else {
                        0.0
                    },
                })
            })
            .collect();
        if !ordered {
            return self.snapshot_with(now, tasks);
        }
        tasks.sort_by(|a, b| {
            let run = |t: &TaskOut<'_>| t.state != snapshot::TaskState::Running;
            run(a)
                .cmp(&run(b))
                .then_with(|| b.score.total_cmp(&a.score))
                .then_with(|| a.e.queued_at.cmp(&b.e.queued_at))
                .then_with(|| a.e.id.cmp(&b.e.id))
        });
        self.snapshot_with(now, tasks)
    }

    fn snapshot_with<'a>(
        &'a self,
        now: DateTime<Utc>,
        tasks: Vec<TaskOut<'a>>,
    ) -> Snapshot<TaskOut<'a>> {
        let recent = if self.recent_runs.is_empty() {
            None
        } else {
            Some(
                (self.recent_runs.iter().sum::<Duration>() / self.recent_runs.len() as u32)
                    .as_millis() as u64,
            )
        };
        Snapshot {
            version: snapshot::VERSION,
            pid: std::process::id(),
            written_at: Some(now),
            started_at: Some(self.started_at),
            paused: self.paused,
            needs_setup: self.needs_setup.clone(),
            max_concurrent: self.s.max_concurrent,
            recent_run_ms: recent,
            tasks,
            totals: self.totals.clone(),
            today: self.today.clone(),
            last_completion: self.last_completion,
            queue: self.remote.as_ref().map(|r| r.view(now)),
        }
    }
}

/// The event of `e` reaching final `state` at `at` (`why`: its reason, when not done).
fn final_event(e: &Entry, state: LoopState, at: DateTime<Utc>, why: Option<String>) -> TaskEvent {
    let kind = match state {
        LoopState::Done => EventKind::Done,
        LoopState::Rejected => EventKind::Rejected,
        _ => EventKind::Failed,
    };
    let mut ev = TaskEvent::new(at, kind, &e.id);
    ev.attempt = Some(e.attempt);
    ev.duration_ms = Some((at - e.queued_at).num_milliseconds().max(0) as u64);
    ev.cost_usd = (e.cost_usd > 0.0).then_some(e.cost_usd);
    ev.turns = (e.turns > 0).then_some(e.turns as u32);
    ev.error = why;
    ev
}

/// One task of the snapshot: its entry in the table, written as a [`TaskViewRef`].
struct TaskOut<'a> {
    e: &'a Entry,
    state: snapshot::TaskState,
    score: f64,
}

impl Stated for TaskOut<'_> {
    fn state(&self) -> snapshot::TaskState {
        self.state
    }
}

impl serde::Serialize for TaskOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.e;
        TaskViewRef {
            id: &e.id,
            file: FileRef(e.folder, &e.name),
            title: &e.title,
            state: self.state,
            score: self.score,
            attempt: e.attempt,
            queued_at: e.queued_at,
            started_at: e.started_at.filter(|_| e.state == LoopState::Running),
            retry_at: e.retry_at.filter(|_| e.state == LoopState::Retry),
            last_error: e.last_error.as_deref(),
            priority: e.priority.as_deref(),
            deadline: e.deadline,
            pid: e.pid,
            approvals: match e.state {
                LoopState::AwaitingRunApproval => e.run_approval.as_slice(),
                LoopState::WaitingApproval => &e.approvals,
                _ => &[],
            },
            cost_usd: e.cost_usd,
            turns: e.turns,
        }
        .serialize(s)
    }
}

/// Whether a person already approved running this task (`run_approved: true`).
fn doc_approved(doc: &TaskDoc) -> bool {
    matches!(
        doc.front.get("run_approved"),
        Some(serde_norway::Value::Bool(true))
    )
}

/// Replace `name` atomically, without fsync (a view, rebuilt at the next start).
fn write_quick(
    dir: &Dir,
    name: &std::ffi::OsStr,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = dir.temp_file(".tmp-", "", 0o600)?;
    {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut tmp);
        fill(&mut out)?;
        out.flush()?;
    }
    dir.rename(
        tmp.name(),
        dir,
        name,
        ai_employee_vault::nofollow::Replace::Yes,
    )?;
    tmp.keep();
    Ok(())
}

/// Tell the supervisor, if one runs, about an event for its webhooks (off the loop).
fn tell_supervisor(vault: &Vault, event: &'static str, details: String) {
    let root = vault.root().to_path_buf();
    std::thread::spawn(move || {
        ai_employee_vault::control::client::send_event(&root, event, &details);
    });
}

/// Rows and the `## Tasks` section for the Dashboard writer.
struct DashWrite {
    rows: Vec<Row>,
    section: Option<ai_employee_vault::dashboard::Section>,
}

/// The thread that writes Dashboard.md (each write may take milliseconds): rows and the
/// newest section in one merge-safe write.
fn start_dashboard_writer(
    path: PathBuf,
) -> (
    std::sync::mpsc::Sender<DashWrite>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<DashWrite>();
    let thread = std::thread::spawn(move || {
        while let Ok(mut w) = rx.recv() {
            while let Ok(more) = rx.try_recv() {
                w.rows.extend(more.rows);
                if more.section.is_some() {
                    w.section = more.section;
                }
            }
            if let Err(e) = ai_employee_vault::dashboard::update(&path, &w.rows, w.section.as_ref())
            {
                warn!(
                    "cannot write the task rows and summary to {}: {e}",
                    path.display()
                );
            }
        }
    });
    (tx, thread)
}
