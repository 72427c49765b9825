//! The only place that spawns, signals and reaps processes. Unix only; the few
//! Linux/macOS differences live in `stats/linux.rs` and `stats/macos.rs`, chosen by `cfg`.

pub mod guardian;
pub mod job;
pub mod records;
pub mod spawn;
pub mod stats;

use std::fmt;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// The signal's number: a process can die of one that has no name in [`Signal`] (a
    /// real-time signal), so this stays a number.
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The end of a process as `waitpid(2)` tells it; None for a stop or a continue.
    fn from_wait(status: libc::c_int) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

/// `code 3`, `signal SIGKILL`, `signal 34` (a signal without a name).
impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "code {c}"),
            ExitStatus::Signal(s) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "signal {}", sig.as_str()),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

/// `SIGKILL`, `SIGTERM`, … or `signal 42` for the unnamed.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

/// Reap every child that has exited, without blocking.
///
/// Through libc, not nix's `waitpid`: nix turns the status into its `Signal`, which has
/// no real-time signals, and answers EINVAL for a child killed by one, after the kernel
/// has reaped it, so that exit would be lost.
pub fn reap_all() -> Vec<(i32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes one int through the pointer, to a local we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => break, // children remain, none has ended
            -1 if nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
            -1 => break, // ECHILD: nothing left to reap
            pid => {
                if let Some(s) = ExitStatus::from_wait(status) {
                    out.push((pid, s));
                }
            }
        }
    }
    out
}

/// Send `sig` to every process in group `pgid`. Returns false if the group is empty.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    kill_group(pgid, Some(sig))
}

/// Whether group `pgid` still has members (zombies included until reaped).
pub fn group_alive(pgid: i32) -> bool {
    kill_group(pgid, None)
}

/// killpg(2); `None` sends no signal, only checks that the group has members.
fn kill_group(pgid: i32, sig: Option<Signal>) -> bool {
    if pgid <= 1 {
        return false; // never signal init's group or "every process"
    }
    nix::sys::signal::killpg(Pid::from_raw(pgid), sig).is_ok()
}

/// A pipe whose both ends are close-on-exec (children never inherit them by accident).
pub fn cloexec_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        // No pipe2 on macOS; the supervisor's only other thread never forks, so the
        // window between pipe() and fcntl() cannot leak the descriptors.
        let (rd, wr) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        for fd in [&rd, &wr] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
        }
        Ok((rd, wr))
    }
}

/// Make this process a child subreaper (Linux): orphaned grandchildren are re-parented to
/// us, so we reap them and can tell when a child's whole group is gone.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag; no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Raise the soft open-files limit to the hard limit: each child costs a pipe and a log.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // macOS refuses RLIM_INFINITY for open files; 10240 is its OPEN_MAX.
        #[cfg(target_os = "macos")]
        let hard = hard.min(10240);
        if soft < hard {
            // On failure the soft limit stays, which is what we would run with anyway.
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Drop this process's mappings of read-only code and data from files: its own
/// executable and the shared libraries (libc, the loader) (Linux).
///
/// Start-up runs code that is never needed again (argument and TOML parsing, set-up), and
/// the kernel maps in neighbouring pages around every fault; afterwards most of the binary
/// and of libc is counted in our resident set. `MADV_DONTNEED` on these never-written, file-backed
/// mappings only removes them from our page tables: the pages stay in the page cache and
/// what is used again is mapped back on its next access. Mappings holding private
/// (written) pages, such as relocated data, are left alone.
pub fn trim_code_pages() {
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let mut current: Option<(usize, usize)> = None;
        for line in smaps.lines() {
            let mut f = line.split_ascii_whitespace();
            let first = f.next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                // `start-end perms offset dev inode path`
                let perms = f.next().unwrap_or("");
                let inode = f.nth(2).and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
                // File-backed (an inode), private and never writable: the bytes are the
                // file's. The `Anonymous: 0` check below rules out relocated pages.
                let ours = inode != 0 && (perms == "r-xp" || perms == "r--p");
                current = ours.then_some((lo, hi - lo));
            } else if first == "Anonymous:"
                && let Some((addr, len)) = current.take()
                && f.next() == Some("0")
            {
                // SAFETY: the range is a whole read-only mapping of a file with no
                // private pages; dropping its page-table entries only makes
                // the next access fault the same bytes back in from the page cache.
                unsafe {
                    libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses() {
        // Exit codes sit in the second byte; a signal death in the low seven bits.
        assert_eq!(ExitStatus::from_wait(3 << 8), Some(ExitStatus::Code(3)));
        assert_eq!(ExitStatus::from_wait(0), Some(ExitStatus::Code(0)));
        assert_eq!(ExitStatus::from_wait(9), Some(ExitStatus::Signal(9)));
        // Killed by SIGSEGV with a core dump (0x80).
        assert_eq!(
            ExitStatus::from_wait(0x80 | 11),
            Some(ExitStatus::Signal(11))
        );
        // A real-time signal, which nix's Signal cannot name.
        assert_eq!(ExitStatus::from_wait(40), Some(ExitStatus::Signal(40)));
        // Stopped by SIGSTOP (0x7f, the signal in the second byte): not an end.
        assert_eq!(ExitStatus::from_wait(0x7f | (19 << 8)), None);
    }

    #[test]
    fn statuses_in_words() {
        assert_eq!(ExitStatus::Code(78).to_string(), "code 78");
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal SIGKILL");
        assert_eq!(ExitStatus::Signal(40).to_string(), "signal 40");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(40), "signal 40");
    }

    /// What the kernel reports for such a child (Linux: macOS has no real-time signals).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_killed_by_a_real_time_signal_is_reaped_with_its_status() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "kill -s 40 $$"])
            .spawn()
            .expect("sh starts");
        let status = child.wait().expect("sh is reaped").into_raw();
        assert_eq!(ExitStatus::from_wait(status), Some(ExitStatus::Signal(40)));
    }
}
