//! `ai-employee watch github`: open GitHub issues with a label → `GITHUB_*.md` tasks in
//! `Needs_Action/`, each issue exactly once, across restarts and crashes. See
//! `docs/github.md`.
//!
//! - `api`: one conditional GET and what its answer means (page, 304, rate limit, set-up).
//! - `issue`: a page's JSON → issues (pull requests told apart).
//! - `task`: the task file's frontmatter and body.
//! - `state`: each page's ETag and next link, per query, across restarts.
//!
//! This module: options, start-up checks (exit 78), the lock, and the polling loop.
//! Exactly once is the vault's task sink (`.ai-employee/github.seen`, keyed
//! `owner/name#number`): an issue whose task was written is never written again, even
//! after its task moved on to `Done/`.

pub mod api;
pub mod issue;
mod state;
pub mod task;

use std::time::{Duration, Instant, SystemTime};

use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::frontmatter::Priority;
use ai_employee_vault::github::{self, Repo};
use ai_employee_vault::tasks::TaskSink;
use ai_employee_vault::units::{format_duration, parse_positive_duration};
use ai_employee_vault::watcher::{WatcherCtx, WatcherError, run_watcher};
use chrono::Utc;
use clap::Args as ClapArgs;

use self::api::{Answer, Api, Failure};
use self::state::{PageMark, State};

pub const NAME: &str = "github";

/// Issues per page (GitHub's most).
const PER_PAGE: u32 = 100;
/// Most pages of one listing (10,000 issues); a longer one is read on the next polls.
const MAX_PAGES: usize = 100;
/// The placeholder the default process table carries until the user names a repository.
const PLACEHOLDER_REPO: &str = "OWNER/NAME";
/// First wait after a failure; doubled up to the poll interval (at least a minute).
const FIRST_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,

    /// The repository whose issues to watch; repeat the flag for several
    #[arg(long = "repo", value_name = "OWNER/NAME", required = true, value_parser = parse_repo)]
    pub repos: Vec<Repo>,

    /// Open issues with this label become tasks
    #[arg(long, value_name = "LABEL", value_parser = parse_label)]
    pub label: String,

    /// How often to ask GitHub (a page that did not change costs no rate limit)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub interval: Duration,

    /// An issue with this label gets `priority: high`, others `normal` (any case;
    /// repeatable; replaces the default list) [default: urgent, high-priority,
    /// priority: high, P0]
    #[arg(long = "high-label", value_name = "LABEL")]
    pub high_labels: Vec<String>,

    /// The most of an issue's text kept in its task (the rest stays on GitHub)
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = ai_employee_vault::watcher::parse_max_body)]
    pub max_body: u64,
}

const DEFAULT_HIGH_LABELS: &[&str] = &["urgent", "high-priority", "priority: high", "P0"];

fn parse_repo(s: &str) -> Result<Repo, github::BadRepo> {
    Repo::parse(s)
}

/// A label: not empty, one line, at most 100 characters (GitHub's limit).
fn parse_label(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the label is empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err("the label must be one line".into());
    }
    if s.chars().count() > 100 {
        return Err("a label has at most 100 characters".into());
    }
    if s.contains(',') {
        return Err(
            "GitHub reads a comma in `labels` as a separator: choose a label without one".into(),
        );
    }
    Ok(s.to_string())
}

pub fn run(args: Args) -> i32 {
    run_watcher(NAME, &args.vault, |ctx| start(ctx, &args))
}

/// The start-up checks (exit 78 for each missing piece of setup), the lock, then watch.
fn start(mut ctx: WatcherCtx, args: &Args) -> Result<(), WatcherError> {
    if args.repos.iter().any(|r| r.to_string() == PLACEHOLDER_REPO) {
        return Err(WatcherError::Setup(format!(
            "--repo is still {PLACEHOLDER_REPO}: name your repository in the `github` entry \
             of the process table (see docs/github.md)"
        )));
    }
    let creds = github::load(ctx.vault().root())?;
    // Before the task sink: its recovery must never run beside another watcher's writes.
    let _lock = ctx.single_instance("GitHub watcher")?;
    let sink = ctx.open_task_sink()?;
    let state = State::load(&ctx.vault().state_file("github.state"))
        .map_err(|e| WatcherError::Setup(e.to_string()))?;
    let high: Vec<String> = if args.high_labels.is_empty() {
        DEFAULT_HIGH_LABELS
            .iter()
            .map(|s| s.to_lowercase())
            .collect()
    } else {
        args.high_labels.iter().map(|s| s.to_lowercase()).collect()
    };
    tracing::info!(
        "watching open issues labelled {:?} in {} every {} ({}; {} issues remembered)",
        args.label,
        args.repos
            .iter()
            .map(Repo::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        format_duration(args.interval),
        creds.base_url,
        sink.remembered()
    );
    let mut w = Watcher {
        api: Api::new(&creds),
        sink,
        state,
        label: args.label.clone(),
        high,
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        not_before: None,
        limited: false,
        outage: None,
        written: 0,
    };
    let retry_max = args.interval.max(Duration::from_secs(60));
    let mut retry = FIRST_RETRY;
    loop {
        let mut failed = false;
        for repo in &args.repos {
            match w.sweep(&mut ctx, repo) {
                Ok(()) => {}
                Err(Stop::Stopped) => return stopped(&w),
                Err(Stop::Setup(msg)) => return Err(WatcherError::Setup(msg)),
                Err(Stop::Vault(msg)) => return Err(WatcherError::Failed(msg)),
                Err(Stop::Transient) => failed = true,
            }
        }
        let wait = if failed {
            let wait = retry.min(retry_max);
            retry = (retry * 2).min(retry_max);
            wait
        } else {
            retry = FIRST_RETRY;
            args.interval
        };
        if ctx.pause(wait) {
            return stopped(&w);
        }
    }
}

fn stopped(w: &Watcher) -> Result<(), WatcherError> {
    tracing::info!("stopped: {} new tasks", w.written);
    Ok(())
}

/// Why a sweep ended early.
enum Stop {
    Stopped,
    Setup(String),
    Vault(String),
    /// Logged already; the next sweep comes after a backoff.
    Transient,
}

struct Watcher {
    api: Api,
    sink: TaskSink,
    state: State,
    label: String,
    /// Lowercase.
    high: Vec<String>,
    max_body: usize,
    /// No request before this (the rate limit said so).
    not_before: Option<Instant>,
    /// The rate limit was reported and not yet lifted (logged once).
    limited: bool,
    /// Since when GitHub cannot be reached, and the first reason (logged once).
    outage: Option<Instant>,
    written: usize,
}

impl Watcher {
    /// The first page's URL of `repo`'s open issues with the label, oldest first (new
    /// issues land on the last page; the pages before keep their ETags).
    fn first_url(&self, repo: &Repo) -> String {
        format!(
            "{}/issues?state=open&labels={}&sort=created&direction=asc&per_page={PER_PAGE}",
            repo.api_url(self.api.base()),
            encode(&self.label)
        )
    }

    /// Read every page of `repo`'s listing, turning new issues into tasks.
    fn sweep(&mut self, ctx: &mut WatcherCtx, repo: &Repo) -> Result<(), Stop> {
        let query = format!("{repo} labels={}", self.label);
        let mut url = self.first_url(repo);
        for i in 0..MAX_PAGES {
            let next = loop {
                if let Some(t) = self.not_before {
                    if ctx.pause(t.saturating_duration_since(Instant::now())) {
                        return Err(Stop::Stopped);
                    }
                    self.not_before = None;
                }
                if ctx.stopping() {
                    return Err(Stop::Stopped);
                }
                ctx.beat();
                let known = self.state.page(&query, i, &url).cloned();
                let etag = known.as_ref().and_then(|k| k.etag.as_deref());
                match self.api.get(&url, etag) {
                    Ok(answer) => {
                        self.recovered();
                        break self.take(repo, &query, i, &url, known, answer)?;
                    }
                    Err(Failure::RateLimited { wait, why }) => {
                        self.rate_limited(wait, &why);
                    }
                    Err(Failure::Setup(msg)) => return Err(Stop::Setup(msg)),
                    Err(Failure::Transient(msg)) => {
                        self.failed(&msg);
                        return Err(Stop::Transient);
                    }
                }
            };
            match next {
                Some(n) => url = n,
                None => return Ok(()),
            }
        }
        tracing::warn!(
            "{repo}: more than {MAX_PAGES} pages of issues; the rest are read on the next polls"
        );
        Ok(())
    }

    /// What an answer for page `i` means: tasks for its new issues, its mark stored
    /// after them, and the next page's URL.
    fn take(
        &mut self,
        repo: &Repo,
        query: &str,
        i: usize,
        url: &str,
        known: Option<PageMark>,
        answer: Answer,
    ) -> Result<Option<String>, Stop> {
        let (bytes, etag, next, rate) = match answer {
            Answer::NotModified(rate) => {
                self.after(rate);
                // Not modified: what came with the page last time still holds.
                return Ok(known.and_then(|k| k.next));
            }
            Answer::Page {
                bytes,
                etag,
                next,
                rate,
            } => (bytes, etag, next, rate),
        };
        self.after(rate);
        let page = match issue::parse_page(&bytes) {
            Ok(p) => p,
            Err(e) => {
                self.failed(&format!("{repo}: page {}: {e}", i + 1));
                return Err(Stop::Transient);
            }
        };
        for why in &page.skipped {
            tracing::warn!("{repo}: page {}: skipped {why}", i + 1);
        }
        let now = Utc::now();
        let tasks: Vec<_> = page
            .issues
            .iter()
            .filter(|is| !is.pull_request)
            .map(|is| task::build(repo, is, self.priority(&is.labels), now, self.max_body))
            .collect();
        if !tasks.is_empty() {
            let names = self.sink.write_batch(&tasks).map_err(|e| {
                Stop::Vault(format!("failed to write tasks into Needs_Action: {e}"))
            })?;
            for (t, name) in tasks.iter().zip(names) {
                if let Some(name) = name {
                    self.written += 1;
                    tracing::info!("{name}: {} {:?}", t.key, t.title);
                }
            }
        }
        let mark = PageMark {
            url: url.to_string(),
            etag,
            next: next.clone(),
        };
        if let Err(e) = self.state.set_page(query, i, mark) {
            // The tasks are durable; the page is only read again in full next time.
            tracing::warn!("failed to record page {} of {repo}: {e}", i + 1);
        }
        Ok(next)
    }

    fn priority(&self, labels: &[String]) -> Priority {
        if labels.iter().any(|l| self.high.contains(&l.to_lowercase())) {
            Priority::High
        } else {
            Priority::Normal
        }
    }

    /// After an answer: wait for the reset when no request remains.
    fn after(&mut self, rate: api::RateLimit) {
        if let Some(wait) = rate.wait(SystemTime::now()) {
            self.rate_limited(wait, "no requests remain in this window");
        } else if self.limited {
            self.limited = false;
            tracing::info!("the rate limit is lifted; polling again");
        }
    }

    fn rate_limited(&mut self, wait: Duration, why: &str) {
        if !self.limited {
            tracing::warn!(
                "GitHub's rate limit ({why}): waiting {} before the next request",
                format_duration(wait)
            );
        }
        self.limited = true;
        self.not_before = Some(Instant::now() + wait);
    }

    fn failed(&mut self, msg: &str) {
        match self.outage {
            None => {
                tracing::warn!("{msg}; trying again with backoff");
                self.outage = Some(Instant::now());
            }
            Some(_) => tracing::debug!("still failing: {msg}"),
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.outage.take() {
            tracing::info!(
                "GitHub answers again (after {})",
                format_duration(since.elapsed())
            );
        }
    }
}

/// `s` percent-encoded for a query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `ai-employee setup github`'s live check of a token, with the watcher's own client:
/// `GET {base_url}/user`, which any valid token may call. Ok: the account's login; Err:
/// one line saying what failed (the token refused, the server unreachable).
pub fn check(creds: &github::GithubCredentials) -> Result<String, String> {
    let api = Api::new(creds);
    match api.get(&format!("{}/user", api.base()), None) {
        Ok(Answer::Page { bytes, .. }) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let login = v.get("login").and_then(|l| l.as_str()).unwrap_or("?");
            Ok(format!("{}: the token belongs to {login}", api.base()))
        }
        Ok(Answer::NotModified(_)) => Ok(format!("{}: the token is accepted", api.base())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_query_values() {
        assert!(parse_label("ai: do it").is_ok());
        assert!(parse_label(" ").is_err());
        assert!(parse_label("a\nb").is_err());
        assert!(parse_label(&"x".repeat(101)).is_err());
        assert!(parse_label("a,b").is_err());
        assert_eq!(
            encode("good first issue,ü&x=1"),
            "good%20first%20issue%2C%C3%BC%26x%3D1"
        );
    }
}
