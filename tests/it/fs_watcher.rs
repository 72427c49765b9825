//! fs_watcher
