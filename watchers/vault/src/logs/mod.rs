//! Log files: size-rotated files shared by the system log and every child's log, the
//! thread that writes them (so that a stalled disk never stops the event loop), and the
//! tracing layer that writes `Logs/system.log` and the console.

pub mod rotate;
pub mod system;
pub mod writer;

pub use rotate::RotatingFile;
pub use writer::{LogFile, LogWriter};
