//! One connection's life: log in, open the mailbox read-only, take what is new above the
//! high-water mark, then wait for more (IDLE, or polling) and take it, until the
//! connection fails or the watcher is stopped (the caller drops this future: every await
//! point is a safe place to stop, as tasks and the mark are written synchronously).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_employee_vault::oauth::{OauthError, TokenSource, xoauth2_response};
use ai_employee_vault::tasks::{NewTask, TaskSink};
use async_imap::extensions::idle::IdleResponse;
use chrono::Utc;
use tokio_rustls::rustls::ClientConfig;

use super::config::{Auth, Config};
use super::conn::{self, ConnError, ImapSession};
use super::imap::{Fetched, drain_news, uid_fetch, uid_set};
use super::importance::{self, Rules};
use super::message;
use super::state::{Mark, State};
use super::task::{self, Origin};

/// IDLE is ended and started again this often (servers drop an IDLE after 30 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(10 * 60);
/// Messages fetched per `UID FETCH` of bodies.
const FETCH_BATCH: usize = 25;

/// Why a session ended.
#[derive(Debug)]
pub enum Failure {
    /// Credentials refused or unusable: the one-line reason (exit 78).
    Setup(String),
    /// The connection failed or the server went away: reconnect.
    Transient(String),
    /// The vault cannot be written: nothing sensible to retry (exit 1).
    Vault(String),
}

impl From<ConnError> for Failure {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Refused(r) => Failure::Transient(r),
            ConnError::Transient(r) => Failure::Transient(r),
            ConnError::Certificate(r) => Failure::Setup(r),
        }
    }
}

/// The options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub mailbox: String,
    pub poll: Duration,
    pub rules: Rules,
    pub max_body: usize,
}

/// Everything that outlives a connection.
pub struct Watcher {
    pub cfg: Config,
    pub opts: Options,
    pub tls: Arc<ClientConfig>,
    pub tokens: Option<TokenSource>,
    pub sink: TaskSink,
    pub state: State,
    /// Set when a session is logged in and has the mailbox open (the caller resets its
    /// backoff and reports a recovery).
    pub connected: Option<Instant>,
    /// The outage (since, failed attempts) to report as over once connected.
    pub on_connect: Option<(Instant, u32)>,
    /// Tasks written since start.
    pub written: usize,
    /// Whether the mode line (IDLE or polling) was logged.
    announced: bool,
}

impl Watcher {
    pub fn new(
        cfg: Config,
        opts: Options,
        tls: Arc<ClientConfig>,
        tokens: Option<TokenSource>,
        sink: TaskSink,
        state: State,
    ) -> Watcher {
        Watcher {
            cfg,
            opts,
            tls,
            tokens,
            sink,
            state,
            connected: None,
            on_connect: None,
            written: 0,
            announced: false,
        }
    }

    /// Bytes of a message fetched at most (a larger one is fetched in part).
    fn fetch_limit(&self) -> usize {
        (self.opts.max_body * 4).max(256 * 1024)
    }

    /// Run one connection until it fails (it never ends otherwise).
    pub async fn session(&mut self) -> Failure {
        match self.session_inner().await {
            Ok(never) => match never {},
            Err(f) => f,
        }
    }

    async fn session_inner(&mut self) -> Result<std::convert::Infallible, Failure> {
        let mut s = self.log_in().await?;
        let limit = self.cfg.timeout;
        let caps = within(limit, "CAPABILITY", s.capabilities()).await?;
        let idle = caps.has_str("IDLE");
        let gmail = caps.has_str("X-GM-EXT-1");
        let mailbox = self.opts.mailbox.clone();
        // Read-only: nothing this watcher does can mark mail read.
        let mb = match tokio::time::timeout(limit, s.examine(&mailbox)).await {
            Ok(Ok(mb)) => mb,
            Ok(Err(async_imap::error::Error::No(r))) => {
                return Err(Failure::Setup(format!(
                    "cannot open mailbox {mailbox:?}: {} (see --mailbox)",
                    conn::server_text(&r)
                )));
            }
            Ok(Err(e)) => {
                return Err(Failure::Transient(format!(
                    "EXAMINE: {}",
                    conn::imap_error_text(&e)
                )));
            }
            Err(_) => return Err(Failure::Transient("EXAMINE: no answer".into())),
        };
        let Some(validity) = mb.uid_validity else {
            return Err(Failure::Setup(format!(
                "the server gives no UIDVALIDITY for {mailbox}: cannot remember what was seen"
            )));
        };
        let mut mark = match self.state.get(&mailbox) {
            Some(m) if m.uidvalidity == validity => m,
            Some(m) => {
                tracing::warn!(
                    "{mailbox}: UIDVALIDITY changed from {} to {validity} (the server rebuilt \
                     the mailbox): starting over from its current unread mail",
                    m.uidvalidity
                );
                Mark {
                    uidvalidity: validity,
                    last_uid: 0,
                }
            }
            None => {
                tracing::info!("{mailbox}: first start: taking the current unread mail");
                Mark {
                    uidvalidity: validity,
                    last_uid: 0,
                }
            }
        };
        self.connected = Some(Instant::now());
        if let Some((since, attempts)) = self.on_connect.take() {
            tracing::info!(
                "reconnected to {}:{} after {} ({attempts} failed attempts)",
                self.cfg.host,
                self.cfg.port,
                ai_employee_vault::units::format_duration(Duration::from_secs(
                    since.elapsed().as_secs()
                ))
            );
        }
        if !self.announced {
            self.announced = true;
            let how = if idle {
                "new mail is seen at once (IDLE)".to_string()
            } else {
                format!(
                    "the server has no IDLE: checking every {}",
                    ai_employee_vault::units::format_duration(self.opts.poll)
                )
            };
            tracing::info!(
                "watching {mailbox} on {}:{} as {}{}: {how}",
                self.cfg.host,
                self.cfg.port,
                self.cfg.username,
                if gmail { " (Gmail)" } else { "" }
            );
        }
        loop {
            // Take everything above the mark; again if news arrived meanwhile.
            loop {
                let news = self.scan(&mut s, gmail, &mut mark).await?;
                let queued = drain_news(|| s.unsolicited_responses.try_recv().ok());
                if !news && !queued {
                    break;
                }
            }
            if idle {
                s = self.idle(s).await?;
            } else {
                tokio::time::sleep(self.opts.poll).await;
            }
        }
    }

    async fn log_in(&mut self) -> Result<ImapSession, Failure> {
        log_in(&self.cfg, &self.tls, self.tokens.as_ref()).await
    }

    /// Take the important unread mail above the mark; advance the mark once its tasks are
    /// durable. Returns whether the server announced news while this ran.
    async fn scan(
        &mut self,
        s: &mut ImapSession,
        gmail: bool,
        mark: &mut Mark,
    ) -> Result<bool, Failure> {
        let limit = self.cfg.timeout;
        let from = mark.last_uid.saturating_add(1);
        let (list, mut news) = uid_fetch(s, &format!("{from}:*"), "(UID FLAGS)", limit)
            .await
            .map_err(Failure::Transient)?;
        // `n:*` also names the last message when n is past it.
        let list: Vec<Fetched> = list.into_iter().filter(|f| f.uid >= from).collect();
        let Some(horizon) = list.iter().map(|f| f.uid).max() else {
            self.save_mark(mark)?;
            return Ok(news);
        };
        let unread: Vec<&Fetched> = list.iter().filter(|f| !f.seen && !f.deleted).collect();
        let gmail_important: HashSet<u32> = if gmail && !unread.is_empty() {
            let q = format!("UID {from}:{horizon} X-GM-RAW \"is:unread is:important\"");
            within(limit, "UID SEARCH", s.uid_search(q)).await?
        } else {
            HashSet::new()
        };
        let content = self.opts.rules.needs_content();
        let mut candidates: Vec<u32> = unread
            .iter()
            .filter(|f| content || f.flagged || gmail_important.contains(&f.uid))
            .map(|f| f.uid)
            .collect();
        candidates.sort_unstable();
        tracing::debug!(
            "{}: {} new, {} unread, {} to read",
            self.opts.mailbox,
            list.len(),
            unread.len(),
            candidates.len()
        );
        let chunks: Vec<&[u32]> = candidates.chunks(FETCH_BATCH).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let items = format!(
                "(UID FLAGS RFC822.SIZE INTERNALDATE{} BODY.PEEK[]<0.{}>)",
                if gmail { " X-GM-THRID" } else { "" },
                self.fetch_limit()
            );
            let (fetched, more_news) = uid_fetch(s, &uid_set(chunk), &items, limit)
                .await
                .map_err(Failure::Transient)?;
            news |= more_news;
            let tasks: Vec<NewTask> = fetched
                .iter()
                .filter(|f| !f.seen && !f.deleted)
                .filter_map(|f| self.task_for(f, mark.uidvalidity, &gmail_important))
                .collect();
            if !tasks.is_empty() {
                let names = self
                    .sink
                    .write_batch(&tasks)
                    .map_err(|e| Failure::Vault(format!("failed to write tasks: {e}")))?;
                for (t, name) in tasks.iter().zip(&names) {
                    if let Some(name) = name {
                        self.written += 1;
                        tracing::info!("new task {name} ({})", t.key);
                    }
                }
            }
            // Everything below the next chunk's first message is done.
            mark.last_uid = match chunks.get(i + 1).and_then(|c| c.first()) {
                Some(next) => next - 1,
                None => horizon,
            };
            self.save_mark(mark)?;
        }
        if chunks.is_empty() {
            mark.last_uid = horizon;
            self.save_mark(mark)?;
        }
        Ok(news)
    }

    fn save_mark(&mut self, mark: &Mark) -> Result<(), Failure> {
        self.state
            .set(&self.opts.mailbox, *mark)
            .map_err(|e| Failure::Vault(format!("failed to save the mailbox state: {e}")))
    }

    /// The task for a fetched message, or None when it is not important.
    fn task_for(
        &self,
        f: &Fetched,
        uidvalidity: u32,
        gmail_important: &HashSet<u32>,
    ) -> Option<NewTask> {
        let raw = f.body.as_deref().unwrap_or_default();
        let email = message::decode(raw, self.opts.max_body);
        let reasons = importance::reasons(
            &self.opts.rules,
            f.flagged,
            gmail_important.contains(&f.uid),
            email.from_address.as_deref(),
            &[&email.subject, &email.text],
        );
        if reasons.is_empty() {
            return None;
        }
        let size = f.size.unwrap_or(raw.len() as u32);
        let origin = Origin {
            mailbox: &self.opts.mailbox,
            uid: f.uid,
            gmail_thread: f.gmail_thread,
            internal_date: f.internal_date,
            size,
            partial: (size as usize) > raw.len(),
        };
        let received = task::received(&origin, &email, Utc::now());
        Some(NewTask {
            key: format!("{}:{uidvalidity}:{}", self.opts.mailbox, f.uid),
            prefix: "EMAIL",
            when: received,
            title: email.subject.clone(),
            stem: None,
            text: task::render(&origin, &email, &reasons, received),
        })
    }

    /// IDLE until the server announces something (or it is time to renew the IDLE).
    async fn idle(&mut self, s: ImapSession) -> Result<ImapSession, Failure> {
        let limit = self.cfg.timeout;
        let rx = s.unsolicited_responses.clone();
        let mut handle = s.idle();
        within(limit, "IDLE", handle.init()).await?;
        // News that came with the IDLE's own answer.
        if !drain_news(|| rx.try_recv().ok()) {
            let (wait, _stop) = handle.wait_with_timeout(IDLE_RENEW);
            match wait.await {
                Ok(IdleResponse::NewData(_)) => {}
                Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt) => {}
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "while idling: {}",
                        conn::imap_error_text(&e)
                    )));
                }
            }
        }
        within(limit, "DONE", handle.done()).await
    }
}

/// Connect and log in as `cfg` says: a password, or an OAuth access token (refreshed once
/// when the server refuses it). The watcher and `ai-employee setup gmail` both log in here.
pub async fn log_in(
    cfg: &Config,
    tls: &Arc<ClientConfig>,
    tokens: Option<&TokenSource>,
) -> Result<ImapSession, Failure> {
    let user = cfg.username.clone();
    match &cfg.auth {
        Auth::Password(p) => {
            let client = conn::connect(cfg, tls).await?;
            conn::login(client, cfg, &user, p)
                .await
                .map_err(|e| match e {
                    ConnError::Refused(r) => Failure::Setup(format!(
                        "the server refused the login of {user}: {r} (check the password \
                         in {}; for Gmail use an app password; see docs/gmail.md)",
                        super::config::CREDENTIALS_FILE
                    )),
                    e => e.into(),
                })
        }
        Auth::OAuth { rel, .. } => {
            let rel = rel.clone();
            let tokens = tokens
                .cloned()
                .ok_or_else(|| Failure::Setup("OAuth token source missing".to_string()))?;
            let t = tokens.clone();
            let token = blocking(move || t.access_token()).await?;
            let client = conn::connect(cfg, tls).await?;
            let first =
                conn::xoauth2(client, cfg, xoauth2_response(&user, &token), token.expose()).await;
            let reason = match first {
                Ok(s) => return Ok(s),
                Err(ConnError::Refused(r)) => r,
                Err(e) => return Err(e.into()),
            };
            tracing::info!("the server refused the access token ({reason}): refreshing it");
            let t = tokens.clone();
            let rejected = token.clone();
            let token = blocking(move || t.refresh_rejected(&rejected)).await?;
            let client = conn::connect(cfg, tls).await?;
            conn::xoauth2(client, cfg, xoauth2_response(&user, &token), token.expose())
                .await
                .map_err(|e| match e {
                    ConnError::Refused(r) => Failure::Setup(format!(
                        "the server refused a freshly refreshed OAuth token for {user}: {r} \
                     (check {rel} and its scopes; see docs/gmail.md and docs/oauth.md)"
                    )),
                    e => e.into(),
                })
        }
    }
}

/// A blocking OAuth call off the runtime's thread.
async fn blocking(
    f: impl FnOnce() -> Result<ai_employee_vault::credentials::Secret, OauthError> + Send + 'static,
) -> Result<ai_employee_vault::credentials::Secret, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(OauthError::Unusable(m))) => Err(Failure::Setup(m)),
        Ok(Err(OauthError::Transient(m))) => Err(Failure::Transient(m)),
        Err(e) => Err(Failure::Transient(format!("token refresh failed: {e}"))),
    }
}

/// An async-imap command with the configured limit.
async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Transient(format!(
            "{what}: {}",
            conn::imap_error_text(&e)
        ))),
        Err(_) => Err(Failure::Transient(format!(
            "{what}: no answer within {}s",
            limit.as_secs_f64()
        ))),
    }
}
