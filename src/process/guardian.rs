//! The orphan guardian: a tiny process (`ai-employee __guardian`) that outlives a killed
//! supervisor just long enough to take its children down.
//!
//! The supervisor keeps the write end of a pipe whose read end is the guardian's stdin,
//! and tells it each child process group as it starts (`+PGID`) and ends (`-PGID`). When
//! the supervisor dies for any reason, SIGKILL included, the kernel closes its end; the
//! guardian reads EOF and SIGKILLs every group still recorded. A clean shutdown sends `q`
//! first, so the guardian leaves quietly.
//!
//! Unlike a parent-death signal, this reaches grandchildren (they share the child's
//! group) and does not depend on which thread spawned what.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{SigHandler, Signal};

/// The supervisor's handle.
pub struct Guardian {
    pipe: std::fs::File,
    pid: i32,
}

impl Guardian {
    /// Start a guardian that knows the groups in `pgids`.
    pub fn spawn(pgids: impl IntoIterator<Item = i32>) -> io::Result<Guardian> {
        let (rd, wr): (OwnedFd, OwnedFd) = super::cloexec_pipe()?;
        let mut cmd = Command::new(super::spawn::self_exe()?);
        cmd.arg0("ai-employee")
            .arg("__guardian")
            .stdin(Stdio::from(rd))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group: a terminal's Ctrl+C goes to the supervisor, not to it.
            .process_group(0);
        let child = cmd.spawn()?;
        drop(cmd);
        let pid = child.id() as i32;
        drop(child);
        let mut g = Guardian {
            pipe: std::fs::File::from(wr),
            pid,
        };
        let mut batch = String::new();
        for p in pgids {
            batch.push_str(&format!("+{p}\n"));
        }
        if !batch.is_empty() {
            g.pipe.write_all(batch.as_bytes())?;
        }
        Ok(g)
    }

    /// Start the guardian by `fork` without `exec`: it then shares the supervisor's pages
    /// instead of mapping a second copy of the binary (about 1 MiB instead of 2.5).
    ///
    /// # Safety
    /// The process must be single-threaded (call it before any thread or runtime starts):
    /// the child allocates and takes locks after the fork.
    pub unsafe fn fork_early() -> io::Result<Guardian> {
        let (rd, wr): (OwnedFd, OwnedFd) = super::cloexec_pipe()?;
        // SAFETY: single-threaded per this function's contract.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                use std::os::fd::AsRawFd;
                // SAFETY: plain descriptor and process-group syscalls in the new child.
                unsafe {
                    libc::dup2(rd.as_raw_fd(), 0);
                    close_from(3);
                    libc::setpgid(0, 0);
                }
                let code = run_guardian();
                // SAFETY: leave without running the supervisor's destructors or atexit hooks.
                unsafe { libc::_exit(code) }
            }
            pid => {
                drop(rd);
                Ok(Guardian {
                    pipe: std::fs::File::from(wr),
                    pid,
                })
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Record a new child group. Errors (a dead guardian) are reported to the caller,
    /// which restarts the guardian when it reaps it.
    pub fn add(&mut self, pgid: i32) -> io::Result<()> {
        self.pipe.write_all(format!("+{pgid}\n").as_bytes())
    }

    pub fn remove(&mut self, pgid: i32) -> io::Result<()> {
        self.pipe.write_all(format!("-{pgid}\n").as_bytes())
    }

    /// Clean shutdown: the guardian exits without killing anything.
    pub fn dismiss(mut self) {
        // It fails only when the guardian is gone already: then there is no one to dismiss.
        let _ = self.pipe.write_all(b"q\n");
    }

    /// End a guardian that can no longer be told about groups (its pipe is broken) before
    /// a new one takes over: SIGKILL first, so that closing the pipe (its EOF) can never
    /// make it kill the groups it knew. Its pid is still ours to signal: it is reaped only
    /// after this handle is gone.
    pub fn kill(self) {
        // Unreaped, its pid cannot have been reused; ESRCH means it is gone, as wanted.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
    }
}

/// Close every descriptor from `low` up (the guardian must not hold the supervisor's lock
/// or the write end of its own pipe).
///
/// # Safety
/// Closes descriptors behind the back of whatever owns them: only for a fresh child.
unsafe fn close_from(low: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: close_range has no memory arguments.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) == 0
        {
            return;
        }
    }
    // SAFETY: as above.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(256, 65536) as i32;
    for fd in low..max {
        // SAFETY: closing a descriptor number; errors (EBADF) are ignored.
        unsafe {
            libc::close(fd);
        }
    }
}

/// The guardian's main loop (`ai-employee __guardian`). Returns its exit code.
pub fn run_guardian() -> i32 {
    // Stray terminal and service-manager signals must not take it down before the
    // supervisor; only SIGKILL (or EOF) ends it.
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPIPE,
    ] {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
        // It fails only for SIGKILL and SIGSTOP, which are not in this list.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    let mut groups: HashSet<i32> = HashSet::with_capacity(64);
    let stdin = io::stdin();
    let mut line = String::new();
    let mut input = stdin.lock();
    // From here on the guardian sleeps in read(2) almost always: keep only the code its
    // loop touches.
    super::trim_code_pages();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break, // the supervisor is gone
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        let l = line.trim_end();
        if l == "q" {
            return 0;
        }
        if let Some(n) = l.strip_prefix('+').and_then(|n| n.parse::<i32>().ok()) {
            groups.insert(n);
        } else if let Some(n) = l.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
            groups.remove(&n);
        }
    }
    for g in groups {
        super::signal_group(g, Signal::SIGKILL);
    }
    0
}
