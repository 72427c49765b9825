//! The log writer: one thread that owns every log file (`Logs/system.log` and each
//! child's `Logs/<name>.log`) and writes what the rest of the supervisor queues.
//!
//! A `write()` on a stalled disk (a frozen file system, a hung network mount) blocks in
//! the kernel for as long as the stall lasts. Logging happens everywhere on the event
//! loop's thread, so the loop must never be the one that waits: it only queues bytes
//! (never blocking, never waiting for the disk) and this thread does the writing,
//! rotation and the `nofollow` opening, in order per file.
//!
//! The queue is bounded by bytes ([`QUEUE_MAX`] in all, [`FILE_QUEUE_MAX`] per file, so
//! one chatty child cannot crowd out the others). While it is full, new bytes are
//! dropped and counted per file; the next time that file is written, one line says how
//! much was lost. A write that fails (a full disk, a read-only `Logs/`) is reported once
//! when it starts failing and once when it works again, with what was lost meanwhile.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::Level;

use super::RotatingFile;

/// Bytes waiting to be written, all files together. Beyond it new bytes are dropped.
pub const QUEUE_MAX: usize = 4 << 20;
/// Bytes waiting to be written for one file.
pub const FILE_QUEUE_MAX: usize = 1 << 20;
/// What a queued request counts against the bound besides its bytes (its share of the
/// queue's own memory, so that many tiny writes are bounded too).
const OP_COST: usize = 64;

/// How the console is written (for what the system log says about its own file, which
/// cannot go to that file).
#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub color: bool,
    /// `chrono` format of the time stamp.
    pub time: &'static str,
}

/// Something the writer has to say about a log file, and who hears it: by default a
/// tracing event (console and `system.log`); tests collect them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub child: Option<String>,
    pub text: String,
}

type NoteSink = Arc<dyn Fn(Note) + Send + Sync>;

fn trace_note(n: Note) {
    match (n.level, n.child.as_deref()) {
        (Level::ERROR | Level::WARN, Some(c)) => tracing::warn!(child = c, "{}", n.text),
        (Level::ERROR | Level::WARN, None) => tracing::warn!("{}", n.text),
        (_, Some(c)) => tracing::info!(child = c, "{}", n.text),
        (_, None) => tracing::info!("{}", n.text),
    }
}

/// What was dropped from the queue (or could not be written): writes (lines, for the
/// system log) and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Lost {
    writes: u64,
    bytes: u64,
}

impl Lost {
    fn add(&mut self, o: Lost) {
        self.writes = self.writes.saturating_add(o.writes);
        self.bytes = self.bytes.saturating_add(o.bytes);
    }
    fn is_none(&self) -> bool {
        self.writes == 0 && self.bytes == 0
    }
}

enum Kind {
    /// `system.log`: its lines are counted in lines, and what it says about itself goes
    /// into the file (when it can) and straight to the console.
    System(Option<Console>),
    /// A child's output: counted in bytes, reported as a note about the child.
    Child(String),
}

enum Op {
    Open {
        file: Box<RotatingFile>,
        kind: Kind,
        state: Arc<FileState>,
    },
    Write {
        data: Vec<u8>,
        dropped: Lost,
    },
    Limits {
        max_size: u64,
        max_files: u32,
    },
    /// Open the file if it is not open (whether it can be is then known), unless
    /// writing it already fails.
    Probe,
    /// The handle is gone: report what is still unreported and close the file.
    Forget {
        dropped: Lost,
    },
    #[cfg(test)]
    Call(Box<dyn FnOnce() + Send>),
}

impl Op {
    fn output_len(&self) -> usize {
        match self {
            Op::Write { data, .. } => data.len(),
            _ => 0,
        }
    }

    fn cost(&self) -> usize {
        match self {
            Op::Write { data, .. } => data.len() + OP_COST,
            _ => OP_COST,
        }
    }
}

#[derive(Default)]
struct FileQueue {
    bytes: usize,
    /// Dropped while the queue was full, not yet handed to the writer.
    dropped: Lost,
}

struct Queue {
    items: VecDeque<(u64, u64, Op)>,
    bytes: usize,
    files: HashMap<u64, FileQueue>,
    next_id: u64,
    /// Sequence number of the next request.
    next_seq: u64,
    /// Every request numbered below this has been carried out.
    done_seq: u64,
    /// Since when the writer is busy with the request it is on.
    busy_since: Option<Instant>,
    /// Bytes of output in the request it is on.
    busy_bytes: usize,
}

struct Shared {
    q: Mutex<Queue>,
    work: Condvar,
    done: Condvar,
    total_max: usize,
    file_max: usize,
    notes: NoteSink,
}

/// Add `op` to the queue (no bound checked).
fn enqueue(q: &mut Queue, id: u64, op: Op) {
    let cost = op.cost();
    if !matches!(op, Op::Forget { .. }) {
        q.files.entry(id).or_default().bytes += cost;
    }
    q.bytes += cost;
    let seq = q.next_seq;
    q.next_seq += 1;
    q.items.push_back((seq, id, op));
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `op` for file `id`; never blocks. A write that does not fit is dropped
    /// (and counted); other requests always fit (they are few and small).
    fn push(&self, id: u64, op: Op) -> bool {
        let mut q = self.lock();
        let op = match op {
            Op::Write { data, .. } => {
                let cost = data.len() + OP_COST;
                let file_bytes = q.files.get(&id).map_or(0, |f| f.bytes);
                let full = file_bytes.saturating_add(cost) > self.file_max
                    || q.bytes.saturating_add(cost) > self.total_max;
                let fq = q.files.entry(id).or_default();
                if full {
                    fq.dropped.add(Lost {
                        writes: 1,
                        bytes: data.len() as u64,
                    });
                    return false;
                }
                let dropped = std::mem::take(&mut fq.dropped);
                Op::Write { data, dropped }
            }
            Op::Forget { .. } => {
                let dropped = q.files.remove(&id).map(|f| f.dropped).unwrap_or_default();
                Op::Forget { dropped }
            }
            op => op,
        };
        enqueue(&mut q, id, op);
        drop(q);
        self.work.notify_one();
        true
    }

    /// Wait until every request queued before now is carried out, at most until
    /// `deadline`. Returns whether it was.
    fn flush(&self, deadline: Instant) -> bool {
        let mut q = self.lock();
        let target = q.next_seq;
        while q.done_seq < target {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = match self.done.wait_timeout(q, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// What the writer knows about one file, readable without waiting for it.
#[derive(Default)]
struct FileState {
    /// The error of the first failed write, while writes fail.
    failing: Mutex<Option<String>>,
}

impl FileState {
    fn get(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn set(&self, v: Option<String>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// The writer thread's handle; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// A log file owned by the writer thread. Dropping it closes the file (on that thread).
pub struct LogFile {
    id: u64,
    path: PathBuf,
    state: Arc<FileState>,
    shared: Arc<Shared>,
}

/// The answer to [`LogFile::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Everything queued before was carried out: the file can be written (`None`) or
    /// writing it fails (with the error).
    Answered(Option<String>),
    /// The writer did not answer in time (the disk is stalled): the last state known.
    NoAnswer(Option<String>),
}

/// What [`LogWriter::finish`] could not write before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwritten {
    /// Bytes of log output not written yet.
    pub bytes: usize,
    /// Requests not carried out yet (the one the writer is stuck on included).
    pub requests: usize,
}

impl LogWriter {
    /// Start the writer thread.
    pub fn start() -> std::io::Result<LogWriter> {
        Self::start_with(QUEUE_MAX, FILE_QUEUE_MAX, Arc::new(trace_note))
    }

    fn start_with(total_max: usize, file_max: usize, notes: NoteSink) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                files: HashMap::new(),
                next_id: 0,
                next_seq: 0,
                done_seq: 0,
                busy_since: None,
                busy_bytes: 0,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            total_max,
            file_max,
            notes,
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run(&s))?;
        Ok(LogWriter { shared })
    }

    fn open(&self, file: RotatingFile, kind: Kind) -> LogFile {
        let id = {
            let mut q = self.shared.lock();
            q.next_id += 1;
            q.next_id
        };
        let state = Arc::new(FileState::default());
        let path = file.path().to_path_buf();
        self.shared.push(
            id,
            Op::Open {
                file: Box::new(file),
                kind,
                state: state.clone(),
            },
        );
        LogFile {
            id,
            path,
            state,
            shared: self.shared.clone(),
        }
    }

    /// Hand `file` (the system log) to the writer. With `console`, what goes wrong with
    /// the file is said there too.
    pub fn open_system(&self, file: RotatingFile, console: Option<Console>) -> LogFile {
        self.open(file, Kind::System(console))
    }

    /// Hand `file` (the output log of child `name`) to the writer.
    pub fn open_child(&self, file: RotatingFile, name: &str) -> LogFile {
        self.open(file, Kind::Child(name.to_string()))
    }

    /// Wait until everything queued so far is written, at most `wait` (a frozen disk
    /// must not hold a stop forever). Returns what was still waiting if it was not.
    pub fn finish(&self, wait: Duration) -> Result<(), Unwritten> {
        // Drops nobody wrote after: handed over now, so that they are reported.
        {
            let mut q = self.shared.lock();
            let pending: Vec<(u64, Lost)> = q
                .files
                .iter_mut()
                .filter(|(_, f)| !f.dropped.is_none())
                .map(|(id, f)| (*id, std::mem::take(&mut f.dropped)))
                .collect();
            for (id, dropped) in pending {
                let data = Vec::new();
                enqueue(&mut q, id, Op::Write { data, dropped });
            }
        }
        self.shared.work.notify_one();
        if self.shared.flush(Instant::now() + wait) {
            return Ok(());
        }
        let q = self.shared.lock();
        let queued: usize = q.items.iter().map(|(_, _, op)| op.output_len()).sum();
        let busy = if q.busy_since.is_some() {
            q.busy_bytes
        } else {
            0
        };
        Err(Unwritten {
            bytes: queued + busy,
            requests: q.items.len() + usize::from(q.busy_since.is_some()),
        })
    }

    /// How long the writer has been on the request it is carrying out (a stalled disk).
    pub fn stuck_for(&self) -> Duration {
        self.shared
            .lock()
            .busy_since
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn call(&self, f: impl FnOnce() + Send + 'static) {
        self.shared.push(0, Op::Call(Box::new(f)));
    }
}

impl LogFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue `buf` to be appended; never blocks. Returns false if it was dropped (the
    /// queue is full; counted and reported later).
    pub fn write(&self, buf: &[u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        self.shared.push(
            self.id,
            Op::Write {
                data: buf.to_vec(),
                dropped: Lost::default(),
            },
        )
    }

    /// Change the rotation limits (a reload); in order with the writes.
    pub fn set_limits(&self, max_size: u64, max_files: u32) {
        self.shared.push(
            self.id,
            Op::Limits {
                max_size,
                max_files,
            },
        );
    }

    /// The error of the first failed write while writes fail, as last known.
    pub fn failing(&self) -> Option<String> {
        self.state.get()
    }

    /// Whether the file can be written: everything queued before is written and the
    /// file opened, waiting at most `wait` for the writer (no wait at all if it has been
    /// stuck that long already).
    pub fn probe(&self, wait: Duration) -> Probe {
        let stuck = {
            let q = self.shared.lock();
            q.busy_since.is_some_and(|t| t.elapsed() >= wait)
        };
        if stuck {
            return Probe::NoAnswer(self.failing());
        }
        self.shared.push(self.id, Op::Probe);
        if self.shared.flush(Instant::now() + wait) {
            Probe::Answered(self.failing())
        } else {
            Probe::NoAnswer(self.failing())
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        self.shared.push(
            self.id,
            Op::Forget {
                dropped: Lost::default(),
            },
        );
    }
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile").field("path", &self.path).finish()
    }
}

/// The writer thread's own state for one file.
struct Entry {
    file: Box<RotatingFile>,
    kind: Kind,
    state: Arc<FileState>,
    /// Writes that failed since writing started failing (`state` says whether it does),
    /// or dropped from the queue and not yet reported.
    lost: Lost,
}

fn run(shared: &Shared) {
    let mut files: HashMap<u64, Entry> = HashMap::new();
    loop {
        let (seq, id, op) = {
            let mut q = shared.lock();
            loop {
                if let Some(item) = q.items.pop_front() {
                    q.busy_since = Some(Instant::now());
                    q.busy_bytes = item.2.output_len();
                    break item;
                }
                q = match shared.work.wait(q) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        };
        let cost = op.cost();
        carry_out(shared, &mut files, id, op);
        let mut q = shared.lock();
        q.busy_since = None;
        q.bytes = q.bytes.saturating_sub(cost);
        if let Some(f) = q.files.get_mut(&id) {
            f.bytes = f.bytes.saturating_sub(cost);
        }
        q.done_seq = seq + 1;
        drop(q);
        shared.done.notify_all();
    }
}

fn carry_out(shared: &Shared, files: &mut HashMap<u64, Entry>, id: u64, op: Op) {
    match op {
        Op::Open { file, kind, state } => {
            files.insert(
                id,
                Entry {
                    file,
                    kind,
                    state,
                    lost: Lost::default(),
                },
            );
        }
        Op::Write { data, dropped } => {
            if let Some(e) = files.get_mut(&id) {
                e.write(shared, &data, dropped);
            }
        }
        Op::Limits {
            max_size,
            max_files,
        } => {
            if let Some(e) = files.get_mut(&id) {
                e.file.set_limits(max_size, max_files);
            }
        }
        Op::Probe => {
            if let Some(e) = files.get_mut(&id) {
                e.write(shared, b"", Lost::default());
            }
        }
        Op::Forget { dropped } => {
            if let Some(mut e) = files.remove(&id)
                && !dropped.is_none()
            {
                e.write(shared, b"", dropped);
            }
        }
        #[cfg(test)]
        Op::Call(f) => f(),
    }
}

impl Entry {
    /// Append `data` (empty: only open the file, and report what is unreported),
    /// `dropped` having been lost from the queue just before it.
    fn write(&mut self, shared: &Shared, data: &[u8], dropped: Lost) {
        self.lost.add(dropped);
        let failing = self.state.get().is_some();
        // An empty write proves nothing once writing fails (a full disk still lets a
        // file be opened): only real output says that it works again.
        if data.is_empty() && (failing || (self.lost.is_none() && self.file_is_open())) {
            return;
        }
        if !failing && !self.lost.is_none() {
            // Lost from a full queue: said before what comes after the gap.
            let lost = std::mem::take(&mut self.lost);
            self.dropped(shared, lost);
        }
        match self.file.write_all(data) {
            Ok(()) if failing => {
                self.state.set(None);
                let lost = std::mem::take(&mut self.lost);
                self.recovered(shared, lost);
            }
            Ok(()) => {}
            Err(e) => {
                if !data.is_empty() {
                    self.lost.add(Lost {
                        writes: 1,
                        bytes: data.len() as u64,
                    });
                }
                if !failing {
                    self.state.set(Some(e.to_string()));
                    self.failed(shared, &e);
                }
            }
        }
    }

    fn file_is_open(&self) -> bool {
        self.file.is_open()
    }

    fn failed(&mut self, shared: &Shared, e: &std::io::Error) {
        let path = self.file.path().display().to_string();
        match &self.kind {
            Kind::System(console) => console_note(
                *console,
                Level::ERROR,
                &format!(
                    "cannot write {path}: {e}; log lines go to the console only until it \
                     can be written again"
                ),
            ),
            Kind::Child(name) => (shared.notes)(Note {
                level: Level::WARN,
                child: Some(name.clone()),
                text: format!(
                    "cannot write {path}: {e}; its output is lost until it can be written again"
                ),
            }),
        }
    }

    fn recovered(&mut self, shared: &Shared, lost: Lost) {
        let path = self.file.path().display().to_string();
        match &self.kind {
            &Kind::System(console) => {
                let note = format!(
                    "{path} can be written again ({} log lines were not written meanwhile; \
                     the console had those of level info and above)",
                    lost.writes
                );
                self.system_note(console, Level::WARN, note);
            }
            Kind::Child(name) => (shared.notes)(Note {
                level: Level::INFO,
                child: Some(name.clone()),
                text: format!(
                    "{path} can be written again ({} bytes of output were lost meanwhile)",
                    lost.bytes
                ),
            }),
        }
    }

    /// Dropped from a full queue (the disk did not keep up), the file itself fine.
    fn dropped(&mut self, shared: &Shared, lost: Lost) {
        let path = self.file.path().display().to_string();
        match &self.kind {
            &Kind::System(console) => {
                let note = format!(
                    "{} log lines were not written to {path}: the disk did not keep up \
                     (the console had those of level info and above)",
                    lost.writes
                );
                self.system_note(console, Level::WARN, note);
            }
            Kind::Child(name) => (shared.notes)(Note {
                level: Level::WARN,
                child: Some(name.clone()),
                text: format!(
                    "{} bytes of output were not written to {path}: the disk did not keep up",
                    lost.bytes
                ),
            }),
        }
    }

    /// A line about the system log: into the file (if it takes it) and to the console.
    fn system_note(&mut self, console: Option<Console>, level: Level, note: String) {
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f");
        // The file may be what fails; the console line below says it all the same.
        let _ = self
            .file
            .write_all(format!("{stamp} {:<5} {note}\n", level.as_str()).as_bytes());
        console_note(console, level, &note);
    }
}

fn console_note(console: Option<Console>, level: Level, note: &str) {
    let Some(c) = console else {
        return;
    };
    let (pre, post) = match (c.color, level) {
        (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
        (true, _) => ("\x1b[33m", "\x1b[0m"),
        _ => ("", ""),
    };
    let line = format!(
        "{} {pre}{note}{post}\n",
        chrono::Local::now().format(c.time)
    );
    // A console that refuses a line leaves nowhere to say so.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    fn collecting() -> (NoteSink, Arc<Mutex<Vec<Note>>>) {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let n = notes.clone();
        let sink: NoteSink = Arc::new(move |note| n.lock().unwrap().push(note));
        (sink, notes)
    }

    /// Block the writer thread until the returned sender is dropped or sent to; returns
    /// once the writer is really blocked.
    fn block(w: &LogWriter) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let (in_tx, in_rx) = mpsc::channel::<()>();
        w.call(move || {
            // The test waits for this; if it has failed already, nobody is left to tell.
            let _ = in_tx.send(());
            // A message or the test dropping the sender ends the block alike.
            let _ = rx.recv();
        });
        in_rx.recv_timeout(LONG).expect("the writer took the block");
        tx
    }

    #[test]
    fn writes_keep_their_order_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, notes) = collecting();
        let w = LogWriter::start_with(QUEUE_MAX, FILE_QUEUE_MAX, sink).unwrap();
        let a = w.open_child(RotatingFile::new(dir.path().join("a.log"), 1 << 30, 1), "a");
        let b = w.open_child(RotatingFile::new(dir.path().join("b.log"), 1 << 30, 1), "b");
        let mut want_a = String::new();
        let mut want_b = String::new();
        for i in 0..2000 {
            let la = format!("a{i}\n");
            let lb = format!("b{i}\n");
            assert!(a.write(la.as_bytes()));
            assert!(b.write(lb.as_bytes()));
            want_a.push_str(&la);
            want_b.push_str(&lb);
        }
        assert_eq!(w.finish(LONG), Ok(()));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log")).unwrap(),
            want_a
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.log")).unwrap(),
            want_b
        );
        assert!(notes.lock().unwrap().is_empty());
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking_and_says_so_later() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, notes) = collecting();
        // Room for five writes of 100 per file (each costs 100 + OP_COST), and in all for
        // those, the blocking request and one write of 300.
        let per_file = 5 * (100 + OP_COST) + 10;
        let w = LogWriter::start_with(OP_COST + per_file + 300 + OP_COST, per_file, sink).unwrap();
        let path = dir.path().join("c.log");
        let c = w.open_child(RotatingFile::new(path.clone(), 1 << 30, 1), "c");
        let other = w.open_child(RotatingFile::new(dir.path().join("o.log"), 1 << 30, 1), "o");
        let unblock = block(&w);
        // The file's share takes five writes of 100; the sixth and later are dropped,
        // each at once.
        let started = Instant::now();
        let kept: Vec<bool> = (0..10u8).map(|i| c.write(&[b'0' + i; 100])).collect();
        assert_eq!(
            kept,
            [
                true, true, true, true, true, false, false, false, false, false
            ]
        );
        // Another file still has room in the whole queue...
        assert!(other.write(&[b'o'; 300]));
        // ... until the whole queue is full.
        assert!(!other.write(&[b'o'; 300]));
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(unblock);
        assert!(w.shared.flush(Instant::now() + LONG));
        assert!(
            notes.lock().unwrap().is_empty(),
            "reported before anything was written after"
        );
        // The next write after the loss carries the report, placed before its bytes.
        assert!(c.write(b"after\n"));
        assert_eq!(w.finish(LONG), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut want = String::new();
        for i in 0..5u8 {
            want.push_str(&String::from_utf8(vec![b'0' + i; 100]).unwrap());
        }
        want.push_str("after\n");
        assert_eq!(text, want);
        let notes = notes.lock().unwrap().clone();
        assert_eq!(
            notes,
            vec![
                Note {
                    level: Level::WARN,
                    child: Some("c".into()),
                    text: format!(
                        "500 bytes of output were not written to {}: the disk did not keep up",
                        path.display()
                    ),
                },
                Note {
                    level: Level::WARN,
                    child: Some("o".into()),
                    text: format!(
                        "300 bytes of output were not written to {}: the disk did not keep up",
                        dir.path().join("o.log").display()
                    ),
                },
            ],
            "the loss of o.log is reported at the end (finish), nothing was written after it"
        );
    }

    #[test]
    fn the_system_log_says_in_itself_how_many_lines_were_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, _notes) = collecting();
        let w = LogWriter::start_with(1000, 1000, sink).unwrap();
        let path = dir.path().join("system.log");
        let s = w.open_system(RotatingFile::new(path.clone(), 1 << 30, 1), None);
        let unblock = block(&w);
        let kept = (0..30)
            .filter(|i| s.write(format!("line {i:02} {}\n", "x".repeat(90)).as_bytes()))
            .count();
        assert!(kept < 30);
        drop(unblock);
        assert!(s.write(b"next\n"));
        assert_eq!(w.finish(LONG), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), kept + 2, "{text}");
        assert!(
            lines[kept].contains(&format!(
                "{} log lines were not written to {}: the disk did not keep up",
                30 - kept,
                path.display()
            )),
            "{text}"
        );
        assert_eq!(lines[kept + 1], "next");
    }

    #[test]
    fn a_failing_file_is_reported_once_and_its_recovery_with_what_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, notes) = collecting();
        let w = LogWriter::start_with(QUEUE_MAX, FILE_QUEUE_MAX, sink).unwrap();
        // Logs/ missing: opening fails (ENOENT) until it is created.
        let logs = dir.path().join("Logs");
        let c = w.open_child(RotatingFile::new(logs.join("c.log"), 1 << 30, 1), "c");
        assert!(matches!(c.probe(LONG), Probe::Answered(Some(_))));
        assert!(c.failing().is_some());
        c.write(b"lost one\n");
        c.write(b"lost two\n");
        assert!(w.shared.flush(Instant::now() + LONG));
        // An empty probe proves nothing once writes fail.
        std::fs::create_dir(&logs).unwrap();
        assert!(matches!(c.probe(LONG), Probe::Answered(Some(_))));
        c.write(b"kept\n");
        assert_eq!(w.finish(LONG), Ok(()));
        assert_eq!(c.probe(LONG), Probe::Answered(None));
        assert_eq!(
            std::fs::read_to_string(logs.join("c.log")).unwrap(),
            "kept\n"
        );
        let notes = notes.lock().unwrap().clone();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0]
                .text
                .starts_with(&format!("cannot write {}: ", logs.join("c.log").display())),
            "{notes:?}"
        );
        assert_eq!(
            notes[1].text,
            format!(
                "{} can be written again (18 bytes of output were lost meanwhile)",
                logs.join("c.log").display()
            )
        );
    }

    #[test]
    fn finish_waits_for_the_queue_but_not_past_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, _notes) = collecting();
        let w = LogWriter::start_with(QUEUE_MAX, FILE_QUEUE_MAX, sink).unwrap();
        let c = w.open_child(RotatingFile::new(dir.path().join("c.log"), 1 << 30, 1), "c");
        let unblock = block(&w);
        assert!(c.write(&[b'x'; 1000]));
        let t = Instant::now();
        let r = w.finish(Duration::from_millis(200));
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(t.elapsed() < LONG);
        assert_eq!(
            r,
            Err(Unwritten {
                bytes: 1000,
                requests: 2
            })
        );
        // A probe on a stuck writer falls back to the last state known, at once when the
        // writer has been stuck longer than the wait.
        assert_eq!(c.probe(Duration::from_secs(1)), Probe::NoAnswer(None));
        let t = Instant::now();
        assert_eq!(c.probe(Duration::from_millis(50)), Probe::NoAnswer(None));
        assert!(t.elapsed() < Duration::from_millis(50));
        drop(unblock);
        assert_eq!(w.finish(LONG), Ok(()));
        assert_eq!(
            std::fs::read(dir.path().join("c.log")).unwrap(),
            vec![b'x'; 1000]
        );
    }
}
