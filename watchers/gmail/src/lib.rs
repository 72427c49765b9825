//! `ai-employee watch gmail`: new important unread mail → `EMAIL_*.md` tasks in
//! `Needs_Action/`, each message exactly once, never marked read. See `docs/gmail.md`.
//!
//! - `config`: `credentials/gmail.toml`.
//! - `conn`: TCP, TLS / STARTTLS, greeting, password and XOAUTH2 login.
//! - `session`: one connection's life (open the mailbox read-only, scan, IDLE or poll).
//! - `imap`: the raw `UID FETCH` and the check for news.
//! - `importance`: what counts as important, and the priority (pure).
//! - `message`: MIME decoding; `task`: the task file's text.
//! - `state`: UIDVALIDITY and the UID high-water mark, per mailbox.
//! - `check`: the live check `ai-employee setup gmail` runs before saving.
//!
//! This module: options, start-up checks (exit 78), the lock, and the reconnect loop.

pub mod check;
mod config;
mod conn;
mod imap;
pub mod importance;
pub mod message;
mod session;
mod state;
pub mod task;

use std::time::{Duration, Instant};

use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::oauth::TokenSource;
use ai_employee_vault::units::{format_duration, parse_positive_duration};
use ai_employee_vault::watcher::{WatcherCtx, WatcherError, run_watcher};
use clap::Args as ClapArgs;

use self::config::Auth;
use self::importance::Rules;
use self::session::{Failure, Options, Watcher};

pub const NAME: &str = "gmail";
/// Vault-relative path of the credentials file (`credentials/gmail.toml`).
pub use self::config::CREDENTIALS_FILE;
/// Read `credentials/gmail.toml` as the watcher does (for `setup`'s re-read).
pub use self::config::load as load_credentials;

/// First reconnect delay; doubled per failed attempt up to `--reconnect-max`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,

    /// The mailbox to watch
    #[arg(long, value_name = "NAME", default_value = "INBOX")]
    pub mailbox: String,

    /// Where the server has no IDLE: look for new mail this often
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub poll: Duration,

    /// Unread mail from this address (or from any address at @domain) is important;
    /// repeatable
    #[arg(long = "sender", value_name = "ADDR")]
    pub senders: Vec<String>,

    /// Unread mail whose subject or text contains this word (whole words, any case) is
    /// important; repeatable
    #[arg(long = "keyword", value_name = "WORD")]
    pub keywords: Vec<String>,

    /// The most message text kept in a task (the rest stays in the mailbox)
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = ai_employee_vault::watcher::parse_max_body)]
    pub max_body: u64,

    /// Longest wait between reconnection attempts (they start at 1s and double)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub reconnect_max: Duration,
}

pub fn run(args: Args) -> i32 {
    run_watcher(NAME, &args.vault, |ctx| start(ctx, &args))
}

/// The start-up checks (exit 78 for each missing piece of setup), the lock, then watch.
fn start(mut ctx: WatcherCtx, args: &Args) -> Result<(), WatcherError> {
    let cfg = config::load(ctx.vault().root())?;
    let tls = conn::tls_config(&cfg).map_err(|msg| {
        WatcherError::Setup(format!(
            "{msg} (`ca_file` in {}); see docs/gmail.md",
            config::CREDENTIALS_FILE
        ))
    })?;
    let tokens = match &cfg.auth {
        Auth::Password(_) => None,
        Auth::OAuth { path, rel } => {
            let src = TokenSource::new(path.clone(), rel.clone()).with_timeout(cfg.timeout);
            src.check()
                .map_err(|msg| WatcherError::Setup(format!("{msg}; see docs/gmail.md")))?;
            Some(src)
        }
    };
    // Before the task sink: its recovery must never run beside another watcher's writes.
    let _lock = ctx.single_instance("gmail watcher")?;
    let sink = ctx.open_task_sink()?;
    let state = state::State::load(&ctx.vault().state_file("gmail.state"))
        .map_err(|e| WatcherError::Setup(e.to_string()))?;
    let opts = Options {
        mailbox: args.mailbox.clone(),
        poll: args.poll,
        rules: Rules::new(&args.senders, &args.keywords),
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
    };
    let mut watcher = Watcher::new(cfg, opts, tls, tokens, sink, state);
    let rt = ctx.runtime()?;
    rt.block_on(watch(&mut ctx, &mut watcher, args.reconnect_max))
}

/// Connect, watch, and reconnect with capped exponential backoff until stopped.
async fn watch(
    ctx: &mut WatcherCtx,
    w: &mut Watcher,
    reconnect_max: Duration,
) -> Result<(), WatcherError> {
    let mut signals = ctx.stop_signals();
    let mut beat = tokio::time::interval(ctx.beat_every());
    let first_retry = FIRST_RETRY.min(reconnect_max);
    let mut delay = first_retry;
    // Since when the server cannot be reached, and how many attempts failed.
    let mut outage: Option<(Instant, u32)> = None;
    loop {
        if ctx.stopping() {
            return stopped(w);
        }
        w.connected = None;
        let failure = {
            let session = w.session();
            tokio::pin!(session);
            loop {
                tokio::select! {
                    f = &mut session => break Some(f),
                    _ = signals.recv() => break None,
                    _ = beat.tick() => ctx.beat(),
                }
            }
        };
        let Some(failure) = failure else {
            return stopped(w);
        };
        let reason = match failure {
            Failure::Setup(msg) => return Err(WatcherError::Setup(msg)),
            Failure::Vault(msg) => return Err(WatcherError::Failed(msg)),
            Failure::Transient(reason) => reason,
        };
        if w.connected.is_some() {
            // The session was up: a new outage begins.
            delay = first_retry;
            outage = None;
        }
        match &mut outage {
            None => {
                tracing::warn!(
                    "{}:{}: {reason}; reconnecting (every {} at most)",
                    w.cfg.host,
                    w.cfg.port,
                    format_duration(reconnect_max)
                );
                outage = Some((Instant::now(), 1));
            }
            Some((_, attempts)) => {
                *attempts += 1;
                tracing::debug!("reconnect attempt {attempts} failed: {reason}");
            }
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = signals.recv() => return stopped(w),
                _ = beat.tick() => ctx.beat(),
            }
        }
        delay = (delay * 2).min(reconnect_max);
        // The next session reports the recovery once it is up.
        w.on_connect = outage;
    }
}

fn stopped(w: &Watcher) -> Result<(), WatcherError> {
    tracing::info!("stopped: {} new tasks", w.written);
    Ok(())
}
