//! Orphan safety: the guardian learns every child's process group while it may have
//! members, and the records file keeps them for the next start (see `process::guardian`
//! and `process::records`).

use tracing::{debug, error, warn};

use super::*;

/// The records file of `vault`, created empty; None (said in the log) if it cannot be.
pub(super) fn open_records(vault: &Vault) -> Option<records::RecordLog> {
    match records::RecordLog::create(&vault.children_record()) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!(
                "failed to create {}: {e}",
                vault.children_record().display()
            );
            None
        }
    }
}

impl Runtime {
    /// Start a guardian that knows every group of the table's children.
    pub(super) fn start_guardian(&mut self) {
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

    /// The guardian could not be told about a group (`e`: its pipe is broken, so it is
    /// gone or going): it would not take that group down with a killed supervisor. A
    /// new one takes over with every current group; the old one is killed first, so its
    /// end can never take any group down.
    fn replace_guardian(&mut self, e: std::io::Error) {
        if let Some(old) = self.guardian.take() {
            warn!(
                "the orphan guardian (pid {}) cannot be told about process groups ({e}); \
                 starting a new one",
                old.pid()
            );
            old.kill();
        }
        if !self.shutting_down {
            self.start_guardian();
        }
    }

    /// Tell the guardian about a group the moment it is spawned (its leader's pid), before
    /// the spawn's bookkeeping: until [`Runtime::sync_guard`] runs, a supervisor killed
    /// would have left it behind. A failure is left to `sync_guard`, which tells the
    /// guardian again and replaces a dead one.
    pub(super) fn tell_guardian_early(&mut self, i: usize, pgid: i32) {
        if let Some(g) = self.guardian.as_mut()
            && g.add(pgid).is_ok()
        {
            self.slots[i].told_early = Some(pgid);
        }
    }

    /// Tell the guardian about a child's group while it may have members: from spawn until
    /// the leader is reaped and, when stopping, until the whole group is gone.
    pub(super) fn sync_guard(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let now = slot.child.pgid();
        let early = slot.told_early.take();
        let mut lost = None;
        // Told at its spawn but not (or no longer) this child's group: not to be killed.
        if let Some(e) = early
            && now != Some(e)
            && slot.guarded != Some(e)
            && let Some(g) = self.guardian.as_mut()
            && let Err(err) = g.remove(e)
        {
            lost = Some(err);
        }
        if slot.guarded == now {
            if let Some(e) = lost {
                self.replace_guardian(e);
            }
            return;
        }
        if let Some(old) = slot.guarded {
            if let Some(g) = self.guardian.as_mut()
                && let Err(e) = g.remove(old)
            {
                lost = Some(e);
            }
            if let Some(r) = self.records.as_mut()
                && let Err(e) = r.remove(old)
            {
                warn!("failed to record the end of process group {old}: {e}");
            }
        }
        if let Some(new) = now {
            let told = early == Some(new);
            if !told
                && let Some(g) = self.guardian.as_mut()
                && let Err(e) = g.add(new)
            {
                lost = Some(e);
            }
            slot.start_time = process::stats::proc_info(new).map(|p| p.start_time);
            if let (Some(r), Some(start_time)) = (self.records.as_mut(), slot.start_time) {
                let rec = records::Record {
                    pgid: new,
                    start_time,
                    name: slot.child.name().to_string(),
                };
                if let Err(e) = r.add(&rec) {
                    warn!("failed to record process group {new}: {e}");
                }
            }
        }
        slot.guarded = now;
        if let Some(e) = lost {
            self.replace_guardian(e);
        }
    }

    /// Rewrite the records file with the live groups when it has grown enough.
    pub(super) fn compact_records(&mut self) {
        let Some(r) = self.records.as_mut() else {
            return;
        };
        if !r.needs_compaction() {
            return;
        }
        let live: Vec<records::Record> = self
            .slots
            .iter()
            .filter_map(|s| {
                Some(records::Record {
                    pgid: s.guarded?,
                    start_time: s.start_time?,
                    name: s.child.name().to_string(),
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
}
