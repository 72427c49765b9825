//! Health checks: zombie, stopped, memory over `max_memory`, stale heartbeat.

use super::*;

impl Runtime {
    pub(super) fn health_check(&mut self, now: Instant) {
        // An exit not yet reaped would look like a zombie: take pending exits first.
        self.on_sigchld();
        for i in 0..self.slots.len() {
            let Phase::Running { pid, since } = self.slots[i].child.phase else {
                continue;
            };
            if let Some(reason) = self.health_problem(i, pid, since, now) {
                // A child that exited after the reap above (its SIGCHLD not yet handled)
                // looks like a zombie, or like a missed heartbeat. Reap again: an exit is
                // reported as an exit, with its code, never as a failed health check.
                self.on_sigchld();
                if !matches!(self.slots[i].child.phase, Phase::Running { pid: p, .. } if p == pid) {
                    continue;
                }
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
    ) -> Option<String> {
        let info = process::stats::proc_info(pid);
        if let Some(info) = info {
            self.note_cpu(i, pid, info.cpu_ns, now);
        }
        let spec = &self.slots[i].child.spec;
        if let Some(info) = info {
            match info.state {
                process::stats::RunState::Zombie => return Some("process is a zombie".into()),
                process::stats::RunState::Stopped => {
                    return Some("process is stopped (SIGSTOP or traced)".into());
                }
                process::stats::RunState::Running => {}
            }
            if let Some(max) = spec.max_memory
                && info.rss > max
            {
                return Some(format!(
                    "memory {} over max_memory {}",
                    ai_employee_vault::units::format_mib_compact(info.rss),
                    ai_employee_vault::units::format_mib_compact(max)
                ));
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
                Some(_) => format!(
                    "heartbeat is {} old (heartbeat_timeout {})",
                    format_elapsed(age),
                    format_elapsed(timeout)
                ),
                None => format!(
                    "no heartbeat within heartbeat_timeout {}",
                    format_elapsed(timeout)
                ),
            });
        }
        None
    }
}
