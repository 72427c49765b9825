//! Children's output: one pipe per child, drained into its log by a task on the loop.

use super::*;

/// A child's log file, written by the log writer's thread (see `logs::writer`): the
/// event loop only queues its output, so a stalled disk never stops supervision. Whether
/// writing it fails is said on the console once when it starts failing (with the error)
/// and once when it works again (with what was lost), so a `Logs/` that cannot be
/// written is never silent.
pub(super) struct ChildLog {
    pub(super) file: LogFile,
    name: String,
}

impl ChildLog {
    pub(super) fn new(file: LogFile, name: &str) -> ChildLog {
        ChildLog {
            file,
            name: name.to_string(),
        }
    }

    pub(super) fn write(&self, buf: &[u8]) {
        self.file.write(buf);
    }

    /// Where a reader finds this child's output: `see Logs/x.log`, or why it is not there.
    /// Its last output may still be in the pipe or the writer's queue (an exit is handled
    /// first), so the writer is asked to write what it has and to try the file now; on a
    /// stalled disk it is not waited for longer than [`SEE_LOG_WAIT`].
    pub(super) fn see(&self) -> String {
        let name = &self.name;
        match self.file.probe(SEE_LOG_WAIT) {
            Probe::Answered(None) => format!("see Logs/{name}.log"),
            Probe::Answered(Some(e)) | Probe::NoAnswer(Some(e)) => {
                format!("its output could not be written to Logs/{name}.log: {e}")
            }
            Probe::NoAnswer(None) => format!(
                "see Logs/{name}.log, once the disk answers: its last output is still waiting \
                 to be written"
            ),
        }
    }
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// Copy a child's output pipe into its log until EOF (all writers, grandchildren too,
/// have closed it). One shared buffer: the runtime is single-threaded.
pub(super) fn start_drain(fd: std::os::fd::OwnedFd, log: Rc<ChildLog>, drains: Rc<Cell<usize>>) {
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
