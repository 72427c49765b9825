//! The agents' runs on threads of their own (`agent-runs`, one per core, 2 to 4), handed
//! out in turn. Everything a run does between its claim and its end (its log opened, the
//! agent spawned, its output read, its exit reaped, its log's tail read back) was a
//! quarter of the scheduling thread's CPU per task; here it uses the machine's other cores
//! while the loop claims, finishes and schedules. A run talks to the loop only through
//! channels (its progress, its end, its abort), so which thread drives it changes nothing
//! else. Without the threads (they could not be started) runs are driven by the loop's own
//! runtime, as before.

use std::cell::Cell;
use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// How many threads drive the runs: one per core, at least 2 and at most 4. A spawn
/// blocks its thread until the agent has exec'd (`posix_spawn`'s vfork), and reading its
/// start time right after waits for the exec to finish: with one thread every run queued
/// behind those waits (the loop ran 10,000 no-op tasks in 1.9–2.4× the bare spawn time
/// with one thread, 1.4–1.9× with two, in alternating runs; 3 were no better than 2 on 2
/// cores: docs/BENCHMARKS.md, "The task loop").
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

pub(super) struct Runs {
    handles: Vec<Handle>,
    /// The thread the next run goes to.
    next: Cell<usize>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Runs {
    /// [`threads`] one-thread runtimes, on threads named `agent-runs`.
    pub(super) fn start() -> std::io::Result<Runs> {
        let mut runs = Runs {
            handles: Vec::new(),
            next: Cell::new(0),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for _ in 0..threads() {
            let rt = Builder::new_current_thread().enable_all().build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("agent-runs".into())
                .spawn(move || {
                    // Until the loop lets go; a run still going then is dropped with the
                    // runtime (the loop stops only once every run ended).
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            runs.handles.push(handle);
            runs.stops.push(stop);
            runs.threads.push(thread);
        }
        Ok(runs)
    }

    /// Drive `run` on the next thread in turn.
    pub(super) fn spawn(&self, run: impl Future<Output = ()> + Send + 'static) {
        let i = self.next.get() % self.handles.len();
        self.next.set(i + 1);
        self.handles[i].spawn(run);
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(()); // the thread is gone only after a panic, already reported
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn runs_are_driven_on_their_own_thread_with_timers_and_processes() {
        let runs = match Runs::start() {
            Ok(r) => r,
            Err(e) => panic!("start: {e}"),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        runs.spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let status = tokio::process::Command::new("true").status().await;
            let name = std::thread::current().name().map(str::to_string);
            let _ = tx.send((name, status.map(|s| s.success()).ok()));
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((name, ok)) => {
                assert_eq!(name.as_deref(), Some("agent-runs"));
                assert_eq!(ok, Some(true));
            }
            Err(e) => panic!("the run did not end: {e}"),
        }
        drop(runs); // joins the thread
    }

    #[test]
    fn a_run_that_blocks_its_thread_does_not_hold_up_the_next() {
        // A spawn blocks its thread until the agent exec'd: the next run goes on another.
        let runs = match Runs::start() {
            Ok(r) => r,
            Err(e) => panic!("start: {e}"),
        };
        let (a_tx, a_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let d1 = done_tx.clone();
        runs.spawn(async move {
            // Blocks its whole thread until the second run has run.
            let ok = a_rx.recv_timeout(Duration::from_secs(30)).is_ok();
            let _ = d1.send(("first", ok));
        });
        runs.spawn(async move {
            let _ = a_tx.send(());
            let _ = done_tx.send(("second", true));
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            match done_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(x) => got.push(x),
                Err(e) => panic!("the runs did not end: {e}"),
            }
        }
        got.sort();
        assert_eq!(got, vec![("first", true), ("second", true)]);
    }
}
