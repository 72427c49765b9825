//! Dashboard rows are written on a thread of their own: a write fsyncs and may retry
//! around someone else's edit, and supervision must never wait for it.
//!
//! A write that fails (a full disk, a read-only vault) keeps its rows: they are retried,
//! with every row queued meanwhile, until they are written, oldest first, so the newest
//! state ends on top and Dashboard.md never keeps showing a state the system has left. The
//! failure is logged once (a warning, on the console too) and the recovery once.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ai_employee_vault::dashboard::{Row, append_rows};
use tracing::{info, warn};

/// First wait before retrying a failed write; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Rows kept while writes fail; beyond this the oldest are dropped (and counted).
const MAX_PENDING: usize = 1000;
/// At shutdown, how long rows that still fail are retried.
const FINAL_RETRY: Duration = Duration::from_secs(2);

pub struct DashboardWriter {
    tx: Option<mpsc::Sender<Row>>,
    handle: Option<JoinHandle<()>>,
}

/// Rows not written yet, and the state of the current failure.
struct Pending {
    rows: Vec<Row>,
    /// Rows dropped because more than [`MAX_PENDING`] were waiting.
    dropped: usize,
    /// Since when writes fail, and the first error.
    failing: Option<Instant>,
    retry: Duration,
}

impl Pending {
    fn push(&mut self, row: Row) {
        self.rows.push(row);
        if self.rows.len() > MAX_PENDING {
            let extra = self.rows.len() - MAX_PENDING;
            self.rows.drain(..extra);
            self.dropped += extra;
        }
    }

    /// Try to write everything pending. Returns whether it worked.
    fn write(&mut self, path: &std::path::Path, last_try: bool) -> bool {
        match append_rows(path, &self.rows) {
            Ok(()) => {
                if let Some(since) = self.failing.take() {
                    let dropped = match self.dropped {
                        0 => String::new(),
                        n => format!("; {n} older rows were dropped while it failed"),
                    };
                    info!(
                        "{} updated again after {}: {} pending rows written{dropped}",
                        path.display(),
                        ai_employee_vault::units::format_elapsed(since.elapsed()),
                        self.rows.len()
                    );
                }
                self.rows.clear();
                self.dropped = 0;
                self.retry = RETRY_FIRST;
                true
            }
            Err(e) => {
                if last_try {
                    warn!(
                        "failed to update {}: {e} ({} rows not written)",
                        path.display(),
                        self.rows.len()
                    );
                } else if self.failing.is_none() {
                    warn!(
                        "failed to update {}: {e} ({} rows not written yet; retrying until it \
                         works, the newest state last)",
                        path.display(),
                        self.rows.len()
                    );
                    self.failing = Some(Instant::now());
                }
                self.retry = (self.retry * 2).min(RETRY_MAX);
                false
            }
        }
    }
}

impl DashboardWriter {
    pub fn start(path: PathBuf) -> DashboardWriter {
        let (tx, rx) = mpsc::channel::<Row>();
        let handle = std::thread::Builder::new()
            .name("dashboard".into())
            .stack_size(256 * 1024)
            .spawn(move || run(&path, &rx));
        match handle {
            Ok(h) => DashboardWriter {
                tx: Some(tx),
                handle: Some(h),
            },
            Err(e) => {
                warn!(
                    "failed to start the Dashboard writer: {e}; Dashboard.md will not be updated"
                );
                DashboardWriter {
                    tx: None,
                    handle: None,
                }
            }
        }
    }

    pub fn send(&self, row: Row) {
        if let Some(tx) = &self.tx {
            // It fails only once the thread has ended (a panic, reported by `finish`):
            // the row has nowhere to go.
            let _ = tx.send(row);
        }
    }

    /// Write what is queued and stop the thread (rows that still fail get
    /// [`FINAL_RETRY`] more).
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            warn!("the Dashboard writer stopped with a panic; its last rows may not be written");
        }
    }
}

fn run(path: &std::path::Path, rx: &mpsc::Receiver<Row>) {
    let mut pending = Pending {
        rows: Vec::new(),
        dropped: 0,
        failing: None,
        retry: RETRY_FIRST,
    };
    loop {
        // Nothing pending: wait for a row. Rows pending after a failure: wait for a row
        // or the next retry, whichever comes first.
        let next = if pending.rows.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(pending.retry)
        };
        match next {
            Ok(row) => pending.push(row),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Everything queued meanwhile goes in the same write.
        for row in rx.try_iter() {
            pending.push(row);
        }
        pending.write(path, false);
    }
    // Shutting down: what is still pending (the Offline row) gets a last chance.
    let end = Instant::now() + FINAL_RETRY;
    while !pending.rows.is_empty() {
        let last = Instant::now() + pending.retry >= end;
        if pending.write(path, last) || last {
            break;
        }
        std::thread::sleep(pending.retry);
    }
}
