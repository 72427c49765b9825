//! `ai-employee watch whatsapp`: a WhatsApp Business Cloud API webhook receiver. Text
//! messages that contain a keyword become `WHATSAPP_*.md` tasks in `Needs_Action/`, each
//! message id once, across re-deliveries and restarts. See `docs/whatsapp.md`.
//!
//! - `credentials`: `app_secret` and `verify_token` from `credentials/whatsapp.toml`.
//! - `conns`: accepting connections: header timeout, connection cap, graceful stop.
//! - `server`: the HTTP routes (handshake, signature, size cap, body timeout, JSON).
//! - `payload`: the text messages in a delivery.
//! - `keywords`: whole-word, case-insensitive matching.
//! - `task`: the task file's frontmatter and body.
//! - `writer`: the one thread that writes tasks, a group commit per batch.

mod conns;
mod credentials;
/// `credentials/whatsapp.toml`'s webhook side, read as the watcher reads it (`setup`).
pub use credentials::{
    FILE as CREDENTIALS_FILE, load as load_credentials, parse as parse_credentials,
};
mod keywords;
pub mod payload;
mod server;
pub mod task;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::units::UnitError;
use ai_employee_vault::watcher::{WatcherCtx, WatcherError, run_watcher};
use clap::Args as ClapArgs;

use self::keywords::{DEFAULT_HIGH_KEYWORDS, DEFAULT_KEYWORDS, Keywords};
use self::writer::Writer;

pub const NAME: &str = "whatsapp";

/// Longest `--header-timeout` / `--body-timeout`.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,

    /// Address to listen on. Loopback by default: put a TLS reverse proxy or tunnel in
    /// front. Any other address (e.g. 0.0.0.0:8787) must be given explicitly
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// URL path of the webhook
    #[arg(long, value_name = "PATH", default_value = "/webhook", value_parser = parse_path)]
    pub path: String,

    /// A message containing this word becomes a task (whole words, any case; repeat the
    /// flag for several; replaces the default list) [default: urgent, asap, invoice,
    /// payment, help]
    #[arg(long = "keyword", value_name = "WORD")]
    pub keywords: Vec<String>,

    /// A task whose message contains this word gets `priority: high`, others `normal`
    /// (repeatable; replaces the default list) [default: urgent, asap]
    #[arg(long = "high-keyword", value_name = "WORD")]
    pub high_keywords: Vec<String>,

    /// Largest request body accepted; larger ones are answered 413
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = ai_employee_vault::watcher::parse_max_body)]
    pub max_body: u64,

    /// Longest time a client may take to send a request's headers (counted from when it
    /// connects, or from the previous answer on a kept-alive connection); then the
    /// connection is closed (up to 1h)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: Duration,

    /// Longest time a client may take to send a request's body; then it is answered 408
    /// and the connection closed (up to 1h)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub body_timeout: Duration,

    /// Most connections open at once (never more than half the open-file limit). When
    /// reached, each new connection closes the oldest one that has no complete request
    /// being processed
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
}

/// A positive duration up to [`MAX_TIMEOUT`].
fn parse_timeout(s: &str) -> Result<Duration, UnitError> {
    let d = ai_employee_vault::units::parse_positive_duration(s)?;
    if d > MAX_TIMEOUT {
        return Err(UnitError::OutOfBounds {
            text: s.to_string(),
            rule: "is more than the maximum of 1h",
        });
    }
    Ok(d)
}

/// A path made of `/`-separated segments of URL-safe characters.
fn parse_path(s: &str) -> Result<String, BadPath> {
    let ok = s.starts_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(BadPath(s.to_string()))
    }
}

/// A `--path` that is not `/`-separated URL-safe segments.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} must start with / and contain only letters, digits and / - . _ ~")]
struct BadPath(String);

/// Build a keyword list from the flags, or the defaults when none were given; an unusable
/// keyword needs setup (exit 78).
fn keyword_list(given: &[String], default: &[&str], flag: &str) -> Result<Keywords, WatcherError> {
    let built = if given.is_empty() {
        Keywords::new(default)
    } else {
        Keywords::new(given)
    };
    built.map_err(|e| WatcherError::Setup(format!("--{flag}: {e}")))
}

pub fn run(args: Args) -> i32 {
    run_watcher(NAME, &args.vault, |ctx| serve(ctx, &args))
}

/// The start-up checks (exit 78), the lock, then serve until stopped.
fn serve(mut ctx: WatcherCtx, args: &Args) -> Result<(), WatcherError> {
    let secrets = credentials::load(ctx.vault().root())?;
    let keywords = keyword_list(&args.keywords, DEFAULT_KEYWORDS, "keyword")?;
    let high = keyword_list(&args.high_keywords, DEFAULT_HIGH_KEYWORDS, "high-keyword")?;
    // One watcher per vault: two would share the ledger of seen message ids.
    let _lock = ctx.single_instance("WhatsApp watcher")?;
    let sink = ctx.open_task_sink()?;
    let remembered = sink.remembered();
    let runtime = ctx.runtime()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .map_err(|e| WatcherError::failed_to(&format!("listen on {}", args.listen), e))?;
    let mut signals = ctx.stop_signals();
    let vault = ctx.vault().root().to_path_buf();
    let every_beat = ctx.beat_every();
    let writer = Writer::start(vault, sink, move || ctx.beat())
        .map_err(|e| WatcherError::failed_to("start the task writer", e))?;
    let local = listener.local_addr().unwrap_or(args.listen);
    let limits = conns::Limits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_connections: args.max_connections as usize,
    };
    let (cap, nofile) = conns::effective_cap(limits.max_connections);
    tracing::info!(
        "at most {cap} connections at a time{}; request headers within {}, bodies within {}",
        match nofile {
            Some(n) if cap < limits.max_connections => {
                format!(
                    " (half the open-file limit of {n}; --max-connections {})",
                    limits.max_connections
                )
            }
            _ => String::new(),
        },
        ai_employee_vault::units::format_duration(limits.header_timeout),
        ai_employee_vault::units::format_duration(limits.body_timeout),
    );
    tracing::info!(
        "listening on http://{local}{} (keywords: {}; high priority: {}; {} message ids remembered)",
        args.path,
        keywords.shown().join(", "),
        high.shown().join(", "),
        remembered
    );
    if !local.ip().is_loopback() {
        tracing::warn!(
            "listening on a non-loopback address ({local}): serve it only behind TLS (a reverse proxy or tunnel)"
        );
    }
    let shared = conns::Shared::new(cap, limits);
    let app = Arc::new(server::App {
        secrets,
        keywords,
        high,
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        body_timeout: limits.body_timeout,
        conns: Arc::clone(&shared),
        writer: writer.handle(),
    });
    let router = server::router(&args.path, app);
    let beats = writer.handle();
    runtime.block_on(async move {
        // The heartbeat travels through the writer, so it is fresh only while both run.
        // Asked once an interval: `WatcherCtx::beat` touches the file when the last beat
        // is that old or nearly (its slack), so each ask is one beat and one wake-up.
        let heart = tokio::spawn(async move {
            let mut every = tokio::time::interval(every_beat);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                beats.beat();
            }
        });
        conns::serve(listener, router, shared, signals.recv()).await;
        heart.abort();
    });
    // Nothing sends any more: write what is queued, then stop.
    writer.stop();
    drop(runtime);
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert!(parse_path("/webhook").is_ok());
        assert!(parse_path("/a/b-c_d.e~f").is_ok());
        assert!(parse_path("webhook").is_err());
        assert!(parse_path("/{id}").is_err());
        assert!(parse_path("/a?b").is_err());
        assert!(keyword_list(&[], DEFAULT_KEYWORDS, "keyword").is_ok());
        assert_eq!(
            keyword_list(&["!".to_string()], DEFAULT_KEYWORDS, "keyword")
                .err()
                .map(|e| e.to_string()),
            Some("--keyword: keyword \"!\" has no letters or digits, so it can never match".into())
        );
    }
}
