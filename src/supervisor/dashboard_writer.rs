//! Dashboard rows are written on a thread of their own: a write fsyncs and may retry
//! around someone else's edit, and supervision must never wait for it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tracing::warn;

use crate::vault::dashboard::{Row, append_rows};

pub struct DashboardWriter {
    tx: Option<mpsc::Sender<Row>>,
    handle: Option<JoinHandle<()>>,
}

impl DashboardWriter {
    pub fn start(path: PathBuf) -> DashboardWriter {
        let (tx, rx) = mpsc::channel::<Row>();
        let handle = std::thread::Builder::new()
            .name("dashboard".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everything queued meanwhile goes in the same write.
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    if let Err(e) = append_rows(&path, &batch) {
                        warn!(
                            "failed to update {}: {e} ({} rows not written)",
                            path.display(),
                            batch.len()
                        );
                    }
                }
            });
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
            let _ = tx.send(row);
        }
    }

    /// Write what is queued and stop the thread.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
