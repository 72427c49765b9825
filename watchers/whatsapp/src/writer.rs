//! The one thread that writes tasks: group commit over [`TaskSink`].
//!
//! Request handlers send their tasks down a channel and wait for the answer. The thread
//! takes everything queued at that moment, writes it with one [`TaskSink::write_batch`]
//! (one fsync per folder and one of the ledger for the whole group), then answers every
//! request of the group. A handler's answer therefore means "durable".
//!
//! The thread also touches the heartbeat when the server's timer asks it to, so a fresh
//! heartbeat means both the server and the writer are alive.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ai_employee_vault::tasks::{NewTask, TaskSink};
use tokio::sync::oneshot;

/// Per task of a job: its file name in `Needs_Action/`, or `None` when its message id
/// already had a task.
pub type Written = Vec<Option<String>>;

/// Where a job's answer goes.
type Answer = oneshot::Sender<Result<Written, WriteError>>;

/// Why a job's tasks are not durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the task writer has stopped")]
    Stopped,
    /// The group's write failed (the same line is logged once for the group).
    #[error("failed to write {count} task(s) into Needs_Action: {reason}")]
    Failed { count: usize, reason: String },
}

enum Msg {
    Write { tasks: Vec<NewTask>, done: Answer },
    Beat,
    Stop,
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
}

impl WriterHandle {
    /// Write `tasks` (in the next group) and wait until they are durable.
    pub async fn write(&self, tasks: Vec<NewTask>) -> Result<Written, WriteError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Msg::Write { tasks, done })
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Ask the writer to touch the heartbeat.
    pub fn beat(&self) {
        // Fails only once the writer has stopped, and then there is nothing to beat for.
        let _ = self.tx.send(Msg::Beat);
    }
}

/// The writer thread; [`Writer::stop`] finishes what is queued and joins it.
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the thread with the open sink of `vault`; `beat` touches the heartbeat
    /// (see [`ai_employee_vault::watcher::WatcherCtx::beat`]).
    pub fn start(
        vault: PathBuf,
        sink: TaskSink,
        beat: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("task-writer".into())
            .spawn(move || run(beat, vault, Some(sink), rx))?;
        Ok(Writer {
            tx,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> WriterHandle {
        WriterHandle {
            tx: self.tx.clone(),
        }
    }

    /// Write what is queued, then end the thread.
    pub fn stop(mut self) {
        // Fails only if the thread already ended; the join below reports a panic.
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the task writer panicked");
        }
    }
}

fn run(
    mut beat_now: impl FnMut(),
    vault: PathBuf,
    mut sink: Option<TaskSink>,
    rx: mpsc::Receiver<Msg>,
) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else {
            break;
        };
        let mut jobs = Vec::new();
        let mut beat = false;
        let mut take = |m: Msg, stop: &mut bool| match m {
            Msg::Write { tasks, done } => jobs.push((tasks, done)),
            Msg::Beat => beat = true,
            Msg::Stop => *stop = true,
        };
        take(first, &mut stop);
        while let Ok(m) = rx.try_recv() {
            take(m, &mut stop);
        }
        if beat {
            beat_now();
        }
        if !jobs.is_empty() {
            commit(&vault, &mut sink, jobs);
        }
    }
}

/// Write every job's tasks with one `write_batch` and answer each job.
fn commit(vault: &std::path::Path, sink: &mut Option<TaskSink>, jobs: Vec<(Vec<NewTask>, Answer)>) {
    let mut all = Vec::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for (tasks, done) in jobs {
        answers.push((tasks.len(), done));
        all.extend(tasks);
    }
    if sink.is_none() {
        *sink = reopen(vault);
    }
    let result = match sink {
        Some(s) => s.write_batch(&all).map_err(|e| e.to_string()),
        None => Err("the task store is not open".to_string()),
    };
    match result {
        Ok(names) => {
            let mut names = names.into_iter();
            for (n, done) in answers {
                // The handler may have gone (its client hung up); the tasks are durable.
                let _ = done.send(Ok(names.by_ref().take(n).collect()));
            }
        }
        Err(reason) => {
            let e = WriteError::Failed {
                count: all.len(),
                reason,
            };
            tracing::error!("{e}");
            for (_, done) in answers {
                // The handler may have gone (its client hung up); nobody is left to tell.
                let _ = done.send(Err(e.clone()));
            }
            // After a failure part-way, the sink's memory of seen ids may lag its ledger:
            // open it again, which re-reads the ledger and finishes or discards what the
            // failure interrupted. Until that works, every write fails (and Meta retries).
            *sink = None;
            *sink = reopen(vault);
        }
    }
}

fn reopen(vault: &std::path::Path) -> Option<TaskSink> {
    match TaskSink::open(vault, super::NAME) {
        Ok((s, recovered)) => {
            for name in recovered {
                tracing::info!("published {name} (recovered)");
            }
            Some(s)
        }
        Err(e) => {
            tracing::error!("failed to reopen the task store: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn task(key: &str) -> NewTask {
        NewTask {
            key: key.into(),
            prefix: "WHATSAPP",
            when: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            title: format!("t {key}"),
            stem: None,
            text: format!("---\nmessage_id: {key}\n---\n"),
        }
    }

    #[test]
    fn concurrent_jobs_are_each_answered_after_the_write() {
        let tmp = tempfile::tempdir().unwrap();
        let (sink, _) = TaskSink::open(tmp.path(), "whatsapp").unwrap();
        let beats = Arc::new(AtomicUsize::new(0));
        let counter = beats.clone();
        let writer = Writer::start(tmp.path().to_path_buf(), sink, move || {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        writer.handle().beat();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let results = rt.block_on(async {
            let mut handles = Vec::new();
            for i in 0..40 {
                let w = writer.handle();
                handles.push(async move {
                    w.write(vec![
                        task(&format!("wamid.{i}")),
                        task(&format!("wamid.{}", i % 5)),
                    ])
                    .await
                });
            }
            futures_util::future::join_all(handles).await
        });
        writer.stop();
        assert_eq!(beats.load(Ordering::Relaxed), 1);
        let mut written = 0;
        for r in results {
            let names = r.unwrap();
            assert_eq!(names.len(), 2);
            written += names.iter().flatten().count();
        }
        assert_eq!(written, 40);
        let files = std::fs::read_dir(tmp.path().join("Needs_Action"))
            .unwrap()
            .count();
        assert_eq!(files, 40);
    }
}
