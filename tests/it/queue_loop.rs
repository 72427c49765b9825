//! The task loop with `[agent] queue` set: a real Redis (`crate::queue::Redis`), the real
//! loop (`ai-employee agent`) and real `ai-employee worker` processes running a stand-in
//! agent (a shell script that writes a plan and a draft naming its worker, and answers
//! Claude Code's JSON with `STATUS: done`). Workers are SIGKILLed and restarted, Redis is
//! restarted empty, forged results are put in the results stream; every task must reach
//! `Done/` exactly once with its files written once. Every wait is on a condition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_employee::agent::events::RunResult;
use ai_employee::queue::wire::{FileOut, ResultMessage, VERSION};
use ai_employee::queue::{Credentials, QueueClient};

use crate::approvals::{field, files, new_vault};
use crate::common::{BIN, TestVault, signal, wait_child, wait_until};
use crate::queue::Redis;

/// The stand-in agent: `agent.sh TASK MARKERS`. Writes `Plans/PLAN_<task>.md` and
/// `Pending_Approval/APPROVAL_<task>.md` naming the worker (`$STANDIN_WORKER`), records
/// the run in `MARKERS/runs.log`, and answers done. With `MARKERS/slow`, it first sleeps
/// the seconds that file says (for kills mid-run).
const AGENT: &str = r#"#!/bin/sh
task="$1"; mark="$2"
echo "$task $STANDIN_WORKER" >> "$mark/runs.log"
if [ -e "$mark/slow" ]; then sleep "$(cat "$mark/slow")"; fi
printf '# Plan for %s by %s\n' "$task" "$STANDIN_WORKER" > "Plans/PLAN_$task.md"
printf -- '---\ntype: approval_request\naction: send_email\ntask: %s\n---\nBy %s\n' "$task" "$STANDIN_WORKER" > "Pending_Approval/APPROVAL_$task.md"
printf '{"type":"result","subtype":"success","is_error":false,"result":"Done.\\nSTATUS: done","session_id":"s-%s","total_cost_usd":0.01,"num_turns":2}\n' "$task"
"#;

const LONG: Duration = Duration::from_secs(60);

pub(crate) struct Bench {
    pub(crate) tv: TestVault,
    agent: PathBuf,
    markers: PathBuf,
    url: String,
}

impl Bench {
    pub(crate) fn new(redis: &Redis, claim: &str, extra: &str) -> Bench {
        Bench::with(&redis.url(), claim, extra)
    }

    fn new_at(url: &str, claim: &str) -> Bench {
        Bench::with(url, claim, "")
    }

    fn with(url: &str, claim: &str, extra: &str) -> Bench {
        let tv = new_vault();
        let agent = tv.path("agent.sh");
        fs::write(&agent, AGENT).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
        let markers = tv.path("markers");
        fs::create_dir(&markers).unwrap();
        let url = url.to_string();
        tv.write_config(&format!(
            "[agent]\ncommand = [\"{}\", \"{{task}}\", \"{}\"]\nqueue = \"{url}\"\n\
             claim_timeout = \"{claim}\"\nretry_delays = [\"100ms\"]\nmax_concurrent = 2\n{extra}\n",
            agent.display(),
            markers.display()
        ));
        Bench {
            tv,
            agent,
            markers,
            url,
        }
    }

    pub(crate) fn task(&self, id: &str) {
        let text = format!("---\ntype: task\n---\n# {id}\n\nPlan it.\n");
        let tmp = self.tv.vault.join(format!("Needs_Action/.{id}.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.tv.vault.join(format!("Needs_Action/{id}.md"))).unwrap();
    }

    pub(crate) fn loop_(&self) -> Child {
        let n = crate::common::now_ns();
        let err = fs::File::create(self.tv.path(&format!("loop-{n}.log"))).unwrap();
        Command::new(BIN)
            .args(["agent", "--vault"])
            .arg(&self.tv.vault)
            .arg("--config")
            .arg(&self.tv.config)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env_remove("AI_EMPLOYEE_HEARTBEAT")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            .spawn()
            .unwrap()
    }

    pub(crate) fn loop_log(&self) -> String {
        let mut names = files(self.tv.dir.path());
        names.retain(|n| n.starts_with("loop-"));
        names
            .iter()
            .map(|n| fs::read_to_string(self.tv.dir.path().join(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    fn worker(&self, name: &str, claim: &str, concurrency: u32) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tv.path(&format!("{name}.log")))
            .unwrap();
        crate::queue::worker_command(&self.url, name, claim, log)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--work-dir")
            .arg(self.tv.path(&format!("work-{name}")))
            .arg("--allow-program")
            .arg(&self.agent)
            .env("STANDIN_WORKER", name)
            .spawn()
            .unwrap()
    }

    pub(crate) fn in_folder(&self, folder: &str) -> Vec<String> {
        files(&self.tv.vault.join(folder))
            .into_iter()
            .filter(|n| n.ends_with(".md"))
            .collect()
    }

    /// Wait until every id is in Done/ (and nothing is left to do).
    pub(crate) fn wait_done(&self, ids: &[String], timeout: Duration) {
        let want: BTreeSet<String> = ids.iter().map(|i| format!("{i}.md")).collect();
        let ok = wait_until(timeout, || {
            let done: BTreeSet<String> = self.in_folder("Done").into_iter().collect();
            want.is_subset(&done)
        });
        if !ok {
            let done: BTreeSet<String> = self.in_folder("Done").into_iter().collect();
            let missing: Vec<&String> = want.difference(&done).take(10).collect();
            panic!(
                "{} of {} tasks not in Done/ (e.g. {missing:?}); In_Progress: {:?}\nloop log (tail):\n{}",
                want.difference(&done).count(),
                want.len(),
                self.in_folder("In_Progress")
                    .iter()
                    .take(10)
                    .collect::<Vec<_>>(),
                tail(&self.loop_log(), 60)
            );
        }
    }

    /// Every task is in Done/ once, its `done` event logged once, its plan and draft
    /// written once, by the worker the task file names.
    fn assert_exactly_once(&self, ids: &[String]) {
        let done = self.in_folder("Done");
        assert_eq!(done.len(), ids.len(), "Done/ holds each task once");
        assert!(self.in_folder("Needs_Action").is_empty());
        assert!(self.in_folder("In_Progress").is_empty());
        assert!(
            self.in_folder("Failed").is_empty(),
            "{:?}",
            self.in_folder("Failed")
        );
        let events = fs::read_to_string(self.tv.vault.join("Logs/tasks.jsonl")).unwrap();
        let mut done_events: BTreeMap<String, u32> = BTreeMap::new();
        for l in events.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["event"] == "done" {
                *done_events
                    .entry(v["task"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        // Who ran each task (a local run has no worker name): the files of a run that a
        // crash interrupted stay, and a later run's same-named files are not written over
        // them (no-replace), so a task's plan may be by an earlier run of it.
        let mut ran_by: HashMap<String, Vec<String>> = HashMap::new();
        for line in self.runs() {
            let (task, worker) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            ran_by
                .entry(task.to_string())
                .or_default()
                .push(worker.to_string());
        }
        for id in ids {
            assert_eq!(done_events.get(id), Some(&1), "{id}: one done event");
            let task = self.tv.vault.join(format!("Done/{id}.md"));
            assert_eq!(field(&task, "state").as_deref(), Some("done"), "{id}");
            // No worker: it ran on this host while the queue was unreachable.
            let worker = field(&task, "worker").unwrap_or_default();
            let plan = fs::read_to_string(self.tv.vault.join(format!("Plans/PLAN_{id}.md")))
                .unwrap_or_else(|e| panic!("{id}: no plan: {e}"));
            let runs = ran_by.get(id.as_str()).cloned().unwrap_or_default();
            assert!(
                runs.contains(&worker),
                "{id}: done by {worker:?}, runs {runs:?}"
            );
            assert!(
                runs.iter()
                    .any(|w| plan == format!("# Plan for {id} by {w}\n")),
                "{id}: plan {plan:?}, runs {runs:?}"
            );
            let draft = fs::read_to_string(
                self.tv
                    .vault
                    .join(format!("Pending_Approval/APPROVAL_{id}.md")),
            )
            .unwrap_or_else(|e| panic!("{id}: no draft: {e}"));
            assert!(
                runs.iter().any(|w| draft.ends_with(&format!("By {w}\n"))),
                "{id}: {draft}, runs {runs:?}"
            );
        }
        // Nothing but the results' files (no temp file left, nothing else written).
        let plans = self.in_folder("Plans");
        assert_eq!(plans.len(), ids.len(), "one plan per task");
        assert_eq!(
            files(&self.tv.vault.join("Plans")).len(),
            ids.len(),
            "nothing but the plans in Plans/"
        );
    }

    fn runs(&self) -> Vec<String> {
        fs::read_to_string(self.markers.join("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn stop(mut c: Child) -> Option<i32> {
    signal(c.id() as i32, libc::SIGTERM);
    wait_child(&mut c, LONG).and_then(|s| s.code())
}

fn kill9(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// A small pseudo-random sequence (the seed is printed so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn seeded() -> Lcg {
        let seed = std::env::var("QUEUE_LOOP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| crate::common::now_ns() as u64);
        eprintln!("seed {seed} (QUEUE_LOOP_SEED to replay)");
        Lcg(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}_{i:04}")).collect()
}

#[test]
fn the_loop_and_two_workers_do_200_tasks_exactly_once() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    let ids = ids("T", 200);
    for id in &ids {
        b.task(id);
    }
    let mut lp = b.loop_();
    let w1 = b.worker("w1", "10m", 4);
    let w2 = b.worker("w2", "10m", 4);
    b.wait_done(&ids, LONG * 2);
    b.assert_exactly_once(&ids);
    // Both workers took part; nothing ran here.
    let by: BTreeSet<String> = ids
        .iter()
        .map(|id| {
            field(&b.tv.vault.join(format!("Done/{id}.md")), "worker")
                .unwrap_or_else(|| panic!("{id} ran on no worker"))
        })
        .collect();
    assert_eq!(
        by,
        BTreeSet::from(["w1".to_string(), "w2".to_string()]),
        "both workers ran tasks"
    );
    assert_eq!(
        b.runs().len(),
        200,
        "each task ran once: {:?}",
        b.runs().len()
    );
    // The snapshot (`tasks`, `/metrics`) counts them.
    let snap = || -> serde_json::Value {
        fs::read_to_string(b.tv.vault.join(".ai-employee/tasks.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    assert!(
        wait_until(LONG, || snap()["queue"]["results_applied"].as_u64()
            == Some(200)
            && snap()["queue"]["in_flight"].as_u64() == Some(0)),
        "{}",
        snap()["queue"]
    );
    // Every result acknowledged (and so deleted) while the loop runs: each after the sync
    // that made its task's state durable, told by the sync thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results_left = || {
        rt.block_on(async {
            let mut c = QueueClient::connect(&b.url, &Credentials::default())
                .await
                .ok()?;
            c.metrics().await.ok().map(|m| m.results_length)
        })
    };
    assert!(
        wait_until(LONG, || results_left() == Some(0)),
        "results not acknowledged: {:?}",
        results_left()
    );
    assert_eq!(stop(w1), Some(0));
    assert_eq!(stop(w2), Some(0));
    signal(lp.id() as i32, libc::SIGTERM);
    let st = wait_child(&mut lp, LONG).expect("the loop stops");
    assert_eq!(st.code(), Some(0), "{}", tail(&b.loop_log(), 30));
    let log = b.loop_log();
    assert!(log.contains("published Needs_Action") || log.contains("published In_Progress"));
}

#[test]
fn workers_killed_and_restarted_at_random_lose_nothing() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "2s", "");
    fs::write(b.markers.join("slow"), "0.3").unwrap();
    let ids = ids("K", 300);
    for id in &ids {
        b.task(id);
    }
    let mut lp = b.loop_();
    let names = ["k1", "k2", "k3"];
    // Without --claim-timeout: the workers follow the loop's 2 s (a run of a worker
    // restarted late is taken over after it, not after the 10 min default).
    let mut ws: Vec<Child> = names.iter().map(|n| b.worker(n, "", 4)).collect();
    let mut rng = Lcg::seeded();
    let mut kills = 0;
    let start = Instant::now();
    // Kill a random worker every so often while tasks remain, restart it (same name:
    // it takes its unfinished runs back at once) or, every third time, a while later
    // (another worker takes them over after the claim timeout).
    while b.in_folder("Done").len() < ids.len() && start.elapsed() < LONG * 3 {
        let done_before = b.in_folder("Done").len();
        wait_until(Duration::from_secs(5), || {
            b.in_folder("Done").len() >= done_before + 15 + rng_peek(kills)
        });
        if b.in_folder("Done").len() >= ids.len() {
            break;
        }
        let i = rng.below(names.len() as u64) as usize;
        kill9(&mut ws[i]);
        kills += 1;
        if kills % 3 == 0 {
            // Restarted only after the others made progress meanwhile.
            let now_done = b.in_folder("Done").len();
            wait_until(Duration::from_secs(5), || {
                b.in_folder("Done").len() >= now_done + 5
            });
        }
        ws[i] = b.worker(names[i], "", 4);
    }
    assert!(kills >= 5, "only {kills} kills happened");
    for n in names {
        let log = fs::read_to_string(b.tv.path(&format!("{n}.log"))).unwrap_or_default();
        assert!(log.contains("claim timeout 2s (the loop's"), "{n}:\n{log}");
    }
    b.wait_done(&ids, LONG * 2);
    b.assert_exactly_once(&ids);
    assert!(b.runs().len() >= ids.len());
    for w in ws {
        stop(w);
    }
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

/// Staggers the kills a little (never a fixed sleep: a wait on progress).
fn rng_peek(kills: u32) -> usize {
    (kills as usize * 7) % 11
}

#[test]
fn redis_restarted_empty_mid_run_loses_nothing_and_does_nothing_twice() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let b = Bench::new(&redis, "10m", "");
    fs::write(b.markers.join("slow"), "0.3").unwrap();
    let ids = ids("R", 120);
    for id in &ids {
        b.task(id);
    }
    let mut lp = b.loop_();
    let w1 = b.worker("r1", "10m", 3);
    let w2 = b.worker("r2", "10m", 3);
    assert!(
        wait_until(LONG, || b.in_folder("Done").len() >= 20),
        "{}",
        tail(&b.loop_log(), 40)
    );
    redis.restart();
    assert!(
        wait_until(LONG, || b.loop_log().contains("Redis lost it")),
        "the loop republishes what Redis lost:\n{}",
        tail(&b.loop_log(), 40)
    );
    b.wait_done(&ids, LONG * 2);
    b.assert_exactly_once(&ids);
    stop(w1);
    stop(w2);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

/// One command to Redis on loopback, as RESP (a stream entry nobody's client would write).
fn xadd(port: u16, args: &[&str]) {
    use std::io::{Read, Write};
    let mut cmd = format!("*{}\r\n$4\r\nXADD\r\n", args.len() + 1);
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(cmd.as_bytes()).unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"$", "XADD answers the entry's id");
}

#[test]
fn a_hostile_result_fails_the_attempt_and_leaves_the_vault_untouched() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "worker_timeout = \"1s\"");
    b.task("H_1");
    let mut lp = b.loop_();
    // No worker yet: the run waits on the queue, attempt 1 in the task file.
    let task = b.tv.vault.join("In_Progress/H_1.md");
    assert!(
        wait_until(LONG, || field(&task, "run_on").as_deref() == Some("queue")),
        "{}",
        tail(&b.loop_log(), 30)
    );
    assert_eq!(field(&task, "attempt").as_deref(), Some("1"));
    // `tasks` says it waits for a worker; `tasks health` is degraded once no worker was
    // seen for worker_timeout.
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["tasks", "--vault"])
            .arg(&b.tv.vault)
            .args(args)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        wait_until(LONG, || cli(&[]).1.contains("queued for a worker for")),
        "{}",
        cli(&[]).1
    );
    assert!(
        wait_until(LONG, || {
            let (code, out) = cli(&["health"]);
            code == Some(1) && out.contains("no worker seen for")
        }),
        "{:?}",
        cli(&["health"])
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let forged = |attempt: u32, path: &str| ResultMessage {
        v: VERSION,
        task_id: "H_1".into(),
        attempt,
        worker: "evil".into(),
        host: "evil".into(),
        status: RunResult::Done,
        reason: None,
        cost_usd: 0.0,
        turns: 1,
        session_id: None,
        iterations: 1,
        files: vec![FileOut {
            path: path.into(),
            content: "pwned\n".into(),
        }],
        finished_at: chrono::Utc::now(),
    };
    rt.block_on(async {
        let mut c = QueueClient::connect(&b.url, &Credentials::default())
            .await
            .unwrap();
        // A stale attempt with a good path: fenced off, nothing written.
        c.publish_result(&forged(7, "Plans/STALE.md"))
            .await
            .unwrap();
        // The current attempt, escaping the vault: refused, a failed attempt.
        c.publish_result(&forged(1, "../../escaped.md"))
            .await
            .unwrap();
    });
    assert!(
        wait_until(LONG, || field(&task, "attempt").as_deref() == Some("2")),
        "the refused result fails attempt 1 and the task is published again:\n{}",
        tail(&b.loop_log(), 30)
    );
    let log = b.loop_log();
    assert!(
        log.contains("H_1#1: result refused: file \"../../escaped.md\""),
        "{log}"
    );
    assert!(log.contains("not current"), "{log}");
    assert!(!b.tv.vault.join("Plans/STALE.md").exists());
    assert!(!b.tv.dir.path().join("escaped.md").exists());
    assert!(!b.tv.vault.join("escaped.md").exists());
    assert!(
        field(&task, "last_error")
            .unwrap_or_default()
            .contains("refused"),
        "{:?}",
        fs::read_to_string(&task)
    );
    // Attempt 2: a file over the 1 MiB cap. Refused, attempt 3.
    let mut huge = forged(2, "Plans/HUGE.md");
    huge.files[0].content = "x".repeat(1024 * 1024 + 1);
    rt.block_on(async {
        let mut c = QueueClient::connect(&b.url, &Credentials::default())
            .await
            .unwrap();
        c.publish_result(&huge).await.unwrap();
    });
    assert!(
        wait_until(LONG, || field(&task, "attempt").as_deref() == Some("3")),
        "{}",
        tail(&b.loop_log(), 30)
    );
    assert!(!b.tv.vault.join("Plans/HUGE.md").exists());
    // Attempt 3: not the schema at all (an entry written by hand). Refused, attempt 4.
    xadd(
        redis.port,
        &[
            "ai-employee:results",
            "*",
            "task",
            "H_1",
            "attempt",
            "3",
            "body",
            "{\"v\":1,\"oops\":",
        ],
    );
    assert!(
        wait_until(LONG, || field(&task, "attempt").as_deref() == Some("4")),
        "{}",
        tail(&b.loop_log(), 30)
    );
    assert_eq!(
        b.loop_log().matches("; the attempt failed").count(),
        3,
        "{}",
        b.loop_log()
    );
    assert_eq!(files(&b.tv.vault.join("Plans")), Vec::<String>::new());
    assert_eq!(
        files(&b.tv.vault.join("Pending_Approval")),
        Vec::<String>::new()
    );
    // A real worker now finishes it, once.
    let w = b.worker("good", "10m", 1);
    b.wait_done(&["H_1".to_string()], LONG);
    b.assert_exactly_once(&["H_1".to_string()]);
    assert_eq!(
        field(&b.tv.vault.join("Done/H_1.md"), "attempt").as_deref(),
        Some("4")
    );
    stop(w);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_loop_restarted_while_runs_are_on_the_queue_waits_for_them() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    let ids = ids("L", 10);
    for id in &ids {
        b.task(id);
    }
    let mut lp = b.loop_();
    // No worker yet: max_concurrent (2) runs are published, the rest wait in the vault.
    let published = || {
        b.in_folder("In_Progress")
            .iter()
            .filter(|n| field(&b.tv.vault.join("In_Progress").join(n), "run_on").is_some())
            .count()
    };
    assert!(wait_until(LONG, || published() == 2));
    assert_eq!(b.in_folder("Needs_Action").len(), 8);
    // Killed with its runs published; a new loop adopts them (no "interrupted").
    kill9(&mut lp);
    let mut lp = b.loop_();
    assert!(
        wait_until(LONG, || b
            .loop_log()
            .matches("runs on the queue (attempt 1)")
            .count()
            == 2),
        "{}",
        tail(&b.loop_log(), 30)
    );
    let w = b.worker("l1", "10m", 4);
    b.wait_done(&ids, LONG);
    b.assert_exactly_once(&ids);
    for id in &ids {
        assert_eq!(
            field(&b.tv.vault.join(format!("Done/{id}.md")), "attempt").as_deref(),
            Some("1"),
            "{id}: the same attempt, not a retry"
        );
    }
    assert!(!b.loop_log().contains("interrupted"));
    stop(w);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_login_the_queue_refuses_stops_the_loop_with_78() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    // The server now wants a password; the vault's credentials give a wrong one.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        s.write_all(b"CONFIG SET requirepass right-one\r\n")
            .unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"+OK\r\n");
    }
    crate::approvals::write_private(
        &b.tv.vault.join("credentials/queue.toml"),
        "password = \"wrong-one\"\n",
    );
    b.task("S_1");
    let mut lp = b.loop_();
    let st = wait_child(&mut lp, LONG).expect("the loop exits");
    let log = b.loop_log();
    assert_eq!(st.code(), Some(78), "{log}");
    assert!(log.contains("refused the login"), "{log}");
    assert!(
        !log.contains("wrong-one"),
        "the password is never logged: {log}"
    );
    // Nothing was claimed.
    assert_eq!(b.in_folder("Needs_Action"), ["S_1.md"]);
}

#[test]
fn an_unreachable_queue_runs_tasks_here_or_holds_them_as_configured() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    redis.kill();
    // "local": the task runs on this host (the stand-in agent without a worker name).
    let b = Bench::new(&redis, "10m", "");
    b.task("U_1");
    let mut lp = b.loop_();
    b.wait_done(&["U_1".to_string()], LONG);
    let log = b.loop_log();
    assert!(log.contains("new tasks run on this host"), "{log}");
    assert_eq!(log.matches("is unreachable").count(), 1, "said once: {log}");
    assert_eq!(field(&b.tv.vault.join("Done/U_1.md"), "worker"), None);
    assert_eq!(
        fs::read_to_string(b.tv.vault.join("Plans/PLAN_U_1.md")).unwrap(),
        "# Plan for U_1 by \n"
    );
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));

    // "wait": nothing starts until the queue answers; then a worker does it.
    let b = Bench::new(&redis, "10m", "queue_unreachable = \"wait\"");
    b.task("U_2");
    let mut lp = b.loop_();
    assert!(
        wait_until(LONG, || b.loop_log().contains("no new task starts until")),
        "{}",
        b.loop_log()
    );
    assert_eq!(b.in_folder("Needs_Action"), ["U_2.md"]);
    assert!(b.in_folder("In_Progress").is_empty());
    redis.restart();
    let w = b.worker("u1", "10m", 1);
    b.wait_done(&["U_2".to_string()], LONG);
    b.assert_exactly_once(&["U_2".to_string()]);
    assert!(b.loop_log().contains("answers again"), "{}", b.loop_log());
    stop(w);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

/// Network namespaces with a veth pair each, torn down on drop.
struct Net {
    namespaces: Vec<String>,
    host_ifs: Vec<String>,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Net {
    /// `n` namespaces, each reaching the host at `10.<net>.<i>.1` (itself `.2`); none
    /// when namespaces cannot be made here (not root, no `ip`).
    fn new(n: usize, net: u8) -> Option<Net> {
        let tag = std::process::id() % 10_000;
        let mut out = Net {
            namespaces: Vec::new(),
            host_ifs: Vec::new(),
        };
        for i in 0..n {
            let ns = format!("aie-{tag}-{i}");
            let (h, w) = (format!("aieh{tag}{i}"), format!("aiew{tag}{i}"));
            if !ip(&["netns", "add", &ns]) {
                return None;
            }
            out.namespaces.push(ns.clone());
            let host = format!("10.{net}.{i}.1/30");
            let peer = format!("10.{net}.{i}.2/30");
            let ok = ip(&["link", "add", &h, "type", "veth", "peer", "name", &w])
                && {
                    out.host_ifs.push(h.clone());
                    ip(&["link", "set", &w, "netns", &ns])
                }
                && ip(&["addr", "add", &host, "dev", &h])
                && ip(&["link", "set", &h, "up"])
                && ip(&["netns", "exec", &ns, "ip", "addr", "add", &peer, "dev", &w])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", &w, "up"])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        Some(out)
    }

    /// Cut (or restore) worker `i`'s link: packets are dropped, connections hang.
    fn cut(&self, i: usize, down: bool) {
        ip(&[
            "link",
            "set",
            &self.host_ifs[i],
            if down { "down" } else { "up" },
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.host_ifs {
            ip(&["link", "del", h]);
        }
        for ns in &self.namespaces {
            ip(&["netns", "del", ns]);
        }
    }
}

/// The issue's chaos run: 2,000 tasks, 3 workers each in its own network namespace
/// (reaching Redis over a veth pair, one of them through a lossy, slow link), while at
/// random a worker is SIGKILLed and restarted, SIGSTOPped past the claim timeout, or its
/// link is cut; Redis is restarted empty twice and the loop SIGKILLed and restarted once.
/// Every task must end in `Done/` exactly once. Skipped (said on stderr) where network
/// namespaces cannot be made (not root).
#[test]
fn chaos_2000_tasks_3_workers_in_network_namespaces() {
    let Some(redis_probe) = Redis::start() else {
        return;
    };
    drop(redis_probe);
    let net_id = 200 + (std::process::id() % 50) as u8;
    let Some(net) = Net::new(3, net_id) else {
        eprintln!("SKIPPED: network namespaces cannot be made here (needs root and `ip netns`)");
        return;
    };
    // Lossy and slow: worker 2's link (where the kernel has netem).
    let lossy = Command::new("tc")
        .args(["qdisc", "add", "dev", &net.host_ifs[2], "root", "netem"])
        .args(["delay", "20ms", "5ms", "loss", "1%"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // Redis on loopback (the loop) and on each veth's host address (the workers).
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start_redis = || -> Child {
        let mut binds = vec!["127.0.0.1".to_string()];
        binds.extend((0..3).map(|i| format!("10.{net_id}.{i}.1")));
        let c = Command::new("redis-server")
            .arg("--bind")
            .args(&binds)
            .args(["--port", &port.to_string(), "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_until(LONG, || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()));
        c
    };
    let mut redis = start_redis();
    let tv_redis = RedisAt(port);
    let b = Bench::new_at(&tv_redis.url(), "3s");
    let n = 2000;
    let ids = ids("C", n);
    for id in &ids {
        b.task(id);
    }
    // Each run takes a fifth of a second: the 2,000 are done in about half a minute
    // rather than a few seconds, so that the chaos below happens while tasks are still
    // outstanding (a faster loop once finished them all in 9 s, after three actions), and
    // kills land mid-run.
    fs::write(b.markers.join("slow"), "0.2").unwrap();
    let worker = |i: usize| -> Child {
        let name = format!("c{i}");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(b.tv.path(&format!("{name}.log")))
            .unwrap();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.namespaces[i],
                BIN,
                "worker",
                "--queue",
            ])
            .arg(format!("redis://10.{net_id}.{i}.1:{port}/0"))
            .args([
                "--name",
                &name,
                "--claim-timeout",
                "3s",
                "--concurrency",
                "6",
            ])
            .arg("--work-dir")
            .arg(b.tv.path(&format!("work-{name}")))
            .arg("--allow-program")
            .arg(&b.agent)
            .env_remove("AI_EMPLOYEE_QUEUE_CREDENTIALS")
            .env("STANDIN_WORKER", &name)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut lp = b.loop_();
    let mut ws: Vec<Child> = (0..3).map(worker).collect();
    let mut rng = Lcg::seeded();
    let start = Instant::now();
    let done = || b.in_folder("Done").len();
    let mut acts: BTreeMap<&str, u32> = BTreeMap::new();
    let (mut redis_restarts, mut loop_restarts) = (0, 0);
    while done() < n && start.elapsed() < Duration::from_secs(600) {
        let before = done();
        wait_until(Duration::from_secs(3), || done() >= before + 40);
        if done() >= n {
            break;
        }
        let progress = done() * 10 / n; // tenths
        if redis_restarts < 2 && progress >= 3 + 3 * redis_restarts {
            kill9(&mut redis);
            redis = start_redis();
            redis_restarts += 1;
            *acts.entry("redis restarted empty").or_default() += 1;
            continue;
        }
        if loop_restarts < 1 && progress >= 5 {
            kill9(&mut lp);
            lp = b.loop_();
            loop_restarts += 1;
            *acts.entry("loop killed").or_default() += 1;
            continue;
        }
        let i = rng.below(3) as usize;
        match rng.below(3) {
            0 => {
                kill9(&mut ws[i]);
                ws[i] = worker(i);
                *acts.entry("worker killed").or_default() += 1;
            }
            1 => {
                signal(ws[i].id() as i32, libc::SIGSTOP);
                let t = Instant::now();
                // Past the claim timeout, while the others go on.
                wait_until(Duration::from_secs(10), || {
                    t.elapsed() > Duration::from_secs(4) && done() > before
                });
                signal(ws[i].id() as i32, libc::SIGCONT);
                *acts.entry("worker stopped").or_default() += 1;
            }
            _ => {
                net.cut(i, true);
                let t = Instant::now();
                wait_until(Duration::from_secs(10), || {
                    t.elapsed() > Duration::from_secs(4) && done() > before
                });
                net.cut(i, false);
                *acts.entry("link cut").or_default() += 1;
            }
        }
    }
    eprintln!(
        "chaos: {acts:?}, lossy link {lossy}, {} runs for {n} tasks, {:.1}s",
        b.runs().len(),
        start.elapsed().as_secs_f64()
    );
    for i in 0..3 {
        net.cut(i, false);
    }
    b.wait_done(&ids, Duration::from_secs(300));
    b.assert_exactly_once(&ids);
    assert!(acts.values().sum::<u32>() >= 5, "{acts:?}");
    for w in ws {
        stop(w);
    }
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
    kill9(&mut redis);
}

/// A Redis URL on loopback at `port`.
struct RedisAt(u16);

impl RedisAt {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.0)
    }
}

#[test]
fn the_command_goes_to_workers_as_written_even_when_this_host_lacks_it() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    // A bare program this host does not have: with a queue, not a set-up problem here.
    let table = fs::read_to_string(&b.tv.config).unwrap();
    let table = table.replace(&b.agent.display().to_string(), "no-such-agent-here");
    b.tv.write_config(&table);
    b.task("P_1");
    let mut lp = b.loop_();
    let task = b.tv.vault.join("In_Progress/P_1.md");
    assert!(
        wait_until(LONG, || field(&task, "run_on").as_deref() == Some("queue")),
        "{}",
        b.loop_log()
    );
    assert!(
        b.loop_log().contains("runs go to workers"),
        "{}",
        b.loop_log()
    );
    // What a worker takes: the command as the table writes it, the prompt naming the
    // task file the worker will write, the task's text with its attempt.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut c = QueueClient::connect(&b.url, &Credentials::default())
            .await
            .unwrap();
        c.take_tasks("probe", 10, Duration::from_secs(5))
            .await
            .unwrap()
    });
    assert_eq!(got.len(), 1);
    let m = got[0].message.as_ref().expect("a valid task message");
    assert_eq!(m.task_id, "P_1");
    assert_eq!(m.attempt, 1);
    assert_eq!(m.agent.command[0], "no-such-agent-here");
    assert_eq!(m.agent.command[1], "{task}");
    assert!(m.prompt.contains("In_Progress/P_1.md"), "{}", m.prompt);
    assert!(m.task.contains("attempt: 1"), "{}", m.task);
    assert!(m.agent.env.is_empty());
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_run_on_the_queue_found_later_is_checked_and_published_again() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    let mut lp = b.loop_();
    assert!(
        wait_until(LONG, || b.loop_log().contains("task loop started")),
        "{}",
        b.loop_log()
    );
    // Put back from a backup, say: running on the queue as attempt 3, which Redis lacks.
    let text = "---\ntype: task\nstate: running\nattempt: 3\nrun_on: queue\n---\n# B_1\n";
    let tmp = b.tv.vault.join("In_Progress/.B_1.tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, b.tv.vault.join("In_Progress/B_1.md")).unwrap();
    assert!(
        wait_until(LONG, || b
            .loop_log()
            .contains("B_1: attempt 3 is not on the queue")),
        "{}",
        b.loop_log()
    );
    let w = b.worker("b1", "10m", 1);
    b.wait_done(&["B_1".to_string()], LONG);
    b.assert_exactly_once(&["B_1".to_string()]);
    assert_eq!(
        field(&b.tv.vault.join("Done/B_1.md"), "attempt").as_deref(),
        Some("3")
    );
    stop(w);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

#[test]
fn where_a_run_is_shows_in_tasks_and_in_the_task_file_while_it_runs() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    fs::write(b.markers.join("slow"), "8").unwrap();
    b.task("W_1");
    let mut lp = b.loop_();
    let w = b.worker("s1", "10m", 1);
    let task = b.tv.vault.join("In_Progress/W_1.md");
    // The worker's heartbeat names the run; the loop reads the registry every few seconds.
    assert!(
        wait_until(LONG, || field(&task, "worker").as_deref() == Some("s1")),
        "{}",
        tail(&b.loop_log(), 20)
    );
    assert_eq!(field(&task, "state").as_deref(), Some("running"));
    assert!(field(&task, "host").is_some_and(|h| !h.is_empty()));
    let shown = || {
        let out = Command::new(BIN)
            .args(["tasks", "--vault"])
            .arg(&b.tv.vault)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_until(LONG, || shown().contains("on s1@")),
        "{}",
        shown()
    );
    assert!(shown().contains("1 workers alive"), "{}", shown());
    b.wait_done(&["W_1".to_string()], LONG);
    b.assert_exactly_once(&["W_1".to_string()]);
    stop(w);
    signal(lp.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut lp, LONG).and_then(|s| s.code()), Some(0));
}

/// The messages in the tasks stream, as `redis-cli` prints them (empty without it).
fn tasks_stream(port: u16) -> String {
    Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "--raw",
            "XRANGE",
            "ai-employee:tasks",
            "-",
            "+",
        ])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A task resumed after its approvals were decided goes to a worker with their outcome in
/// its prompt (a worker has no session of the earlier run). When Redis loses that run,
/// the loop publishes it again as the same resumed run: the outcome is still in the
/// prompt, not a fresh run that would draft the approvals a second time.
#[test]
fn a_resumed_run_that_redis_lost_is_published_again_with_its_approvals_outcome() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    if Command::new("redis-cli").arg("--version").output().is_err() {
        eprintln!("SKIPPED: redis-cli is not installed (Debian's redis-server brings it)");
        return;
    }
    let b = Bench::new(&redis, "10m", "");
    // The agent drafted one request, the task waits for it, and a person approved it
    // (the approval handler executed it into Done/).
    let done = b.tv.vault.join("Done/APPROVAL_W_1.md");
    fs::write(
        &done,
        "---\ntype: approval_request\naction: send_email\ntask: W_1\nresult: approved\n---\nSend it.\n",
    )
    .unwrap();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let text = format!(
        "---\ntype: task\nstate: waiting_approval\nattempt: 1\napprovals:\n- \
         Pending_Approval/APPROVAL_W_1.md\nwaiting_since: {since}\n---\n# W_1\n\nPlan it.\n"
    );
    let tmp = b.tv.vault.join("In_Progress/.W_1.tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, b.tv.vault.join("In_Progress/W_1.md")).unwrap();
    let mut lp = b.loop_();
    // No worker: the resumed run waits in the stream.
    let outcome = "The approval requests drafted for this task were decided";
    assert!(
        wait_until(LONG, || tasks_stream(redis.port).contains(outcome)),
        "the resumed run is published with the outcome:\n{}\n{}",
        tasks_stream(redis.port),
        tail(&b.loop_log(), 40)
    );
    redis.restart();
    assert!(
        wait_until(LONG, || b
            .loop_log()
            .contains("W_1: attempt 1 is not on the queue (Redis lost it)")),
        "{}",
        tail(&b.loop_log(), 40)
    );
    // What the stream holds once the run is published again.
    let republished = |port: u16| -> String {
        assert!(
            wait_until(LONG, || tasks_stream(port).contains("W_1")),
            "{}",
            tail(&b.loop_log(), 40)
        );
        tasks_stream(port)
    };
    let stream = republished(redis.port);
    assert!(
        stream.contains(outcome) && stream.contains("APPROVAL_W_1.md"),
        "published again without the approvals' outcome:\n{stream}"
    );
    // The same after a loop killed and started again: it finds the run on the queue in
    // the task file, and publishes it as resumed when Redis has lost it once more.
    kill9(&mut lp);
    redis.restart();
    let lp = b.loop_();
    let stream = republished(redis.port);
    assert!(
        stream.contains(outcome),
        "published again by a new loop without the approvals' outcome:\n{stream}"
    );
    // A worker finishes it, once.
    let w = b.worker("w1", "10m", 1);
    b.wait_done(&["W_1".to_string()], LONG);
    assert_eq!(b.runs().len(), 1, "{:?}", b.runs());
    stop(w);
    assert_eq!(stop(lp), Some(0));
}

/// A person removes a task's file while its run is on a worker: the worker's result is
/// recorded as a run (it was paid for) but has nowhere to go. Its files are not written
/// (no plan, no draft asking to approve work on a removed task), the task is forgotten and
/// its place in the queue's limit is free for the next.
#[test]
fn a_task_removed_while_it_runs_on_a_worker_is_forgotten_and_its_files_not_written() {
    let Some(redis) = Redis::start() else { return };
    let b = Bench::new(&redis, "10m", "");
    fs::write(b.markers.join("slow"), "3").unwrap();
    b.task("R_1");
    let lp = b.loop_();
    let w = b.worker("r1", "10m", 1);
    assert!(
        wait_until(LONG, || b.runs().iter().any(|r| r.starts_with("R_1 "))),
        "{}",
        tail(&b.loop_log(), 20)
    );
    fs::remove_file(b.tv.vault.join("In_Progress/R_1.md")).unwrap();
    assert!(
        wait_until(LONG, || b.loop_log().contains("In_Progress/R_1.md is gone")),
        "{}",
        tail(&b.loop_log(), 20)
    );
    fs::remove_file(b.markers.join("slow")).unwrap();
    b.task("R_2");
    b.wait_done(&["R_2".to_string()], LONG);
    assert!(b.tv.vault.join("Plans/PLAN_R_2.md").exists());
    assert!(
        !b.tv.vault.join("Plans/PLAN_R_1.md").exists(),
        "R_1's plan written"
    );
    assert!(
        !b.tv.vault.join("Pending_Approval/APPROVAL_R_1.md").exists(),
        "R_1's draft written"
    );
    for folder in ["Needs_Action", "In_Progress", "Done", "Failed"] {
        assert!(
            !b.in_folder(folder).contains(&"R_1.md".to_string()),
            "R_1.md in {folder}/"
        );
    }
    // Its run is in the journal, with what it cost.
    let journal = fs::read_to_string(b.tv.vault.join("Logs/tasks.jsonl")).unwrap();
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"task\":\"R_1\"") && l.contains("\"event\":\"run\"")),
        "{journal}"
    );
    assert_eq!(stop(w), Some(0));
    assert_eq!(stop(lp), Some(0));
}

/// A task removed while its run waits on the queue, and then Redis restarted empty: the
/// loop has nothing to publish again and forgets the run (it kept it, holding a place of
/// the queue's limit, until the loop restarted), and the tasks after it go on.
#[test]
fn a_removed_task_that_redis_lost_is_forgotten_not_published_again() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let b = Bench::new(&redis, "10m", "");
    b.task("L_1");
    let lp = b.loop_();
    assert!(
        wait_until(LONG, || tasks_stream(redis.port).contains("L_1")),
        "not published:\n{}",
        tail(&b.loop_log(), 20)
    );
    fs::remove_file(b.tv.vault.join("In_Progress/L_1.md")).unwrap();
    redis.restart();
    assert!(
        wait_until(LONG, || b.loop_log().contains("In_Progress/L_1.md is gone")),
        "{}",
        tail(&b.loop_log(), 20)
    );
    b.task("L_2");
    let w = b.worker("l1", "10m", 1);
    b.wait_done(&["L_2".to_string()], LONG);
    assert!(!b.loop_log().contains("L_1: attempt 1 is not on the queue"));
    assert!(
        !b.runs().iter().any(|r| r.starts_with("L_1 ")),
        "L_1 ran: {:?}",
        b.runs()
    );
    assert_eq!(stop(w), Some(0));
    assert_eq!(stop(lp), Some(0));
}
