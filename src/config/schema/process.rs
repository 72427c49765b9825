//! `[[process]]`: one child each (its `backoff` table is in [`super::backoff`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ai_employee_vault::toml_fields::{Field, did_you_mean, line_column};
use toml_edit::{Item, TableLike, Value};

use super::{Checker, Key, Table, array_of_tables, backoff, names as key_names, read_section, set};
use crate::config::read::{one_of, quote_hint};
use crate::config::{MAX_RESTARTS, ProcessSpec, RestartPolicy, StopSignal};
use crate::process::spawn::SELF_COMMAND;

/// One `[[process]]` as read so far.
struct Draft {
    /// Every field but name, command and description, which are required or defaulted
    /// from others.
    spec: ProcessSpec,
    /// The name if valid, and its offset (for the duplicate check).
    name: Option<(String, usize)>,
    name_present: bool,
    command: Option<String>,
    command_present: bool,
    /// Offsets of `command`'s value and of each `args` element, for the check of this
    /// binary's own command lines.
    command_at: usize,
    args_at: Vec<usize>,
    /// `args` was written but could not be read (its problem is reported already).
    args_broken: bool,
    description: Option<String>,
}

const KEYS: &[Key<Draft>] = &[
    ("name", name),
    ("description", description),
    ("command", command),
    ("args", args),
    ("enabled", |c, f, d| set(c.boolean(f), &mut d.spec.enabled)),
    ("restart", restart),
    ("backoff", |c, f, d| {
        set(backoff::read(c, f), &mut d.spec.backoff)
    }),
    ("max_restarts", max_restarts),
    ("restart_window", |c, f, d| {
        set(c.positive_duration(f), &mut d.spec.restart_window);
    }),
    ("heartbeat_timeout", |c, f, d| {
        set(
            c.positive_duration(f).map(Some),
            &mut d.spec.heartbeat_timeout,
        );
    }),
    ("max_memory", max_memory),
    ("env", |c, f, d| set(env(c, f), &mut d.spec.env)),
    ("cwd", cwd),
    ("stop_timeout", |c, f, d| {
        set(c.duration(f).map(Some), &mut d.spec.stop_timeout)
    }),
    ("stop_signal", |c, f, d| {
        set(stop_signal(c, f), &mut d.spec.stop_signal)
    }),
    ("log_max_size", |c, f, d| {
        set(c.log_size(f).map(Some), &mut d.spec.log_max_size)
    }),
    ("log_max_files", |c, f, d| {
        set(c.log_files(f).map(Some), &mut d.spec.log_max_files)
    }),
    ("log_timestamps", |c, f, d| {
        set(c.boolean(f).map(Some), &mut d.spec.log_timestamps)
    }),
];

/// Names people bring from supervisord, systemd or docker-compose, mapped to ours.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("cmd", "command"),
    ("program", "command"),
    ("exec", "command"),
    ("arguments", "args"),
    ("argv", "args"),
    ("environment", "env"),
    ("directory", "cwd"),
    ("dir", "cwd"),
    ("workdir", "cwd"),
    ("working_dir", "cwd"),
    ("working_directory", "cwd"),
    ("autorestart", "restart"),
    ("restart_policy", "restart"),
    ("autostart", "enabled"),
    ("disabled", "enabled"),
    ("stopsignal", "stop_signal"),
    ("kill_signal", "stop_signal"),
    ("stopwaitsecs", "stop_timeout"),
    ("memory_limit", "max_memory"),
    ("mem_limit", "max_memory"),
    ("heartbeat", "heartbeat_timeout"),
    ("retries", "max_restarts"),
    ("startretries", "max_restarts"),
    ("timestamps", "log_timestamps"),
];

pub(super) const RESTART_VALUES: &[&str] = &["always", "on-failure", "never"];

const SIGNAL_VALUES: &[&str] = &["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"];

const MAX_NAME_LEN: usize = 64;

pub(super) fn names() -> Vec<&'static str> {
    key_names(KEYS)
}

/// `[[process]]` (or `process = [{ … }, …]`), into the table's processes; names must be
/// unique.
pub(super) fn read_all(c: &mut Checker<'_>, field: &Field<'_>, table: &mut Table) {
    // name → line of its first definition
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut specs = Vec::new();
    for (i, (t, at)) in array_of_tables(c, field, true).into_iter().enumerate() {
        let (spec, name) = read_one(c, i + 1, t, at);
        if let Some((name, name_at)) = name {
            match seen.get(&name) {
                Some(first) => c.error(
                    name_at,
                    format!("duplicate process name {name:?} (first defined at line {first})"),
                ),
                None => {
                    seen.insert(name, line_column(c.text, name_at).0);
                }
            }
        }
        specs.extend(spec);
    }
    table.processes = specs;
}

/// One `[[process]]`: the spec (`None` when `name` or `command` is unusable) and, when
/// the name is valid, the name and its offset, for the duplicate check.
fn read_one(
    c: &mut Checker<'_>,
    number: usize,
    table: &dyn TableLike,
    at: usize,
) -> (Option<ProcessSpec>, Option<(String, usize)>) {
    let prefix = format!("process[{number}]");
    let mut d = Draft {
        spec: ProcessSpec::new("", "", &[]),
        name: None,
        name_present: false,
        command: None,
        command_present: false,
        command_at: at,
        args_at: Vec::new(),
        args_broken: false,
        description: None,
    };
    let keys = names();
    read_section(c, table, &prefix, KEYS, &mut d, |key| {
        let hint = if key == "health_interval" {
            " (it belongs in [supervisor])".to_string()
        } else {
            did_you_mean(key, &keys, ALIASES)
        };
        format!("unknown key {key:?} in [[process]]{hint}")
    });
    match (d.name_present, d.command_present) {
        (false, false) => c.error(
            at,
            format!("{prefix}: missing required keys \"name\" and \"command\""),
        ),
        (false, true) => c.error(at, format!("{prefix}: missing required key \"name\"")),
        (true, false) => c.error(at, format!("{prefix}: missing required key \"command\"")),
        (true, true) => {}
    }
    let spec = match (&d.name, d.command) {
        (Some((name, _)), Some(command)) => {
            let mut spec = d.spec;
            spec.description = d.description.unwrap_or_else(|| name.clone());
            spec.name = name.clone();
            spec.command = command;
            if spec.command == SELF_COMMAND && !d.args_broken {
                self_command_line(c, &prefix, &spec.args, d.command_at, &d.args_at);
            }
            Some(spec)
        }
        _ => None,
    };
    (spec, d.name)
}

fn name(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    d.name_present = true;
    if let Some(n) = c.string(field)
        && check_name(c, field, n)
    {
        d.name = Some((n.to_string(), field.at()));
    }
}

fn check_name(c: &mut Checker<'_>, field: &Field<'_>, name: &str) -> bool {
    let problem = if name.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(ch) = name
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')))
    {
        Some(format!(
            "invalid character {ch:?} in {name:?} (use letters, digits, '_', '-' and '.')"
        ))
    } else if name.starts_with('.') {
        Some(format!("must not start with '.', found {name:?}"))
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "too long ({} characters; at most {MAX_NAME_LEN})",
            name.len()
        ))
    } else {
        None
    };
    match problem {
        Some(p) => {
            c.error(field.at(), format!("{}: {p}", field.path));
            false
        }
        None => true,
    }
}

fn description(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    let Some(text) = c.string(field) else { return };
    if text.chars().any(char::is_control) {
        c.error(
            field.at(),
            format!(
                "{}: must be a single line without control characters",
                field.path
            ),
        );
    } else {
        d.description = Some(text.to_string());
    }
}

fn command(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    d.command_present = true;
    d.command_at = field.at();
    if let Some(hint) = split_command_hint(field.item) {
        c.error(
            field.at(),
            format!("{}: expected a string, found an array{hint}", field.path),
        );
    } else if let Some(command) = c.string(field) {
        if command.trim().is_empty() {
            c.error(field.at(), format!("{}: must not be empty", field.path));
        } else if c.no_nul(field, command) {
            d.command = Some(command.to_string());
        }
    }
}

fn args(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    d.args_broken = true;
    if let Some(args) = c.string_list(field) {
        d.args_broken = false;
        d.args_at = match field.value() {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.span().map_or_else(|| field.at(), |s| s.start))
                .collect(),
            _ => vec![field.at(); args.len()],
        };
        d.spec.args = args;
    }
}

/// `command = "ai-employee"`: its `args` must be a command line this binary accepts, or
/// the child would exit 2 at each start and be restarted forever. They are parsed by the
/// binary's own parser without running anything; a problem is reported at the argument
/// it is about (else at `args`, else at `command`).
fn self_command_line(
    c: &mut Checker<'_>,
    prefix: &str,
    args: &[String],
    command_at: usize,
    args_at: &[usize],
) {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};

    let argv = std::iter::once(SELF_COMMAND).chain(args.iter().map(String::as_str));
    // Without the environment: the child's is not the one the table is checked in (an
    // argument a variable may give is not required here).
    let cmd = crate::cli::without_env(crate::cli::Cli::command(), true);
    let Err(e) = cmd.try_get_matches_from(argv) else {
        return;
    };
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let hint = |kind| {
        context(kind)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default()
    };
    let (word, message) = match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let word = context(ContextKind::InvalidSubcommand);
            let hint = hint(ContextKind::SuggestedSubcommand);
            let shown = word.clone().unwrap_or_default();
            (word, format!("unknown subcommand {shown:?}{hint}"))
        }
        ErrorKind::UnknownArgument => {
            // "--flag=value" is reported as "--flag".
            let word = context(ContextKind::InvalidArg);
            let hint = hint(ContextKind::SuggestedArg);
            let shown = word.clone().unwrap_or_default();
            (word, format!("unknown argument {shown:?}{hint}"))
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::Strings(v)) => v.join(", "),
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            (
                None,
                format!("`{SELF_COMMAND} {}` is missing {missing}", args.join(" ")),
            )
        }
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => (
            args.iter()
                .find(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version" | "help"))
                .cloned(),
            "would print help or the version and exit instead of running".to_string(),
        ),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand if args.is_empty() => (
            None,
            format!(
                "missing: `{SELF_COMMAND}` needs a subcommand (e.g. args = [\"watch\", \
                 \"filesystem\"])"
            ),
        ),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => (
            None,
            format!("`{SELF_COMMAND} {}` needs a subcommand", args.join(" ")),
        ),
        _ => {
            // clap's own first line, without its "error: " and styling.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            (
                context(ContextKind::InvalidValue).or_else(|| context(ContextKind::InvalidArg)),
                first.strip_prefix("error: ").unwrap_or(first).to_string(),
            )
        }
    };
    let position = word
        .as_deref()
        .and_then(|w| {
            args.iter().position(|a| {
                a == w
                    || a.split_once('=')
                        .is_some_and(|(flag, value)| flag == w || value == w)
            })
        })
        .and_then(|i| args_at.get(i).copied())
        .or_else(|| args_at.first().copied())
        .unwrap_or(command_at);
    c.error(position, format!("{prefix}.args: {message}"));
}

/// For `command = ["prog", "a", "b"]`: ` (write command = "prog" and args = ["a", "b"])`.
fn split_command_hint(item: &Item) -> Option<String> {
    let Item::Value(Value::Array(array)) = item else {
        return None;
    };
    let words: Vec<&str> = array.iter().map(Value::as_str).collect::<Option<_>>()?;
    let (program, args) = words.split_first()?;
    Some(format!(
        " (write command = {program:?} and args = [{}])",
        one_of(args)
    ))
}

fn restart(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    if let Some(v) = c.choice(field, RESTART_VALUES) {
        d.spec.restart = match v {
            "on-failure" => RestartPolicy::OnFailure,
            "never" => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        };
    }
}

fn max_restarts(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    let Some(n) = c.integer(field) else { return };
    if n < 1 {
        c.error(
            field.at(),
            format!(
                "{}: must be at least 1, found {n} (leave it out to never give up)",
                field.path
            ),
        );
    } else if let Some(n) = u32::try_from(n).ok().filter(|&n| n <= MAX_RESTARTS) {
        d.spec.max_restarts = Some(n);
    } else {
        c.error(
            field.at(),
            format!("{}: must be at most {MAX_RESTARTS}, found {n}", field.path),
        );
    }
}

fn max_memory(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    d.spec.max_memory = match c.size(field) {
        Some(0) => c.greater_than_zero(field),
        n => n,
    };
}

fn cwd(c: &mut Checker<'_>, field: &Field<'_>, d: &mut Draft) {
    let Some(cwd) = c.string(field) else { return };
    if cwd.is_empty() {
        c.error(
            field.at(),
            format!(
                "{}: must not be empty (leave it out to run in the vault)",
                field.path
            ),
        );
    } else if c.no_nul(field, cwd) {
        d.spec.cwd = Some(PathBuf::from(cwd));
    }
}

/// `env`: a table of strings, the names usable as environment variable names.
pub(super) fn env(c: &mut Checker<'_>, field: &Field<'_>) -> Option<BTreeMap<String, String>> {
    let table = c.table(field)?;
    let mut env = BTreeMap::new();
    let mut ok = true;
    for (name, var) in Field::entries(table, |name| format!("{}.{}", field.path, key_path(name))) {
        let problem = if name.is_empty() {
            Some("variable name must not be empty")
        } else if name.contains('=') {
            Some("variable name must not contain '='")
        } else if name.contains('\0') {
            Some("variable name must not contain a NUL character")
        } else {
            None
        };
        if let Some(p) = problem {
            c.error(var.key_at(), format!("{}: {p}", var.path));
            ok = false;
            continue;
        }
        match var.item {
            Item::Value(Value::String(s)) => {
                if c.no_nul(&var, s.value()) {
                    env.insert(name.to_string(), s.value().clone());
                } else {
                    ok = false;
                }
            }
            other => {
                let hint = match other {
                    Item::Value(v) => quote_hint(v),
                    _ => String::new(),
                };
                c.error(
                    var.at(),
                    format!(
                        "{}: expected a string, found {}{hint}",
                        var.path,
                        var.kind().noun()
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(env)
}

/// `env.RUST_LOG`, or `env."MY VAR"` when the key needs quoting in TOML.
fn key_path(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn stop_signal(c: &mut Checker<'_>, field: &Field<'_>) -> Option<StopSignal> {
    let s = c.string(field)?;
    let bare = s.strip_prefix("SIG").unwrap_or(s);
    let signal = match bare {
        "TERM" => StopSignal::Term,
        "INT" => StopSignal::Int,
        "HUP" => StopSignal::Hup,
        "QUIT" => StopSignal::Quit,
        "USR1" => StopSignal::Usr1,
        "USR2" => StopSignal::Usr2,
        _ => {
            let upper = bare.to_ascii_uppercase();
            let upper = upper.strip_prefix("SIG").unwrap_or(&upper);
            let hint = if upper == "KILL" {
                " (SIGKILL is sent anyway when stop_timeout runs out)".to_string()
            } else if SIGNAL_VALUES.contains(&upper) {
                format!(" (did you mean {upper:?}?)")
            } else {
                String::new()
            };
            c.error(
                field.at(),
                format!(
                    "{}: expected one of {} (with or without \"SIG\"), found {s:?}{hint}",
                    field.path,
                    one_of(SIGNAL_VALUES)
                ),
            );
            return None;
        }
    };
    Some(signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_employee_vault::toml_fields::suggest;

    #[test]
    fn suggestions() {
        let process_keys = &names()[..];
        assert_eq!(suggest("restrat", process_keys, ALIASES), Some("restart"));
        assert_eq!(suggest("Name", process_keys, ALIASES), Some("name"));
        assert_eq!(
            suggest("stop-signal", process_keys, ALIASES),
            Some("stop_signal")
        );
        assert_eq!(suggest("environment", process_keys, ALIASES), Some("env"));
        assert_eq!(suggest("banana", process_keys, ALIASES), None);
        assert_eq!(
            suggest("on_failure", RESTART_VALUES, &[]),
            Some("on-failure")
        );
        assert_eq!(suggest("sometimes", RESTART_VALUES, &[]), None);
    }
}
