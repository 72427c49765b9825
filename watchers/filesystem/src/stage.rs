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
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ai_employee_vault::nofollow::{self, Dir, How, Kind, Replace};
use ai_employee_vault::sys;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::ledger::{Snap, hex};
use super::{names, task};

/// One file to turn into a task.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: OsString,
    /// The folder it is in (`Inbox/`): it is opened relative to it, never by path.
    pub inbox: Arc<Dir>,
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
    /// The metadata (and the copy, when `copied`) are durable in staging.
    Staged {
        sha256: [u8; 32],
        snap: Snap,
        /// False when the file is over `--max-size`: a note only.
        copied: bool,
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

pub fn staged_copy(task: &str) -> String {
    format!("{task}.copy")
}

pub fn staged_meta(task: &str) -> String {
    format!("{task}.meta")
}

const COPY_BUFFER: usize = 256 * 1024;

/// A worker's tools: the staging folder, the stop flag, a copy buffer, the size limit.
pub struct Stager {
    staging: Arc<Dir>,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
    max_size: u64,
}

impl Stager {
    pub fn new(staging: Arc<Dir>, stop: Arc<AtomicBool>, max_size: u64) -> Stager {
        Stager {
            staging,
            stop,
            buf: vec![0; COPY_BUFFER],
            max_size,
        }
    }

    pub fn stage(&mut self, job: &Job) -> Outcome {
        let copy = staged_copy(&job.task);
        let meta = staged_meta(&job.task);
        let out = match self.try_stage(job, &copy, &meta) {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::Gone,
            // A name that became a symlink (O_NOFOLLOW), a FIFO or a folder.
            Err(e) if nofollow::is_symlink_error(&e) => Outcome::Gone,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Outcome::Gone,
            Err(e) => Outcome::Failed(e),
        };
        if !matches!(out, Outcome::Staged { .. }) {
            // Best effort (often not there): the next start's recovery discards leftovers.
            let _ = self.staging.remove_file(&copy);
            // Best effort, as for the copy.
            let _ = self.staging.remove_file(&meta);
        }
        out
    }

    fn try_stage(&mut self, job: &Job, copy: &str, meta: &str) -> io::Result<Outcome> {
        let src = job.inbox.file(&job.name, How::READ)?;
        let before = nofollow::stat_file(&src)?;
        let snap = Snap::of_stat(&before);
        if snap != job.snap {
            return Ok(Outcome::Changed);
        }
        let too_large = snap.size > self.max_size;
        let dst = if too_large {
            None
        } else {
            Some(
                self.staging
                    .file(copy, How::create_new((before.mode & 0o777) | 0o600))?,
            )
        };
        let mut hasher = Sha256::new();
        let Some(copied) = self.copy(&src, dst.as_ref(), &mut hasher)? else {
            return Ok(Outcome::Aborted);
        };
        let after = Snap::of_stat(&nofollow::stat_file(&src)?);
        if after != snap || copied != after.size {
            return Ok(Outcome::Changed);
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        if job.previous == Some(sha256) {
            return Ok(Outcome::Same { snap });
        }
        if let Some(dst) = dst {
            dst.sync_all()?;
        }
        let facts = task::Facts {
            original_name: &job.name,
            size: copied,
            sha256_hex: &hex(&sha256),
            received: job.received,
        };
        let text = if too_large {
            task::render_not_copied(&facts, self.max_size)
        } else {
            task::render(&facts)
        };
        let mut m = self.staging.file(meta, How::create_new(0o600))?;
        m.write_all(text.as_bytes())?;
        m.sync_all()?;
        Ok(Outcome::Staged {
            sha256,
            snap,
            copied: !too_large,
        })
    }

    /// Stream `src` into `dst` (when given) at the same offsets while hashing all of it.
    /// Holes (`SEEK_DATA` / `SEEK_HOLE`) are hashed as the zeros they read as but not
    /// written, so a sparse file stays sparse; the copy gets its length at the end.
    /// Returns the bytes hashed, or `None` when SIGTERM stopped it.
    fn copy(
        &mut self,
        src: &File,
        dst: Option<&File>,
        hasher: &mut Sha256,
    ) -> io::Result<Option<u64>> {
        let mut pos: u64 = 0;
        let mut sparse = true;
        'segments: loop {
            let data = if sparse {
                match sys::seek_data(src, pos) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        // No data after `pos`: the rest is a hole up to the end.
                        let end = src.metadata()?.len().max(pos);
                        if !self.hash_zeros(hasher, end - pos) {
                            return Ok(None);
                        }
                        pos = end;
                        break 'segments;
                    }
                    Err(_) => {
                        sparse = false;
                        pos
                    }
                }
            } else {
                pos
            };
            if !self.hash_zeros(hasher, data.saturating_sub(pos)) {
                return Ok(None);
            }
            pos = pos.max(data);
            let hole = if sparse {
                sys::seek_hole(src, pos).unwrap_or(u64::MAX)
            } else {
                u64::MAX
            };
            while pos < hole {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let want = usize::try_from(hole - pos)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                let n = match src.read_at(&mut self.buf[..want], pos) {
                    Ok(0) => break 'segments,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&self.buf[..n]);
                if let Some(dst) = dst {
                    dst.write_all_at(&self.buf[..n], pos)?;
                }
                pos += n as u64;
            }
            if !sparse {
                break;
            }
        }
        if let Some(dst) = dst {
            // A trailing hole: the copy gets the full length without data blocks.
            if dst.metadata()?.len() < pos {
                dst.set_len(pos)?;
            }
        }
        Ok(Some(pos))
    }

    /// Hash `n` zero bytes (a hole). False when SIGTERM stopped it.
    fn hash_zeros(&mut self, hasher: &mut Sha256, mut n: u64) -> bool {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut since_check = 0usize;
        while n > 0 {
            let k = usize::try_from(n).unwrap_or(usize::MAX).min(ZEROS.len());
            hasher.update(&ZEROS[..k]);
            n -= k as u64;
            since_check += k;
            if since_check >= COPY_BUFFER {
                since_check = 0;
                if self.stop.load(Ordering::Relaxed) {
                    return false;
                }
            }
        }
        true
    }
}

/// Whether a staged file also has a second name: the `link` + `unlink` fallback of
/// [`Dir::rename`] without replacing was interrupted after the link, so it is published already.
fn linked_elsewhere(staging: &Dir, name: &str) -> bool {
    staging.stat(name).is_ok_and(|m| m.nlink > 1)
}

/// Most alternatives tried for a taken name before giving up.
const MAX_ALTERNATIVES: u32 = 1000;

/// Publish a committed task: the copy to `Needs_Action/<task>`, then the metadata to
/// `Needs_Action/<task>.md`, never replacing a file. If a name is taken (someone else
/// made a file of exactly that name), the next `FILE_<stamp>-<n>_<name>` is used.
/// Idempotent: what is no longer staged was published before. A task over `--max-size`
/// has no copy: only its note is published. Does not fsync the folders (not needed: see
/// `commit` in the engine). Returns the name the task got.
pub fn publish(staging: &Dir, needs_action: &Dir, task: &str) -> io::Result<String> {
    let copy = staged_copy(task);
    let meta = staged_meta(task);
    let mut name = task.to_string();
    let mut n = 1;
    let mut next = |name: &mut String| -> io::Result<()> {
        n += 1;
        if n > MAX_ALTERNATIVES {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "no free name for task {task} in {}",
                    needs_action.path().display()
                ),
            ));
        }
        *name = names::alternative(task, n);
        Ok(())
    };
    if staging.exists(&copy) {
        if linked_elsewhere(staging, &copy) {
            staging.remove_file(&copy)?;
        } else {
            loop {
                if needs_action.exists(&name) || needs_action.exists(names::meta_name(&name)) {
                    next(&mut name)?;
                    continue;
                }
                match staging.rename(&copy, needs_action, &name, Replace::No) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => next(&mut name)?,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if staging.exists(&meta) {
        if linked_elsewhere(staging, &meta) {
            staging.remove_file(&meta)?;
        } else {
            loop {
                let target = names::meta_name(&name);
                match staging.rename(&meta, needs_action, &target, Replace::No) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Only when a file of exactly this name appeared since the check
                        // above: the note then names a different copy than its own name.
                        tracing::warn!(
                            "{} appeared while publishing; the task note takes another name",
                            needs_action.display_path(&target).display()
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
    staging: &Dir,
    needs_action: &Dir,
    tasks: &HashSet<String>,
) -> io::Result<Recovered> {
    let mut committed = Vec::new();
    let mut out = Recovered::default();
    for entry in staging.list()? {
        let task = entry.name.to_str().and_then(|s| {
            s.strip_suffix(".copy")
                .or_else(|| s.strip_suffix(".meta"))
                .filter(|t| tasks.contains(*t))
        });
        match task {
            Some(t) => committed.push(t.to_string()),
            None => {
                let removed = if entry.kind == Kind::Dir {
                    staging.remove_dir_all(&entry.name)
                } else {
                    staging.remove_file(&entry.name)
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
    needs_action.sync()?;
    staging.sync()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    // Path-taking forms of the functions under test, for the tests' brevity.
    fn publish(staging: &Path, na: &Path, task: &str) -> io::Result<String> {
        super::publish(&Dir::open(staging)?, &Dir::open(na)?, task)
    }

    fn recover(staging: &Path, na: &Path, tasks: &HashSet<String>) -> io::Result<Recovered> {
        super::recover(&Dir::open(staging)?, &Dir::open(na)?, tasks)
    }

    fn staged_copy(staging: &Path, task: &str) -> PathBuf {
        staging.join(super::staged_copy(task))
    }

    fn staged_meta(staging: &Path, task: &str) -> PathBuf {
        staging.join(super::staged_meta(task))
    }

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
        Ok(Job {
            name: name.into(),
            snap: Snap::of_stat(&Dir::open(&d.inbox)?.stat(name)?),
            inbox: Arc::new(Dir::open(&d.inbox)?),
            task: task.to_string(),
            received: Utc::now(),
            previous,
        })
    }

    fn stager(d: &Dirs) -> Stager {
        let staging = Dir::open(&d.staging).map(Arc::new);
        let staging = staging.unwrap_or_else(|e| panic!("{e}"));
        Stager::new(staging, Arc::new(AtomicBool::new(false)), u64::MAX)
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
        let Outcome::Staged { sha256, snap, .. } = stager(&d).stage(&j) else {
            panic!("not staged");
        };
        assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(snap.size, data.len() as u64);
        assert_eq!(std::fs::read(staged_copy(&d.staging, "T"))?, data);
        Ok(())
    }

    #[test]
    fn holes_are_kept_and_hashed_as_zeros() -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let d = dirs()?;
        let p = d.inbox.join("sparse");
        let f = std::fs::File::create(&p)?;
        // Data in the middle, holes before, between and after (a trailing hole too).
        f.set_len(64 << 20)?;
        f.write_all_at(b"middle", 20 << 20)?;
        f.write_all_at(&[7u8; 5000], 40 << 20)?;
        drop(f);
        let j = job(&d, "sparse", "T", None)?;
        let Outcome::Staged { sha256, snap, .. } = stager(&d).stage(&j) else {
            panic!("not staged");
        };
        let whole = std::fs::read(&p)?;
        assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(&whole)));
        assert_eq!(snap.size, 64 << 20);
        let copy = staged_copy(&d.staging, "T");
        assert_eq!(std::fs::read(&copy)?, whole);
        let blocks = |p: &Path| std::fs::metadata(p).map(|m| m.blocks() * 512);
        assert!(
            blocks(&copy)? <= blocks(&p)? + (1 << 20),
            "holes were filled"
        );
        Ok(())
    }

    #[test]
    fn files_over_the_size_limit_get_a_note_without_a_copy() -> io::Result<()> {
        let d = dirs()?;
        std::fs::write(d.inbox.join("big"), [1u8; 2048])?;
        let j = job(&d, "big", "T", None)?;
        let staging = Arc::new(Dir::open(&d.staging)?);
        let mut st = Stager::new(staging, Arc::new(AtomicBool::new(false)), 1024);
        let Outcome::Staged { sha256, copied, .. } = st.stage(&j) else {
            panic!("not staged");
        };
        assert!(!copied);
        assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest([1u8; 2048])));
        assert!(!staged_copy(&d.staging, "T").exists());
        let note = std::fs::read_to_string(staged_meta(&d.staging, "T"))?;
        assert!(note.contains("copied: false"), "{note}");
        assert_eq!(publish(&d.staging, &d.na, "T")?, "T");
        assert!(d.na.join("T.md").exists() && !d.na.join("T").exists());
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
