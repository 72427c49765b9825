//! Children's output. Each child has one pipe (stdout and stderr together) read by a
//! task on the event loop into one shared 64 KiB buffer and queued for its log file,
//! which the log writer's thread writes (see `ai_employee_vault::logs::writer`): the
//! event loop only queues, so a stalled disk never stops supervision, and the pipe is
//! always drained, so a chatty child never blocks. Whether writing a log fails is said
//! on the console once when it starts failing and once when it works again.
//!
//! With `log_timestamps` (the default) each line gets the local time it was read,
//! `2026-12-06 20:31:05.123 `, in front; a line that arrives in pieces gets one, at its
//! first piece.

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

/// Puts the time each line was read in front of it.
#[derive(Debug)]
pub(super) struct LineStamps {
    /// Whether the next byte starts a line.
    at_line_start: bool,
}

impl Default for LineStamps {
    fn default() -> Self {
        LineStamps {
            at_line_start: true,
        }
    }
}

impl LineStamps {
    /// `chunk` with `stamp` in front of each line that starts in it.
    pub(super) fn apply(&mut self, chunk: &[u8], stamp: &[u8]) -> Vec<u8> {
        let lines = chunk.iter().filter(|&&b| b == b'\n').count();
        let mut out = Vec::with_capacity(chunk.len() + (lines + 1) * stamp.len());
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(stamp);
            }
            out.extend_from_slice(piece);
            self.at_line_start = piece.ends_with(b"\n");
        }
        out
    }
}

/// Copy a child's output pipe into its log until EOF (all writers, grandchildren too,
/// have closed it), each line stamped with the time it was read when `stamps` is given.
/// One shared buffer: the runtime is single-threaded.
pub(super) fn start_drain(
    fd: OwnedFd,
    log: Rc<LogFile>,
    drains: Rc<Cell<usize>>,
    mut stamps: Option<LineStamps>,
) {
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
                        Ok(n) => match stamps.as_mut() {
                            Some(s) => {
                                let now = chrono::Local::now()
                                    .format("%Y-%m-%d %H:%M:%S%.3f ")
                                    .to_string();
                                log.write(&s.apply(&buf[..n], now.as_bytes()));
                            }
                            None => {
                                log.write(&buf[..n]);
                            }
                        },
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

#[cfg(test)]
mod tests {
    use super::LineStamps;

    #[test]
    fn each_line_is_stamped_once_however_it_arrives() {
        let mut s = LineStamps::default();
        let mut out = Vec::new();
        for (chunk, stamp) in [
            (&b"one\ntw"[..], &b"[1] "[..]),
            (b"o\n", b"[2] "),
            (b"\nthree", b"[3] "),
            (b" and more\nfour\n", b"[4] "),
        ] {
            out.extend(s.apply(chunk, stamp));
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[1] one\n[1] two\n[3] \n[3] three and more\n[4] four\n"
        );
    }
}
