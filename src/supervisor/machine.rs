//! The per-child state machine: `on_event(event, now) -> Vec<Action>`. Pure: no tokio,
//! no syscalls, no clock of its own. The runtime feeds it OS events and carries out the
//! actions it returns, so every decision is testable with plain unit tests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ai_employee_vault::exit_codes;
use nix::sys::signal::Signal;

use super::backoff;
use crate::config::ProcessSpec;
use crate::process::ExitStatus;

/// Shortest wait before retrying a spawn that failed for a passing reason.
pub const SPAWN_RETRY_MIN: Duration = Duration::from_secs(1);

/// How far ahead a deadline may lie: far beyond any value the table accepts
/// ([`ai_employee_vault::units::MAX_DURATION`]), and well inside what the monotonic clock can
/// represent on every platform.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `t + d`, saturating: never panics, whatever `d` is. A deadline that would overflow the
/// clock lies [`FAR_FUTURE`] ahead instead (for practical purposes, never).
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR_FUTURE))
        .or_else(|| t.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(t)
}

/// What happens once a stop has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Stay stopped (user request, disabled, shutdown).
    Rest,
    /// Start again at once (the definition changed, or a manual restart).
    Restart,
    /// Start again through the crash backoff (a failed health check).
    CrashRestart,
    /// The entry left the table: forget it.
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not running and not scheduled: never started, stopped, or disabled.
    Idle,
    /// A spawn was requested; the runtime answers with Spawned or SpawnFailed.
    Starting,
    Running {
        pid: i32,
        since: Instant,
    },
    /// Waiting to restart.
    Backoff {
        until: Instant,
    },
    /// Stop signal sent. `pid` is None once the leader is reaped but the group lives on.
    Stopping {
        pid: Option<i32>,
        pgid: i32,
        kill_at: Instant,
        killed: bool,
        then: Then,
    },
    /// Ended and, by its restart policy, not restarted.
    Exited {
        status: ExitStatus,
    },
    /// Exited 78 or cannot be spawned: the user has to fix something. Not restarted.
    NeedsSetup {
        cause: Setup,
    },
    /// Gave up: `max_restarts` within `restart_window`.
    Fatal {
        gave_up: GaveUp,
    },
    /// Stopped after leaving the table; the runtime drops it.
    Removed,
}

/// Why a child waits for a person (the reporter says it in words).
#[derive(Debug, Clone, PartialEq)]
pub enum Setup {
    /// It exited with [`exit_codes::CONFIG`]: its own output says what is missing.
    ExitedConfig,
    /// It cannot be started (no such program, not executable, no such folder): the
    /// spawn error.
    CannotStart(String),
}

/// Why the supervisor stopped restarting a child: `restarts` restarts (`max_restarts`)
/// within `window` (`restart_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    pub restarts: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start it (initial start, enabled by a reload, manual start).
    Start,
    Spawned {
        pid: i32,
    },
    SpawnFailed {
        reason: String,
        setup: bool,
    },
    /// The leader was reaped. `group_alive`: other members of its group remain.
    Exited {
        pid: i32,
        status: ExitStatus,
        group_alive: bool,
    },
    /// The group of a stopping child has no members left.
    GroupGone,
    /// A deadline passed (backoff over, stop timeout, stable).
    Tick,
    Stop(Then),
    HealthFailed {
        reason: String,
    },
    /// Second Ctrl+C: SIGKILL now.
    Kill,
}

/// Which start a spawn was, counted apart: the supervisor's own restarts after a crash or
/// a failed health check, and the operator's (`start`, `restart`, a reload that changed
/// the definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// The first start this session.
    First,
    /// The n-th restart by the supervisor.
    Crash(u32),
    /// The n-th start asked for by the operator.
    Manual(u32),
}

/// Something worth a log line, a console line or a Dashboard row.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Started {
        pid: i32,
        restart: Restart,
    },
    SpawnFailed {
        reason: String,
        retry_in: Option<Duration>,
    },
    Exited {
        pid: i32,
        status: ExitStatus,
        next: Next,
        uptime: Duration,
    },
    /// Ran long enough: the crash series is over, backoff starts from the beginning.
    Stable,
    Stopping {
        pid: i32,
        signal: Signal,
        timeout: Duration,
    },
    StopTimedOut {
        pid: Option<i32>,
    },
    Stopped,
    HealthFailed {
        pid: i32,
        reason: String,
    },
    RestartCancelled,
}

/// What follows an exit.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Restart(Duration),
    NeedsSetup,
    Fatal(GaveUp),
    Done,
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Action {
    /// Spawn the child now; answer with Spawned / SpawnFailed.
    Spawn,
    /// Send a signal to a process group.
    Signal {
        pgid: i32,
        sig: Signal,
    },
    Notice(Notice),
}

/// One supervised entry. Its state changes only through [`Child::on_event`] (and a new
/// definition from a reload, [`Child::redefine`]); the rest of the supervisor reads it.
#[derive(Debug, Clone)]
pub struct Child {
    spec: ProcessSpec,
    /// `stop_timeout` in force (the entry's own, else the supervisor's).
    stop_timeout: Duration,
    phase: Phase,
    /// Consecutive failed runs; drives the backoff, reset after `reset_after` up.
    attempt: u32,
    /// Restarts by the supervisor in its lifetime (after a crash or failed health check).
    restarts: u32,
    /// Starts asked for by the operator after the first (`start`, `restart`, a reload).
    manual_restarts: u32,
    /// Whether the spawn under way was asked for by the operator.
    manual_start: bool,
    last_exit: Option<ExitStatus>,
    /// When the current crash series ends if the child stays up.
    stable_at: Option<Instant>,
    /// Restart times inside `restart_window`, for `max_restarts`.
    recent: VecDeque<Instant>,
    /// Whether it has ever been spawned (the first spawn is not a restart).
    spawned_once: bool,
}

impl Child {
    pub fn new(spec: ProcessSpec, stop_timeout: Duration) -> Self {
        Child {
            spec,
            stop_timeout,
            phase: Phase::Idle,
            attempt: 0,
            restarts: 0,
            manual_restarts: 0,
            manual_start: false,
            last_exit: None,
            stable_at: None,
            recent: VecDeque::new(),
            spawned_once: false,
        }
    }

    /// Its definition in the table.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// `stop_timeout` in force (the entry's own, else the supervisor's).
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
    }

    /// Restarts by the supervisor in its lifetime (after crashes and failed health
    /// checks; the first start and the operator's starts are not counted).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Starts by the operator after the first (`start`, `restart`, a reload's change).
    pub fn manual_restarts(&self) -> u32 {
        self.manual_restarts
    }

    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    /// A reload's definition of the same entry. It takes effect from the next event: a
    /// running child keeps running until the runtime stops or restarts it.
    pub fn redefine(&mut self, spec: ProcessSpec, stop_timeout: Duration) {
        self.spec = spec;
        self.stop_timeout = stop_timeout;
    }

    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            Phase::Stopping { pid, .. } => pid,
            _ => None,
        }
    }

    /// The process group that may still have members.
    pub fn pgid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            Phase::Stopping { pgid, .. } => Some(pgid),
            _ => None,
        }
    }

    /// Up and past any crash series.
    pub fn is_healthy(&self) -> bool {
        matches!(self.phase, Phase::Running { .. }) && self.attempt == 0
    }

    /// Nothing running and nothing scheduled.
    pub fn is_at_rest(&self) -> bool {
        matches!(
            self.phase,
            Phase::Idle
                | Phase::Exited { .. }
                | Phase::NeedsSetup { .. }
                | Phase::Fatal { .. }
                | Phase::Removed
        )
    }

    /// The next instant at which a [`Event::Tick`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Backoff { until } => Some(until),
            Phase::Running { .. } => self.stable_at,
            Phase::Stopping {
                kill_at,
                killed: false,
                ..
            } => Some(kill_at),
            _ => None,
        }
    }

    /// Whether the runtime should poll the group of a stopping child for emptiness.
    pub fn is_draining(&self) -> bool {
        matches!(self.phase, Phase::Stopping { pid: None, .. })
    }

    #[must_use = "the actions must be carried out"]
    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => match self.phase {
                Phase::Running { .. } | Phase::Starting | Phase::Stopping { .. } => {}
                _ => {
                    self.attempt = 0;
                    self.stable_at = None;
                    self.recent.clear();
                    self.spawn(self.spawned_once, &mut out);
                }
            },
            Event::Spawned { pid } => {
                let restart = if !self.spawned_once {
                    Restart::First
                } else if self.manual_start {
                    self.manual_restarts += 1;
                    Restart::Manual(self.manual_restarts)
                } else {
                    self.restarts += 1;
                    Restart::Crash(self.restarts)
                };
                self.spawned_once = true;
                self.phase = Phase::Running { pid, since: now };
                self.stable_at =
                    (self.attempt > 0).then(|| later(now, self.spec.backoff.reset_after));
                out.push(Action::Notice(Notice::Started { pid, restart }));
            }
            Event::SpawnFailed { reason, setup } => {
                if setup {
                    self.phase = Phase::NeedsSetup {
                        cause: Setup::CannotStart(reason.clone()),
                    };
                    out.push(Action::Notice(Notice::SpawnFailed {
                        reason,
                        retry_in: None,
                    }));
                } else {
                    // Never a tight loop on a failing spawn (out of descriptors, say).
                    let next = self.after_failure(now, SPAWN_RETRY_MIN, &mut out);
                    let retry_in = match next {
                        Next::Restart(d) => Some(d),
                        _ => None,
                    };
                    out.push(Action::Notice(Notice::SpawnFailed { reason, retry_in }));
                }
            }
            Event::Exited {
                pid,
                status,
                group_alive,
            } => match self.phase.clone() {
                Phase::Running {
                    pid: running,
                    since,
                } if running == pid => {
                    self.last_exit = Some(status);
                    if group_alive {
                        // The service is over; whatever it left in its group goes too.
                        out.push(Action::Signal {
                            pgid: pid,
                            sig: Signal::SIGKILL,
                        });
                    }
                    let uptime = now.saturating_duration_since(since);
                    let next = self.after_exit(status, uptime, now, &mut out);
                    out.insert(
                        0,
                        Action::Notice(Notice::Exited {
                            pid,
                            status,
                            next,
                            uptime,
                        }),
                    );
                }
                Phase::Stopping {
                    pid: Some(p),
                    pgid,
                    kill_at,
                    killed,
                    then,
                } if p == pid => {
                    self.last_exit = Some(status);
                    if group_alive {
                        self.phase = Phase::Stopping {
                            pid: None,
                            pgid,
                            kill_at,
                            killed,
                            then,
                        };
                    } else {
                        self.finish_stop(then, now, &mut out);
                    }
                }
                _ => {}
            },
            Event::GroupGone => {
                if let Phase::Stopping {
                    pid: None, then, ..
                } = self.phase
                {
                    self.finish_stop(then, now, &mut out);
                }
            }
            Event::Tick => match self.phase {
                Phase::Backoff { until } if until <= now => self.spawn(false, &mut out),
                Phase::Running { .. } if self.stable_at.is_some_and(|t| t <= now) => {
                    self.stable_at = None;
                    self.attempt = 0;
                    out.push(Action::Notice(Notice::Stable));
                }
                Phase::Stopping {
                    pid,
                    pgid,
                    kill_at,
                    killed: false,
                    ..
                } if kill_at <= now => {
                    out.push(Action::Notice(Notice::StopTimedOut { pid }));
                    out.push(Action::Signal {
                        pgid,
                        sig: Signal::SIGKILL,
                    });
                    self.mark_killed();
                }
                _ => {}
            },
            Event::Stop(then) => self.stop(then, now, &mut out),
            Event::HealthFailed { reason } => {
                if let Phase::Running { pid, .. } = self.phase {
                    out.push(Action::Notice(Notice::HealthFailed { pid, reason }));
                    self.stop(Then::CrashRestart, now, &mut out);
                }
            }
            Event::Kill => {
                if let Some(pgid) = self.pgid() {
                    out.push(Action::Signal {
                        pgid,
                        sig: Signal::SIGKILL,
                    });
                }
                self.mark_killed();
            }
        }
        out
    }

    /// A stopping child's group was sent SIGKILL: its stop timeout is over.
    fn mark_killed(&mut self) {
        if let Phase::Stopping { killed, .. } = &mut self.phase {
            *killed = true;
        }
    }

    /// Ask the runtime for a spawn; `manual`: the operator asked for it.
    fn spawn(&mut self, manual: bool, out: &mut Vec<Action>) {
        self.phase = Phase::Starting;
        self.manual_start = manual;
        out.push(Action::Spawn);
    }

    fn stop(&mut self, then: Then, now: Instant, out: &mut Vec<Action>) {
        match self.phase.clone() {
            Phase::Running { pid, .. } => {
                let sig = self.spec.stop_signal.signal();
                out.push(Action::Notice(Notice::Stopping {
                    pid,
                    signal: sig,
                    timeout: self.stop_timeout,
                }));
                out.push(Action::Signal { pgid: pid, sig });
                // A stopped (SIGSTOP) process acts on the signal only once continued.
                out.push(Action::Signal {
                    pgid: pid,
                    sig: Signal::SIGCONT,
                });
                self.phase = Phase::Stopping {
                    pid: Some(pid),
                    pgid: pid,
                    kill_at: later(now, self.stop_timeout),
                    killed: false,
                    then,
                };
                self.stable_at = None;
            }
            Phase::Stopping {
                pid,
                pgid,
                kill_at,
                killed,
                then: old,
            } => {
                // Already stopping: a later, stronger intent wins (shutdown beats restart).
                let then = match (old, then) {
                    (Then::Remove, _) | (_, Then::Remove) => Then::Remove,
                    (_, Then::Rest) => Then::Rest,
                    (o, _) => o,
                };
                self.phase = Phase::Stopping {
                    pid,
                    pgid,
                    kill_at,
                    killed,
                    then,
                };
            }
            Phase::Backoff { .. } | Phase::Starting => {
                out.push(Action::Notice(Notice::RestartCancelled));
                self.finish_stop(then, now, out);
            }
            _ => self.finish_stop(then, now, out),
        }
    }

    fn finish_stop(&mut self, then: Then, now: Instant, out: &mut Vec<Action>) {
        match then {
            Then::Rest => {
                let was_running = !self.is_at_rest();
                self.phase = Phase::Idle;
                if was_running {
                    out.push(Action::Notice(Notice::Stopped));
                }
            }
            Then::Remove => {
                self.phase = Phase::Removed;
                out.push(Action::Notice(Notice::Stopped));
            }
            Then::Restart => {
                self.attempt = 0;
                self.stable_at = None;
                self.spawn(self.spawned_once, out);
            }
            Then::CrashRestart => {
                // What follows was told with the health failure that caused the stop.
                let _ = self.after_failure(now, Duration::ZERO, out);
            }
        }
    }

    /// Decide what follows an exit of a running child.
    fn after_exit(
        &mut self,
        status: ExitStatus,
        uptime: Duration,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Next {
        use crate::config::RestartPolicy;
        if status == ExitStatus::Code(exit_codes::CONFIG) {
            self.phase = Phase::NeedsSetup {
                cause: Setup::ExitedConfig,
            };
            return Next::NeedsSetup;
        }
        let restart = match self.spec.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !status.success(),
            RestartPolicy::Never => false,
        };
        if !restart {
            self.phase = Phase::Exited { status };
            return Next::Done;
        }
        if uptime >= self.spec.backoff.reset_after {
            self.attempt = 0;
        }
        self.after_failure(now, Duration::ZERO, out)
    }

    /// Schedule a restart through the backoff, or give up.
    fn after_failure(&mut self, now: Instant, min_delay: Duration, out: &mut Vec<Action>) -> Next {
        self.stable_at = None;
        if let Some(max) = self.spec.max_restarts {
            let window = self.spec.restart_window;
            while self
                .recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= max as usize {
                let gave_up = GaveUp {
                    restarts: max,
                    window,
                };
                self.phase = Phase::Fatal { gave_up };
                return Next::Fatal(gave_up);
            }
            self.recent.push_back(now);
        }
        self.attempt = self.attempt.saturating_add(1);
        let d = backoff::delay(&self.spec.backoff, self.attempt).max(min_delay);
        if d.is_zero() {
            self.spawn(false, out);
        } else {
            self.phase = Phase::Backoff {
                until: later(now, d),
            };
        }
        Next::Restart(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackoffSpec, RestartPolicy};

    fn child() -> Child {
        Child::new(
            ProcessSpec::new("w", "/bin/true", &[]),
            Duration::from_secs(10),
        )
    }

    /// A child restarted at once after its first crashes (no backoff delay).
    fn child_without_backoff() -> Child {
        let mut c = child();
        c.spec.backoff = BackoffSpec {
            initial: Duration::ZERO,
            ..BackoffSpec::default()
        };
        c
    }

    /// `c` given up on after `max` restarts within a minute.
    fn at_most(max: u32, mut c: Child) -> Child {
        c.spec.max_restarts = Some(max);
        c.spec.restart_window = Duration::from_secs(60);
        c
    }

    /// Feed an event whose actions the test does not look at (it looks at the state).
    fn feed(c: &mut Child, event: Event, now: Instant) {
        // The actions are not carried out: the state is under test.
        let _ = c.on_event(event, now);
    }

    fn start(c: &mut Child, pid: i32, now: Instant) {
        assert_eq!(c.on_event(Event::Start, now), vec![Action::Spawn]);
        feed(c, Event::Spawned { pid }, now);
    }

    /// The leader `pid` was reaped with `status`.
    fn exit(c: &mut Child, pid: i32, status: ExitStatus, now: Instant) -> Vec<Action> {
        c.on_event(
            Event::Exited {
                pid,
                status,
                group_alive: false,
            },
            now,
        )
    }

    fn crash(c: &mut Child, pid: i32, now: Instant) -> Vec<Action> {
        exit(c, pid, ExitStatus::Code(1), now)
    }

    /// The `Started` notice of a spawn.
    fn started(c: &mut Child, pid: i32, now: Instant) -> Restart {
        match c.on_event(Event::Spawned { pid }, now).as_slice() {
            [Action::Notice(Notice::Started { restart, .. })] => *restart,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_supervisors_restarts_and_the_operators_starts_are_counted_apart() {
        let t0 = Instant::now();
        let mut c = child();
        c.spec.backoff.initial = Duration::ZERO;
        assert_eq!(c.on_event(Event::Start, t0), vec![Action::Spawn]);
        assert_eq!(started(&mut c, 10, t0), Restart::First);
        // A crash: restarted at once by the supervisor.
        let _ = crash(&mut c, 10, t0);
        assert_eq!(started(&mut c, 11, t0), Restart::Crash(1));
        // The operator's restart: stop, then start at once.
        feed(&mut c, Event::Stop(Then::Restart), t0);
        feed(
            &mut c,
            Event::Exited {
                pid: 11,
                status: ExitStatus::Signal(15),
                group_alive: false,
            },
            t0,
        );
        assert_eq!(started(&mut c, 12, t0), Restart::Manual(1));
        // Stop, then the operator's start.
        feed(&mut c, Event::Stop(Then::Rest), t0);
        feed(
            &mut c,
            Event::Exited {
                pid: 12,
                status: ExitStatus::Signal(15),
                group_alive: false,
            },
            t0,
        );
        assert_eq!(c.on_event(Event::Start, t0), vec![Action::Spawn]);
        assert_eq!(started(&mut c, 13, t0), Restart::Manual(2));
        let _ = crash(&mut c, 13, t0);
        assert_eq!(started(&mut c, 14, t0), Restart::Crash(2));
        assert_eq!((c.restarts(), c.manual_restarts()), (2, 2));
    }

    #[test]
    fn crash_series_follows_backoff_and_resets_after_stable_run() {
        let t0 = Instant::now();
        let mut c = child();
        start(&mut c, 10, t0);
        let mut now = t0 + Duration::from_secs(1);
        let mut delays = Vec::new();
        for pid in 11..18 {
            crash(&mut c, pid - 1, now);
            let Phase::Backoff { until } = c.phase else {
                panic!("not in backoff: {:?}", c.phase)
            };
            delays.push((until - now).as_secs());
            now = until;
            assert_eq!(c.on_event(Event::Tick, now), vec![Action::Spawn]);
            feed(&mut c, Event::Spawned { pid }, now);
        }
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60]);
        assert!(!c.is_healthy());
        // Stays up for reset_after: the series ends.
        now += Duration::from_secs(300);
        assert_eq!(c.deadline(), Some(now));
        assert_eq!(
            c.on_event(Event::Tick, now),
            vec![Action::Notice(Notice::Stable)]
        );
        assert!(c.is_healthy());
        crash(&mut c, 17, now + Duration::from_secs(1));
        assert!(
            matches!(c.phase, Phase::Backoff { until } if until == now + Duration::from_secs(3))
        );
        assert_eq!(c.restarts, 7);
    }

    #[test]
    fn exit_78_needs_setup_and_is_not_restarted() {
        let t0 = Instant::now();
        let mut c = child();
        start(&mut c, 10, t0);
        let a = exit(&mut c, 10, ExitStatus::Code(78), t0);
        assert!(matches!(c.phase, Phase::NeedsSetup { .. }));
        assert!(!a.contains(&Action::Spawn));
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn policies() {
        let t0 = Instant::now();
        for (policy, status, restarts) in [
            (RestartPolicy::Never, ExitStatus::Code(1), false),
            (RestartPolicy::OnFailure, ExitStatus::Code(0), false),
            (RestartPolicy::OnFailure, ExitStatus::Signal(9), true),
            (RestartPolicy::Always, ExitStatus::Code(0), true),
        ] {
            let mut c = child();
            c.spec.restart = policy;
            start(&mut c, 10, t0);
            exit(&mut c, 10, status, t0);
            assert_eq!(
                matches!(c.phase, Phase::Backoff { .. }),
                restarts,
                "{policy:?} {status}"
            );
        }
    }

    #[test]
    fn zero_backoff_spawns_in_the_same_step() {
        let t0 = Instant::now();
        let mut c = child_without_backoff();
        start(&mut c, 10, t0);
        let a = crash(&mut c, 10, t0);
        assert!(a.contains(&Action::Spawn));
        assert_eq!(c.phase, Phase::Starting);
    }

    #[test]
    fn max_restarts_in_window_gives_up() {
        let t0 = Instant::now();
        let mut c = at_most(3, child_without_backoff());
        start(&mut c, 10, t0);
        for i in 0..3 {
            crash(&mut c, 10 + i, t0);
            feed(&mut c, Event::Spawned { pid: 11 + i }, t0);
        }
        crash(&mut c, 13, t0);
        assert!(matches!(c.phase, Phase::Fatal { .. }), "{:?}", c.phase);
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let t0 = Instant::now();
        let mut c = child();
        start(&mut c, 10, t0);
        crash(&mut c, 10, t0);
        let a = c.on_event(Event::Stop(Then::Rest), t0);
        assert!(!a.contains(&Action::Spawn));
        assert_eq!(c.phase, Phase::Idle);
        assert_eq!(
            c.on_event(Event::Tick, t0 + Duration::from_secs(100)),
            vec![]
        );
    }

    #[test]
    fn stop_escalates_to_sigkill_and_waits_for_the_group() {
        let t0 = Instant::now();
        let mut c = child();
        start(&mut c, 10, t0);
        let a = c.on_event(Event::Stop(Then::Rest), t0);
        assert!(a.contains(&Action::Signal {
            pgid: 10,
            sig: Signal::SIGTERM
        }));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(10)));
        let a = c.on_event(Event::Tick, t0 + Duration::from_secs(10));
        assert!(a.contains(&Action::Signal {
            pgid: 10,
            sig: Signal::SIGKILL
        }));
        feed(
            &mut c,
            Event::Exited {
                pid: 10,
                status: ExitStatus::Signal(9),
                group_alive: true,
            },
            t0,
        );
        assert!(c.is_draining());
        feed(&mut c, Event::GroupGone, t0);
        assert_eq!(c.phase, Phase::Idle);
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let t0 = Instant::now();
        assert_eq!(
            later(t0, Duration::from_secs(5)),
            t0 + Duration::from_secs(5)
        );
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 2),
            FAR_FUTURE * 2,
        ] {
            let t = later(t0, d);
            assert!(t > t0 + Duration::from_secs(50 * 365 * 86_400), "{d:?}");
        }
        // A child whose every duration is huge still goes through its life.
        let mut c = child();
        c.stop_timeout = Duration::MAX;
        c.spec.backoff = BackoffSpec {
            initial: Duration::MAX,
            factor: 100.0,
            max: Duration::MAX,
            reset_after: Duration::MAX,
        };
        start(&mut c, 10, t0);
        crash(&mut c, 10, t0);
        assert!(matches!(c.phase, Phase::Backoff { .. }), "{:?}", c.phase);
        feed(&mut c, Event::Stop(Then::Rest), t0);
        assert_eq!(c.phase, Phase::Idle);
        start(&mut c, 11, t0);
        feed(&mut c, Event::Stop(Then::Rest), t0);
        assert!(c.deadline().is_some_and(|d| d > t0));
    }

    #[test]
    fn health_failure_restarts_through_backoff() {
        let t0 = Instant::now();
        let mut c = child();
        start(&mut c, 10, t0);
        feed(
            &mut c,
            Event::HealthFailed {
                reason: "heartbeat".into(),
            },
            t0,
        );
        exit(&mut c, 10, ExitStatus::Signal(15), t0);
        assert!(matches!(c.phase, Phase::Backoff { .. }), "{:?}", c.phase);
    }

    #[test]
    fn what_needs_a_person_is_kept_as_data_not_words() {
        let t0 = Instant::now();
        let mut c = at_most(1, child_without_backoff());
        start(&mut c, 10, t0);
        crash(&mut c, 10, t0);
        feed(&mut c, Event::Spawned { pid: 11 }, t0);
        let a = crash(&mut c, 11, t0);
        let gave_up = GaveUp {
            restarts: 1,
            window: Duration::from_secs(60),
        };
        assert_eq!(c.phase, Phase::Fatal { gave_up });
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Notice(Notice::Exited { next: Next::Fatal(g), .. }) if *g == gave_up
        )));
    }

    #[test]
    fn start_gives_a_child_at_rest_a_fresh_series() {
        let t0 = Instant::now();
        for at_rest in [
            Phase::NeedsSetup {
                cause: Setup::ExitedConfig,
            },
            Phase::Fatal {
                gave_up: GaveUp {
                    restarts: 1,
                    window: Duration::from_secs(1),
                },
            },
            Phase::Exited {
                status: ExitStatus::Code(0),
            },
            Phase::Backoff {
                until: t0 + Duration::from_secs(5),
            },
            Phase::Idle,
        ] {
            let mut c = child();
            c.attempt = 4;
            c.phase = at_rest.clone();
            assert_eq!(
                c.on_event(Event::Start, t0),
                vec![Action::Spawn],
                "{at_rest:?}"
            );
            assert_eq!((c.attempt, &c.phase), (0, &Phase::Starting));
        }
    }
}
