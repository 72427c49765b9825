//! Runs in a container (`ai-employee worker --runner podman`, docs/workers.md
//! "Containers"): every process of a run (the agent, its resumes, `verify`) becomes
//! `podman run --rm --replace --name aie-<task>-a<attempt>-<step> … IMAGE argv…`, with the
//! run's scratch folder as the only mount, at the same path, as the working folder.
//!
//! Pure argv building; the runner (`runner.rs`) starts the client like any agent, and
//! after a run it had to stop (timeout, abort, a signal) removes the container by name,
//! since killing the client leaves the container to podman's monitor.

use std::path::Path;

/// How a worker contains its runs (its `--runner podman` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Podman {
    /// `--podman`: the client program (default `podman`).
    pub program: String,
    /// `--podman-arg`: global flags before `run` / `rm` (`--runtime /usr/sbin/runc`).
    pub global_args: Vec<String>,
    /// `--image`.
    pub image: String,
    /// `--container-network`: `None` for podman's default network (the agent reaches
    /// its API), `Some("none")` for no network at all.
    pub network: Option<String>,
    /// Who the agent runs as inside.
    pub user: User,
}

/// The user of the agent inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Rootless podman: `--userns=keep-id`, the worker's own user inside.
    KeepId,
    /// `--user=UID:GID` (a worker running as root: the scratch folder is given to them).
    Id { uid: u32, gid: u32 },
}

/// What one container of a run needs besides the worker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contained {
    pub podman: Podman,
    /// `aie-<task>-a<attempt>`: each process's container is named this plus its step.
    pub name: String,
    /// The worker's name, as the label [`LABEL`] (what its next start sweeps).
    pub owner: String,
}

/// The label naming the worker that started a container.
pub const LABEL: &str = "ai-employee.worker";

impl Contained {
    pub fn new(podman: Podman, owner: &str, task: &str, attempt: u32) -> Contained {
        Contained {
            podman,
            name: format!("aie-{}-a{attempt}", name_part(task)),
            owner: owner.to_string(),
        }
    }

    /// The container's name for one step (`iteration 1`, `verify`).
    pub fn step_name(&self, step: &str) -> String {
        format!("{}-{}", self.name, name_part(step))
    }

    /// `podman run …` for `argv`, run in `scratch` (mounted at the same path), with the
    /// variables `env_keys` passed from the client's environment (their values are never
    /// in an argument).
    pub fn run_argv<'a>(
        &self,
        name: &str,
        scratch: &Path,
        env_keys: impl IntoIterator<Item = &'a String>,
        argv: &[String],
    ) -> Vec<String> {
        let p = &self.podman;
        let dir = scratch.display().to_string();
        let mut a = vec![p.program.clone()];
        a.extend(p.global_args.iter().cloned());
        a.extend(
            [
                "run",
                "--rm",
                "--replace",
                "--interactive=false",
                "--tty=false",
                "--pull=never",
            ]
            .map(String::from),
        );
        a.push(format!("--name={name}"));
        a.push(format!("--label={LABEL}={}", self.owner));
        if let Some(net) = &p.network {
            a.push(format!("--network={net}"));
        }
        match p.user {
            User::KeepId => a.push("--userns=keep-id".to_string()),
            User::Id { uid, gid } => a.push(format!("--user={uid}:{gid}")),
        }
        a.push(format!("--volume={dir}:{dir}:Z"));
        a.push(format!("--workdir={dir}"));
        for k in env_keys {
            a.push(format!("--env={k}"));
        }
        a.push(p.image.clone());
        a.extend(argv.iter().cloned());
        a
    }

    /// `podman rm --force --ignore --time=0 <name>`.
    pub fn rm_argv(&self, name: &str) -> Vec<String> {
        self.podman.rm_argv(&[name.to_string()])
    }
}

impl Podman {
    /// `podman ps --all --quiet --filter label=…=<owner>`: the containers a worker left.
    pub fn left_by_argv(&self, owner: &str) -> Vec<String> {
        let mut a = vec![self.program.clone()];
        a.extend(self.global_args.iter().cloned());
        a.extend(["ps", "--all", "--quiet", "--no-trunc", "--filter"].map(String::from));
        a.push(format!("label={LABEL}={owner}"));
        a
    }

    /// `podman rm --force --ignore --time=0 ids…`.
    pub fn rm_argv(&self, ids: &[String]) -> Vec<String> {
        let mut a = vec![self.program.clone()];
        a.extend(self.global_args.iter().cloned());
        a.extend(["rm", "--force", "--ignore", "--time=0"].map(String::from));
        a.extend(ids.iter().cloned());
        a
    }
}

/// Whether a scratch folder can be mounted (`--volume` splits on `:`).
pub fn mountable(scratch: &Path) -> Result<(), String> {
    let s = scratch.to_str().ok_or_else(|| {
        format!(
            "the scratch folder {} is not UTF-8, which podman cannot mount",
            scratch.display()
        )
    })?;
    if s.contains([':', ',']) || s.chars().any(char::is_control) {
        return Err(format!(
            "the scratch folder {s:?} has a ':' or ',' in its path, which podman cannot mount \
             (choose another --work-dir)"
        ));
    }
    Ok(())
}

/// `image`: a reference podman takes as one argument (not an option, no spaces).
pub fn check_image(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".to_string())
    } else if s.starts_with('-') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "must be an image reference (no spaces, not starting with '-'), found {s:?}"
        ))
    } else {
        Ok(())
    }
}

/// `UID:GID` (`--container-user`).
pub fn parse_user(s: &str) -> Result<User, String> {
    let (u, g) = s
        .split_once(':')
        .ok_or_else(|| format!("expected UID:GID (numbers), found {s:?}"))?;
    match (u.parse::<u32>(), g.parse::<u32>()) {
        (Ok(uid), Ok(gid)) => Ok(User::Id { uid, gid }),
        _ => Err(format!("expected UID:GID (numbers), found {s:?}")),
    }
}

/// A piece of a container name: podman allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything
/// else becomes `_`, and the piece is kept short.
fn name_part(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podman() -> Podman {
        Podman {
            program: "podman".into(),
            global_args: vec!["--runtime".into(), "/usr/sbin/runc".into()],
            image: "localhost/agent:1".into(),
            network: None,
            user: User::Id {
                uid: 65534,
                gid: 65534,
            },
        }
    }

    #[test]
    fn the_argv_mounts_only_scratch_and_passes_env_by_name() {
        let c = Contained::new(podman(), "w1", "EMAIL 1/ü", 2);
        let name = c.step_name("iteration 1");
        assert_eq!(name, "aie-EMAIL_1__-a2-iteration_1");
        let env = ["ANTHROPIC_API_KEY".to_string()];
        let argv = c.run_argv(
            &name,
            Path::new("/w/runs/T-a2"),
            &env,
            &["claude".into(), "-p".into(), "x y".into()],
        );
        assert_eq!(
            argv,
            [
                "podman",
                "--runtime",
                "/usr/sbin/runc",
                "run",
                "--rm",
                "--replace",
                "--interactive=false",
                "--tty=false",
                "--pull=never",
                "--name=aie-EMAIL_1__-a2-iteration_1",
                "--label=ai-employee.worker=w1",
                "--user=65534:65534",
                "--volume=/w/runs/T-a2:/w/runs/T-a2:Z",
                "--workdir=/w/runs/T-a2",
                "--env=ANTHROPIC_API_KEY",
                "localhost/agent:1",
                "claude",
                "-p",
                "x y",
            ]
        );
        assert_eq!(
            c.rm_argv(&name)[3..],
            ["rm", "--force", "--ignore", "--time=0", name.as_str()]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(mountable(Path::new("/w/a:b")).is_err());
        assert!(mountable(Path::new("/w/a,b")).is_err());
        assert!(mountable(Path::new("/w/ab")).is_ok());
        assert!(check_image("--privileged").is_err());
        assert!(check_image("a b").is_err());
        assert!(check_image("").is_err());
        assert!(check_image("docker.io/library/alpine:3").is_ok());
        assert_eq!(
            parse_user("1000:100"),
            Ok(User::Id {
                uid: 1000,
                gid: 100
            })
        );
        assert!(parse_user("nobody").is_err());
    }
}
