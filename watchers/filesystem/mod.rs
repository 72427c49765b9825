//! `ai-employee watch filesystem`: files dropped into `Inbox/` become tasks in
//! `Needs_Action/` — a copy `FILE_<stamp>_<name>` and its note `FILE_<stamp>_<name>.md`
//! — each distinct (name, content) exactly once, across restarts and `kill -9`.
//! See `docs/filesystem-watcher.md` for the design and the crash-safety argument.
//!
//! - `engine`: the main loop (events, readiness, batching, commit).
//! - `ready`: when a file is complete (pure decision).
//! - `stage`: copy + hash into staging (workers), publish, recovery at start.
//! - `ledger`: the append-only memory of what was done.
//! - `task`: the note's frontmatter and body.
//! - `names`: ignored names, sanitizing, task names.
//! - `sys`: leases, no-replace rename, directory fsync (Linux/macOS bits).

mod engine;
mod ledger;
mod names;
mod ready;
mod stage;
pub(crate) mod sys;
pub(crate) mod task;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args as ClapArgs;

use super::common::{WatcherCtx, needs_setup};
use crate::cli::VaultArg;
use crate::exit_codes;
use crate::vault::layout::STATE_DIR;

const NAME: &str = "filesystem";

#[derive(Debug, ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,

    /// Where the OS cannot tell that a writer closed the file (macOS, network shares):
    /// take a file once its size and modification time stayed unchanged this long
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_settle)]
    pub settle: Duration,

    /// Threads that copy, hash and fsync files
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Look at Inbox every DURATION instead of using OS file events (for folders where
    /// events do not arrive, such as some network shares)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::units::parse_positive_duration)]
    pub poll: Option<Duration>,

    /// Judge completeness by settling only, as on macOS (ignore Linux close events and
    /// leases); for tests
    #[arg(long, hide = true)]
    pub settle_only: bool,
}

fn parse_settle(s: &str) -> Result<Duration, String> {
    crate::config::units::parse_flag_duration(s)
}

/// The options the engine runs with.
#[derive(Debug, Clone)]
pub struct Options {
    pub settle: Duration,
    pub workers: usize,
    pub poll: Option<Duration>,
    pub settle_only: bool,
}

/// Where the watcher reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    pub inbox: PathBuf,
    pub needs_action: PathBuf,
    pub state: PathBuf,
    /// Private folder where tasks are built before they are published.
    pub staging: PathBuf,
    pub ledger: PathBuf,
}

impl Paths {
    fn new(vault: &Path) -> Paths {
        let state = vault.join(STATE_DIR);
        Paths {
            inbox: vault.join("Inbox"),
            needs_action: vault.join("Needs_Action"),
            staging: state.join("filesystem.staging"),
            ledger: state.join("filesystem.ledger"),
            state,
        }
    }

    /// Create the folders the watcher needs; the error is the one-line reason.
    fn prepare(&mut self) -> Result<(), String> {
        let fail =
            |what: &str, p: &Path, e: io::Error| format!("cannot {what} {}: {e}", p.display());
        std::fs::create_dir_all(&self.inbox).map_err(|e| fail("create", &self.inbox, e))?;
        std::fs::read_dir(&self.inbox).map_err(|e| fail("read", &self.inbox, e))?;
        // Events arrive with the real path (symlinks resolved on macOS).
        if let Ok(real) = std::fs::canonicalize(&self.inbox) {
            self.inbox = real;
        }
        std::fs::create_dir_all(&self.needs_action)
            .map_err(|e| fail("create", &self.needs_action, e))?;
        for dir in [&self.state, &self.staging] {
            stage::ensure_private_dir(dir).map_err(|e| fail("create", dir, e))?;
        }
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
        match (dev(&self.needs_action), dev(&self.staging)) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (Ok(_), Ok(_)) => Err(format!(
                "{} and {} must be on one file system (tasks are published by rename)",
                self.needs_action.display(),
                self.staging.display()
            )),
            (Err(e), _) => Err(fail("read", &self.needs_action, e)),
            (_, Err(e)) => Err(fail("read", &self.staging, e)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to watch {}: {}", path.display(), crate::watchers::common::notify_error_text(source))]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("the copy workers stopped unexpectedly")]
    Workers,
}

impl Error {
    /// `map_err` helper: `.map_err(Error::io("read", &path))`.
    fn io(what: &'static str, path: &Path) -> impl Fn(io::Error) -> Error + use<> {
        let path = path.to_path_buf();
        move |source| Error::Io {
            what,
            path: path.clone(),
            source,
        }
    }
}

pub fn run(args: Args) -> i32 {
    let ctx = match WatcherCtx::start(NAME, &args.vault) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("ai-employee watch {NAME}: failed to set up signal handling: {e}");
            return exit_codes::FAILURE;
        }
    };
    let mut paths = Paths::new(&ctx.vault);
    if let Err(msg) = paths.prepare() {
        return needs_setup(NAME, msg);
    }
    let _lock = match ctx.single_instance("filesystem watcher") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let opts = Options {
        settle: args.settle,
        workers: usize::from(args.workers),
        poll: args.poll,
        settle_only: args.settle_only,
    };
    match engine::Engine::start(ctx, opts, paths).and_then(engine::Engine::run) {
        Ok(()) => exit_codes::OK,
        Err(e) => {
            tracing::error!("{e}");
            exit_codes::FAILURE
        }
    }
}
