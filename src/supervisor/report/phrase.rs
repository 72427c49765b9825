//! The words for what the supervisor tells about a child. A fact told in several places
//! (the log, a Dashboard row, a webhook, `status`) is phrased here once per place, so the
//! places say it alike and its wording changes in one spot. Pure: facts in, text out.

use std::fmt;
use std::time::Duration;

use ai_employee_vault::exit_codes;
use ai_employee_vault::logs::writer::Probe;
use ai_employee_vault::units::{format_duration, format_elapsed, format_mib_compact};

use crate::config::NotifyEvent;
use crate::process::ExitStatus;
use crate::supervisor::machine::{Child, GaveUp, Phase, Setup};

/// Where a sentence is read. Each place has its own form of the same fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `Logs/system.log` and the console (the child's name is a field of the line).
    Log,
    /// A `Watcher_Status` row of Dashboard.md, after the child's description.
    Dashboard,
    /// The `details` of a `[[notify]]` event (the child is a field of the event).
    Webhook,
    /// The reason `ai-employee status` shows after the child's name.
    Status,
}

/// A child that waits for a person: it is not restarted until someone fixes something.
#[derive(Debug, Clone, Copy)]
pub enum NeedsPerson<'a> {
    /// It exited with EX_CONFIG (78). `see`: where its own reason is ([`see`]).
    Configuration { see: &'a str },
    /// It cannot be started: the spawn error.
    CannotStart { reason: &'a str },
    /// Restarted too often: given up on after it exited with `last`.
    GaveUp { gave_up: GaveUp, last: ExitStatus },
}

impl NeedsPerson<'_> {
    /// The fact as said in `place`.
    pub fn say(&self, place: Place) -> String {
        match *self {
            NeedsPerson::Configuration { see } => {
                let code = exit_codes::CONFIG;
                match place {
                    Place::Log => format!(
                        "exited with {}: needs setup, not restarted ({see})",
                        ExitStatus::Code(code)
                    ),
                    Place::Dashboard => format!("exited {code}, needs configuration ({see})"),
                    Place::Webhook => format!("exited {code}: needs configuration ({see})"),
                    Place::Status => format!("exited {code} (needs configuration; {see})"),
                }
            }
            NeedsPerson::CannotStart { reason } => match place {
                Place::Log => format!("{reason}; needs setup, not restarted"),
                Place::Webhook => format!("needs setup: {reason}"),
                Place::Dashboard | Place::Status => reason.to_string(),
            },
            NeedsPerson::GaveUp { gave_up, last } => match place {
                Place::Log => format!("exited with {last}; {gave_up}"),
                Place::Dashboard => format!("{gave_up}, last {last}"),
                Place::Webhook => format!("gave up: {gave_up}, last {last}"),
                Place::Status => gave_up.to_string(),
            },
        }
    }

    /// The status column of its Dashboard row.
    pub fn row_status(&self) -> &'static str {
        match self {
            NeedsPerson::Configuration { .. } | NeedsPerson::CannotStart { .. } => "⚠ Needs Setup",
            NeedsPerson::GaveUp { .. } => "✗ Gave Up",
        }
    }

    /// The `[[notify]]` event it is.
    pub fn event(&self) -> NotifyEvent {
        match self {
            NeedsPerson::Configuration { .. } | NeedsPerson::CannotStart { .. } => {
                NotifyEvent::ChildNeedsSetup
            }
            NeedsPerson::GaveUp { .. } => NotifyEvent::ChildFatal,
        }
    }
}

/// `gave up after 3 restarts within 1m`.
impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.restarts;
        write!(
            f,
            "gave up after {max} restart{} within {}",
            if max == 1 { "" } else { "s" },
            format_duration(self.window)
        )
    }
}

/// Where a reader finds child `name`'s output, given what the log writer answered when
/// asked to write what it had ([`ai_employee_vault::logs::LogFile::probe`]):
/// `see Logs/x.log`, or why it is not there.
pub fn see(name: &str, probe: Probe) -> String {
    match probe {
        Probe::Answered(None) => see_log(name),
        Probe::Answered(Some(e)) | Probe::NoAnswer(Some(e)) => {
            format!("its output could not be written to Logs/{name}.log: {e}")
        }
        Probe::NoAnswer(None) => format!(
            "see Logs/{name}.log, once the disk answers: its last output is still waiting to \
             be written"
        ),
    }
}

fn see_log(name: &str) -> String {
    format!("see Logs/{name}.log")
}

/// Why `status` shows a child as waiting for a person, or None. `see`: what its exit said
/// about its log when that could not be written (else `see Logs/x.log`).
pub fn status_reason(child: &Child, see: Option<&str>) -> Option<String> {
    Some(match child.phase() {
        Phase::NeedsSetup {
            cause: Setup::ExitedConfig,
        } => {
            let see = see.map_or_else(|| see_log(child.name()), str::to_string);
            NeedsPerson::Configuration { see: &see }.say(Place::Status)
        }
        Phase::NeedsSetup {
            cause: Setup::CannotStart(reason),
        } => NeedsPerson::CannotStart { reason }.say(Place::Status),
        Phase::Fatal { gave_up } => gave_up.to_string(),
        _ => return None,
    })
}

/// The word `status` shows for a phase.
/// The state of `c` in a word, as `status` and the session statistics show it: an idle
/// child that is not enabled is `disabled`, not `stopped`.
pub fn child_state(c: &Child) -> &'static str {
    match c.phase() {
        Phase::Idle if !c.spec().enabled => "disabled",
        p => state_word(p),
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

/// What a health check found wrong with a running child (the child is restarted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhealthy {
    Zombie,
    /// Stopped by a signal or traced.
    Stopped,
    /// Resident set over `max_memory`.
    Memory {
        rss: u64,
        max: u64,
    },
    /// The heartbeat file was last seen to change `age` ago.
    StaleHeartbeat {
        age: Duration,
        timeout: Duration,
    },
    /// No heartbeat file since the child started.
    NoHeartbeat {
        timeout: Duration,
    },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Unhealthy::Zombie => f.write_str("process is a zombie"),
            Unhealthy::Stopped => f.write_str("process is stopped (SIGSTOP or traced)"),
            Unhealthy::Memory { rss, max } => write!(
                f,
                "memory {} over max_memory {}",
                format_mib_compact(rss),
                format_mib_compact(max)
            ),
            Unhealthy::StaleHeartbeat { age, timeout } => write!(
                f,
                "heartbeat is {} old (heartbeat_timeout {})",
                format_elapsed(age),
                format_elapsed(timeout)
            ),
            Unhealthy::NoHeartbeat { timeout } => write!(
                f,
                "no heartbeat within heartbeat_timeout {}",
                format_elapsed(timeout)
            ),
        }
    }
}

/// Events children send over the control socket for the `[[notify]]` webhooks, and what
/// the supervisor calls each (before the sender's own details, in the log and in the
/// webhook's `text`).
pub const RELAYED: [(NotifyEvent, &str); 4] = [
    (NotifyEvent::ApprovalFailed, "approval failed"),
    (NotifyEvent::TaskFailed, "task failed"),
    (NotifyEvent::TaskNeedsReview, "task needs review"),
    (NotifyEvent::TasksUnhealthy, "tasks unhealthy"),
];

/// The headline of an event a child sent (`None` for the supervisor's own events, whose
/// details are phrased whole).
pub fn headline(event: NotifyEvent) -> Option<&'static str> {
    RELAYED.iter().find(|(e, _)| *e == event).map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_events_have_a_headline_and_the_supervisors_do_not() {
        assert_eq!(headline(NotifyEvent::TaskFailed), Some("task failed"));
        assert_eq!(
            headline(NotifyEvent::TasksUnhealthy),
            Some("tasks unhealthy")
        );
        assert_eq!(headline(NotifyEvent::ChildFatal), None);
        assert_eq!(headline(NotifyEvent::SystemOffline), None);
    }

    /// Exit 78, in each place it is told (the status form is pinned by the `status`
    /// snapshots too).
    #[test]
    fn exit_78_in_every_place() {
        let see = "see Logs/gmail.log";
        let fact = NeedsPerson::Configuration { see };
        let said =
            [Place::Log, Place::Dashboard, Place::Webhook, Place::Status].map(|p| fact.say(p));
        assert_eq!(
            said,
            [
                "exited with code 78: needs setup, not restarted (see Logs/gmail.log)",
                "exited 78, needs configuration (see Logs/gmail.log)",
                "exited 78: needs configuration (see Logs/gmail.log)",
                "exited 78 (needs configuration; see Logs/gmail.log)",
            ]
        );
        assert_eq!(fact.row_status(), "⚠ Needs Setup");
        assert_eq!(fact.event(), NotifyEvent::ChildNeedsSetup);
    }

    #[test]
    fn given_up_and_cannot_start() {
        let gave_up = GaveUp {
            restarts: 3,
            window: Duration::from_secs(60),
        };
        let fact = NeedsPerson::GaveUp {
            gave_up,
            last: ExitStatus::Code(1),
        };
        assert_eq!(
            fact.say(Place::Log),
            "exited with code 1; gave up after 3 restarts within 1m"
        );
        assert_eq!(
            fact.say(Place::Dashboard),
            "gave up after 3 restarts within 1m, last code 1"
        );
        assert_eq!(
            fact.say(Place::Webhook),
            "gave up: gave up after 3 restarts within 1m, last code 1"
        );
        assert_eq!(fact.row_status(), "✗ Gave Up");
        let one = GaveUp {
            restarts: 1,
            window: Duration::from_secs(60),
        };
        assert_eq!(one.to_string(), "gave up after 1 restart within 1m");
        let reason = "failed to start \"x\": No such file or directory (os error 2)";
        let fact = NeedsPerson::CannotStart { reason };
        assert_eq!(
            fact.say(Place::Log),
            format!("{reason}; needs setup, not restarted")
        );
        assert_eq!(fact.say(Place::Webhook), format!("needs setup: {reason}"));
        assert_eq!(fact.say(Place::Status), reason);
    }

    #[test]
    fn where_the_output_is() {
        assert_eq!(see("w", Probe::Answered(None)), "see Logs/w.log");
        assert_eq!(
            see("w", Probe::NoAnswer(Some("No space left on device".into()))),
            "its output could not be written to Logs/w.log: No space left on device"
        );
        assert_eq!(
            see("w", Probe::NoAnswer(None)),
            "see Logs/w.log, once the disk answers: its last output is still waiting to be \
             written"
        );
    }

    #[test]
    fn health_failures() {
        let s = Duration::from_secs;
        assert_eq!(
            Unhealthy::Memory {
                rss: 12_900_000,
                max: 4096
            }
            .to_string(),
            "memory 12.3MiB over max_memory 0.0MiB"
        );
        assert_eq!(
            Unhealthy::StaleHeartbeat {
                age: s(95),
                timeout: s(60)
            }
            .to_string(),
            "heartbeat is 1m35s old (heartbeat_timeout 1m00s)"
        );
        assert_eq!(
            Unhealthy::NoHeartbeat { timeout: s(2) }.to_string(),
            "no heartbeat within heartbeat_timeout 2s"
        );
        assert_eq!(Unhealthy::Zombie.to_string(), "process is a zombie");
    }
}
