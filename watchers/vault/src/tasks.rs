//! Exactly-once task files for the message watchers (mail, WhatsApp): each message key
//! (`<uidvalidity>:<uid>`, a WhatsApp message id) becomes one `Needs_Action/` file, never
//! two, even when a crash hits between any two steps or the message is delivered again.
//!
//! The steps of [`TaskSink::write_batch`]:
//! 1. each new task is written to `.ai-employee/staging-<watcher>/<name>` and made
//!    durable with its folder entry (`fsync` of each file and the folder; for a burst of
//!    many, one `syncfs` on Linux, see [`make_durable`]);
//! 2. one line per task (`{"key":…,"task":…}`) is appended to `.ai-employee/<watcher>.seen`
//!    and the ledger is fsynced: from here on the key counts as seen;
//! 3. each staged file is renamed (never replacing) into `Needs_Action/`. The folder is
//!    not fsynced: the task is already durable (staged and named by the ledger), and a
//!    rename the crash undid leaves the file in staging, where `open` publishes it.
//!
//! A crash before 2 leaves staged files no ledger line names: [`TaskSink::open`] deletes
//! them, and the message, not yet seen, is taken again. A crash after 2 leaves staged
//! files the ledger names: `open` publishes them. A message delivered again after 2 is
//! seen and skipped. A torn last ledger line (a crash in the middle of the append) was
//! never fsynced, so nothing relies on it: it is cut off at open.
//!
//! The ledger is compacted as it grows: keys move into a sorted on-disk index and the
//! journal is cut down to the tasks still staged (see [`crate::task_ledger`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::layout::{Folder, STATE_DIR};
use crate::nofollow::{Dir, How, Replace};
use crate::task_ledger::{SeenLedger, staged_names};

/// Longest slug kept in a file name (bytes).
const MAX_SLUG_BYTES: usize = 48;
/// Most `-n` alternatives tried for a taken name.
const MAX_ALTERNATIVES: u32 = 1000;

/// A task to write.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// What makes the message unique for its watcher.
    pub key: String,
    /// `EMAIL` or `WHATSAPP`.
    pub prefix: &'static str,
    /// When the message was received (the file name's stamp).
    pub when: DateTime<Utc>,
    /// Turned into the file name's slug (a subject, a sender).
    pub title: String,
    /// The file name's stem when the watcher names its tasks itself
    /// (`GITHUB_<owner>_<repo>_<number>`: file-name-safe, never ending in `-<digits>`);
    /// `None`: `<prefix>_<stamp>_<slug of title>`.
    pub stem: Option<String>,
    /// The whole file: frontmatter and body.
    pub text: String,
}

/// The staging folder, the ledger of seen keys, and `Needs_Action/`.
pub struct TaskSink {
    /// Both reached without following a symlink (see `crate::nofollow`).
    staging: Dir,
    needs_action: Dir,
    ledger: SeenLedger,
    /// Per name stem, the next `-n` to try: many tasks with one stem (one sender within
    /// one second) never rescan the names already taken.
    next_alternative: HashMap<String, u32>,
}

impl TaskSink {
    /// Open (creating what is missing) the sink of watcher `watcher` in `vault`, and finish
    /// what a crash interrupted. Returns the sink and the tasks published by recovery.
    /// No folder of the vault, nor the ledger, is reached through a symlink.
    pub fn open(vault: &Path, watcher: &str) -> io::Result<(TaskSink, Vec<String>)> {
        let root = Dir::open(vault)?;
        let state = root.make_folder(STATE_DIR, true)?;
        let staging = state.make_folder(format!("staging-{watcher}"), true)?;
        let needs_action = root.make_folder(Folder::NeedsAction, false)?;
        let staged = staged_names(&staging)?;
        let opened = SeenLedger::open(&state, watcher, &staged)?;
        let mut sink = TaskSink {
            staging,
            needs_action,
            ledger: opened.ledger,
            next_alternative: HashMap::new(),
        };
        let recovered = sink.recover(&opened.committed)?;
        Ok((sink, recovered))
    }

    /// Whether a task was already written for `key` (tests only: the sink checks keys
    /// itself, and a failed index read is an error there, never a "no").
    #[cfg(test)]
    fn seen(&self, key: &str) -> bool {
        self.ledger.seen(key).expect("reading the ledger index")
    }

    /// How many keys the ledger remembers.
    pub fn remembered(&self) -> usize {
        usize::try_from(self.ledger.remembered()).unwrap_or(usize::MAX)
    }

    /// Write one task unless its key was seen. Returns the file name in `Needs_Action/`.
    pub fn write(&mut self, task: &NewTask) -> io::Result<Option<String>> {
        Ok(self
            .write_batch(std::slice::from_ref(task))?
            .pop()
            .flatten())
    }

    /// Write several tasks with the fsyncs of one batch done together. Returns, per
    /// task, the file name in `Needs_Action/`, or `None` when its key was seen before
    /// (or earlier in the same batch). When this returns `Ok`, every task is durable.
    pub fn write_batch(&mut self, tasks: &[NewTask]) -> io::Result<Vec<Option<String>>> {
        let mut batch_keys = HashSet::new();
        let mut staged: Vec<Option<String>> = Vec::with_capacity(tasks.len());
        let mut files = Vec::new();
        for t in tasks {
            if !batch_keys.insert(t.key.as_str()) || self.ledger.seen(&t.key)? {
                staged.push(None);
                continue;
            }
            let (name, file) = self.stage(t)?;
            staged.push(Some(name));
            files.push(file);
        }
        let lines: Vec<(&str, &str)> = tasks
            .iter()
            .zip(&staged)
            .filter_map(|(t, name)| Some((t.key.as_str(), name.as_deref()?)))
            .collect();
        if lines.is_empty() {
            return Ok(staged);
        }
        make_durable(&files, &self.staging)?;
        drop(files);
        // From here the keys are seen (the ledger says so), even if a publish below
        // fails: the staged file is then published by the next `open`.
        self.ledger.record(&lines)?;
        let mut out = Vec::with_capacity(tasks.len());
        for name in staged {
            match name {
                Some(name) => out.push(Some(self.publish(&name)?)),
                None => out.push(None),
            }
        }
        // Every task of the batch is published: a good moment to compact. A failure
        // leaves the ledger as it was (still correct), so it is only logged.
        match self.ledger.compact_if_needed(&self.staging) {
            Ok(true) => tracing::info!(
                "task ledger compacted ({} keys remembered)",
                self.ledger.remembered()
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!("failed to compact the task ledger (will retry later): {e}"),
        }
        Ok(out)
    }

    /// Write `t` into staging under a name free in both staging and `Needs_Action/`
    /// (not yet durable: see [`make_durable`]).
    fn stage(&mut self, t: &NewTask) -> io::Result<(String, File)> {
        let base = match &t.stem {
            Some(stem) => stem.clone(),
            None => format!("{}_{}_{}", t.prefix, stamp(t.when), slug(&t.title)),
        };
        if self.next_alternative.len() > 10_000 {
            self.next_alternative.clear();
        }
        let first = self.next_alternative.get(&base).copied().unwrap_or(1);
        for n in first..first.saturating_add(MAX_ALTERNATIVES) {
            let name = alternative(&base, n);
            if self.needs_action.exists(&name) {
                continue;
            }
            let mut f = match self.staging.file(&name, How::create_new(0o644)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            f.write_all(t.text.as_bytes())?;
            self.next_alternative.insert(base, n + 1);
            return Ok((name, f));
        }
        Err(no_free_name(&base))
    }

    /// Move a staged task into `Needs_Action/`, under another `-n` name if its own was
    /// taken meanwhile. Idempotent: a task no longer staged was published before.
    fn publish(&self, staged: &str) -> io::Result<String> {
        let base = staged.strip_suffix(".md").unwrap_or(staged);
        let base = strip_alternative(base);
        let mut name = staged.to_string();
        for n in 1..=MAX_ALTERNATIVES {
            match self
                .staging
                .rename(staged, &self.needs_action, &name, Replace::No)
            {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !self.staging.exists(staged) => {
                    return Ok(name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    name = alternative(base, n + 1);
                }
                Err(e) => return Err(e),
            }
        }
        Err(no_free_name(base))
    }

    /// Publish staged files the ledger names; delete the rest.
    fn recover(&mut self, tasks: &HashSet<String>) -> io::Result<Vec<String>> {
        let mut published = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for entry in self.staging.list()? {
            match entry.name.to_str() {
                Some(n) if tasks.contains(n) => names.push(n.to_string()),
                _ => {
                    let n = entry.name;
                    let p = self.staging.display_path(&n);
                    tracing::info!("discarding {} (never recorded)", p.display());
                    match self.staging.remove_file(&n) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        names.sort();
        for n in names {
            published.push(self.publish(&n)?);
        }
        if !published.is_empty() {
            self.needs_action.sync()?;
        }
        self.staging.sync()?;
        Ok(published)
    }
}

/// From this many files on, a batch is made durable with one `syncfs` (Linux).
const SYNCFS_FROM: usize = 2;

/// Make freshly written `files` in `dir`, and their names, durable. One file: `fsync`
/// of it and the folder. A batch: one `syncfs` of the file system on Linux, one journal
/// commit for all of them instead of one per file (fsyncs from several threads were
/// measured slower). `syncfs` also writes out other programs' pending data on that file
/// system; on ext4 an `fsync` already commits the whole running journal transaction, so
/// the extra cost is the data of files others have not synced yet.
fn make_durable(files: &[File], dir: &Dir) -> io::Result<()> {
    // Where `syncfs` fails (or is missing: macOS), the fsyncs below say what is wrong.
    if files.len() >= SYNCFS_FROM && dir.sync_file_system().is_ok() {
        return Ok(());
    }
    for f in files {
        f.sync_all()?;
    }
    dir.sync()
}

fn no_free_name(base: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for task {base}.md in Needs_Action/"),
    )
}

/// `base.md`, then `base-2.md`, `base-3.md` …
fn alternative(base: &str, n: u32) -> String {
    if n <= 1 {
        format!("{base}.md")
    } else {
        format!("{base}-{n}.md")
    }
}

/// `base-7` → `base` when the suffix is one [`alternative`] added. Slugs never end in
/// `-<digits>` (see [`slug`]), so this cannot eat part of a slug.
fn strip_alternative(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    }
}

/// `20261121T235901Z`: the UTC second a message was received.
pub fn stamp(when: DateTime<Utc>) -> String {
    when.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A file-name-safe summary of `title`: letters and digits (any script) lowercased, every
/// other run of characters one `_`, at most [`MAX_SLUG_BYTES`] bytes; `message` when
/// nothing is left. Never ends in `-<digits>` (the `-n` alternatives use that).
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in title.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            if out.len() + c.len_utf8() * 2 > MAX_SLUG_BYTES {
                break;
            }
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    if out.is_empty() {
        out.push_str("message");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(key: &str, title: &str) -> NewTask {
        NewTask {
            key: key.into(),
            prefix: "EMAIL",
            when: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            title: title.into(),
            stem: None,
            text: format!("---\nkey: \"{key}\"\n---\n"),
        }
    }

    /// The names in `dir`, sorted (none if it cannot be listed).
    fn listing(dir: &Path) -> Vec<String> {
        let names = Dir::open(dir).and_then(|d| staged_names(&d));
        let mut v: Vec<String> = names.unwrap_or_default().into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Invoice #1234: overdue!"), "invoice_1234_overdue");
        assert_eq!(slug("  Grüße aus Köln "), "grüße_aus_köln");
        assert_eq!(slug("::"), "message");
        assert_eq!(slug("Re: meeting-2"), "re_meeting_2");
        let long = slug(&"a".repeat(200));
        assert!(long.len() <= MAX_SLUG_BYTES, "{long}");
    }

    #[test]
    fn each_key_once_and_names_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut sink, rec) = TaskSink::open(tmp.path(), "gmail").unwrap();
        assert!(rec.is_empty());
        let first = sink.write(&task("7:1", "Hello")).unwrap();
        assert_eq!(first.as_deref(), Some("EMAIL_20261118T110640Z_hello.md"));
        assert_eq!(sink.write(&task("7:1", "Hello")).unwrap(), None);
        // Same stamp and title, another key: another name.
        let out = sink
            .write_batch(&[
                task("7:2", "Hello"),
                task("7:2", "Hello"),
                task("7:3", "Hello"),
            ])
            .unwrap();
        assert_eq!(
            out,
            vec![
                Some("EMAIL_20261118T110640Z_hello-2.md".to_string()),
                None,
                Some("EMAIL_20261118T110640Z_hello-3.md".to_string())
            ]
        );
        drop(sink);
        let (sink, rec) = TaskSink::open(tmp.path(), "gmail").unwrap();
        assert!(rec.is_empty());
        assert!(sink.seen("7:1") && sink.seen("7:2") && sink.seen("7:3"));
        assert_eq!(listing(&tmp.path().join("Needs_Action")).len(), 3);
        assert!(listing(&tmp.path().join(".ai-employee/staging-gmail")).is_empty());
    }

    #[test]
    fn recovery_publishes_what_the_ledger_names_and_drops_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (sink, _) = TaskSink::open(tmp.path(), "whatsapp").unwrap();
        drop(sink);
        let state = tmp.path().join(".ai-employee");
        let staging = state.join("staging-whatsapp");
        // A crash after the ledger line: the staged file must be published.
        std::fs::write(staging.join("WHATSAPP_x_a.md"), "a").unwrap();
        // A crash before it: the staged file must go.
        std::fs::write(staging.join("WHATSAPP_x_b.md"), "b").unwrap();
        // And a torn last line that must be cut off.
        std::fs::write(
            state.join("whatsapp.seen"),
            "{\"key\":\"wamid.A\",\"task\":\"WHATSAPP_x_a.md\"}\n{\"key\":\"wam",
        )
        .unwrap();
        let (mut sink, rec) = TaskSink::open(tmp.path(), "whatsapp").unwrap();
        assert_eq!(rec, vec!["WHATSAPP_x_a.md".to_string()]);
        assert!(sink.seen("wamid.A"));
        assert_eq!(listing(&staging), Vec::<String>::new());
        assert_eq!(
            listing(&tmp.path().join("Needs_Action")),
            vec!["WHATSAPP_x_a.md".to_string()]
        );
        let mut t = task("wamid.B", "b");
        t.prefix = "WHATSAPP";
        assert!(sink.write(&t).unwrap().is_some());
        let ledger = std::fs::read_to_string(state.join("whatsapp.seen")).unwrap();
        assert_eq!(ledger.lines().count(), 2, "{ledger}");
        assert!(ledger.ends_with('\n'));
    }

    #[test]
    fn thousands_of_tasks_with_one_stem_in_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut sink, _) = TaskSink::open(tmp.path(), "whatsapp").unwrap();
        let batch: Vec<NewTask> = (0..2500).map(|i| task(&format!("k{i}"), "same")).collect();
        let mut names = HashSet::new();
        for chunk in batch.chunks(100) {
            for n in sink.write_batch(chunk).unwrap() {
                assert!(names.insert(n.expect("new key")));
            }
        }
        assert_eq!(listing(&tmp.path().join("Needs_Action")).len(), 2500);
        drop(sink);
        let (sink, rec) = TaskSink::open(tmp.path(), "whatsapp").unwrap();
        assert!(rec.is_empty());
        assert_eq!(sink.remembered(), 2500);
    }

    #[test]
    fn symlinked_folders_and_ledgers_are_refused() {
        for rel in ["Needs_Action", ".ai-employee", ".ai-employee/gmail.seen"] {
            let tmp = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let vault = tmp.path().join("vault");
            std::fs::create_dir_all(vault.join(".ai-employee")).unwrap();
            if rel == ".ai-employee" {
                std::fs::remove_dir(vault.join(rel)).unwrap();
            }
            std::os::unix::fs::symlink(outside.path(), vault.join(rel)).unwrap();
            let err = TaskSink::open(&vault, "gmail").err().expect(rel);
            assert!(err.to_string().contains("symbolic link"), "{rel}: {err}");
            assert!(listing(outside.path()).is_empty(), "{rel}");
        }
    }

    #[test]
    fn a_name_taken_in_needs_action_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut sink, _) = TaskSink::open(tmp.path(), "gmail").unwrap();
        let na = tmp.path().join("Needs_Action");
        std::fs::write(na.join("EMAIL_20261118T110640Z_hi.md"), "mine").unwrap();
        let name = sink.write(&task("1:1", "hi")).unwrap();
        assert_eq!(name.as_deref(), Some("EMAIL_20261118T110640Z_hi-2.md"));
        assert_eq!(
            std::fs::read_to_string(na.join("EMAIL_20261118T110640Z_hi.md")).unwrap(),
            "mine"
        );
    }
}
