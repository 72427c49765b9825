//! TOML text → validated [`Config`].
//!
//! `toml_edit` parses the text and keeps the byte span of every key and value. A syntax
//! error stops there (one error, at the parser's position). Otherwise [`Checker`] walks the
//! tree once, builds the model with defaults filled in, and records *every* problem with
//! the offset of the offending key or value; the problems are then sorted by position and
//! turned into `file:line:column: message` errors.
//!
//! Message style: lowercase, names the field path (`process[2].restart`, counting
//! `[[process]]` entries from 1), says what was expected and what was found, and suggests
//! the fix when there is an obvious one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use ai_employee_vault::units::{format_duration, format_size, parse_duration, parse_size};
use toml_edit::{Document, Item, Key, TableLike, Value};

use super::{
    BackoffSpec, Config, ConfigError, ConfigErrors, MAX_DURATION, MAX_RESTARTS, MAX_SIZE,
    NotifyEvent, NotifySpec, ProcessSpec, RestartPolicy, Source, StopSignal, SupervisorSettings,
};

const SUPERVISOR_KEYS: &[&str] = &[
    "health_interval",
    "stop_timeout",
    "log_max_size",
    "log_max_files",
    "metrics",
];

const NOTIFY_KEYS: &[&str] = &["webhook", "events", "timeout", "retries"];
const MAX_NOTIFY_RETRIES: i64 = 10;

const PROCESS_KEYS: &[&str] = &[
    "name",
    "description",
    "command",
    "args",
    "enabled",
    "restart",
    "backoff",
    "max_restarts",
    "restart_window",
    "heartbeat_timeout",
    "max_memory",
    "env",
    "cwd",
    "stop_timeout",
    "stop_signal",
    "log_max_size",
    "log_max_files",
];

const BACKOFF_KEYS: &[&str] = &["initial", "factor", "max", "reset_after"];

/// Names people bring from supervisord, systemd or docker-compose, mapped to ours.
const PROCESS_ALIASES: &[(&str, &str)] = &[
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
];

const SUPERVISOR_ALIASES: &[(&str, &str)] = &[
    ("interval", "health_interval"),
    ("health_check_interval", "health_interval"),
    ("grace_period", "stop_timeout"),
    ("stop_grace_period", "stop_timeout"),
];

const BACKOFF_ALIASES: &[(&str, &str)] = &[
    ("min", "initial"),
    ("minimum", "initial"),
    ("delay", "initial"),
    ("maximum", "max"),
    ("multiplier", "factor"),
    ("reset", "reset_after"),
];

const RESTART_VALUES: &[&str] = &["always", "on-failure", "never"];

const SIGNAL_VALUES: &[&str] = &["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"];

/// `log_max_size` below this would rotate on almost every line.
const MIN_LOG_SIZE: u64 = 1024;
const MAX_LOG_FILES: i64 = 100;
const MAX_BACKOFF_FACTOR: f64 = 100.0;
const MAX_NAME_LEN: usize = 64;

pub(super) fn parse(text: &str, source: Source) -> Result<Config, ConfigErrors> {
    let file = source.to_string();
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = match e.span() {
                Some(span) => line_column(text, span.start),
                None => (0, 0),
            };
            return Err(ConfigErrors(vec![ConfigError {
                file,
                line,
                column,
                message: syntax_message(text, &e),
            }]));
        }
    };

    let mut checker = Checker::new(text);
    let (supervisor, processes, notify) = checker.root(doc.as_table());
    if checker.problems.is_empty() {
        return Ok(Config {
            source,
            supervisor,
            processes,
            notify,
        });
    }
    // Stable: problems at the same spot keep the order they were found in.
    checker.problems.sort_by_key(|p| p.0);
    Err(ConfigErrors(
        checker
            .problems
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = line_column(text, offset);
                ConfigError {
                    file: file.clone(),
                    line,
                    column,
                    message,
                }
            })
            .collect(),
    ))
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
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!tls && !loopback)
        .then(|| format!("http:// is allowed only for a loopback host; use https:// for {host}"))
}

/// `invalid TOML: …` from the parser's message, naming the key for a duplicate.
fn syntax_message(text: &str, e: &toml_edit::TomlError) -> String {
    let message = e.message().trim_end_matches('\n');
    let start = e.span().map_or(0, |s| s.start);
    let snippet = e.span().and_then(|s| text.get(s)).unwrap_or("");
    let rest = text.get(start..).unwrap_or("");
    let line = text.get(..start).unwrap_or("");
    let line = &line[line.rfind('\n').map_or(0, |i| i + 1)..];
    if message == "duplicate key" && !snippet.is_empty() {
        // `[supervisor]` twice is a table defined twice, not a key.
        let header = line.trim_start();
        if header.starts_with('[') && !header.starts_with("[[") {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            return format!(
                "invalid TOML: table {header}{} is defined more than once",
                &rest[..end]
            );
        }
        format!(
            "invalid TOML: duplicate key {:?}",
            snippet.trim_matches(['"', '\''])
        )
    } else if message.starts_with("string values must be quoted") {
        // `health_interval = 30s`: show the quoted form.
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']' | '#'))
            .collect();
        if word.is_empty() {
            "invalid TOML: missing value after '='".to_string()
        } else {
            format!("invalid TOML: string values must be quoted (write {word:?})")
        }
    } else {
        format!("invalid TOML: {message}")
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = 1 + text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count());
    (line, column)
}

/// One key/value under validation: where it is and what it is called in messages.
struct Field<'a> {
    path: String,
    key: Option<&'a Key>,
    item: &'a Item,
}

impl<'a> Field<'a> {
    fn new(path: String, key: Option<&'a Key>, item: &'a Item) -> Self {
        Field { path, key, item }
    }

    /// Offset of the value (or, for a `[table]`, of its key in the header).
    fn at(&self) -> usize {
        let value_span = match self.item {
            Item::Value(v) => v.span(),
            _ => None,
        };
        value_span
            .or_else(|| self.key.and_then(Key::span))
            .or_else(|| self.item.span())
            .map_or(0, |s| s.start)
    }

    /// Offset of the key itself (for unknown keys).
    fn key_at(&self) -> usize {
        self.key
            .and_then(Key::span)
            .map_or_else(|| self.at(), |s| s.start)
    }
}

struct Checker<'a> {
    text: &'a str,
    /// (byte offset, message)
    problems: Vec<(usize, String)>,
}

impl<'a> Checker<'a> {
    fn new(text: &'a str) -> Self {
        Checker {
            text,
            problems: Vec::new(),
        }
    }

    fn error(&mut self, at: usize, message: String) {
        self.problems.push((at, message));
    }

    fn root(
        &mut self,
        root: &'a toml_edit::Table,
    ) -> (SupervisorSettings, Vec<ProcessSpec>, Vec<NotifySpec>) {
        let mut supervisor = SupervisorSettings::default();
        let mut processes = Vec::new();
        let mut notify = Vec::new();
        for (name, item) in root.iter() {
            let field = Field::new(name.to_string(), root.key(name), item);
            match name {
                "supervisor" => {
                    if let Some(table) = self.supervisor_table(&field) {
                        supervisor = self.supervisor(table);
                    }
                }
                "process" => processes = self.processes(&field),
                "notify" => notify = self.notifies(&field),
                _ => {
                    let hint = if PROCESS_KEYS.contains(&name) && SUPERVISOR_KEYS.contains(&name) {
                        " (it belongs in [supervisor] or a [[process]])".to_string()
                    } else if PROCESS_KEYS.contains(&name) {
                        " (it belongs in a [[process]])".to_string()
                    } else if SUPERVISOR_KEYS.contains(&name) {
                        " (it belongs in [supervisor])".to_string()
                    } else {
                        match suggest(
                            name,
                            &["supervisor", "process", "notify"],
                            &[
                                ("processes", "process"),
                                ("notification", "notify"),
                                ("notifications", "notify"),
                                ("webhook", "notify"),
                                ("webhooks", "notify"),
                            ],
                        ) {
                            Some(s) => format!(" (did you mean {s:?}?)"),
                            None => " (only [supervisor], [[process]] and [[notify]] are allowed)"
                                .to_string(),
                        }
                    };
                    self.error(
                        field.key_at(),
                        format!("unknown key {name:?} at the top level{hint}"),
                    );
                }
            }
        }
        (supervisor, processes, notify)
    }

    fn supervisor_table(&mut self, field: &Field<'a>) -> Option<&'a dyn TableLike> {
        match field.item {
            Item::ArrayOfTables(_) => {
                self.error(
                    field.at(),
                    "supervisor: expected a table, found an array of tables (write [supervisor] \
                     with single brackets)"
                        .to_string(),
                );
                None
            }
            _ => self.table(field),
        }
    }

    fn supervisor(&mut self, table: &'a dyn TableLike) -> SupervisorSettings {
        let mut s = SupervisorSettings::default();
        for (key, item) in table.iter() {
            let field = Field::new(format!("supervisor.{key}"), table.key(key), item);
            match key {
                "health_interval" => {
                    if let Some(d) = self.positive_duration(&field) {
                        s.health_interval = d;
                    }
                }
                "stop_timeout" => {
                    if let Some(d) = self.duration(&field) {
                        s.stop_timeout = d;
                    }
                }
                "log_max_size" => {
                    if let Some(n) = self.log_size(&field) {
                        s.log_max_size = n;
                    }
                }
                "log_max_files" => {
                    if let Some(n) = self.log_files(&field) {
                        s.log_max_files = n;
                    }
                }
                "metrics" => s.metrics = self.listen_address(&field),
                _ => {
                    let hint = if PROCESS_KEYS.contains(&key) {
                        " (it belongs in a [[process]])".to_string()
                    } else {
                        did_you_mean(key, SUPERVISOR_KEYS, SUPERVISOR_ALIASES)
                    };
                    self.error(
                        field.key_at(),
                        format!("unknown key {key:?} in [supervisor]{hint}"),
                    );
                }
            }
        }
        s
    }

    fn processes(&mut self, field: &Field<'a>) -> Vec<ProcessSpec> {
        // (table, offset of its header or `{`)
        let mut tables: Vec<(&'a dyn TableLike, usize)> = Vec::new();
        match field.item {
            Item::ArrayOfTables(array) => {
                for t in array.iter() {
                    let at = t.span().map_or_else(|| field.at(), |s| s.start);
                    tables.push((t, at));
                }
            }
            // `process = [{ … }, { … }]` is the same data as `[[process]]`.
            Item::Value(Value::Array(array)) => {
                for (i, v) in array.iter().enumerate() {
                    let at = v.span().map_or_else(|| field.at(), |s| s.start);
                    match v {
                        Value::InlineTable(t) => tables.push((t, at)),
                        other => self.error(
                            at,
                            format!(
                                "process[{}]: expected a table, found {}",
                                i + 1,
                                describe_value(other)
                            ),
                        ),
                    }
                }
            }
            Item::Table(_) => {
                self.error(
                    field.at(),
                    "process: expected an array of tables, found a table (write [[process]] \
                     with double brackets)"
                        .to_string(),
                );
            }
            other => {
                self.error(
                    field.at(),
                    format!(
                        "process: expected an array of tables ([[process]]), found {}",
                        describe(other)
                    ),
                );
            }
        }

        let mut specs = Vec::new();
        // name → line of its first definition
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, (table, at)) in tables.into_iter().enumerate() {
            let (spec, name) = self.process(i + 1, table, at);
            if let Some((name, name_at)) = name {
                match seen.get(&name) {
                    Some(first) => self.error(
                        name_at,
                        format!("duplicate process name {name:?} (first defined at line {first})"),
                    ),
                    None => {
                        seen.insert(name, line_column(self.text, name_at).0);
                    }
                }
            }
            specs.extend(spec);
        }
        specs
    }

    /// One `[[process]]`: the spec (`None` when `name` or `command` is unusable) and, when
    /// the name is valid, the name and its offset, for the duplicate check.
    fn process(
        &mut self,
        number: usize,
        table: &'a dyn TableLike,
        at: usize,
    ) -> (Option<ProcessSpec>, Option<(String, usize)>) {
        let prefix = format!("process[{number}]");
        let mut spec = ProcessSpec::new("", "", &[]);
        let mut name: Option<(String, usize)> = None;
        let mut name_present = false;
        let mut command: Option<String> = None;
        let mut command_present = false;
        let mut description: Option<String> = None;

        for (key, item) in table.iter() {
            let field = Field::new(format!("{prefix}.{key}"), table.key(key), item);
            match key {
                "name" => {
                    name_present = true;
                    if let Some(n) = self.string(&field) {
                        if self.check_name(&field, n) {
                            name = Some((n.to_string(), field.at()));
                        }
                    }
                }
                "description" => {
                    if let Some(d) = self.string(&field) {
                        if d.chars().any(char::is_control) {
                            self.error(
                                field.at(),
                                format!(
                                    "{}: must be a single line without control characters",
                                    field.path
                                ),
                            );
                        } else {
                            description = Some(d.to_string());
                        }
                    }
                }
                "command" => {
                    command_present = true;
                    if let Some(hint) = split_command_hint(item) {
                        self.error(
                            field.at(),
                            format!("{}: expected a string, found an array{hint}", field.path),
                        );
                    } else if let Some(c) = self.string(&field) {
                        if c.trim().is_empty() {
                            self.error(field.at(), format!("{}: must not be empty", field.path));
                        } else if self.no_nul(&field, c) {
                            command = Some(c.to_string());
                        }
                    }
                }
                "args" => {
                    if let Some(args) = self.args(&field) {
                        spec.args = args;
                    }
                }
                "enabled" => {
                    if let Some(b) = self.boolean(&field) {
                        spec.enabled = b;
                    }
                }
                "restart" => {
                    if let Some(v) = self.choice(&field, RESTART_VALUES) {
                        spec.restart = match v {
                            "on-failure" => RestartPolicy::OnFailure,
                            "never" => RestartPolicy::Never,
                            _ => RestartPolicy::Always,
                        };
                    }
                }
                "backoff" => {
                    if let Some(b) = self.backoff(&field) {
                        spec.backoff = b;
                    }
                }
                "max_restarts" => {
                    if let Some(n) = self.integer(&field) {
                        if n < 1 {
                            self.error(
                                field.at(),
                                format!(
                                    "{}: must be at least 1, found {n} (leave it out to never \
                                     give up)",
                                    field.path
                                ),
                            );
                        } else if let Some(n) = u32::try_from(n).ok().filter(|&n| n <= MAX_RESTARTS)
                        {
                            spec.max_restarts = Some(n);
                        } else {
                            self.error(
                                field.at(),
                                format!(
                                    "{}: must be at most {MAX_RESTARTS}, found {n}",
                                    field.path
                                ),
                            );
                        }
                    }
                }
                "restart_window" => {
                    if let Some(d) = self.positive_duration(&field) {
                        spec.restart_window = d;
                    }
                }
                "heartbeat_timeout" => {
                    if let Some(d) = self.positive_duration(&field) {
                        spec.heartbeat_timeout = Some(d);
                    }
                }
                "max_memory" => {
                    if let Some(n) = self.size(&field) {
                        if n == 0 {
                            self.error(
                                field.at(),
                                format!("{}: must be greater than zero", field.path),
                            );
                        } else {
                            spec.max_memory = Some(n);
                        }
                    }
                }
                "env" => {
                    if let Some(env) = self.env(&field) {
                        spec.env = env;
                    }
                }
                "cwd" => {
                    if let Some(c) = self.string(&field) {
                        if c.is_empty() {
                            self.error(
                                field.at(),
                                format!(
                                    "{}: must not be empty (leave it out to run in the vault)",
                                    field.path
                                ),
                            );
                        } else if self.no_nul(&field, c) {
                            spec.cwd = Some(PathBuf::from(c));
                        }
                    }
                }
                "stop_timeout" => {
                    if let Some(d) = self.duration(&field) {
                        spec.stop_timeout = Some(d);
                    }
                }
                "stop_signal" => {
                    if let Some(s) = self.stop_signal(&field) {
                        spec.stop_signal = s;
                    }
                }
                "log_max_size" => {
                    if let Some(n) = self.log_size(&field) {
                        spec.log_max_size = Some(n);
                    }
                }
                "log_max_files" => {
                    if let Some(n) = self.log_files(&field) {
                        spec.log_max_files = Some(n);
                    }
                }
                _ => {
                    let hint = if key == "health_interval" {
                        " (it belongs in [supervisor])".to_string()
                    } else {
                        did_you_mean(key, PROCESS_KEYS, PROCESS_ALIASES)
                    };
                    self.error(
                        field.key_at(),
                        format!("unknown key {key:?} in [[process]]{hint}"),
                    );
                }
            }
        }

        match (name_present, command_present) {
            (false, false) => self.error(
                at,
                format!("{prefix}: missing required keys \"name\" and \"command\""),
            ),
            (false, true) => self.error(at, format!("{prefix}: missing required key \"name\"")),
            (true, false) => {
                self.error(at, format!("{prefix}: missing required key \"command\""));
            }
            (true, true) => {}
        }
        let spec = match (&name, command) {
            (Some((name, _)), Some(command)) => {
                spec.description = description.unwrap_or_else(|| name.clone());
                spec.name = name.clone();
                spec.command = command;
                Some(spec)
            }
            _ => None,
        };
        (spec, name)
    }

    fn check_name(&mut self, field: &Field<'a>, name: &str) -> bool {
        let path = &field.path;
        let problem = if name.is_empty() {
            Some("must not be empty".to_string())
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            Some(format!(
                "invalid character {c:?} in {name:?} (use letters, digits, '_', '-' and '.')"
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
                self.error(field.at(), format!("{path}: {p}"));
                false
            }
            None => true,
        }
    }

    fn args(&mut self, field: &Field<'a>) -> Option<Vec<String>> {
        let array = match field.item {
            Item::Value(Value::Array(a)) => a,
            Item::Value(Value::String(s)) => {
                let words: Vec<&str> = s.value().split_whitespace().collect();
                let hint = format!(
                    " (write args = [{}])",
                    words
                        .iter()
                        .map(|w| format!("{w:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.error(
                    field.at(),
                    format!(
                        "{}: expected an array of strings, found a string{hint}",
                        field.path
                    ),
                );
                return None;
            }
            other => {
                self.type_error(field, "an array of strings", other);
                return None;
            }
        };
        let mut args = Vec::new();
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            let at = v.span().map_or_else(|| field.at(), |s| s.start);
            let path = format!("{}[{}]", field.path, i + 1);
            match v {
                Value::String(s) => {
                    if s.value().contains('\0') {
                        self.error(at, format!("{path}: must not contain a NUL character"));
                        ok = false;
                    } else {
                        args.push(s.value().clone());
                    }
                }
                other => {
                    let hint = quote_hint(other);
                    self.error(
                        at,
                        format!(
                            "{path}: expected a string, found {}{hint}",
                            describe_value(other)
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(args)
    }

    fn env(&mut self, field: &Field<'a>) -> Option<BTreeMap<String, String>> {
        let table = self.table(field)?;
        let mut env = BTreeMap::new();
        let mut ok = true;
        for (name, item) in table.iter() {
            let path = format!("{}.{}", field.path, key_path(name));
            let var = Field::new(path, table.key(name), item);
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
                self.error(var.key_at(), format!("{}: {p}", var.path));
                ok = false;
                continue;
            }
            match item {
                Item::Value(Value::String(s)) => {
                    if self.no_nul(&var, s.value()) {
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
                    self.error(
                        var.at(),
                        format!(
                            "{}: expected a string, found {}{hint}",
                            var.path,
                            describe(other)
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(env)
    }

    fn backoff(&mut self, field: &Field<'a>) -> Option<BackoffSpec> {
        let table = self.table(field)?;
        let mut b = BackoffSpec::default();
        let mut ok = true;
        // Where `initial` and `max` were written, for the max >= initial check.
        let mut initial_at = None;
        let mut max_at = None;
        for (key, item) in table.iter() {
            let f = Field::new(format!("{}.{key}", field.path), table.key(key), item);
            match key {
                "initial" => match self.duration(&f) {
                    Some(d) => {
                        b.initial = d;
                        initial_at = Some(f.at());
                    }
                    None => ok = false,
                },
                "max" => match self.duration(&f) {
                    Some(d) => {
                        b.max = d;
                        max_at = Some(f.at());
                    }
                    None => ok = false,
                },
                "reset_after" => match self.duration(&f) {
                    Some(d) => b.reset_after = d,
                    None => ok = false,
                },
                "factor" => match self.factor(&f) {
                    Some(x) => b.factor = x,
                    None => ok = false,
                },
                _ => {
                    let hint = did_you_mean(key, BACKOFF_KEYS, BACKOFF_ALIASES);
                    self.error(
                        f.key_at(),
                        format!("unknown key {key:?} in {}{hint}", field.path),
                    );
                    ok = false;
                }
            }
        }
        if ok && b.max < b.initial {
            let (initial, max) = (format_duration(b.initial), format_duration(b.max));
            match (max_at, initial_at) {
                (Some(at), Some(_)) => self.error(
                    at,
                    format!(
                        "{}.max: {max} is less than backoff.initial ({initial})",
                        field.path
                    ),
                ),
                (Some(at), None) => self.error(
                    at,
                    format!(
                        "{}.max: {max} is less than backoff.initial ({initial}, the default); \
                         set initial too",
                        field.path
                    ),
                ),
                (None, Some(at)) => self.error(
                    at,
                    format!(
                        "{}.initial: {initial} is more than backoff.max ({max}, the default); \
                         set max too",
                        field.path
                    ),
                ),
                (None, None) => {}
            }
            ok = false;
        }
        ok.then_some(b)
    }

    fn factor(&mut self, field: &Field<'a>) -> Option<f64> {
        let x = match field.item {
            Item::Value(Value::Float(f)) => *f.value(),
            Item::Value(Value::Integer(i)) => *i.value() as f64,
            other => {
                self.type_error(field, "a number", other);
                return None;
            }
        };
        if (1.0..=MAX_BACKOFF_FACTOR).contains(&x) {
            Some(x)
        } else {
            self.error(
                field.at(),
                format!(
                    "{}: must be between 1 and {MAX_BACKOFF_FACTOR}, found {x}",
                    field.path
                ),
            );
            None
        }
    }

    fn stop_signal(&mut self, field: &Field<'a>) -> Option<StopSignal> {
        let s = self.string(field)?;
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
                self.error(
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

    // ---- typed getters: each records its own error and returns None ----

    /// `metrics = "127.0.0.1:9464"`: an IP address and port (`localhost` means 127.0.0.1).
    fn listen_address(&mut self, field: &Field<'a>) -> Option<std::net::SocketAddr> {
        let s = self.string(field)?;
        let parsed = match s.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}").parse(),
            None => s.parse::<std::net::SocketAddr>(),
        };
        match parsed {
            Ok(a) if a.port() != 0 => Some(a),
            _ => {
                self.error(
                    field.at(),
                    format!(
                        "{}: expected an address and port such as \"127.0.0.1:9464\", found {s:?}",
                        field.path
                    ),
                );
                None
            }
        }
    }

    fn notifies(&mut self, field: &Field<'a>) -> Vec<NotifySpec> {
        let mut tables: Vec<(&'a dyn TableLike, usize)> = Vec::new();
        match field.item {
            Item::ArrayOfTables(array) => {
                for t in array.iter() {
                    let at = t.span().map_or_else(|| field.at(), |s| s.start);
                    tables.push((t, at));
                }
            }
            Item::Table(_) => self.error(
                field.at(),
                "notify: expected an array of tables, found a table (write [[notify]] with \
                 double brackets)"
                    .to_string(),
            ),
            other => self.type_error(field, "an array of tables ([[notify]])", other),
        }
        let mut out = Vec::new();
        for (i, (table, at)) in tables.into_iter().enumerate() {
            out.extend(self.notify(i + 1, table, at));
        }
        out
    }

    fn notify(&mut self, number: usize, table: &'a dyn TableLike, at: usize) -> Option<NotifySpec> {
        let prefix = format!("notify[{number}]");
        let mut webhook = None;
        let mut events = NotifyEvent::ALL.to_vec();
        let mut timeout = Duration::from_secs(5);
        let mut retries = 3;
        let mut ok = true;
        for (key, item) in table.iter() {
            let field = Field::new(format!("{prefix}.{key}"), table.key(key), item);
            match key {
                "webhook" => match self.string(&field) {
                    Some(url) => match webhook_problem(url) {
                        None => webhook = Some(url.to_string()),
                        Some(p) => {
                            self.error(field.at(), format!("{}: {p}", field.path));
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "events" => match self.event_list(&field) {
                    Some(e) => events = e,
                    None => ok = false,
                },
                "timeout" => match self.positive_duration(&field) {
                    Some(d) => timeout = d,
                    None => ok = false,
                },
                "retries" => match self.integer(&field) {
                    Some(n) if (0..=MAX_NOTIFY_RETRIES).contains(&n) => retries = n as u32,
                    Some(n) => {
                        self.error(
                            field.at(),
                            format!(
                                "{}: must be between 0 and {MAX_NOTIFY_RETRIES}, found {n}",
                                field.path
                            ),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                _ => {
                    let hint =
                        did_you_mean(key, NOTIFY_KEYS, &[("url", "webhook"), ("on", "events")]);
                    self.error(
                        field.key_at(),
                        format!("unknown key {key:?} in [[notify]]{hint}"),
                    );
                    ok = false;
                }
            }
        }
        let Some(webhook) = webhook else {
            if ok {
                self.error(at, format!("{prefix}: missing required key \"webhook\""));
            }
            return None;
        };
        ok.then_some(NotifySpec {
            webhook,
            events,
            timeout,
            retries,
        })
    }

    fn event_list(&mut self, field: &Field<'a>) -> Option<Vec<NotifyEvent>> {
        let Item::Value(Value::Array(array)) = field.item else {
            self.type_error(field, "a list of event names", field.item);
            return None;
        };
        let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
        let mut out = Vec::new();
        for v in array.iter() {
            let at = v.span().map_or_else(|| field.at(), |s| s.start);
            match v {
                Value::String(s) => match NotifyEvent::parse(s.value()) {
                    Some(e) if !out.contains(&e) => out.push(e),
                    Some(_) => {}
                    None => {
                        let hint = did_you_mean(s.value(), &names, &[]);
                        self.error(
                            at,
                            format!(
                                "{}: unknown event {:?} (known: {}){hint}",
                                field.path,
                                s.value(),
                                names.join(", ")
                            ),
                        );
                        return None;
                    }
                },
                other => {
                    self.error(
                        at,
                        format!(
                            "{}: expected event names (strings), found {}",
                            field.path,
                            describe_value(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn type_error(&mut self, field: &Field<'a>, expected: &str, found: &Item) {
        self.error(
            field.at(),
            format!(
                "{}: expected {expected}, found {}",
                field.path,
                describe(found)
            ),
        );
    }

    fn table(&mut self, field: &Field<'a>) -> Option<&'a dyn TableLike> {
        match field.item.as_table_like() {
            Some(t) => Some(t),
            None => {
                self.type_error(field, "a table", field.item);
                None
            }
        }
    }

    fn string(&mut self, field: &Field<'a>) -> Option<&'a str> {
        match field.item {
            Item::Value(Value::String(s)) => Some(s.value()),
            Item::Value(v) => {
                let hint = quote_hint(v);
                self.error(
                    field.at(),
                    format!(
                        "{}: expected a string, found {}{hint}",
                        field.path,
                        describe_value(v)
                    ),
                );
                None
            }
            other => {
                self.type_error(field, "a string", other);
                None
            }
        }
    }

    fn no_nul(&mut self, field: &Field<'a>, s: &str) -> bool {
        if s.contains('\0') {
            self.error(
                field.at(),
                format!("{}: must not contain a NUL character", field.path),
            );
            false
        } else {
            true
        }
    }

    fn boolean(&mut self, field: &Field<'a>) -> Option<bool> {
        match field.item {
            Item::Value(Value::Boolean(b)) => Some(*b.value()),
            Item::Value(Value::String(s)) if matches!(s.value().as_str(), "true" | "false") => {
                self.error(
                    field.at(),
                    format!(
                        "{}: expected a boolean, found a string (remove the quotes: {})",
                        field.path,
                        s.value()
                    ),
                );
                None
            }
            other => {
                self.type_error(field, "a boolean (true or false)", other);
                None
            }
        }
    }

    fn integer(&mut self, field: &Field<'a>) -> Option<i64> {
        match field.item {
            Item::Value(Value::Integer(i)) => Some(*i.value()),
            Item::Value(Value::String(s)) if s.value().parse::<i64>().is_ok() => {
                self.error(
                    field.at(),
                    format!(
                        "{}: expected an integer, found a string (remove the quotes: {})",
                        field.path,
                        s.value()
                    ),
                );
                None
            }
            other => {
                self.type_error(field, "an integer", other);
                None
            }
        }
    }

    /// A choice among fixed strings, with a suggestion for a near miss.
    fn choice(&mut self, field: &Field<'a>, values: &[&'static str]) -> Option<&'static str> {
        let s = self.string(field)?;
        if let Some(v) = values.iter().find(|v| **v == s) {
            return Some(v);
        }
        let hint = did_you_mean(s, values, &[]);
        self.error(
            field.at(),
            format!(
                "{}: expected one of {}, found {s:?}{hint}",
                field.path,
                one_of(values)
            ),
        );
        None
    }

    fn duration(&mut self, field: &Field<'a>) -> Option<Duration> {
        match field.item {
            Item::Value(Value::String(s)) => match parse_duration(s.value()) {
                Ok(d) if d > MAX_DURATION => {
                    self.error(
                        field.at(),
                        format!(
                            "{}: must be at most {:?} (ten years), found {:?}",
                            field.path,
                            format_duration(MAX_DURATION),
                            s.value()
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.error(field.at(), format!("{}: {e}", field.path));
                    None
                }
            },
            Item::Value(Value::Integer(i)) => {
                let n = i.value();
                self.error(
                    field.at(),
                    format!(
                        "{}: expected a duration string, found an integer (write \"{n}s\" for \
                         {n} seconds)",
                        field.path
                    ),
                );
                None
            }
            other => {
                self.type_error(field, "a duration string such as \"30s\"", other);
                None
            }
        }
    }

    fn positive_duration(&mut self, field: &Field<'a>) -> Option<Duration> {
        let d = self.duration(field)?;
        if d.is_zero() {
            self.error(
                field.at(),
                format!("{}: must be greater than zero", field.path),
            );
            return None;
        }
        Some(d)
    }

    /// A size: a string with a unit, or an integer number of bytes; at most [`MAX_SIZE`].
    fn size(&mut self, field: &Field<'a>) -> Option<u64> {
        let n = self.any_size(field)?;
        if n > MAX_SIZE {
            let found = match field.item {
                Item::Value(Value::String(s)) => format!("{:?}", s.value()),
                _ => n.to_string(),
            };
            self.error(
                field.at(),
                format!(
                    "{}: must be at most {:?}, found {found}",
                    field.path,
                    format_size(MAX_SIZE)
                ),
            );
            return None;
        }
        Some(n)
    }

    fn any_size(&mut self, field: &Field<'a>) -> Option<u64> {
        match field.item {
            Item::Value(Value::String(s)) => match parse_size(s.value()) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.error(field.at(), format!("{}: {e}", field.path));
                    None
                }
            },
            Item::Value(Value::Integer(i)) => match u64::try_from(*i.value()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        field.at(),
                        format!("{}: must not be negative, found {i}", field.path),
                    );
                    None
                }
            },
            other => {
                self.type_error(field, "a size such as \"10MiB\"", other);
                None
            }
        }
    }

    fn log_size(&mut self, field: &Field<'a>) -> Option<u64> {
        let n = self.size(field)?;
        if n < MIN_LOG_SIZE {
            self.error(
                field.at(),
                format!(
                    "{}: must be at least {}, found {}",
                    field.path,
                    format_size(MIN_LOG_SIZE),
                    format_size(n)
                ),
            );
            return None;
        }
        Some(n)
    }

    fn log_files(&mut self, field: &Field<'a>) -> Option<u32> {
        let n = self.integer(field)?;
        if !(1..=MAX_LOG_FILES).contains(&n) {
            self.error(
                field.at(),
                format!(
                    "{}: must be between 1 and {MAX_LOG_FILES}, found {n}",
                    field.path
                ),
            );
            return None;
        }
        u32::try_from(n).ok()
    }
}

/// "a string", "an integer", … for `found …`.
fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// For a number or boolean where a string was expected: ` (put it in quotes: "8080")`.
fn quote_hint(v: &Value) -> String {
    let text = match v {
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        _ => return String::new(),
    };
    format!(" (put it in quotes: \"{text}\")")
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

/// `"always", "on-failure", "never"`
fn one_of(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
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

/// ` (did you mean "restart"?)` or nothing.
fn did_you_mean(word: &str, known: &[&str], aliases: &[(&str, &str)]) -> String {
    match suggest(word, known, aliases) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    }
}

/// The known word closest to `word`: an alias, a case/`-`/`_` variant, or one within a
/// small edit distance (transpositions count as one edit).
fn suggest<'k>(word: &str, known: &[&'k str], aliases: &[(&str, &'k str)]) -> Option<&'k str> {
    let normal = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let w = normal(word);
    if let Some((_, target)) = aliases.iter().find(|(alias, _)| normal(alias) == w) {
        return Some(target);
    }
    let limit = match w.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(&w, &normal(k)), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // after "bé = " (é is two bytes)
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("restrat", PROCESS_KEYS, PROCESS_ALIASES),
            Some("restart")
        );
        assert_eq!(suggest("Name", PROCESS_KEYS, PROCESS_ALIASES), Some("name"));
        assert_eq!(
            suggest("stop-signal", PROCESS_KEYS, PROCESS_ALIASES),
            Some("stop_signal")
        );
        assert_eq!(
            suggest("environment", PROCESS_KEYS, PROCESS_ALIASES),
            Some("env")
        );
        assert_eq!(suggest("banana", PROCESS_KEYS, PROCESS_ALIASES), None);
        assert_eq!(
            suggest("on_failure", RESTART_VALUES, &[]),
            Some("on-failure")
        );
        assert_eq!(suggest("sometimes", RESTART_VALUES, &[]), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("restrat", "restart"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
