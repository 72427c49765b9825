//! What the health poll and the child records need to know about a live process.

/// Scheduler state, as far as health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// Stopped by a signal (SIGSTOP, SIGTSTP) or traced.
    Stopped,
    Zombie,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub state: RunState,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Start time in an OS-specific unit; only compared for equality (pid reuse check).
    pub start_time: u64,
    /// User + system CPU time in nanoseconds.
    pub cpu_ns: u64,
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

/// Information about `pid`, or None if it does not exist (or cannot be read).
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    imp::proc_info(pid)
}
