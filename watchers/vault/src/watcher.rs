//! What every watcher needs, and its one start-up.
//!
//! [`run_watcher`] resolves the vault, sets up logging to stderr (which the supervisor
//! writes to `Logs/<name>.log`), SIGTERM / SIGINT handling and the heartbeat, runs the
//! watcher's own code with a [`WatcherCtx`], and turns how that ended into the exit code:
//! 0 after a stop request, 78 when the setup is missing ([`WatcherError::Setup`]: the
//! supervisor shows the watcher as needing setup and does not restart it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::VaultArg;
use crate::exit_codes;
use crate::layout::{Vault, ensure_private_dir};
use crate::lock::{LockError, VaultLock};
use crate::logs::system::{self, SystemLogOptions};
use crate::tasks::TaskSink;

/// Run watcher `name` on the vault `vault` names: set up what every watcher needs, call
/// `watch`, and return the exit code. `watch` returns when asked to stop (exit 0) or with
/// the reason it cannot go on, which is said here in one line.
pub fn run_watcher(
    name: &'static str,
    vault: &VaultArg,
    watch: impl FnOnce(WatcherCtx) -> Result<(), WatcherError>,
) -> i32 {
    let ctx = match WatcherCtx::start(name, vault) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("ai-employee watch {name}: failed to set up signal handling: {e}");
            return exit_codes::FAILURE;
        }
    };
    match watch(ctx) {
        Ok(()) => exit_codes::OK,
        Err(e) => e.report(name),
    }
}

/// Why a watcher stopped other than by a stop request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatcherError {
    /// It cannot run until its setup is fixed (missing credentials, a vault folder that
    /// is a symlink …): one line on stderr, exit 78.
    #[error("{0}")]
    Setup(String),
    /// Starting failed for another reason: one line on stderr, exit `code`.
    #[error("{message}")]
    Start { code: i32, message: String },
    /// A failure while running: logged as an error, exit 1.
    #[error("{0}")]
    Failed(String),
}

/// A credentials file the watcher needs is missing, unreadable or invalid: it needs setup.
impl From<crate::credentials::LoadError> for WatcherError {
    fn from(e: crate::credentials::LoadError) -> WatcherError {
        WatcherError::Setup(e.to_string())
    }
}

impl WatcherError {
    /// Starting failed: `failed to {what}: {error}`, exit 1.
    pub fn failed_to(what: &str, error: impl std::fmt::Display) -> WatcherError {
        WatcherError::Start {
            code: exit_codes::FAILURE,
            message: format!("failed to {what}: {error}"),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            WatcherError::Setup(_) => exit_codes::CONFIG,
            WatcherError::Start { code, .. } => *code,
            WatcherError::Failed(_) => exit_codes::FAILURE,
        }
    }

    /// Say it (stderr, or the log while running) and return the exit code.
    fn report(&self, name: &str) -> i32 {
        match self {
            WatcherError::Failed(msg) => tracing::error!("{msg}"),
            _ => eprintln!("ai-employee watch {name}: {self}"),
        }
        self.exit_code()
    }
}

/// What a running watcher has: its name and vault, the stop request, the heartbeat.
pub struct WatcherCtx {
    name: &'static str,
    vault: Vault,
    stop: Arc<AtomicBool>,
    heartbeat: Heartbeat,
    /// What a stop signal sends to wake [`WatcherCtx::pause`] (made at its first call).
    stop_rx: Option<std::sync::mpsc::Receiver<()>>,
}

/// The heartbeat file the supervisor gave this process ([`HEARTBEAT_ENV`]), touched every
/// [`beat_every`] of the timeout it said ([`HEARTBEAT_USEC_ENV`]). Touched from the
/// process's main loop, so a loop that stops turning stops beating.
pub struct Heartbeat {
    path: Option<PathBuf>,
    /// The vault the file is below (opened without following a symlink under it).
    vault: Option<PathBuf>,
    /// How often it is touched ([`beat_every`]).
    every: Duration,
    /// The file, open since the last beat.
    file: Option<std::fs::File>,
    last: Option<Instant>,
}

impl Heartbeat {
    /// The file and interval the supervisor set in the environment; without a file,
    /// beating does nothing (run by hand).
    pub fn from_env(vault: Option<&Path>) -> Heartbeat {
        Heartbeat::new(
            std::env::var_os(HEARTBEAT_ENV).map(PathBuf::from),
            vault,
            beat_every(std::env::var_os(HEARTBEAT_USEC_ENV).as_deref()),
        )
    }

    fn new(path: Option<PathBuf>, vault: Option<&Path>, every: Duration) -> Heartbeat {
        Heartbeat {
            path,
            vault: vault.map(Path::to_path_buf),
            every,
            file: None,
            last: None,
        }
    }

    /// How often the file is touched ([`beat_every`]).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// How long until the next beat is due, for a loop that sleeps between events;
    /// `None` without a heartbeat file (run by hand: nothing to wake for).
    pub fn next_in(&self) -> Option<Duration> {
        self.path.as_ref()?;
        Some(
            self.last
                .map_or(Duration::ZERO, |t| self.every.saturating_sub(t.elapsed())),
        )
    }

    /// Touch the file if the last beat is older than [`Heartbeat::every`], or will be
    /// within [`BEAT_SLACK`]. Cheap to call often.
    pub fn beat(&mut self) {
        if self
            .last
            .is_some_and(|t| t.elapsed() + BEAT_SLACK < self.every)
        {
            return;
        }
        if let Some(p) = &self.path {
            touch(&mut self.file, self.vault.as_deref(), p);
        }
        self.last = Some(Instant::now());
    }
}

/// The heartbeat file's path, which the supervisor gives each child.
pub const HEARTBEAT_ENV: &str = "AI_EMPLOYEE_HEARTBEAT";

/// The child's `heartbeat_timeout` in microseconds, which the supervisor gives a child it
/// checks (like systemd's `WATCHDOG_USEC`): the child beats every third of it.
pub const HEARTBEAT_USEC_ENV: &str = "AI_EMPLOYEE_HEARTBEAT_USEC";

/// How often a watcher touches its heartbeat file when it is not told the timeout.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// The shortest interval between beats, whatever the timeout.
pub const MIN_BEAT_EVERY: Duration = Duration::from_secs(1);

/// How often to beat for the timeout `usec` says ([`HEARTBEAT_USEC_ENV`]): a third of it,
/// so that two beats can be late (or fall between two of the supervisor's health checks)
/// before it runs out; at least [`MIN_BEAT_EVERY`]. Not given, not a number or zero:
/// [`HEARTBEAT_EVERY`].
pub fn beat_every(usec: Option<&std::ffi::OsStr>) -> Duration {
    usec.and_then(|v| v.to_str())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&us| us > 0)
        .map_or(HEARTBEAT_EVERY, |us| {
            (Duration::from_micros(us) / 3).max(MIN_BEAT_EVERY)
        })
}

/// A beat due this soon is made now: a watcher woken a little before its beat for
/// something else beats then, instead of waking again a moment later (or, sleeping until
/// its next event, not beating for up to twice [`HEARTBEAT_EVERY`]).
pub const BEAT_SLACK: Duration = Duration::from_millis(500);

impl WatcherCtx {
    /// Set up logging (stderr, which the supervisor writes to `Logs/<name>.log`), SIGTERM
    /// and SIGINT handling, and the heartbeat from `$AI_EMPLOYEE_HEARTBEAT`.
    fn start(name: &'static str, vault: &VaultArg) -> std::io::Result<WatcherCtx> {
        system::install(SystemLogOptions {
            file: None,
            console: true,
            level: system::level_from_env(),
            full_time: true,
        });
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let vault = Vault::new(crate::cli::resolve_vault(vault));
        let mut ctx = WatcherCtx {
            name,
            heartbeat: Heartbeat::from_env(Some(vault.root())),
            vault,
            stop,
            stop_rx: None,
        };
        ctx.beat();
        Ok(ctx)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The vault (an absolute path).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// True once SIGTERM or SIGINT arrived: finish the current item and return.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag itself, for threads and wait loops.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Call `wake` from a thread of its own whenever SIGTERM or SIGINT arrives, after the
    /// stop flag is set: a loop that sleeps on a channel until its next event or timer
    /// (rather than waking every so often to look at the flag) sends itself a message
    /// with it. A signal that came before this call has set the flag already.
    pub fn wake_on_stop(&self, wake: impl Fn() + Send + 'static) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        std::thread::Builder::new()
            .name("stop-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    wake();
                }
            })?;
        Ok(())
    }

    /// Sleep `d`, touching the heartbeat when it is due, and return early once a stop is
    /// asked for (true). Sleeps through, woken only by the heartbeat and the signal.
    pub fn pause(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        if self.stop_rx.is_none() {
            let (tx, rx) = std::sync::mpsc::channel();
            match self.wake_on_stop(move || {
                let _ = tx.send(()); // the receiver lives as long as this context
            }) {
                Ok(()) => self.stop_rx = Some(rx),
                // No signal thread (out of threads): the flag, every 100 ms.
                Err(e) => tracing::debug!("no stop wake-up ({e}); looking every 100 ms"),
            }
        }
        loop {
            if self.stopping() {
                return true;
            }
            self.beat();
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let wait = self.next_beat_in().map_or(left, |b| b.min(left));
            match &self.stop_rx {
                Some(rx) => drop(rx.recv_timeout(wait)),
                None => std::thread::sleep(wait.min(Duration::from_millis(100))),
            }
        }
    }

    /// SIGTERM and SIGINT as a future, for a watcher on a runtime.
    pub fn stop_signals(&self) -> StopSignals {
        StopSignals {
            flag: self.stop_flag(),
            streams: None,
        }
    }

    /// The runtime of a watcher that waits on the network (one thread).
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, WatcherError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| WatcherError::failed_to("start the runtime", e))
    }

    /// How often the heartbeat file is touched ([`beat_every`]).
    pub fn beat_every(&self) -> Duration {
        self.heartbeat.every()
    }

    /// How long until the next beat is due, for a watcher that sleeps between events;
    /// `None` without a heartbeat file (run by hand: nothing to wake for).
    pub fn next_beat_in(&self) -> Option<Duration> {
        self.heartbeat.next_in()
    }

    /// Touch the heartbeat file if the last beat is older than [`WatcherCtx::beat_every`],
    /// or will be within [`BEAT_SLACK`]. Cheap to call often.
    pub fn beat(&mut self) {
        self.heartbeat.beat();
    }

    /// The exclusive lock on `<vault>/.ai-employee/<name>.lock` (the state folder must
    /// exist), held until the guard drops and released by the kernel however the process
    /// ends. [`WatcherCtx::single_instance`] is the usual way to take it.
    pub fn lock(&self) -> Result<VaultLock, LockError> {
        VaultLock::acquire(&self.vault.watcher_lock(self.name))
    }

    /// One watcher of this kind per vault (two would both take every message): the
    /// [`WatcherCtx::lock`], creating the state folder first. Take it before touching
    /// the watcher's state. `what` names the watcher in the message ("WhatsApp watcher");
    /// exit 75 when another one holds it.
    pub fn single_instance(&self, what: &str) -> Result<VaultLock, WatcherError> {
        let start = |code, message| WatcherError::Start { code, message };
        let state = self.vault.state_dir();
        if let Err(e) = ensure_private_dir(&state) {
            if crate::nofollow::is_symlink_error(&e) {
                return Err(WatcherError::Setup(e.to_string()));
            }
            let message = format!("cannot create {}: {e}", state.display());
            return Err(start(exit_codes::CANT_CREATE, message));
        }
        self.lock().map_err(|e| match e {
            LockError::HeldBy { pid, .. } => start(
                exit_codes::LOCKED,
                format!("another {what} (pid {pid}) is running on this vault"),
            ),
            LockError::Held { .. } => start(
                exit_codes::LOCKED,
                format!("another {what} is running on this vault"),
            ),
            e => start(exit_codes::FAILURE, e.to_string()),
        })
    }

    /// Open the watcher's exactly-once task sink ([`TaskSink::open`]; take the
    /// [`WatcherCtx::single_instance`] lock first: its recovery must never run beside
    /// another instance's writes), and log each task a crash left unpublished and that is
    /// published now. Exit 78 when the vault's folders cannot be opened.
    pub fn open_task_sink(&self) -> Result<TaskSink, WatcherError> {
        let root = self.vault.root();
        let (sink, recovered) = TaskSink::open(root, self.name).map_err(|e| {
            let root = root.display();
            WatcherError::Setup(format!("cannot open the task folders in {root}: {e}"))
        })?;
        for name in recovered {
            tracing::info!("published {name} (interrupted by the last stop)");
        }
        Ok(sink)
    }
}

/// SIGTERM or SIGINT as a future ([`WatcherCtx::stop_signals`]).
pub struct StopSignals {
    flag: Arc<AtomicBool>,
    /// Created at the first wait, inside the runtime; `Some(None)`: they could not be.
    streams: Option<Option<(Signal, Signal)>>,
}

impl StopSignals {
    /// Wait for SIGTERM or SIGINT, or return at once if one came before (also before the
    /// runtime started: the flag [`run_watcher`] set up says so). Cancel-safe.
    pub async fn recv(&mut self) {
        let StopSignals { flag, streams } = self;
        let streams = streams.get_or_insert_with(|| {
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            }
        });
        if flag.load(Ordering::Relaxed) {
            return;
        }
        match streams {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => {
                // No signal streams: watch the flag instead.
                let mut every = tokio::time::interval(Duration::from_millis(200));
                while !flag.load(Ordering::Relaxed) {
                    every.tick().await;
                }
            }
        }
    }
}

/// Touch the heartbeat file `p`, never through a symlink: below the vault, no component
/// is followed; elsewhere (a test's own path), its folder and the file are not.
/// The descriptor is kept for the next beats (one `fstat` and one `futimens` each instead
/// of a walk and an open): while the file is still linked, touching it through the
/// descriptor touches the file at `p`; once removed (or replaced), it is opened again.
fn touch(held: &mut Option<std::fs::File>, vault: Option<&Path>, p: &Path) {
    use crate::nofollow::{self, How};
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now();
    if let Some(f) = held {
        if f.metadata().is_ok_and(|m| m.nlink() > 0) && f.set_modified(now).is_ok() {
            return;
        }
        *held = None;
    }
    let opened = match vault {
        Some(vault) if p.starts_with(vault) => nofollow::open_under(vault, p, How::write(0o600)),
        _ => nofollow::open_in_folder(p, How::write(0o600)),
    };
    match opened.and_then(|f| f.set_modified(now).map(|()| f)) {
        Ok(f) => *held = Some(f),
        Err(e) => tracing::debug!("failed to touch heartbeat {}: {e}", p.display()),
    }
}

/// `--max-body SIZE` of the mail and WhatsApp watchers: 1 KiB to 64 MiB.
pub fn parse_max_body(s: &str) -> Result<u64, crate::units::UnitError> {
    let n = crate::units::parse_size(s)?;
    if !(1024..=64 << 20).contains(&n) {
        return Err(crate::units::UnitError::OutOfBounds {
            text: s.to_string(),
            rule: "must be between 1KiB and 64MiB",
        });
    }
    Ok(n)
}

/// A file-watching error in words: notify's own text appends the paths in Rust notation
/// (`… about ["/v/Inbox"]`); the caller names the folder itself.
pub fn notify_error_text(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::Generic(s) => s.clone(),
        notify::ErrorKind::Io(io) => io.to_string(),
        notify::ErrorKind::PathNotFound => "the folder does not exist".to_string(),
        notify::ErrorKind::WatchNotFound => "the folder is not being watched".to_string(),
        notify::ErrorKind::InvalidConfig(_) => "invalid file watching settings".to_string(),
        notify::ErrorKind::MaxFilesWatch => {
            "the system's limit on watched folders is reached (Linux: raise \
             fs.inotify.max_user_watches)"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_watcher_ended_is_its_exit_code() {
        let setup = WatcherError::Setup("no credentials".into());
        assert_eq!(
            (setup.exit_code(), setup.to_string()),
            (78, "no credentials".into())
        );
        let start = WatcherError::failed_to("start the runtime", "no threads");
        assert_eq!(
            (start.exit_code(), start.to_string()),
            (1, "failed to start the runtime: no threads".into())
        );
        let locked = WatcherError::Start {
            code: exit_codes::LOCKED,
            message: "another one".into(),
        };
        assert_eq!(locked.exit_code(), 75);
        assert_eq!(WatcherError::Failed("disk".into()).exit_code(), 1);
    }

    #[test]
    fn stop_signals_see_a_signal_from_before_and_one_during_the_wait() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let flag = Arc::new(AtomicBool::new(true));
        let mut signals = StopSignals {
            flag: Arc::clone(&flag),
            streams: None,
        };
        let limit = Duration::from_secs(10);
        // A stop requested before the wait (the flag the handlers set).
        let waited = rt.block_on(async { tokio::time::timeout(limit, signals.recv()).await });
        assert!(waited.is_ok(), "the flag was set");
        // The streams exist now; a signal that comes next ends the wait.
        flag.store(false, Ordering::Relaxed);
        assert!(matches!(signals.streams, Some(Some(_))));
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).expect("raise");
        let waited = rt.block_on(async { tokio::time::timeout(limit, signals.recv()).await });
        assert!(waited.is_ok(), "SIGINT ended the wait");
    }

    #[test]
    fn a_child_told_its_timeout_beats_every_third_of_it_and_otherwise_every_ten_seconds() {
        let every = |v: &str| beat_every(Some(std::ffi::OsStr::new(v)));
        // The shipped table's 90 s: every 30 s, two beats may be late.
        assert_eq!(every("90000000"), Duration::from_secs(30));
        assert_eq!(every("30000000"), HEARTBEAT_EVERY);
        // Shorter than the default interval: beats come more often, not less.
        assert_eq!(every("6000000"), Duration::from_secs(2));
        assert_eq!(every("1500"), MIN_BEAT_EVERY);
        // Not told, or told something that is not a timeout: the default.
        assert_eq!(beat_every(None), HEARTBEAT_EVERY);
        for bad in ["", "0", "-5", "90s", "1e6", "18446744073709551616"] {
            assert_eq!(every(bad), HEARTBEAT_EVERY, "{bad:?}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let not_utf8 = std::ffi::OsStr::from_bytes(b"9\xff");
            assert_eq!(beat_every(Some(not_utf8)), HEARTBEAT_EVERY);
        }
    }

    #[test]
    fn a_beat_is_due_every_ten_seconds_and_one_due_within_the_slack_is_made_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Vault::new(dir.path().to_path_buf());
        std::fs::create_dir_all(vault.heartbeat_dir()).expect("heartbeat folder");
        let file = vault.heartbeat("agent");
        let mut ctx = WatcherCtx {
            name: "agent",
            heartbeat: Heartbeat::new(Some(file.clone()), Some(vault.root()), HEARTBEAT_EVERY),
            vault,
            stop: Arc::new(AtomicBool::new(false)),
            stop_rx: None,
        };
        let due = |ctx: &WatcherCtx| ctx.next_beat_in().expect("a heartbeat file");
        assert_eq!(due(&ctx), Duration::ZERO, "never beaten: due now");
        ctx.beat();
        assert!(file.exists(), "the first beat made the file");
        assert!(due(&ctx) > HEARTBEAT_EVERY - Duration::from_secs(1));
        // Half way: not beaten again, due in about five seconds.
        let half = Instant::now() - HEARTBEAT_EVERY / 2;
        ctx.heartbeat.last = Some(half);
        ctx.beat();
        assert_eq!(ctx.heartbeat.last, Some(half));
        assert!(due(&ctx) <= HEARTBEAT_EVERY / 2);
        // Due within the slack (a wake-up for a sweep just before the beat): beaten now.
        let nearly = Instant::now() - (HEARTBEAT_EVERY - BEAT_SLACK / 2);
        ctx.heartbeat.last = Some(nearly);
        ctx.beat();
        assert!(ctx.heartbeat.last.is_some_and(|t| t > nearly), "beaten");
        // A longer interval (the supervisor's timeout said so): a beat 10 s ago is not due.
        ctx.heartbeat.every = Duration::from_secs(30);
        let ten = Instant::now() - HEARTBEAT_EVERY;
        ctx.heartbeat.last = Some(ten);
        ctx.beat();
        assert_eq!(
            ctx.heartbeat.last,
            Some(ten),
            "not beaten after a third of the interval"
        );
        assert!(due(&ctx) > Duration::from_secs(19) && due(&ctx) <= Duration::from_secs(20));
        ctx.heartbeat.every = HEARTBEAT_EVERY;
        // Removed (or replaced) since: the next beat makes it again, not the old one.
        std::fs::remove_file(&file).expect("remove");
        ctx.heartbeat.last = Some(nearly);
        ctx.beat();
        assert!(file.exists(), "made again");
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(old))
            .expect("age the file");
        ctx.heartbeat.last = Some(nearly);
        ctx.beat();
        let touched = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(
            touched > old + Duration::from_secs(60),
            "touched through the kept file"
        );
        // Run by hand: nothing to beat, nothing to wake for.
        ctx.heartbeat.path = None;
        assert_eq!(ctx.next_beat_in(), None);
        // Outside a vault (a worker's): the file is made where it is said to be.
        let elsewhere = dir.path().join("worker.beat");
        let mut own = Heartbeat::new(Some(elsewhere.clone()), None, HEARTBEAT_EVERY);
        own.beat();
        assert!(elsewhere.exists(), "made without a vault");
    }

    #[test]
    fn max_body_is_1kib_to_64mib() {
        assert_eq!(parse_max_body("1MiB"), Ok(1 << 20));
        assert!(parse_max_body("10").is_err());
        assert!(parse_max_body("1GiB").is_err());
    }

    #[test]
    fn notify_errors_without_rust_notation() {
        let e = notify::Error::io(std::io::Error::from_raw_os_error(libc::ENOENT))
            .add_path("/v/Inbox".into());
        assert!(e.to_string().contains("about [\"/v/Inbox\"]"), "{e}");
        assert_eq!(
            notify_error_text(&e),
            "No such file or directory (os error 2)"
        );
        assert_eq!(
            notify_error_text(&notify::Error::new(notify::ErrorKind::MaxFilesWatch)),
            "the system's limit on watched folders is reached (Linux: raise \
             fs.inotify.max_user_watches)"
        );
    }
}
