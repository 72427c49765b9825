//! `[supervisor]`: settings of the supervisor itself.

use std::net::SocketAddr;

use ai_employee_vault::toml_fields::{Field, did_you_mean};
use toml_edit::Item;

use super::{Checker, Key, Table, names as key_names, read_section, set};
use crate::config::SupervisorSettings;

const KEYS: &[Key<SupervisorSettings>] = &[
    ("health_interval", |c, f, s| {
        set(c.positive_duration(f), &mut s.health_interval)
    }),
    ("stop_timeout", |c, f, s| {
        set(c.duration(f), &mut s.stop_timeout)
    }),
    ("log_max_size", |c, f, s| {
        set(c.log_size(f), &mut s.log_max_size)
    }),
    ("log_max_files", |c, f, s| {
        set(c.log_files(f), &mut s.log_max_files)
    }),
    ("metrics", |c, f, s| s.metrics = listen_address(c, f)),
    ("reload_on_change", |c, f, s| {
        set(c.boolean(f), &mut s.reload_on_change)
    }),
    ("log_timestamps", |c, f, s| {
        set(c.boolean(f), &mut s.log_timestamps)
    }),
];

/// Names people bring from supervisord, systemd or docker-compose, mapped to ours.
const ALIASES: &[(&str, &str)] = &[
    ("interval", "health_interval"),
    ("health_check_interval", "health_interval"),
    ("grace_period", "stop_timeout"),
    ("stop_grace_period", "stop_timeout"),
    ("watch", "reload_on_change"),
    ("auto_reload", "reload_on_change"),
    ("autoreload", "reload_on_change"),
    ("timestamps", "log_timestamps"),
];

pub(super) fn names() -> Vec<&'static str> {
    key_names(KEYS)
}

/// `[supervisor]`, into the table's settings.
pub(super) fn read(c: &mut Checker<'_>, field: &Field<'_>, table: &mut Table) {
    if let Item::ArrayOfTables(_) = field.item {
        c.error(
            field.at(),
            "supervisor: expected a table, found an array of tables (write [supervisor] with \
             single brackets)"
                .to_string(),
        );
        return;
    }
    let Some(t) = c.table(field) else { return };
    let (process_keys, keys) = (super::process::names(), names());
    let mut settings = SupervisorSettings::default();
    read_section(c, t, "supervisor", KEYS, &mut settings, |key| {
        let hint = if process_keys.contains(&key) {
            " (it belongs in a [[process]])".to_string()
        } else {
            did_you_mean(key, &keys, ALIASES)
        };
        format!("unknown key {key:?} in [supervisor]{hint}")
    });
    table.supervisor = settings;
}

/// `metrics = "127.0.0.1:9464"`: an IP address and port (`localhost` means 127.0.0.1).
fn listen_address(c: &mut Checker<'_>, field: &Field<'_>) -> Option<SocketAddr> {
    let s = c.string(field)?;
    let parsed = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => s.parse::<SocketAddr>(),
    };
    match parsed {
        Ok(a) if a.port() != 0 => Some(a),
        _ => c.reject(
            field.at(),
            format!(
                "{}: expected an address and port such as \"127.0.0.1:9464\", found {s:?}",
                field.path
            ),
        ),
    }
}
