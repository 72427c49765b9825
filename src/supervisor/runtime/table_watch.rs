//! `[supervisor] reload_on_change`: the table file is watched and a saved change is
//! applied like `reload`, after the edits have settled ([`SETTLE`]).
//!
//! The folder is watched, not the file: editors save by writing a new file and renaming
//! it over the old one, which a watch on the file itself would lose. Only changes make
//! events (the vault's `folder_events`): reading the table on reload does not, so a
//! reload never wakes the watch again. Events for other names in the folder (the vault
//! root also holds Dashboard.md) are dropped on the events' own thread, so they never
//! wake the event loop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_employee_vault::folder_events::{FolderEvent, FolderEvents};
use tokio::sync::mpsc::UnboundedSender;

/// How long the table must be left alone before a change is applied: an editor's save
/// (write, rename, attribute changes) is one change, not several.
pub const SETTLE: Duration = Duration::from_millis(500);

/// A watch on the table file; events stop when it is dropped.
pub struct TableWatch {
    _events: FolderEvents,
}

/// The file a running supervisor reloads: `--config FILE`, else the vault's table (which
/// may not exist yet: creating it counts as a change).
pub fn table_path(vault: &Path, explicit: Option<&Path>) -> PathBuf {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => vault.join(ai_employee_vault::layout::VAULT_CONFIG_NAME),
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// The bytes of the table a load of `path` uses: the file's, or (without `--config`)
/// the built-in table's when there is no file.
pub fn bytes_in_force(path: &Path, explicit: bool) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Some(crate::config::DEFAULT_TABLE.as_bytes().to_vec())
        }
        Err(_) => None,
    }
}

/// Watch `path`'s folder and send `()` on `changed` for each change to `path` (and when
/// events were lost, or the folder went away: the reload compares the bytes anyway).
pub fn watch(path: &Path, changed: UnboundedSender<()>) -> std::io::Result<TableWatch> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let table: Option<OsString> = path.file_name().map(OsString::from);
    let events = FolderEvents::watch(&[folder], move |event| {
        let about_table = match event {
            FolderEvent::Name { name, .. } => Some(name) == table,
            FolderEvent::Lost | FolderEvent::FolderGone(_) => true,
            FolderEvent::Failed(e) => {
                tracing::warn!(
                    "the table is no longer watched for changes ({e}); use `ai-employee \
                     reload` after editing it"
                );
                false
            }
        };
        if about_table {
            // Fails only when the loop has stopped.
            let _ = changed.send(());
        }
    })?;
    Ok(TableWatch { _events: events })
}
