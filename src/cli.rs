//! Command-line types only; behaviour lives in `commands/`.

use std::path::PathBuf;

use ai_employee_vault::cli::VaultArg;
use clap::{Parser, Subcommand};

/// Parse the process's command line, or exit as clap does (help, version, usage error:
/// exit 2). A usage error is told as if no variable were exported: an argument set only
/// by `$AI_EMPLOYEE_VAULT` (or another variable) would otherwise show up in the usage
/// line as though it had been typed.
pub fn parse() -> Cli {
    use clap::CommandFactory;
    use clap::FromArgMatches;
    use clap::error::ErrorKind;
    let e = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let again = without_env(Cli::command(), false)
        .try_get_matches_from(std::env::args_os())
        .and_then(|m| Cli::from_arg_matches(&m));
    match again {
        // The same mistake, told without the variables.
        Err(plain) if plain.kind() == e.kind() => plain.exit(),
        _ => e.exit(),
    }
}

/// `cmd` with no argument read from the environment; with `optional`, an argument that
/// could come from a variable is not required either (the process table's check: the
/// child's environment is not the one `check` runs in).
pub fn without_env(cmd: clap::Command, optional: bool) -> clap::Command {
    cmd.mut_args(move |a| {
        if a.get_env().is_some() {
            let a = a.env(clap::builder::Resettable::Reset);
            if optional { a.required(false) } else { a }
        } else {
            a
        }
    })
    .mut_subcommands(move |c| without_env(c, optional))
}

#[derive(Debug, Parser)]
#[command(
    name = "ai-employee",
    version,
    about = "Keeps a personal AI employee's watchers running"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the vault's folders, Dashboard.md and process table (never overwrites)
    Init {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Validate the process table without starting anything
    Check {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the process table in the foreground until Ctrl+C or SIGTERM
    Supervise {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show each child's state, pid, uptime, restarts, last exit, memory and CPU
    ///
    /// Exit status: 0 healthy, 1 degraded (a child is restarting, gave up or failed), 3 no
    /// supervisor is running on the vault, 4 status unknown (the socket belongs to another
    /// user, or the supervisor did not answer), 5 needs setup (nothing failed, but a child
    /// waits for `ai-employee setup`, as on a fresh install).
    Status {
        #[command(flatten)]
        vault: VaultArg,
        /// Print the report as JSON (the control socket's status object)
        #[arg(long)]
        json: bool,
        /// Redraw the report in place every --interval until Ctrl+C
        #[arg(long, short = 'w')]
        watch: bool,
        /// How often --watch redraws
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = ai_employee_vault::units::parse_positive_duration)]
        interval: std::time::Duration,
    },
    /// A full-screen live view: children, the task queue and the log, with keys to stop,
    /// start, restart, follow a child's log and pause tasks (`?` lists them)
    ///
    /// Exit status: 0 quit (q, Ctrl+C), 1 the terminal could not be set up or went away,
    /// 2 stdout is not a terminal (scripts: `status --watch`), 128+N ended by signal N
    /// (SIGTERM, SIGHUP; the terminal is restored).
    Top {
        #[command(flatten)]
        vault: VaultArg,
        /// How often to ask the supervisor and read the queue and the log
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = ai_employee_vault::units::parse_positive_duration)]
        interval: std::time::Duration,
    },
    /// Start a child that is stopped, needs setup, gave up or exited
    Start {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Stop a child; it stays stopped until `start` or the supervisor's next start
    Stop {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Stop a child (if running) and start it again at once
    Restart {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Re-read the process table of the running supervisor (the same as SIGHUP)
    Reload {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Print the system log, or one child's log, and optionally follow it
    Logs {
        #[command(flatten)]
        vault: VaultArg,
        /// A process name (its Logs/<name>.log); without one, Logs/system.log
        name: Option<String>,
        /// Keep printing what is appended, across rotations, until Ctrl+C
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the last lines to print first
        #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
        lines: usize,
    },
    /// Run the task loop: Needs_Action/ → priority → approval gate → the AI agent → Done/
    ///
    /// Exit status: 0 stopped (or, with --once, nothing left to run now), 78 the agent needs
    /// setup or the table is invalid, 75 another task loop runs on the vault.
    Agent {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Process what is runnable now, then exit
        #[arg(long)]
        once: bool,
        /// Show what would run, in order, without starting the agent or changing the vault
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the task queue (score, state, wait, attempt, estimated start and finish)
    ///
    /// Exit status: 0 the loop runs, 3 no task loop runs on the vault.
    Tasks {
        #[command(flatten)]
        vault: VaultArg,
        /// Print the queue as JSON (the loop's snapshot)
        #[arg(long)]
        json: bool,
        /// Redraw the queue in place every --interval until Ctrl+C
        #[arg(long, short = 'w')]
        watch: bool,
        /// Also show each task's file, deadline, last error and approvals
        #[arg(long, short = 'v')]
        verbose: bool,
        /// How often --watch redraws
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = ai_employee_vault::units::parse_positive_duration)]
        interval: std::time::Duration,
        #[command(subcommand)]
        command: Option<TasksCommand>,
    },
    /// Run agents for a task loop on another host: take runs from the queue (Redis
    /// Streams), run the agent in a scratch folder, answer with the result
    ///
    /// Exit status: 0 stopped (SIGTERM / Ctrl+C), 78 a set-up problem (the URL, the
    /// credentials file, the agent cannot run here). See docs/workers.md.
    Worker {
        /// The queue: redis://host:6379/0, or rediss://host:6380/0 for TLS (no password
        /// here: it goes in the --credentials file)
        #[arg(
            long,
            value_name = "URL",
            env = "AI_EMPLOYEE_QUEUE",
            hide_env_values = true
        )]
        queue: String,
        /// Runs at once
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
        concurrency: u32,
        /// This worker's name in the queue (one per worker process) [default: the host name]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The Redis user, password and CA (the format of a vault's credentials/queue.toml)
        #[arg(
            long,
            value_name = "FILE",
            env = "AI_EMPLOYEE_QUEUE_CREDENTIALS",
            hide_env_values = true
        )]
        credentials: Option<PathBuf>,
        /// Take over runs of a worker silent this long [default: the loop's [agent]
        /// claim_timeout, followed while the worker runs; 10m until the loop has said it]
        #[arg(long, value_name = "DURATION", value_parser = ai_employee_vault::units::parse_positive_duration)]
        claim_timeout: Option<std::time::Duration>,
        /// Scratch folders and agent logs [default: $STATE_DIRECTORY, else
        /// $XDG_STATE_HOME/ai-employee-worker, else ~/.local/state/ai-employee-worker]
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// A program the queue's agent command may name (repeat for more; a bare name
        /// matches a program found on PATH, a path only itself)
        #[arg(
            long = "allow-program",
            value_name = "PROGRAM",
            default_value = "claude"
        )]
        allow_program: Vec<String>,
        /// Keep each run's scratch folder (to look at what the agent did)
        #[arg(long)]
        keep_scratch: bool,
        #[command(flatten)]
        containers: ContainerArgs,
    },
    /// List the workers of the task loop's queue (name, host, concurrency, current runs,
    /// last seen)
    ///
    /// Exit status: 0 listed, 3 no queue configured ([agent] queue) or it is unreachable,
    /// 78 the table or credentials/queue.toml is invalid.
    Workers {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the workers and the queue's counts as JSON
        #[arg(long)]
        json: bool,
    },
    /// Set up a part: ask for what it needs (or take it from flags), check it live, save
    /// it in credentials/ (0600) and restart its child if a supervisor runs
    ///
    /// Without a part: each part's state (configured, missing, invalid) and what to do
    /// next. Exit status: 0 saved (without a part: every part the table needs is set up),
    /// 1 the check failed or nothing was saved, 2 usage (a value missing with --no-input),
    /// 73 the file could not be written, 78 no vault there or its table is invalid
    /// (without a part: a part the table needs is not set up). See docs/operations.md.
    Setup {
        /// The vault folder [default: $AI_EMPLOYEE_VAULT, else ./AI_Employee_Vault]
        /// (before or after the part)
        #[arg(long, value_name = "DIR", env = "AI_EMPLOYEE_VAULT", global = true)]
        vault: Option<PathBuf>,
        #[command(subcommand)]
        part: Option<SetupPart>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from this command line, or write every page
    ///
    /// With --dir, one page per subcommand is written there (ai-employee.1,
    /// ai-employee-supervise.1, ai-employee-watch-gmail.1 …), the pages the main page's
    /// SEE ALSO names.
    Man {
        /// Write all the pages into this folder (e.g. ~/.local/share/man/man1) instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run one watcher (the supervisor starts these as its children)
    Watch {
        #[command(subcommand)]
        watcher: WatchCommand,
    },
    /// Internal: the orphan guardian started by `supervise`
    #[command(name = "__guardian", hide = true)]
    Guardian,
}

/// `ai-employee tasks …`.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Show one task: its file, state, attempts, errors, cost and log
    Show {
        /// The task's id (its file name without .md) or a unique prefix of it
        id: String,
    },
    /// Create a task in Needs_Action/ by hand
    Add {
        /// What the task is
        title: String,
        /// The task's text
        #[arg(long)]
        body: Option<String>,
        #[arg(long, value_enum, default_value = "medium")]
        priority: TaskPriority,
        /// When it is due: RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, or a duration from
        /// now (`2h`, `3d`)
        #[arg(long, value_name = "TIME")]
        deadline: Option<String>,
    },
    /// Run a task again now: one waiting to retry, needing review, or in Failed/
    Retry {
        /// The task's id or a unique prefix
        id: String,
    },
    /// Start no new task (the stop file .claude_stop); running ones finish
    Pause {
        /// Also stop the running ones (they are retried after resume)
        #[arg(long)]
        now: bool,
    },
    /// Remove the stop file: tasks start again at once (on the file event)
    Resume,
    /// Throughput, durations, error rate, retries and cost from Logs/tasks.jsonl
    Metrics {
        /// The window: `24h`, `7d` …
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = ai_employee_vault::units::parse_positive_duration)]
        since: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// healthy / degraded / unhealthy with reasons; exit 0 healthy, 1 not, 3 no loop runs
    Health {
        #[arg(long)]
        json: bool,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// `ai-employee worker`'s container flags (docs/workers.md, "Containers").
#[derive(Debug, Clone, clap::Args)]
pub struct ContainerArgs {
    /// How runs are run: as plain processes, or each in a fresh podman container with
    /// only its scratch folder mounted (whatever the queue's message asks)
    #[arg(long, value_name = "RUNNER", default_value = "process")]
    pub runner: WorkerRunner,
    /// The container image of --runner podman (it must hold the agent)
    #[arg(long, value_name = "IMAGE", required_if_eq("runner", "podman"))]
    pub image: Option<String>,
    /// The podman program
    #[arg(long, value_name = "PATH", default_value = "podman")]
    pub podman: String,
    /// A global podman flag, before `run` and `rm` (repeat for more; e.g.
    /// --podman-arg=--runtime --podman-arg=/usr/sbin/runc)
    #[arg(long = "podman-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub podman_arg: Vec<String>,
    /// The containers' network: podman's default (the agent reaches its API), or a
    /// network name; `none` for no network at all
    #[arg(long, value_name = "NETWORK")]
    pub container_network: Option<String>,
    /// Who the agent runs as in the container [default: the worker's own user
    /// (--userns=keep-id) when rootless, 65534:65534 (nobody) as root]
    #[arg(long, value_name = "UID:GID")]
    pub container_user: Option<String>,
}

/// `--runner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerRunner {
    Process,
    Podman,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskPriority {
    High,
    Medium,
    Low,
}

/// `ai-employee setup <part>`.
#[derive(Debug, Subcommand)]
pub enum SetupPart {
    /// The mail watcher's IMAP login: credentials/gmail.toml (checked: login, capabilities)
    Gmail(SetupGmail),
    /// The approval handler's outgoing mail: credentials/smtp.toml (checked: EHLO, TLS, AUTH)
    Smtp(SetupSmtp),
    /// The WhatsApp webhook's secrets and the sending token: credentials/whatsapp.toml
    /// (the token checked against the Cloud API)
    Whatsapp(SetupWhatsapp),
    /// The GitHub token: credentials/github.toml (checked against the API)
    Github(SetupGithub),
    /// The task loop's agent (Claude Code): found on PATH and logged in (nothing is saved)
    Agent(SetupAgent),
}

/// What every `setup <part>` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupCommon {
    /// Never prompt: every value from flags or defaults (a missing one is exit 2)
    #[arg(long)]
    pub no_input: bool,
    /// Replace an existing file without asking
    #[arg(long)]
    pub force: bool,
    /// Save without the live check (the file is still read as the watcher reads it)
    #[arg(long)]
    pub skip_check: bool,
}

/// `--password-file` / `--password-stdin`: a password never has to be in argv.
#[derive(Debug, Clone, clap::Args)]
pub struct PasswordArgs {
    /// Read the password from this file (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Read the password from standard input (its first line)
    #[arg(long)]
    pub password_stdin: bool,
}

/// The server of a mail part.
#[derive(Debug, Clone, clap::Args)]
pub struct MailServerArgs {
    /// The server's host name
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The server's port [default: from --tls]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// tls (from the first byte), starttls, or none (loopback hosts only)
    #[arg(long, value_name = "MODE", value_parser = ["tls", "starttls", "none"])]
    pub tls: Option<String>,
    /// The login (the mail account)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Log in with this OAuth token file in credentials/ instead of a password (docs/oauth.md)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["password_file", "password_stdin"])]
    pub oauth_token_file: Option<String>,
    /// An extra trusted root certificate (PEM) for a self-hosted server: a file in
    /// credentials/, or an absolute path
    #[arg(long, value_name = "NAME")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupGmail {
    #[command(flatten)]
    pub common: SetupCommon,
    #[command(flatten)]
    pub server: MailServerArgs,
    /// The mailbox the check opens (the watcher's --mailbox)
    #[arg(long, value_name = "NAME", default_value = "INBOX")]
    pub mailbox: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupSmtp {
    #[command(flatten)]
    pub common: SetupCommon,
    #[command(flatten)]
    pub server: MailServerArgs,
    /// The sender of every email: `Name <address>` [default: the login, if an address]
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupWhatsapp {
    #[command(flatten)]
    pub common: SetupCommon,
    /// Read the Meta app's secret (App settings → Basic) from this file
    #[arg(long, value_name = "FILE")]
    pub app_secret_file: Option<PathBuf>,
    /// Read the webhook's verify token (any string, typed again into Meta's form) from this file
    #[arg(long, value_name = "FILE")]
    pub verify_token_file: Option<PathBuf>,
    /// Read the Cloud API access token (for sending replies) from this file
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The sender's phone number ID (Meta's app dashboard; digits)
    #[arg(long, value_name = "ID")]
    pub phone_number_id: Option<String>,
    /// Set up only the webhook (no access token: approved replies cannot be sent)
    #[arg(long, conflicts_with_all = ["token_file", "phone_number_id"])]
    pub no_sending: bool,
    /// The Cloud API's base URL [default: https://graph.facebook.com/v21.0]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupGithub {
    #[command(flatten)]
    pub common: SetupCommon,
    /// Read the token from this file (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "token_stdin")]
    pub token_file: Option<PathBuf>,
    /// Read the token from standard input (its first line)
    #[arg(long)]
    pub token_stdin: bool,
    /// The REST API's base URL [default: https://api.github.com]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupAgent {
    #[command(flatten)]
    pub common: SetupCommon,
    /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The longest the check's run of the agent may take
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = ai_employee_vault::units::parse_positive_duration)]
    pub timeout: std::time::Duration,
}

/// The watchers; each one's options live in its own crate under `watchers/`.
#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Inbox/ → task files in Needs_Action/
    Filesystem(ai_employee_filesystem::Args),
    /// Important unread mail → EMAIL_*.md tasks
    Gmail(ai_employee_gmail::Args),
    /// WhatsApp Cloud API webhook → WHATSAPP_*.md tasks
    Whatsapp(ai_employee_whatsapp::Args),
    /// Executes what a human moved into Approved/ (the safety valve)
    Approvals(ai_employee_approvals::Args),
    /// Open GitHub issues with a label → GITHUB_*.md tasks
    Github(ai_employee_github::Args),
}
