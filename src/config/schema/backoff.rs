//! `backoff = { … }` of a `[[process]]`: the restart delays.

use ai_employee_vault::toml_fields::{Field, did_you_mean};
use ai_employee_vault::units::format_duration;

use super::{Checker, Key, names, read_section};
use crate::config::BackoffSpec;

const MAX_FACTOR: f64 = 100.0;

/// A `backoff` table as read so far.
struct Draft {
    spec: BackoffSpec,
    /// Where `initial` and `max` were written, for the max >= initial check.
    initial_at: Option<usize>,
    max_at: Option<usize>,
}

const KEYS: &[Key<Draft>] = &[
    ("initial", |c, f, d| {
        if let Some(v) = c.duration(f) {
            (d.spec.initial, d.initial_at) = (v, Some(f.at()));
        }
    }),
    ("factor", |c, f, d| {
        super::set(c.number_in(f, 1.0, MAX_FACTOR), &mut d.spec.factor)
    }),
    ("max", |c, f, d| {
        if let Some(v) = c.duration(f) {
            (d.spec.max, d.max_at) = (v, Some(f.at()));
        }
    }),
    ("reset_after", |c, f, d| {
        super::set(c.duration(f), &mut d.spec.reset_after)
    }),
];

/// Names people bring from other tools, mapped to ours.
const ALIASES: &[(&str, &str)] = &[
    ("min", "initial"),
    ("minimum", "initial"),
    ("delay", "initial"),
    ("maximum", "max"),
    ("multiplier", "factor"),
    ("reset", "reset_after"),
];

/// The `backoff` table of a process (`None` when it has a problem).
pub(super) fn read(c: &mut Checker<'_>, field: &Field<'_>) -> Option<BackoffSpec> {
    let table = c.table(field)?;
    let before = c.problems.count();
    let mut d = Draft {
        spec: BackoffSpec::default(),
        initial_at: None,
        max_at: None,
    };
    let keys = names(KEYS);
    read_section(c, table, &field.path, KEYS, &mut d, |key| {
        let hint = did_you_mean(key, &keys, ALIASES);
        format!("unknown key {key:?} in {}{hint}", field.path)
    });
    if c.problems.count() != before {
        return None;
    }
    let b = d.spec;
    if b.max >= b.initial {
        return Some(b);
    }
    let (initial, max) = (format_duration(b.initial), format_duration(b.max));
    match (d.max_at, d.initial_at) {
        (Some(at), Some(_)) => c.error(
            at,
            format!(
                "{}.max: {max} is less than backoff.initial ({initial})",
                field.path
            ),
        ),
        (Some(at), None) => c.error(
            at,
            format!(
                "{}.max: {max} is less than backoff.initial ({initial}, the default); set \
                 initial too",
                field.path
            ),
        ),
        (None, Some(at)) => c.error(
            at,
            format!(
                "{}.initial: {initial} is more than backoff.max ({max}, the default); set max \
                 too",
                field.path
            ),
        ),
        (None, None) => {}
    }
    None
}
