//! The async runtime: one thread, one event loop. It turns OS events (SIGCHLD, signals,
//! deadlines, the operator's requests) into machine events, carries out the machine's
//! actions (spawn, signal) and hands what happened to the [`Reporter`].
//!
//! Exits are noticed through SIGCHLD and reaped at once (never by polling); every deadline
//! is on the monotonic clock. The rest of the runtime lives next to this file:
//! `guard.rs` (the orphan guardian and the records file), `health.rs` (health checks),
//! `output.rs` (children's output into their logs), `reload.rs` (a new table),
//! `table_watch.rs` (the table file watched for saved changes) and `operator.rs` (the
//! control socket's requests).

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ai_employee_vault::Vault;
use ai_employee_vault::logs::{LogFile, LogWriter, RotatingFile};
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{debug, error};

use super::machine::{Action, Child, Event, Notice, Phase, Then, later};
use super::report::Reporter;
use crate::config::{Config, ProcessSpec, SupervisorSettings};
use crate::control::{Call, ControlSocket};
use crate::process::guardian::Guardian;
use crate::process::spawn::{SpawnRequest, spawn};
use crate::process::{self, records};

mod guard;
mod health;
mod operator;
mod output;
mod reload;
mod table_watch;

pub use reload::ReloadError;

/// How long the Dashboard waits after start before its first summary row, so children
/// that fail at once are reported as such rather than as a moment of "online".
const SUMMARY_SETTLE: Duration = Duration::from_millis(1500);
/// The Dashboard's summary is evaluated at most this often, so a burst of restarts costs
/// one write, not one per restart.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// After this long without events, code pages mapped during the last burst of activity
/// are dropped from the resident set (see `process::trim_code_pages`).
const TRIM_AFTER_IDLE: Duration = Duration::from_secs(10);
/// Poll period for the group of a stopping child whose leader is gone.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Where the table came from, for reloads.
#[derive(Debug, Clone)]
pub struct TableLocation {
    pub explicit: Option<PathBuf>,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by the first Ctrl+C / SIGTERM, children stopped gracefully.
    Clean,
    /// A second Ctrl+C: children were SIGKILLed.
    Forced,
}

/// One entry of the table: its state machine and what the runtime keeps beside it.
struct Slot {
    child: Child,
    /// Its log file, written by the log writer's thread (see `output.rs`).
    log: Rc<LogFile>,
    /// Heartbeat file mtime last seen and when (monotonic) it was seen to change.
    beat: Option<(SystemTime, Instant)>,
    /// Leader start time (for the records file), read once per spawn.
    start_time: Option<u64>,
    /// The process group the guardian currently knows for this child.
    guarded: Option<i32>,
    /// A group the guardian was told about at its spawn, before [`Runtime::sync_guard`]
    /// (which then does not tell it again).
    told_early: Option<i32>,
    /// Last CPU reading, for CPU %.
    cpu: Option<operator::CpuSample>,
    /// What its last exit said about its log, when it needs setup and that log could
    /// not be written (for `status`; see [`Reporter::child`]).
    setup_see: Option<String>,
}

pub struct Runtime {
    vault: Vault,
    table: TableLocation,
    settings: SupervisorSettings,
    slots: Vec<Slot>,
    by_pid: HashMap<i32, usize>,
    guardian: Option<Guardian>,
    records: Option<records::RecordLog>,
    reporter: Reporter,
    /// Owns and writes every log file (its own thread).
    logs: LogWriter,
    summary_due: Option<Instant>,
    /// When to trim code pages, pushed back by every event.
    trim_due: Option<Instant>,
    next_health: Instant,
    watchdog: Option<(Duration, Instant)>,
    shutting_down: bool,
    forced: bool,
    started: Instant,
    drains: Rc<Cell<usize>>,
    /// When the initial start finished (None while still starting).
    running_since: Option<Instant>,
    /// Set by SIGTERM/SIGINT received before the event loop listened.
    early_stop: Arc<AtomicBool>,
    /// Where the table in force came from (for `status`).
    table_source: String,
    started_wall: chrono::DateTime<chrono::Utc>,
    /// The table file a reload reads, and the bytes of the table last read (a change
    /// that leaves them as they were is not applied again; the built-in table's when the
    /// file is not there, so `init` writing it changes nothing).
    table_path: PathBuf,
    table_seen: Option<Vec<u8>>,
    /// The watch on the table file while `reload_on_change` is on, its events' sender
    /// (for a watch started by a reload) and receiver (taken by `run`).
    table_watch: Option<table_watch::TableWatch>,
    table_tx: mpsc::UnboundedSender<()>,
    table_rx: Option<mpsc::UnboundedReceiver<()>>,
    /// When a saved change of the table is applied (pushed back by each event).
    reload_due: Option<Instant>,
}

impl Runtime {
    /// `guardian`: one started before the runtime (see [`Guardian::fork_early`]), or None
    /// to start one when the loop starts.
    pub fn new(
        vault: Vault,
        table: TableLocation,
        config: Config,
        guardian: Option<Guardian>,
        early_stop: Arc<AtomicBool>,
        logs: LogWriter,
    ) -> Runtime {
        let now = Instant::now();
        let settings = config.supervisor.clone();
        let reporter = Reporter::start(&vault, &config.notify);
        let records = guard::open_records(&vault);
        let table_path = table_watch::table_path(vault.root(), table.explicit.as_deref());
        let table_seen = table_watch::bytes_in_force(&table_path, table.explicit.is_some());
        let (table_tx, table_rx) = mpsc::unbounded_channel();
        let mut rt = Runtime {
            vault,
            table,
            settings,
            slots: Vec::new(),
            by_pid: HashMap::new(),
            guardian,
            records,
            reporter,
            logs,
            summary_due: Some(later(now, SUMMARY_SETTLE)),
            trim_due: None,
            next_health: later(now, config.supervisor.health_interval),
            watchdog: watchdog_interval().map(|d| (d, now)),
            shutting_down: false,
            forced: false,
            started: now,
            drains: Rc::new(Cell::new(0)),
            early_stop,
            running_since: None,
            table_source: config.source.to_string(),
            started_wall: chrono::Utc::now(),
            table_seen,
            table_path,
            table_watch: None,
            table_tx,
            table_rx: Some(table_rx),
            reload_due: None,
        };
        for spec in config.processes {
            rt.slots.push(rt.new_slot(spec));
        }
        rt
    }

    /// The previous supervisor of the vault (`pid`, if known) ended without a clean stop
    /// (killed, or the machine went down); `last_seen` is when it last wrote its files.
    pub fn previous_run_unclean(&mut self, pid: Option<i32>, last_seen: SystemTime) {
        self.reporter.previous_run_unclean(pid, last_seen);
    }

    fn new_slot(&self, spec: ProcessSpec) -> Slot {
        let stop_timeout = spec.stop_timeout.unwrap_or(self.settings.stop_timeout);
        let file = RotatingFile::new(
            self.vault.child_log(&spec.name),
            spec.log_max_size.unwrap_or(self.settings.log_max_size),
            spec.log_max_files.unwrap_or(self.settings.log_max_files),
        );
        Slot {
            log: Rc::new(self.logs.open_child(file, &spec.name)),
            child: Child::new(spec, stop_timeout),
            beat: None,
            start_time: None,
            guarded: None,
            told_early: None,
            cpu: None,
            setup_see: None,
        }
    }

    /// Run until shut down. Must be called inside a `LocalSet`.
    pub async fn run(mut self) -> std::io::Result<Outcome> {
        // Register SIGCHLD before the first spawn so no exit can be missed.
        let mut sigchld = signal(SignalKind::child())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sighup = signal(SignalKind::hangup())?;

        if self.guardian.is_none() {
            self.start_guardian();
        }
        let (calls_tx, mut calls) = mpsc::unbounded_channel::<Call>();
        let socket_path = ai_employee_vault::control::socket_path(self.vault.root());
        let _control: Option<ControlSocket> =
            match crate::control::start(&socket_path, calls_tx.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    error!(
                        "failed to open the control socket {}: {e}; status, start, stop and \
                         reload commands will not reach this supervisor",
                        socket_path.display()
                    );
                    None
                }
            };
        if let Some(addr) = self.settings.metrics {
            tokio::task::spawn_local(super::metrics::serve(addr, calls_tx.clone()));
        }
        drop(calls_tx);
        let mut table_events = self.table_rx.take();
        self.sync_table_watch();
        if self.early_stop.load(Ordering::SeqCst) {
            self.reporter.stopped_early();
            self.shutting_down = true;
            self.finish().await;
            return Ok(Outcome::Clean);
        }
        let enabled = self.slots.iter().filter(|s| s.child.spec().enabled).count();
        for i in 0..self.slots.len() {
            if self.slots[i].child.spec().enabled {
                self.dispatch(i, Event::Start);
            }
        }
        self.after_batch();
        let running = self
            .slots
            .iter()
            .filter(|s| s.child.pid().is_some())
            .count();
        self.reporter.started(running, enabled);
        tell_service_manager(sd_notify::NotifyState::Ready);
        self.running_since = Some(Instant::now());

        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = sigchld.recv() => self.on_sigchld(),
                _ = sigint.recv() => self.on_stop_signal(Signal::SIGINT),
                _ = sigterm.recv() => self.on_stop_signal(Signal::SIGTERM),
                _ = sighup.recv() => {
                    // Its outcome is in the log already; SIGHUP has no one else to tell.
                    let _ = self.reload();
                }
                Some(call) = calls.recv() => {
                    let response = self.on_control(call.request);
                    // It fails only when the asker stopped waiting: no one to answer.
                    let _ = call.reply.send(response);
                }
                Some(()) = recv_some(&mut table_events) => {
                    self.reload_due = Some(later(Instant::now(), table_watch::SETTLE));
                }
                _ = sleep_until(deadline) => self.on_tick(),
            }
            self.after_batch();
            if self.trim_due.is_some_and(|t| t <= Instant::now()) {
                self.trim_due = None;
                process::trim_code_pages();
            }
            if self.shutting_down && self.slots.iter().all(|s| s.child.is_at_rest()) {
                break;
            }
        }
        self.finish().await;
        Ok(if self.forced {
            Outcome::Forced
        } else {
            Outcome::Clean
        })
    }

    // ----- events ---------------------------------------------------------------------

    fn on_sigchld(&mut self) {
        for (pid, status) in process::reap_all() {
            if self.guardian.as_ref().is_some_and(|g| g.pid() == pid) {
                self.reporter.guardian_ended(pid, status);
                self.guardian = None;
                if !self.shutting_down {
                    self.start_guardian();
                }
                continue;
            }
            let Some(i) = self.by_pid.remove(&pid) else {
                continue; // a re-parented grandchild (we are a subreaper)
            };
            let group_alive = process::group_alive(pid);
            self.dispatch(
                i,
                Event::Exited {
                    pid,
                    status,
                    group_alive,
                },
            );
        }
        self.poll_draining();
    }

    fn on_stop_signal(&mut self, sig: Signal) {
        if self.shutting_down {
            if sig == Signal::SIGINT && !self.forced {
                self.reporter.killing();
                self.forced = true;
                for i in 0..self.slots.len() {
                    self.dispatch(i, Event::Kill);
                }
            }
            return;
        }
        self.shutting_down = true;
        tell_service_manager(sd_notify::NotifyState::Stopping);
        self.reporter.stopping(sig);
        for i in 0..self.slots.len() {
            // Children at rest keep their state (needs-setup, fatal, exited) for the report.
            if !self.slots[i].child.is_at_rest() {
                self.dispatch(i, Event::Stop(Then::Rest));
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].child.deadline().is_some_and(|d| d <= now) {
                self.dispatch(i, Event::Tick);
            }
        }
        self.poll_draining();
        if now >= self.next_health {
            self.next_health = later(now, self.settings.health_interval);
            self.health_check(now);
            // A guardian that could not be started is tried again at each health poll.
            if self.guardian.is_none() && !self.shutting_down {
                self.start_guardian();
            }
        }
        if self.reload_due.is_some_and(|t| t <= now) {
            self.reload_due = None;
            self.table_changed();
        }
        if let Some((period, last)) = self.watchdog
            && now >= later(last, period)
        {
            tell_service_manager(sd_notify::NotifyState::Watchdog);
            self.watchdog = Some((period, now));
        }
    }

    fn poll_draining(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(pgid) = self.slots[i].child.pgid()
                && self.slots[i].child.is_draining()
                && !process::group_alive(pgid)
            {
                self.dispatch(i, Event::GroupGone);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.slots.iter().filter_map(|s| s.child.deadline()).min();
        let mut merge = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if !self.shutting_down {
            merge(self.next_health);
        }
        if let Some(t) = self.summary_due {
            merge(t);
        }
        if let Some(t) = self.trim_due {
            merge(t);
        }
        if let Some(t) = self.reload_due {
            merge(t);
        }
        if let Some((period, last)) = self.watchdog {
            merge(later(last, period));
        }
        if self.slots.iter().any(|s| s.child.is_draining()) {
            merge(later(Instant::now(), DRAIN_POLL));
        }
        d
    }

    // ----- the machine's actions ------------------------------------------------------

    /// Feed one event to child `i` and carry out what it decides. Spawns and signals
    /// happen first; log lines, Dashboard rows and bookkeeping after, so a restarted
    /// child never waits behind them.
    fn dispatch(&mut self, i: usize, event: Event) {
        let mut notices = Vec::new();
        self.decide_and_act(i, event, &mut notices);
        let slot = &mut self.slots[i];
        for n in notices {
            if let Some(see) = self.reporter.child(&slot.child, &slot.log, n) {
                slot.setup_see = Some(see);
            }
        }
        self.sync_guard(i);
        let now = Instant::now();
        if self.summary_due.is_none() {
            self.summary_due = Some(later(now, SUMMARY_EVERY));
        }
        // A child event: trim code pages once things have been quiet for a while
        // (health polls and watchdog pings do not count, so an idle system trims once).
        self.trim_due = Some(later(now, TRIM_AFTER_IDLE));
    }

    fn decide_and_act(&mut self, i: usize, event: Event, notices: &mut Vec<Notice>) {
        let now = Instant::now();
        let actions = self.slots[i].child.on_event(event, now);
        for a in actions {
            match a {
                Action::Spawn => {
                    let ev = self.spawn_child(i);
                    self.decide_and_act(i, ev, notices);
                }
                Action::Signal { pgid, sig } => {
                    process::signal_group(pgid, sig);
                }
                Action::Notice(n) => notices.push(n),
            }
        }
    }

    fn spawn_child(&mut self, i: usize) -> Event {
        let vault = self.vault.root().to_path_buf();
        let heartbeat = self.vault.heartbeat(self.slots[i].child.name());
        let spec = self.slots[i].child.spec();
        let cwd = spec.working_dir(&vault);
        // A heartbeat left by the last run would count as a fresh one. Not there is the
        // usual case; one that cannot be removed counts once, from its first sight (see
        // `health.rs`), which is the grace a child without a heartbeat has anyway.
        if let Err(e) = std::fs::remove_file(&heartbeat)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            debug!("failed to remove {}: {e}", heartbeat.display());
        }
        let req = SpawnRequest {
            command: &spec.command,
            args: &spec.args,
            env: &spec.env,
            cwd: &cwd,
            vault: &vault,
            heartbeat: &heartbeat,
            heartbeat_timeout: spec.heartbeat_timeout,
        };
        match spawn(&req) {
            Ok(sp) => {
                let pid = sp.pid;
                // Before anything else (the yield below lets the child run; then come its
                // log lines and Dashboard row): a supervisor killed from here on takes the
                // new group down with it.
                self.tell_guardian_early(i, pid);
                self.by_pid.insert(pid, i);
                let slot = &mut self.slots[i];
                slot.beat = None;
                slot.start_time = None;
                slot.setup_see = None;
                let stamps = slot
                    .child
                    .spec()
                    .log_timestamps
                    .unwrap_or(self.settings.log_timestamps);
                output::start_drain(
                    sp.output,
                    slot.log.clone(),
                    self.drains.clone(),
                    stamps.then(output::LineStamps::default),
                );
                if self.running_since.is_some() {
                    // After vfork the new child usually sits on our CPU, still loading;
                    // let it run before our bookkeeping (~0.15 ms off a restart). Not
                    // during the initial start, where it would slow the spawn loop.
                    // SAFETY: sched_yield takes no arguments.
                    unsafe {
                        libc::sched_yield();
                    }
                }
                Event::Spawned { pid }
            }
            Err(e) => Event::SpawnFailed {
                setup: e.needs_setup(),
                reason: e.to_string(),
            },
        }
    }

    // ----- bookkeeping after every batch of events ---------------------------------------

    fn after_batch(&mut self) {
        // Drop entries that left the table.
        if self
            .slots
            .iter()
            .any(|s| *s.child.phase() == Phase::Removed)
        {
            self.slots.retain(|s| *s.child.phase() != Phase::Removed);
            self.reindex();
        }
        self.compact_records();
        let now = Instant::now();
        if self.summary_due.is_some_and(|t| t <= now) && !self.shutting_down {
            self.summary_due = None;
            self.reporter.system(self.slots.iter().map(|s| &s.child));
        }
    }

    fn reindex(&mut self) {
        self.by_pid.clear();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(pid) = s.child.pid() {
                self.by_pid.insert(pid, i);
            }
        }
    }

    // ----- shutdown -------------------------------------------------------------------------

    async fn finish(&mut self) {
        self.drain_last_output().await;
        if let Some(g) = self.guardian.take() {
            g.dismiss();
        }
        if let Some(r) = self.records.take() {
            r.discard();
        }
        self.reporter.shutdown(
            self.forced,
            self.started.elapsed(),
            self.slots.iter().map(|s| &s.child),
        );
    }
}

async fn sleep_until(d: Option<Instant>) {
    match d {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Tell systemd (`Type=notify`) where we are. Without `NOTIFY_SOCKET` it does nothing; a
/// send that fails leaves the service manager to its own timeouts, as for a service that
/// never notifies, so it is only logged for debugging.
/// The next message of `rx`, or never when there is none.
async fn recv_some<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn tell_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        debug!("failed to notify the service manager: {e}");
    }
}

/// systemd's watchdog period, halved (ping twice per period), if this process is watched.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
