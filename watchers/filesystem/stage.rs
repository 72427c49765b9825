//! Making a task in two steps.
//!
//! 1. **Stage** (worker threads): stream the Inbox file into
//!    `.ai-employee/filesystem.staging/<task>.copy` while hashing it, fsync; write the
//!    metadata to `<task>.meta`, fsync. Nothing is visible yet.
//! 2. **Publish** (main thread, after the ledger line for the task is fsynced): rename
//!    both into `Needs_Action/` as `<task>` and `<task>.md` with a rename that never
//!    replaces. A rename is atomic, so after any crash a staged file is either still in
//!    staging (not published) or in `Needs_Action/` (published), never both or neither.
//!
//! At start, [`recover`] publishes what the ledger vouches for and deletes the rest.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::ledger::{Snap, hex};
use super::{names, sys, task};

/// One file to turn into a task.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: OsString,
    /// `Inbox/<name>`.
    pub path: PathBuf,
    /// The fingerprint the readiness check judged.
    pub snap: Snap,
    /// The task name reserved for it.
    pub task: String,
    pub received: DateTime<Utc>,
    /// The content a task was last made for under this name.
    pub previous: Option<[u8; 32]>,
}

#[derive(Debug)]
pub enum Outcome {
    /// Copy and metadata are durable in staging.
    Staged {
        sha256: [u8; 32],
        snap: Snap,
    },
    /// The content is the one a task was already made for (nothing staged).
    Same {
        snap: Snap,
    },
    /// The file changed since it was judged complete, or while it was copied.
    Changed,
    /// The file is gone, or is no longer a regular file.
    Gone,
    /// Stopped by SIGTERM in the middle.
    Aborted,
    Failed(io::Error),
}

/// A job and how it ended, sent back to the main loop.
#[derive(Debug)]
pub struct Done {
    pub job: Job,
    pub outcome: Outcome,
}

pub fn staged_copy(staging: &Path, task: &str) -> PathBuf {
    staging.join(format!("{task}.copy"))
}

pub fn staged_meta(staging: &Path, task: &str) -> PathBuf {
    staging.join(format!("{task}.meta"))
}

const COPY_BUFFER: usize = 256 * 1024;

/// A worker's tools: the staging folder, the stop flag, a copy buffer.
pub struct Stager {
    staging: PathBuf,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
}

impl Stager {
    pub fn new(staging: PathBuf, stop: Arc<AtomicBool>) -> Stager {
        Stager {
            staging,
            stop,
            buf: vec![0; COPY_BUFFER],
        }
    }

    pub fn stage(&mut self, job: &Job) -> Outcome {
        let copy = staged_copy(&self.staging, &job.task);
        let meta = staged_meta(&self.staging, &job.task);
        let out = match self.try_stage(job, &copy, &meta) {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::Gone,
            // O_NOFOLLOW on a name that became a symlink.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Outcome::Gone,
            Err(e) => Outcome::Failed(e),
        };
        if !matches!(out, Outcome::Staged { .. }) {
            let _ = std::fs::remove_file(&copy);
            let _ = std::fs::remove_file(&meta);
        }
        out
    }

    fn try_stage(&mut self, job: &Job, copy: &Path, meta: &Path) -> io::Result<Outcome> {
        let mut src = sys::open_read(&job.path)?;
        let before = src.metadata()?;
        if !before.is_file() {
            return Ok(Outcome::Gone);
        }
        let snap = Snap::of(&before);
        if snap != job.snap {
            return Ok(Outcome::Changed);
        }
        let mut dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode((before.mode() & 0o777) | 0o600)
            .open(copy)?;
        let mut hasher = Sha256::new();
        let mut copied: u64 = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Outcome::Aborted);
            }
            let n = match src.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&self.buf[..n]);
            dst.write_all(&self.buf[..n])?;
            copied += n as u64;
        }
        let after = Snap::of(&src.metadata()?);
        if after != snap || copied != after.size {
            return Ok(Outcome::Changed);
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        if job.previous == Some(sha256) {
            return Ok(Outcome::Same { snap });
        }
        dst.sync_all()?;
        drop(dst);
        let text = task::render(&task::Facts {
            original_name: &job.name,
            size: copied,
            sha256_hex: &hex(&sha256),
            received: job.received,
        });
        let mut m = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(meta)?;
        m.write_all(text.as_bytes())?;
        m.sync_all()?;
        Ok(Outcome::Staged { sha256, snap })
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Whether a staged file also has a second name: the `link` + `unlink` fallback of
/// [`sys::rename_noreplace`] was interrupted after the link, so it is published already.
fn linked_elsewhere(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.nlink() > 1)
}

/// Most alternatives tried for a taken name before giving up.
const MAX_ALTERNATIVES: u32 = 1000;

/// Publish a committed task: the copy to `Needs_Action/<task>`, then the metadata to
/// `Needs_Action/<task>.md`, never replacing a file. If a name is taken (someone else
/// made a file of exactly that name), the next `FILE_<stamp>-<n>_<name>` is used.
/// Idempotent: what is no longer staged was published before. Does not fsync the folders
/// (not needed: see `commit` in the engine). Returns the name the task got.
pub fn publish(staging: &Path, needs_action: &Path, task: &str) -> io::Result<String> {
    let copy = staged_copy(staging, task);
    let meta = staged_meta(staging, task);
    let mut name = task.to_string();
    let mut n = 1;
    let mut next = |name: &mut String| -> io::Result<()> {
        n += 1;
        if n > MAX_ALTERNATIVES {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("no free name for task {task} in {}", needs_action.display()),
            ));
        }
        *name = names::alternative(task, n);
        Ok(())
    };
    if exists(&copy) {
        if linked_elsewhere(&copy) {
            std::fs::remove_file(&copy)?;
        } else {
            loop {
                let target = needs_action.join(&name);
                if exists(&target) || exists(&needs_action.join(names::meta_name(&name))) {
                    next(&mut name)?;
                    continue;
                }
                match sys::rename_noreplace(&copy, &target) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => next(&mut name)?,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if exists(&meta) {
        if linked_elsewhere(&meta) {
            std::fs::remove_file(&meta)?;
        } else {
            loop {
                let target = needs_action.join(names::meta_name(&name));
                match sys::rename_noreplace(&meta, &target) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Only when a file of exactly this name appeared since the check
                        // above: the note then names a different copy than its own name.
                        tracing::warn!(
                            "{} appeared while publishing; the task note takes another name",
                            target.display()
                        );
                        next(&mut name)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(name)
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Tasks the ledger vouched for that were published now.
    pub published: Vec<String>,
    /// Staged files no ledger line vouched for (deleted; their Inbox files are taken
    /// again).
    pub discarded: usize,
}

/// At start: publish staged tasks named in the ledger (`tasks`), delete everything else
/// in staging, and fsync both folders.
pub fn recover(
    staging: &Path,
    needs_action: &Path,
    tasks: &HashSet<String>,
) -> io::Result<Recovered> {
    let mut committed = Vec::new();
    let mut out = Recovered::default();
    for entry in std::fs::read_dir(staging)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let task = file_name.to_str().and_then(|s| {
            s.strip_suffix(".copy")
                .or_else(|| s.strip_suffix(".meta"))
                .filter(|t| tasks.contains(*t))
        });
        match task {
            Some(t) => committed.push(t.to_string()),
            None => {
                let p = entry.path();
                let removed = if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                match removed {
                    Ok(()) => out.discarded += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    committed.sort();
    committed.dedup();
    for t in committed {
        out.published.push(publish(staging, needs_action, &t)?);
    }
    sys::sync_dir(needs_action)?;
    sys::sync_dir(staging)?;
    Ok(out)
}

pub use crate::vault::layout::ensure_private_dir;

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _tmp: tempfile::TempDir,
        inbox: PathBuf,
        staging: PathBuf,
        na: PathBuf,
    }

    fn dirs() -> io::Result<Dirs> {
        let tmp = tempfile::tempdir()?;
        let d = Dirs {
            inbox: tmp.path().join("Inbox"),
            staging: tmp.path().join("staging"),
            na: tmp.path().join("Needs_Action"),
            _tmp: tmp,
        };
        for p in [&d.inbox, &d.staging, &d.na] {
            std::fs::create_dir(p)?;
        }
        Ok(d)
    }

    fn job(d: &Dirs, name: &str, task: &str, previous: Option<[u8; 32]>) -> io::Result<Job> {
        let path = d.inbox.join(name);
        Ok(Job {
            name: name.into(),
            snap: Snap::of(&std::fs::symlink_metadata(&path)?),
            path,
            task: task.to_string(),
            received: Utc::now(),
            previous,
        })
    }

    fn stager(d: &Dirs) -> Stager {
        Stager::new(d.staging.clone(), Arc::new(AtomicBool::new(false)))
    }

    #[test]
    fn stage_then_publish() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(d.inbox.join("a.txt"), "hello")?;
        let j = job(&d, "a.txt", "FILE_x_a.txt", None)?;
        let Outcome::Staged { sha256, .. } = stager(&d).stage(&j) else {
            panic!("not staged");
        };
        assert_eq!(
            hex(&sha256),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(!d.na.join("FILE_x_a.txt").exists());
        assert_eq!(publish(&d.staging, &d.na, "FILE_x_a.txt")?, "FILE_x_a.txt");
        assert_eq!(std::fs::read_to_string(d.na.join("FILE_x_a.txt"))?, "hello");
        assert!(d.na.join("FILE_x_a.txt.md").exists());
        assert_eq!(std::fs::read_dir(&d.staging)?.count(), 0);
        // Idempotent.
        assert_eq!(publish(&d.staging, &d.na, "FILE_x_a.txt")?, "FILE_x_a.txt");
        Ok(())
    }

    #[test]
    fn files_larger_than_the_buffer_are_copied_whole() -> io::Result<()> {
        let d = dirs()?;
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..COPY_BUFFER * 4 + 7)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        std::fs::write(d.inbox.join("big.bin"), &data)?;
        let j = job(&d, "big.bin", "T", None)?;
        let Outcome::Staged { sha256, snap } = stager(&d).stage(&j) else {
            panic!("not staged");
        };
        assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(snap.size, data.len() as u64);
        assert_eq!(std::fs::read(staged_copy(&d.staging, "T"))?, data);
        Ok(())
    }

    #[test]
    fn same_content_stages_nothing_and_changes_are_seen() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(d.inbox.join("a"), "hello")?;
        let sha: [u8; 32] = Sha256::digest(b"hello").into();
        let j = job(&d, "a", "T", Some(sha))?;
        assert!(matches!(stager(&d).stage(&j), Outcome::Same { .. }));
        std::fs::write(d.inbox.join("a"), "hello, world")?;
        assert!(matches!(stager(&d).stage(&j), Outcome::Changed));
        std::fs::remove_file(d.inbox.join("a"))?;
        assert!(matches!(stager(&d).stage(&j), Outcome::Gone));
        assert_eq!(std::fs::read_dir(&d.staging)?.count(), 0);
        Ok(())
    }

    #[test]
    fn taken_names_get_alternatives() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(d.inbox.join("a"), "1")?;
        std::fs::write(d.na.join("FILE_s_a.md"), "someone else's")?;
        let j = job(&d, "a", "FILE_s_a", None)?;
        assert!(matches!(stager(&d).stage(&j), Outcome::Staged { .. }));
        assert_eq!(publish(&d.staging, &d.na, "FILE_s_a")?, "FILE_s-2_a");
        assert_eq!(
            std::fs::read_to_string(d.na.join("FILE_s_a.md"))?,
            "someone else's"
        );
        assert_eq!(std::fs::read_to_string(d.na.join("FILE_s-2_a"))?, "1");
        assert!(d.na.join("FILE_s-2_a.md").exists());
        Ok(())
    }

    #[test]
    fn recover_publishes_committed_and_discards_the_rest() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(staged_copy(&d.staging, "T1"), "1")?;
        std::fs::write(staged_meta(&d.staging, "T1"), "m1")?;
        // Copy published before the crash, metadata not yet.
        std::fs::write(d.na.join("T2"), "2")?;
        std::fs::write(staged_meta(&d.staging, "T2"), "m2")?;
        // Not in the ledger: abandoned.
        std::fs::write(staged_copy(&d.staging, "T3"), "3")?;
        std::fs::write(d.staging.join("junk"), "")?;
        let tasks: HashSet<String> = ["T1", "T2"].iter().map(|s| s.to_string()).collect();
        let r = recover(&d.staging, &d.na, &tasks)?;
        assert_eq!(r.published, ["T1", "T2"]);
        assert_eq!(r.discarded, 2);
        assert_eq!(std::fs::read_to_string(d.na.join("T1"))?, "1");
        assert_eq!(std::fs::read_to_string(d.na.join("T1.md"))?, "m1");
        assert_eq!(std::fs::read_to_string(d.na.join("T2.md"))?, "m2");
        assert!(!d.na.join("T3").exists());
        assert_eq!(std::fs::read_dir(&d.staging)?.count(), 0);
        Ok(())
    }

    #[test]
    fn interrupted_link_fallback_is_not_published_twice() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(staged_copy(&d.staging, "T"), "1")?;
        std::fs::hard_link(staged_copy(&d.staging, "T"), d.na.join("T"))?;
        std::fs::write(staged_meta(&d.staging, "T"), "m")?;
        publish(&d.staging, &d.na, "T")?;
        let mut names: Vec<_> = std::fs::read_dir(&d.na)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        assert_eq!(names, ["T", "T.md"]);
        Ok(())
    }
}
