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

use std::path::Path;
use std::time::Duration;

use ai_employee_vault::Vault;
use ai_employee_vault::control::ReloadReport;
use ai_employee_vault::logs::LogFile;
use ai_employee_vault::units::format_elapsed;
use nix::sys::signal::Signal;
use tracing::{debug, error, info, warn};

use crate::config::{ConfigErrors, NotifyEvent, NotifySpec};
use crate::process::ExitStatus;
use crate::supervisor::machine::{Child, Next, Notice};

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
    restarts: u64,
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
                if restart == 0 {
                    info!(child = name, pid, "started {desc} (pid {pid})");
                } else {
                    self.counts.restarts += 1;
                    info!(
                        child = name,
                        pid, "restarted {desc} (pid {pid}, restart #{restart})"
                    );
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
            Notice::Stable => debug!(child = name, "stable: backoff reset"),
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

    /// A child that waits for a person gets a Dashboard row and a webhook event.
    fn needs_person(&self, name: &str, desc: &str, fact: &NeedsPerson<'_>) {
        self.dashboard.send(summary::child_row(
            fact.row_status(),
            format!("{desc}: {}", fact.say(Place::Dashboard)),
        ));
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
        let was_degraded = self
            .last_summary
            .as_ref()
            .is_some_and(|l| l.status == summary::DEGRADED);
        if s.status == summary::DEGRADED && !was_degraded {
            self.notify(NotifyEvent::SystemDegraded, None, &s.details);
        }
        self.last_summary = Some(s);
    }

    /// A stop signal before the event loop listened: nothing is started.
    pub fn stopped_early(&self) {
        info!("stop requested during start-up: not starting any child");
    }

    /// The first SIGINT / SIGTERM: every child is stopped.
    pub fn stopping(&self, signal: Signal) {
        info!(
            "received {}: stopping all children (Ctrl+C again to kill them at once)",
            signal.as_str()
        );
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

    /// A reload that found `errors` in the table, which is then not applied.
    pub fn reload_failed(&self, errors: &ConfigErrors) {
        for e in &errors.0 {
            error!("reload failed: {e}");
        }
        error!("reload failed: keeping the current process table");
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
            "supervisor stopped ({how}); up {}, {} starts, {} restarts, {} crashes, {} health failures",
            format_elapsed(up),
            c.starts,
            c.restarts,
            c.crashes,
            c.health_failures
        );
        let offline = format!(
            "System Offline: supervisor stopped ({how}, up {}, {} restarts)",
            format_elapsed(up),
            c.restarts
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
                last_exit: c.last_exit(),
                state: phrase::state_word(c.phase()),
            })
            .collect();
        console::session_stats(up, self.counts.starts, self.counts.restarts, &rows);
    }
}
