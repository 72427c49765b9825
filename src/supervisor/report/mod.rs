//! What the supervisor tells people. The runtime hands the [`Reporter`] what happened (the
//! machine's notices, the system's children after a batch of events, a reload, a stop);
//! the reporter turns it into log lines (`Logs/system.log` and the console), Dashboard
//! rows (written on their own thread) and `[[notify]]` webhook events, and counts it for
//! the session statistics. The runtime formats none of these sentences itself; the
//! failures of its own machinery (a socket, a file) it reports where they happen.
//!
//! - [`phrase`]: the words for a fact told in several places, once per place.
//! - [`summary`]: the system's status (online / degraded) derived from the children.
//! - [`console`]: the banner and the session statistics.
//! - [`dashboard`], [`notify`]: the threads that write rows and send webhooks.

pub mod console;
pub mod dashboard;
pub mod notify;
pub mod phrase;
pub mod summary;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ai_employee_vault::Vault;
use ai_employee_vault::control::ReloadReport;
use ai_employee_vault::logs::LogFile;
use ai_employee_vault::units::{count, format_elapsed};
use nix::sys::signal::Signal;
use tracing::{debug, error, info, warn};

use crate::config::{ConfigErrors, NotifyEvent, NotifySpec};
use crate::process::ExitStatus;
use crate::supervisor::machine::{Child, Next, Notice, Restart};

use dashboard::DashboardWriter;
use notify::Notifier;
use phrase::{NeedsPerson, Place};
use summary::Summary;

/// How long an exit message waits for the log writer to say whether the child's log
/// can be written (a stalled disk gets the last state known instead).
const SEE_LOG_WAIT: Duration = Duration::from_millis(250);
/// How long shutdown waits for `[[notify]]` webhooks to take the last events.
const NOTIFY_FLUSH_MAX: Duration = Duration::from_secs(2);

/// What happened this session, for the last log line and the statistics.
#[derive(Default)]
struct Counts {
    starts: u64,
    /// The supervisor's own restarts; `manual` the operator's starts after the first.
    restarts: u64,
    manual: u64,
    crashes: u64,
    health_failures: u64,
}

/// The one voice of the supervisor (see the module's documentation).
pub struct Reporter {
    dashboard: DashboardWriter,
    webhooks: Option<Notifier>,
    /// The `[[notify]]` tables the webhooks were started from.
    webhook_specs: Vec<NotifySpec>,
    counts: Counts,
    /// The system status last written to the Dashboard.
    last_summary: Option<Summary>,
    /// Per child, the status and details of its last Dashboard row (forgotten once it
    /// runs stably again).
    child_rows: HashMap<String, (String, String)>,
}

impl Reporter {
    /// Start the Dashboard writer and the webhooks of `specs`.
    pub fn start(vault: &Vault, specs: &[NotifySpec]) -> Reporter {
        Reporter {
            dashboard: DashboardWriter::start(vault.dashboard()),
            webhooks: Some(Notifier::start(specs, vault.root())),
            webhook_specs: specs.to_vec(),
            counts: Counts::default(),
            last_summary: None,
            child_rows: HashMap::new(),
        }
    }

    /// A reload's `[[notify]]` tables: the webhooks start anew if they changed (events
    /// still queued for the old ones are dropped).
    pub fn set_webhooks(&mut self, specs: &[NotifySpec], vault: &Path) {
        if specs == self.webhook_specs {
            return;
        }
        if let Some(old) = self.webhooks.take() {
            old.finish(Duration::ZERO);
        }
        self.webhooks = Some(Notifier::start(specs, vault));
        self.webhook_specs = specs.to_vec();
    }

    /// Queue an event for the `[[notify]]` webhooks that want it.
    fn notify(&self, event: NotifyEvent, child: Option<&str>, details: &str) {
        if let Some(n) = &self.webhooks {
            n.send(event, child, details);
        }
    }

    /// An event a child sent over the control socket (one of [`phrase::RELAYED`]).
    pub fn relay(&self, event: NotifyEvent, details: &str) {
        match phrase::headline(event) {
            Some(h) => info!("event {}: {h}: {details}", event.as_str()),
            None => info!("event {}: {details}", event.as_str()),
        }
        self.notify(event, None, details);
    }

    /// The initial starts are done.
    pub fn started(&self, running: usize, enabled: usize) {
        console::started(running, enabled);
    }

    /// A notice of the machine about `child`, whose output goes to `log`. Returns, for an
    /// exit that needs setup while its log cannot be written, what `status` should say
    /// instead of `see Logs/NAME.log` (see [`phrase::status_reason`]).
    pub fn child(&mut self, child: &Child, log: &LogFile, notice: Notice) -> Option<String> {
        let name = child.name();
        let desc = child.spec().description.as_str();
        match notice {
            Notice::Started { pid, restart } => {
                self.counts.starts += 1;
                match restart {
                    Restart::First => info!(child = name, pid, "started {desc} (pid {pid})"),
                    Restart::Crash(n) => {
                        self.counts.restarts += 1;
                        info!(
                            child = name,
                            pid, "restarted {desc} (pid {pid}, restart #{n})"
                        );
                    }
                    Restart::Manual(n) => {
                        self.counts.manual += 1;
                        info!(
                            child = name,
                            pid, "started {desc} (pid {pid}, on request; manual start #{n})"
                        );
                    }
                }
            }
            Notice::SpawnFailed { reason, retry_in } => match retry_in {
                Some(d) => error!(child = name, "{reason}; retrying in {}", format_elapsed(d)),
                None => {
                    let fact = NeedsPerson::CannotStart { reason: &reason };
                    error!(child = name, "{}", fact.say(Place::Log));
                    self.needs_person(name, desc, &fact);
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
                        self.counts.crashes += 1;
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
                        let see = phrase::see(name, log.probe(SEE_LOG_WAIT));
                        let fact = NeedsPerson::Configuration { see: &see };
                        warn!(child = name, pid, "{}", fact.say(Place::Log));
                        self.needs_person(name, desc, &fact);
                        if log.failing().is_some() {
                            return Some(see);
                        }
                    }
                    Next::Fatal(gave_up) => {
                        let fact = NeedsPerson::GaveUp {
                            gave_up,
                            last: status,
                        };
                        error!(child = name, pid, "{}", fact.say(Place::Log));
                        self.needs_person(name, desc, &fact);
                    }
                    Next::Done => info!(
                        child = name,
                        pid,
                        "exited with {status} after {up}; restart = \"{}\": not restarted",
                        child.spec().restart.as_str()
                    ),
                    Next::Stopped => info!(child = name, pid, "exited with {status}"),
                }
            }
            Notice::Stable => {
                self.child_rows.remove(name);
                debug!(child = name, "stable: backoff reset");
            }
            Notice::Stopping {
                pid,
                signal,
                timeout,
            } => info!(
                child = name,
                pid,
                "stopping {desc} ({}, SIGKILL after {})",
                signal.as_str(),
                format_elapsed(timeout)
            ),
            Notice::StopTimedOut { pid } => warn!(
                child = name,
                "did not stop within {}; sending SIGKILL to its process group{}",
                format_elapsed(child.stop_timeout()),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
            Notice::Stopped => {
                let last = child
                    .last_exit()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                info!(child = name, "stopped {desc}{last}");
            }
            Notice::HealthFailed { pid, reason } => {
                self.counts.health_failures += 1;
                warn!(
                    child = name,
                    pid, "health check failed: {reason}; restarting"
                );
            }
            Notice::RestartCancelled => info!(child = name, "pending restart cancelled"),
        }
        None
    }

    /// A child that waits for a person gets a Dashboard row and a webhook event; the same
    /// row as the last one for that child is not written again (one row per change of
    /// state: `restart` then `start` of a child that needs setup is still the one fact).
    fn needs_person(&mut self, name: &str, desc: &str, fact: &NeedsPerson<'_>) {
        let row = summary::child_row(
            fact.row_status(),
            format!("{desc}: {}", fact.say(Place::Dashboard)),
        );
        let said = (row.status.clone(), row.details.clone());
        if self.child_rows.get(name) != Some(&said) {
            self.child_rows.insert(name.to_string(), said);
            self.dashboard.send(row);
        }
        self.notify(fact.event(), Some(name), &fact.say(Place::Webhook));
    }

    /// The system's status from its children: a Dashboard row when it changed, and a
    /// `system_degraded` event when it turned degraded.
    pub fn system<'a>(&mut self, children: impl Iterator<Item = &'a Child>) {
        let s = summary::summarize(children);
        if self.last_summary.as_ref() == Some(&s) {
            return;
        }
        self.dashboard
            .send(summary::system_row(s.status, s.details.clone()));
        if s.status == summary::ONLINE {
            // Every child is well: a later problem is a new change of state.
            self.child_rows.clear();
        }
        let was_degraded = self
            .last_summary
            .as_ref()
            .is_some_and(|l| l.status == summary::DEGRADED);
        if s.status == summary::DEGRADED && !was_degraded {
            self.notify(NotifyEvent::SystemDegraded, None, &s.details);
        }
        self.last_summary = Some(s);
    }

    /// The previous run ended without a clean stop: a log line and an Offline row for
    /// it, so the Dashboard does not go from its last "online" to this start as if
    /// nothing had happened.
    pub fn previous_run_unclean(&self, pid: Option<i32>, last_seen: std::time::SystemTime) {
        let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        let when = chrono::DateTime::<chrono::Local>::from(last_seen)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let fact = format!(
            "the previous run{who} ended without a clean stop (killed, or the machine went \
             down); last seen at {when}"
        );
        warn!("{fact}");
        self.dashboard.send(summary::system_row(
            summary::OFFLINE,
            format!("System Offline: {fact}"),
        ));
    }

    /// A stop signal before the event loop listened: nothing is started.
    pub fn stopped_early(&self) {
        info!("stop requested during start-up: not starting any child");
    }

    /// The first SIGINT / SIGTERM: every child is stopped.
    pub fn stopping(&self, signal: Signal) {
        use std::io::IsTerminal;
        // Only a person at a terminal can press Ctrl+C again (a SIGTERM from a service
        // manager, or SIGINT sent by a script, cannot).
        let again = if signal == Signal::SIGINT && std::io::stdin().is_terminal() {
            " (Ctrl+C again to kill them at once)"
        } else {
            ""
        };
        info!("received {}: stopping all children{again}", signal.as_str());
        console::stopping();
    }

    /// A second Ctrl+C: every child is killed.
    pub fn killing(&self) {
        warn!("second Ctrl+C: killing all children now");
    }

    /// The guardian (`pid`) ended with `status`; a new one is started unless we are
    /// stopping.
    pub fn guardian_ended(&self, pid: i32, status: ExitStatus) {
        warn!("orphan guardian (pid {pid}) ended with {status}; starting a new one");
    }

    /// A reload that applied `changes`.
    pub fn reloaded(&self, changes: &ReloadReport) {
        info!("reload: {}", changes.describe());
    }

    /// The table file was saved with a change: it is reloaded.
    pub fn table_changed(&self, path: &Path) {
        info!("{} changed: reloading", path.display());
    }

    /// A reload that found `errors` in the table, which is then not applied: each on
    /// the console and in the log, the first on the Dashboard.
    pub fn reload_failed(&self, errors: &ConfigErrors) {
        for e in &errors.0 {
            error!("reload failed: {e}");
        }
        error!("reload failed: keeping the current process table");
        let first = errors
            .0
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let more = match errors.0.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        self.dashboard.send(summary::table_row(format!(
            "Process table refused, the running one kept: {first}{more}"
        )));
    }

    /// The supervisor stops, after `up`: the last log line, the Offline row and event,
    /// the last rows and events out (waiting a little for them), and the session
    /// statistics on the console.
    pub fn shutdown<'a>(
        &mut self,
        forced: bool,
        up: Duration,
        children: impl Iterator<Item = &'a Child>,
    ) {
        let how = if forced {
            "forced shutdown"
        } else {
            "clean shutdown"
        };
        let c = &self.counts;
        info!(
            "supervisor stopped ({how}); up {}, {}, {}, {}, {}, {}",
            format_elapsed(up),
            count(c.starts, "start", "starts"),
            count(c.restarts, "restart", "restarts"),
            count(c.manual, "manual start", "manual starts"),
            count(c.crashes, "crash", "crashes"),
            count(c.health_failures, "health failure", "health failures")
        );
        let offline = format!(
            "System Offline: supervisor stopped ({how}, up {}, {})",
            format_elapsed(up),
            count(c.restarts, "restart", "restarts")
        );
        self.notify(NotifyEvent::SystemOffline, None, &offline);
        self.dashboard
            .send(summary::system_row(summary::OFFLINE, offline));
        self.dashboard.finish();
        if let Some(n) = self.webhooks.take() {
            n.finish(NOTIFY_FLUSH_MAX);
        }
        let rows: Vec<console::StatRow> = children
            .map(|c| console::StatRow {
                name: c.name().to_string(),
                restarts: c.restarts(),
                manual_restarts: c.manual_restarts(),
                last_exit: c.last_exit(),
                state: phrase::child_state(c),
            })
            .collect();
        console::session_stats(
            up,
            self.counts.starts,
            self.counts.restarts,
            self.counts.manual,
            &rows,
        );
    }
}
