//! The vault: its layout, atomic writes of user-owned files, the Dashboard, the lock.

pub mod atomic;
pub mod dashboard;
pub mod dashboard_archive;
pub mod dashboard_text;
pub mod frontmatter;
pub mod layout;
pub mod lock;
pub mod nofollow;

pub use layout::Vault;
