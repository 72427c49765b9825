//! The one-supervisor-per-vault lock.
