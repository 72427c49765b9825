//! Children's output. Each child has one pipe (stdout and stderr together) read by a
//! task on the event loop into one shared 64 KiB buffer and queued for its log file,
//! which the log writer's thread writes (see `ai_employee_vault::logs::writer`): the
//! event loop only queues, so a stalled disk never stops supervision, and the pipe is
//! always drained, so a chatty child never blocks. Whether writing a log fails is said
//! on the console once when it starts failing and once when it works again.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ai_employee_vault::logs::LogFile;
use tracing::warn;

use super::Runtime;
use crate::supervisor::machine::later;

/// How long shutdown waits for the last output of dead children to reach their logs.
const DRAIN_LOGS_MAX: Duration = Duration::from_millis(500);

impl Runtime {
    /// Let the drain tasks copy the last output of dead children into their logs, for at
    /// most [`DRAIN_LOGS_MAX`].
    pub(super) async fn drain_last_output(&self) {
        let until = later(Instant::now(), DRAIN_LOGS_MAX);
        while self.drains.get() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// Copy a child's output pipe into its log until EOF (all writers, grandchildren too,
/// have closed it). One shared buffer: the runtime is single-threaded.
pub(super) fn start_drain(fd: OwnedFd, log: Rc<LogFile>, drains: Rc<Cell<usize>>) {
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            warn!("failed to watch a child's output: {e}");
            return;
        }
    };
    drains.set(drains.get() + 1);
    tokio::task::spawn_local(async move {
        loop {
            if rx.readable().await.is_err() {
                break;
            }
            let done = READ_BUF.with(|b| {
                let mut buf = b.borrow_mut();
                loop {
                    match rx.try_read(&mut buf) {
                        Ok(0) => return true,
                        // A write that does not fit the writer's queue is dropped and
                        // counted there, and said in the log before the next one.
                        Ok(n) => {
                            log.write(&buf[..n]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => return true,
                    }
                }
            });
            if done {
                break;
            }
        }
        drains.set(drains.get() - 1);
    });
}
