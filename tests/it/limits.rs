//! Values the runtime cannot represent: `check` refuses them (every duration and size has
//! a documented maximum), `supervise` never panics on a table `check` accepts, and a
//! reload with such a table never takes a running supervisor down. Plus 1,000 seeded
//! random mutations of the default table through the parser (and a sample through the
//! real `check` binary): never a panic, never a hang.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ai_employee::config::{self, Source};
use ai_employee::supervisor::machine::{Child, Event, Phase, Then};

use crate::common::*;

const HUGE: &str = "200000000000000d";
const LONG: Duration = Duration::from_secs(20);

fn ctl(tv: &TestVault, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--vault")
        .arg(&tv.vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ai-employee")
}

fn check(config: &Path) -> Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .env_remove("AI_EMPLOYEE_VAULT")
        .stdin(Stdio::null())
        .output()
        .expect("run check")
}

/// One table per duration and size key, each with one value past what the runtime can
/// represent: (key, table, expected 1-based line:column of the value).
fn hostile_tables() -> Vec<(&'static str, String, &'static str)> {
    let proc_ = |extra: &str| {
        format!("[[process]]\nname = \"w\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n{extra}\n")
    };
    vec![
        (
            "supervisor.health_interval",
            format!(
                "[supervisor]\nhealth_interval = \"{HUGE}\"\n\n{}",
                proc_("")
            ),
            "2:19",
        ),
        (
            "supervisor.stop_timeout",
            format!("[supervisor]\nstop_timeout = \"{HUGE}\"\n\n{}", proc_("")),
            "2:16",
        ),
        (
            "supervisor.log_max_size",
            format!(
                "[supervisor]\nlog_max_size = \"16000000TiB\"\n\n{}",
                proc_("")
            ),
            "2:16",
        ),
        (
            "process[1].backoff.initial",
            proc_(&format!(
                "backoff = {{ initial = \"{HUGE}\", max = \"3650d\" }}"
            )),
            "5:23",
        ),
        (
            "process[1].backoff.max",
            proc_(&format!("backoff = {{ max = \"{HUGE}\" }}")),
            "5:19",
        ),
        (
            "process[1].backoff.reset_after",
            proc_(&format!("backoff = {{ reset_after = \"{HUGE}\" }}")),
            "5:27",
        ),
        (
            "process[1].stop_timeout",
            proc_(&format!("stop_timeout = \"{HUGE}\"")),
            "5:16",
        ),
        (
            "process[1].restart_window",
            proc_(&format!("max_restarts = 3\nrestart_window = \"{HUGE}\"")),
            "6:18",
        ),
        (
            "process[1].heartbeat_timeout",
            proc_(&format!("heartbeat_timeout = \"{HUGE}\"")),
            "5:21",
        ),
        (
            "process[1].max_memory",
            proc_("max_memory = 9223372036854775807"),
            "5:14",
        ),
        (
            "process[1].log_max_size",
            proc_("log_max_size = \"16000000TiB\""),
            "5:16",
        ),
        (
            "notify[1].timeout",
            format!(
                "{}\n[[notify]]\nwebhook = \"http://127.0.0.1:9/x\"\ntimeout = \"{HUGE}\"\n",
                proc_("")
            ),
            "9:11",
        ),
    ]
}

#[test]
fn check_refuses_every_value_the_runtime_cannot_represent() {
    let dir = tempfile::tempdir().unwrap();
    for (key, table, at) in hostile_tables() {
        let path = dir.path().join("t.toml");
        std::fs::write(&path, &table).unwrap();
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{key}: {stderr}\n{table}");
        let want = format!("{}:{at}: {key}: ", path.display());
        assert!(
            stderr.starts_with(&want),
            "{key}: want {want:?}, got {stderr}"
        );
        assert!(stderr.contains("at most"), "{key}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{key}: {stderr}");
    }
}

#[test]
fn supervise_exits_78_on_those_tables_instead_of_panicking() {
    for (key, table, _) in hostile_tables() {
        let tv = TestVault::new();
        tv.write_config(&table);
        let mut sup = tv.start();
        let st = sup.wait_exit(LONG);
        assert_eq!(
            st.and_then(|s| s.code()),
            Some(78),
            "{key}: {st:?}\n{}",
            sup.console()
        );
        assert!(!sup.console().contains("panicked"), "{key}");
    }
}

/// Every duration at its documented maximum, sizes at theirs: accepted, and a supervisor
/// running it (a crash loop, a stop, a health poll) neither panics nor misbehaves.
#[test]
fn a_table_at_every_maximum_runs_and_stops_cleanly() {
    let tv = TestVault::new();
    let marker = tv.path("m");
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> {}; exit 3",
        marker.display()
    );
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"3650d\"\nstop_timeout = \"3650d\"\nlog_max_size = \"1TiB\"\n\n{}\n{}",
        sh_process(
            "crash",
            &script,
            "backoff = { initial = \"0\", factor = 100, max = \"3650d\", reset_after = \"3650d\" }\n\
             max_restarts = 10000\nrestart_window = \"3650d\"\nmax_memory = \"1TiB\"\n\
             heartbeat_timeout = \"3650d\"\nlog_max_size = \"1TiB\"",
        ),
        sh_process("sleeper", "exec sleep 1000", "stop_timeout = \"3650d\""),
    ));
    let out = check(&tv.config);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut sup = tv.start();
    // initial 0: the first restart is immediate; the second waits 100 × 0 = 0 as well
    // (the delay is initial × factor^(n-1), and initial is zero).
    assert!(
        wait_until(LONG, || starts(&marker).len() >= 3),
        "{}\n{}",
        sup.console(),
        tv.system_log()
    );
    // The sleeper stops on SIGTERM long before its ten-year stop_timeout.
    let st = sup.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", sup.console());
}

#[test]
fn a_reload_with_such_a_table_keeps_the_supervisor_and_its_children() {
    for (key, table, _) in hostile_tables() {
        let tv = TestVault::new();
        tv.write_config("[[process]]\nname = \"w\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n");
        let mut sup = tv.start();
        let running = || {
            let o = ctl(&tv, &["status", "--json"]);
            String::from_utf8_lossy(&o.stdout).contains("\"state\": \"running\"")
        };
        assert!(wait_until(LONG, running), "{key}: {}", sup.console());
        tv.write_config(&table);
        let o = ctl(&tv, &["reload"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(78), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        // SIGHUP takes the same path.
        sup.signal(libc::SIGHUP);
        assert!(
            wait_until(LONG, || tv
                .system_log()
                .matches("reload failed: keeping")
                .count()
                >= 2),
            "{key}: {}",
            tv.system_log()
        );
        assert!(running(), "{key}: {}", sup.console());
        assert_eq!(sup.stop().and_then(|s| s.code()), Some(0), "{key}");
    }
}

// ---- random mutations of the default table ----

/// splitmix64: a small deterministic generator (the same cases on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_10EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that are huge, negative, zero, NaN, of the wrong type or with odd units.
const ODD_VALUES: &[&str] = &[
    "\"200000000000000d\"",
    "\"99999999999999999999999d\"",
    "\"18446744073709551615s\"",
    "\"3650d\"",
    "\"3650d1ms\"",
    "\"3651d\"",
    "\"-5s\"",
    "\"-0\"",
    "\"0\"",
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e308",
    "0.0",
    "1.5",
    "true",
    "[]",
    "[\"a\", 1]",
    "{}",
    "{ initial = \"1e3s\" }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"5min\"",
    "\"5 s\"",
    "\"1h1h\"",
    "\"30s1m\"",
    "\"1.5\"",
    "\"0.0000000000000000000001ms\"",
    "\"1e3s\"",
    "\"16777216TiB\"",
    "\"1TiB\"",
    "\"1.1TiB\"",
    "\"10mb\"",
    "\"\"",
    "\"\\u0000\"",
    "\"ß\"",
    "\"SIGKILL\"",
    "\"127.0.0.1:0\"",
    "'''\nmulti\nline'''",
];

/// Characters inserted at random (valid UTF-8, so the text stays a `str`).
const ODD_CHARS: &[&str] = &[
    "\0", "\"", "'", "[", "]", "[[", "{", "}", "=", ",", "#", "\n", "\r", "\t", "\\", "é", "💥",
    "\u{feff}", "\u{202e}", "0", "9", "-", ".", "d", "s",
];

fn mutate(rng: &mut Rng, table: &str) -> String {
    let mut text = table.to_string();
    for _ in 0..1 + rng.below(3) {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        match rng.below(8) {
            // A value replaced (the first `=` of a line, or inside an inline table).
            0 | 1 => {
                let with_eq: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].contains('='))
                    .collect();
                if let Some(&i) = with_eq.get(rng.below(with_eq.len())) {
                    let line = &lines[i];
                    let eqs: Vec<usize> = line.match_indices('=').map(|(j, _)| j).collect();
                    let at = *rng.pick(&eqs);
                    let rest = &line[at + 1..];
                    let end = rest
                        .find([',', '}', '#'])
                        .map_or(line.len(), |j| at + 1 + j);
                    lines[i] = format!(
                        "{} {} {}",
                        &line[..at + 1],
                        *rng.pick(ODD_VALUES),
                        &line[end..]
                    );
                }
            }
            // A key dropped.
            2 => {
                let i = rng.below(lines.len());
                lines.remove(i);
            }
            // A key (or header) written twice.
            3 => {
                let i = rng.below(lines.len());
                let l = lines[i].clone();
                let at = (i + rng.below(3)).min(lines.len());
                lines.insert(at, l);
            }
            // Two lines swapped.
            4 => {
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(i, j);
            }
            // Truncated at a random character.
            5 => {
                let joined = lines.join("\n");
                let cut: Vec<usize> = joined.char_indices().map(|(i, _)| i).collect();
                let at = cut
                    .get(rng.below(cut.len() + 1))
                    .copied()
                    .unwrap_or(joined.len());
                lines = vec![joined[..at].to_string()];
            }
            // Bytes inserted at a random character.
            _ => {
                let joined = lines.join("\n");
                let cut: Vec<usize> = joined
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([joined.len()])
                    .collect();
                let at = *rng.pick(&cut);
                let mut s = joined[..at].to_string();
                for _ in 0..1 + rng.below(4) {
                    let c: &&str = rng.pick(ODD_CHARS);
                    s.push_str(c);
                }
                s.push_str(&joined[at..]);
                lines = vec![s];
            }
        }
        text = lines.join("\n");
    }
    text
}

/// Drive a child of an accepted table through its life (restart, backoff, stop timeout,
/// stable run) with the clock at "now" and far ahead: the machine's arithmetic must never
/// panic on a value the parser accepted.
fn exercise_machine(cfg: &config::Config) {
    let t0 = Instant::now();
    for spec in &cfg.processes {
        let stop = spec.stop_timeout.unwrap_or(cfg.supervisor.stop_timeout);
        let mut c = Child::new(spec.clone(), stop);
        let _ = c.on_event(Event::Start, t0);
        let mut now = t0;
        for pid in 100..110 {
            let _ = c.on_event(Event::Spawned { pid }, now);
            let _ = c.on_event(
                Event::Exited {
                    pid,
                    status: ai_employee::process::ExitStatus::Code(1),
                    group_alive: false,
                },
                now,
            );
            if let Some(d) = c.deadline() {
                now = now.max(d);
                let _ = c.on_event(Event::Tick, now);
            }
            if matches!(c.phase(), Phase::Fatal { .. }) {
                break;
            }
        }
        let _ = c.on_event(Event::Spawned { pid: 200 }, now);
        let _ = c.on_event(Event::Stop(Then::Rest), now);
        if let Some(d) = c.deadline() {
            let _ = c.on_event(Event::Tick, d);
        }
    }
}

/// Parse in a thread with a deadline: a panic fails the case, and so does a hang.
fn parse_with_deadline(text: String, case: usize) {
    let (tx, rx) = std::sync::mpsc::channel();
    let shown = text.clone();
    let worker = std::thread::spawn(move || {
        let result = config::parse(&text, Source::File("fuzz.toml".into()));
        if let Ok(cfg) = &result {
            exercise_machine(cfg);
        }
        let _ = tx.send(result.map(|_| ()).map_err(|e| e.0));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => {
            assert!(
                !errors.is_empty(),
                "case {case}: an error without a message"
            );
            for e in errors {
                assert!(!e.message.is_empty(), "case {case}: {e}");
                assert!(e.line >= 1 && e.column >= 1, "case {case}: {e}\n{shown}");
            }
        }
        Err(_) => {
            if worker.is_finished() {
                panic!("case {case}: the parser panicked on:\n{shown}");
            }
            panic!("case {case}: the parser did not finish within 10 s on:\n{shown}");
        }
    }
}

#[test]
fn a_thousand_random_mutations_of_the_default_table_never_panic_or_hang() {
    let mut rng = Rng(0x5EED_0009);
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = 0;
    for case in 0..1000 {
        let text = mutate(&mut rng, config::DEFAULT_TABLE);
        if config::parse(&text, Source::BuiltIn).is_ok() {
            accepted += 1;
        }
        parse_with_deadline(text.clone(), case);
        // Every 20th case also through the real binary, with a deadline.
        if case % 20 == 0 {
            let path = dir.path().join(format!("case-{case}.toml"));
            std::fs::write(&path, &text).unwrap();
            let mut child = Command::new(BIN)
                .args(["check", "--config"])
                .arg(&path)
                .env_remove("AI_EMPLOYEE_VAULT")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let st = wait_child(&mut child, Duration::from_secs(10));
            let Some(st) = st else {
                let _ = child.kill();
                panic!("case {case}: check did not finish within 10 s on:\n{text}");
            };
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            assert!(
                matches!(st.code(), Some(0) | Some(78)),
                "case {case}: check exited {st:?}: {err}\n{text}"
            );
            assert!(!err.contains("panicked"), "case {case}: {err}");
        }
    }
    // The mutations are not all fatal: some tables still parse (and ran the machine).
    assert!(
        accepted > 50,
        "only {accepted} of 1000 mutated tables parsed"
    );
}

/// Invalid UTF-8 bytes in the file: a clear error, never a panic.
#[test]
fn check_refuses_a_table_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let mut bytes = config::DEFAULT_TABLE.as_bytes().to_vec();
    bytes.splice(40..40, [0xff, 0xfe, 0xc3]);
    std::fs::write(&path, bytes).unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("t.toml"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The watchers' duration flags have the table's maximum too: a value past it is a usage
/// error (exit 2, one line naming the flag), never a value that overflows a deadline.
#[test]
fn duration_flags_past_ten_years_are_usage_errors() {
    let tv = TestVault::new();
    let cases: &[&[&str]] = &[
        &["watch", "approvals", "--settle"],
        &["watch", "approvals", "--retry-initial"],
        &["watch", "approvals", "--retry-max"],
        &["watch", "approvals", "--rescan"],
        &["watch", "filesystem", "--settle"],
        &["watch", "gmail", "--poll"],
        &["watch", "gmail", "--reconnect-max"],
    ];
    for args in cases {
        let mut all = args.to_vec();
        all.push(HUGE);
        let out = ctl(&tv, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(args[2]) && first.contains("is too long: at most \"3650d\""),
            "{args:?}: {err}"
        );
    }
}
