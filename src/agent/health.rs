//! The task loop's health (`tasks health`): pure rules over what was observed (the
//! snapshot `.ai-employee/tasks.json`, whether the loop's lock is held, whether the
//! snapshot's pid is alive), the last 24 hours' [`Metrics`] and the `[agent]` settings.
//! docs/agent.md ("Metrics and health") lists the rules.

use std::time::Duration;

use ai_employee_vault::units::{format_age, format_duration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::snapshot::{Snapshot, Stated, TaskState, TaskView};
use crate::config::model::AgentSettings;

/// How often the loop rewrites its snapshot at least.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A snapshot older than this (three heartbeats) is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(3 * 60);
/// Runs in the window below which the error rate says nothing.
pub const MIN_RUNS_FOR_ERROR_RATE: u64 = 5;

/// Worst last: the overall state is the worst of the rules'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    Degraded,
    Unhealthy,
    /// No task loop runs for this vault.
    NotRunning,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Unhealthy => "unhealthy",
            State::NotRunning => "not_running",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    #[serde(rename = "status")]
    pub state: State,
    /// One line per rule that did not pass, worst first.
    pub reasons: Vec<String>,
}

/// The task loop's lock (`.ai-employee/agent.lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A process holds it: the loop runs.
    Held,
    /// Nobody holds it: the loop does not run.
    Free,
    /// It could not be tested (no lock file yet): the snapshot decides.
    Unknown,
}

/// What was observed of the running loop.
#[derive(Debug)]
pub struct Observed<'a, T = TaskView> {
    pub snapshot: Option<&'a Snapshot<T>>,
    pub lock: Lock,
    /// Whether the snapshot's pid names a live process.
    pub pid_alive: bool,
    pub now: DateTime<Utc>,
}

/// The loop's health. `last_day` is the metrics of the 24 hours before `o.now`.
pub fn assess<T: Stated>(o: &Observed<T>, last_day: &Metrics, settings: &AgentSettings) -> Health {
    let age = o
        .snapshot
        .and_then(|s| s.written_at)
        .map(|w| (o.now - w).num_milliseconds().max(0) as f64 / 1000.0);
    let stale = age.is_none_or(|a| a > STALE_AFTER.as_secs_f64());
    let not_running = match (o.lock, o.snapshot) {
        (Lock::Free, _) => Some("its lock is free".to_string()),
        (Lock::Unknown, None) => Some("no snapshot .ai-employee/tasks.json".to_string()),
        (Lock::Unknown, Some(s)) if stale && !o.pid_alive => Some(format!(
            "the snapshot is {} and pid {} is gone",
            age.map_or("undated".to_string(), |a| format!("{} old", format_age(a))),
            s.pid
        )),
        _ => None,
    };
    if let Some(why) = not_running {
        return Health {
            state: State::NotRunning,
            reasons: vec![format!("the task loop is not running ({why})")],
        };
    }

    let mut found: Vec<(State, String)> = Vec::new();
    if let Some(s) = o.snapshot {
        if let Some(why) = &s.needs_setup {
            found.push((State::Unhealthy, format!("the agent cannot run: {why}")));
        }
        if stale {
            found.push((
                State::Degraded,
                format!(
                    "the snapshot was not rewritten for {} (the loop does every {})",
                    age.map_or("ever".to_string(), format_age),
                    format_duration(HEARTBEAT)
                ),
            ));
        }
        let backlog = s
            .tasks
            .iter()
            .filter(|t| t.state() != TaskState::Running)
            .count();
        if backlog > settings.max_backlog as usize {
            found.push((
                State::Degraded,
                format!(
                    "backlog {backlog} tasks over max_backlog {}",
                    settings.max_backlog
                ),
            ));
        }
        if let Some(reason) = idle(s, last_day, settings, o.now) {
            found.push((State::Degraded, reason));
        }
        found.extend(queue(s, o.now).into_iter().map(|r| (State::Degraded, r)));
    }
    if let Some(rate) = last_day.error_rate
        && last_day.runs >= MIN_RUNS_FOR_ERROR_RATE
        && rate > settings.max_error_rate
    {
        found.push((
            State::Degraded,
            format!(
                "error rate {} of {} runs in the last 24 h over max_error_rate {}",
                percent(rate),
                last_day.runs,
                percent(settings.max_error_rate)
            ),
        ));
    }
    // Stable: the rules' order within one severity.
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Health {
        state: found.first().map_or(State::Healthy, |f| f.0),
        reasons: found.into_iter().map(|f| f.1).collect(),
    }
}

/// No completion for `max_idle` while tasks wait for the agent (pending, retrying or
/// running; not while paused, and not for tasks that wait for a person).
fn idle<T: Stated>(
    s: &Snapshot<T>,
    last_day: &Metrics,
    settings: &AgentSettings,
    now: DateTime<Utc>,
) -> Option<String> {
    if s.paused {
        return None;
    }
    let waiting = s
        .tasks
        .iter()
        .filter(|t| {
            matches!(
                t.state(),
                TaskState::Pending | TaskState::Retry | TaskState::Running
            )
        })
        .count();
    if waiting == 0 {
        return None;
    }
    // The last completion known, else since the loop started.
    let since = s
        .last_completion
        .max(last_day.last_completion)
        .or(s.started_at)?;
    let idle = (now - since).to_std().ok()?;
    (idle > settings.max_idle).then(|| {
        format!(
            "no task completed for {} while {waiting} wait (max_idle {})",
            format_age(idle.as_secs_f64()),
            format_duration(settings.max_idle)
        )
    })
}

/// The work queue (docs/workers.md): unreachable, or no worker seen for `worker_timeout`
/// while tasks wait for one (not while paused).
fn queue<T: Stated>(s: &Snapshot<T>, now: DateTime<Utc>) -> Vec<String> {
    let Some(q) = &s.queue else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !q.reachable {
        out.push(format!(
            "the queue {} is unreachable ({})",
            q.url,
            if q.unreachable_mode == "wait" {
                "no task starts meanwhile: queue_unreachable = \"wait\""
            } else {
                "tasks run on this host meanwhile"
            }
        ));
    }
    if s.paused {
        return out;
    }
    let waiting = s
        .tasks
        .iter()
        .filter(|t| matches!(t.state(), TaskState::Pending | TaskState::Retry))
        .count() as u64
        + q.in_flight;
    if waiting == 0 || !q.reachable {
        return out;
    }
    let timeout = Duration::from_secs(q.worker_timeout_s);
    let Some(since) = q.last_worker_seen.or(s.started_at) else {
        return out;
    };
    let ago = (now - since).to_std().unwrap_or_default();
    if ago > timeout {
        out.push(format!(
            "no worker seen for {} while {waiting} tasks wait for one (worker_timeout {})",
            format_age(ago.as_secs_f64()),
            format_duration(timeout)
        ));
    }
    out
}

/// `0.35` → `"35%"`, `0.125` → `"12.5%"`.
fn percent(x: f64) -> String {
    let v = x * 100.0;
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}%")
    } else {
        format!("{v:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::events::{EventKind, RunResult};
    use crate::agent::metrics::{self, Record};
    use crate::agent::snapshot::TaskView;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    fn ago(secs: i64) -> DateTime<Utc> {
        now() - TimeDelta::seconds(secs)
    }

    fn task(id: &str, state: TaskState) -> TaskView {
        TaskView::new(id, state, 0.5, ago(7200))
    }

    /// A fresh snapshot of a loop that completed a task a minute ago.
    fn fresh(tasks: Vec<TaskView>) -> Snapshot {
        Snapshot {
            version: 1,
            pid: 4242,
            written_at: Some(ago(5)),
            started_at: Some(ago(86_400)),
            max_concurrent: 2,
            tasks,
            last_completion: Some(ago(60)),
            ..Snapshot::default()
        }
    }

    /// The last day's metrics with `ok` good runs and `bad` failed ones.
    fn day(ok: usize, bad: usize) -> Metrics {
        let run = |result| Record {
            ts: ago(600),
            kind: EventKind::Run,
            result: Some(result),
            duration_ms: Some(1000),
            cost_usd: None,
            turns: None,
        };
        let runs = std::iter::repeat_n(run(RunResult::Done), ok)
            .chain(std::iter::repeat_n(run(RunResult::Crashed), bad));
        metrics::fold(runs, ago(86_400), now())
    }

    fn check(snapshot: Option<&Snapshot>, lock: Lock, pid_alive: bool, m: &Metrics) -> Health {
        let o = Observed {
            snapshot,
            lock,
            pid_alive,
            now: now(),
        };
        assess(&o, m, &AgentSettings::default())
    }

    #[test]
    fn a_fresh_loop_with_little_to_do_is_healthy() {
        let s = fresh(vec![
            task("a", TaskState::Pending),
            task("b", TaskState::Running),
        ]);
        let h = check(Some(&s), Lock::Held, true, &day(10, 1));
        assert_eq!(
            h,
            Health {
                state: State::Healthy,
                reasons: vec![]
            }
        );
        // Without a lock file the fresh snapshot is enough.
        assert_eq!(
            check(Some(&s), Lock::Unknown, true, &day(0, 0)).state,
            State::Healthy
        );
    }

    #[test]
    fn a_free_lock_or_a_stale_snapshot_of_a_gone_pid_is_not_running() {
        let s = fresh(vec![]);
        let h = check(Some(&s), Lock::Free, true, &day(0, 0));
        assert_eq!(h.state, State::NotRunning);
        assert_eq!(
            h.reasons,
            ["the task loop is not running (its lock is free)"]
        );
        let h = check(None, Lock::Unknown, false, &day(0, 0));
        assert_eq!(h.state, State::NotRunning);
        let old = Snapshot {
            written_at: Some(ago(300)),
            ..fresh(vec![])
        };
        let h = check(Some(&old), Lock::Unknown, false, &day(0, 0));
        assert_eq!(
            h.reasons,
            ["the task loop is not running (the snapshot is 5m00s old and pid 4242 is gone)"]
        );
        // 90 s is still fresh: the pid does not matter yet.
        let edge = Snapshot {
            written_at: Some(ago(180)),
            ..fresh(vec![])
        };
        assert_eq!(
            check(Some(&edge), Lock::Unknown, false, &day(0, 0)).state,
            State::Healthy
        );
    }

    #[test]
    fn a_stale_snapshot_of_a_loop_that_holds_its_lock_is_degraded() {
        let old = Snapshot {
            written_at: Some(ago(181)),
            ..fresh(vec![])
        };
        for (lock, alive) in [(Lock::Held, false), (Lock::Unknown, true)] {
            let h = check(Some(&old), lock, alive, &day(0, 0));
            assert_eq!(h.state, State::Degraded);
            assert_eq!(
                h.reasons,
                ["the snapshot was not rewritten for 3m01s (the loop does every 1m)"]
            );
        }
        // Held but no snapshot yet (starting): nothing to say.
        assert_eq!(
            check(None, Lock::Held, false, &day(0, 0)).state,
            State::Healthy
        );
    }

    #[test]
    fn needs_setup_is_unhealthy() {
        let s = Snapshot {
            needs_setup: Some("claude: command not found".into()),
            ..fresh(vec![])
        };
        let h = check(Some(&s), Lock::Held, true, &day(0, 0));
        assert_eq!(h.state, State::Unhealthy);
        assert_eq!(
            h.reasons,
            ["the agent cannot run: claude: command not found"]
        );
    }

    #[test]
    fn a_backlog_over_max_backlog_is_degraded() {
        let mut tasks: Vec<TaskView> = (0..20)
            .map(|i| task(&format!("t{i}"), TaskState::Pending))
            .collect();
        tasks.push(task("r", TaskState::Running));
        let s = fresh(tasks.clone());
        assert_eq!(
            check(Some(&s), Lock::Held, true, &day(0, 0)).state,
            State::Healthy,
            "20 is not over 20"
        );
        tasks.push(task("w", TaskState::WaitingApproval));
        let s = fresh(tasks);
        let h = check(Some(&s), Lock::Held, true, &day(0, 0));
        assert_eq!(h.state, State::Degraded);
        assert_eq!(h.reasons, ["backlog 21 tasks over max_backlog 20"]);
    }

    #[test]
    fn the_error_rate_counts_from_five_runs() {
        let s = fresh(vec![]);
        // 4 runs, all failed: too few to say.
        assert_eq!(
            check(Some(&s), Lock::Held, true, &day(0, 4)).state,
            State::Healthy
        );
        // 1 of 10 is exactly the limit: not over it.
        assert_eq!(
            check(Some(&s), Lock::Held, true, &day(9, 1)).state,
            State::Healthy
        );
        let h = check(Some(&s), Lock::Held, true, &day(13, 7));
        assert_eq!(h.state, State::Degraded);
        assert_eq!(
            h.reasons,
            ["error rate 35% of 20 runs in the last 24 h over max_error_rate 10%"]
        );
        // Also when the snapshot is missing but the loop holds its lock.
        assert_eq!(
            check(None, Lock::Held, true, &day(0, 5)).state,
            State::Degraded
        );
    }

    #[test]
    fn the_queue_is_degraded_unreachable_or_without_a_worker_while_tasks_wait() {
        use crate::agent::snapshot::QueueView;
        let q = |reachable, seen: Option<i64>, in_flight| QueueView {
            url: "redis://q:6379/0".into(),
            reachable,
            unreachable_mode: "local".into(),
            worker_timeout_s: 120,
            in_flight,
            last_worker_seen: seen.map(ago),
            ..QueueView::default()
        };
        let with = |view: QueueView, tasks: Vec<TaskView>, paused| {
            let s = Snapshot {
                queue: Some(view),
                paused,
                ..fresh(tasks)
            };
            check(Some(&s), Lock::Held, true, &day(0, 0))
        };
        // A worker seen 10 s ago: healthy.
        let h = with(q(true, Some(10), 3), vec![], false);
        assert_eq!(h.state, State::Healthy, "{h:?}");
        // None for 5 minutes while 3 runs wait on the queue and 1 in the vault.
        let h = with(
            q(true, Some(300), 3),
            vec![task("a", TaskState::Pending)],
            false,
        );
        assert_eq!(h.state, State::Degraded);
        assert_eq!(
            h.reasons,
            ["no worker seen for 5m00s while 4 tasks wait for one (worker_timeout 2m)"]
        );
        // Nothing waits, or paused: no worker is needed.
        assert_eq!(
            with(q(true, Some(300), 0), vec![], false).state,
            State::Healthy
        );
        assert_eq!(with(q(true, None, 2), vec![], true).state, State::Healthy);
        // Unreachable: said, whatever waits.
        let h = with(q(false, Some(1), 0), vec![], false);
        assert_eq!(h.state, State::Degraded);
        assert_eq!(
            h.reasons,
            ["the queue redis://q:6379/0 is unreachable (tasks run on this host meanwhile)"]
        );
    }

    #[test]
    fn no_completion_for_max_idle_while_tasks_wait_is_degraded() {
        let idle = |state, last: Option<i64>, paused| {
            let s = Snapshot {
                last_completion: last.map(ago),
                paused,
                ..fresh(vec![task("a", state)])
            };
            check(Some(&s), Lock::Held, true, &day(0, 0))
        };
        let h = idle(TaskState::Pending, Some(3600 + 720), false);
        assert_eq!(h.state, State::Degraded);
        assert_eq!(
            h.reasons,
            ["no task completed for 1h12m while 1 wait (max_idle 1h)"]
        );
        assert_eq!(
            idle(TaskState::Retry, Some(3601), false).state,
            State::Degraded
        );
        assert_eq!(
            idle(TaskState::Pending, Some(3600), false).state,
            State::Healthy
        );
        // Waiting for a person, or paused: nothing is expected to complete.
        assert_eq!(
            idle(TaskState::WaitingApproval, Some(7200), false).state,
            State::Healthy
        );
        assert_eq!(
            idle(TaskState::Pending, Some(7200), true).state,
            State::Healthy
        );
        // Never a completion: counted from the loop's start (a day ago).
        assert_eq!(idle(TaskState::Pending, None, false).state, State::Degraded);
    }

    #[test]
    fn a_completion_in_the_log_counts_when_the_snapshot_has_none() {
        let s = Snapshot {
            last_completion: None,
            ..fresh(vec![task("a", TaskState::Pending)])
        };
        let done = Record {
            ts: ago(120),
            kind: EventKind::Done,
            result: None,
            duration_ms: None,
            cost_usd: None,
            turns: None,
        };
        let m = metrics::fold([done], ago(86_400), now());
        assert_eq!(check(Some(&s), Lock::Held, true, &m).state, State::Healthy);
    }

    #[test]
    fn the_worst_rule_wins_and_every_reason_is_listed_worst_first() {
        let mut tasks: Vec<TaskView> = (0..25)
            .map(|i| task(&format!("t{i}"), TaskState::Pending))
            .collect();
        tasks.push(task("r", TaskState::Running));
        let s = Snapshot {
            needs_setup: Some("not logged in".into()),
            last_completion: Some(ago(7200)),
            ..fresh(tasks)
        };
        let h = check(Some(&s), Lock::Held, true, &day(5, 5));
        assert_eq!(h.state, State::Unhealthy);
        assert_eq!(
            h.reasons,
            [
                "the agent cannot run: not logged in",
                "backlog 25 tasks over max_backlog 20",
                "no task completed for 2h00m while 26 wait (max_idle 1h)",
                "error rate 50% of 10 runs in the last 24 h over max_error_rate 10%",
            ]
        );
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["reasons"].as_array().map(Vec::len), Some(4));
        // Not running overrides everything else.
        assert_eq!(
            check(Some(&s), Lock::Free, true, &day(5, 5)).state,
            State::NotRunning
        );
    }

    #[test]
    fn percents_keep_one_decimal_only_when_needed() {
        assert_eq!(percent(0.35), "35%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.1), "10%");
    }
}
