//! One schema per section of the table: its keys, how each value is read into the model,
//! what an unknown key is told. Each key's reader records its own problems (see
//! [`Checker`]), so one pass over the tree finds all of them.
//!
//! The sections: the top level (this file), `[supervisor]`, `[[process]]` (with its
//! `backoff` and `env` tables), `[[notify]]` and `[agent]` (with its `weights` table).

mod agent;
mod backoff;
mod notify;
mod process;
mod supervisor;

use ai_employee_vault::toml_fields::{Field, Kind, suggest};
use toml_edit::{Item, TableLike, Value};

use super::read::Checker;
use super::{AgentSettings, NotifySpec, ProcessSpec, SupervisorSettings};

/// One key of a section: its name and how its value is read into the section's draft.
type Key<D> = (&'static str, fn(&mut Checker<'_>, &Field<'_>, &mut D));

/// The names of a section's keys, in table order (the order suggestions prefer).
fn names<D>(keys: &[Key<D>]) -> Vec<&'static str> {
    keys.iter().map(|(name, _)| *name).collect()
}

/// Read every key of `table` (named `prefix.key` in messages) into `draft`; a key the
/// section does not have gets the message `unknown(key)`, at the key.
fn read_section<D>(
    c: &mut Checker<'_>,
    table: &dyn TableLike,
    prefix: &str,
    keys: &[Key<D>],
    draft: &mut D,
    unknown: impl Fn(&str) -> String,
) {
    let path = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    for (name, field) in Field::entries(table, path) {
        match keys.iter().find(|(key, _)| *key == name) {
            Some((_, read)) => read(c, &field, draft),
            None => c.error(field.key_at(), unknown(name)),
        }
    }
}

/// Store `value` in `slot` if it was read (a problem was recorded otherwise).
fn set<T>(value: Option<T>, slot: &mut T) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The entries of `[[name]]` (and, when `inline`, of `name = [{ … }, …]`, the same data),
/// each with the offset of its header or `{`.
fn array_of_tables<'f>(
    c: &mut Checker<'_>,
    field: &Field<'f>,
    inline: bool,
) -> Vec<(&'f dyn TableLike, usize)> {
    let name = &field.path;
    let at = |span: Option<std::ops::Range<usize>>| span.map_or_else(|| field.at(), |s| s.start);
    match field.item {
        Item::ArrayOfTables(array) => array
            .iter()
            .map(|t| (t as &dyn TableLike, at(t.span())))
            .collect(),
        Item::Value(Value::Array(array)) if inline => {
            let mut tables: Vec<(&'f dyn TableLike, usize)> = Vec::new();
            for (i, v) in array.iter().enumerate() {
                match v {
                    Value::InlineTable(t) => tables.push((t, at(v.span()))),
                    other => c.error(
                        at(v.span()),
                        format!(
                            "{name}[{}]: expected a table, found {}",
                            i + 1,
                            Kind::of_value(other).noun()
                        ),
                    ),
                }
            }
            tables
        }
        Item::Table(_) => c
            .reject(
                field.at(),
                format!(
                    "{name}: expected an array of tables, found a table (write [[{name}]] with \
                     double brackets)"
                ),
            )
            .unwrap_or_default(),
        _ => c
            .type_error(field, &format!("an array of tables ([[{name}]])"))
            .unwrap_or_default(),
    }
}

/// The whole table.
#[derive(Default)]
pub(super) struct Table {
    pub supervisor: SupervisorSettings,
    /// In file order.
    pub processes: Vec<ProcessSpec>,
    pub notify: Vec<NotifySpec>,
    pub agent: AgentSettings,
}

const TOP: &[Key<Table>] = &[
    ("supervisor", supervisor::read),
    ("process", process::read_all),
    ("notify", notify::read_all),
    ("agent", agent::read),
];

/// Read the top-level table.
pub(super) fn read(c: &mut Checker<'_>, root: &dyn TableLike) -> Table {
    let mut table = Table::default();
    let homes = [
        ("[supervisor]", supervisor::names()),
        ("a [[process]]", process::names()),
        ("[agent]", agent::names()),
    ];
    read_section(c, root, "", TOP, &mut table, |name| {
        let home: Vec<&str> = homes
            .iter()
            .filter(|(_, keys)| keys.contains(&name))
            .map(|(home, _)| *home)
            .collect();
        let hint = if !home.is_empty() {
            format!(" (it belongs in {})", home.join(" or "))
        } else if let Some(key) = agent::alias(name) {
            format!(" (it belongs in [agent], as {key:?})")
        } else {
            match suggest(name, &names(TOP), TOP_ALIASES) {
                Some(s) => format!(" (did you mean {s:?}?)"),
                None => " (only [supervisor], [[process]], [[notify]] and [agent] are allowed)"
                    .to_string(),
            }
        };
        format!("unknown key {name:?} at the top level{hint}")
    });
    table
}

const TOP_ALIASES: &[(&str, &str)] = &[
    ("processes", "process"),
    ("notification", "notify"),
    ("notifications", "notify"),
    ("webhook", "notify"),
    ("webhooks", "notify"),
    ("orchestrator", "agent"),
    ("tasks", "agent"),
];
