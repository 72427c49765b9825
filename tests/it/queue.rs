//! The work queue with a real Redis (Debian's `redis-server`, started on a loopback port by
//! each test, without persistence) and real `ai-employee worker` processes running a
//! stand-in agent (a shell script that writes a plan and a draft and prints Claude Code's
//! JSON result).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ai_employee::agent::events::RunResult;
use ai_employee::queue::wire::{AgentSpec, TaskMessage, VERSION};
use ai_employee::queue::{
    Credentials, Incoming, QueueClient, QueueError, Verdict, Written, fence, write_files,
};

use crate::common::{BIN, signal, wait_child, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private redis-server on a loopback port, no persistence; stopped on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// None (and a SKIPPED line) when redis-server is not installed.
    pub fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIPPED: redis-server is not installed (tests/run.sh installs it)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("aie-redis-")
            .tempdir()
            .unwrap();
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir,
        };
        r.spawn();
        Some(r)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        assert!(
            wait_until(DEADLINE, || self.pings()),
            "redis-server did not answer on port {}",
            self.port
        );
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Send one inline command as the default user; it must answer `+OK`.
    pub fn ok(&self, command: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"+OK\r\n", "{command}");
    }

    /// SIGKILL the server (nothing is saved) and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn client(rt: &tokio::runtime::Runtime, url: &str) -> QueueClient {
    rt.block_on(async {
        let mut c = QueueClient::connect(url, &Credentials::default()).await?;
        c.ensure_groups().await?;
        Ok::<_, QueueError>(c)
    })
    .unwrap()
}

/// The stand-in agent. Arguments: the task id and a marker folder (may be empty). With a
/// marker folder, the first run anywhere (an atomic mkdir) says it started and waits for
/// `<marker>/go`; every other run answers at once.
const AGENT: &str = r#"#!/bin/sh
task="$1"; mark="$2"
if [ -n "$mark" ] && mkdir "$mark/first" 2>/dev/null; then
  touch "$mark/started"
  i=0
  while [ ! -e "$mark/go" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
fi
printf '# Plan for %s\n' "$task" > "Plans/PLAN_$task.md"
printf -- '---\ntype: approval_request\naction: send_email\ntask: %s\n---\nHello\n' "$task" > "Pending_Approval/EMAIL_$task.md"
printf 'scratch\n' > "Plans/notes.txt"
printf '{"type":"result","subtype":"success","is_error":false,"result":"Planned.\\nSTATUS: waiting for approval","session_id":"s-%s","total_cost_usd":0.01,"num_turns":2}\n' "$task"
"#;

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    agent: PathBuf,
    marker: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        crate::common::kill_processes_in(self.dir.path());
    }
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("aie-queue-")
            .tempdir()
            .unwrap();
        let agent = dir.path().join("agent.sh");
        fs::write(&agent, AGENT).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
        let marker = dir.path().join("marker");
        fs::create_dir(&marker).unwrap();
        Setup { dir, agent, marker }
    }

    pub(crate) fn task(&self, id: &str, attempt: u32, blocking: bool) -> TaskMessage {
        let marker = if blocking {
            self.marker.display().to_string()
        } else {
            String::new()
        };
        TaskMessage {
            v: VERSION,
            task_id: id.into(),
            attempt,
            task: format!("---\ntype: email\n---\n# {id}\n"),
            handbook: "Be polite.\n".into(),
            prompt: format!("Work on In_Progress/{id}.md"),
            agent: AgentSpec {
                command: vec![self.agent.display().to_string(), "{task}".into(), marker],
                resume: vec!["--resume".into(), "{session_id}".into()],
                continue_prompt: "Go on.".into(),
                verify: None,
                max_iterations: 1,
                timeout_ms: 60_000,
                kill_after_ms: 1_000,
                env: Default::default(),
                runner: None,
                image: None,
            },
            published_at: chrono::Utc::now(),
        }
    }

    /// `ai-employee worker` named `name`, its output in `<name>.log`.
    fn worker(&self, url: &str, name: &str, claim: &str) -> Child {
        self.worker_with(url, name, claim, &[], &[])
    }

    /// `worker` with more arguments and environment.
    pub(crate) fn worker_with(
        &self,
        url: &str,
        name: &str,
        claim: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Child {
        let log = fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        worker_command(url, name, claim, log)
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("work-{name}")))
            .arg("--allow-program")
            .arg(&self.agent)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .unwrap()
    }

    pub(crate) fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// `ai-employee worker --queue URL --name NAME`, with `--claim-timeout CLAIM` unless `claim`
/// is empty (the loop's is followed), no queue credentials from the environment, its
/// output into `log`; the caller adds the rest and spawns it.
pub(crate) fn worker_command(url: &str, name: &str, claim: &str, log: fs::File) -> Command {
    let mut c = Command::new(BIN);
    c.args(["worker", "--queue", url, "--name", name]);
    if !claim.is_empty() {
        c.args(["--claim-timeout", claim]);
    }
    c.env_remove("AI_EMPLOYEE_QUEUE_CREDENTIALS")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    c
}

/// Results until `n` arrived (or the deadline).
pub(crate) fn results(
    rt: &tokio::runtime::Runtime,
    c: &mut QueueClient,
    n: usize,
) -> Vec<Incoming> {
    let mut out = Vec::new();
    let end = std::time::Instant::now() + DEADLINE;
    while out.len() < n && std::time::Instant::now() < end {
        // A connection broken by a server restart fails one call, then reconnects.
        match rt.block_on(c.read_results(16, Duration::from_millis(200))) {
            Ok(got) => out.extend(got),
            Err(e) if e.is_unreachable() => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
    out
}

fn stop(mut w: Child) {
    signal(w.id() as i32, libc::SIGTERM);
    let st = wait_child(&mut w, DEADLINE).expect("the worker stops on SIGTERM");
    assert_eq!(st.code(), Some(0), "a stopped worker exits 0");
}

#[test]
fn a_worker_runs_a_task_and_its_files_reach_the_vault_once() {
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    rt.block_on(c.publish(&s.task("EMAIL_1", 1, false)))
        .unwrap();
    let w = s.worker(&redis.url(), "w1", "10m");

    let got = results(&rt, &mut c, 1);
    assert_eq!(got.len(), 1, "worker log:\n{}", s.log("w1"));
    let r = got[0].result.as_ref().expect("a valid result");
    let m = &r.message;
    assert_eq!((m.task_id.as_str(), m.attempt), ("EMAIL_1", 1));
    assert_eq!(m.status, RunResult::WaitingApproval);
    assert_eq!((m.worker.as_str(), m.turns), ("w1", 2));
    assert_eq!(m.session_id.as_deref(), Some("s-EMAIL_1"));
    assert!((m.cost_usd - 0.01).abs() < 1e-9);
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["Plans/PLAN_EMAIL_1.md", "Pending_Approval/EMAIL_EMAIL_1.md"],
        "only Markdown under Plans/ and Pending_Approval/ comes back"
    );

    // The loop's side: fence, write no-replace, acknowledge after.
    assert_eq!(fence(m.attempt, Some(1)), Verdict::Accept);
    let vault = s.dir.path().join("vault");
    fs::create_dir_all(vault.join("Plans")).unwrap();
    fs::create_dir_all(vault.join("Pending_Approval")).unwrap();
    let w1 = write_files(&vault, &r.files).unwrap();
    assert!(w1.iter().all(|w| matches!(w, Written::Created(_))));
    assert_eq!(
        fs::read_to_string(vault.join("Plans/PLAN_EMAIL_1.md")).unwrap(),
        "# Plan for EMAIL_1\n"
    );
    // A replay (a crash before the acknowledgement) writes nothing twice.
    let w2 = write_files(&vault, &r.files).unwrap();
    assert!(w2.iter().all(|w| matches!(w, Written::AlreadyThere(_))));
    rt.block_on(c.ack_result(&got[0].id)).unwrap();

    // Nothing is left in the streams; the worker is in the registry.
    let m = rt.block_on(c.metrics()).unwrap();
    assert_eq!(
        (
            m.tasks_length,
            m.tasks_pending,
            m.results_length,
            m.results_pending
        ),
        (0, 0, 0, 0)
    );
    assert!(rt.block_on(c.outstanding()).unwrap().tasks.is_empty());
    assert!(wait_until(DEADLINE, || {
        rt.block_on(c.workers())
            .unwrap()
            .iter()
            .any(|w| w.name == "w1" && w.concurrency == 1 && w.current.is_empty())
    }));
    // The scratch folder is gone; the agent's log stays.
    let work = s.dir.path().join("work-w1");
    assert_eq!(fs::read_dir(work.join("runs")).unwrap().count(), 0);
    assert!(work.join("logs/EMAIL_1.log").exists());

    // `workers` reads the same registry from the vault's table.
    let table = s.dir.path().join("table.toml");
    fs::write(&table, format!("[agent]\nqueue = \"{}\"\n", redis.url())).unwrap();
    let out = Command::new(BIN)
        .args(["workers", "--json", "--vault"])
        .arg(&vault)
        .arg("--config")
        .arg(&table)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workers"][0]["name"], "w1");
    assert_eq!(v["workers"][0]["alive"], true);
    let out = Command::new(BIN)
        .args(["workers", "--vault"])
        .arg(&vault)
        .arg("--config")
        .arg(&table)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NAME") && text.contains("w1"), "{text}");

    // SIGTERM: exit 0, out of the registry.
    stop(w);
    assert!(rt.block_on(c.workers()).unwrap().is_empty());
}

/// Worker `a` (claim timeout `claim`; empty: none given) starts the run of `task`, and is
/// SIGKILLed; worker `b` (the same) takes the run over well before 20 s and answers; its
/// result is acknowledged. Returns `b`, still running.
fn killed_and_taken_over(
    redis: &Redis,
    s: &Setup,
    rt: &tokio::runtime::Runtime,
    c: &mut QueueClient,
    task: &str,
    claim: &str,
) -> Child {
    rt.block_on(c.publish(&s.task(task, 1, true))).unwrap();
    let mut a = s.worker(&redis.url(), "a", claim);
    assert!(
        wait_until(DEADLINE, || s.marker.join("started").exists()),
        "{}",
        s.log("a")
    );
    signal(a.id() as i32, libc::SIGKILL);
    wait_child(&mut a, DEADLINE).expect("killed");
    let started = std::time::Instant::now();
    let b = s.worker(&redis.url(), "b", claim);
    let got = results(rt, c, 1);
    assert_eq!(got.len(), 1, "worker b:\n{}", s.log("b"));
    let m = &got[0].result.as_ref().unwrap().message;
    assert_eq!((m.worker.as_str(), m.task_id.as_str()), ("b", task));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "taken over long after the claim timeout:\n{}",
        s.log("b")
    );
    assert!(s.log("b").contains("took over entry"), "{}", s.log("b"));
    rt.block_on(c.ack_result(&got[0].id)).unwrap();
    b
}

#[test]
fn a_killed_workers_run_is_taken_over_after_the_claim_timeout() {
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    let b = killed_and_taken_over(&redis, &s, &rt, &mut c, "T_kill", "1s");
    assert!(rt.block_on(c.metrics()).unwrap().reclaims >= 1);
    stop(b);
}

/// Workers started without `--claim-timeout` follow the loop's `claim_timeout` (the
/// settings hash it writes): a killed worker's run is taken over after the loop's 1 s,
/// not the 10 min default; one given a different value says so.
#[test]
fn workers_follow_the_loops_claim_timeout_unless_told_their_own() {
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    rt.block_on(c.publish_settings(Duration::from_secs(1)))
        .unwrap();
    let b = killed_and_taken_over(&redis, &s, &rt, &mut c, "T_follow", "");
    for w in ["a", "b"] {
        assert!(
            s.log(w).contains("claim timeout 1s (the loop's"),
            "{w}:\n{}",
            s.log(w)
        );
    }
    // Told its own: kept, and the difference said.
    let own = s.worker(&redis.url(), "own", "5s");
    assert!(
        wait_until(DEADLINE, || s.log("own").contains(
            "--claim-timeout 5s differs from the loop's claim_timeout 1s"
        )),
        "{}",
        s.log("own")
    );
    stop(own);
    stop(b);
}

/// A worker logged in as an ACL user without the settings key (set up before the loop
/// wrote it) still takes runs: it says once that it keeps its claim timeout.
#[test]
fn a_worker_that_cannot_read_the_loops_settings_still_works() {
    let Some(redis) = Redis::start() else { return };
    redis.ok(
        "ACL SETUSER narrow on >narrow-pw resetkeys ~ai-employee:tasks ~ai-employee:results \
         ~ai-employee:workers ~ai-employee:reclaims resetchannels -@all +ping +info +xadd \
         +xreadgroup +xack +xdel +xautoclaim +xclaim +xpending +xrange +xlen +xgroup|create \
         +hset +hdel +hgetall +hlen +get +incrby +evalsha +eval",
    );
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    rt.block_on(c.publish_settings(Duration::from_secs(1)))
        .unwrap();
    let creds = s.dir.path().join("narrow.toml");
    crate::approvals::write_private(&creds, "username = \"narrow\"\npassword = \"narrow-pw\"\n");
    let w = s.worker_with(
        &redis.url(),
        "n",
        "",
        &["--credentials".to_string(), creds.display().to_string()],
        &[],
    );
    rt.block_on(c.publish(&s.task("T_narrow", 1, false)))
        .unwrap();
    let got = results(&rt, &mut c, 1);
    assert_eq!(got.len(), 1, "worker n:\n{}", s.log("n"));
    assert_eq!(got[0].result.as_ref().unwrap().message.worker, "n");
    rt.block_on(c.ack_result(&got[0].id)).unwrap();
    let log = s.log("n");
    assert_eq!(
        log.matches("cannot read the loop's claim timeout").count(),
        1,
        "{log}"
    );
    assert!(log.contains("keeping 10m"), "{log}");
    stop(w);
}

#[test]
fn a_stalled_workers_late_result_arrives_and_is_fenced_off() {
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    rt.block_on(c.publish(&s.task("T_stall", 1, true))).unwrap();
    let a = s.worker(&redis.url(), "a", "1s");
    assert!(wait_until(DEADLINE, || s.marker.join("started").exists()));
    // Freeze the worker (its agent goes on, in its own process group).
    signal(a.id() as i32, libc::SIGSTOP);
    let b = s.worker(&redis.url(), "b", "1s");

    // The loop's view of the task: running attempt 1 until a result is applied.
    let mut running = Some(1);
    let first = results(&rt, &mut c, 1);
    assert_eq!(first.len(), 1, "worker b:\n{}", s.log("b"));
    let r = first[0].result.as_ref().unwrap();
    assert_eq!(r.message.worker, "b");
    assert_eq!(fence(r.message.attempt, running), Verdict::Accept);
    running = None; // applied: the task left the running state
    rt.block_on(c.ack_result(&first[0].id)).unwrap();

    // Thaw the frozen worker: its agent finishes, its late result arrives ...
    fs::write(s.marker.join("go"), "").unwrap();
    signal(a.id() as i32, libc::SIGCONT);
    let late = results(&rt, &mut c, 1);
    assert_eq!(late.len(), 1, "worker a:\n{}", s.log("a"));
    let r = late[0].result.as_ref().unwrap();
    assert_eq!((r.message.worker.as_str(), r.message.attempt), ("a", 1));
    // ... and is discarded by the fencing rule.
    assert_eq!(fence(r.message.attempt, running), Verdict::Stale);
    rt.block_on(c.ack_result(&late[0].id)).unwrap();
    // A result of an older attempt is stale too, even while a newer one runs.
    assert_eq!(fence(1, Some(2)), Verdict::Stale);
    assert!(
        wait_until(DEADLINE, || s
            .log("a")
            .contains("taken over by another worker")),
        "{}",
        s.log("a")
    );
    let m = rt.block_on(c.metrics()).unwrap();
    assert_eq!((m.tasks_length, m.results_length), (0, 0));
    stop(a);
    stop(b);
}

#[test]
fn redis_restarted_empty_loses_runs_the_vault_then_republishes() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    let run_id = rt.block_on(c.server_run_id()).unwrap();
    for i in 1..=3 {
        rt.block_on(c.publish(&s.task(&format!("R{i}"), 1, false)))
            .unwrap();
    }
    let out = rt.block_on(c.outstanding()).unwrap();
    assert_eq!(out.tasks.len(), 3);
    assert!(out.contains("R2", 1) && !out.contains("R2", 2));

    // A worker is connected while Redis goes away and comes back empty.
    let w = s.worker(&redis.url(), "w", "10m");
    assert!(wait_until(DEADLINE, || s.log("w").contains("takes runs")));
    let first = results(&rt, &mut c, 3);
    assert_eq!(first.len(), 3);
    for r in &first {
        rt.block_on(c.ack_result(&r.id)).unwrap();
    }
    // Three more, then the server loses everything.
    for i in 4..=6 {
        rt.block_on(c.publish(&s.task(&format!("R{i}"), 1, true)))
            .unwrap();
    }
    redis.kill();
    // Down for more than the worker's retry interval.
    assert!(wait_until(DEADLINE, || s.log("w").contains("unreachable")));
    redis.restart();

    // The client reconnects by itself; the server is new and remembers nothing.
    let mut out = None;
    assert!(wait_until(DEADLINE, || {
        out = rt.block_on(c.outstanding()).ok();
        out.is_some()
    }));
    assert_ne!(rt.block_on(c.server_run_id()).unwrap(), run_id);
    let out = out.unwrap();
    let vault_says_running = ["R4", "R5", "R6"];
    let lost: Vec<&str> = vault_says_running
        .iter()
        .copied()
        .filter(|t| !out.contains(t, 1))
        .collect();
    assert_eq!(lost, vault_says_running, "outstanding() shows the loss");
    // The loop republishes what it has no result for.
    rt.block_on(c.ensure_groups()).unwrap();
    fs::write(s.marker.join("go"), "").unwrap();
    for t in lost {
        rt.block_on(c.publish(&s.task(t, 1, false))).unwrap();
    }
    // The run the worker had in hand across the restart answers too (at least once):
    // the loop's fencing applies the first answer of each run and discards the second.
    let mut running: std::collections::BTreeMap<String, Option<u32>> = ["R4", "R5", "R6"]
        .iter()
        .map(|t| (t.to_string(), Some(1)))
        .collect();
    let (mut applied, mut stale) = (Vec::new(), 0);
    let end = std::time::Instant::now() + DEADLINE;
    while running.values().any(Option::is_some) && std::time::Instant::now() < end {
        for r in results(&rt, &mut c, 1) {
            let m = &r.result.as_ref().unwrap().message;
            let slot = running.get_mut(&m.task_id).unwrap();
            match fence(m.attempt, *slot) {
                Verdict::Accept => {
                    applied.push(m.task_id.clone());
                    *slot = None;
                }
                Verdict::Stale => stale += 1,
            }
            rt.block_on(c.ack_result(&r.id)).unwrap();
        }
    }
    applied.sort();
    assert_eq!(applied, ["R4", "R5", "R6"], "each once: {}", s.log("w"));
    assert!(stale <= 1, "only the run in hand can answer twice");
    let log = s.log("w");
    assert_eq!(
        log.matches("unreachable").count(),
        1,
        "said once while down:\n{log}"
    );
    assert!(log.contains("answers again"), "{log}");
    stop(w);
}

#[test]
fn hostile_results_in_the_stream_are_refused_naming_the_task() {
    let Some(redis) = Redis::start() else { return };
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    // A forged entry, as a compromised worker could write it.
    let body = br#"{"v":1,"task_id":"T1","attempt":1,"worker":"evil","host":"h","status":"done","cost_usd":0,"turns":0,"iterations":1,"files":[{"path":"../../.bashrc","content":"x"}],"finished_at":"2026-01-01T00:00:00Z"}"#;
    let keys = c.keys().clone();
    rt.block_on(async {
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for b in [&body[..], b"garbage", b"{\"v\":7}"] {
            let _: String = redis::cmd("XADD")
                .arg(&keys.results)
                .arg("*")
                .arg("task")
                .arg("T1")
                .arg("attempt")
                .arg(1)
                .arg("body")
                .arg(b)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
    let got = results(&rt, &mut c, 3);
    assert_eq!(got.len(), 3);
    for r in &got {
        let refusal = r.result.as_ref().unwrap_err();
        assert_eq!(refusal.task_id.as_deref(), Some("T1"), "{refusal}");
        assert_eq!(refusal.attempt, Some(1));
        rt.block_on(c.ack_result(&r.id)).unwrap();
    }
    assert!(
        got[0]
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("../../.bashrc")
    );
}

#[test]
fn workers_exits_3_without_a_reachable_queue_and_78_on_a_bad_table() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path();
    let run = |table: &str| {
        let p = vault.join("t.toml");
        fs::write(&p, table).unwrap();
        Command::new(BIN)
            .args(["workers", "--vault"])
            .arg(vault)
            .arg("--config")
            .arg(&p)
            .output()
            .unwrap()
    };
    let out = run("");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queue configured"));
    let port = free_port(); // nothing listens there
    let out = run(&format!("[agent]\nqueue = \"redis://127.0.0.1:{port}\"\n"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let out = run("[agent]\nqueue = \"redis://u:secret@h/0\"\n");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.toml:2:9") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn the_queue_keys_of_agent_are_strict() {
    use ai_employee::config::{self, QueueUnreachable, Source};
    let ok = config::parse(
        "[agent]\nqueue = \"rediss://queue.example:6380/2\"\nclaim_timeout = \"30s\"\n\
         worker_timeout = \"5m\"\nqueue_unreachable = \"wait\"\n",
        Source::BuiltIn,
    )
    .unwrap()
    .agent
    .queue;
    assert_eq!(ok.url.as_deref(), Some("rediss://queue.example:6380/2"));
    assert_eq!(ok.claim_timeout, Duration::from_secs(30));
    assert_eq!(ok.worker_timeout, Duration::from_secs(300));
    assert_eq!(ok.unreachable, QueueUnreachable::Wait);
    let d = config::parse("", Source::BuiltIn).unwrap().agent.queue;
    assert_eq!(d.url, None);
    assert_eq!(d.claim_timeout, Duration::from_secs(600));
    assert_eq!(d.unreachable, QueueUnreachable::Local);

    let err = |text: &str| {
        config::parse(text, Source::File(Path::new("t.toml").into()))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("[agent]\nqueue = \"http://h:6379\"\n"),
        "t.toml:2:9: agent.queue: the scheme must be redis:// or rediss:// (TLS), found http://"
    );
    assert!(err("[agent]\nqueue = \"redis://:pw@h\"\n").contains("must not hold a password"));
    assert!(err("[agent]\nqueue = \"redis://h/x\"\n").contains("database must be a number"));
    assert!(err("[agent]\nqueue = 6379\n").contains("t.toml:2:9"));
    assert!(err("[agent]\nclaim_timeout = \"0s\"\n").starts_with("t.toml:2:17:"));
    assert!(err("[agent]\nqueue_unreachable = \"fallback\"\n").contains("expected one of"));
    assert!(err("[agent]\nredis_url = \"redis://h\"\n").contains("queue"));
}

#[test]
fn a_worker_stopped_mid_run_releases_it_to_another_at_once() {
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    rt.block_on(c.publish(&s.task("T_term", 1, true))).unwrap();
    // A claim timeout far longer than the test: only the release can hand the run over.
    let a = s.worker(&redis.url(), "a", "10m");
    assert!(wait_until(DEADLINE, || s.marker.join("started").exists()));
    stop(a);
    assert!(
        s.log("a").contains("released for another worker"),
        "{}",
        s.log("a")
    );
    let b = s.worker(&redis.url(), "b", "10m");
    let got = results(&rt, &mut c, 1);
    assert_eq!(got.len(), 1, "worker b:\n{}", s.log("b"));
    let m = &got[0].result.as_ref().unwrap().message;
    assert_eq!((m.worker.as_str(), m.task_id.as_str()), ("b", "T_term"));
    rt.block_on(c.ack_result(&got[0].id)).unwrap();
    stop(b);
}

/// A worker under `ai-employee supervise` with a short `heartbeat_timeout` beats from its
/// own loop, connected or retrying an unreachable queue, and is never restarted for it.
#[test]
fn a_supervised_worker_beats_whether_or_not_the_queue_answers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let tv = crate::common::TestVault::new();
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"100ms\"\nstop_timeout = \"5s\"\n\n\
         [[process]]\nname = \"worker\"\ncommand = \"ai-employee\"\n\
         args = [\"worker\", \"--queue\", {:?}, \"--name\", \"w1\", \"--work-dir\", {:?}]\n\
         heartbeat_timeout = \"1500ms\"\n",
        redis.url(),
        tv.path("work").display().to_string()
    ));
    let mut sup = tv.start();
    let beat = tv.vault.join(".ai-employee/heartbeat/worker");
    let mtime = || fs::symlink_metadata(&beat).and_then(|m| m.modified()).ok();
    // Five beats seen, more than three timeouts' worth of time with the same child.
    let beats = |want: usize| {
        let mut seen = Vec::new();
        let ok = wait_until(Duration::from_secs(20), || {
            if let Some(m) = mtime()
                && seen.last() != Some(&m)
            {
                seen.push(m);
            }
            seen.len() >= want
        });
        (ok, seen.len())
    };
    let (ok, n) = beats(5);
    assert!(ok, "{n} beats seen with the queue up\n{}", tv.system_log());
    // The queue goes away: the worker retries it every second, and beats meanwhile.
    redis.kill();
    let (ok, n) = beats(5);
    let log = tv.system_log();
    assert!(ok, "{n} beats seen with the queue down\n{log}");
    assert!(
        !log.contains("health check failed"),
        "restarted for its heartbeat:\n{log}"
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)), "{log}");
}
