//! The agents' runs on a thread of their own. Everything a run does between its claim and
//! its end (its log opened, the agent spawned, its output read, its exit reaped, its log's
//! tail read back) was a quarter of the scheduling thread's CPU per task; here it uses the
//! machine's other cores while the loop claims, finishes and schedules. A run talks to
//! the loop only through channels (its progress, its end, its abort), so which thread
//! drives it changes nothing else. Without the thread (it could not be started) runs are
//! driven by the loop's own runtime, as before.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub(super) struct Runs {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Runs {
    /// A one-thread runtime on the thread `agent-runs`.
    pub(super) fn start() -> std::io::Result<Runs> {
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
        Ok(Runs {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Drive `run` on the thread.
    pub(super) fn spawn(&self, run: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(run);
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(()); // the thread is gone only after a panic, already reported
        }
        if let Some(t) = self.thread.take() {
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
}
