//! Dashboard rows for approvals that failed, written by a background thread
//! (`append_rows` fsyncs and may wait for other writers; the handler must not).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use ai_employee_vault::dashboard::{Row, append_rows};

pub struct DashboardRows {
    tx: Option<Sender<Row>>,
    done: Receiver<()>,
}

impl DashboardRows {
    pub fn start(dashboard: PathBuf) -> DashboardRows {
        let (tx, rx) = channel::<Row>();
        let (done_tx, done) = channel();
        let spawned = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut rows = vec![first];
                    rows.extend(rx.try_iter());
                    if let Err(e) = append_rows(&dashboard, &rows) {
                        tracing::warn!(
                            "failed to add {} row(s) to {}: {e}",
                            rows.len(),
                            dashboard.display()
                        );
                    }
                }
                // Nobody waits any more only when `finish` gave up waiting: nothing to tell.
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("no Dashboard rows this run: cannot start a thread: {e}");
        }
        DashboardRows { tx: Some(tx), done }
    }

    pub fn push(&self, status: &str, details: String) {
        let row = Row {
            timestamp: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
            action: "Approval".to_string(),
            status: status.to_string(),
            details,
        };
        if let Some(tx) = &self.tx
            && tx.send(row).is_err()
        {
            tracing::warn!("Dashboard writer is gone; row dropped");
        }
    }

    /// Let queued rows be written, for at most `limit`.
    pub fn finish(mut self, limit: Duration) {
        self.tx = None;
        // A writer slower than `limit` (a stuck disk) does not hold up the stop; the rows
        // it still has are the price, as the limit says.
        let _ = self.done.recv_timeout(limit);
    }
}
