//! What the supervisor tells people: the system status derived from the children, the
//! console's banner and statistics, Dashboard rows (written on their own thread) and
//! `[[notify]]` webhooks.

pub mod console;
pub mod dashboard;
pub mod notify;
pub mod summary;
