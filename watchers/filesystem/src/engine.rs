//! The main loop: OS events and worker results arrive on one channel; the loop decides
//! which Inbox names to look at, hands complete files to the workers, and commits staged
//! tasks in batches (ledger fsync, then publish).
//!
//! State per name lives in `pending` only while something is going on with it; the
//! ledger remembers the rest.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ai_employee_vault::atomic::{self, Writers};
use ai_employee_vault::folder_events::{
    Change, FolderEvent, FolderEvents, FolderPoll, folder_check_every,
};
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{self, Dir, How, Kind as FileKind};
use ai_employee_vault::watcher::WatcherCtx;
use chrono::Utc;

use super::ledger::{Kind, Ledger, Record, Snap};
use super::ready::{self, Decision, Track};
use super::stage::{self, Done, Job, Outcome, Stager};
use super::{Error, Options, Paths, inbox_error, names};

/// A batch of staged tasks is committed when this old (if workers are still busy) …
const COMMIT_DELAY: Duration = Duration::from_millis(10);
/// … or when this large.
const COMMIT_MAX: usize = 256;
/// How often a file that a writer holds open is looked at anyway (events do the work;
/// this is a safety net).
const WRITER_RECHECK: Duration = Duration::from_secs(2);
/// Names judged per loop turn at most (the loop stays responsive during big sweeps).
const CHECKS_PER_TURN: usize = 1024;
/// Messages taken per loop turn at most.
const MESSAGES_PER_TURN: usize = 4096;
/// How long stopping waits for copies in progress before leaving them to the next start.
const STOP_GRACE: Duration = Duration::from_millis(600);

pub enum Msg {
    Fs(FolderEvent),
    Done(Done),
    /// SIGTERM or SIGINT: the loop, asleep until its next event or timer, looks at the
    /// stop flag.
    Stop,
    /// `Inbox` or `Needs_Action` in the vault folder was created, removed or renamed:
    /// check the folders now.
    Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Idle,
    Running,
    /// Staged, waiting for the next commit.
    Staged,
}

struct Pending {
    track: Track,
    /// In `queue`.
    queued: bool,
    /// A writer had it open at the last look: only a close (or the slow timer) brings
    /// it back.
    writer_open: bool,
    timer: Option<Instant>,
    job: JobState,
    /// Something happened while a job ran: look again afterwards.
    recheck: bool,
    failures: u32,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            track: Track::new(),
            queued: false,
            writer_open: false,
            timer: None,
            job: JobState::Idle,
            recheck: false,
            failures: 0,
        }
    }
}

struct StagedTask {
    job: Job,
    sha256: [u8; 32],
    snap: Snap,
    /// False: over `--max-size`, a note without a copy.
    copied: bool,
}

#[derive(Default)]
struct Stats {
    tasks: u64,
    unchanged: u64,
}

pub struct Engine {
    ctx: WatcherCtx,
    opts: Options,
    paths: Paths,
    ledger: Ledger,
    pending: HashMap<OsString, Pending>,
    queue: VecDeque<OsString>,
    timers: BinaryHeap<Reverse<(Instant, OsString)>>,
    jobs: Option<Sender<Job>>,
    cap: usize,
    running: usize,
    staged: Vec<StagedTask>,
    first_staged: Option<Instant>,
    /// Task names (copies and notes) handed out and not yet published.
    reserved: HashSet<String>,
    rx: Receiver<Msg>,
    /// Inbox's events (none while it is being watched again).
    watcher: Option<InboxEvents>,
    /// Where the events go (a new watch of Inbox sends there too).
    events_tx: Sender<Msg>,
    rescan: bool,
    rewatch_at: Option<Instant>,
    place_checked: Instant,
    /// A [`Msg::Place`] came: check before the next wait.
    place_asked: bool,
    /// The events behind [`Msg::Place`] (none: polling, or the OS gave none); they stop
    /// when dropped.
    place_events: Option<FolderEvents>,
    stats: Stats,
}

impl Engine {
    /// Open the ledger, recover what a crash left in staging, start the workers and the
    /// OS watch.
    pub fn start(ctx: WatcherCtx, opts: Options, paths: Paths) -> Result<Engine, Error> {
        let loaded = Ledger::open_retiring(&paths.ledger, &paths.inbox_dir, &paths.staging)
            .map_err(|e| {
                if nofollow::is_symlink_error(&e) {
                    Error::Setup(e.to_string())
                } else {
                    Error::io("open", &paths.ledger)(e)
                }
            })?;
        if loaded.torn_bytes > 0 {
            tracing::warn!(
                "ledger: cut off a torn last line ({} bytes) left by a crash",
                loaded.torn_bytes
            );
        }
        if loaded.bad_lines > 0 {
            tracing::warn!("ledger: skipped {} unreadable lines", loaded.bad_lines);
        }
        let recovered = stage::recover(&paths.staging, &paths.needs_action, &loaded.tasks)
            .map_err(Error::io("recover staged tasks in", paths.staging.path()))?;
        for t in &recovered.published {
            tracing::info!("published task {t}, staged before the last stop");
        }
        if recovered.discarded > 0 {
            tracing::info!(
                "discarded {} unfinished staged files from before the last stop",
                recovered.discarded
            );
        }

        let mut ledger = loaded.ledger;
        log_retired(loaded.retired, &ledger);
        retire(&mut ledger, &paths)?;

        let (tx, rx) = mpsc::channel();
        let stop_tx = tx.clone();
        ctx.wake_on_stop(move || drop(stop_tx.send(Msg::Stop)))
            .map_err(Error::io("set up signal handling for", &paths.inbox))?;
        let place_tx = tx.clone();
        // Polling was asked for (a share whose changes make no events here): the vault
        // folder's events are not trusted either.
        let place_events = if opts.poll.is_some() {
            None
        } else {
            FolderEvents::watch_names_or_none(
                paths.vault.path(),
                &[Folder::Inbox.name(), Folder::NeedsAction.name()],
                move || drop(place_tx.send(Msg::Place)),
            )
        };
        let jobs = spawn_workers(&paths.staging, &ctx, &opts, &tx)?;
        let watcher = watch_inbox(&tx, &paths.inbox, opts.poll).map_err(|source| Error::Watch {
            path: paths.inbox.clone(),
            source,
        })?;
        Ok(Engine {
            cap: opts.workers * 4,
            ctx,
            opts,
            paths,
            ledger,
            pending: HashMap::new(),
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            jobs: Some(jobs),
            running: 0,
            staged: Vec::new(),
            first_staged: None,
            reserved: HashSet::new(),
            rx,
            watcher: Some(watcher),
            events_tx: tx,
            rescan: false,
            rewatch_at: None,
            place_checked: Instant::now(),
            // The first turn checks: a folder swapped after `Paths::prepare` opened it and
            // before the vault folder's events were watched made no event.
            place_asked: true,
            place_events,
            stats: Stats::default(),
        })
    }

    pub fn run(mut self) -> Result<(), Error> {
        let (found, done) = self.sweep()?;
        tracing::info!(
            "watching {} ({}; settle {}; {} workers): {} in Inbox, {done} already done, {} to look at",
            self.paths.inbox.display(),
            match self.opts.poll {
                Some(d) => format!(
                    "polling every {}",
                    ai_employee_vault::units::format_duration(d)
                ),
                None => "OS file events".to_string(),
            },
            ai_employee_vault::units::format_duration(self.opts.settle),
            self.opts.workers,
            count(found as u64, "file"),
            found - done,
        );
        loop {
            self.ctx.beat();
            if self.ctx.stopping() {
                break;
            }
            let wait = self.next_wait(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(m) => self.on_msg(m)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Error::Workers),
            }
            for _ in 0..MESSAGES_PER_TURN {
                match self.rx.try_recv() {
                    Ok(m) => self.on_msg(m)?,
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if std::mem::take(&mut self.place_asked)
                || now.duration_since(self.place_checked) >= self.place_every()
            {
                self.place_checked = now;
                self.check_place()?;
            }
            if self.rewatch_at.is_some_and(|t| t <= now) {
                self.rewatch()?;
            }
            if std::mem::take(&mut self.rescan) {
                match self.sweep() {
                    Ok((found, done)) => tracing::info!(
                        "rescanned Inbox: {}, {} to look at",
                        count(found as u64, "file"),
                        found - done
                    ),
                    Err(e) => {
                        tracing::warn!("{e}");
                        self.rewatch_at = Some(now + Duration::from_secs(1));
                    }
                }
            }
            self.fire_timers(now);
            self.run_checks();
            self.maybe_commit(false)?;
        }
        self.shutdown()
    }

    /// How often `Inbox/` and `Needs_Action/` are checked without being asked (a change
    /// to their names in the vault folder asks at once: [`Msg::Place`]).
    fn place_every(&self) -> Duration {
        folder_check_every(self.place_events.is_some())
    }

    fn next_wait(&self, now: Instant) -> Duration {
        if self.rescan || (!self.queue.is_empty() && self.running < self.cap) {
            return Duration::ZERO;
        }
        // The place check and the heartbeat are the only wake-ups of an idle watcher.
        let mut until = self.place_checked + self.place_every();
        if let Some(beat) = self.ctx.next_beat_in() {
            until = until.min(now + beat);
        }
        if let Some(Reverse((t, _))) = self.timers.peek() {
            until = until.min(*t);
        }
        if let Some(t) = self.rewatch_at {
            until = until.min(t);
        }
        if let Some(first) = self.first_staged {
            if self.running == 0 {
                return Duration::ZERO;
            }
            until = until.min(first + COMMIT_DELAY);
        }
        until.saturating_duration_since(now)
    }

    fn on_msg(&mut self, m: Msg) -> Result<(), Error> {
        match m {
            Msg::Fs(ev) => self.on_event(ev),
            Msg::Done(d) => self.on_done(d)?,
            Msg::Stop => {}
            Msg::Place => self.place_asked = true,
        }
        Ok(())
    }

    fn on_event(&mut self, ev: FolderEvent) {
        let (name, change) = match ev {
            FolderEvent::Name { name, change, .. } => (name, change),
            FolderEvent::Lost => {
                tracing::info!("file events were lost (queue overflow); rescanning Inbox");
                self.rescan = true;
                return;
            }
            FolderEvent::FolderGone(_) => {
                tracing::warn!("Inbox was removed or renamed; watching it again");
                self.rewatch_at = Some(Instant::now());
                return;
            }
            FolderEvent::Failed(e) => {
                tracing::warn!("file events: {e}; watching Inbox again");
                self.rewatch_at = Some(Instant::now());
                return;
            }
        };
        // Only a close after writing says a writer is done; a listing never sees one.
        let closed = change == Change::Closed && !self.opts.settle_only;
        if !names::is_ignored(&name) {
            self.mark(name, closed);
        }
    }

    /// Something happened to `name`: look at it soon.
    fn mark(&mut self, name: OsString, closed: bool) {
        let p = self
            .pending
            .entry(name.clone())
            .or_insert_with(Pending::new);
        if closed {
            p.track.closed = true;
            p.writer_open = false;
        }
        if p.job != JobState::Idle {
            p.recheck = true;
            return;
        }
        if p.writer_open || p.queued {
            return;
        }
        p.queued = true;
        self.queue.push_back(name);
    }

    fn enqueue(&mut self, name: &OsStr) {
        if let Some(p) = self.pending.get_mut(name)
            && !p.queued
            && p.job == JobState::Idle
        {
            p.queued = true;
            self.queue.push_back(name.to_os_string());
        }
    }

    fn set_timer(&mut self, name: &OsStr, at: Instant) {
        if let Some(p) = self.pending.get_mut(name) {
            p.timer = Some(at);
            self.timers.push(Reverse((at, name.to_os_string())));
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, name))) = self.timers.pop() else {
                break;
            };
            if let Some(p) = self.pending.get_mut(&name)
                && p.timer == Some(at)
            {
                p.timer = None;
                self.enqueue(&name);
            }
        }
    }

    /// List Inbox: every top-level regular file not already done gets looked at.
    /// Returns (files found, files whose task exists already).
    fn sweep(&mut self) -> Result<(usize, usize), Error> {
        let inbox = Arc::clone(&self.paths.inbox_dir);
        let (mut found, mut done) = (0, 0);
        for entry in inbox.list().map_err(Error::io("read", inbox.path()))? {
            let name = entry.name;
            // Symlinks, folders, FIFOs … are ignored.
            if names::is_ignored(&name) || entry.kind != FileKind::File {
                continue;
            }
            found += 1;
            let unchanged = inbox.stat(&name).is_ok_and(|m| {
                self.ledger
                    .lookup(&name)
                    .is_some_and(|r| r.snap == Snap::of_stat(&m))
            });
            if unchanged && !self.pending.contains_key(&name) {
                done += 1;
            } else {
                self.mark(name, false);
            }
        }
        Ok((found, done))
    }

    fn run_checks(&mut self) {
        let mut n = 0;
        while self.running < self.cap && n < CHECKS_PER_TURN {
            let Some(name) = self.queue.pop_front() else {
                break;
            };
            self.check(name);
            n += 1;
        }
    }

    /// Look at `name` and decide: done already, not complete yet, or take it.
    fn check(&mut self, name: OsString) {
        let Some(p) = self.pending.get_mut(&name) else {
            return;
        };
        p.queued = false;
        if p.job != JobState::Idle {
            p.recheck = true;
            return;
        }
        let inbox = Arc::clone(&self.paths.inbox_dir);
        let meta = match inbox.stat(&name) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                // A folder, symlink, FIFO …: ignored.
                self.pending.remove(&name);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.pending.remove(&name);
                return;
            }
            Err(e) => {
                self.fail(&name, &e);
                return;
            }
        };
        if self
            .ledger
            .lookup(&name)
            .is_some_and(|r| r.snap == Snap::of_stat(&meta))
        {
            self.pending.remove(&name);
            return;
        }
        let (writers, snap, modified) = if self.opts.settle_only {
            (Writers::Unknown, Snap::of_stat(&meta), meta.modified())
        } else {
            // Ask about writers first and fingerprint afterwards (on the same open file):
            // a writer that closes in between is then seen with its final size.
            match inbox
                .file(&name, How::READ)
                .and_then(|f| Ok((atomic::writers(&f), nofollow::stat_file(&f)?)))
            {
                Ok((w, m)) => (w, Snap::of_stat(&m), m.modified()),
                // Became a symlink, a FIFO or a folder meanwhile, or is gone: ignored.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::InvalidInput
                        || nofollow::is_symlink_error(&e) =>
                {
                    self.pending.remove(&name);
                    return;
                }
                Err(_) => (Writers::Unknown, Snap::of_stat(&meta), meta.modified()),
            }
        };
        if self.ledger.lookup(&name).is_some_and(|r| r.snap == snap) {
            self.pending.remove(&name);
            return;
        }
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO);
        let now = Instant::now();
        let settle = self.opts.settle;
        let Some(p) = self.pending.get_mut(&name) else {
            return;
        };
        match ready::decide(&mut p.track, snap, writers, age, now, settle) {
            Decision::Ready => self.dispatch(name, inbox, snap),
            Decision::WaitForClose => {
                p.writer_open = true;
                self.set_timer(&name, now + WRITER_RECHECK.max(settle));
            }
            Decision::WaitUntil(t) => self.set_timer(&name, t),
        }
    }

    fn dispatch(&mut self, name: OsString, inbox: Arc<Dir>, snap: Snap) {
        let received = Utc::now();
        let task = self.reserve_task_name(&name, received);
        let previous = self.ledger.lookup(&name).map(|r| r.sha256);
        if let Some(p) = self.pending.get_mut(&name) {
            p.job = JobState::Running;
            p.writer_open = false;
            p.track = Track::new();
        }
        let job = Job {
            name,
            inbox,
            snap,
            task,
            received,
            previous,
        };
        let Some(jobs) = self.jobs.as_ref() else {
            return;
        };
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            // Workers gone (only while stopping): forget the job; the next start takes
            // the file.
            self.release(&job.task);
            self.pending.remove(&job.name);
            return;
        }
        self.running += 1;
    }

    /// `FILE_<stamp>_<name>`, or `FILE_<stamp>-<n>_<name>` when that copy or its note is
    /// taken in `Needs_Action/` or by a task in progress.
    fn reserve_task_name(&mut self, name: &OsStr, received: chrono::DateTime<Utc>) -> String {
        let stamp = names::stamp(received);
        let clean = names::sanitize(name);
        let na = &self.paths.needs_action;
        let taken = |s: &String, reserved: &HashSet<String>| reserved.contains(s) || na.exists(s);
        let mut n = 1;
        loop {
            let task = names::task_name(&stamp, n, &clean);
            let meta = names::meta_name(&task);
            if !taken(&task, &self.reserved) && !taken(&meta, &self.reserved) {
                self.reserved.insert(meta);
                self.reserved.insert(task.clone());
                return task;
            }
            n += 1;
        }
    }

    fn release(&mut self, task: &str) {
        self.reserved.remove(task);
        self.reserved.remove(&names::meta_name(task));
    }

    /// A job for `name` is over (its task committed, or nothing to do).
    fn finish(&mut self, name: &OsStr) {
        let Some(p) = self.pending.get_mut(name) else {
            return;
        };
        p.job = JobState::Idle;
        p.failures = 0;
        if std::mem::take(&mut p.recheck) {
            self.enqueue(name);
        } else if p.timer.is_none() {
            self.pending.remove(name);
        }
    }

    fn fail(&mut self, name: &OsStr, e: &io::Error) {
        let Some(p) = self.pending.get_mut(name) else {
            return;
        };
        p.failures += 1;
        let delay = Duration::from_secs(1 << p.failures.min(6)).min(Duration::from_secs(60));
        let msg = format!(
            "failed to take {:?} from Inbox: {e}; trying again in {}s",
            name.to_string_lossy(),
            delay.as_secs()
        );
        if p.failures == 1 {
            tracing::warn!("{msg}");
        } else {
            tracing::debug!("{msg}");
        }
        self.set_timer(name, Instant::now() + delay);
    }

    fn on_done(&mut self, d: Done) -> Result<(), Error> {
        self.running = self.running.saturating_sub(1);
        let Done { job, outcome } = d;
        match outcome {
            Outcome::Staged {
                sha256,
                snap,
                copied,
            } => {
                if let Some(p) = self.pending.get_mut(&job.name) {
                    p.job = JobState::Staged;
                }
                self.first_staged.get_or_insert_with(Instant::now);
                self.staged.push(StagedTask {
                    job,
                    sha256,
                    snap,
                    copied,
                });
            }
            Outcome::Same { snap } => {
                self.release(&job.task);
                if let Some(prev) = self.ledger.lookup(&job.name) {
                    let rec = Record {
                        sha256: prev.sha256,
                        snap,
                        task: prev.task.clone(),
                    };
                    self.ledger
                        .append(vec![(job.name.clone(), rec)], Kind::Seen, false)
                        .map_err(Error::io("append to", &self.paths.ledger))?;
                }
                self.stats.unchanged += 1;
                tracing::debug!("{:?}: content unchanged", job.name.to_string_lossy());
                self.finish(&job.name);
            }
            Outcome::Changed => {
                self.release(&job.task);
                let Some(p) = self.pending.get_mut(&job.name) else {
                    return Ok(());
                };
                p.job = JobState::Idle;
                p.track = Track::new();
                if std::mem::take(&mut p.recheck) {
                    // Events came meanwhile (the close, usually): look again now.
                    self.enqueue(&job.name);
                } else {
                    self.set_timer(&job.name, Instant::now() + self.opts.settle);
                }
            }
            Outcome::Gone => {
                self.release(&job.task);
                if let Some(p) = self.pending.get_mut(&job.name) {
                    p.job = JobState::Idle;
                    p.recheck = false;
                }
                // The check forgets it, or sees what took its place.
                self.enqueue(&job.name);
            }
            Outcome::Aborted => self.release(&job.task),
            Outcome::Failed(e) => {
                self.release(&job.task);
                if let Some(p) = self.pending.get_mut(&job.name) {
                    p.job = JobState::Idle;
                    p.recheck = false;
                }
                self.fail(&job.name, &e);
            }
        }
        Ok(())
    }

    fn maybe_commit(&mut self, force: bool) -> Result<(), Error> {
        let Some(first) = self.first_staged else {
            return Ok(());
        };
        if force
            || self.running == 0
            || self.staged.len() >= COMMIT_MAX
            || first.elapsed() >= COMMIT_DELAY
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Make the staged batch durable in the ledger, then publish it. Any error here is
    /// fatal: the next start finishes or undoes the batch from the ledger and staging.
    fn commit(&mut self) -> Result<(), Error> {
        let batch = std::mem::take(&mut self.staged);
        self.first_staged = None;
        if batch.is_empty() {
            return Ok(());
        }
        let staging = Arc::clone(&self.paths.staging);
        let na = &self.paths.needs_action;
        // The staged files' names must be durable before a ledger line vouches for them.
        staging.sync().map_err(Error::io("sync", staging.path()))?;
        let entries = batch
            .iter()
            .map(|s| {
                (
                    s.job.name.clone(),
                    Record {
                        sha256: s.sha256,
                        snap: s.snap,
                        task: s.job.task.clone(),
                    },
                )
            })
            .collect();
        self.ledger
            .append(entries, Kind::Task, true)
            .map_err(Error::io("append to", &self.paths.ledger))?;
        let mut published = Vec::with_capacity(batch.len());
        for s in &batch {
            let name = stage::publish(&staging, na, &s.job.task)
                .map_err(Error::io("publish a task into", na.path()))?;
            published.push(name);
        }
        // No fsync of the folders here: a rename is one atomic step, so after a power
        // loss each file is either published or back in staging, where the ledger line
        // makes the next start publish it again.
        for (s, name) in batch.iter().zip(published) {
            if s.copied {
                tracing::info!(
                    "{:?} ({} bytes) -> Needs_Action/{name}.md",
                    s.job.name.to_string_lossy(),
                    s.snap.size
                );
            } else {
                tracing::warn!(
                    "{:?} ({} bytes) is over the {} limit for copies (--max-size): a note \
                     without a copy -> Needs_Action/{name}.md",
                    s.job.name.to_string_lossy(),
                    s.snap.size,
                    ai_employee_vault::units::format_size(self.opts.max_size)
                );
            }
            self.stats.tasks += 1;
            self.release(&s.job.task);
            self.finish(&s.job.name);
        }
        retire(&mut self.ledger, &self.paths)?;
        if self
            .ledger
            .compact_if_needed()
            .map_err(Error::io("compact", &self.paths.ledger))?
        {
            tracing::info!("ledger compacted to {} entries", self.ledger.remembered());
        }
        Ok(())
    }

    /// Whether `Inbox/` and `Needs_Action/` are still the folders the watcher opened. If
    /// not (renamed away, removed, replaced by a symlink or another folder): `Inbox/` is
    /// opened again now; `Needs_Action/` is opened again (created if missing). A symlink
    /// in the place of either stops the watcher (exit 78); nothing is read or written
    /// through it meanwhile, since every access goes through the descriptors.
    fn check_place(&mut self) -> Result<(), Error> {
        let vault = &self.paths.vault;
        if !self.paths.needs_action.still_at(vault, Folder::NeedsAction) {
            match vault.make_folder(Folder::NeedsAction, false) {
                Ok(d) => {
                    tracing::warn!("Needs_Action was removed, renamed or replaced; opened again");
                    self.paths.needs_action = d;
                }
                Err(e) if e.is_symlink() => return Err(Error::Setup(e.to_string())),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        if self.paths.explicit_inbox || self.rewatch_at.is_some() {
            return Ok(());
        }
        if !self
            .paths
            .inbox_dir
            .still_at(&self.paths.vault, Folder::Inbox)
        {
            tracing::warn!("Inbox was removed, renamed or replaced; opening it again");
            self.rewatch_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Inbox itself was removed, renamed or replaced: make it again (the vault's own
    /// `Inbox/`), open it and watch it again. A symlink in its place is never followed:
    /// the watcher stops (exit 78) with one line saying so.
    fn rewatch(&mut self) -> Result<(), Error> {
        self.rewatch_at = None;
        let inbox = self.paths.inbox.clone();
        // The old watch may have gone with the folder; a new one is made below either way.
        self.watcher = None;
        let opened = if self.paths.explicit_inbox {
            std::fs::create_dir_all(&inbox)
                .and_then(|()| Dir::open(&inbox))
                .map_err(|e| e.to_string())
        } else {
            match self.paths.vault.make_folder(Folder::Inbox, false) {
                Ok(d) => Ok(d),
                Err(e) if e.is_symlink() => return Err(Error::Setup(inbox_error(&e))),
                Err(e) => Err(e.to_string()),
            }
        };
        let res = opened.and_then(|dir| {
            let w =
                watch_inbox(&self.events_tx, &inbox, self.opts.poll).map_err(|e| e.to_string())?;
            Ok((dir, w))
        });
        match res {
            Ok((dir, w)) => {
                self.watcher = Some(w);
                self.paths.inbox_dir = Arc::new(dir);
                self.rescan = true;
            }
            Err(e) => {
                tracing::warn!("failed to watch {} again: {e}", inbox.display());
                self.rewatch_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        Ok(())
    }

    /// SIGTERM: copies in progress stop (they watch the same flag), what is staged is
    /// committed, and the rest is left for the next start.
    fn shutdown(mut self) -> Result<(), Error> {
        self.jobs = None;
        let deadline = Instant::now() + STOP_GRACE;
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Done(d)) => self.on_done(d)?,
                Ok(Msg::Fs(_) | Msg::Stop | Msg::Place) => {}
                Err(_) => break,
            }
        }
        self.maybe_commit(true)?;
        tracing::info!(
            "stopped: {}, {} unchanged since their task",
            count(self.stats.tasks, "new task"),
            count(self.stats.unchanged, "file")
        );
        Ok(())
    }
}

/// Move the names that are neither in Inbox/ nor staged out of memory, into the
/// ledger's index (see `ledger.rs`), when enough new names were recorded.
fn retire(ledger: &mut Ledger, paths: &Paths) -> Result<(), Error> {
    // Anything but "not found" counts as present: a name is retired only when surely gone.
    let gone = |dir: &Dir, name: &Path| matches!(dir.stat(name), Err(e) if e.kind() == io::ErrorKind::NotFound);
    let needed = |name: &OsStr, rec: &Record| {
        !gone(&paths.inbox_dir, Path::new(name))
            || !gone(&paths.staging, Path::new(&format!("{}.copy", rec.task)))
            || !gone(&paths.staging, Path::new(&format!("{}.meta", rec.task)))
    };
    let retired = ledger
        .retire_if_needed(needed)
        .map_err(Error::io("compact", &paths.ledger))?;
    log_retired(retired, ledger);
    Ok(())
}

fn log_retired(retired: usize, ledger: &Ledger) {
    if retired > 0 {
        tracing::info!(
            "ledger: {} no longer in Inbox moved out of memory ({} names kept, {} retired in all)",
            count(retired as u64, "name"),
            ledger.remembered(),
            ledger.retired()
        );
    }
}

/// `1 file`, `2 files`.
fn count(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn spawn_workers(
    staging: &Arc<Dir>,
    ctx: &WatcherCtx,
    opts: &Options,
    tx: &Sender<Msg>,
) -> Result<Sender<Job>, Error> {
    let n = opts.workers;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for i in 0..n {
        let rx = Arc::clone(&job_rx);
        let tx = tx.clone();
        let mut stager = Stager::new(Arc::clone(staging), ctx.stop_flag(), opts.max_size);
        std::thread::Builder::new()
            .name(format!("fs-worker-{i}"))
            .spawn(move || {
                loop {
                    let job = {
                        let Ok(rx) = rx.lock() else { return };
                        match rx.recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        }
                    };
                    let outcome = stager.stage(&job);
                    if tx.send(Msg::Done(Done { job, outcome })).is_err() {
                        return;
                    }
                }
            })
            .map_err(Error::io("start a worker thread for", staging.path()))?;
    }
    Ok(job_tx)
}

/// Inbox's events, from the OS or from listings; they stop when this is dropped.
#[allow(dead_code)] // held for its Drop
enum InboxEvents {
    Os(FolderEvents),
    Poll(FolderPoll),
}

/// Watch `inbox`: OS file events (inotify, FSEvents, kqueue: only changes, so the
/// watcher's own reads of Inbox make none), or listings every `poll` when asked to or when
/// the OS has no events to give (inotify instance limit reached, say).
fn watch_inbox(tx: &Sender<Msg>, inbox: &Path, poll: Option<Duration>) -> io::Result<InboxEvents> {
    let handler = |tx: Sender<Msg>| move |ev| drop(tx.send(Msg::Fs(ev)));
    let folders = [inbox.to_path_buf()];
    let poller = |interval| FolderPoll::start(&folders, interval, handler(tx.clone()));
    if let Some(interval) = poll {
        return poller(interval).map(InboxEvents::Poll);
    }
    match FolderEvents::watch(&folders, handler(tx.clone())) {
        Ok(w) => Ok(InboxEvents::Os(w)),
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!("OS file events unavailable ({e}); polling Inbox every second");
            poller(Duration::from_secs(1)).map(InboxEvents::Poll)
        }
        Err(e) => Err(e),
    }
}
