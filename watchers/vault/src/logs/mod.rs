//! Log files: size-rotated files shared by the system log and every child's log, and the
//! tracing layer that writes `Logs/system.log` and the console.

pub mod rotate;
pub mod system;

pub use rotate::RotatingFile;
