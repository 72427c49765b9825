//! Health checks of running children, every `health_interval`: a zombie, a stopped
//! process, memory over `max_memory`, a stale heartbeat. A child that fails one is
//! restarted through the crash backoff.

use std::time::Instant;

use super::{Event, Runtime};
use crate::process::stats::{self, RunState};
use crate::supervisor::machine::Phase;
use crate::supervisor::report::phrase::Unhealthy;

impl Runtime {
    pub(super) fn health_check(&mut self, now: Instant) {
        // An exit not yet reaped would look like a zombie: take pending exits first.
        self.on_sigchld();
        for i in 0..self.slots.len() {
            let Phase::Running { pid, since } = *self.slots[i].child.phase() else {
                continue;
            };
            if let Some(problem) = self.health_problem(i, pid, since, now) {
                // A child that exited after the reap above (its SIGCHLD not yet handled)
                // looks like a zombie, or like a missed heartbeat. Reap again: an exit is
                // reported as an exit, with its code, never as a failed health check.
                self.on_sigchld();
                if !matches!(*self.slots[i].child.phase(), Phase::Running { pid: p, .. } if p == pid)
                {
                    continue;
                }
                let reason = problem.to_string();
                self.dispatch(i, Event::HealthFailed { reason });
            }
        }
    }

    fn health_problem(
        &mut self,
        i: usize,
        pid: i32,
        since: Instant,
        now: Instant,
    ) -> Option<Unhealthy> {
        let info = stats::proc_info(pid);
        if let Some(info) = info {
            self.note_cpu(i, pid, info.cpu_ns, now);
        }
        let spec = self.slots[i].child.spec();
        if let Some(info) = info {
            match info.state {
                RunState::Zombie => return Some(Unhealthy::Zombie),
                RunState::Stopped => return Some(Unhealthy::Stopped),
                RunState::Running => {}
            }
            if let Some(max) = spec.max_memory
                && info.rss > max
            {
                return Some(Unhealthy::Memory { rss: info.rss, max });
            }
        }
        let timeout = spec.heartbeat_timeout?;
        let path = self.vault.heartbeat(&spec.name);
        // The heartbeat file itself, never a symlink's target.
        let mtime = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .ok();
        let slot = &mut self.slots[i];
        // Staleness is judged on the monotonic clock: when did we last see the file change?
        if let Some(m) = mtime
            && slot.beat.is_none_or(|(seen, _)| seen != m)
        {
            slot.beat = Some((m, now));
        }
        let last = slot.beat.map_or(since, |(_, at)| at);
        let age = now.saturating_duration_since(last);
        if age > timeout {
            return Some(match slot.beat {
                Some(_) => Unhealthy::StaleHeartbeat { age, timeout },
                None => Unhealthy::NoHeartbeat { timeout },
            });
        }
        None
    }
}
