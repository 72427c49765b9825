//! `ai-employee worker`: takes runs from the queue's tasks stream (consumer group
//! `workers`), runs the agent for each in a fresh scratch folder seeded from the message,
//! publishes the result, and only then acknowledges the entry.
//!
//! - Up to `concurrency` runs at once; each through the task loop's own runner
//!   (`agent::runner`: its own process group, the timeout, SIGTERM then SIGKILL).
//! - Runs in hand are kept from looking idle ([`QueueClient::refresh_claims`]) at every
//!   heartbeat; entries idle longer than `claim_timeout` (their worker died or is stalled)
//!   are taken over (`XAUTOCLAIM`). At start, the entries this worker's name took before
//!   (a crash) are run again at once.
//! - The heartbeat: its entry in the registry (name, host, concurrency, current runs,
//!   last seen), every [`heartbeat_every`]. Under `ai-employee supervise`, also the
//!   supervisor's heartbeat file ([`Heartbeat`]), from the same loop.
//! - SIGTERM / SIGINT: no new run; the running agents are stopped and their entries
//!   released (made to look idle) so another worker takes them at its next sweep.
//! - Redis unreachable: said once, retried every second, said again once it answers.
//! - The agent cannot run at all (not installed, not logged in): the entry is released,
//!   and the worker exits 78 (needs setup).
//! - Only the programs of `--allow-program` may be run (the message names the argv
//!   template): whoever can write to the stream cannot make a worker run anything else.
//! - `--runner podman`: every process of every run in a fresh container with only the
//!   scratch folder mounted (`agent::container`); checked at start (`podman image
//!   exists`), containers a killed earlier run of this worker left are removed. A message
//!   asking for podman on a worker without it is refused.
//!
//! A worker holds no credential of the vault and sends nothing: the agent's drafts go back
//! to the vault, where a person approves them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{Dir, How, Kind};
use ai_employee_vault::watcher::Heartbeat;
use chrono::Utc;
use tokio::sync::{Notify, mpsc, watch};

use super::client::{
    Credentials, CurrentTask, QueueClient, QueueError, Reachability, TaskDelivery, WorkerInfo,
};
use super::validate::{Limits, confine};
use super::wire::{FileOut, ResultMessage, RunnerKind, TaskMessage, VERSION};
use crate::agent::container::{self, Contained, Podman, User};
use crate::agent::events::RunResult;
use crate::agent::runner::{self, ArgValues, AttemptSpec};

/// What `ai-employee worker` was told.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub credentials: Credentials,
    /// The consumer name in the group and the registry (default: the host name).
    pub name: String,
    pub host: String,
    pub concurrency: u32,
    /// Entries idle longer than this are taken over from their worker.
    pub claim_timeout: Duration,
    /// `claim_timeout` was not given: follow the loop's (`<prefix>:settings`), this
    /// value until the loop has said it.
    pub follow_loop: bool,
    /// Scratch folders (`runs/`) and the agents' logs (`logs/`).
    pub work_dir: PathBuf,
    /// Programs the message's command may name (a bare name matches the program's file
    /// name; a path matches exactly).
    pub allow: Vec<String>,
    /// The key prefix (`ai-employee`).
    pub prefix: String,
    /// Keep each run's scratch folder (to look at what the agent did).
    pub keep_scratch: bool,
    /// `--runner podman`: every run in a container, whatever the message says.
    pub podman: Option<Podman>,
}

/// Why a worker stopped other than by a stop request.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The set-up is wrong (the URL, the credentials, the agent): exit 78.
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Failed(String),
}

/// How often a worker writes its heartbeat and refreshes its runs' claims: a third of
/// the claim timeout, at most every 5 s.
pub fn heartbeat_every(claim_timeout: Duration) -> Duration {
    (claim_timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// How long one read of the tasks stream waits (so a stop or a heartbeat waits no longer).
const READ_BLOCK: Duration = Duration::from_secs(1);

/// A run in hand.
struct Running {
    task_id: String,
    attempt: u32,
    since: chrono::DateTime<Utc>,
    abort: watch::Sender<bool>,
}

type Table = Arc<Mutex<HashMap<String, Running>>>;

/// What the runs share with the main loop.
#[derive(Clone)]
struct Ctx {
    opts: Options,
    running: Table,
    /// A run ended (a slot is free).
    freed: Arc<Notify>,
    /// A run found that the agent cannot run here.
    setup_tx: mpsc::UnboundedSender<String>,
    reach: Reachability,
    stop: watch::Receiver<bool>,
}

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
    // A poisoned table only means a run's task panicked; its content is still right.
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The claim timeout a worker uses: its `--claim-timeout`, or the loop's `claim_timeout`
/// (which every worker's must match) followed when it was not given.
struct ClaimTimeout {
    now: Duration,
    follow: bool,
    told_mismatch: bool,
    told_unreadable: bool,
}

impl ClaimTimeout {
    fn new(now: Duration, follow: bool) -> ClaimTimeout {
        ClaimTimeout {
            now,
            follow,
            told_mismatch: false,
            told_unreadable: false,
        }
    }

    /// What reading the loop's value at a heartbeat gave; whether `now` changed. Only an
    /// unreachable queue is an error: the value is not needed for the work itself (a
    /// user's ACL may lack its key), and a differing flag is said once.
    fn heard(&mut self, loops: Result<Option<Duration>, QueueError>) -> Result<bool, QueueError> {
        let fmt = ai_employee_vault::units::format_duration;
        let t = match loops {
            Ok(Some(t)) if t != self.now => t,
            Ok(_) => return Ok(false),
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                if !self.told_unreadable {
                    self.told_unreadable = true;
                    tracing::warn!(
                        "cannot read the loop's claim timeout ({e}); keeping {}",
                        fmt(self.now)
                    );
                }
                return Ok(false);
            }
        };
        if self.follow {
            tracing::info!(
                "claim timeout {} (the loop's [agent] claim_timeout)",
                fmt(t)
            );
            self.now = t;
            return Ok(true);
        }
        if !self.told_mismatch {
            self.told_mismatch = true;
            tracing::warn!(
                "--claim-timeout {} differs from the loop's claim_timeout {}: runs of a \
                 stalled worker are taken over after different times",
                fmt(self.now),
                fmt(t)
            );
        }
        Ok(false)
    }
}

/// Run the worker until `stop` turns true (Ok) or it cannot go on (Err).
pub async fn run(opts: Options, mut stop: watch::Receiver<bool>) -> Result<(), WorkerError> {
    for sub in ["runs", "logs"] {
        let p = opts.work_dir.join(sub);
        std::fs::create_dir_all(&p)
            .map_err(|e| WorkerError::Setup(format!("cannot create {}: {e}", p.display())))?;
    }
    if let Some(p) = &opts.podman {
        check_podman(p).await.map_err(WorkerError::Setup)?;
        sweep(p, &opts.name).await;
    }
    let reach = Reachability::default();
    let mut heartbeat = Heartbeat::from_env(None);
    let Some(mut client) = connect(&opts, &reach, &mut stop, &mut heartbeat).await? else {
        return Ok(());
    };
    tracing::info!(
        "worker {} on {} takes runs from {} ({} at once, claim timeout {}{})",
        opts.name,
        opts.host,
        client.url(),
        opts.concurrency,
        ai_employee_vault::units::format_duration(opts.claim_timeout),
        if opts.follow_loop {
            " until the loop's is read"
        } else {
            ""
        }
    );
    if let Some(p) = &opts.podman {
        tracing::info!(
            "every run in a container: {} {} run … {} (network {}, user {})",
            p.program,
            p.global_args.join(" "),
            p.image,
            p.network.as_deref().unwrap_or("podman's default"),
            match p.user {
                User::KeepId => "--userns=keep-id".to_string(),
                User::Id { uid, gid } => format!("{uid}:{gid}"),
            }
        );
    }
    let running: Table = Arc::new(Mutex::new(HashMap::new()));
    let freed = Arc::new(Notify::new());
    let (setup_tx, mut setup_rx) = mpsc::unbounded_channel::<String>();
    let ctx = Ctx {
        opts: opts.clone(),
        running: running.clone(),
        freed: freed.clone(),
        setup_tx,
        reach: reach.clone(),
        stop: stop.clone(),
    };
    let started_at = Utc::now();
    let mut claim = ClaimTimeout::new(opts.claim_timeout, opts.follow_loop);
    let mut beat_every = heartbeat_every(claim.now);
    let mut next_beat = Instant::now();
    let mut next_reclaim = Instant::now();
    let mut own_backlog = true;
    let mut fatal = None;
    while !*stop.borrow() {
        heartbeat.beat();
        if let Ok(why) = setup_rx.try_recv() {
            fatal = Some(why);
            break;
        }
        if reach.is_down() {
            match client.ping_all().await {
                Ok(()) => reach.ok(client.url()),
                Err(e) => {
                    reach.failed(&e);
                    pause(Duration::from_secs(1), &mut stop).await;
                    continue;
                }
            }
        }
        let step: Result<(), QueueError> = async {
            if Instant::now() >= next_beat {
                if claim.heard(client.loop_claim_timeout().await)? {
                    beat_every = heartbeat_every(claim.now);
                }
                next_beat = Instant::now() + beat_every;
                beat(&mut client, &opts, &running, started_at).await?;
            }
            let free = (opts.concurrency as usize).saturating_sub(lock(&running).len());
            if free == 0 {
                let wait = next_beat.saturating_duration_since(Instant::now());
                let wait = heartbeat.next_in().map_or(wait, |b| b.min(wait));
                tokio::select! {
                    _ = freed.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                return Ok(());
            }
            let mut got: Vec<TaskDelivery> = Vec::new();
            if own_backlog {
                got = client.own_pending_tasks(&opts.name, free).await?;
                if got.len() < free {
                    own_backlog = false;
                }
                if !got.is_empty() {
                    tracing::info!("taking back {} run(s) this worker had before", got.len());
                }
            }
            if got.is_empty() && Instant::now() >= next_reclaim {
                next_reclaim = Instant::now() + beat_every;
                got = client.reclaim(&opts.name, claim.now, free).await?;
                for d in &got {
                    tracing::info!(
                        "took over entry {} ({}) from a worker silent for over {}",
                        d.id,
                        describe(d),
                        ai_employee_vault::units::format_duration(claim.now)
                    );
                }
            }
            if got.is_empty() {
                got = client.take_tasks(&opts.name, free, READ_BLOCK).await?;
            }
            for d in got {
                start(d, &client, &ctx).await?;
            }
            Ok(())
        }
        .await;
        match step {
            Ok(()) => {}
            Err(QueueError::Setup(why)) => return Err(WorkerError::Setup(why)),
            Err(e) => {
                reach.failed(&e);
                pause(Duration::from_secs(1), &mut stop).await;
            }
        }
    }
    // Stop: the agents are stopped, their entries released for another worker.
    let held: Vec<String> = {
        let table = lock(&running);
        for r in table.values() {
            let _ = r.abort.send(true); // a run that just ended needs no abort
        }
        table.keys().cloned().collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lock(&running).is_empty() && Instant::now() < deadline {
        heartbeat.beat();
        let _ = tokio::time::timeout(Duration::from_millis(200), freed.notified()).await;
    }
    if !held.is_empty() {
        tracing::info!(
            "stopping: {} run(s) abandoned, released for another worker",
            held.len()
        );
        if let Err(e) = client
            .release(&opts.name, &held, claim.now + Duration::from_secs(1))
            .await
        {
            tracing::warn!(
                "could not release the abandoned runs ({e}); they are taken over after the claim timeout"
            );
        }
    }
    if let Err(e) = client.remove_worker(&opts.name).await {
        tracing::debug!("could not leave the registry: {e}");
    }
    match fatal {
        Some(why) => Err(WorkerError::Setup(why)),
        None => Ok(()),
    }
}

/// `podman image exists IMAGE`: podman runs here and the image is on this host (runs use
/// `--pull=never`).
async fn check_podman(p: &Podman) -> Result<(), String> {
    let mut argv = vec![p.program.clone()];
    argv.extend(p.global_args.iter().cloned());
    argv.extend(["image".to_string(), "exists".to_string(), p.image.clone()]);
    let out = crate::process::job::output(&argv, Duration::from_secs(60))
        .await
        .map_err(|e| format!("cannot run {:?} (--podman): {e}", p.program))?;
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(format!(
            "the image {:?} is not on this host (podman pull or podman import it first: runs \
             never pull)",
            p.image
        )),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "podman fails here ({}): {}",
                out.status,
                crate::agent::task::one_line(err.trim(), 300)
            ))
        }
    }
}

/// Remove the containers an earlier run of this worker (same `--name`) left behind: it was
/// killed (SIGKILL, a crash) while runs were in containers, which podman's monitor keeps
/// running. Their runs are taken back or over and run again anyway.
async fn sweep(p: &Podman, name: &str) {
    let timeout = Duration::from_secs(60);
    let ids: Vec<String> = match crate::process::job::output(&p.left_by_argv(name), timeout).await {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            tracing::warn!(
                "cannot list the containers this worker left: {}",
                crate::agent::task::one_line(err.trim(), 300)
            );
            return;
        }
        Err(e) => {
            tracing::warn!("cannot list the containers this worker left: {e}");
            return;
        }
    };
    if ids.is_empty() {
        return;
    }
    match crate::process::job::output(&p.rm_argv(&ids), timeout).await {
        Ok(out) if out.status.success() => tracing::info!(
            "removed {} container(s) an earlier run of worker {name} left",
            ids.len()
        ),
        Ok(out) => tracing::warn!(
            "cannot remove the containers this worker left: {}",
            crate::agent::task::one_line(String::from_utf8_lossy(&out.stderr).trim(), 300)
        ),
        Err(e) => tracing::warn!("cannot remove the containers this worker left: {e}"),
    }
}

/// Connect, retrying every second while Redis is unreachable (said once); None when asked
/// to stop meanwhile.
async fn connect(
    opts: &Options,
    reach: &Reachability,
    stop: &mut watch::Receiver<bool>,
    heartbeat: &mut Heartbeat,
) -> Result<Option<QueueClient>, WorkerError> {
    loop {
        if *stop.borrow() {
            return Ok(None);
        }
        heartbeat.beat();
        let r = async {
            let mut c =
                QueueClient::connect_with(&opts.url, &opts.credentials, &opts.prefix).await?;
            c.ensure_groups().await?;
            Ok::<_, QueueError>(c)
        }
        .await;
        match r {
            Ok(c) => {
                reach.ok(c.url());
                return Ok(Some(c));
            }
            Err(QueueError::Setup(why)) => return Err(WorkerError::Setup(why)),
            Err(e) => {
                reach.failed(&e);
                pause(Duration::from_secs(1), stop).await;
            }
        }
    }
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

fn describe(d: &TaskDelivery) -> String {
    match &d.message {
        Ok(m) => format!("task {}, attempt {}", m.task_id, m.attempt),
        Err(r) => format!("task {:?}", r.task_id.as_deref().unwrap_or("?")),
    }
}

/// The registry entry, and the claims of the runs in hand refreshed.
async fn beat(
    client: &mut QueueClient,
    opts: &Options,
    running: &Table,
    started_at: chrono::DateTime<Utc>,
) -> Result<(), QueueError> {
    let (ids, current): (Vec<String>, Vec<CurrentTask>) = lock(running)
        .iter()
        .map(|(id, r)| {
            (
                id.clone(),
                CurrentTask {
                    task_id: r.task_id.clone(),
                    attempt: r.attempt,
                    since: r.since,
                },
            )
        })
        .unzip();
    let lost = client.refresh_claims(&opts.name, &ids).await?;
    for id in lost {
        tracing::warn!(
            "entry {id} was taken over by another worker while this one was silent; its \
             result will be discarded by the task loop"
        );
    }
    client
        .heartbeat(&WorkerInfo {
            name: opts.name.clone(),
            host: opts.host.clone(),
            concurrency: opts.concurrency,
            current,
            started_at,
            last_seen: Utc::now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
}

/// Start one run (or answer a refused message).
async fn start(d: TaskDelivery, client: &QueueClient, ctx: &Ctx) -> Result<(), QueueError> {
    let opts = &ctx.opts;
    let msg = match d.message {
        Ok(m) => m,
        Err(refusal) => {
            tracing::warn!("entry {}: {refusal}", d.id);
            let mut c = client.clone();
            if let (Some(task_id), Some(attempt)) = (refusal.task_id.clone(), refusal.attempt) {
                let mut r = result_for(opts, &task_id, attempt);
                r.status = RunResult::Failed;
                r.reason = Some(format!("the worker refused the task message: {refusal}"));
                c.publish_result(&r).await?;
            }
            return c.ack_task(&d.id).await;
        }
    };
    let (abort_tx, abort_rx) = watch::channel(false);
    lock(&ctx.running).insert(
        d.id.clone(),
        Running {
            task_id: msg.task_id.clone(),
            attempt: msg.attempt,
            since: Utc::now(),
            abort: abort_tx,
        },
    );
    tracing::info!(
        "running task {} (attempt {}, entry {})",
        msg.task_id,
        msg.attempt,
        d.id
    );
    let Ctx {
        opts,
        running,
        freed,
        setup_tx,
        reach,
        mut stop,
    } = ctx.clone();
    let mut client = client.clone();
    tokio::spawn(async move {
        let id = d.id;
        let outcome = run_one(&opts, &msg, abort_rx).await;
        match outcome {
            Outcome::Answer(result) => {
                // Published, then acknowledged: a crash between the two runs it again
                // (at least once); the loop's fencing keeps the completion to one.
                loop {
                    let r = async {
                        client.publish_result(&result).await?;
                        client.ack_task(&id).await
                    }
                    .await;
                    match r {
                        Ok(()) => {
                            tracing::info!(
                                "task {} (attempt {}): {:?}, {} file(s) returned",
                                msg.task_id,
                                msg.attempt,
                                result.status,
                                result.files.len()
                            );
                            break;
                        }
                        Err(e) => {
                            reach.failed(&e);
                            if *stop.borrow() {
                                break;
                            }
                            pause(Duration::from_secs(1), &mut stop).await;
                        }
                    }
                }
            }
            Outcome::NeedsSetup(why) => {
                tracing::error!("the agent cannot run on this worker: {why}");
                let _ = setup_tx.send(why); // the main loop is gone only when stopping
                // Released for another worker when the main loop stops.
                freed.notify_one();
                return;
            }
            Outcome::Abandoned => {}
        }
        lock(&running).remove(&id);
        freed.notify_one();
    });
    Ok(())
}

enum Outcome {
    Answer(Box<ResultMessage>),
    NeedsSetup(String),
    Abandoned,
}

fn result_for(opts: &Options, task_id: &str, attempt: u32) -> ResultMessage {
    ResultMessage {
        v: VERSION,
        task_id: task_id.to_string(),
        attempt,
        worker: opts.name.clone(),
        host: opts.host.clone(),
        status: RunResult::Failed,
        reason: None,
        cost_usd: 0.0,
        turns: 0,
        session_id: None,
        iterations: 0,
        files: Vec::new(),
        finished_at: Utc::now(),
    }
}

/// Whether `program` (the filled command's first argument) may run here.
pub fn allowed(program: &str, allow: &[String]) -> bool {
    let base = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    allow.iter().any(|a| {
        if a.contains('/') {
            a == program
        } else {
            a == program || (!program.contains('/') && a == base)
        }
    })
}

async fn run_one(opts: &Options, msg: &TaskMessage, abort: watch::Receiver<bool>) -> Outcome {
    let fail = |reason: String| {
        let mut r = result_for(opts, &msg.task_id, msg.attempt);
        r.reason = Some(crate::agent::task::one_line(&reason, 1000));
        Outcome::Answer(Box::new(r))
    };
    if msg.agent.runner == Some(RunnerKind::Podman) && opts.podman.is_none() {
        return fail(format!(
            "the task loop asks for the agent in a container (runner = \"podman\"), but worker \
             {} runs agents as plain processes (start one with --runner podman --image IMAGE)",
            opts.name
        ));
    }
    let scratch = match seed(opts, msg) {
        Ok(s) => s,
        Err(e) => return fail(format!("the worker could not prepare the run: {e}")),
    };
    let contained = match &opts.podman {
        None => None,
        Some(p) => {
            if let Some(asked) = msg.agent.image.as_deref().filter(|i| *i != p.image) {
                tracing::info!(
                    "task {}: the loop names image {asked:?}; this worker runs its own {:?}",
                    msg.task_id,
                    p.image
                );
            }
            if let Err(why) = container::mountable(&scratch).and_then(|()| give(&scratch, p)) {
                cleanup(opts, &scratch);
                return fail(format!("the worker could not prepare the container: {why}"));
            }
            Some(Contained::new(
                p.clone(),
                &opts.name,
                &msg.task_id,
                msg.attempt,
            ))
        }
    };
    let values = ArgValues {
        task: msg.task_id.clone(),
        task_file: Folder::InProgress.rel(&format!("{}.md", msg.task_id)),
        vault: scratch.display().to_string(),
    };
    let argv = runner::fill(&msg.agent.command, &values, &msg.prompt, "");
    let program = argv.first().cloned().unwrap_or_default();
    if !allowed(&program, &opts.allow) {
        cleanup(opts, &scratch);
        return fail(format!(
            "the program {program:?} is not allowed on worker {} (its --allow-program)",
            opts.name
        ));
    }
    if let Some(v) = &msg.agent.verify {
        let program = runner::fill(v, &values, "", "")
            .into_iter()
            .next()
            .unwrap_or_default();
        if !allowed(&program, &opts.allow) {
            cleanup(opts, &scratch);
            return fail(format!(
                "the verify program {program:?} is not allowed on worker {} (its \
                 --allow-program)",
                opts.name
            ));
        }
    }
    let spec = AttemptSpec {
        task: msg.task_id.clone(),
        argv,
        command: msg.agent.command.clone(),
        resume: msg.agent.resume.clone(),
        values,
        continue_prompt: msg.agent.continue_prompt.clone(),
        verify: msg.agent.verify.clone(),
        max_iterations: msg.agent.max_iterations,
        cwd: scratch.clone(),
        env: msg.agent.env.clone(),
        log: opts
            .work_dir
            .join("logs")
            .join(format!("{}.log", msg.task_id)),
        timeout: Duration::from_millis(msg.agent.timeout_ms),
        kill_after: Duration::from_millis(msg.agent.kill_after_ms),
        dry_run: false,
        container: contained,
    };
    // The runner's progress reports are for the task loop's records; none here.
    let (progress, _) = mpsc::unbounded_channel();
    let end = runner::attempt(spec, progress, abort).await;
    match end.result {
        RunResult::NeedsSetup => {
            cleanup(opts, &scratch);
            return Outcome::NeedsSetup(
                end.setup
                    .or(end.error)
                    .unwrap_or_else(|| "the agent cannot run".into()),
            );
        }
        RunResult::Interrupted => {
            cleanup(opts, &scratch);
            return Outcome::Abandoned;
        }
        _ => {}
    }
    let mut r = result_for(opts, &msg.task_id, msg.attempt);
    r.status = end.result;
    r.reason = end.error.map(|e| crate::agent::task::one_line(&e, 1000));
    r.cost_usd = if end.cost_usd.is_finite() && end.cost_usd >= 0.0 {
        end.cost_usd
    } else {
        0.0
    };
    r.turns = end.turns;
    r.session_id = end.session_id;
    r.iterations = end.iterations;
    match collect(&scratch, &Limits::default()) {
        Ok(files) => r.files = files,
        Err(why) => {
            r.status = RunResult::Failed;
            r.reason = Some(why);
        }
    }
    cleanup(opts, &scratch);
    r.finished_at = Utc::now();
    Outcome::Answer(Box::new(r))
}

/// A fresh scratch folder: `In_Progress/<task>.md`, `Company_Handbook.md`, empty `Plans/`
/// and `Pending_Approval/`.
fn seed(opts: &Options, msg: &TaskMessage) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let runs = opts.work_dir.join("runs");
    let mut n = 0u32;
    let scratch = loop {
        let p = runs.join(format!(
            "{}-a{}-{}-{n}",
            msg.task_id,
            msg.attempt,
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => break p,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let root = Dir::open(&scratch)?;
    for f in [Folder::InProgress, Folder::Plans, Folder::PendingApproval] {
        root.make_folder(f.name(), false)?;
    }
    // Written plainly (O_EXCL, no temp file, no fsync): the folder is new and nothing
    // reads it before the agent starts; a run cut off by a crash is run again from the
    // message in a fresh folder, so durability buys nothing here (the fsyncs were a
    // quarter of a worker's CPU).
    let write = |dir: &Dir, name: String, bytes: &[u8]| -> std::io::Result<()> {
        use std::io::Write;
        dir.file(name, How::create_new(0o644))?.write_all(bytes)
    };
    write(
        &root.folder(Folder::InProgress.name())?,
        format!("{}.md", msg.task_id),
        msg.task.as_bytes(),
    )?;
    write(
        &root,
        "Company_Handbook.md".to_string(),
        msg.handbook.as_bytes(),
    )?;
    Ok(scratch)
}

/// A worker running as root with `--user UID:GID`: the scratch folder and what was seeded
/// in it are given to that user, so the agent can write there (rootless, podman maps the
/// user: nothing to do). The folder is new and only this worker has written in it, so
/// there is no link to follow.
fn give(scratch: &Path, p: &Podman) -> Result<(), String> {
    let User::Id { uid, gid } = p.user else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let mut todo = vec![scratch.to_path_buf()];
    while let Some(path) = todo.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to {uid}:{gid}: {e}", path.display()))?;
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
                todo.push(entry.path());
            }
        }
    }
    Ok(())
}

fn cleanup(opts: &Options, scratch: &Path) {
    if opts.keep_scratch {
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(scratch) {
        tracing::warn!("could not remove {}: {e}", scratch.display());
    }
}

/// The `.md` files the agent wrote in `Plans/` and `Pending_Approval/` (sorted by name),
/// within `limits`; anything else there (other names, folders, links) is left out and
/// said in the log. A file over a cap fails the run: a result is all or nothing.
pub fn collect(scratch: &Path, limits: &Limits) -> Result<Vec<FileOut>, String> {
    let root = Dir::open(scratch).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut total = 0usize;
    for folder in [Folder::Plans, Folder::PendingApproval] {
        let dir = root.folder(folder.name()).map_err(|e| e.to_string())?;
        let mut entries = dir.list().map_err(|e| e.to_string())?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let Some(name) = e.name.to_str() else {
                tracing::warn!(
                    "{}: a name that is not UTF-8 is not returned",
                    folder.name()
                );
                continue;
            };
            let path = folder.rel(name);
            if e.kind != Kind::File || confine(&path).is_err() {
                tracing::warn!("{path} is not a Markdown file; not returned");
                continue;
            }
            let bytes = dir
                .read(name, Some(limits.max_file_bytes as u64 + 1))
                .map_err(|e| format!("cannot read {path}: {e}"))?;
            if bytes.len() > limits.max_file_bytes {
                return Err(format!(
                    "the agent wrote {path}, larger than {} bytes",
                    limits.max_file_bytes
                ));
            }
            let content = String::from_utf8(bytes)
                .map_err(|_| format!("the agent wrote {path}, which is not UTF-8 text"))?;
            total += content.len();
            if total > limits.max_total_bytes {
                return Err(format!(
                    "the agent wrote more than {} bytes in Plans/ and Pending_Approval/",
                    limits.max_total_bytes
                ));
            }
            out.push(FileOut { path, content });
            if out.len() > limits.max_files {
                return Err(format!(
                    "the agent wrote more than {} files in Plans/ and Pending_Approval/",
                    limits.max_files
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loops_claim_timeout_is_followed_unless_a_flag_was_given() {
        let (s1, s3) = (Duration::from_secs(1), Duration::from_secs(3));
        let unreachable = || QueueError::Unreachable {
            url: "redis://x".into(),
            error: "down".into(),
        };
        let mut f = ClaimTimeout::new(s3, true);
        assert!(matches!(f.heard(Ok(None)), Ok(false)));
        assert!(matches!(f.heard(Ok(Some(s1))), Ok(true)));
        assert_eq!(f.now, s1);
        assert!(matches!(f.heard(Ok(Some(s1))), Ok(false)));
        assert!(f.heard(Err(unreachable())).is_err());
        let denied = || Err(QueueError::Setup("NOPERM".into()));
        assert!(matches!(f.heard(denied()), Ok(false)));
        assert!(f.told_unreadable && f.now == s1);
        let mut own = ClaimTimeout::new(s3, false);
        assert!(matches!(own.heard(Ok(Some(s1))), Ok(false)));
        assert!(own.told_mismatch && own.now == s3);
    }

    #[test]
    fn only_allowed_programs_run() {
        let allow = vec!["claude".to_string(), "/opt/agent/run".to_string()];
        assert!(allowed("claude", &allow));
        assert!(allowed("/opt/agent/run", &allow));
        assert!(
            !allowed("/tmp/claude", &allow),
            "a path must be allowed as a path"
        );
        assert!(!allowed("sh", &allow));
        assert!(!allowed("/opt/agent/run2", &allow));
        assert!(!allowed("", &allow));
    }

    #[test]
    fn collect_returns_markdown_only_and_caps_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir(p.join("Plans")).unwrap();
        std::fs::create_dir(p.join("Pending_Approval")).unwrap();
        std::fs::write(p.join("Plans/b.md"), "B").unwrap();
        std::fs::write(p.join("Plans/a.md"), "A").unwrap();
        std::fs::write(p.join("Plans/notes.txt"), "x").unwrap();
        std::fs::create_dir(p.join("Plans/sub.md")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("Pending_Approval/leak.md")).unwrap();
        std::fs::write(p.join("Pending_Approval/EMAIL.md"), "draft").unwrap();
        let files = collect(p, &Limits::default()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["Plans/a.md", "Plans/b.md", "Pending_Approval/EMAIL.md"]
        );
        let tight = Limits {
            max_file_bytes: 2,
            ..Limits::default()
        };
        std::fs::write(p.join("Plans/big.md"), "123").unwrap();
        assert!(collect(p, &tight).unwrap_err().contains("Plans/big.md"));
        // Plans/ replaced by a link: refused.
        std::fs::remove_dir_all(p.join("Plans")).unwrap();
        std::os::unix::fs::symlink("/etc", p.join("Plans")).unwrap();
        assert!(collect(p, &Limits::default()).is_err());
    }
}
