//! `ai-employee worker --queue URL [--concurrency N] [--name NAME]`: agent runs for a task
//! loop on another host (src/queue/worker.rs, docs/workers.md).

use std::path::PathBuf;
use std::time::Duration;

use ai_employee_vault::exit_codes;
use ai_employee_vault::logs::system::{self, SystemLogOptions};
use tokio::sync::watch;

use crate::agent::container::{self, Podman, User};
use crate::cli::{ContainerArgs, WorkerRunner};
use crate::queue::client::{DEFAULT_PREFIX, check_url};
use crate::queue::worker::{self, Options, WorkerError};

/// The command line's values.
pub struct Args {
    pub queue: String,
    pub concurrency: u32,
    pub name: Option<String>,
    pub credentials: Option<PathBuf>,
    pub claim_timeout: Option<Duration>,
    pub work_dir: Option<PathBuf>,
    pub allow_program: Vec<String>,
    pub keep_scratch: bool,
    pub containers: ContainerArgs,
}

pub fn run(args: Args) -> i32 {
    system::install(SystemLogOptions {
        file: None,
        console: true,
        level: system::level_from_env(),
        full_time: true,
    });
    let setup = |why: String| super::fail(exit_codes::CONFIG, format!("worker: {why}"));
    if let Err(why) = check_url(&args.queue) {
        return setup(format!("--queue: {why}"));
    }
    let host = host_name();
    let name = args.name.unwrap_or_else(|| host.clone());
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return setup(format!(
            "--name: {name:?} must be 1 to 255 characters without spaces"
        ));
    }
    let credentials = match &args.credentials {
        None => Default::default(),
        Some(p) => {
            let shown = p.display().to_string();
            match crate::queue::credentials::load_file(p, &shown, false) {
                Ok(c) => c,
                Err(e) => return setup(e.to_string()),
            }
        }
    };
    let Some(work_dir) = args.work_dir.or_else(default_work_dir) else {
        return setup("no --work-dir, and neither $STATE_DIRECTORY nor $HOME is set".into());
    };
    let podman = match podman(args.containers) {
        Ok(p) => p,
        Err(why) => return super::fail(exit_codes::USAGE, format!("worker: {why}")),
    };
    let opts = Options {
        url: args.queue,
        credentials,
        name,
        host,
        concurrency: args.concurrency,
        claim_timeout: args
            .claim_timeout
            .unwrap_or(crate::config::model::QueueSettings::DEFAULT_CLAIM_TIMEOUT),
        follow_loop: args.claim_timeout.is_none(),
        work_dir,
        allow: args.allow_program,
        prefix: DEFAULT_PREFIX.to_string(),
        keep_scratch: args.keep_scratch,
        podman,
    };
    let rt = match super::runtime("worker: failed to start the runtime") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let signals = async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            Ok::<_, std::io::Error>(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
        }
        .await;
        let signals = match signals {
            Ok(s) => s,
            Err(e) => {
                return Err(WorkerError::Failed(format!(
                    "failed to set up signal handling: {e}"
                )));
            }
        };
        tokio::spawn(async move {
            signals.await;
            tracing::info!("stopping (signal)");
            let _ = stop_tx.send(true); // the worker is gone already: nothing to stop
        });
        worker::run(opts, stop_rx).await
    });
    // Runs abandoned at the stop have been killed; do not wait for stray tasks.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => exit_codes::OK,
        Err(WorkerError::Setup(why)) => setup(why),
        Err(WorkerError::Failed(why)) => super::fail(exit_codes::FAILURE, format!("worker: {why}")),
    }
}

/// The container flags, checked: `None` for `--runner process`.
fn podman(a: ContainerArgs) -> Result<Option<Podman>, String> {
    if a.runner == WorkerRunner::Process {
        let container_only = [
            ("--image", a.image.is_some()),
            ("--podman-arg", !a.podman_arg.is_empty()),
            ("--container-network", a.container_network.is_some()),
            ("--container-user", a.container_user.is_some()),
        ];
        if let Some((flag, _)) = container_only.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} is used only with --runner podman"));
        }
        return Ok(None);
    }
    let image = a.image.unwrap_or_default();
    container::check_image(&image).map_err(|why| format!("--image: {why}"))?;
    if a.podman.is_empty() {
        return Err("--podman: must not be empty".to_string());
    }
    if let Some(net) = &a.container_network
        && (net.is_empty() || net.starts_with('-'))
    {
        return Err(format!("--container-network: not a network name: {net:?}"));
    }
    let user = match &a.container_user {
        Some(u) => container::parse_user(u).map_err(|why| format!("--container-user: {why}"))?,
        None if nix::unistd::geteuid().is_root() => User::Id {
            uid: 65534,
            gid: 65534,
        },
        None => User::KeepId,
    };
    Ok(Some(Podman {
        program: a.podman,
        global_args: a.podman_arg,
        image,
        network: a.container_network,
        user,
    }))
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else the XDG state folder.
fn default_work_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd may pass several, separated by ':'; the first is ours.
        let first = d.to_string_lossy().split(':').next().map(PathBuf::from);
        return first;
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return Some(d.join("ai-employee-worker"));
    }
    var("HOME").map(|h| h.join(".local/state/ai-employee-worker"))
}
