//! `[agent]`: the task loop's settings (`ai-employee agent`), with its `weights` table.

use std::path::{Component, Path};
use std::time::Duration;

use ai_employee_vault::toml_fields::{Field, did_you_mean, suggest};
use toml_edit::{Item, Value};

use super::{Checker, Key, Table, names as key_names, process, read_section, set};
use crate::config::template::{self, Placeholder, TemplateError};
use crate::config::{AgentSettings, QueueUnreachable, Runner, Weights};

const MAX_CONCURRENT: i64 = 256;
const MAX_ATTEMPTS: i64 = 100;
const MAX_ITERATIONS: i64 = 20;
const MAX_BACKLOG: i64 = 1_000_000;
/// `dashboard_interval` below this would rewrite Dashboard.md many times a second.
const MIN_DASHBOARD_INTERVAL: Duration = Duration::from_secs(1);

const KEYS: &[Key<AgentSettings>] = &[
    ("command", |c, f, s| {
        set(argv(c, f, Templates::Command), &mut s.command)
    }),
    ("resume", |c, f, s| {
        set(arguments(c, f, Templates::Resume), &mut s.resume)
    }),
    ("prompt", |c, f, s| set(prompt_path(c, f), &mut s.prompt)),
    ("max_concurrent", |c, f, s| {
        set(count(c, f, MAX_CONCURRENT), &mut s.max_concurrent)
    }),
    ("timeout", |c, f, s| {
        set(c.positive_duration(f), &mut s.timeout)
    }),
    ("kill_after", |c, f, s| {
        set(c.duration(f), &mut s.kill_after)
    }),
    ("max_attempts", |c, f, s| {
        set(count(c, f, MAX_ATTEMPTS), &mut s.max_attempts)
    }),
    ("retry_delays", |c, f, s| {
        set(retry_delays(c, f), &mut s.retry_delays)
    }),
    ("max_iterations", |c, f, s| {
        set(count(c, f, MAX_ITERATIONS), &mut s.max_iterations)
    }),
    ("verify", |c, f, s| {
        set(argv(c, f, Templates::Verify).map(Some), &mut s.verify)
    }),
    ("approval_keywords", |c, f, s| {
        set(words(c, f), &mut s.approval_keywords)
    }),
    ("approval_timeout", |c, f, s| {
        set(c.positive_duration(f), &mut s.approval_timeout)
    }),
    ("vip_senders", |c, f, s| {
        set(words(c, f), &mut s.vip_senders)
    }),
    ("urgency_keywords", |c, f, s| {
        set(words(c, f), &mut s.urgency_keywords)
    }),
    ("weights", |c, f, s| set(weights(c, f), &mut s.weights)),
    ("max_backlog", |c, f, s| {
        set(count(c, f, MAX_BACKLOG), &mut s.max_backlog)
    }),
    ("max_error_rate", |c, f, s| {
        set(c.number_in(f, 0.0, 1.0), &mut s.max_error_rate)
    }),
    ("max_idle", |c, f, s| {
        set(c.positive_duration(f), &mut s.max_idle)
    }),
    ("dashboard_interval", |c, f, s| {
        set(dashboard_interval(c, f), &mut s.dashboard_interval)
    }),
    ("env", |c, f, s| set(process::env(c, f), &mut s.env)),
    ("queue", |c, f, s| {
        set(queue_url(c, f).map(Some), &mut s.queue.url)
    }),
    ("claim_timeout", |c, f, s| {
        set(c.positive_duration(f), &mut s.queue.claim_timeout)
    }),
    ("worker_timeout", |c, f, s| {
        set(c.positive_duration(f), &mut s.queue.worker_timeout)
    }),
    ("queue_unreachable", |c, f, s| {
        set(queue_unreachable(c, f), &mut s.queue.unreachable)
    }),
    ("runner", |c, f, s| set(runner(c, f), &mut s.runner)),
    ("image", |c, f, s| set(image(c, f).map(Some), &mut s.image)),
];

/// Names people bring from the orchestrator configurations the task loop replaces
/// (`orchestrator.yaml`), mapped to ours.
const ALIASES: &[(&str, &str)] = &[
    ("max_concurrent_tasks", "max_concurrent"),
    ("max_workers", "max_concurrent"),
    ("concurrency", "max_concurrent"),
    ("claude_timeout", "timeout"),
    ("priority_weights", "weights"),
    ("max_retries", "max_attempts"),
    ("retries", "max_attempts"),
    ("max_idle_time", "max_idle"),
    ("refresh_interval", "dashboard_interval"),
    ("environment", "env"),
    ("cmd", "command"),
    ("redis", "queue"),
    ("redis_url", "queue"),
    ("broker", "queue"),
    ("broker_url", "queue"),
    ("visibility_timeout", "claim_timeout"),
    ("container_image", "image"),
    ("container", "runner"),
];

const WEIGHT_KEYS: &[Key<Weights>] = &[
    ("urgency", |c, f, w| set(weight(c, f), &mut w.urgency)),
    ("deadline", |c, f, w| set(weight(c, f), &mut w.deadline)),
    ("sender", |c, f, w| set(weight(c, f), &mut w.sender)),
    ("age_per_hour", |c, f, w| {
        set(weight(c, f), &mut w.age_per_hour)
    }),
];

const WEIGHT_ALIASES: &[(&str, &str)] = &[
    ("priority", "urgency"),
    ("vip", "sender"),
    ("age", "age_per_hour"),
];

pub(super) fn names() -> Vec<&'static str> {
    key_names(KEYS)
}

/// For an `[agent]` key written elsewhere under another tool's name (`max_retries`): ours.
pub(super) fn alias(key: &str) -> Option<&'static str> {
    suggest(key, &[], ALIASES)
}

/// `[agent]`, into the table's settings.
pub(super) fn read(c: &mut Checker<'_>, field: &Field<'_>, table: &mut Table) {
    if let Item::ArrayOfTables(_) = field.item {
        c.error(
            field.at(),
            "agent: expected a table, found an array of tables (write [agent] with single \
             brackets)"
                .to_string(),
        );
        return;
    }
    let Some(t) = c.table(field) else { return };
    let (keys, process_keys) = (names(), process::names());
    let mut settings = AgentSettings::default();
    read_section(c, t, "agent", KEYS, &mut settings, |key| {
        let hint = if key == "args" {
            " (command holds the whole argument list: command = [\"claude\", \"-p\", \
             \"{prompt}\"])"
                .to_string()
        } else if process_keys.contains(&key) {
            " (it belongs in a [[process]])".to_string()
        } else {
            did_you_mean(key, &keys, ALIASES)
        };
        format!("unknown key {key:?} in [agent]{hint}")
    });
    containers(c, t, &settings);
    table.agent = settings;
}

/// `runner = "podman"` runs agents in containers on workers only: it needs `image`, a
/// `queue`, and `queue_unreachable = "wait"` (no run falls back to this host, where it
/// would run uncontained); `image` means nothing without it.
fn containers(c: &mut Checker<'_>, t: &dyn toml_edit::TableLike, s: &AgentSettings) {
    let at = |key: &str| {
        Field::entries(t, |k| format!("agent.{k}"))
            .find(|(name, _)| *name == key)
            .map(|(_, f)| (f.at(), f.str().ok()))
    };
    let image_only = |c: &mut Checker<'_>, why: &str| {
        if let Some((image_at, _)) = at("image") {
            c.error(
                image_at,
                format!("agent.image: used only with runner = \"podman\" ({why})"),
            );
        }
    };
    let runner_at = match at("runner") {
        None => return image_only(c, "set runner, or remove image"),
        Some((_, Some("process"))) => return image_only(c, "runner is \"process\""),
        Some((runner_at, Some("podman"))) => runner_at,
        Some(_) => return, // said already
    };
    if s.image.is_none() && at("image").is_none() {
        c.error(
            runner_at,
            "agent.runner: \"podman\" needs [agent] image, the container image the workers \
             run the agent in"
                .to_string(),
        );
    }
    if s.queue.url.is_none() {
        c.error(
            runner_at,
            "agent.runner: \"podman\" runs agents on workers only (ai-employee worker \
             --runner podman); set [agent] queue (docs/workers.md, \"Containers\")"
                .to_string(),
        );
    } else if s.queue.unreachable == QueueUnreachable::Local {
        c.error(
            runner_at,
            "agent.runner: \"podman\" needs queue_unreachable = \"wait\": a run that falls \
             back to this host would not be contained"
                .to_string(),
        );
    }
}

fn runner(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Runner> {
    Some(match c.choice(field, &["process", "podman"])? {
        "podman" => Runner::Podman,
        _ => Runner::Process,
    })
}

/// `image`: a container image reference (no spaces, not an option).
fn image(c: &mut Checker<'_>, field: &Field<'_>) -> Option<String> {
    let s = c.string(field)?;
    match crate::agent::container::check_image(s) {
        Ok(()) => Some(s.to_string()),
        Err(problem) => c.reject(field.at(), format!("{}: {problem}", field.path)),
    }
}

/// Which placeholders an argument list may use.
#[derive(Clone, Copy, PartialEq)]
enum Templates {
    Command,
    Resume,
    Verify,
}

impl Templates {
    fn allows(self, p: Placeholder) -> bool {
        p != Placeholder::SessionId || self == Templates::Resume
    }

    fn known(self) -> Vec<String> {
        Placeholder::ALL
            .into_iter()
            .filter(|p| self.allows(*p))
            .map(|p| format!("{{{}}}", p.name()))
            .collect()
    }
}

/// `command` or `verify`: a program and its arguments; the program must not be empty.
fn argv(c: &mut Checker<'_>, field: &Field<'_>, templates: Templates) -> Option<Vec<String>> {
    let args = arguments(c, field, templates)?;
    let Some(program) = args.first() else {
        let problem = match templates {
            Templates::Verify => "must not be empty (leave it out to skip verification)",
            _ => "must not be empty",
        };
        return c.reject(field.at(), format!("{}: {problem}", field.path));
    };
    if !program.trim().is_empty() {
        return Some(args);
    }
    let at = match field.item {
        Item::Value(Value::Array(a)) => a.get(0).and_then(Value::span).map(|s| s.start),
        _ => None,
    };
    c.reject(
        at.unwrap_or_else(|| field.at()),
        format!("{}[1]: the program must not be empty", field.path),
    )
}

/// An array of argument templates (see [`template`]).
fn arguments(c: &mut Checker<'_>, field: &Field<'_>, templates: Templates) -> Option<Vec<String>> {
    c.list(field, "an array of strings", |c, f| {
        let arg = c.string(f)?;
        if !c.no_nul(f, arg) {
            return None;
        }
        let problem = match template::parse(arg) {
            Ok(pieces) => pieces.into_iter().find_map(|piece| match piece {
                template::Piece::Placeholder(p) if !templates.allows(p) => Some(format!(
                    "{{{}}} is known only in resume (the arguments that continue a session)",
                    p.name()
                )),
                _ => None,
            }),
            Err(TemplateError::Unknown(name)) => {
                let known = templates.known();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let hint = match did_you_mean(&format!("{{{name}}}"), &known, &[]) {
                    h if h.is_empty() => format!(" (known: {})", known.join(", ")),
                    h => h,
                };
                Some(format!("unknown placeholder {{{name}}}{hint}"))
            }
            Err(e) => Some(e.to_string()),
        };
        match problem {
            Some(p) => c.reject(f.at(), format!("{}: {p}", f.path)),
            None => Some(arg.to_string()),
        }
    })
}

/// `prompt`: a file in the vault, as a relative path without `..`.
fn prompt_path(c: &mut Checker<'_>, field: &Field<'_>) -> Option<String> {
    let s = c.string(field)?;
    if !c.no_nul(field, s) {
        return None;
    }
    let path = Path::new(s);
    let problem = if s.trim().is_empty() {
        format!(
            "must not be empty (the default is {:?})",
            ai_employee_vault::layout::AGENT_PROMPT_FILE
        )
    } else if path.has_root() {
        format!("must be a path inside the vault, relative to it, found {s:?}")
    } else if path.components().any(|c| c == Component::ParentDir) {
        format!("must not leave the vault ('..'), found {s:?}")
    } else {
        return Some(s.to_string());
    };
    c.reject(field.at(), format!("{}: {problem}", field.path))
}

/// `queue`: a Redis URL without a password (docs/workers.md).
fn queue_url(c: &mut Checker<'_>, field: &Field<'_>) -> Option<String> {
    let s = c.string(field)?;
    match crate::queue::client::check_url(s) {
        Ok(()) => Some(s.to_string()),
        Err(problem) => c.reject(field.at(), format!("{}: {problem}", field.path)),
    }
}

fn queue_unreachable(c: &mut Checker<'_>, field: &Field<'_>) -> Option<QueueUnreachable> {
    Some(match c.choice(field, &["local", "wait"])? {
        "wait" => QueueUnreachable::Wait,
        _ => QueueUnreachable::Local,
    })
}

/// A count from 1 to `max`.
fn count(c: &mut Checker<'_>, field: &Field<'_>, max: i64) -> Option<u32> {
    let n = c.integer_in(field, 1, max)?;
    u32::try_from(n).ok()
}

/// `retry_delays`: at least one duration.
fn retry_delays(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Vec<Duration>> {
    let delays = c.list(field, "an array of durations", Checker::duration)?;
    if delays.is_empty() {
        return c.reject(
            field.at(),
            format!(
                "{}: must not be empty (the last delay repeats, so one is enough)",
                field.path
            ),
        );
    }
    Some(delays)
}

/// Keywords and senders: strings with something in them.
fn words(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Vec<String>> {
    c.list(field, "an array of strings", |c, f| {
        let s = c.string(f)?;
        if s.trim().is_empty() {
            return c.reject(f.at(), format!("{}: must not be empty", f.path));
        }
        c.no_nul(f, s).then(|| s.to_string())
    })
}

fn dashboard_interval(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Duration> {
    let d = c.duration(field)?;
    if d >= MIN_DASHBOARD_INTERVAL {
        return Some(d);
    }
    let found = ai_employee_vault::units::format_duration(d);
    c.reject(
        field.at(),
        format!("{}: must be at least 1s, found {found}", field.path),
    )
}

/// `[agent.weights]` (or `weights = { … }`).
fn weights(c: &mut Checker<'_>, field: &Field<'_>) -> Option<Weights> {
    let table = c.table(field)?;
    let before = c.problems.count();
    let mut w = Weights::default();
    let keys = key_names(WEIGHT_KEYS);
    read_section(c, table, &field.path, WEIGHT_KEYS, &mut w, |key| {
        let hint = did_you_mean(key, &keys, WEIGHT_ALIASES);
        format!("unknown key {key:?} in [agent.weights]{hint}")
    });
    (c.problems.count() == before).then_some(w)
}

/// A weight: a finite number, zero or more.
fn weight(c: &mut Checker<'_>, field: &Field<'_>) -> Option<f64> {
    let x = c.number(field)?;
    let problem = if !x.is_finite() {
        format!("must be a finite number, found {x}")
    } else if x < 0.0 {
        format!("must not be negative, found {x}")
    } else {
        // `-0.0` is zero.
        return Some(x.abs());
    };
    c.reject(field.at(), format!("{}: {problem}", field.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_and_aliases() {
        let keys = &names()[..];
        assert_eq!(
            suggest("max_concurent", keys, ALIASES),
            Some("max_concurrent")
        );
        assert_eq!(suggest("claude_timeout", keys, ALIASES), Some("timeout"));
        assert_eq!(suggest("Max-Retries", keys, ALIASES), Some("max_attempts"));
        assert_eq!(alias("priority_weights"), Some("weights"));
        assert_eq!(alias("vip_senders"), None, "a key of ours is not an alias");
        assert_eq!(suggest("banana", keys, ALIASES), None);
    }

    #[test]
    fn only_resume_knows_the_session() {
        assert!(Templates::Resume.allows(Placeholder::SessionId));
        assert!(!Templates::Command.allows(Placeholder::SessionId));
        assert!(!Templates::Verify.allows(Placeholder::SessionId));
        assert_eq!(
            Templates::Verify.known(),
            ["{prompt}", "{task}", "{task_file}", "{vault}"]
        );
    }
}
