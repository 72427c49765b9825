//! The loop's side of the work queue (docs/workers.md, "The task loop's side"): with
//! `[agent] queue` set, a runnable task is claimed into `In_Progress/` exactly as for a
//! local run (the attempt counted and made durable in its frontmatter, with
//! `run_on: queue`) and then published for a worker; the workers' answers are read,
//! checked, fenced and applied through the same path a local run's end takes.
//!
//! Two tokio tasks on the loop's runtime talk to Redis, so that the loop itself never
//! waits on the network:
//!
//! - the *queue task* ([`queue_task`]) connects (again every second while Redis is
//!   unreachable), publishes, acknowledges, polls the server's run id every second
//!   (a restart, or a connection back after an outage, makes it compare what Redis holds
//!   with what the loop says runs there: [`Event::Outstanding`]) and the worker registry
//!   and the queue's counts every few seconds;
//! - the *reader* ([`reader`]) blocks on the results stream and forwards what arrives.
//!
//! The loop decides everything else: the fence, writing a result's files, the task's new
//! state, and acknowledging a result only after that state is durable (the sync the next `flush` asks
//! for has completed on the sync thread, `durable.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{Dir, How};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Claimed, Engine, Entry, gate};
use crate::agent::events::{EventKind, RunResult, TaskEvent};
use crate::agent::prompt;
use crate::agent::runner::{AttemptEnd, Progress};
use crate::agent::snapshot::{QueueView, RemoteRunView};
use crate::agent::task;
use crate::config::{QueueSettings, QueueUnreachable, Runner};
use crate::queue::client::{Reachability, redacted};
use crate::queue::wire::{AgentSpec, RunnerKind, TaskMessage, VERSION};
use crate::queue::{
    Credentials, Incoming, Outstanding, QueueClient, QueueError, QueueMetrics, Verdict, WorkerInfo,
    Written, fence, write_files,
};

/// The frontmatter key that says a task's run is on the queue (`run_on: queue`), so that a
/// loop started again keeps waiting for its result instead of calling it interrupted.
pub(super) const RUN_ON: &str = "run_on";
/// Its value.
pub(super) const ON_QUEUE: &str = "queue";
/// The worker and host that answered, written into the task with its new state.
pub(super) const WORKER: &str = "worker";
pub(super) const HOST: &str = "host";

/// Who ran a queued task, while its result is taken in: written by the next edit of its
/// file (folder, name), with its new state ([`WORKER`], [`HOST`]).
pub(super) struct Stamp {
    pub(super) folder: Folder,
    pub(super) name: String,
    pub(super) worker: String,
    pub(super) host: String,
}
/// How often the queue task checks the server (its run id: a restart, an outage's end).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the worker registry and the queue's counts are read.
const WORKERS_EVERY: Duration = Duration::from_secs(3);
/// Results read at once.
const READ_COUNT: usize = 256;
/// How long one read of the results stream blocks.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// The most registry entries the loop looks at.
const MAX_WORKERS: usize = 10_000;
/// The most bytes of `Company_Handbook.md` sent with a run.
const HANDBOOK_MAX: u64 = 1024 * 1024;

/// The publishes the queue task has handled (sent, or [`Command::Unsent`]): every `seq`
/// up to `upto` and those in `above`. They arrive out of their order, each after its own
/// sync on a blocking thread, so the last one handled says nothing of the others: a
/// comparison with Redis that took it for a high-water mark skipped a run sent before it
/// with a higher `seq`, and a run Redis then lost was never published again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Handled {
    upto: u64,
    /// Handled above `upto`, with a gap below them (a few: the syncs in flight).
    above: BTreeSet<u64>,
}

impl Handled {
    fn mark(&mut self, seq: u64) {
        if seq <= self.upto {
            return;
        }
        self.above.insert(seq);
        while self.above.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
    }

    /// Whether publish `seq` was handled (0: a run found at start, never published).
    pub(super) fn covers(&self, seq: u64) -> bool {
        seq <= self.upto || self.above.contains(&seq)
    }
}

/// How often the warning about claims that cannot be synced is repeated while they keep
/// failing (each is tried again at every comparison, a second apart).
const UNSENT_WARN_EVERY: Duration = Duration::from_secs(60);

/// Publishes not sent because their claim could not be synced (a disk returning EIO, say).
/// The next comparison publishes each again, every second until the sync works: they are
/// not runs Redis lost (neither said nor counted so), and their warning is said once a
/// minute with the number of failures since, not at every try.
#[derive(Debug, Default)]
pub(super) struct Unsent {
    seqs: BTreeSet<u64>,
    /// When the warning was last said, and the failures not said since.
    warned: Option<Instant>,
    quiet: u64,
}

impl Unsent {
    /// Publish `seq` was not sent. `Some(failures not said before it)` when this one is to
    /// be said.
    fn failed(&mut self, seq: u64, now: Instant) -> Option<u64> {
        self.seqs.insert(seq);
        match self.warned {
            Some(t) if now.saturating_duration_since(t) < UNSENT_WARN_EVERY => {
                self.quiet += 1;
                None
            }
            _ => {
                self.warned = Some(now);
                Some(std::mem::take(&mut self.quiet))
            }
        }
    }

    /// Whether publish `seq` was one of them; it is forgotten here (published again).
    fn take(&mut self, seq: u64) -> bool {
        self.seqs.remove(&seq)
    }

    /// A claim synced: true once, when failures had been said, so that their end is too.
    fn synced(&mut self) -> bool {
        if self.warned.is_none() || !self.seqs.is_empty() {
            return false;
        }
        self.warned = None;
        self.quiet = 0;
        true
    }
}

/// What the loop asks of the queue task.
pub(super) enum Command {
    /// Publish a run; `seq` tells publishes sent before an [`Event::Outstanding`] from
    /// those after it.
    Publish { seq: u64, message: Box<TaskMessage> },
    /// Publish `seq` was not sent (its claim could not be synced): compare the queue
    /// with the vault at the next check, which publishes it again.
    Unsent(u64),
    /// The result entry is applied and durable: acknowledge and delete it.
    Ack(String),
    /// Compare what Redis holds with the loop's runs at the next check (a run found in
    /// the vault after start).
    Check,
}

/// What the queue tasks tell the loop.
pub(super) enum Event {
    /// The queue answers (at start, after an outage, after a restart): what it holds.
    /// Every publish `handled` covers was sent (or given up) before this was read.
    Outstanding {
        handled: Handled,
        outstanding: Outstanding,
    },
    /// The queue stopped answering.
    Unreachable,
    /// The URL or credentials cannot work (exit 78).
    Setup(String),
    /// Results to apply.
    Results(Vec<Incoming>),
    /// The registry and the counts.
    Workers(Vec<WorkerInfo>, QueueMetrics),
}

/// Whether the queue can take runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Not known yet (connecting at start): nothing starts.
    Connecting,
    Up,
    Down,
}

/// A run on the queue.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub attempt: u32,
    /// When it was published (or claimed, for one found at start).
    pub since: DateTime<Utc>,
    /// The publish that sent it (0: found in the vault at start, never sent by this loop).
    pub seq: u64,
    /// A run resumed after the task's approvals were decided: its prompt tells their
    /// outcome, published again the same way.
    pub resumed: bool,
    /// The worker that has it, as its heartbeat says.
    pub worker: Option<String>,
    pub host: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
}

/// The loop's state of the queue.
pub(super) struct Remote {
    url: String,
    settings: QueueSettings,
    credentials: Credentials,
    tx: Option<mpsc::UnboundedSender<Command>>,
    pub(super) link: Link,
    /// Runs on the queue, by task id.
    pub(super) runs: HashMap<String, Run>,
    seq: u64,
    /// Results applied, acknowledged after the next sync.
    acks: Vec<String>,
    /// Acknowledgements waiting for the sync (by its number) that makes their results
    /// durable.
    acks_waiting: Vec<(u64, String)>,
    workers: Vec<WorkerInfo>,
    metrics: Option<QueueMetrics>,
    /// The last time a live worker was seen (a heartbeat within `worker_timeout`).
    last_worker_seen: Option<DateTime<Utc>>,
    /// Results refused, fenced off, applied, since start.
    refused: u64,
    stale: u64,
    applied: u64,
    republished: u64,
    unsent: std::sync::Arc<std::sync::Mutex<Unsent>>,
}

impl Remote {
    /// The queue of `settings`, none when `[agent] queue` is not set.
    pub(super) fn new(settings: &QueueSettings, credentials: Credentials) -> Option<Remote> {
        let url = settings.url.clone()?;
        Some(Remote {
            url,
            settings: settings.clone(),
            credentials,
            tx: None,
            link: Link::Connecting,
            runs: HashMap::new(),
            seq: 0,
            acks: Vec::new(),
            acks_waiting: Vec::new(),
            workers: Vec::new(),
            metrics: None,
            last_worker_seen: None,
            refused: 0,
            stale: 0,
            applied: 0,
            republished: 0,
            unsent: Default::default(),
        })
    }

    /// Start the queue task and the reader; their events arrive on the receiver.
    pub(super) fn start(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        self.tx = Some(cmd_tx);
        tokio::spawn(queue_task(
            self.url.clone(),
            self.credentials.clone(),
            self.settings.claim_timeout,
            cmd_rx,
            ev_tx,
        ));
        ev_rx
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c); // the queue task ends only with the loop
        }
    }

    /// Forget the run of `task` (its task file is gone).
    pub(super) fn forget(&mut self, task: &str) {
        if let Some(run) = self.runs.remove(task) {
            self.unsent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(run.seq);
        }
    }

    /// How many runs may be on the queue at once: `max_concurrent` plus what the live
    /// workers can run together, so that a short backlog waits in Redis and the rest in
    /// the vault, in score order.
    pub(super) fn limit(&self, max_concurrent: u32, now: DateTime<Utc>) -> usize {
        let capacity: u64 = self
            .workers
            .iter()
            .filter(|w| self.alive(w, now))
            .map(|w| u64::from(w.concurrency))
            .sum();
        (u64::from(max_concurrent) + capacity) as usize
    }

    fn alive(&self, w: &WorkerInfo, now: DateTime<Utc>) -> bool {
        (now - w.last_seen)
            .to_std()
            .map_or(true, |ago| ago <= self.settings.worker_timeout)
    }

    /// The attempt the vault says runs on a worker for `task` (the fence's `running`).
    fn running(&self, task: &str) -> Option<u32> {
        self.runs.get(task).map(|r| r.attempt)
    }

    /// The snapshot's part.
    pub(super) fn view(&self, now: DateTime<Utc>) -> QueueView {
        let mut runs: Vec<RemoteRunView> = self
            .runs
            .iter()
            .map(|(id, r)| RemoteRunView {
                task: id.clone(),
                attempt: r.attempt,
                published_at: r.since,
                worker: r.worker.clone(),
                host: r.host.clone(),
                taken_at: r.taken_at,
            })
            .collect();
        runs.sort_by(|a, b| {
            a.published_at
                .cmp(&b.published_at)
                .then(a.task.cmp(&b.task))
        });
        let mut workers: BTreeMap<String, u32> = BTreeMap::new();
        for w in self.workers.iter().filter(|w| self.alive(w, now)) {
            workers.insert(w.name.clone(), w.current.len() as u32);
        }
        QueueView {
            url: redacted(&self.url),
            reachable: self.link == Link::Up,
            unreachable_mode: match self.settings.unreachable {
                QueueUnreachable::Local => "local".into(),
                QueueUnreachable::Wait => "wait".into(),
            },
            worker_timeout_s: self.settings.worker_timeout.as_secs(),
            in_flight: self.runs.len() as u64,
            workers_alive: workers.len() as u64,
            worker_runs: workers,
            last_worker_seen: self.last_worker_seen,
            metrics: self.metrics,
            results_applied: self.applied,
            results_refused: self.refused,
            results_stale: self.stale,
            republished: self.republished,
            runs,
        }
    }
}

/// What the loop does with a runnable task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// No queue: run it here.
    Local,
    /// Publish it (up to the limit).
    Queue,
    /// The queue is unreachable and `queue_unreachable = "local"`: run it here.
    Fallback,
    /// Start nothing (connecting, or unreachable with `queue_unreachable = "wait"`).
    Hold,
}

impl Engine {
    pub(super) fn queue_mode(&self) -> Mode {
        let Some(r) = &self.remote else {
            return Mode::Local;
        };
        match r.link {
            Link::Up => Mode::Queue,
            Link::Connecting => Mode::Hold,
            Link::Down => match r.settings.unreachable {
                QueueUnreachable::Local => Mode::Fallback,
                QueueUnreachable::Wait => Mode::Hold,
            },
        }
    }

    /// Whether `id` runs on the queue now.
    pub(super) fn on_queue(&self, id: &str) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| r.runs.contains_key(id))
    }

    /// No run is on the queue.
    pub(super) fn queue_idle(&self) -> bool {
        self.remote.as_ref().is_none_or(|r| r.runs.is_empty())
    }

    /// Publish the best runnable tasks while the queue has room.
    pub(super) fn schedule_remote(&mut self) {
        loop {
            let now = Utc::now();
            let room = match &self.remote {
                Some(r) => r.runs.len() < r.limit(self.s.max_concurrent, now),
                None => false,
            };
            if !room {
                return;
            }
            let Some(id) = self.pick(now) else {
                return;
            };
            let before = self.tasks.get(&id).map(|e| (e.state, e.attempt));
            self.start_remote(&id);
            // A claim that failed leaves the task not runnable for a while, or forgotten.
            if self.tasks.get(&id).map(|e| (e.state, e.attempt)) == before && !self.on_queue(&id) {
                return;
            }
        }
    }

    /// Claim `id` into `In_Progress/` (the attempt counted, durable) and publish it.
    fn start_remote(&mut self, id: &str) {
        let Some(e) = self.tasks.get(id).cloned() else {
            return;
        };
        let now = Utc::now();
        // Durable before it is published: the attempt is the run's fencing token. Written
        // here, made durable off the loop's thread just before the publish (`publish`).
        let Some(Claimed {
            name,
            attempt,
            resumed,
            title,
        }) = self.claim(&e, now, |d| {
            d.set(RUN_ON, ON_QUEUE);
            d.remove(WORKER);
            d.remove(HOST);
        })
        else {
            return;
        };
        let mut e2 = e.clone();
        e2.attempt = attempt;
        e2.name = name.clone();
        e2.folder = Folder::InProgress;
        let Some(message) = self.task_message(&e2, resumed) else {
            // The file went away between the claim and now: forget it.
            self.tasks.remove(id);
            return;
        };
        self.mark_running(id, &name, attempt, title, now);
        info!(
            "published {} for a worker (attempt {attempt}{})",
            Folder::InProgress.rel(&name),
            if resumed { ", after its approvals" } else { "" }
        );
        let dir = self.synced_first(name);
        self.publish(id, attempt, now, resumed, message, dir);
    }

    /// What [`Engine::publish`] syncs before it sends a run: `In_Progress/` and the task
    /// file `name` in it. None when the folder cannot be opened again for the sync
    /// thread: it is synced here instead.
    fn synced_first(&self, name: String) -> Option<(Dir, String)> {
        match self.dirs.progress.try_clone() {
            Ok(d) => Some((d, name)),
            Err(err) => {
                if let Err(e) = self.dirs.progress.sync() {
                    warn!("cannot sync In_Progress/ ({err}; {e})");
                }
                None
            }
        }
    }

    /// Record the run and send it to the queue; with `durable_first` (the folder and the
    /// task file's name), once that file and its folder are synced, on a blocking thread:
    /// the loop goes on claiming while the disk works, and claims in flight sync in
    /// parallel.
    fn publish(
        &mut self,
        id: &str,
        attempt: u32,
        since: DateTime<Utc>,
        resumed: bool,
        message: TaskMessage,
        durable_first: Option<(Dir, String)>,
    ) {
        let Some(r) = &mut self.remote else { return };
        r.seq += 1;
        let seq = r.seq;
        r.runs.insert(
            id.to_string(),
            Run {
                attempt,
                since,
                seq,
                resumed,
                worker: None,
                host: None,
                taken_at: None,
            },
        );
        let command = Command::Publish {
            seq,
            message: Box::new(message),
        };
        match (durable_first, &r.tx) {
            (Some((dir, name)), Some(tx)) => {
                let tx = tx.clone();
                let unsent = r.unsent.clone();
                tokio::task::spawn_blocking(move || {
                    let synced = dir
                        .file(&name, How::READ)
                        .and_then(|f| f.sync_all())
                        .and_then(|()| dir.sync());
                    let mut unsent = unsent.lock().unwrap_or_else(|p| p.into_inner());
                    // The queue task ends only with the loop.
                    match synced {
                        Ok(()) => {
                            if unsent.synced() {
                                info!(
                                    "claims in In_Progress/ are synced again; their runs are published"
                                );
                            }
                            drop(tx.send(command));
                        }
                        // Not published: the next comparison of the queue with the vault
                        // (asked for) publishes it again, once its claim is synced.
                        Err(e) => {
                            if let Some(quiet) = unsent.failed(seq, Instant::now()) {
                                let since = if quiet > 0 {
                                    format!(" ({quiet} more failed since the last warning)")
                                } else {
                                    String::new()
                                };
                                warn!(
                                    "cannot sync In_Progress/{name}: {e}; its run is published \
                                     once it can be, tried every second{since}"
                                );
                            }
                            drop(tx.send(Command::Unsent(seq)));
                        }
                    }
                });
            }
            _ => r.send(command),
        }
    }

    /// The message of a run of `e` (in `In_Progress/` as `e.name`, `e.attempt` the run's
    /// attempt); none when its file cannot be read.
    fn task_message(&self, e: &Entry, resumed: bool) -> Option<TaskMessage> {
        let text = match self.dirs.progress.read(&e.name, Some(8 * 1024 * 1024)) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(err) => {
                warn!("cannot read {}: {err}", Folder::InProgress.rel(&e.name));
                return None;
            }
        };
        let handbook = match self
            .dirs
            .root
            .read("Company_Handbook.md", Some(HANDBOOK_MAX))
        {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        // The worker writes the task as `In_Progress/<id>.md` in its scratch folder.
        let task_file = Folder::InProgress.rel(&format!("{}.md", e.id));
        let mut prompt = self.prompt_for(e, &task_file, None);
        if resumed {
            // A worker has no session of an earlier run: the outcome goes with the prompt.
            prompt.push_str(&format!(
                "\n\nThe approval requests drafted for this task were decided:\n{}\nFinish \
                 the task and end with the status line.",
                self.approval_outcome_text(e)
            ));
        }
        Some(TaskMessage {
            v: VERSION,
            task_id: e.id.clone(),
            attempt: e.attempt,
            task: text,
            handbook,
            prompt,
            agent: AgentSpec {
                command: self.s.command.clone(),
                resume: self.s.resume.clone(),
                continue_prompt: prompt::CONTINUE.replace("{task_file}", &task_file),
                verify: self.s.verify.clone(),
                max_iterations: self.s.max_iterations,
                timeout_ms: self.s.timeout.as_millis() as u64,
                kill_after_ms: self.s.kill_after.as_millis() as u64,
                env: BTreeMap::new(),
                runner: match self.s.runner {
                    Runner::Process => None,
                    Runner::Podman => Some(RunnerKind::Podman),
                },
                image: self.s.image.clone(),
            },
            published_at: Utc::now(),
        })
    }

    /// A task found `running` with `run_on: queue` at start: its run is still on the
    /// queue (or lost with Redis's data: published again once the queue answers).
    pub(super) fn adopt_remote(&mut self, e: Entry) -> bool {
        if self.remote.is_none() {
            return false;
        }
        // Resumed after its approvals when every one of them is decided (a run of a task
        // waiting for them does not start).
        let resumed = !e.approvals.is_empty()
            && e.approvals
                .iter()
                .all(|a| gate::locate(|f| self.dirs.of(f), a).is_some_and(|w| w.decided()));
        let Some(r) = &mut self.remote else {
            return false;
        };
        let since = e.started_at.unwrap_or_else(Utc::now);
        r.runs.insert(
            e.id.clone(),
            Run {
                attempt: e.attempt,
                since,
                seq: 0,
                resumed,
                worker: None,
                host: None,
                taken_at: None,
            },
        );
        info!(
            "{} runs on the queue (attempt {}): waiting for its result",
            e.id, e.attempt
        );
        if r.link != Link::Connecting {
            r.send(Command::Check);
        }
        self.tasks.insert(e.id.clone(), e);
        self.snapshot_dirty = true;
        true
    }

    /// An event of the queue tasks.
    pub(super) fn remote_event(&mut self, ev: Event) {
        match ev {
            Event::Setup(why) => {
                warn!("the queue cannot be used: {why}");
                self.needs_setup = Some(task::one_line(&why, 300));
            }
            Event::Unreachable => {
                if let Some(r) = &mut self.remote
                    && r.link != Link::Down
                {
                    r.link = Link::Down;
                    match r.settings.unreachable {
                        QueueUnreachable::Local => info!(
                            "new tasks run on this host until the queue answers (queue_unreachable = \"local\")"
                        ),
                        QueueUnreachable::Wait => info!(
                            "no new task starts until the queue answers (queue_unreachable = \"wait\")"
                        ),
                    }
                }
                self.snapshot_dirty = true;
            }
            Event::Outstanding {
                handled,
                outstanding,
            } => self.reconcile(&handled, &outstanding),
            Event::Results(list) => {
                for inc in list {
                    self.apply(inc);
                }
            }
            Event::Workers(workers, metrics) => self.workers_seen(workers, metrics),
        }
    }

    /// The queue answers: publish again every run it should hold and does not (a publish
    /// not yet handled when Redis was read is on its way).
    fn reconcile(&mut self, handled: &Handled, outstanding: &Outstanding) {
        let missing: Vec<(String, u32, bool, bool)> = {
            let Some(r) = &mut self.remote else { return };
            r.link = Link::Up;
            let mut unsent = r.unsent.lock().unwrap_or_else(|p| p.into_inner());
            r.runs
                .iter()
                .filter(|(id, run)| {
                    handled.covers(run.seq) && !outstanding.contains(id, run.attempt)
                })
                .map(|(id, run)| (id.clone(), run.attempt, run.resumed, unsent.take(run.seq)))
                .collect()
        };
        self.snapshot_dirty = true;
        for (id, attempt, resumed, unsent) in missing {
            let Some(e) = self.tasks.get(&id).cloned() else {
                continue;
            };
            let Some(message) = self.task_message(&e, resumed) else {
                // A file someone removed leaves nothing to publish: its run is forgotten
                // (it held a place of the queue's limit until the loop restarted).
                if self.file_gone(&e) {
                    self.forget_removed(&id, &e.folder.rel(&e.name));
                }
                continue;
            };
            // A run whose claim could not be synced was never sent: tried again, said
            // by the sync's own (rate-limited) warning.
            if !unsent {
                warn!(
                    "{id}: attempt {attempt} is not on the queue (Redis lost it): published again"
                );
            }
            let since = self
                .remote
                .as_ref()
                .and_then(|r| r.runs.get(&id))
                .map_or_else(Utc::now, |r| r.since);
            // Synced first again: the claim of a run whose sync failed is not durable yet.
            let dir = self.synced_first(e.name.clone());
            self.publish(&id, attempt, since, resumed, message, dir);
            if let Some(r) = &mut self.remote
                && !unsent
            {
                r.republished += 1;
            }
        }
    }

    fn workers_seen(&mut self, mut workers: Vec<WorkerInfo>, metrics: QueueMetrics) {
        let now = Utc::now();
        // The registry is written by workers, so untrusted: its names reach the snapshot,
        // `tasks` (a terminal) and /metrics labels as one short printable line each.
        workers.truncate(MAX_WORKERS);
        for w in &mut workers {
            w.name = task::one_line(&w.name, 64);
            w.host = task::one_line(&w.host, 64);
            w.current.truncate(1024);
        }
        workers.retain(|w| !w.name.is_empty());
        let Some(r) = &mut self.remote else { return };
        let mut changed = r.metrics != Some(metrics) || r.workers != workers;
        let mut by_task: HashMap<(&str, u32), (&WorkerInfo, DateTime<Utc>)> = HashMap::new();
        for w in &workers {
            for c in &w.current {
                by_task.insert((c.task_id.as_str(), c.attempt), (w, c.since));
            }
        }
        let mut taken: Vec<(String, String, String)> = Vec::new();
        for (id, run) in r.runs.iter_mut() {
            if let Some((w, since)) = by_task.get(&(id.as_str(), run.attempt))
                && run.worker.as_deref() != Some(w.name.as_str())
            {
                run.worker = Some(w.name.clone());
                run.host = Some(w.host.clone());
                run.taken_at = Some(*since);
                taken.push((id.clone(), w.name.clone(), w.host.clone()));
                changed = true;
            }
        }
        if workers.iter().any(|w| r.alive(w, now)) {
            r.last_worker_seen = workers
                .iter()
                .map(|w| w.last_seen)
                .max()
                .max(r.last_worker_seen);
        }
        r.workers = workers;
        r.metrics = Some(metrics);
        if changed {
            self.snapshot_dirty = true;
        }
        // Where it runs, in the task file too (`tasks show`, a person reading it).
        for (id, worker, host) in taken {
            let Some(e) = self.tasks.get(&id) else {
                continue;
            };
            let (folder, name) = (e.folder, e.name.clone());
            if let Err(err) = self.edit(folder, &name, false, |d| {
                d.set(WORKER, worker.clone());
                d.set(HOST, host.clone());
            }) {
                warn!("cannot record the worker in {}: {err}", folder.rel(&name));
            }
        }
    }

    /// One entry of the results stream (docs/workers.md, "Delivery and completion").
    fn apply(&mut self, inc: Incoming) {
        let Some(r) = &mut self.remote else { return };
        let valid = match inc.result {
            Err(refusal) => {
                r.refused += 1;
                let shown = format!(
                    "{}#{}",
                    refusal.task_id.as_deref().unwrap_or("?"),
                    refusal.attempt.map_or("?".to_string(), |a| a.to_string())
                );
                let accept = match (&refusal.task_id, refusal.attempt) {
                    (Some(t), Some(a)) => fence(a, r.running(t)) == Verdict::Accept,
                    _ => false,
                };
                r.acks.push(inc.id);
                if !accept {
                    warn!("{shown}: {refusal}; not the current attempt, ignored");
                    return;
                }
                let (Some(id), Some(attempt)) = (refusal.task_id.clone(), refusal.attempt) else {
                    return;
                };
                warn!("{shown}: {refusal}; the attempt failed");
                r.runs.remove(&id);
                self.remote_run_event(
                    &id,
                    attempt,
                    RunResult::Failed,
                    None,
                    Some(format!("refused result: {refusal}")),
                );
                self.unsynced.push(Folder::InProgress);
                self.attempt_failed(&id, refusal.to_string(), None);
                return;
            }
            Ok(v) => v,
        };
        let m = &valid.message;
        let id = m.task_id.clone();
        if fence(m.attempt, r.running(&id)) == Verdict::Stale {
            r.stale += 1;
            r.acks.push(inc.id);
            info!(
                "a late result for {id}#{} from {} is not current: discarded",
                m.attempt, m.worker
            );
            return;
        }
        let run = r.runs.remove(&id);
        r.applied += 1;
        r.acks.push(inc.id);
        self.unsynced.push(Folder::InProgress);
        // Someone removed the task's file while it ran elsewhere: the run is recorded (it
        // was paid for), its files are not written (its drafts would ask a person to
        // approve work on a task they removed) and the task is forgotten.
        let gone = self
            .tasks
            .get(&id)
            .filter(|e| self.file_gone(e))
            .map(|e| e.folder.rel(&e.name));
        let written = match gone {
            Some(_) => Ok(Vec::new()),
            None => write_files(self.vault.root(), &valid.files),
        };
        match written {
            Ok(written) => {
                for w in written {
                    if let Written::Conflict(rel) = w {
                        warn!(
                            "{id}: the worker's {rel} differs from the file already there; \
                             the one there is kept"
                        );
                    }
                }
            }
            Err(err) => {
                warn!("{id}: cannot write the result's files: {err}");
                self.remote_run_event(
                    &id,
                    m.attempt,
                    RunResult::Failed,
                    run.as_ref(),
                    Some(format!("cannot write the result's files: {err}")),
                );
                self.attempt_failed(&id, format!("cannot write the result's files: {err}"), None);
                return;
            }
        }
        // Who ran it goes into the task file with its next state (one edit, not two).
        self.stamp = self.tasks.get(&id).map(|e| Stamp {
            folder: e.folder,
            name: e.name.clone(),
            worker: m.worker.clone(),
            host: m.host.clone(),
        });
        info!(
            "{id}: attempt {} ran on {} ({}): {}",
            m.attempt,
            m.worker,
            m.host,
            serde_json::to_value(m.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        let duration = run.as_ref().map_or(Duration::ZERO, |r| {
            (m.finished_at - r.since).to_std().unwrap_or_default()
        });
        self.progress(Progress::Run {
            task: id.clone(),
            iteration: m.iterations.max(1),
            result: m.status,
            duration,
            cost_usd: Some(m.cost_usd),
            turns: Some(m.turns.min(u64::from(u32::MAX)) as u32),
            error: m.reason.clone(),
        });
        if let Some(rel) = gone {
            self.forget_removed(&id, &rel);
            return;
        }
        let end = AttemptEnd {
            result: m.status,
            error: m.reason.clone(),
            session_id: m.session_id.clone(),
            cost_usd: m.cost_usd,
            turns: m.turns,
            iterations: m.iterations,
            setup: None,
        };
        self.attempt_ended(&id, end);
        self.stamp = None;
    }

    fn remote_run_event(
        &mut self,
        id: &str,
        attempt: u32,
        result: RunResult,
        run: Option<&Run>,
        error: Option<String>,
    ) {
        let now = Utc::now();
        let mut ev = TaskEvent::new(now, EventKind::Run, id);
        ev.attempt = Some(attempt);
        ev.result = Some(result);
        ev.duration_ms = run.map(|r| (now - r.since).num_milliseconds().max(0) as u64);
        ev.error = error;
        self.event(ev);
    }

    /// After a flush: the results applied since the last one wait for the sync it asked
    /// for (their files and states are in it); acknowledge every result whose sync is done.
    pub(super) fn ack_applied(&mut self) {
        let asked = self.sync_asked;
        let done = self.synced_upto();
        let not_asked = !self.unsynced.is_empty();
        let Some(r) = &mut self.remote else { return };
        if !not_asked {
            r.acks_waiting.extend(
                std::mem::take(&mut r.acks)
                    .into_iter()
                    .map(|id| (asked, id)),
            );
        }
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut r.acks_waiting)
            .into_iter()
            .partition(|(n, _)| *n <= done);
        r.acks_waiting = wait;
        for (_, id) in ready {
            r.send(Command::Ack(id));
        }
    }

    /// Whether acknowledgements wait for a sync to complete.
    pub(super) fn acks_waiting(&self) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| !r.acks_waiting.is_empty())
    }
}

/// A failed call: an outage is told to the loop once (and logged once), a set-up problem
/// (a login or ACL Redis refuses) stops new work with exit 78, an error answer is logged.
fn failed(e: &QueueError, reach: &Reachability, events: &mpsc::UnboundedSender<Event>) {
    match e {
        QueueError::Setup(why) => {
            let _ = events.send(Event::Setup(why.clone())); // the loop may have stopped
        }
        _ if e.is_unreachable() && !reach.is_down() => {
            let _ = events.send(Event::Unreachable); // as above
        }
        _ => {}
    }
    reach.failed(e);
}

/// The queue task: see the module documentation.
async fn queue_task(
    url: String,
    credentials: Credentials,
    claim_timeout: Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let reach = Reachability::default();
    let shown = redacted(&url);
    let mut client = loop {
        match QueueClient::connect(&url, &credentials).await {
            Ok(c) => break c,
            Err(e) => {
                failed(&e, &reach, &events);
                if matches!(e, QueueError::Setup(_)) {
                    return;
                }
                // Publishes wait in the channel; reconciling sends what Redis lacks.
                tokio::time::sleep(CHECK_EVERY).await;
                if events.is_closed() {
                    return;
                }
            }
        }
    };
    tokio::spawn(reader(client.clone(), reach.clone(), events.clone()));
    let mut run_id: Option<String> = None;
    // The publishes handled (they arrive out of order).
    let mut sent = Handled::default();
    let mut must_reconcile = true;
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_workers: Option<Instant> = None;
    let mut told_settings = false;
    loop {
        let command = tokio::select! {
            c = commands.recv() => match c {
                None => return,
                Some(c) => Some(c),
            },
            _ = check.tick() => None,
        };
        // A check asked for, or a command that failed: compare the queue with the vault.
        let mut take = async |c: Command| match c {
            Command::Check => true,
            Command::Unsent(seq) => {
                sent.mark(seq);
                true
            }
            c => match handle(&mut client, c, &mut sent).await {
                Ok(()) => false,
                Err(e) => {
                    failed(&e, &reach, &events);
                    true
                }
            },
        };
        if let Some(c) = command {
            must_reconcile |= take(c).await;
            continue;
        }
        // Commands sent before this check are handled first, so that `sent` covers them.
        while let Ok(c) = commands.try_recv() {
            must_reconcile |= take(c).await;
        }
        match client.server_run_id().await {
            Ok(id) => {
                if run_id.as_deref().is_some_and(|old| old != id) {
                    warn!(
                        "the queue at {shown} restarted (a new server run id): checking what it lost"
                    );
                    must_reconcile = true;
                }
                if must_reconcile || reach.is_down() || run_id.is_none() {
                    let r = async {
                        client.ensure_groups().await?;
                        // Again after a Redis that lost its data: workers follow it. Not
                        // needed for the loop's own work (a user's ACL may lack the key).
                        match client.publish_settings(claim_timeout).await {
                            Err(e) if e.is_unreachable() => return Err(e),
                            Err(e) if !told_settings => {
                                told_settings = true;
                                warn!(
                                    "cannot tell the workers the claim timeout ({e}); give \
                                     them --claim-timeout"
                                );
                            }
                            _ => {}
                        }
                        client.outstanding().await
                    }
                    .await;
                    match r {
                        Ok(outstanding) => {
                            run_id = Some(id);
                            must_reconcile = false;
                            reach.ok(&shown);
                            let ev = Event::Outstanding {
                                handled: sent.clone(),
                                outstanding,
                            };
                            if events.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(e) => failed(&e, &reach, &events),
                    }
                }
            }
            Err(e) => {
                failed(&e, &reach, &events);
                must_reconcile = true;
            }
        }
        if !must_reconcile && last_workers.is_none_or(|t| t.elapsed() >= WORKERS_EVERY) {
            last_workers = Some(Instant::now());
            let r =
                async { Ok::<_, QueueError>((client.workers().await?, client.metrics().await?)) }
                    .await;
            match r {
                Ok((w, m)) => {
                    if events.send(Event::Workers(w, m)).is_err() {
                        return;
                    }
                }
                Err(e) => failed(&e, &reach, &events),
            }
        }
    }
}

/// One command of the loop. A failed publish is sent again by the next reconciliation; a
/// lost acknowledgement is harmless (the entry is read again at the next start, and
/// fenced off then).
async fn handle(
    client: &mut QueueClient,
    c: Command,
    sent: &mut Handled,
) -> Result<(), QueueError> {
    match c {
        Command::Publish { seq, message } => {
            sent.mark(seq);
            client.publish(&message).await.map(|_| ())
        }
        Command::Ack(id) => client.ack_result(&id).await,
        Command::Check | Command::Unsent(_) => Ok(()),
    }
}

/// The reader: results as they arrive (the loop's own unacknowledged ones first).
async fn reader(
    mut client: QueueClient,
    reach: Reachability,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        match client.read_results(READ_COUNT, READ_BLOCK).await {
            Ok(list) if list.is_empty() => {}
            Ok(list) => {
                if events.send(Event::Results(list)).is_err() {
                    return;
                }
            }
            Err(e) => {
                // An outage is the queue task's to notice and say (its connection is
                // checked every second); this connection may also report a failed
                // reconnection once after the queue is back.
                if !e.is_unreachable() {
                    failed(&e, &reach, &events);
                }
                tokio::time::sleep(CHECK_EVERY).await;
            }
        }
        if events.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command as Process, Stdio};

    /// A redis-server of its own on a free loopback port, without persistence; none
    /// (said on stderr) where the binary is missing.
    struct Server {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Server {
        fn start() -> Option<Server> {
            let dir = tempfile::tempdir().ok()?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let child = match Process::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("SKIPPED: redis-server cannot be started ({e})");
                    return None;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not answer");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Server {
                child,
                port,
                _dir: dir,
            })
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn message(task: &str) -> Box<TaskMessage> {
        Box::new(TaskMessage {
            v: VERSION,
            task_id: task.into(),
            attempt: 1,
            task: format!("# {task}\n"),
            handbook: String::new(),
            prompt: "do it".into(),
            agent: AgentSpec {
                command: vec!["agent".into(), "{prompt}".into()],
                resume: vec![],
                continue_prompt: "go on".into(),
                verify: None,
                max_iterations: 1,
                timeout_ms: 60_000,
                kill_after_ms: 1000,
                env: BTreeMap::new(),
                runner: None,
                image: None,
            },
            published_at: Utc::now(),
        })
    }

    /// The next comparison the queue task sends (other events skipped).
    async fn next_outstanding(
        events: &mut mpsc::UnboundedReceiver<Event>,
    ) -> (Handled, Outstanding) {
        let wait = async {
            loop {
                match events.recv().await {
                    Some(Event::Outstanding {
                        handled,
                        outstanding,
                    }) => return (handled, outstanding),
                    Some(_) => {}
                    None => panic!("the queue task ended"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("no comparison within 20 s")
    }

    /// Publishes reach the queue task out of their order (each waits for its own sync on
    /// a blocking thread). A comparison must count every run already sent as sent, or the
    /// loop never publishes again a run Redis lost: here seq 2 is sent before seq 1, and
    /// the comparison after both must cover both.
    #[tokio::test(flavor = "current_thread")]
    async fn a_comparison_covers_every_publish_sent_whatever_their_order() {
        let Some(server) = Server::start() else {
            return;
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let url = format!("redis://127.0.0.1:{}/0", server.port);
        tokio::spawn(queue_task(
            url,
            Credentials::default(),
            Duration::from_secs(3),
            cmd_rx,
            ev_tx,
        ));
        let (handled, _) = next_outstanding(&mut ev_rx).await;
        assert!(handled.covers(0) && !handled.covers(1));
        for (seq, task) in [(2, "T2"), (1, "T1")] {
            let _ = cmd_tx.send(Command::Publish {
                seq,
                message: message(task),
            });
        }
        let _ = cmd_tx.send(Command::Check);
        let (handled, outstanding) = next_outstanding(&mut ev_rx).await;
        assert!(outstanding.contains("T1", 1) && outstanding.contains("T2", 1));
        assert!(
            handled.covers(1) && handled.covers(2),
            "the comparison covers only {handled:?}"
        );
        // 4 sent while 3 still waits for its sync: 3 is on its way, not lost.
        let _ = cmd_tx.send(Command::Publish {
            seq: 4,
            message: message("T4"),
        });
        let _ = cmd_tx.send(Command::Check);
        let (handled, outstanding) = next_outstanding(&mut ev_rx).await;
        assert!(outstanding.contains("T4", 1));
        assert!(handled.covers(4) && !handled.covers(3), "{handled:?}");
        // 3's sync failed: the comparison it asks for counts it, and Redis lacks it.
        let _ = cmd_tx.send(Command::Unsent(3));
        let (handled, outstanding) = next_outstanding(&mut ev_rx).await;
        assert!(handled.covers(3) && !outstanding.contains("T3", 1));
        assert!(!handled.covers(5));
    }

    #[test]
    fn handled_publishes_are_counted_whatever_their_order() {
        let mut h = Handled::default();
        assert!(h.covers(0) && !h.covers(1));
        for seq in [3, 1, 5] {
            h.mark(seq);
        }
        let covered: Vec<u64> = (0..7).filter(|s| h.covers(*s)).collect();
        assert_eq!(covered, [0, 1, 3, 5]);
        h.mark(2);
        h.mark(4);
        assert_eq!(
            h,
            Handled {
                upto: 5,
                above: BTreeSet::new()
            }
        );
        h.mark(5); // again: no change
        assert_eq!(h.upto, 5);
        assert!(!h.covers(6));
    }

    #[test]
    fn claims_that_keep_failing_to_sync_are_said_once_a_minute_and_their_end_once() {
        let mut u = Unsent::default();
        let t0 = Instant::now();
        // The first failure is said; each retry a second apart is not, for a minute.
        assert_eq!(u.failed(1, t0), Some(0));
        let mut said = Vec::new();
        for (i, seq) in (2..=130).enumerate() {
            assert!(u.take(seq - 1), "publish {} was unsent", seq - 1);
            let at = t0 + Duration::from_secs(i as u64 + 1);
            if let Some(quiet) = u.failed(seq, at) {
                said.push((i + 1, quiet));
            }
        }
        // Said again at 60 s and 120 s, each with the failures left unsaid before it.
        assert_eq!(said, [(60, 59), (120, 59)]);
        assert!(!u.synced(), "a publish still unsent");
        assert!(u.take(130) && !u.take(130));
        assert!(u.synced(), "the end of the failures is said");
        assert!(!u.synced(), "once");
        // A later failure is said at once again.
        assert_eq!(u.failed(131, t0 + Duration::from_secs(200)), Some(0));
    }
}
