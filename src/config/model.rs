//! The validated process table. Everything here has passed validation: durations are
//! parsed, names are unique, paths are as written (made absolute at spawn time).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The most `max_restarts` accepts: the supervisor remembers that many restart times per
/// child within `restart_window` (16 bytes each).
pub const MAX_RESTARTS: u32 = 10_000;

/// The largest size any key of the table accepts: 1 TiB.
pub const MAX_SIZE: u64 = 1 << 40;

/// Where the table came from, for messages ("built-in default" or a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("<built-in default>"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: Source,
    pub supervisor: SupervisorSettings,
    /// In file order; names are unique.
    pub processes: Vec<ProcessSpec>,
    /// `[[notify]]` webhooks, in file order.
    pub notify: Vec<NotifySpec>,
    /// `[agent]`: the task loop (`ai-employee agent`); defaults when the section is absent.
    pub agent: AgentSettings,
}

/// `[agent]`: the task loop's settings (docs/agent.md lists every key).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// `command`: the agent's argv template. Placeholders, each replaced inside an
    /// argument: `{prompt}` (the rendered prompt), `{task}` (the task's id, its file stem),
    /// `{task_file}` (vault-relative path of the task file in `In_Progress/`), `{vault}`.
    pub command: Vec<String>,
    /// `resume`: arguments appended to `command` to continue a session
    /// (`{session_id}` replaced), default `["--resume", "{session_id}"]`.
    pub resume: Vec<String>,
    /// `prompt`: the prompt template, vault-relative (default `Agent_Prompt.md`, which
    /// `init` writes; the built-in template when the file does not exist).
    pub prompt: String,
    /// `max_concurrent`, default 2: agents running at once.
    pub max_concurrent: u32,
    /// `timeout`, default 1 h: a run longer than this is stopped (SIGTERM to its group,
    /// SIGKILL after `kill_after`).
    pub timeout: Duration,
    /// `kill_after`, default 10 s.
    pub kill_after: Duration,
    /// `max_attempts`, default 5: runs of a task before it goes to `Failed/`.
    pub max_attempts: u32,
    /// `retry_delays`, default 1m, 5m, 15m, 1h, 4h: the wait after the n-th failed
    /// attempt (the last one repeats).
    pub retry_delays: Vec<Duration>,
    /// `max_iterations`, default 3: resumes of a session that stopped without a status
    /// (or whose `verify` failed) within one attempt.
    pub max_iterations: u32,
    /// `verify`: optional argv run in the vault after a run that says done; a non-zero exit
    /// feeds its output into the next iteration.
    pub verify: Option<Vec<String>>,
    /// `approval_keywords`, default deploy, production, delete: a task whose title or
    /// body has one (whole word, any case) waits for a person before the agent starts.
    pub approval_keywords: Vec<String>,
    /// `approval_timeout`, default 24 h: no decision → the task needs human review.
    pub approval_timeout: Duration,
    /// `vip_senders`: addresses or numbers whose tasks score the sender weight.
    pub vip_senders: Vec<String>,
    /// `urgency_keywords`, default urgent, asap, emergency, immediately, critical.
    pub urgency_keywords: Vec<String>,
    /// `[agent.weights]`.
    pub weights: Weights,
    /// `max_backlog`, default 20: more tasks waiting → degraded.
    pub max_backlog: u32,
    /// `max_error_rate`, default 0.10 (of runs in the last 24 h) → degraded.
    pub max_error_rate: f64,
    /// `max_idle`, default 1 h: no completion for this long while tasks wait → degraded.
    pub max_idle: Duration,
    /// `dashboard_interval`, default 5 s: the `## Tasks` summary is written at most this
    /// often.
    pub dashboard_interval: Duration,
    /// `env`: extra environment of the agent.
    pub env: BTreeMap<String, String>,
    /// `queue`, `claim_timeout`, `worker_timeout`, `queue_unreachable`: runs handed to
    /// workers on other hosts (docs/workers.md).
    pub queue: QueueSettings,
    /// `runner`, default `process`: how a worker runs the agent (docs/workers.md,
    /// "Containers").
    pub runner: Runner,
    /// `image`: the container image a worker runs the agent in (required with
    /// `runner = "podman"`).
    pub image: Option<String>,
}

/// `[agent] runner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runner {
    /// The agent runs as a plain process (in the vault, or in a worker's scratch folder).
    #[default]
    Process,
    /// Each run in a fresh podman container with only the scratch folder mounted; on
    /// workers only (`ai-employee worker --runner podman`).
    Podman,
}

/// The `[agent]` keys of the work queue (docs/workers.md).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// `queue`: `redis://host:6379/0` or `rediss://…` (TLS); unset, agents run locally.
    /// Never a password (that is in `credentials/queue.toml`).
    pub url: Option<String>,
    /// `claim_timeout`, default 10 min: a worker silent this long (dead or stalled) loses
    /// its runs to another worker.
    pub claim_timeout: Duration,
    /// `worker_timeout`, default 2 min: a worker not seen this long is gone (`tasks
    /// health` is degraded when tasks wait and no worker is seen).
    pub worker_timeout: Duration,
    /// `queue_unreachable`, default `local`: what the loop does while Redis is unreachable.
    pub unreachable: QueueUnreachable,
}

/// `queue_unreachable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueUnreachable {
    /// Run agents on this host meanwhile.
    Local,
    /// Wait for Redis; nothing new starts.
    Wait,
}

impl QueueSettings {
    /// `claim_timeout`'s default (also a worker's until the loop has said its own).
    pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(10 * 60);
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            url: None,
            claim_timeout: QueueSettings::DEFAULT_CLAIM_TIMEOUT,
            worker_timeout: Duration::from_secs(2 * 60),
            unreachable: QueueUnreachable::Local,
        }
    }
}

/// `[agent.weights]`: how the score is made (docs/agent.md, "Priority").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// `urgency`, default 0.4: the task's priority and urgency keywords.
    pub urgency: f64,
    /// `deadline`, default 0.3: how close the deadline is.
    pub deadline: f64,
    /// `sender`, default 0.3: a VIP sender.
    pub sender: f64,
    /// `age_per_hour`, default 0.05: added per hour of waiting, so nothing starves.
    pub age_per_hour: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            urgency: 0.4,
            deadline: 0.3,
            sender: 0.3,
            age_per_hour: 0.05,
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let min = |m: u64| Duration::from_secs(m * 60);
        AgentSettings {
            command: s(&[
                "claude",
                "-p",
                "{prompt}",
                "--output-format",
                "json",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
                "Read,Write,Edit,Glob,Grep",
            ]),
            resume: s(&["--resume", "{session_id}"]),
            prompt: "Agent_Prompt.md".to_string(),
            max_concurrent: 2,
            timeout: min(60),
            kill_after: Duration::from_secs(10),
            max_attempts: 5,
            retry_delays: vec![min(1), min(5), min(15), min(60), min(240)],
            max_iterations: 3,
            verify: None,
            approval_keywords: s(&["deploy", "production", "delete"]),
            approval_timeout: min(24 * 60),
            vip_senders: Vec::new(),
            urgency_keywords: s(&["urgent", "asap", "emergency", "immediately", "critical"]),
            weights: Weights::default(),
            max_backlog: 20,
            max_error_rate: 0.10,
            max_idle: min(60),
            dashboard_interval: Duration::from_secs(5),
            env: BTreeMap::new(),
            queue: QueueSettings::default(),
            runner: Runner::Process,
            image: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSettings {
    /// `health_interval`, default 30 s.
    pub health_interval: Duration,
    /// `stop_timeout`, default 10 s: SIGTERM to the group, SIGKILL after this.
    pub stop_timeout: Duration,
    /// `log_max_size`, default 10 MiB: size at which a log file is rotated.
    pub log_max_size: u64,
    /// `log_max_files`, default 5: rotated files kept (`name.log.1` … `name.log.N`).
    pub log_max_files: u32,
    /// `metrics`, off by default: where to serve Prometheus metrics (`127.0.0.1:9464`).
    pub metrics: Option<std::net::SocketAddr>,
    /// `reload_on_change`, default true: a saved change of the table file is applied like
    /// `reload` (a broken one is refused, the running table kept).
    pub reload_on_change: bool,
    /// `log_timestamps`, default true: each line of a child's output is prefixed in its
    /// log with the local time it was read.
    pub log_timestamps: bool,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            health_interval: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
            metrics: None,
            reload_on_change: true,
            log_timestamps: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffSpec {
    /// `initial`, default 2 s (zero allowed: restart at once).
    pub initial: Duration,
    /// `factor`, default 2.0 (>= 1.0).
    pub factor: f64,
    /// `max`, default 60 s (the cap).
    pub max: Duration,
    /// `reset_after`, default 5 min of stable running.
    pub reset_after: Duration,
}

impl Default for BackoffSpec {
    fn default() -> Self {
        BackoffSpec {
            initial: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(300),
        }
    }
}

/// Signals a child may ask to be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
    Hup,
    Quit,
    Usr1,
    Usr2,
}

impl StopSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
            StopSignal::Hup => "HUP",
            StopSignal::Quit => "QUIT",
            StopSignal::Usr1 => "USR1",
            StopSignal::Usr2 => "USR2",
        }
    }
    pub fn signal(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal;
        match self {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Hup => Signal::SIGHUP,
            StopSignal::Quit => Signal::SIGQUIT,
            StopSignal::Usr1 => Signal::SIGUSR1,
            StopSignal::Usr2 => Signal::SIGUSR2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    /// Unique; `[A-Za-z0-9_.-]{1,64}`, used as the log file name.
    pub name: String,
    /// Human-readable name for the console and Dashboard; defaults to `name`.
    pub description: String,
    /// As written. `"ai-employee"` means the supervisor's own executable; a bare name is
    /// looked up on `PATH`; a relative path is relative to the vault.
    pub command: String,
    pub args: Vec<String>,
    /// `enabled`, default true.
    pub enabled: bool,
    /// `restart`, default always.
    pub restart: RestartPolicy,
    pub backoff: BackoffSpec,
    /// `max_restarts` within `restart_window` → state fatal. None: never give up.
    pub max_restarts: Option<u32>,
    /// `restart_window`, default 5 min.
    pub restart_window: Duration,
    /// `heartbeat_timeout`: restart a child whose heartbeat file is older than this.
    pub heartbeat_timeout: Option<Duration>,
    /// `max_memory` in bytes: restart a child whose RSS grows past it.
    pub max_memory: Option<u64>,
    /// Extra environment, on top of the supervisor's own.
    pub env: BTreeMap<String, String>,
    /// `cwd`, default the vault; relative paths are relative to the vault.
    pub cwd: Option<PathBuf>,
    /// Per-process `stop_timeout`, overriding `[supervisor] stop_timeout`.
    pub stop_timeout: Option<Duration>,
    /// `stop_signal`, default TERM.
    pub stop_signal: StopSignal,
    /// Per-process log rotation overrides.
    pub log_max_size: Option<u64>,
    pub log_max_files: Option<u32>,
    /// Per-process `log_timestamps`, overriding `[supervisor] log_timestamps`.
    pub log_timestamps: Option<bool>,
}

impl ProcessSpec {
    /// The folder the child runs in: `cwd` (relative to the vault), else the vault.
    pub fn working_dir(&self, vault: &std::path::Path) -> PathBuf {
        match &self.cwd {
            Some(c) => vault.join(c),
            None => vault.to_path_buf(),
        }
    }

    /// A spec with every optional field at its default (used by tests and the parser).
    pub fn new(name: &str, command: &str, args: &[&str]) -> Self {
        ProcessSpec {
            name: name.to_string(),
            description: name.to_string(),
            command: command.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            restart: RestartPolicy::Always,
            backoff: BackoffSpec::default(),
            max_restarts: None,
            restart_window: Duration::from_secs(300),
            heartbeat_timeout: None,
            max_memory: None,
            env: BTreeMap::new(),
            cwd: None,
            stop_timeout: None,
            stop_signal: StopSignal::Term,
            log_max_size: None,
            log_max_files: None,
            log_timestamps: None,
        }
    }
}

/// Something the supervisor can tell a `[[notify]]` webhook about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A child was given up on (`max_restarts` within `restart_window`).
    ChildFatal,
    /// A child exited 78 or cannot be started: a person must fix its configuration.
    ChildNeedsSetup,
    /// The system went from online to degraded.
    SystemDegraded,
    /// The supervisor stopped.
    SystemOffline,
    /// The approval handler could not carry out an approved action.
    ApprovalFailed,
    /// The task loop gave up on a task (moved to Failed/).
    TaskFailed,
    /// A task's approvals got no decision in time: a person must look at it.
    TaskNeedsReview,
    /// The task loop cannot work through its queue (the agent needs setup, runs keep
    /// failing, tasks wait too long).
    TasksUnhealthy,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 8] = [
        NotifyEvent::ChildFatal,
        NotifyEvent::ChildNeedsSetup,
        NotifyEvent::SystemDegraded,
        NotifyEvent::SystemOffline,
        NotifyEvent::ApprovalFailed,
        NotifyEvent::TaskFailed,
        NotifyEvent::TaskNeedsReview,
        NotifyEvent::TasksUnhealthy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::ChildFatal => "child_fatal",
            NotifyEvent::ChildNeedsSetup => "child_needs_setup",
            NotifyEvent::SystemDegraded => "system_degraded",
            NotifyEvent::SystemOffline => "system_offline",
            NotifyEvent::ApprovalFailed => "approval_failed",
            NotifyEvent::TaskFailed => "task_failed",
            NotifyEvent::TaskNeedsReview => "task_needs_review",
            NotifyEvent::TasksUnhealthy => "tasks_unhealthy",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One `[[notify]]` entry: a JSON POST to `webhook` for each of `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySpec {
    /// An `https://` URL (or `http://` for a loopback host). May hold a secret (Slack and
    /// Discord put one in the path), so logs show only its host.
    pub webhook: String,
    /// Default: every event.
    pub events: Vec<NotifyEvent>,
    /// Per attempt, default 5 s.
    pub timeout: Duration,
    /// Further attempts after a failure, default 3 (1 s, 2 s, 4 s apart).
    pub retries: u32,
}
