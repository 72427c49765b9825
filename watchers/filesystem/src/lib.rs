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
//! - `sys`: leases, `SEEK_DATA` / `SEEK_HOLE` (Linux/macOS bits).
//!
//! Every file is reached relative to an open folder (`ai_employee_vault::nofollow`): no symlink in
//! the vault is followed, and a vault folder that is one stops the watcher (exit 78).

mod engine;
mod ledger;
pub mod names;
mod ready;
mod stage;
pub mod task;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ai_employee_vault::Vault;
use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::layout::{Folder, STATE_DIR};
use ai_employee_vault::nofollow::{Dir, FolderError};
use ai_employee_vault::units::UnitError;
use ai_employee_vault::watcher::{WatcherCtx, WatcherError, run_watcher};
use clap::Args as ClapArgs;

const NAME: &str = "filesystem";

/// In the state folder: the ledger of what was taken, and where tasks are built.
const LEDGER: &str = "filesystem.ledger";
const STAGING: &str = "filesystem.staging";

/// Default `--max-size`: larger files get a note but no copy.
pub const DEFAULT_MAX_SIZE: &str = "1GiB";

#[derive(Debug, ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,

    /// Take files from DIR instead of the vault's Inbox/ (followed if it is a symlink:
    /// naming it is the choice; symlinks inside it are still never followed)
    #[arg(long, value_name = "DIR")]
    pub inbox: Option<PathBuf>,

    /// Files larger than this get a task note but no copy (the original stays where it
    /// was dropped)
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_SIZE, value_parser = parse_max_size)]
    pub max_size: u64,

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
    #[arg(long, value_name = "DURATION", value_parser = ai_employee_vault::units::parse_positive_duration)]
    pub poll: Option<Duration>,

    /// Judge completeness by settling only, as on macOS (ignore Linux close events and
    /// leases); for tests
    #[arg(long, hide = true)]
    pub settle_only: bool,
}

fn parse_settle(s: &str) -> Result<Duration, UnitError> {
    ai_employee_vault::units::parse_flag_duration(s)
}

fn parse_max_size(s: &str) -> Result<u64, UnitError> {
    match ai_employee_vault::units::parse_size(s)? {
        0 => Err(UnitError::OutOfBounds {
            text: s.to_string(),
            rule: "must be at least 1 byte",
        }),
        n => Ok(n),
    }
}

/// The options the engine runs with.
#[derive(Debug, Clone)]
pub struct Options {
    pub settle: Duration,
    pub workers: usize,
    pub poll: Option<Duration>,
    pub settle_only: bool,
    pub max_size: u64,
}

/// Where the watcher reads and writes: open folders (every file is reached relative to
/// them, never through a symlink), and their paths for OS events and messages.
#[derive(Debug)]
pub struct Paths {
    /// The vault root (followed if it is a symlink: the user's choice).
    pub vault: Dir,
    /// The Inbox's path: events arrive under it.
    pub inbox: PathBuf,
    /// `Inbox/`, or the folder `--inbox` names.
    pub inbox_dir: Arc<Dir>,
    /// `--inbox` was given: the folder is the user's, not the vault's `Inbox/`.
    pub explicit_inbox: bool,
    pub needs_action: Dir,
    /// Private folder where tasks are built before they are published.
    pub staging: Arc<Dir>,
    pub ledger: PathBuf,
}

impl Paths {
    /// Open (creating what is missing) the folders the watcher needs; the error is the
    /// one-line reason. No vault folder may be a symlink.
    fn prepare(vault: &Vault, explicit_inbox: Option<&Path>) -> Result<Paths, PrepareError> {
        let fail = |what: &'static str, p: &Path, source: io::Error| PrepareError::Io {
            what,
            path: p.to_path_buf(),
            source,
        };
        let top = vault.root();
        std::fs::create_dir_all(top).map_err(|e| fail("create", top, e))?;
        let root = Dir::open(top).map_err(|e| fail("open", top, e))?;
        // Events arrive with the real path (symlinks resolved on macOS).
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let (inbox, inbox_dir) = match explicit_inbox {
            Some(dir) => {
                let d = Dir::open(dir).map_err(|e| fail("read", dir, e))?;
                (real(dir), d)
            }
            None => {
                let d = root
                    .make_folder(Folder::Inbox, false)
                    .map_err(PrepareError::Inbox)?;
                (real(top).join(Folder::Inbox), d)
            }
        };
        inbox_dir.list().map_err(|e| fail("read", &inbox, e))?;
        let needs_action = root.make_folder(Folder::NeedsAction, false)?;
        let state = root.make_folder(STATE_DIR, true)?;
        let staging = state.make_folder(STAGING, true)?;
        let dev = |d: &Dir| d.stat_self().map(|s| s.dev);
        match (dev(&needs_action), dev(&staging)) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), Ok(_)) => {
                return Err(PrepareError::TwoFileSystems {
                    tasks: needs_action.path().to_path_buf(),
                    staging: staging.path().to_path_buf(),
                });
            }
            (Err(e), _) => return Err(fail("read", needs_action.path(), e)),
            (_, Err(e)) => return Err(fail("read", staging.path(), e)),
        }
        Ok(Paths {
            ledger: vault.state_file(LEDGER),
            vault: root,
            inbox,
            inbox_dir: Arc::new(inbox_dir),
            explicit_inbox: explicit_inbox.is_some(),
            needs_action,
            staging: Arc::new(staging),
        })
    }
}

/// Why the watcher cannot use its folders (it needs setup: exit 78).
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `Inbox/` cannot be used (see [`inbox_error`]).
    #[error("{}", inbox_error(.0))]
    Inbox(FolderError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(
        "{} and {} must be on one file system (tasks are published by rename)",
        tasks.display(),
        staging.display()
    )]
    TwoFileSystems { tasks: PathBuf, staging: PathBuf },
}

/// The one line for an unusable `Inbox/`, with the way to take files from elsewhere.
pub fn inbox_error(e: &FolderError) -> String {
    if e.is_symlink() {
        format!("{e}; to take files from another folder, name it with --inbox DIR")
    } else {
        e.to_string()
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
    #[error("failed to watch {}: {source}", path.display())]
    Watch { path: PathBuf, source: io::Error },
    #[error("the copy workers stopped unexpectedly")]
    Workers,
    /// A vault folder became unusable (replaced by a symlink, say): exit 78.
    #[error("{0}")]
    Setup(String),
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

impl From<Error> for WatcherError {
    fn from(e: Error) -> WatcherError {
        match e {
            Error::Setup(msg) => WatcherError::Setup(msg),
            e => WatcherError::Failed(e.to_string()),
        }
    }
}

pub fn run(args: Args) -> i32 {
    run_watcher(NAME, &args.vault, |ctx| watch(ctx, &args))
}

fn watch(ctx: WatcherCtx, args: &Args) -> Result<(), WatcherError> {
    let paths = Paths::prepare(ctx.vault(), args.inbox.as_deref())
        .map_err(|e| WatcherError::Setup(e.to_string()))?;
    let _lock = ctx.single_instance("filesystem watcher")?;
    let opts = Options {
        settle: args.settle,
        workers: usize::from(args.workers),
        poll: args.poll,
        settle_only: args.settle_only,
        max_size: args.max_size,
    };
    engine::Engine::start(ctx, opts, paths).and_then(engine::Engine::run)?;
    Ok(())
}
