//! Test builder: a temp vault, a table writer, a spawned supervisor with a watchdog, and
//! `wait_until(cond, deadline)`. No fixed sleeps: every wait is on a condition.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ai-employee");

/// Poll `cond` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait for `child` to exit, with a deadline; None if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// CPU time `pid` has used so far (user + system, from /proc/PID/stat); None when the
/// process is gone or this is not Linux.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces): state is the first,
    // utime the 12th, stime the 13th.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf reads a constant; no memory involved.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / hz.max(1)))
}

/// The CPU time `pid` uses during the next `window` (a measurement: the window is the
/// point, not a wait for something).
pub fn cpu_used_over(pid: i32, window: Duration) -> Duration {
    let before = cpu_time(pid).expect("the process's CPU time");
    std::thread::sleep(window);
    let after = cpu_time(pid).expect("the process's CPU time (still running)");
    after.saturating_sub(before)
}

/// How often `pid`'s threads have been switched out so far (voluntary and not: each a
/// wake-up or a preemption), from /proc/PID/task/*/status; None when not Linux.
pub fn context_switches(pid: i32) -> Option<u64> {
    threads_status_sum(pid, |l| l.contains("ctxt_switches:"))
}

/// The sum over `pid`'s threads of the values of the `/proc/PID/task/*/status` lines
/// `keep` takes.
fn threads_status_sum(pid: i32, keep: impl Fn(&str) -> bool) -> Option<u64> {
    let mut n = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = fs::read_to_string(task.ok()?.path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .filter(|l| keep(l))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(n)
}

/// How often `pid`'s threads have gone to sleep so far (voluntary context switches: each
/// one a wait that ended in a wake-up), from /proc/PID/task/*/status; None when not
/// Linux. Unlike [`context_switches`], not raised by preemptions on a busy machine.
pub fn wake_ups(pid: i32) -> Option<u64> {
    threads_status_sum(pid, |l| l.starts_with("voluntary_ctxt_switches:"))
}

/// Wait (10 s at most) until `pid` has not woken for half a second: the tail of its
/// start-up (writes waiting for a busy disk, say) is over before an idle window is
/// measured. A process that keeps waking (the behaviour such a window looks for) just
/// uses up the 10 s.
pub fn settle(pid: i32) {
    let mut last = (wake_ups(pid), Instant::now());
    let _ = wait_until(Duration::from_secs(10), || {
        let now = wake_ups(pid);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= Duration::from_millis(500)
    });
}

/// An idle window: once `pid` has [`settle`]d, its [`wake_ups`] over `window` (a
/// measurement, not a wait for something) and the seconds the window really took.
pub fn wake_ups_over(pid: i32, window: Duration) -> (u64, f64) {
    settle(pid);
    let before = wake_ups(pid).expect("wake-ups");
    let started = Instant::now();
    std::thread::sleep(window);
    let woken = wake_ups(pid).expect("wake-ups (still running)") - before;
    (woken, started.elapsed().as_secs_f64())
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rfind(')').and_then(|i| s[i + 2..].chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => {
            // Not Linux, or gone.
            // SAFETY: kill with signal 0 only checks for existence.
            cfg!(not(target_os = "linux")) && unsafe { libc::kill(pid, 0) == 0 }
        }
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: sends a signal; no memory involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wall-clock nanoseconds, comparable with `date +%s%N` in fixture children.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub vault: PathBuf,
    pub config: PathBuf,
}

/// What a failed test left running in its folder (a loop, a worker, an agent) must not
/// live on into other tests (a worker retrying a Redis port another test's server gets
/// later would take that test's runs): SIGKILL every process but this one whose command
/// line mentions `dir` or whose working directory is under it. Linux (`/proc`); elsewhere
/// nothing.
pub fn kill_processes_in(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let needle = dir.as_os_str().as_bytes();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let mentions = fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle));
        let inside = fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(dir));
        if mentions || inside {
            // SAFETY: kill(2) with a pid read from /proc; at worst the process is gone.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

impl Drop for TestVault {
    fn drop(&mut self) {
        kill_processes_in(self.dir.path());
    }
}

impl TestVault {
    pub fn new() -> TestVault {
        let dir = tempfile::Builder::new()
            .prefix("aie-it-")
            .tempdir()
            .expect("tempdir");
        let vault = dir.path().join("vault");
        let config = dir.path().join("table.toml");
        TestVault { dir, vault, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_config(&self, text: &str) {
        fs::write(&self.config, text).expect("write table");
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.dir.path().join(rel)).unwrap_or_default()
    }

    pub fn system_log(&self) -> String {
        fs::read_to_string(self.vault.join("Logs/system.log")).unwrap_or_default()
    }

    pub fn dashboard(&self) -> String {
        fs::read_to_string(self.vault.join("Dashboard.md")).unwrap_or_default()
    }

    /// `supervise --vault V --config C`, output to files in the temp dir.
    pub fn start(&self) -> Supervisor {
        self.start_with(&[])
    }

    pub fn start_with(&self, extra_env: &[(&str, &str)]) -> Supervisor {
        let out = self.dir.path().join(format!("supervisor-{}.out", now_ns()));
        let mut cmd = Command::new(BIN);
        cmd.arg("supervise")
            .arg("--vault")
            .arg(&self.vault)
            .arg("--config")
            .arg(&self.config)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&out).expect("out file")))
            .stderr(Stdio::from(
                fs::File::create(out.with_extension("err")).expect("err file"),
            ));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn supervisor");
        Supervisor {
            child: Some(child),
            out,
        }
    }
}

pub struct Supervisor {
    child: Option<Child>,
    out: PathBuf,
}

impl Supervisor {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Console output so far (stderr).
    pub fn console(&self) -> String {
        fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    /// Wait for exit with a deadline; None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(st)
    }

    /// SIGTERM and wait (the normal end of a test).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for Supervisor {
    /// Watchdog: a supervisor left running by a failed test is killed (its guardian then
    /// takes its children down).
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `[[process]]` entry running `/bin/sh -c SCRIPT` (the supervisor execs /bin/sh
/// directly; the shell is the fixture, not the supervisor's).
pub fn sh_process(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[[process]]\nname = \"{name}\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", {script:?}]\n{extra}\n"
    )
}

/// Lines of a marker file written by fixture children.
pub fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The pids recorded by `echo "start $$ $(date +%s%N)" >> MARKER` lines.
pub fn starts(p: &Path) -> Vec<(i32, u128)> {
    lines(p)
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == "start").then_some(())?;
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// A running `ai-employee watch <name>` (started directly, not by a supervisor) with its
/// stderr in `<name>-<n>.err` next to the vault. Killed (SIGKILL) when dropped.
pub struct WatcherProc {
    child: Option<Child>,
    err: PathBuf,
}

static WATCHER_STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl WatcherProc {
    /// `watch <name> --vault <vault> <args>`, with `configure` for extra environment.
    pub fn spawn_with(
        name: &str,
        vault: &Path,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> WatcherProc {
        let n = WATCHER_STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let err = vault
            .parent()
            .expect("vault has a parent")
            .join(format!("{name}-{n}.err"));
        let mut cmd = Command::new(BIN);
        cmd.args(["watch", name, "--vault"])
            .arg(vault)
            .args(args)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env_remove("AI_EMPLOYEE_HEARTBEAT")
            .env_remove("AI_EMPLOYEE_LOG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&err).expect("stderr file")));
        configure(&mut cmd);
        WatcherProc {
            child: Some(cmd.spawn().expect("spawn watcher")),
            err,
        }
    }

    pub fn spawn(name: &str, vault: &Path, args: &[&str]) -> WatcherProc {
        WatcherProc::spawn_with(name, vault, args, |_| {})
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(-1, |c| c.id() as i32)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait (20 s at most) for `needle` in the log; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let ok = wait_until(Duration::from_secs(20), || self.log().contains(needle));
        assert!(ok, "no {needle:?} in the watcher's log:\n{}", self.log());
        self.log()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(st)
    }

    /// SIGTERM and wait up to `timeout`: the exit status and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (Option<ExitStatus>, Duration) {
        let t = Instant::now();
        if self.child.is_some() {
            signal(self.pid(), libc::SIGTERM);
        }
        let st = self.wait_exit(timeout);
        (st, t.elapsed())
    }

    /// SIGTERM and wait; asserts a clean exit (0). Returns how long it took.
    pub fn stop_clean(&mut self, timeout: Duration) -> Duration {
        let (st, took) = self.terminate(timeout);
        assert_eq!(
            st.and_then(|s| s.code()),
            Some(0),
            "watcher did not stop cleanly:\n{}",
            self.log()
        );
        took
    }

    /// SIGKILL and reap (the kernel has released the watcher's lock once this returns).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for WatcherProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP/1.1 request as a test server (a stand-in, a webhook receiver) received it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// The target before any `?`.
    pub path: String,
    /// The target after the `?` (empty without one).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one request (request line, headers, `Content-Length` body) from `conn`; None
/// when the peer closed or sent something else.
pub fn read_http_request(conn: &std::net::TcpStream) -> Option<HttpRequest> {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = HttpRequest {
        method,
        path,
        query,
        headers,
        body: String::new(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    req.body = String::from_utf8_lossy(&body).into_owned();
    Some(req)
}
