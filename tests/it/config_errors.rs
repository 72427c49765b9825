//! The process table parser: the default table, valid edge cases, and the exact text of
//! the errors a user sees for malformed tables (pinned with insta, one snapshot per case).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ai_employee::config::{
    self, AgentSettings, BackoffSpec, Config, ConfigErrors, NotifyEvent, NotifySpec, RestartPolicy,
    Source, StopSignal, SupervisorSettings, Weights,
};

const FILE: &str = "ai-employee.toml";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    config::parse(text, Source::File(PathBuf::from(FILE)))
}

/// The errors for a table that must not parse, as `check` prints them.
fn errors(text: &str) -> String {
    match parse(text) {
        Ok(cfg) => panic!("expected errors, but the table parsed: {cfg:#?}"),
        Err(e) => e.to_string(),
    }
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected the table to parse, got:\n{e}"),
    }
}

/// Pin the error output of one malformed table under the case's name.
macro_rules! malformed {
    ($($case:ident: $text:expr;)+) => {
        $(
            #[test]
            fn $case() {
                insta::assert_snapshot!(stringify!($case), errors($text));
            }
        )+
        /// Every case, for the count check.
        const MALFORMED_CASES: &[&str] = &[$(stringify!($case)),+];
    };
}

malformed! {
    // ---- TOML syntax: exactly one error at the parser's position ----
    syntax_unterminated_string: r#"
[[process]]
name = "gmail
command = "ai-employee"
"#;
    syntax_duplicate_key: r#"
[[process]]
name = "gmail"
name = "gmail2"
command = "ai-employee"
"#;
    syntax_unquoted_duration: r#"
[supervisor]
health_interval = 30s
"#;
    syntax_missing_value: r#"
[supervisor]
stop_timeout =
"#;
    syntax_unclosed_header: r#"
[[process]
name = "a"
"#;
    syntax_duplicate_supervisor_table: r#"
[supervisor]
stop_timeout = "10s"

[supervisor]
health_interval = "30s"
"#;

    // ---- top level ----
    top_level_table_typo: r#"
[superviser]
health_interval = "30s"
"#;
    top_level_key_before_any_table: r#"
name = "gmail"
health_interval = "30s"
colour = "blue"
"#;
    process_single_brackets: r#"
[process]
name = "gmail"
command = "ai-employee"
"#;
    process_is_a_string: r#"
process = "gmail"
"#;
    process_array_of_non_tables: r#"
process = [{ name = "a", command = "true" }, "b"]
"#;
    supervisor_double_brackets: r#"
[[supervisor]]
health_interval = "30s"
"#;
    supervisor_is_a_string: r#"
supervisor = "on"
"#;

    // ---- [supervisor] ----
    supervisor_unknown_key_typo: r#"
[supervisor]
health_intervl = "30s"
"#;
    supervisor_key_from_process: r#"
[supervisor]
restart = "always"
"#;
    duration_without_unit: r#"
[supervisor]
health_interval = "30"
"#;
    duration_as_integer: r#"
[supervisor]
health_interval = 30
"#;
    duration_zero_where_positive: r#"
[supervisor]
health_interval = "0s"
"#;
    duration_negative: r#"
[supervisor]
stop_timeout = "-5s"
"#;
    duration_unknown_unit: r#"
[supervisor]
stop_timeout = "5min"
"#;
    duration_with_space: r#"
[supervisor]
stop_timeout = "1m 30s"
"#;
    duration_as_time_of_day: r#"
[supervisor]
stop_timeout = 00:00:10
"#;
    duration_overflow: r#"
[supervisor]
stop_timeout = "99999999999999999999d"
"#;
    log_max_size_too_small: r#"
[supervisor]
log_max_size = "512B"
"#;
    log_max_size_unknown_unit: r#"
[supervisor]
log_max_size = "10mb"
"#;
    log_max_size_negative_integer: r#"
[supervisor]
log_max_size = -1
"#;
    log_max_files_out_of_range: r#"
[supervisor]
log_max_files = 0

[[process]]
name = "a"
command = "true"
log_max_files = 101
"#;
    log_max_files_float: r#"
[supervisor]
log_max_files = 2.5
"#;
    log_max_files_quoted: r#"
[supervisor]
log_max_files = "5"
"#;

    // ---- [[process]]: required keys and names ----
    missing_name: r#"
[[process]]
command = "ai-employee"
"#;
    missing_command: r#"
[[process]]
name = "gmail"
"#;
    empty_process: r#"
[[process]]

[[process]]
name = "ok"
command = "true"
"#;
    name_wrong_type: r#"
[[process]]
name = 42
command = "true"
"#;
    name_with_space: r#"
[[process]]
name = "my app"
command = "true"
"#;
    name_with_slash: r#"
[[process]]
name = "../etc/passwd"
command = "true"
"#;
    name_leading_dot: r#"
[[process]]
name = ".hidden"
command = "true"
"#;
    name_empty: r#"
[[process]]
name = ""
command = "true"
"#;
    name_too_long: r#"
[[process]]
name = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
command = "true"
"#;
    duplicate_name: r#"
[[process]]
name = "gmail"
command = "ai-employee"

[[process]]
name = "whatsapp"
command = "ai-employee"

[[process]]
name = "gmail"
command = "ai-employee"
"#;
    description_multiline: r#"
[[process]]
name = "a"
description = """
two
lines"""
command = "true"
"#;

    // ---- [[process]]: command and args ----
    command_empty: r#"
[[process]]
name = "a"
command = "  "
"#;
    command_with_nul: r#"
[[process]]
name = "a"
command = "tr\u0000ue"
"#;
    command_array: r#"
[[process]]
name = "a"
command = ["ai-employee", "watch", "gmail"]
"#;
    args_as_string: r#"
[[process]]
name = "gmail"
command = "ai-employee"
args = "watch gmail"
"#;
    args_non_string_elements: r#"
[[process]]
name = "a"
command = "sleep"
args = ["--seconds", 5, true]
"#;

    // ---- [[process]]: other keys ----
    unknown_process_key_typo: r#"
[[process]]
name = "gmail"
command = "ai-employee"
restrat = "always"
"#;
    unknown_process_key_alias: r#"
[[process]]
name = "gmail"
cmd = "ai-employee"
environment = { A = "b" }
"#;
    unknown_process_key_far: r#"
[[process]]
name = "gmail"
command = "ai-employee"
colour = "blue"
"#;
    health_interval_in_process: r#"
[[process]]
name = "gmail"
command = "ai-employee"
health_interval = "30s"
"#;
    enabled_quoted: r#"
[[process]]
name = "a"
command = "true"
enabled = "false"
"#;
    enabled_integer: r#"
[[process]]
name = "a"
command = "true"
enabled = 1
"#;
    restart_unknown_value: r#"
[[process]]
name = "a"
command = "true"
restart = "sometimes"
"#;
    restart_near_miss: r#"
[[process]]
name = "a"
command = "true"
restart = "on_failure"
"#;
    max_restarts_zero: r#"
[[process]]
name = "a"
command = "true"
max_restarts = 0
"#;
    max_restarts_too_large: r#"
[[process]]
name = "a"
command = "true"
max_restarts = 5000000000
"#;
    restart_window_zero: r#"
[[process]]
name = "a"
command = "true"
restart_window = "0"
"#;
    heartbeat_timeout_bool: r#"
[[process]]
name = "a"
command = "true"
heartbeat_timeout = true
"#;
    max_memory_zero: r#"
[[process]]
name = "a"
command = "true"
max_memory = "0MiB"
"#;
    max_memory_fraction_of_byte: r#"
[[process]]
name = "a"
command = "true"
max_memory = "1.5"
"#;
    cwd_empty: r#"
[[process]]
name = "a"
command = "true"
cwd = ""
"#;
    stop_signal_kill: r#"
[[process]]
name = "a"
command = "true"
stop_signal = "SIGKILL"
"#;
    stop_signal_lowercase: r#"
[[process]]
name = "a"
command = "true"
stop_signal = "sigint"
"#;
    stop_signal_number: r#"
[[process]]
name = "a"
command = "true"
stop_signal = 15
"#;

    // ---- backoff ----
    backoff_as_string: r#"
[[process]]
name = "a"
command = "true"
backoff = "2s"
"#;
    backoff_unknown_key: r#"
[[process]]
name = "a"
command = "true"
backoff = { initial = "2s", maximum = "60s" }
"#;
    backoff_factor_below_one: r#"
[[process]]
name = "a"
command = "true"
backoff = { factor = 0.5 }
"#;
    backoff_factor_too_large: r#"
[[process]]
name = "a"
command = "true"
backoff = { factor = 1000 }
"#;
    backoff_factor_nan: r#"
[[process]]
name = "a"
command = "true"
backoff = { factor = nan }
"#;
    backoff_max_below_initial: r#"
[[process]]
name = "a"
command = "true"
backoff = { initial = "10s", max = "5s" }
"#;
    backoff_initial_above_default_max: r#"
[[process]]
name = "a"
command = "true"
backoff = { initial = "2m" }
"#;
    backoff_max_below_default_initial: r#"
[[process]]
name = "a"
command = "true"
backoff = { max = "1s" }
"#;
    backoff_subtable_errors: r#"
[[process]]
name = "a"
command = "true"

[process.backoff]
initial = 2
reset_after = "5 m"
"#;

    // ---- env ----
    env_non_string_values: r#"
[[process]]
name = "a"
command = "true"
env = { PORT = 8080, DEBUG = true, LIST = ["a"] }
"#;
    env_bad_names: r#"
[[process]]
name = "a"
command = "true"

[process.env]
"A=B" = "x"
"" = "y"
OK = "fine"
"#;
    env_as_array: r#"
[[process]]
name = "a"
command = "true"
env = ["RUST_LOG=info"]
"#;

    // ---- several problems: all reported, in source order ----
    many_problems_in_source_order: r#"
[supervisor]
health_interval = "30"
log_max_files = 0
colour = "blue"

[[process]]
name = "gmail"
command = "ai-employee"
restrat = "always"
backoff = { initial = "10s", max = "5s" }

[[process]]
name = "gmail"
restart = "sometimes"
max_memory = "lots"
env = { PORT = 8080 }
"#;

    // ---- metrics and [[notify]] ----
    metrics_not_an_address: r#"
[supervisor]
metrics = "9464"
"#;
    notify_single_brackets: r#"
[notify]
webhook = "https://hooks.example.com/x"
"#;
    notify_errors: r#"
[[notify]]
webhook = "http://hooks.example.com/x"
events = ["child_fatal", "child_crashed"]
retries = 99
timeout = "0s"

[[notify]]
url = "https://hooks.example.com/y"

[[notify]]
events = ["system_offline"]
"#;
    notify_misspelt_table: r#"
[[notifications]]
webhook = "https://hooks.example.com/x"
"#;

    // ---- values the runtime cannot represent: every duration and size has a maximum ----
    durations_above_the_maximum: r#"
[supervisor]
health_interval = "200000000000000d"
stop_timeout = "3650d1ms"

[[process]]
name = "a"
command = "true"
backoff = { initial = "200000000000000d", max = "3650d", reset_after = "87601h" }
restart_window = "5256001m"
heartbeat_timeout = "315360000001s"
stop_timeout = "3651d"

[[notify]]
webhook = "https://hooks.example.com/x"
timeout = "200000000000000d"
"#;
    sizes_above_the_maximum: r#"
[supervisor]
log_max_size = "1025GiB"

[[process]]
name = "a"
command = "true"
max_memory = 9223372036854775807
log_max_size = "2TB"
"#;

    // ---- [agent] ----
    agent_double_brackets: r#"
[[agent]]
max_concurrent = 2
"#;
    agent_is_a_string: r#"
agent = "claude"
"#;
    agent_wrong_types: r#"
[agent]
command = "claude -p {prompt}"
max_concurrent = "2"
timeout = 3600
kill_after = true
verify = "make test"
max_error_rate = "0.1"
vip_senders = ["ceo@example.com", 7]
env = { RETRIES = 3 }
weights = 0.4
"#;
    agent_out_of_range: r#"
[agent]
max_concurrent = 0
timeout = "0s"
max_attempts = 101
max_iterations = 21
approval_timeout = "0"
max_backlog = 1000001
max_error_rate = 1.5
max_idle = "0s"
dashboard_interval = "500ms"
"#;
    agent_unknown_keys: r#"
[agent]
max_concurent = 2
max_concurrent_tasks = 5
claude_timeout = "1h"
max_retries = 5
args = ["-p"]
restart = "always"
colour = "blue"

[agent.priority_weights]
urgency = 0.4
"#;
    agent_bad_placeholders: r#"
[agent]
command = ["claude", "-p", "{promt}", "--resume", "{session_id}", "{ task }", "a}b", "{vault"]
resume = ["--resume", "{session}", "{sesion_id}"]
verify = ["make", "{target}"]
"#;
    agent_empty_lists: r#"
[agent]
command = []
verify = []
retry_delays = []
approval_keywords = ["deploy", "", "  "]
"#;
    agent_empty_program: r#"
[agent]
command = ["", "-p", "{prompt}"]
verify = ["  "]
"#;
    agent_bad_retry_delays: r#"
[agent]
retry_delays = ["1m", 300, "5 m", "1x"]
"#;
    agent_retry_delays_as_string: r#"
[agent]
retry_delays = "1m 5m 15m"
"#;
    agent_prompt_absolute: r#"
[agent]
prompt = "/etc/passwd"
"#;
    agent_prompt_leaves_the_vault: r#"
[agent]
prompt = "Prompts/../../secret.md"
"#;
    agent_prompt_empty: r#"
[agent]
prompt = ""
"#;
    agent_weights_errors: r#"
[agent.weights]
urgency = -0.1
deadline = inf
sender = "0.3"
age = 0.05
age_per_hour = nan
"#;
    agent_podman_without_image_or_queue: r#"
[agent]
runner = "podman"
"#;
    agent_podman_falling_back_to_this_host: r#"
[agent]
runner = "podman"
image = "localhost/agent:1"
queue = "redis://127.0.0.1:6379/0"
"#;
    agent_image_without_podman: r#"
[agent]
image = "localhost/agent:1"
"#;
    agent_bad_runner_and_image: r#"
[agent]
runner = "docker"
image = "--privileged"
container_image = "x"
"#;
    agent_keys_at_the_top_level: r#"
max_retries = 3
vip_senders = ["ceo@example.com"]
command = "claude"
colour = "blue"

[priority_weights]
urgency = 0.4
"#;
    // ---- this program's own command lines, parsed as the child would parse them ----
    self_args_misspelt_watcher: r#"
[[process]]
name = "fs"
command = "ai-employee"
args = ["watch", "filesytem"]
"#;
    self_args_unknown_subcommand_and_flag: r#"
[[process]]
name = "a"
command = "ai-employee"
args = ["agnet"]

[[process]]
name = "b"
command = "ai-employee"
args = ["agent", "--vualt", "/v"]

[[process]]
name = "c"
command = "ai-employee"
args = ["agent", "--once=yes"]
"#;
    self_args_missing_value: r#"
[[process]]
name = "start"
command = "ai-employee"
args = ["start"]

[[process]]
name = "worker"
command = "ai-employee"
args = ["worker", "--concurrency", "0"]
"#;
    self_args_missing: r#"
[[process]]
name = "bare"
command = "ai-employee"

[[process]]
name = "watch"
command = "ai-employee"
args = ["watch"]

[[process]]
name = "help"
command = "ai-employee"
args = ["watch", "gmail", "--help"]
"#;
}

#[test]
fn there_are_at_least_35_malformed_cases() {
    assert!(MALFORMED_CASES.len() >= 35, "{}", MALFORMED_CASES.len());
}

#[test]
fn a_syntax_error_is_exactly_one_error_at_the_parser_position() {
    let text = "[supervisor]\nhealth_interval = 30s\ncolour = 1\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!((err.0[0].line, err.0[0].column), (2, 19));
    assert_eq!(err.0[0].file, FILE);
}

#[test]
fn several_errors_are_all_reported_in_source_order() {
    let text = r#"
[[process]]
name = "b"
command = "true"
restart = "sometimes"
args = [1]

[supervisor]
stop_timeout = "x"
health_interval = 5

[[process]]
name = "b"
"#;
    let err = parse(text).unwrap_err();
    let at: Vec<(usize, usize)> = err.0.iter().map(|e| (e.line, e.column)).collect();
    // toml_edit groups every [[process]] under the first header, so the second entry is
    // checked before [supervisor]; the output is still in line order.
    assert_eq!(
        at,
        [(5, 11), (6, 9), (9, 16), (10, 19), (12, 1), (13, 8)],
        "{err}"
    );
    assert!(
        err.0[4]
            .message
            .contains("missing required key \"command\""),
        "{err}"
    );
    assert!(
        err.0[5].message.starts_with("duplicate process name \"b\""),
        "{err}"
    );
    for e in &err.0 {
        assert_eq!(e.file, FILE);
    }
}

#[test]
fn errors_name_the_file_as_given_and_the_built_in_default() {
    let err = config::parse("x = 1", Source::File(PathBuf::from("/v/ai-employee.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/v/ai-employee.toml:1:1: "), "{err}");
    let err = config::parse("x = 1", Source::BuiltIn)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("<built-in default>:1:1: "), "{err}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = parse("[[process]]\nname = \"e\" # é\ncommand = \"true\"\nenv = { \"ü\" = 1 }\n")
        .unwrap_err();
    assert_eq!((err.0[0].line, err.0[0].column), (4, 15), "{err}");
    let err = parse("[[process]]\nname = \"é\" ; x = 1\n").unwrap_err();
    assert_eq!((err.0[0].line, err.0[0].column), (2, 12), "{err}");
}

#[test]
fn the_default_table_parses_to_the_watchers_and_the_task_loop() {
    let cfg = config::parse(config::DEFAULT_TABLE, Source::BuiltIn).unwrap();
    assert_eq!(cfg.source, Source::BuiltIn);
    assert_eq!(cfg.supervisor, SupervisorSettings::default());
    assert_eq!(cfg.agent, AgentSettings::default());

    let names: Vec<&str> = cfg.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "filesystem",
            "gmail",
            "whatsapp",
            "approvals",
            "agent",
            "github"
        ]
    );
    let descriptions: Vec<&str> = cfg
        .processes
        .iter()
        .map(|p| p.description.as_str())
        .collect();
    assert_eq!(
        descriptions,
        [
            "File System Watcher",
            "Gmail Inbox Watcher",
            "WhatsApp Watcher",
            "Approval Handler (Safety Valve)",
            "Task Loop (Needs_Action -> the AI agent -> Done)",
            "GitHub Issues Watcher"
        ]
    );
    for p in &cfg.processes {
        assert_eq!(p.command, "ai-employee");
        if p.name == "agent" {
            assert_eq!(p.args, ["agent"]);
        } else if p.name == "github" {
            // Off until the user names a repository (the watcher refuses the placeholder).
            assert_eq!(
                p.args,
                [
                    "watch",
                    "github",
                    "--repo",
                    "OWNER/NAME",
                    "--label",
                    "ai-employee"
                ]
            );
        } else {
            assert_eq!(p.args, ["watch", p.name.as_str()]);
        }
        assert_eq!(p.enabled, p.name != "github");
        assert_eq!(p.restart, RestartPolicy::Always);
        assert_eq!(p.backoff, BackoffSpec::default());
        assert_eq!(p.max_memory, Some(256 * 1024 * 1024));
        assert_eq!(p.max_restarts, None);
        assert_eq!(p.restart_window, Duration::from_secs(300));
        assert_eq!(p.stop_signal, StopSignal::Term);
        assert_eq!(p.stop_timeout, None);
        assert!(p.env.is_empty());
        assert_eq!(p.cwd, None);
        assert_eq!((p.log_max_size, p.log_max_files), (None, None));
    }
    let heartbeats: Vec<Option<Duration>> =
        cfg.processes.iter().map(|p| p.heartbeat_timeout).collect();
    let s = |n| Some(Duration::from_secs(n));
    assert_eq!(heartbeats, [s(90), s(180), s(90), s(90), s(90), s(90)]);
}

#[test]
fn the_default_table_file_is_the_embedded_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ai-employee.toml");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk, config::DEFAULT_TABLE);
    let cfg = config::load_file(&path).unwrap();
    assert_eq!(cfg.processes.len(), 6);
}

/// The default table's commented-out `# [agent]` block, uncommented.
fn default_agent_block() -> String {
    let start = config::DEFAULT_TABLE
        .find("# [agent]\n")
        .expect("the default table shows [agent]");
    config::DEFAULT_TABLE[start..]
        .lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_default_tables_agent_block_shows_the_defaults() {
    // Uncommented, the `# [agent]` block reads into the defaults (`verify` is an example).
    let agent = ok(&default_agent_block()).agent;
    assert_eq!(agent.verify, Some(vec!["make".into(), "test".into()]));
    assert_eq!(
        AgentSettings {
            verify: None,
            ..agent
        },
        AgentSettings::default()
    );
}

#[test]
fn no_processes_is_a_valid_table() {
    for text in ["", "# nothing yet\n", "[supervisor]\n", "process = []\n"] {
        let cfg = ok(text);
        assert!(cfg.processes.is_empty(), "{text:?}");
        assert_eq!(cfg.supervisor, SupervisorSettings::default(), "{text:?}");
    }
}

#[test]
fn zero_backoff_and_factor_one_are_valid() {
    let cfg = ok(r#"
[[process]]
name = "fast"
command = "true"
backoff = { initial = "0", max = "0s", factor = 1, reset_after = "0s" }

[[process]]
name = "steady"
command = "true"
backoff = { initial = "5s", max = "5s", factor = 1.0 }
"#);
    let fast = &cfg.processes[0].backoff;
    assert_eq!(
        (fast.initial, fast.max, fast.reset_after),
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(fast.factor, 1.0);
    let steady = &cfg.processes[1].backoff;
    assert_eq!(
        (steady.initial, steady.max, steady.factor),
        (Duration::from_secs(5), Duration::from_secs(5), 1.0)
    );
    assert_eq!(steady.reset_after, BackoffSpec::default().reset_after);
}

#[test]
fn every_key_is_read() {
    let cfg = ok(r#"
[supervisor]
health_interval = "1m30s"
stop_timeout = "0"
log_max_size = 4096
log_max_files = 100
metrics = "localhost:9464"
reload_on_change = false
log_timestamps = false

[[process]]
name = "all.keys_1-x"
description = "Every key"
command = "/usr/bin/env"
args = []
enabled = false
restart = "on-failure"
backoff.initial = "500ms"
backoff.factor = 1.5
backoff.max = "1h"
backoff.reset_after = "1d"
max_restarts = 3
restart_window = "10m"
heartbeat_timeout = "2.5s"
max_memory = "1.5GiB"
cwd = "work/dir"
stop_timeout = "3s"
stop_signal = "SIGINT"
log_max_size = "1MB"
log_max_files = 1
log_timestamps = true

[process.env]
RUST_LOG = "debug"
"with space" = ""

[[process]]
name = "never"
command = "x"
restart = "never"
stop_signal = "USR2"

[[notify]]
webhook = "https://hooks.example.com/T000/B000/XXXX"
events = ["child_fatal", "system_offline", "child_fatal"]
timeout = "2s"
retries = 0

[[notify]]
webhook = "http://127.0.0.1:9000/hook"
"#);
    assert_eq!(
        cfg.supervisor,
        SupervisorSettings {
            health_interval: Duration::from_secs(90),
            stop_timeout: Duration::ZERO,
            log_max_size: 4096,
            log_max_files: 100,
            metrics: Some("127.0.0.1:9464".parse().unwrap()),
            reload_on_change: false,
            log_timestamps: false,
        }
    );
    assert_eq!(
        cfg.notify,
        vec![
            NotifySpec {
                webhook: "https://hooks.example.com/T000/B000/XXXX".into(),
                events: vec![NotifyEvent::ChildFatal, NotifyEvent::SystemOffline],
                timeout: Duration::from_secs(2),
                retries: 0,
            },
            NotifySpec {
                webhook: "http://127.0.0.1:9000/hook".into(),
                events: NotifyEvent::ALL.to_vec(),
                timeout: Duration::from_secs(5),
                retries: 3,
            },
        ]
    );
    let p = &cfg.processes[0];
    assert_eq!(p.name, "all.keys_1-x");
    assert_eq!(p.description, "Every key");
    assert_eq!(p.command, "/usr/bin/env");
    assert!(p.args.is_empty());
    assert!(!p.enabled);
    assert_eq!(p.restart, RestartPolicy::OnFailure);
    assert_eq!(
        p.backoff,
        BackoffSpec {
            initial: Duration::from_millis(500),
            factor: 1.5,
            max: Duration::from_secs(3600),
            reset_after: Duration::from_secs(86_400),
        }
    );
    assert_eq!(p.max_restarts, Some(3));
    assert_eq!(p.restart_window, Duration::from_secs(600));
    assert_eq!(p.heartbeat_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(p.max_memory, Some(3 << 29));
    assert_eq!(p.cwd, Some(PathBuf::from("work/dir")));
    assert_eq!(p.stop_timeout, Some(Duration::from_secs(3)));
    assert_eq!(p.stop_signal, StopSignal::Int);
    assert_eq!(p.log_max_size, Some(1_000_000));
    assert_eq!(p.log_max_files, Some(1));
    assert_eq!(p.log_timestamps, Some(true));
    assert_eq!(p.env.len(), 2);
    assert_eq!(p.env["RUST_LOG"], "debug");
    assert_eq!(p.env["with space"], "");

    let q = &cfg.processes[1];
    assert_eq!(q.description, "never", "description defaults to the name");
    assert_eq!(q.restart, RestartPolicy::Never);
    assert_eq!(q.stop_signal, StopSignal::Usr2);
}

#[test]
fn every_agent_key_is_read() {
    let cfg = ok(r#"
[agent]
command = ["/opt/agent/bin/run", "--task={task}", "--file", "{task_file}", "-C", "{vault}", "{prompt}", "{{literal}}"]
resume = ["--continue", "{session_id}", "--json={{\"a\": 1}}"]
prompt = "Prompts/./my agent.md"
max_concurrent = 256
timeout = "90m"
kill_after = "0"
max_attempts = 1
retry_delays = ["0s", "30s", "2h"]
max_iterations = 20
verify = ["make", "-C", "{vault}", "test"]
approval_keywords = ["Deploy", "wire transfer"]
approval_timeout = "2d"
vip_senders = ["ceo@example.com", "+15550100"]
urgency_keywords = []
max_backlog = 1000000
max_error_rate = 1
max_idle = "30m"
dashboard_interval = "1s"

[agent.env]
ANTHROPIC_MODEL = "claude-sonnet"
"EMPTY" = ""

[agent.weights]
urgency = 1
deadline = 0.5
sender = 0
age_per_hour = -0.0
"#);
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let secs = Duration::from_secs;
    assert_eq!(
        cfg.agent,
        AgentSettings {
            command: s(&[
                "/opt/agent/bin/run",
                "--task={task}",
                "--file",
                "{task_file}",
                "-C",
                "{vault}",
                "{prompt}",
                "{{literal}}",
            ]),
            resume: s(&["--continue", "{session_id}", "--json={{\"a\": 1}}"]),
            prompt: "Prompts/./my agent.md".into(),
            max_concurrent: 256,
            timeout: secs(90 * 60),
            kill_after: Duration::ZERO,
            max_attempts: 1,
            retry_delays: vec![Duration::ZERO, secs(30), secs(7200)],
            max_iterations: 20,
            verify: Some(s(&["make", "-C", "{vault}", "test"])),
            approval_keywords: s(&["Deploy", "wire transfer"]),
            approval_timeout: secs(2 * 86_400),
            vip_senders: s(&["ceo@example.com", "+15550100"]),
            urgency_keywords: vec![],
            weights: Weights {
                urgency: 1.0,
                deadline: 0.5,
                sender: 0.0,
                age_per_hour: 0.0,
            },
            max_backlog: 1_000_000,
            max_error_rate: 1.0,
            max_idle: secs(30 * 60),
            dashboard_interval: secs(1),
            env: [
                ("ANTHROPIC_MODEL".to_string(), "claude-sonnet".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
            .into(),
            queue: Default::default(),
            runner: Default::default(),
            image: None,
        }
    );
    assert!(
        cfg.agent.weights.age_per_hour.is_sign_positive(),
        "-0.0 is read as 0"
    );
}

#[test]
fn a_podman_runner_on_workers_only_is_valid() {
    let cfg = ok(r#"
[agent]
runner = "podman"
image = "registry.example.com/agent:1"
queue = "redis://127.0.0.1:6379/0"
queue_unreachable = "wait"
"#);
    assert_eq!(cfg.agent.runner, config::Runner::Podman);
    assert_eq!(
        cfg.agent.image.as_deref(),
        Some("registry.example.com/agent:1")
    );
    assert_eq!(
        ok("[agent]\nrunner = \"process\"\n").agent.runner,
        config::Runner::Process
    );
}

#[test]
fn agent_defaults_when_absent_or_partial() {
    for text in [
        "",
        "[supervisor]\n",
        "[agent]\n",
        "agent = {}\n",
        "[agent.weights]\n",
    ] {
        assert_eq!(ok(text).agent, AgentSettings::default(), "{text:?}");
    }
    let cfg = ok("[agent]\nmax_error_rate = 0\nweights = { sender = 0.9 }\n");
    assert_eq!(cfg.agent.max_error_rate, 0.0);
    assert_eq!(
        cfg.agent.weights,
        Weights {
            sender: 0.9,
            ..Weights::default()
        }
    );
    assert_eq!(cfg.agent.command, AgentSettings::default().command);
    let inline = ok("agent.weights = { urgency = 0.1 }\n");
    let table = ok("[agent.weights]\nurgency = 0.1\n");
    assert_eq!(inline.agent, table.agent);
}

#[test]
fn the_default_agent_command_is_a_valid_template() {
    let d = AgentSettings::default();
    let text = format!(
        "[agent]\ncommand = {:?}\nresume = {:?}\n",
        d.command, d.resume
    );
    assert_eq!(ok(&text).agent, d);
}

#[test]
fn inline_array_of_tables_is_the_same_as_double_brackets() {
    let inline = ok(
        r#"process = [{ name = "a", command = "true", args = ["1"] }, { name = "b", command = "false" }]"#,
    );
    let brackets = ok(r#"
[[process]]
name = "a"
command = "true"
args = ["1"]

[[process]]
name = "b"
command = "false"
"#);
    assert_eq!(inline.processes, brackets.processes);
}

#[test]
fn the_parser_never_panics_on_truncated_or_mangled_tables() {
    // The default table's processes, and its `[agent]` block uncommented (the comments
    // would only make each parse longer).
    let end = config::DEFAULT_TABLE
        .find("\n# The task loop")
        .unwrap_or(config::DEFAULT_TABLE.len());
    for table in [&config::DEFAULT_TABLE[..end], &default_agent_block()] {
        let boundaries: Vec<usize> = table.char_indices().map(|(i, _)| i).collect();
        for (n, &i) in boundaries.iter().enumerate() {
            let _ = parse(&table[..i]);
            // Every third position, to keep the test quick in debug builds.
            if n % 3 != 0 {
                continue;
            }
            let next = table[i..].chars().next().map_or(0, char::len_utf8);
            for replacement in ["", "\"", "[", "=", "\n", "é", "{", "}"] {
                let mangled = format!("{}{replacement}{}", &table[..i], &table[i + next..]);
                if let Err(e) = parse(&mangled) {
                    for err in &e.0 {
                        assert!(err.line >= 1 && err.column >= 1, "{err}");
                        assert!(!err.message.is_empty());
                    }
                }
            }
        }
    }
}

// ---- end to end: `ai-employee check --config FILE` ----

fn check(dir: &Path, file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ai-employee"))
        .args(["check", "--config", file, "--vault"])
        .arg(dir)
        .current_dir(dir)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `check` on `table` exits 78 with exactly `stderr`, and prints nothing on stdout.
fn check_fails_with(table: &str, stderr: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), table).unwrap();
    let out = check(dir.path(), "bad.toml");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), stderr);
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn check_exits_78_with_every_error_on_stderr() {
    check_fails_with(
        r#"[supervisor]
health_interval = "30"

[[process]]
name = "gmail"
command = "ai-employee"
restrat = "always"

[[process]]
name = "gmail"
command = "ai-employee"
"#,
        r#"bad.toml:2:19: supervisor.health_interval: invalid duration "30" (use a unit: "30s", "5m", "500ms")
bad.toml:6:11: process[1].args: missing: `ai-employee` needs a subcommand (e.g. args = ["watch", "filesystem"])
bad.toml:7:1: unknown key "restrat" in [[process]] (did you mean "restart"?)
bad.toml:10:8: duplicate process name "gmail" (first defined at line 5)
bad.toml:11:11: process[2].args: missing: `ai-employee` needs a subcommand (e.g. args = ["watch", "filesystem"])
"#,
    );
}

#[test]
fn check_exits_78_on_a_syntax_error_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[[process]\nname = \"a\"\n").unwrap();
    let out = check(dir.path(), "bad.toml");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("bad.toml:1:11: invalid TOML: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = check(dir.path(), "missing.toml");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("missing.toml: failed to read the process table: "),
        "{stderr}"
    );
}

#[test]
fn check_exits_78_on_a_bad_agent_section() {
    check_fails_with(
        r#"[agent]
max_concurrent_tasks = 5
command = ["claude", "-p", "{promt}"]
prompt = "/tmp/prompt.md"

[agent.weights]
urgency = -1
"#,
        r#"bad.toml:2:1: unknown key "max_concurrent_tasks" in [agent] (did you mean "max_concurrent"?)
bad.toml:3:28: agent.command[3]: unknown placeholder {promt} (did you mean "{prompt}"?)
bad.toml:4:10: agent.prompt: must be a path inside the vault, relative to it, found "/tmp/prompt.md"
bad.toml:7:11: agent.weights.urgency: must not be negative, found -1
"#,
    );
}

#[test]
fn check_exits_78_on_a_misspelt_watcher() {
    check_fails_with(
        r#"[[process]]
name = "filesystem"
command = "ai-employee"
args = ["watch", "filesytem"]
"#,
        r#"bad.toml:4:18: process[1].args: unknown subcommand "filesytem" (did you mean "filesystem"?)
"#,
    );
}

#[test]
fn a_command_line_whose_argument_may_come_from_the_environment_is_valid() {
    // `worker` needs --queue or $AI_EMPLOYEE_QUEUE: the child's environment may have it.
    let cfg = ok(r#"
[[process]]
name = "worker"
command = "ai-employee"
args = ["worker"]
env = { AI_EMPLOYEE_QUEUE = "redis://127.0.0.1:6379/0" }
"#);
    assert_eq!(cfg.processes[0].args, ["worker"]);
}

#[test]
fn check_warns_of_a_missing_cwd() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.toml"),
        "[[process]]\nname = \"x\"\ncommand = \"/bin/true\"\ncwd = \"No/Such\"\n",
    )
    .unwrap();
    let out = check(dir.path(), "t.toml");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let missing = dir.path().join("No/Such");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "t.toml: warning: process \"x\": cwd {} does not exist (it cannot start until fixed)\n",
            missing.display()
        )
    );
}

#[test]
fn check_exits_0_on_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.toml"), config::DEFAULT_TABLE).unwrap();
    let out = check(dir.path(), "good.toml");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("good.toml: ok"), "{stdout}");
}
