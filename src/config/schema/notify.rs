//! `[[notify]]`: webhooks told about what needs a person.

use std::time::Duration;

use ai_employee_vault::credentials::is_loopback;
use ai_employee_vault::toml_fields::{Field, did_you_mean};
use toml_edit::{Item, TableLike, Value};

use super::{Checker, Key, Table, array_of_tables, names, read_section, set};
use crate::config::{NotifyEvent, NotifySpec};

const MAX_RETRIES: i64 = 10;

/// One `[[notify]]` as read so far.
struct Draft {
    webhook: Option<String>,
    spec: NotifySpec,
}

const KEYS: &[Key<Draft>] = &[
    ("webhook", webhook),
    ("events", |c, f, d| {
        set(event_list(c, f), &mut d.spec.events)
    }),
    ("timeout", |c, f, d| {
        set(c.positive_duration(f), &mut d.spec.timeout)
    }),
    ("retries", |c, f, d| {
        let n = c.integer_in(f, 0, MAX_RETRIES);
        set(n.and_then(|n| u32::try_from(n).ok()), &mut d.spec.retries);
    }),
];

const ALIASES: &[(&str, &str)] = &[("url", "webhook"), ("on", "events")];

/// `[[notify]]`, into the table's webhooks.
pub(super) fn read_all(c: &mut Checker<'_>, field: &Field<'_>, table: &mut Table) {
    table.notify = array_of_tables(c, field, false)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (t, at))| read_one(c, i + 1, t, at))
        .collect();
}

/// One `[[notify]]` (`None` when it has a problem).
fn read_one(
    c: &mut Checker<'_>,
    number: usize,
    table: &dyn TableLike,
    at: usize,
) -> Option<NotifySpec> {
    let prefix = format!("notify[{number}]");
    let before = c.problems.count();
    let mut d = Draft {
        webhook: None,
        spec: NotifySpec {
            webhook: String::new(),
            events: NotifyEvent::ALL.to_vec(),
            timeout: Duration::from_secs(5),
            retries: 3,
        },
    };
    let keys = names(KEYS);
    read_section(c, table, &prefix, KEYS, &mut d, |key| {
        let hint = did_you_mean(key, &keys, ALIASES);
        format!("unknown key {key:?} in [[notify]]{hint}")
    });
    let ok = c.problems.count() == before;
    let Some(webhook) = d.webhook else {
        if ok {
            c.error(at, format!("{prefix}: missing required key \"webhook\""));
        }
        return None;
    };
    ok.then_some(NotifySpec { webhook, ..d.spec })
}

fn webhook(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    let Some(url) = c.string(field) else { return };
    match webhook_problem(url) {
        None => d.webhook = Some(url.to_string()),
        Some(p) => c.error(field.at(), format!("{}: {p}", field.path)),
    }
}

/// Why a webhook URL is unusable: not http(s), or plain http to a host that is not on
/// this machine (the events would cross the network unencrypted).
fn webhook_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .map(|r| (r, true))
        .or_else(|| url.strip_prefix("http://").map(|r| (r, false)));
    let Some((rest, tls)) = rest else {
        return Some(format!("expected an https:// URL, found {url:?}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Some("the URL has no host".to_string());
    }
    (!tls && !is_loopback(host))
        .then(|| format!("http:// is allowed only for a loopback host; use https:// for {host}"))
}

fn event_list(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Vec<NotifyEvent>> {
    let Item::Value(Value::Array(array)) = field.item else {
        return c.type_error(field, "a list of event names");
    };
    let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
    let mut out = Vec::new();
    for v in array.iter() {
        let at = v.span().map_or_else(|| field.at(), |s| s.start);
        let problem = match v {
            Value::String(s) => match NotifyEvent::parse(s.value()) {
                Some(e) => {
                    if !out.contains(&e) {
                        out.push(e);
                    }
                    continue;
                }
                None => format!(
                    "{}: unknown event {:?} (known: {}){}",
                    field.path,
                    s.value(),
                    names.join(", "),
                    did_you_mean(s.value(), &names, &[])
                ),
            },
            other => format!(
                "{}: expected event names (strings), found {}",
                field.path,
                ai_employee_vault::toml_fields::Kind::of_value(other).noun()
            ),
        };
        return c.reject(at, problem);
    }
    Some(out)
}
