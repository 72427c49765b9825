//! `reload` (SIGHUP or the control socket): re-read the table and apply the difference.

use super::*;

impl Runtime {
    /// Re-read the table and apply it. Err: the table's errors (the old table stays).
    pub(super) fn reload(&mut self) -> Result<ReloadReport, Vec<String>> {
        if self.shutting_down {
            return Err(vec!["the supervisor is shutting down".into()]);
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
        let new = match config::load(self.vault.root(), self.table.explicit.as_deref()) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors.0 {
                    error!("reload failed: {e}");
                }
                error!("reload failed: keeping the current process table");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                return Err(errors.0.iter().map(|e| e.to_string()).collect());
            }
        };
        if new.supervisor.metrics != self.settings.metrics {
            warn!("reload: a new metrics address takes effect when the supervisor restarts");
        }
        let metrics = self.settings.metrics;
        self.settings = new.supervisor.clone();
        self.settings.metrics = metrics;
        self.table_source = new.source.to_string();
        if new.notify != self.notify_specs {
            if let Some(old) = self.notifier.take() {
                old.finish(Duration::ZERO);
            }
            self.notifier = Some(Notifier::start(&new.notify, self.vault.root()));
            self.notify_specs = new.notify.clone();
        }
        self.next_health = self
            .next_health
            .min(later(Instant::now(), self.settings.health_interval));
        let mut changes = ReloadReport::default();
        let mut old: HashMap<String, Slot> = self
            .slots
            .drain(..)
            .map(|s| (s.child.spec.name.clone(), s))
            .collect();
        let mut to_start = Vec::new();
        let mut to_restart = Vec::new();
        let mut to_stop = Vec::new();
        for spec in new.processes {
            let name = spec.name.clone();
            let stop_timeout = spec.stop_timeout.unwrap_or(self.settings.stop_timeout);
            let idx = self.slots.len();
            match old.remove(&name) {
                None => {
                    if spec.enabled {
                        to_start.push(idx);
                    }
                    changes.added.push(name);
                    let slot = self.new_slot(spec);
                    self.slots.push(slot);
                }
                Some(mut slot) => {
                    slot.child.stop_timeout = stop_timeout;
                    slot.log.file.set_limits(
                        spec.log_max_size.unwrap_or(self.settings.log_max_size),
                        spec.log_max_files.unwrap_or(self.settings.log_max_files),
                    );
                    let was = slot.child.spec.clone();
                    let same = same_definition(&was, &spec);
                    slot.child.spec.description = spec.description.clone();
                    if same {
                        changes.unchanged.push(name);
                    } else {
                        let enabled_now = spec.enabled;
                        slot.child.spec = spec;
                        if !enabled_now {
                            to_stop.push(idx);
                            changes.disabled.push(name);
                        } else if !was.enabled || slot.child.is_at_rest() {
                            to_start.push(idx);
                            changes.changed.push(name);
                        } else {
                            to_restart.push(idx);
                            changes.changed.push(name);
                        }
                    }
                    self.slots.push(slot);
                }
            }
        }
        for (name, slot) in old {
            changes.removed.push(name);
            let idx = self.slots.len();
            // Dropped once stopped (`Then::Remove`).
            self.slots.push(slot);
            to_stop.push(idx);
        }
        self.reindex();
        info!("reload: {}", changes.describe());
        for i in to_stop {
            let then = removal(&changes, &self.slots[i].child.spec.name);
            self.dispatch(i, Event::Stop(then));
        }
        for i in to_restart {
            self.dispatch(i, Event::Stop(Then::Restart));
        }
        for i in to_start {
            // Fresh definition: a child that needed setup or gave up gets a new chance.
            if !matches!(
                self.slots[i].child.phase,
                Phase::Running { .. } | Phase::Stopping { .. }
            ) {
                self.slots[i].child.phase = Phase::Idle;
            }
            self.dispatch(i, Event::Start);
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        Ok(changes)
    }
}

fn removal(changes: &ReloadReport, name: &str) -> Then {
    if changes.removed.iter().any(|n| n == name) {
        Then::Remove
    } else {
        Then::Rest
    }
}

/// Whether a reload should leave a running child alone: everything but the description
/// (and log limits, applied in place) must match.
fn same_definition(a: &ProcessSpec, b: &ProcessSpec) -> bool {
    let strip = |s: &ProcessSpec| ProcessSpec {
        description: String::new(),
        log_max_size: None,
        log_max_files: None,
        ..s.clone()
    };
    strip(a) == strip(b)
}
