//! What the operator asks over the control socket (and the metrics endpoint): status
//! reports, start / stop / restart of one child, reload, and events for `[[notify]]`.

use std::time::{Duration, Instant};

use ai_employee_vault::control::{
    ChildStatus, Health, LastExit, Request, Response, StatusReport, SupervisorInfo,
};
use tracing::info;

use super::{Event, Runtime, Then};
use crate::config::NotifyEvent;
use crate::process::{self, ExitStatus};
use crate::supervisor::machine::Phase;
use crate::supervisor::report::phrase::{
    RELAYED, child_state, headline, state_word, status_reason,
};
use crate::supervisor::report::summary;

/// CPU % is measured over at least this long (a shorter gap repeats the last figure).
const CPU_SAMPLE_MIN: Duration = Duration::from_millis(500);

/// A CPU reading of a child, for CPU %.
#[derive(Clone, Copy)]
pub(super) struct CpuSample {
    pid: i32,
    at: Instant,
    cpu_ns: u64,
    /// CPU % over the interval that ended at `at`.
    percent: Option<f64>,
}

impl Runtime {
    pub(super) fn on_control(&mut self, request: Request) -> Response {
        match request {
            Request::Status => Response {
                ok: true,
                status: Some(self.status_report()),
                ..Response::default()
            },
            Request::Start { name } => self.with_child(&name, |rt, i| rt.start_child(i)),
            Request::Stop { name } => self.with_child(&name, |rt, i| rt.stop_child(i)),
            Request::Restart { name } => self.with_child(&name, |rt, i| rt.restart_child(i)),
            Request::Reload => match self.reload() {
                Ok(report) => Response {
                    ok: true,
                    message: Some(format!("reloaded: {}", report.describe())),
                    reload: Some(report),
                    ..Response::default()
                },
                Err(e) => Response::error(format!(
                    "the process table has errors; the running table is kept:\n{e}"
                )),
            },
            Request::Event { event, details } => match NotifyEvent::parse(&event) {
                Some(e) if headline(e).is_some() => {
                    self.reporter.relay(e, &details);
                    Response::ok("noted")
                }
                _ => {
                    let names: Vec<&str> = RELAYED.iter().map(|(e, _)| e.as_str()).collect();
                    Response::error(format!(
                        "unknown event {event:?} (children may send: {})",
                        names.join(", ")
                    ))
                }
            },
        }
    }

    fn with_child(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Runtime, usize) -> Response,
    ) -> Response {
        if self.shutting_down {
            return Response::error("the supervisor is shutting down");
        }
        match self.slots.iter().position(|s| s.child.name() == name) {
            Some(i) => {
                let r = f(self, i);
                self.after_batch();
                r
            }
            None => {
                let known: Vec<&str> = self.slots.iter().map(|s| s.child.name()).collect();
                Response::error(format!(
                    "no process named {name:?} (known: {})",
                    known.join(", ")
                ))
            }
        }
    }

    fn start_child(&mut self, i: usize) -> Response {
        let name = self.slots[i].child.name().to_string();
        match *self.slots[i].child.phase() {
            Phase::Running { pid, .. } => {
                return Response::ok(format!("{name} is already running (pid {pid})"));
            }
            Phase::Stopping { .. } | Phase::Starting | Phase::Removed => {
                return Response::error(format!(
                    "{name} is {}; try again in a moment",
                    state_word(self.slots[i].child.phase())
                ));
            }
            _ => {}
        }
        info!(
            child = name.as_str(),
            "start requested over the control socket"
        );
        // A start begins a new crash series, whatever the child was at rest with.
        self.dispatch(i, Event::Start);
        self.started_response(i)
    }

    fn stop_child(&mut self, i: usize) -> Response {
        let name = self.slots[i].child.name().to_string();
        let c = &self.slots[i].child;
        if c.is_at_rest() {
            return Response::ok(format!("{name} is not running ({})", self.state_of(i)));
        }
        let pid = c.pid();
        info!(
            child = name.as_str(),
            "stop requested over the control socket"
        );
        self.dispatch(i, Event::Stop(Then::Rest));
        Response::ok(match pid {
            Some(p) => format!("stopping {name} (pid {p})"),
            None => format!("stopped {name}"),
        })
    }

    fn restart_child(&mut self, i: usize) -> Response {
        let name = self.slots[i].child.name().to_string();
        match *self.slots[i].child.phase() {
            Phase::Running { pid, .. } => {
                info!(
                    child = name.as_str(),
                    "restart requested over the control socket"
                );
                self.dispatch(i, Event::Stop(Then::Restart));
                Response::ok(format!("restarting {name} (was pid {pid})"))
            }
            _ => self.start_child(i),
        }
    }

    fn started_response(&self, i: usize) -> Response {
        let slot = &self.slots[i];
        let c = &slot.child;
        match c.phase() {
            Phase::Running { pid, .. } => Response::ok(format!("started {} (pid {pid})", c.name())),
            Phase::NeedsSetup { .. } => Response::error(format!(
                "{} needs setup: {}",
                c.name(),
                status_reason(c, slot.setup_see.as_deref()).unwrap_or_default()
            )),
            other => Response::ok(format!("{} is {}", c.name(), state_word(other))),
        }
    }

    /// The word `status` shows: the machine's phase, plus `disabled` for an entry the
    /// table turns off.
    fn state_of(&self, i: usize) -> &'static str {
        child_state(&self.slots[i].child)
    }

    pub(super) fn status_report(&mut self) -> StatusReport {
        let now = Instant::now();
        let mut children = Vec::with_capacity(self.slots.len());
        for i in 0..self.slots.len() {
            let state = self.state_of(i).to_string();
            let slot = &mut self.slots[i];
            let c = &slot.child;
            let (pid, uptime) = match *c.phase() {
                Phase::Running { pid, since } => (Some(pid), Some(now - since)),
                _ => (c.pid(), None),
            };
            let info = pid.and_then(process::stats::proc_info);
            let cpu_percent = match (pid, info) {
                (Some(pid), Some(info)) => {
                    cpu_percent(&mut slot.cpu, pid, info.cpu_ns, now, uptime)
                }
                _ => None,
            };
            let c = &slot.child;
            children.push(ChildStatus {
                name: c.name().to_string(),
                description: c.spec().description.clone(),
                state,
                enabled: c.spec().enabled,
                pid,
                uptime_secs: uptime.map(|d| d.as_secs_f64()),
                restarts: c.restarts(),
                manual_restarts: c.manual_restarts(),
                last_exit: c.last_exit().map(last_exit),
                rss_bytes: info.map(|p| p.rss),
                cpu_percent,
                cpu_seconds: info.map(|p| p.cpu_ns as f64 / 1e9),
                backoff_left_secs: match *c.phase() {
                    Phase::Backoff { until } => {
                        Some(until.saturating_duration_since(now).as_secs_f64())
                    }
                    _ => None,
                },
                reason: status_reason(c, slot.setup_see.as_deref()),
            });
        }
        let summary = summary::summarize(self.slots.iter().map(|s| &s.child));
        StatusReport {
            protocol: ai_employee_vault::control::PROTOCOL_VERSION,
            health: match summary.status {
                summary::ONLINE => Health::Healthy,
                summary::NEEDS_SETUP => Health::NeedsSetup,
                _ => Health::Degraded,
            },
            supervisor: SupervisorInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: self
                    .started_wall
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                uptime_secs: now.duration_since(self.started).as_secs_f64(),
                vault: self.vault.root().display().to_string(),
                table: self.table_source.clone(),
            },
            children,
        }
    }

    /// Remember a CPU reading taken elsewhere (the health poll), so `status` measures
    /// CPU % over the time since.
    pub(super) fn note_cpu(&mut self, i: usize, pid: i32, cpu_ns: u64, now: Instant) {
        let uptime = match *self.slots[i].child.phase() {
            Phase::Running { since, .. } => Some(now - since),
            _ => None,
        };
        // Only the new sample matters here; `status` reads the figure.
        let _ = cpu_percent(&mut self.slots[i].cpu, pid, cpu_ns, now, uptime);
    }
}

/// CPU % of one CPU since the previous sample of the same process, and the new sample.
/// Samples closer than [`CPU_SAMPLE_MIN`] repeat the last figure; the first sample of a
/// process gives its average since it started.
fn cpu_percent(
    sample: &mut Option<CpuSample>,
    pid: i32,
    cpu_ns: u64,
    now: Instant,
    uptime: Option<Duration>,
) -> Option<f64> {
    let pct = |ns: u64, d: Duration| {
        let secs = d.as_secs_f64();
        (secs > 0.0).then(|| ns as f64 / 1e9 / secs * 100.0)
    };
    match *sample {
        Some(s) if s.pid == pid && now.saturating_duration_since(s.at) < CPU_SAMPLE_MIN => {
            s.percent.or_else(|| uptime.and_then(|u| pct(cpu_ns, u)))
        }
        Some(s) if s.pid == pid => {
            let p = pct(cpu_ns.saturating_sub(s.cpu_ns), now - s.at);
            *sample = Some(CpuSample {
                pid,
                at: now,
                cpu_ns,
                percent: p,
            });
            p
        }
        _ => {
            let p = uptime.and_then(|u| pct(cpu_ns, u));
            *sample = Some(CpuSample {
                pid,
                at: now,
                cpu_ns,
                percent: p,
            });
            p
        }
    }
}

/// A child's last exit as the status report shows it.
fn last_exit(s: ExitStatus) -> LastExit {
    match s {
        ExitStatus::Code(c) => LastExit {
            code: Some(c),
            signal: None,
        },
        ExitStatus::Signal(sig) => LastExit {
            code: None,
            signal: Some(process::signal_name(sig)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_over_the_time_between_samples() {
        let t0 = Instant::now();
        let mut s = None;
        // First sight: average since start (1 s of CPU in 4 s up).
        let p = cpu_percent(&mut s, 7, 1_000_000_000, t0, Some(Duration::from_secs(4)));
        assert_eq!(p, Some(25.0));
        // 2 s later, 1 s more CPU: 50 %.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(cpu_percent(&mut s, 7, 2_000_000_000, t1, None), Some(50.0));
        // Too soon after: the same figure, sample kept.
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(cpu_percent(&mut s, 7, 2_100_000_000, t2, None), Some(50.0));
        // Another process: start over.
        let p = cpu_percent(&mut s, 8, 0, t2, Some(Duration::from_secs(1)));
        assert_eq!(p, Some(0.0));
    }
}
