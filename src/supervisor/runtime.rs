//! The async runtime: one thread, one event loop. It turns OS events (SIGCHLD, signals,
//! deadlines) into machine events, carries out the machine's actions (spawn, signal), and
//! owns everything with side effects: logs, the Dashboard writer, the guardian, records.
//!
//! Exits are noticed through SIGCHLD and reaped at once (never by polling); every deadline
//! is on the monotonic clock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

use ai_employee_vault::Vault;
use ai_employee_vault::control::{
    ChildStatus, Health, LastExit, ReloadReport, Request, Response, StatusReport, SupervisorInfo,
};
use ai_employee_vault::logs::RotatingFile;
use ai_employee_vault::units::format_elapsed;
use tokio::sync::mpsc;

use super::machine::{Action, Child, Event, Next, Notice, Phase, Then, later};
use super::report::dashboard::DashboardWriter;
use super::report::notify::Notifier;
use super::report::summary::{self as status, Summary};
use crate::config::{self, Config, NotifyEvent, NotifySpec, ProcessSpec, SupervisorSettings};
use crate::control::{Call, ControlSocket};
use crate::process::guardian::Guardian;
use crate::process::spawn::{SpawnRequest, is_setup_error, spawn};
use crate::process::{self, records};
use ai_employee_vault::logs::writer::Probe;
use ai_employee_vault::logs::{LogFile, LogWriter};

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
/// How long shutdown waits for the last output of dead children to reach their logs.
const DRAIN_LOGS_MAX: Duration = Duration::from_millis(500);
/// How long an exit message waits for the log writer to say whether the child's log
/// can be written (a stalled disk gets the last state known instead).
const SEE_LOG_WAIT: Duration = Duration::from_millis(250);
/// How long shutdown waits for `[[notify]]` webhooks to take the last events.
const NOTIFY_FLUSH_MAX: Duration = Duration::from_secs(2);
/// CPU % is measured over at least this long (a shorter gap repeats the last figure).
const CPU_SAMPLE_MIN: Duration = Duration::from_millis(500);

mod health;
mod operator;
mod output;
mod reload;

use output::{ChildLog, start_drain};

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

struct Slot {
    child: Child,
    log: Rc<ChildLog>,
    /// Heartbeat file mtime last seen and when (monotonic) it was seen to change.
    beat: Option<(SystemTime, Instant)>,
    /// Leader start time (for the records file), read once per spawn.
    start_time: Option<u64>,
    /// The process group the guardian currently knows for this child.
    guarded: Option<i32>,
    /// Last CPU reading, for CPU %.
    cpu: Option<CpuSample>,
}

#[derive(Clone, Copy)]
struct CpuSample {
    pid: i32,
    at: Instant,
    cpu_ns: u64,
    /// CPU % over the interval that ended at `at`.
    percent: Option<f64>,
}

#[derive(Default)]
struct Stats {
    starts: u64,
    restarts: u64,
    crashes: u64,
    health_failures: u64,
}

pub struct Runtime {
    vault: Vault,
    table: TableLocation,
    settings: SupervisorSettings,
    slots: Vec<Slot>,
    by_pid: HashMap<i32, usize>,
    guardian: Option<Guardian>,
    records: Option<records::RecordLog>,
    dashboard: DashboardWriter,
    /// Owns and writes every log file (its own thread).
    logs: LogWriter,
    last_summary: Option<Summary>,
    summary_due: Option<Instant>,
    /// When to trim code pages, pushed back by every event.
    trim_due: Option<Instant>,
    next_health: Instant,
    watchdog: Option<(Duration, Instant)>,
    shutting_down: bool,
    forced: bool,
    started: Instant,
    stats: Stats,
    drains: Rc<Cell<usize>>,
    /// When the initial start finished (None while still starting).
    running_since: Option<Instant>,
    /// Set by SIGTERM/SIGINT received before the event loop listened.
    early_stop: Arc<AtomicBool>,
    /// Where the table in force came from (for `status`).
    table_source: String,
    started_wall: chrono::DateTime<chrono::Utc>,
    notify_specs: Vec<NotifySpec>,
    notifier: Option<Notifier>,
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
        let notifier = Notifier::start(&config.notify, vault.root());
        let dashboard = DashboardWriter::start(vault.dashboard());
        let records = match records::RecordLog::create(&vault.children_record()) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(
                    "failed to create {}: {e}",
                    vault.children_record().display()
                );
                None
            }
        };
        let mut rt = Runtime {
            vault,
            table,
            settings,
            slots: Vec::new(),
            by_pid: HashMap::new(),
            guardian,
            records,
            dashboard,
            logs,
            last_summary: None,
            summary_due: Some(later(now, SUMMARY_SETTLE)),
            trim_due: None,
            next_health: later(now, config.supervisor.health_interval),
            watchdog: watchdog_interval().map(|d| (d, now)),
            shutting_down: false,
            forced: false,
            started: now,
            stats: Stats::default(),
            drains: Rc::new(Cell::new(0)),
            early_stop,
            running_since: None,
            table_source: config.source.to_string(),
            started_wall: chrono::Utc::now(),
            notify_specs: config.notify.clone(),
            notifier: Some(notifier),
        };
        for spec in config.processes {
            rt.slots.push(rt.new_slot(spec));
        }
        rt
    }

    fn new_slot(&self, spec: ProcessSpec) -> Slot {
        let stop_timeout = spec.stop_timeout.unwrap_or(self.settings.stop_timeout);
        let file = RotatingFile::new(
            self.vault.child_log(&spec.name),
            spec.log_max_size.unwrap_or(self.settings.log_max_size),
            spec.log_max_files.unwrap_or(self.settings.log_max_files),
        );
        Slot {
            log: Rc::new(ChildLog::new(
                self.logs.open_child(file, &spec.name),
                &spec.name,
            )),
            child: Child::new(spec, stop_timeout),
            beat: None,
            start_time: None,
            guarded: None,
            cpu: None,
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
        if self.early_stop.load(Ordering::SeqCst) {
            info!("stop requested during start-up: not starting any child");
            self.shutting_down = true;
            self.finish().await;
            return Ok(Outcome::Clean);
        }
        let enabled = self.slots.iter().filter(|s| s.child.spec.enabled).count();
        for i in 0..self.slots.len() {
            if self.slots[i].child.spec.enabled {
                self.dispatch(i, Event::Start);
            }
        }
        self.after_batch();
        let running = self
            .slots
            .iter()
            .filter(|s| s.child.pid().is_some())
            .count();
        super::report::console::started(running, enabled);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        self.running_since = Some(Instant::now());

        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = sigchld.recv() => self.on_sigchld(),
                _ = sigint.recv() => self.on_stop_signal("SIGINT"),
                _ = sigterm.recv() => self.on_stop_signal("SIGTERM"),
                _ = sighup.recv() => {
                    let _ = self.reload();
                }
                Some(call) = calls.recv() => {
                    let response = self.on_control(call.request);
                    let _ = call.reply.send(response);
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
                warn!("orphan guardian (pid {pid}) ended with {status}; starting a new one");
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

    fn on_stop_signal(&mut self, name: &str) {
        if self.shutting_down {
            if name == "SIGINT" && !self.forced {
                warn!("second Ctrl+C: killing all children now");
                self.forced = true;
                for i in 0..self.slots.len() {
                    self.dispatch(i, Event::Kill);
                }
            }
            return;
        }
        self.shutting_down = true;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        info!("received {name}: stopping all children (Ctrl+C again to kill them at once)");
        super::report::console::stopping();
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
        }
        if let Some((period, last)) = self.watchdog
            && now >= later(last, period)
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
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
        for n in notices {
            self.notice(i, n);
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

    /// Tell the guardian about a child's group while it may have members: from spawn until
    /// the leader is reaped and, when stopping, until the whole group is gone.
    fn sync_guard(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let now = slot.child.pgid();
        if slot.guarded == now {
            return;
        }
        if let Some(old) = slot.guarded {
            if let Some(g) = self.guardian.as_mut() {
                let _ = g.remove(old);
            }
            if let Some(r) = self.records.as_mut() {
                let _ = r.remove(old);
            }
        }
        if let Some(new) = now {
            if let Some(g) = self.guardian.as_mut() {
                let _ = g.add(new);
            }
            slot.start_time = process::stats::proc_info(new).map(|p| p.start_time);
            if let (Some(r), Some(start_time)) = (self.records.as_mut(), slot.start_time) {
                let rec = records::Record {
                    pgid: new,
                    start_time,
                    name: slot.child.spec.name.clone(),
                };
                if let Err(e) = r.add(&rec) {
                    warn!("failed to record process group {new}: {e}");
                }
            }
        }
        slot.guarded = now;
    }

    fn spawn_child(&mut self, i: usize) -> Event {
        let vault = self.vault.root().to_path_buf();
        let heartbeat = self.vault.heartbeat(&self.slots[i].child.spec.name);
        let spec = &self.slots[i].child.spec;
        let cwd = match &spec.cwd {
            Some(c) if c.is_absolute() => c.clone(),
            Some(c) => vault.join(c),
            None => vault.clone(),
        };
        let _ = std::fs::remove_file(&heartbeat);
        let req = SpawnRequest {
            command: &spec.command,
            args: &spec.args,
            env: &spec.env,
            cwd: &cwd,
            vault: &vault,
            heartbeat: &heartbeat,
        };
        match spawn(&req) {
            Ok(sp) => {
                let pid = sp.pid;
                self.by_pid.insert(pid, i);
                let slot = &mut self.slots[i];
                slot.beat = None;
                slot.start_time = None;
                start_drain(sp.output, slot.log.clone(), self.drains.clone());
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
                setup: is_setup_error(&e),
                reason: format!("failed to start {:?}: {e}", spec.command),
            },
        }
    }

    fn notice(&mut self, i: usize, n: Notice) {
        let c = &self.slots[i].child;
        let name = c.spec.name.as_str();
        let desc = c.spec.description.as_str();
        match n {
            Notice::Started { pid, restart } => {
                self.stats.starts += 1;
                if restart == 0 {
                    info!(child = name, pid, "started {desc} (pid {pid})");
                } else {
                    self.stats.restarts += 1;
                    info!(
                        child = name,
                        pid, "restarted {desc} (pid {pid}, restart #{restart})"
                    );
                }
            }
            Notice::SpawnFailed { reason, retry_in } => match retry_in {
                Some(d) => error!(child = name, "{reason}; retrying in {}", format_elapsed(d)),
                None => {
                    error!(child = name, "{reason}; needs setup, not restarted");
                    self.dashboard.send(status::child_row(
                        "⚠ Needs Setup",
                        format!("{desc}: {reason}"),
                    ));
                    self.notify(
                        NotifyEvent::ChildNeedsSetup,
                        Some(name),
                        &format!("needs setup: {reason}"),
                    );
                }
            },
            Notice::Exited {
                pid,
                status,
                next,
                uptime,
            } => {
                let up = format_elapsed(uptime);
                match next {
                    Next::Restart(d) => {
                        self.stats.crashes += 1;
                        warn!(
                            child = name,
                            pid,
                            "exited with {status} after {up}; restarting in {}",
                            format_elapsed(d)
                        );
                    }
                    Next::NeedsSetup => {
                        // Its reason is in its output: point there, or say that it
                        // could not be kept.
                        let see = self.slots[i].log.see();
                        warn!(
                            child = name,
                            pid, "exited with {status}: needs setup, not restarted ({see})"
                        );
                        self.dashboard.send(status::child_row(
                            "⚠ Needs Setup",
                            format!("{desc}: exited 78, needs configuration ({see})"),
                        ));
                        self.notify(
                            NotifyEvent::ChildNeedsSetup,
                            Some(name),
                            &format!("exited 78: needs configuration ({see})"),
                        );
                        if self.slots[i].log.file.failing().is_some()
                            && let Phase::NeedsSetup { reason } = &mut self.slots[i].child.phase
                        {
                            *reason = format!("exited 78 (needs configuration; {see})");
                        }
                    }
                    Next::Fatal(reason) => {
                        error!(child = name, pid, "exited with {status}; {reason}");
                        self.dashboard.send(status::child_row(
                            "✗ Gave Up",
                            format!("{desc}: {reason}, last {status}"),
                        ));
                        self.notify(
                            NotifyEvent::ChildFatal,
                            Some(name),
                            &format!("gave up: {reason}, last {status}"),
                        );
                    }
                    Next::Done => info!(
                        child = name,
                        pid,
                        "exited with {status} after {up}; restart = \"{}\": not restarted",
                        c.spec.restart.as_str()
                    ),
                    Next::Stopped => info!(child = name, pid, "exited with {status}"),
                }
            }
            Notice::Stable => debug!(child = name, "stable: backoff reset"),
            Notice::Stopping {
                pid,
                signal,
                timeout,
            } => info!(
                child = name,
                pid,
                "stopping {desc} ({}, SIGKILL after {})",
                process::signal_name(signal),
                format_elapsed(timeout)
            ),
            Notice::StopTimedOut { pid } => warn!(
                child = name,
                "did not stop within {}; sending SIGKILL to its process group{}",
                format_elapsed(c.stop_timeout),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
            Notice::Stopped => {
                let last = c.last_exit.map(|s| format!(" ({s})")).unwrap_or_default();
                info!(child = name, "stopped {desc}{last}");
            }
            Notice::HealthFailed { pid, reason } => {
                self.stats.health_failures += 1;
                warn!(
                    child = name,
                    pid, "health check failed: {reason}; restarting"
                );
            }
            Notice::RestartCancelled => info!(child = name, "pending restart cancelled"),
        }
    }

    // ----- bookkeeping after every batch of events ---------------------------------------

    fn after_batch(&mut self) {
        // Drop entries that left the table.
        if self.slots.iter().any(|s| s.child.phase == Phase::Removed) {
            self.slots.retain(|s| s.child.phase != Phase::Removed);
            self.reindex();
        }
        if let Some(r) = self.records.as_mut()
            && r.needs_compaction()
        {
            let live: Vec<records::Record> = self
                .slots
                .iter()
                .filter_map(|s| {
                    Some(records::Record {
                        pgid: s.guarded?,
                        start_time: s.start_time?,
                        name: s.child.spec.name.clone(),
                    })
                })
                .collect();
            if let Err(e) = r.maybe_compact(&live) {
                warn!(
                    "failed to compact {}: {e}",
                    self.vault.children_record().display()
                );
            }
        }
        let now = Instant::now();
        if self.summary_due.is_some_and(|t| t <= now) && !self.shutting_down {
            self.summary_due = None;
            let s = status::summarize(self.slots.iter().map(|s| &s.child));
            if self.last_summary.as_ref() != Some(&s) {
                self.dashboard
                    .send(status::system_row(s.status, s.details.clone()));
                let was_degraded = self
                    .last_summary
                    .as_ref()
                    .is_some_and(|l| l.status == status::DEGRADED);
                if s.status == status::DEGRADED && !was_degraded {
                    self.notify(NotifyEvent::SystemDegraded, None, &s.details);
                }
                self.last_summary = Some(s);
            }
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

    fn start_guardian(&mut self) {
        let groups: Vec<i32> = self.slots.iter().filter_map(|s| s.child.pgid()).collect();
        match Guardian::spawn(groups) {
            Ok(g) => {
                debug!("orphan guardian started (pid {})", g.pid());
                self.guardian = Some(g);
            }
            Err(e) => error!(
                "failed to start the orphan guardian: {e}; children may outlive a killed supervisor"
            ),
        }
    }

    // ----- shutdown -------------------------------------------------------------------------

    async fn finish(&mut self) {
        // Let the drain tasks copy the last output of dead children into their logs.
        let until = later(Instant::now(), DRAIN_LOGS_MAX);
        while self.drains.get() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Some(g) = self.guardian.take() {
            g.dismiss();
        }
        if let Some(r) = self.records.take() {
            r.discard();
        }
        let up = self.started.elapsed();
        let how = if self.forced {
            "forced shutdown"
        } else {
            "clean shutdown"
        };
        info!(
            "supervisor stopped ({how}); up {}, {} starts, {} restarts, {} crashes, {} health failures",
            format_elapsed(up),
            self.stats.starts,
            self.stats.restarts,
            self.stats.crashes,
            self.stats.health_failures
        );
        let offline = format!(
            "System Offline: supervisor stopped ({how}, up {}, {} restarts)",
            format_elapsed(up),
            self.stats.restarts
        );
        self.notify(NotifyEvent::SystemOffline, None, &offline);
        self.dashboard
            .send(status::system_row(status::OFFLINE, offline));
        self.dashboard.finish();
        if let Some(n) = self.notifier.take() {
            n.finish(NOTIFY_FLUSH_MAX);
        }
        let rows: Vec<super::report::console::StatRow> = self
            .slots
            .iter()
            .map(|s| super::report::console::StatRow {
                name: s.child.spec.name.clone(),
                restarts: s.child.restarts,
                last_exit: s.child.last_exit,
                state: state_word(&s.child.phase),
            })
            .collect();
        super::report::console::session_stats(up, self.stats.starts, self.stats.restarts, &rows);
    }
}

pub fn state_word(p: &Phase) -> &'static str {
    match p {
        Phase::Idle => "stopped",
        Phase::Starting => "starting",
        Phase::Running { .. } => "running",
        Phase::Backoff { .. } => "backoff",
        Phase::Stopping { .. } => "stopping",
        Phase::Exited { .. } => "exited",
        Phase::NeedsSetup { .. } => "needs-setup",
        Phase::Fatal { .. } => "fatal",
        Phase::Removed => "removed",
    }
}

async fn sleep_until(d: Option<Instant>) {
    match d {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
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
