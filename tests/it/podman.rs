//! Runs in podman containers (`ai-employee worker --runner podman`, docs/workers.md
//! "Containers"), with a real Redis, real workers and a real podman running a one-file image
//! made here: `podman import` of a tarball holding a static stand-in agent
//! (`podman/agent.c`, built with `cc -static`).
//!
//! Where the machine cannot run a container (no podman, no C compiler, a sandbox that
//! refuses namespaces), the tests that need one print `SKIPPED: <why>` and pass. The probe
//! tries podman as it is, then with the workarounds docs/workers.md describes: a
//! `CONTAINERS_CONF` with `default_ulimits = []`, then also `--runtime /usr/sbin/runc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ai_employee::agent::events::RunResult;
use ai_employee::queue::client::QueueClient;
use ai_employee::queue::wire::{RunnerKind, TaskMessage};

use crate::common::{now_ns, wait_until};
use crate::queue::{Redis, Setup, client, results, rt};
use crate::queue_loop::{Bench, stop};

const DEADLINE: Duration = Duration::from_secs(60);

/// How podman runs here, found by [`probe`].
struct Podman {
    /// `CONTAINERS_CONF`, when the workaround was needed.
    conf: Option<PathBuf>,
    /// Global flags (`--runtime /usr/sbin/runc`).
    args: Vec<String>,
    image: String,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        if let Some(conf) = &self.conf {
            c.env("CONTAINERS_CONF", conf);
        }
        c.args(&self.args);
        c
    }

    /// The worker's flags for this podman and image.
    fn worker_args(&self, network: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = ["--runner", "podman", "--image", &self.image]
            .map(String::from)
            .into();
        // A harmless global flag, in the two-argument form (a value starting with '-').
        a.extend(["--podman-arg", "--log-level", "--podman-arg", "error"].map(String::from));
        for g in &self.args {
            a.push(format!("--podman-arg={g}"));
        }
        if let Some(n) = network {
            a.push(format!("--container-network={n}"));
        }
        a.extend(["--allow-program".to_string(), "/agent".to_string()]);
        a
    }

    fn worker_env(&self) -> Vec<(String, String)> {
        self.conf
            .iter()
            .map(|c| ("CONTAINERS_CONF".to_string(), c.display().to_string()))
            .collect()
    }

    /// The names of every container, running or not, starting with `prefix`.
    fn containers(&self, prefix: &str) -> Vec<String> {
        let out = self
            .cmd()
            .args(["ps", "--all", "--format", "{{.Names}}"])
            .output()
            .unwrap();
        assert!(out.status.success(), "podman ps: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }
}

/// The image and the podman set-up that runs it, made once per test binary; `Err(why)`
/// when this machine cannot run a container.
fn podman() -> Result<&'static Podman, String> {
    static P: OnceLock<Result<Podman, String>> = OnceLock::new();
    P.get_or_init(probe).as_ref().map_err(Clone::clone)
}

fn probe() -> Result<Podman, String> {
    let ran = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !ran(Command::new("podman").arg("--version")).is_ok_and(|s| s.success()) {
        return Err("podman is not installed (apt-get install podman runc)".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("aie-podman-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/podman/agent.c");
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("agent"))
        .arg(&src)
        .output();
    match built {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "cc -static failed (no static libc?): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Err(format!("no C compiler: {e}")),
    }
    let tar = dir.path().join("image.tar");
    if !ran(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))
    .is_ok_and(|s| s.success())
    {
        return Err("tar failed".into());
    }
    // Outlives the probe's folder (a static is never dropped, so that folder is removed when
    // the probe ends): one file of fixed content for every test process, swapped in whole.
    let conf = std::env::temp_dir().join("aie-podman-containers.conf");
    let wrote = dir.path().join("containers.conf");
    fs::write(&wrote, "[containers]\ndefault_ulimits = []\n").unwrap();
    fs::rename(&wrote, &conf).unwrap();
    let mut tries: Vec<(Option<PathBuf>, Vec<String>)> =
        vec![(None, vec![]), (Some(conf.clone()), vec![])];
    if Path::new("/usr/sbin/runc").exists() {
        tries.push((
            Some(conf),
            vec!["--runtime".to_string(), "/usr/sbin/runc".to_string()],
        ));
    }
    // Tagged by the agent's bytes: a run with the same agent reuses the image.
    let bytes = fs::read(root.join("agent")).unwrap();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let image = format!("localhost/aie-test-agent:{hash:016x}");
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(scratch.join("Plans")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(scratch.join("Plans"), fs::Permissions::from_mode(0o777)).unwrap();
    let mut last = String::new();
    for (conf, args) in tries {
        let p = Podman {
            conf,
            args,
            image: image.clone(),
        };
        let exists = p.cmd().args(["image", "exists", &image]).status();
        let import = if exists.is_ok_and(|s| s.success()) {
            None
        } else {
            Some(
                p.cmd()
                    .arg("import")
                    .arg(&tar)
                    .arg(&image)
                    .output()
                    .unwrap(),
            )
        };
        if let Some(import) = import.filter(|o| !o.status.success()) {
            last = format!(
                "podman import failed: {}",
                String::from_utf8_lossy(&import.stderr).trim()
            );
            continue;
        }
        let dir_s = scratch.display().to_string();
        let run = p
            .cmd()
            .args(["run", "--rm", "--pull=never", "--network=none"])
            .arg("--user=65534:65534")
            .arg(format!("--volume={dir_s}:{dir_s}"))
            .arg(format!("--workdir={dir_s}"))
            .arg(&image)
            .args(["/agent", "ok", "probe"])
            .output()
            .unwrap();
        if run.status.success() && scratch.join("Plans/PLAN_probe.md").exists() {
            eprintln!(
                "podman runs here with CONTAINERS_CONF={:?} and global flags {:?}",
                p.conf, p.args
            );
            return Ok(p);
        }
        last = format!(
            "podman run of an imported image fails here: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    Err(last)
}

macro_rules! podman_or_skip {
    () => {
        match podman() {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

#[test]
fn a_task_run_in_a_container_reaches_done_and_sees_only_its_scratch_folder() {
    let Some(redis) = Redis::start() else { return };
    let p = podman_or_skip!();
    let b = Bench::new(&redis, "10m", "");
    let secret = b.tv.path("secret.txt");
    fs::write(&secret, "not for the agent").unwrap();
    let work = b.tv.path("work-c1");
    let vault_task = b.tv.vault.join("Company_Handbook.md");
    fs::write(&vault_task, "The vault's own handbook.\n").unwrap();
    b.tv.write_config(&format!(
        "[agent]\ncommand = [\"/agent\", \"ok\", \"{{task}}\", \"{{vault}}/Company_Handbook.md\", \
         \"{}\", \"{}\", \"{}\", \"{}\"]\n\
         queue = \"{}\"\nqueue_unreachable = \"wait\"\nretry_delays = [\"100ms\"]\n\
         runner = \"podman\"\nimage = \"{}\"\n",
        vault_task.display(),
        b.tv.vault.display(),
        secret.display(),
        work.join("logs").display(),
        redis.url(),
        p.image
    ));
    let id = format!("BOX_{}", now_ns());
    b.task(&id);
    let lp = b.loop_();
    let mut args = p.worker_args(None);
    args.extend(["--work-dir".to_string(), work.display().to_string()]);
    let w = spawn_worker(&b, &redis.url(), "c1", &args, &p.worker_env());
    b.wait_done(std::slice::from_ref(&id), DEADLINE);
    let plan = fs::read_to_string(b.tv.vault.join(format!("Plans/PLAN_{id}.md"))).unwrap();
    let root = nix::unistd::geteuid().is_root();
    let want_uid = if root {
        "uid=65534".to_string()
    } else {
        format!("uid={}", nix::unistd::geteuid())
    };
    assert!(plan.contains(&want_uid), "{plan}");
    // The scratch folder's handbook (a copy) is there; nothing of the host is.
    let lines: Vec<&str> = plan.lines().skip(3).collect();
    assert!(lines[0].ends_with("Company_Handbook.md: visible"), "{plan}");
    assert!(lines[0].contains("/work-c1/runs/"), "{plan}");
    for (i, path) in [&vault_task, &b.tv.vault, &secret, &work.join("logs")]
        .iter()
        .enumerate()
    {
        assert_eq!(
            lines[i + 1],
            format!("{}: absent", path.display()),
            "the agent sees {} on the host:\n{plan}",
            path.display()
        );
    }
    // `podman run --rm`: nothing left behind.
    assert!(p.containers(&format!("aie-{id}")).is_empty());
    assert_eq!(stop(w), Some(0));
    assert_eq!(stop(lp), Some(0));
}

fn spawn_worker(
    b: &Bench,
    url: &str,
    name: &str,
    args: &[String],
    env: &[(String, String)],
) -> std::process::Child {
    let log = fs::File::create(b.tv.path(&format!("{name}.log"))).unwrap();
    crate::queue::worker_command(url, name, "", log)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .unwrap()
}

/// Task `<tag>_<ns>` running the agent's `sleep` (it ignores SIGTERM as its pid 1),
/// `edit` applied to its message, published on `c`; a podman worker `worker` (no network)
/// started for it. Returns the task's id, its run's container-name prefix and the worker
/// once that container runs.
#[allow(clippy::too_many_arguments)]
fn sleeping_run(
    s: &Setup,
    p: &Podman,
    rt: &tokio::runtime::Runtime,
    c: &mut QueueClient,
    url: &str,
    tag: &str,
    worker: &str,
    edit: impl FnOnce(&mut TaskMessage),
) -> (String, String, std::process::Child) {
    let id = format!("{tag}_{}", now_ns());
    let mut m = s.task(&id, 1, false);
    m.agent.command = vec!["/agent".into(), "sleep".into()];
    edit(&mut m);
    rt.block_on(c.publish(&m)).unwrap();
    let args = p.worker_args(Some("none"));
    let w = s.worker_with(url, worker, "10m", &args, &p.worker_env());
    let prefix = format!("aie-{id}-a1-");
    assert!(
        wait_until(DEADLINE, || !p.containers(&prefix).is_empty()),
        "no container {prefix}*; worker log:\n{}",
        s.log(worker)
    );
    (id, prefix, w)
}

#[test]
fn a_container_past_its_timeout_is_removed() {
    let Some(redis) = Redis::start() else { return };
    let p = podman_or_skip!();
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    // The container runs (the agent ignores SIGTERM as its pid 1)…
    let (id, prefix, w) = sleeping_run(&s, p, &rt, &mut c, &redis.url(), "SLOW", "t1", |m| {
        m.agent.timeout_ms = 3_000;
        m.agent.kill_after_ms = 500;
    });
    let got = results(&rt, &mut c, 1);
    assert_eq!(got.len(), 1, "worker log:\n{}", s.log("t1"));
    let r = &got[0].result.as_ref().unwrap().message;
    assert_eq!(r.status, RunResult::Timeout, "{r:?}");
    // … and is gone once the run has ended, although only its client was killed.
    assert_eq!(p.containers(&prefix), Vec::<String>::new());
    let log = fs::read_to_string(s.dir.path().join(format!("work-t1/logs/{id}.log"))).unwrap();
    assert!(log.contains("removing container"), "{log}");
    assert_eq!(stop(w), Some(0));
}

#[test]
fn a_plain_worker_refuses_a_run_that_asks_for_a_container() {
    // No podman needed: the worker refuses before anything runs.
    let Some(redis) = Redis::start() else { return };
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    let mut m = s.task("BOXED_1", 1, false);
    m.agent.runner = Some(RunnerKind::Podman);
    m.agent.image = Some("localhost/agent:1".into());
    rt.block_on(c.publish(&m)).unwrap();
    let w = s.worker_with(&redis.url(), "plain", "10m", &[], &[]);
    let got = results(&rt, &mut c, 1);
    assert_eq!(got.len(), 1, "worker log:\n{}", s.log("plain"));
    let r = &got[0].result.as_ref().unwrap().message;
    assert_eq!(r.status, RunResult::Failed);
    let why = r.reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("runner = \"podman\"") && why.contains("--runner podman"),
        "{why}"
    );
    assert!(r.files.is_empty(), "the agent did not run: {r:?}");
    assert_eq!(
        fs::read_dir(s.dir.path().join("work-plain/runs"))
            .unwrap()
            .count(),
        0,
        "no scratch folder was made"
    );
    assert_eq!(stop(w), Some(0));
}

#[test]
fn worker_container_flags_are_checked() {
    let run = |args: &[&str]| {
        Command::new(crate::common::BIN)
            .args(["worker", "--queue", "redis://127.0.0.1:1/0", "--work-dir"])
            .arg(std::env::temp_dir())
            .args(args)
            .output()
            .unwrap()
    };
    for (args, code, needle) in [
        (&["--runner", "podman"][..], 2, "--image"),
        (
            &["--image", "x"][..],
            2,
            "--image is used only with --runner podman",
        ),
        (
            &["--runner", "podman", "--image=--privileged"][..],
            2,
            "--image: must be an image reference",
        ),
        (
            &[
                "--runner",
                "podman",
                "--image",
                "x",
                "--container-user",
                "root",
            ][..],
            2,
            "--container-user: expected UID:GID",
        ),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_worker_stopped_mid_run_leaves_no_container() {
    let Some(redis) = Redis::start() else { return };
    let p = podman_or_skip!();
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    let (_, prefix, w) = sleeping_run(&s, p, &rt, &mut c, &redis.url(), "STOPPED", "s1", |m| {
        m.agent.kill_after_ms = 500;
    });
    // SIGTERM: the run is abandoned (released for another worker), its container removed.
    assert_eq!(stop(w), Some(0), "worker log:\n{}", s.log("s1"));
    assert_eq!(p.containers(&prefix), Vec::<String>::new());
    assert!(s.log("s1").contains("abandoned"), "{}", s.log("s1"));
}

#[test]
fn a_worker_without_podman_or_its_image_needs_setup() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[String], env: &[(String, String)]| {
        Command::new(crate::common::BIN)
            .args(["worker", "--queue", "redis://127.0.0.1:1/0", "--work-dir"])
            .arg(work.path().join(format!("w-{}", now_ns())))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    // No podman: exit 78 before Redis is even tried (port 1 would never answer).
    let out = run(
        &[
            "--runner",
            "podman",
            "--image",
            "x",
            "--podman",
            "/nonexistent/podman",
        ]
        .map(String::from),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("cannot run \"/nonexistent/podman\""), "{err}");
    let p = podman_or_skip!();
    let mut args = p.worker_args(None);
    let at = args.iter().position(|a| a == &p.image).unwrap();
    args[at] = "localhost/aie-no-such-image:1".to_string();
    let out = run(&args, &p.worker_env());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("is not on this host"), "{err}");
}

#[test]
fn a_killed_workers_containers_are_removed_at_its_next_start() {
    let Some(redis) = Redis::start() else { return };
    let p = podman_or_skip!();
    let s = Setup::new();
    let rt = rt();
    let mut c = client(&rt, &redis.url());
    let (_, prefix, mut w) = sleeping_run(&s, p, &rt, &mut c, &redis.url(), "KILLED", "k1", |_| {});
    let args = p.worker_args(Some("none"));
    // SIGKILL: nothing removes the container, which podman keeps running…
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(p.containers(&prefix).len(), 1);
    // … until a worker of the same name starts (here on a queue that never answers, so it
    // cannot take the run back: only its start removes the container).
    let w2 = s.worker_with("redis://127.0.0.1:1/0", "k1", "10m", &args, &p.worker_env());
    assert!(
        wait_until(DEADLINE, || p.containers(&prefix).is_empty()),
        "the container stays; worker log:\n{}",
        s.log("k1")
    );
    // The container is gone from `podman ps` before the worker has written its line.
    assert!(
        wait_until(DEADLINE, || s.log("k1").contains("removed 1 container(s)")),
        "{}",
        s.log("k1")
    );
    assert_eq!(stop(w2), Some(0));
}
