//! `reload` (SIGHUP or the control socket): re-read the table and apply the difference.
//! Children whose definition is unchanged keep running; changed ones restart, new ones
//! start, removed and disabled ones stop.

use std::collections::HashMap;
use std::time::Instant;

use ai_employee_vault::control::ReloadReport;
use sd_notify::NotifyState;
use tracing::warn;

use super::{Event, Runtime, Slot, Then, later, table_watch, tell_service_manager};
use crate::config::{self, ConfigErrors, ProcessSpec};

/// Why a reload was not applied (the running table stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the supervisor is shutting down")]
    ShuttingDown,
    /// The table's errors, one a line (each with file:line:column).
    #[error("{0}")]
    Table(ConfigErrors),
}

impl Runtime {
    /// Re-read the table and apply it.
    pub(super) fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        if self.shutting_down {
            return Err(ReloadError::ShuttingDown);
        }
        tell_service_manager(NotifyState::Reloading);
        self.table_seen =
            table_watch::bytes_in_force(&self.table_path, self.table.explicit.is_some());
        let new = match config::load(self.vault.root(), self.table.explicit.as_deref()) {
            Ok(c) => c,
            Err(errors) => {
                self.reporter.reload_failed(&errors);
                tell_service_manager(NotifyState::Ready);
                return Err(ReloadError::Table(errors));
            }
        };
        let mut changes = ReloadReport::default();
        if new.supervisor.metrics != self.settings.metrics {
            let warning = "a new metrics address takes effect when the supervisor restarts";
            warn!("reload: {warning}");
            changes.warnings.push(warning.to_string());
        }
        let metrics = self.settings.metrics;
        self.settings = new.supervisor.clone();
        self.settings.metrics = metrics;
        self.sync_table_watch();
        self.table_source = new.source.to_string();
        self.reporter.set_webhooks(&new.notify, self.vault.root());
        self.next_health = self
            .next_health
            .min(later(Instant::now(), self.settings.health_interval));
        let mut old: HashMap<String, Slot> = self
            .slots
            .drain(..)
            .map(|s| (s.child.name().to_string(), s))
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
                    slot.log.set_limits(
                        spec.log_max_size.unwrap_or(self.settings.log_max_size),
                        spec.log_max_files.unwrap_or(self.settings.log_max_files),
                    );
                    let same = same_definition(slot.child.spec(), &spec);
                    let was_enabled = slot.child.spec().enabled;
                    let enabled_now = spec.enabled;
                    // Unchanged but for the description and log limits: those change in
                    // place, the child keeps running.
                    slot.child.redefine(spec, stop_timeout);
                    if same {
                        changes.unchanged.push(name);
                    } else if !enabled_now {
                        to_stop.push(idx);
                        changes.disabled.push(name);
                    } else if !was_enabled || slot.child.is_at_rest() {
                        to_start.push(idx);
                        changes.changed.push(name);
                    } else {
                        to_restart.push(idx);
                        changes.changed.push(name);
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
        self.reporter.reloaded(&changes);
        for i in to_stop {
            let then = removal(&changes, self.slots[i].child.name());
            self.dispatch(i, Event::Stop(then));
        }
        for i in to_restart {
            self.dispatch(i, Event::Stop(Then::Restart));
        }
        for i in to_start {
            // Fresh definition: a child that needed setup or gave up gets a new chance
            // (a start begins a new crash series; a running one is left alone).
            self.dispatch(i, Event::Start);
        }
        tell_service_manager(NotifyState::Ready);
        Ok(changes)
    }
}

impl Runtime {
    /// Watch the table file while `reload_on_change` is on, and only then.
    pub(super) fn sync_table_watch(&mut self) {
        if !self.settings.reload_on_change {
            self.table_watch = None;
            self.reload_due = None;
            return;
        }
        if self.table_watch.is_some() {
            return;
        }
        match table_watch::watch(&self.table_path, self.table_tx.clone()) {
            Ok(w) => self.table_watch = Some(w),
            Err(e) => warn!(
                "failed to watch {} for changes: {e}; use `ai-employee reload` after editing it",
                self.table_path.display()
            ),
        }
    }

    /// The table file was saved (and then left alone for a moment): apply it unless its
    /// bytes are those last read (a save without a change, or one `reload` took).
    pub(super) fn table_changed(&mut self) {
        if self.shutting_down || !self.settings.reload_on_change {
            return;
        }
        let Ok(bytes) = std::fs::read(&self.table_path) else {
            // Removed (or mid-replace: the rename brings another event). The running
            // table stays; a later `reload` would fall back to the built-in one.
            return;
        };
        if self.table_seen.as_deref() == Some(&bytes[..]) {
            return;
        }
        self.reporter.table_changed(&self.table_path);
        // The outcome is logged (and a refusal put on the Dashboard) by the reload.
        let _ = self.reload();
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
