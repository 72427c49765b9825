//! [`QueueClient`]: the Redis side of the queue, for the task loop and for workers.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ai_employee_vault::credentials::Secret;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply};
use redis::{ErrorKind, IntoConnectionInfo, RedisError, Value};
use serde::{Deserialize, Serialize};

use super::validate::{self, Limits, Refusal, ValidResult};
use super::wire::{ResultMessage, TaskMessage};

/// The names of the queue's keys, all under one prefix (default `ai-employee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The tasks stream (`<prefix>:tasks`), read by the workers' group.
    pub tasks: String,
    /// The results stream (`<prefix>:results`), read by the loop's group.
    pub results: String,
    /// The worker registry, a hash: name → [`WorkerInfo`] as JSON.
    pub workers: String,
    /// Entries taken over from another (dead or stalled) worker, a counter.
    pub reclaims: String,
    /// What the loop tells its workers, a hash: `claim_timeout_ms`.
    pub settings: String,
}

/// The workers' consumer group on the tasks stream.
pub const WORKERS_GROUP: &str = "workers";
/// The loop's consumer group on the results stream, and its one consumer.
pub const LOOP_GROUP: &str = "loop";
const LOOP_CONSUMER: &str = "loop";
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "ai-employee";
/// The settings hash's field for the loop's `claim_timeout`, in milliseconds.
const CLAIM_TIMEOUT_FIELD: &str = "claim_timeout_ms";

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            tasks: format!("{prefix}:tasks"),
            results: format!("{prefix}:results"),
            workers: format!("{prefix}:workers"),
            reclaims: format!("{prefix}:reclaims"),
            settings: format!("{prefix}:settings"),
        }
    }
}

/// Who the client logs in as: an ACL user and its password (from `credentials/queue.toml`
/// or a worker's `--credentials` file), and an extra CA for `rediss://`.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A PEM file with the CA that signed the server's certificate (besides the public
    /// roots).
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why the queue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The URL or the credentials cannot work (a set-up problem: exit 78).
    #[error("{0}")]
    Setup(String),
    /// Redis did not answer, or the connection broke (retry later).
    #[error("the queue at {url} is unreachable: {error}")]
    Unreachable { url: String, error: String },
    /// Redis answered with an error.
    #[error("the queue at {url} answered an error: {error}")]
    Redis { url: String, error: String },
}

impl QueueError {
    /// Whether a later try may work (the server was down, the network cut).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, QueueError::Unreachable { .. })
    }
}

/// A URL as shown in messages: scheme, host, port and database, never a password.
pub fn redacted(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let user = if u.username().is_empty() {
                String::new()
            } else {
                format!("{}@", u.username())
            };
            format!("{}://{user}{host}{port}{}", u.scheme(), u.path())
        }
        None => "<invalid URL>".to_string(),
    }
}

/// Check a queue URL as the table and the worker's `--queue` take it: `redis://` or
/// `rediss://`, a host, no password (it belongs in the credentials file).
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some((scheme, _)) = url.split_once("://")
        && !matches!(scheme, "redis" | "rediss")
    {
        return Err(format!(
            "the scheme must be redis:// or rediss:// (TLS), found {}://",
            crate::agent::task::one_line(scheme, 20)
        ));
    }
    let Some(u) = redis::parse_redis_url(url) else {
        return Err(format!(
            "{:?} is not a Redis URL (redis://host:6379/0 or rediss://host:6380/0)",
            crate::agent::task::one_line(url, 80)
        ));
    };
    if !matches!(u.scheme(), "redis" | "rediss") {
        return Err(format!(
            "the scheme must be redis:// or rediss:// (TLS), found {}://",
            u.scheme()
        ));
    }
    if u.password().is_some() {
        return Err(
            "the URL must not hold a password: put it in credentials/queue.toml (password = \
             \"…\"), which is never logged"
                .to_string(),
        );
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    let path = u.path().trim_start_matches('/');
    if !path.is_empty() && path.parse::<u16>().is_err() {
        return Err(format!("the database must be a number, found {path:?}"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("the URL must not have a query (?…) or fragment (#…)".to_string());
    }
    Ok(())
}

/// One entry taken from the tasks stream.
#[derive(Debug, Clone)]
pub struct TaskDelivery {
    /// The stream entry's id (for [`QueueClient::ack_task`]).
    pub id: String,
    /// The message, or why it was refused (the worker answers a refusal as a failed run
    /// when it names a task, and drops it otherwise).
    pub message: Result<TaskMessage, Refusal>,
}

/// One entry of the results stream.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The stream entry's id (for [`QueueClient::ack_result`]).
    pub id: String,
    /// The task and attempt the entry's own fields name (also for a refused body).
    pub task_id: Option<String>,
    pub attempt: Option<u32>,
    pub result: Result<ValidResult, Refusal>,
}

/// What the streams hold, by (task id, attempt): see [`QueueClient::outstanding`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Published and not yet answered (taken by a worker or not).
    pub tasks: BTreeSet<(String, u32)>,
    /// Answered and not yet acknowledged by the loop.
    pub results: BTreeSet<(String, u32)>,
}

impl Outstanding {
    /// Whether Redis still has `task`'s `attempt` (as a task or as a result).
    pub fn contains(&self, task: &str, attempt: u32) -> bool {
        let k = (task.to_string(), attempt);
        self.tasks.contains(&k) || self.results.contains(&k)
    }
}

/// The queue's gauges and counters (for `/metrics` and `tasks health`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMetrics {
    /// Entries in the tasks stream (published, not yet answered).
    pub tasks_length: u64,
    /// Of those, taken by a worker and not yet acknowledged.
    pub tasks_pending: u64,
    /// Entries in the results stream (answered, not yet in the vault).
    pub results_length: u64,
    /// Of those, read by the loop and not yet acknowledged.
    pub results_pending: u64,
    /// Entries a worker took over from another one, since the queue was created.
    pub reclaims: u64,
    /// Workers in the registry.
    pub workers: u64,
}

/// A worker as it describes itself in the registry (its heartbeat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub host: String,
    pub concurrency: u32,
    pub current: Vec<CurrentTask>,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The program's version.
    #[serde(default)]
    pub version: String,
}

/// A run a worker has in hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentTask {
    pub task_id: String,
    pub attempt: u32,
    pub since: DateTime<Utc>,
}

/// Whether a result's attempt is the one the vault says runs (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write its files, apply its status, then acknowledge it.
    Accept,
    /// A superseded or already applied attempt: acknowledge it and change nothing.
    Stale,
}

/// The fencing rule: a result is applied only when `running` (the attempt the vault's
/// task file says is running on a worker, `None` when the task is not running there, or
/// no longer exists) is the result's own attempt. Once the loop applied a result, the
/// task is no longer running that attempt, so a duplicate (a reclaimed entry answered
/// twice) is stale too.
pub fn fence(result_attempt: u32, running: Option<u32>) -> Verdict {
    if running == Some(result_attempt) {
        Verdict::Accept
    } else {
        Verdict::Stale
    }
}

/// How long an answer may take (the connection is then treated as broken).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a blocking read waits; its connection allows this plus the answer time.
pub const MAX_BLOCK: Duration = Duration::from_secs(30);
/// Entries read per XRANGE page.
const PAGE: usize = 500;

/// A connection to the queue: two self-reconnecting connections (one for blocking reads,
/// one for everything else), the key names and the result caps.
#[derive(Clone)]
pub struct QueueClient {
    url: String,
    conn: ConnectionManager,
    reader: ConnectionManager,
    keys: Keys,
    limits: Limits,
    /// The loop's own unacknowledged results are read again first after a connect.
    results_backlog: bool,
}

impl QueueClient {
    /// Connect to `url` (`redis://` or `rediss://`) as `credentials` say, with the default
    /// key prefix. Fails at once (no retry) when the server cannot be reached.
    pub async fn connect(url: &str, credentials: &Credentials) -> Result<QueueClient, QueueError> {
        QueueClient::connect_with(url, credentials, DEFAULT_PREFIX).await
    }

    /// [`QueueClient::connect`] with another key prefix.
    pub async fn connect_with(
        url: &str,
        credentials: &Credentials,
        prefix: &str,
    ) -> Result<QueueClient, QueueError> {
        check_url(url).map_err(QueueError::Setup)?;
        let shown = redacted(url);
        let setup = |e: String| QueueError::Setup(format!("queue {shown}: {e}"));
        let info = url
            .into_connection_info()
            .map_err(|e| setup(e.to_string()))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &credentials.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &credentials.password {
            settings = settings.set_password(p.expose());
        }
        let info = info.set_redis_settings(settings);
        let client = match &credentials.ca_file {
            Some(ca) if url.starts_with("rediss:") => {
                let pem = std::fs::read(ca)
                    .map_err(|e| setup(format!("cannot read ca_file {}: {e}", ca.display())))?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => redis::Client::open(info),
        }
        .map_err(|e| setup(e.to_string()))?;
        let config = |response: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(response))
                .set_number_of_retries(0)
                .set_max_delay(Duration::from_secs(2))
        };
        let map = |e: RedisError| classify(&shown, e);
        let conn = ConnectionManager::new_with_config(client.clone(), config(RESPONSE_TIMEOUT))
            .await
            .map_err(map)?;
        let reader =
            ConnectionManager::new_with_config(client, config(MAX_BLOCK + RESPONSE_TIMEOUT))
                .await
                .map_err(map)?;
        Ok(QueueClient {
            url: shown,
            conn,
            reader,
            keys: Keys::new(prefix),
            limits: Limits::default(),
            results_backlog: true,
        })
    }

    /// The URL, without a password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Set the caps results are validated with.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    fn err(&self, e: RedisError) -> QueueError {
        classify(&self.url, e)
    }

    /// Create both streams and their groups if missing (after a Redis that lost its data,
    /// too). Idempotent.
    pub async fn ensure_groups(&mut self) -> Result<(), QueueError> {
        for (stream, group) in [
            (&self.keys.tasks, WORKERS_GROUP),
            (&self.keys.results, LOOP_GROUP),
        ] {
            let r: Result<(), RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut self.conn)
                .await;
            match r {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(classify(&self.url, e)),
            }
        }
        Ok(())
    }

    /// Publish one run of a task; returns the entry's id.
    pub async fn publish(&mut self, message: &TaskMessage) -> Result<String, QueueError> {
        let body = message.to_json();
        let stream = self.keys.tasks.clone();
        self.xadd(&stream, &message.task_id, message.attempt, &body)
            .await
    }

    /// A worker's answer; returns the entry's id.
    pub async fn publish_result(&mut self, message: &ResultMessage) -> Result<String, QueueError> {
        let body = message.to_json();
        let stream = self.keys.results.clone();
        self.xadd(&stream, &message.task_id, message.attempt, &body)
            .await
    }

    async fn xadd(
        &mut self,
        stream: &str,
        task: &str,
        attempt: u32,
        body: &[u8],
    ) -> Result<String, QueueError> {
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("task")
            .arg(task)
            .arg("attempt")
            .arg(attempt)
            .arg("body")
            .arg(body)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// The loop: results to apply, at most `count`, waiting up to `block` (at most
    /// [`MAX_BLOCK`]) when there are none. After a connect, the loop's own unacknowledged
    /// entries (read before a crash) come first. Each is validated with the client's
    /// [`Limits`].
    pub async fn read_results(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Incoming>, QueueError> {
        let stream = self.keys.results.clone();
        if self.results_backlog {
            let entries = self
                .read_group(&stream, LOOP_GROUP, LOOP_CONSUMER, "0", count, None)
                .await?;
            if !entries.is_empty() {
                return Ok(entries.into_iter().map(|e| self.incoming(e)).collect());
            }
            self.results_backlog = false;
        }
        let entries = self
            .read_group(&stream, LOOP_GROUP, LOOP_CONSUMER, ">", count, Some(block))
            .await?;
        Ok(entries.into_iter().map(|e| self.incoming(e)).collect())
    }

    fn incoming(&self, e: StreamId) -> Incoming {
        let task_id: Option<String> = e.get("task");
        let attempt: Option<u32> = e.get("attempt");
        let body: Option<Vec<u8>> = e.get("body");
        let result = validate::validate_result(body.as_deref().unwrap_or_default(), &self.limits)
            .map_err(|mut r| {
                r.task_id = r.task_id.or_else(|| task_id.clone());
                r.attempt = r.attempt.or(attempt);
                r
            });
        Incoming {
            id: e.id,
            task_id,
            attempt,
            result,
        }
    }

    /// The loop: the result `id` is applied (its files and status durable in the vault):
    /// acknowledge and delete it.
    pub async fn ack_result(&mut self, id: &str) -> Result<(), QueueError> {
        let stream = self.keys.results.clone();
        self.ack_delete(&stream, LOOP_GROUP, id).await
    }

    /// A worker: the result of task entry `id` is published: acknowledge and delete it.
    pub async fn ack_task(&mut self, id: &str) -> Result<(), QueueError> {
        let stream = self.keys.tasks.clone();
        self.ack_delete(&stream, WORKERS_GROUP, id).await
    }

    async fn ack_delete(&mut self, stream: &str, group: &str, id: &str) -> Result<(), QueueError> {
        redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(stream)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// A worker: new task entries for `consumer`, at most `count`, waiting up to `block`.
    pub async fn take_tasks(
        &mut self,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<TaskDelivery>, QueueError> {
        let stream = self.keys.tasks.clone();
        let entries = self
            .read_group(&stream, WORKERS_GROUP, consumer, ">", count, Some(block))
            .await?;
        Ok(entries.into_iter().map(delivery).collect())
    }

    /// A worker: the entries `consumer` took and never acknowledged (a worker of the same
    /// name that died), to run them again at once.
    pub async fn own_pending_tasks(
        &mut self,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<TaskDelivery>, QueueError> {
        let stream = self.keys.tasks.clone();
        let entries = self
            .read_group(&stream, WORKERS_GROUP, consumer, "0", count, None)
            .await?;
        let mut out = Vec::new();
        for e in entries {
            if e.map.is_empty() {
                // Deleted after it was taken (answered): only its acknowledgement is left.
                self.ack_task(&e.id).await?;
            } else {
                out.push(delivery(e));
            }
        }
        Ok(out)
    }

    async fn read_group(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        from: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<StreamId>, QueueError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1));
        if let Some(b) = block {
            cmd.arg("BLOCK")
                .arg(b.min(MAX_BLOCK).as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(stream).arg(from);
        let mut retried = false;
        loop {
            let conn = if block.is_some() {
                &mut self.reader
            } else {
                &mut self.conn
            };
            let r: Result<Option<StreamReadReply>, RedisError> = cmd.query_async(conn).await;
            match r {
                Ok(reply) => {
                    return Ok(reply
                        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                        .unwrap_or_default());
                }
                // The server lost the stream or the group (restarted without persistence):
                // create them again and read from the new, empty group.
                Err(e) if e.code() == Some("NOGROUP") && !retried => {
                    retried = true;
                    self.ensure_groups().await?;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// A worker: take over entries idle longer than `min_idle` (their worker died or is
    /// stalled), at most `count`. Counted in the reclaims counter.
    pub async fn reclaim(
        &mut self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<TaskDelivery>, QueueError> {
        let stream = self.keys.tasks.clone();
        let mut cursor = "0-0".to_string();
        let mut out = Vec::new();
        // A bounded number of pages: XAUTOCLAIM scans at most 10 × COUNT entries a call.
        for _ in 0..16 {
            let r: Result<StreamAutoClaimReply, RedisError> = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(WORKERS_GROUP)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(count.saturating_sub(out.len()).max(1))
                .query_async(&mut self.conn)
                .await;
            let reply = match r {
                Ok(r) => r,
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.ensure_groups().await?;
                    return Ok(out);
                }
                Err(e) => return Err(self.err(e)),
            };
            for e in reply.claimed {
                if e.map.is_empty() {
                    self.ack_task(&e.id).await?;
                } else {
                    out.push(delivery(e));
                }
            }
            cursor = reply.next_stream_id;
            if cursor == "0-0" || out.len() >= count {
                break;
            }
        }
        if !out.is_empty() {
            let key = self.keys.reclaims.clone();
            redis::cmd("INCRBY")
                .arg(&key)
                .arg(out.len())
                .query_async::<i64>(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// A worker: keep the entries it runs from looking idle (so they are not reclaimed
    /// while the agent works). Returns those it no longer owns (reclaimed by another
    /// worker while this one was stalled); those are left alone.
    pub async fn refresh_claims(
        &mut self,
        consumer: &str,
        ids: &[String],
    ) -> Result<Vec<String>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Atomic: check the owner and reset the idle time in one step, so an entry
        // reclaimed meanwhile is never taken back.
        const SCRIPT: &str = r"
local lost = {}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], KEYS[2], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], KEYS[2], ARGV[1], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost";
        let script = redis::Script::new(SCRIPT);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.tasks).key(WORKERS_GROUP).arg(consumer);
        for id in ids {
            inv.arg(id);
        }
        inv.invoke_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// A worker that stops with runs in hand: make their entries look idle for
    /// `idle`, so another worker reclaims them at its next sweep instead of after the whole
    /// claim timeout.
    pub async fn release(
        &mut self,
        consumer: &str,
        ids: &[String],
        idle: Duration,
    ) -> Result<(), QueueError> {
        for id in ids {
            let r: Result<Value, RedisError> = redis::cmd("XCLAIM")
                .arg(&self.keys.tasks)
                .arg(WORKERS_GROUP)
                .arg(consumer)
                .arg(0)
                .arg(id)
                .arg("IDLE")
                .arg(idle.as_millis() as u64)
                .arg("JUSTID")
                .query_async(&mut self.conn)
                .await;
            r.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// What the streams hold. The loop compares it with what the vault says runs on a
    /// worker: a run in neither stream was lost (Redis restarted without its data) and is
    /// published again. The tasks stream is read before the results stream: a worker adds
    /// its result before it deletes the task entry, so a run moving between them is seen
    /// in one or the other.
    pub async fn outstanding(&mut self) -> Result<Outstanding, QueueError> {
        let tasks = self.keys.tasks.clone();
        let results = self.keys.results.clone();
        Ok(Outstanding {
            tasks: self.scan(&tasks).await?,
            results: self.scan(&results).await?,
        })
    }

    async fn scan(&mut self, stream: &str) -> Result<BTreeSet<(String, u32)>, QueueError> {
        let mut out = BTreeSet::new();
        let mut start = "-".to_string();
        loop {
            let page: StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            let n = page.ids.len();
            let Some(last) = page.ids.last().map(|e| e.id.clone()) else {
                break;
            };
            for e in page.ids {
                if let (Some(t), Some(a)) = (e.get::<String>("task"), e.get::<u32>("attempt")) {
                    out.insert((t, a));
                }
            }
            if n < PAGE {
                break;
            }
            start = format!("({last}");
        }
        Ok(out)
    }

    /// The server's run id, which changes when it restarts: a change means the loop should
    /// compare [`QueueClient::outstanding`] with the vault.
    pub async fn server_run_id(&mut self) -> Result<String, QueueError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or("")
            .trim()
            .to_string())
    }

    /// The queue's gauges and counters.
    pub async fn metrics(&mut self) -> Result<QueueMetrics, QueueError> {
        let mut m = QueueMetrics {
            tasks_length: self.xlen(&self.keys.tasks.clone()).await?,
            results_length: self.xlen(&self.keys.results.clone()).await?,
            ..QueueMetrics::default()
        };
        m.tasks_pending = self
            .pending(&self.keys.tasks.clone(), WORKERS_GROUP)
            .await?;
        m.results_pending = self.pending(&self.keys.results.clone(), LOOP_GROUP).await?;
        let reclaims: Option<u64> = redis::cmd("GET")
            .arg(&self.keys.reclaims)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        m.reclaims = reclaims.unwrap_or(0);
        m.workers = redis::cmd("HLEN")
            .arg(&self.keys.workers)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(m)
    }

    async fn xlen(&mut self, stream: &str) -> Result<u64, QueueError> {
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    async fn pending(&mut self, stream: &str, group: &str) -> Result<u64, QueueError> {
        let r: Result<Value, RedisError> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query_async(&mut self.conn)
            .await;
        match r {
            // [count, first, last, consumers]
            Ok(Value::Array(v)) => Ok(match v.first() {
                Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            }),
            Ok(_) => Ok(0),
            Err(e) if e.code() == Some("NOGROUP") => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The loop's `claim_timeout`, for the workers started without `--claim-timeout`.
    pub async fn publish_settings(&mut self, claim_timeout: Duration) -> Result<(), QueueError> {
        redis::cmd("HSET")
            .arg(&self.keys.settings)
            .arg(CLAIM_TIMEOUT_FIELD)
            .arg(u64::try_from(claim_timeout.as_millis()).unwrap_or(u64::MAX))
            .query_async::<i64>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The loop's `claim_timeout` ([`QueueClient::publish_settings`]); `None` when no loop
    /// has said it (or what is there is not a positive number of milliseconds).
    pub async fn loop_claim_timeout(&mut self) -> Result<Option<Duration>, QueueError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&self.keys.settings)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(all
            .iter()
            .find(|(k, _)| k == CLAIM_TIMEOUT_FIELD)
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis))
    }

    /// A worker's heartbeat: its entry in the registry.
    pub async fn heartbeat(&mut self, info: &WorkerInfo) -> Result<(), QueueError> {
        let json = serde_json::to_string(info).unwrap_or_default();
        redis::cmd("HSET")
            .arg(&self.keys.workers)
            .arg(&info.name)
            .arg(json)
            .query_async::<i64>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A worker leaves the registry (a clean stop).
    pub async fn remove_worker(&mut self, name: &str) -> Result<(), QueueError> {
        redis::cmd("HDEL")
            .arg(&self.keys.workers)
            .arg(name)
            .query_async::<i64>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every worker in the registry, by name (entries that do not parse are skipped).
    pub async fn workers(&mut self) -> Result<Vec<WorkerInfo>, QueueError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&self.keys.workers)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        let mut out: Vec<WorkerInfo> = all
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether the server answers on both connections (after an outage each connection
    /// fails once before it reconnects: this takes those failures).
    pub async fn ping_all(&mut self) -> Result<(), QueueError> {
        for conn in [&mut self.conn, &mut self.reader] {
            let r: Result<String, RedisError> = redis::cmd("PING").query_async(conn).await;
            r.map_err(|e| classify(&self.url, e))?;
        }
        Ok(())
    }

    /// Whether the server answers (a `PING`).
    pub async fn ping(&mut self) -> Result<(), QueueError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

fn delivery(e: StreamId) -> TaskDelivery {
    let body: Option<Vec<u8>> = e.get("body");
    let mut message = validate::validate_task(body.as_deref().unwrap_or_default());
    if let Err(r) = &mut message {
        r.task_id = r.task_id.take().or_else(|| e.get("task"));
        r.attempt = r.attempt.or_else(|| e.get("attempt"));
    }
    TaskDelivery { id: e.id, message }
}

fn classify(url: &str, e: RedisError) -> QueueError {
    let error = crate::agent::task::one_line(&e.to_string(), 300);
    let url = url.to_string();
    let auth = matches!(e.kind(), ErrorKind::AuthenticationFailed)
        || e.code()
            .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH" || c == "NOPERM");
    if auth {
        return QueueError::Setup(format!(
            "the queue at {url} refused the login or a command ({error}): check the user and \
             password in credentials/queue.toml and the user's ACL (docs/workers.md)"
        ));
    }
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        return QueueError::Unreachable { url, error };
    }
    QueueError::Redis { url, error }
}

/// Says once that the queue is unreachable, and once that it answers again (the worker
/// and the loop retry meanwhile without repeating it). Clones share the state, so the
/// tasks of one process say it once between them.
#[derive(Debug, Clone, Default)]
pub struct Reachability {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Reachability {
    /// A call failed: a set-up problem or an error answer is logged each time; the queue
    /// going away only at the first failure.
    pub fn failed(&self, e: &QueueError) {
        use std::sync::atomic::Ordering;
        if e.is_unreachable() {
            if !self.down.swap(true, Ordering::SeqCst) {
                tracing::warn!("{e}; retrying every second");
            }
        } else {
            tracing::warn!("{e}");
        }
    }

    /// The queue answered on every connection ([`QueueClient::ping_all`]).
    pub fn ok(&self, url: &str) {
        if self.down.swap(false, std::sync::atomic::Ordering::SeqCst) {
            tracing::info!("the queue at {url} answers again");
        }
    }

    /// Whether the queue was last found unreachable.
    pub fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::SeqCst)
    }
}
