//! Dashboard.md status rows (SPEC §3) and sections kept current between markers (the
//! task loop's `## Tasks`). Owned by the vault helper.
//!
//! The file is shared with Obsidian, the agent and scripts, so a write must be atomic and
//! must not drop what they write at the same time. [`update`] (and [`append_rows`],
//! [`replace_section`]) runs rounds of:
//!
//! 1. read the file in place through a descriptor we keep (inode A, `known` bytes); a
//!    text that may be a moment in someone's write (no status table, no final newline)
//!    is read again when nobody has the file open for writing;
//! 2. build the new text (our rows at the top of the status table, our section's lines
//!    between its markers), write it to a temp file in the same folder, fsync;
//! 3. check that the name still points at A and that A was at most appended to, then
//!    swap temp and Dashboard atomically (`renameat2(RENAME_EXCHANGE)` on Linux,
//!    `renameatx_np(RENAME_SWAP)` on macOS); the temp name now holds what was in place;
//! 4. if that is not A, someone renamed their version in between: swap it straight back
//!    (our stale text was visible for microseconds) and start again on their text;
//! 5. if it is A, wait until nobody else has A open (a Linux write lease proves it; else a
//!    size-stability window). Bytes appended after `known` are appended to the file now
//!    in place with `O_APPEND`, at once, as their writers meant to; if A was instead
//!    rewritten in place, the next round builds on that text and replaces ours;
//! 6. a last read confirms that our rows and our section are in the file in place (a save
//!    that dropped them meanwhile gets them inserted again).
//!
//! Without an atomic swap (other filesystems and platforms) step 3 becomes
//! check-then-rename. `docs/dashboard.md` states what is and is not guaranteed.
//!
//! Every step names the file relative to the descriptor of its folder and never follows a
//! symlink (see `crate::nofollow`). A `Dashboard.md` that is a symlink is followed only to
//! a regular file elsewhere in the vault, outside its working folders (see [`resolve`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::atomic::{self, FileId};
use crate::nofollow::{Dir, How, Kind, Replace, SymlinkRefused};
use archive::{ARCHIVE_ABOVE, KEEP};
use text::{Text, file_len, only_appended};

/// Old rows to `Logs/dashboard-YYYY.md`.
pub mod archive;
/// A section kept current between two markers: pure edits.
mod section;
/// The status table as text: rows, cells, pure edits.
mod table;
/// Dashboard texts read and written in chunks.
pub mod text;

pub use section::Section;
#[cfg(any(test, feature = "fuzzing"))]
pub use table::fuzz_insert;
use table::insert_rows;
pub use table::{HEADER, Row};

/// Rounds before giving up (a normal call takes 2: swap, then confirm).
const MAX_ROUNDS: usize = 32;
/// Time before giving up.
const MAX_TIME: Duration = Duration::from_secs(10);
/// How long to wait for a writer that may be half way through the file we read.
const MID_WRITE: Duration = Duration::from_millis(200);
/// How long to wait for appenders that still hold a file we replaced.
const LATE_WRITERS: Duration = Duration::from_secs(1);

/// Insert `rows` (oldest first) at the top of the status table of the Dashboard at
/// `path` (newest first), creating the file or table if missing. Atomic, and does not
/// drop what others write to the file at the same time (see the module docs, and
/// `docs/dashboard.md` for the exact guarantee and its limits). Blocks for a few
/// milliseconds (fsyncs; up to about a second when another process holds a replaced file
/// open): call it from a background thread. Gives up with an error after [`MAX_ROUNDS`]
/// rounds or [`MAX_TIME`]: the rows are then not confirmed (they may or may not be in the
/// file), while bytes of others that it was carrying over are still appended.
pub fn append_rows(path: &Path, rows: &[Row]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    update(path, rows, None)
}

/// Put `section`'s lines between its markers in the Dashboard at `path` (the section is
/// added after the status table when it is missing; see [`Section`]), creating the file
/// if missing. Everything else in the file stays byte for byte; the guarantees, costs
/// and errors are those of [`append_rows`].
pub fn replace_section(path: &Path, section: &Section) -> io::Result<()> {
    update(path, &[], Some(section))
}

/// [`append_rows`] and [`replace_section`] in one write: the rows and the section appear
/// together. With no rows, the status table is neither looked for nor added.
pub fn update(path: &Path, rows: &[Row], section: Option<&Section>) -> io::Result<()> {
    if rows.is_empty() && section.is_none() {
        return Ok(());
    }
    let (dir, name) = resolve(path)?;
    let shown = dir.display_path(&name);
    let mut job = Job {
        dir: &dir,
        name: &name,
        path: &shown,
        lines: rows.iter().map(Row::markdown).collect(),
        section,
        baseline: None,
        tails: Vec::new(),
        placed: Text::from(Vec::new()),
        corrective: None,
        archive_failed: false,
    };
    let start = Instant::now();
    for _ in 0..MAX_ROUNDS {
        if job.round()? == Step::Done {
            return Ok(());
        }
        if start.elapsed() > MAX_TIME {
            break;
        }
    }
    job.append_tails_best_effort();
    Err(io::Error::other(format!(
        "the file kept changing; gave up after {MAX_ROUNDS} attempts"
    )))
}

/// The folder (opened) and the name of the file to update. The Dashboard's folder (the
/// vault) is followed; a `Dashboard.md` that is a symlink is updated where it points
/// (replacing the link would cut it) only when that is a regular file inside the vault
/// and not in one of its working folders (`Inbox/`, `Approved/`, `Logs/`, `credentials/`,
/// `.ai-employee/` …): anything else is refused, and nothing is written.
fn resolve(path: &Path) -> io::Result<(Dir, OsString)> {
    let vault = atomic::parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let root = Dir::open(vault)?;
    match root.stat(name) {
        Ok(s) if s.kind == Kind::Symlink => {}
        _ => return Ok((root, name.to_os_string())),
    }
    let target = root
        .read_link(name)
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    let refuse = |why: &str| {
        io::Error::other(SymlinkRefused(format!(
            "{} is a symbolic link (to {target:?}) {why}; not followed, nothing written",
            path.display()
        )))
    };
    let real = std::fs::canonicalize(path).map_err(|_| refuse("to a missing file"))?;
    let real_vault = std::fs::canonicalize(vault)?;
    let Ok(rel) = real.strip_prefix(&real_vault) else {
        return Err(refuse("leading outside the vault"));
    };
    let mut parts = rel.components();
    let first = match parts.next() {
        Some(Component::Normal(c)) => c,
        _ => return Err(refuse("leading outside the vault")),
    };
    let working = super::layout::FOLDERS
        .iter()
        .chain(std::iter::once(&super::layout::STATE_DIR))
        .any(|f| OsStr::new(f) == first);
    if working && parts.next().is_some() {
        return Err(refuse(&format!(
            "into the vault's {} folder",
            first.to_string_lossy()
        )));
    }
    // The canonical path has no symlink left: resolving it beneath the vault with no
    // symlink allowed fails if a component was swapped for one meanwhile.
    let folder = rel.parent().unwrap_or(Path::new(""));
    let dir = if folder.as_os_str().is_empty() {
        root
    } else {
        root.open_dir(folder)?
    };
    let file = rel
        .file_name()
        .ok_or_else(|| refuse("to something that is not a file"))?;
    match dir.stat(file) {
        Ok(s) if s.kind == Kind::File => Ok((dir, file.to_os_string())),
        _ => Err(refuse("to something that is not a regular file")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    Again,
}

/// Mode and owner to give the replacement.
#[derive(Debug, Clone, Copy)]
struct Perms {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Perms {
    fn of(f: &File) -> io::Result<Perms> {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata()?;
        Ok(Perms {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })
    }

    fn apply(&self, f: &File) -> io::Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        f.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        let m = f.metadata()?;
        if m.uid() != self.uid || m.gid() != self.gid {
            // Only possible with privileges; without them the file is ours, as it would
            // be after any editor's save.
            let _ = std::os::unix::fs::fchown(f, Some(self.uid), Some(self.gid));
        }
        Ok(())
    }
}

/// The file in place that a swap is expected to give back, and the bytes we know it has.
struct InPlace {
    file: File,
    id: FileId,
    known: Text,
}

/// What the next round builds on, when that is not simply the file in place.
struct Corrective {
    basis: Text,
    perms: Perms,
    in_place: InPlace,
}

struct Job<'a> {
    /// The folder holding the file, and its name there: every access goes through them.
    dir: &'a Dir,
    name: &'a OsStr,
    /// For messages.
    path: &'a Path,
    /// Our rows as table lines, oldest first.
    lines: Vec<String>,
    /// Our section, if any.
    section: Option<&'a Section>,
    /// How often each of our lines occurred in the first text we read (normally 0): a
    /// line counts as present when a text has it more often than that.
    baseline: Option<Vec<usize>>,
    /// Bytes others appended to a file we replaced, still to be appended to the file in
    /// place.
    tails: Vec<Vec<u8>>,
    /// The text of the file we last put in place.
    placed: Text,
    corrective: Option<Corrective>,
    /// Archiving old rows failed in this call (said once; the rows then stay).
    archive_failed: bool,
}

impl<'a> Job<'a> {
    fn round(&mut self) -> io::Result<Step> {
        let (basis, perms, in_place, corrective) = match self.corrective.take() {
            Some(c) => (c.basis, c.perms, c.in_place, true),
            None => match read_current(self.dir, self.name)? {
                None => return self.create(),
                Some((in_place, perms)) => (in_place.known.clone(), perms, in_place, false),
            },
        };
        let missing = self.missing(&basis)?;
        if missing.is_empty() && self.section_current(&basis)? && !corrective {
            if self.tails.is_empty() {
                return Ok(Step::Done);
            }
            return Ok(if self.deliver_tails(in_place.id)? {
                Step::Done
            } else {
                Step::Again
            });
        }
        let new = self.build(&basis, &missing, perms)?;

        let dir = self.dir;
        let mut tmp = self.temp_file()?;
        perms.apply(tmp.file())?;
        new.write_to(&mut tmp)?;
        tmp.file().sync_all()?;
        let tmp_name = tmp.name().to_os_string();
        let our_id = atomic::file_id(tmp.file())?;
        // Rewritten in place or renamed over since we read it (the fsync took
        // milliseconds)? Start again on the new text rather than publish a stale one.
        // Only appends are fine: they are carried over after the swap. The name is
        // checked last, right before the swap, to keep the window between them tiny.
        if !only_appended(&in_place.known, &in_place.file, file_len(&in_place.file)?)? {
            return Ok(Step::Again);
        }
        match self.name_id() {
            Ok(id) if id == in_place.id => {}
            Ok(_) => return Ok(Step::Again),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Step::Again),
            Err(e) => return Err(e),
        }
        let ours = match dir.exchange(&tmp_name, self.name) {
            Ok(true) => {
                // The temp name now holds what was in place; from here on it is ours to
                // remove or put back, not the temp file's to delete.
                tmp.keep();
                let ours = tmp.into_file();
                let back = stat_id(dir, &tmp_name)?;
                if back != in_place.id {
                    return self.swap_back(&tmp_name, ours, our_id, new);
                }
                dir.remove_file(&tmp_name)?;
                dir.sync()?;
                ours
            }
            Ok(false) => {
                // No atomic swap here: check-then-rename. An editor's rename landing
                // between the check above and this rename is overwritten unseen.
                dir.rename(&tmp_name, dir, self.name, Replace::Yes)?;
                tmp.keep();
                let ours = tmp.into_file();
                dir.sync()?;
                ours
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Step::Again),
            Err(e) => return Err(e),
        };
        self.placed.clone_from(&new);
        self.absorb_late_writes(in_place, ours, our_id, new)?;
        // Carry what appenders added at once: until then the file in place lacks it, and
        // a writer that reads now and saves later would drop it.
        if !self.tails.is_empty() && self.corrective.is_none() {
            self.deliver_tails(our_id)?;
        }
        Ok(Step::Again)
    }

    /// Our lines that `text` lacks, oldest first.
    fn missing(&mut self, text: &Text) -> io::Result<Vec<String>> {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let counts = text::scan(text, text.len(), &lines, 0, u64::MAX)?.counts;
        let baseline = self.baseline.get_or_insert_with(|| counts.clone());
        Ok(self
            .lines
            .iter()
            .zip(counts.iter().zip(baseline.iter()))
            .filter(|(_, (now, base))| now <= base)
            .map(|(l, _)| l.clone())
            .collect())
    }

    /// Whether `text` has our section as it should be (or we have none).
    fn section_current(&self, text: &Text) -> io::Result<bool> {
        match self.section {
            Some(s) => section::is_current(text, s),
            None => Ok(true),
        }
    }

    /// `basis` with the `missing` rows at the top of its status table and our section's
    /// lines between its markers.
    fn build(&mut self, basis: &Text, missing: &[String], perms: Perms) -> io::Result<Text> {
        let with_rows = if self.lines.is_empty() {
            basis.clone()
        } else {
            self.build_rows(basis, missing, perms)?
        };
        match self.section {
            Some(s) => section::build(&with_rows, s, self.dir.path()),
            None => Ok(with_rows),
        }
    }

    /// `basis` with the `missing` rows at the top of its status table. When the table's
    /// rows pass [`ARCHIVE_ABOVE`] bytes, the oldest are first appended to
    /// `Logs/dashboard-YYYY.md` (fsynced) and left out, down to [`KEEP`] bytes of rows.
    fn build_rows(&mut self, basis: &Text, missing: &[String], perms: Perms) -> io::Result<Text> {
        let rows: Vec<&str> = missing.iter().map(String::as_str).collect();
        let extra: u64 = rows.iter().map(|r| r.len() as u64 + 1).sum();
        let scan = text::scan(basis, basis.len(), &[], extra, KEEP)?;
        let mut cut = None;
        if scan.table.is_some()
            && scan.rows_bytes + extra > ARCHIVE_ABOVE
            && !self.archive_failed
            && let Some(from) = scan.keep_end
        {
            match archive::archive_rows(basis, from, scan.rows_end, self.path, perms.mode) {
                Ok(_) => cut = Some((from, scan.rows_end)),
                Err(e) => {
                    // The rows matter more than the archive: write them, keep the old rows.
                    warn!(
                        "{}: old rows not archived ({e}); they stay in the file",
                        self.path.display()
                    );
                    self.archive_failed = true;
                }
            }
        }
        text::build(basis, basis.len(), &scan, &rows, cut, self.dir.path())
    }

    /// A hidden temp file next to the Dashboard (`.Dashboard.md.XXXXXX.tmp`).
    fn temp_file(&self) -> io::Result<super::nofollow::TempFile<'a>> {
        let prefix = format!(".{}.", self.name.to_string_lossy());
        self.dir.temp_file(&prefix, ".tmp", 0o600)
    }

    /// Device and inode of what the name is now (a symlink itself, not its target).
    fn name_id(&self) -> io::Result<FileId> {
        stat_id(self.dir, self.name)
    }

    /// No Dashboard at all: create it from the template (unless someone else just did).
    fn create(&mut self) -> io::Result<Step> {
        let template = super::layout::dashboard_template().as_bytes();
        let missing = self.missing(&Text::from(template.to_vec()))?;
        let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
        let mut text = insert_rows(template, &missing);
        if let Some(s) = self.section {
            let t = section::build(&Text::from(text), s, self.dir.path())?;
            text = t.slice_vec(0, t.len())?;
        }
        for t in &self.tails {
            text.extend_from_slice(t);
        }
        if self.dir.create_new(self.name, &text, 0o600)? {
            self.tails.clear();
            return Ok(Step::Done);
        }
        Ok(Step::Again)
    }

    /// Someone renamed their version `held` into place after we read the file, and our
    /// swap took it out again. Put it back at once, then start over on their text.
    fn swap_back(
        &mut self,
        held: &OsStr,
        ours: File,
        our_id: FileId,
        new: Text,
    ) -> io::Result<Step> {
        let dir = self.dir;
        let kept = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "failed to put back a version someone saved at the same time ({e}); it is kept as {}",
                    dir.display_path(held).display()
                ),
            )
        };
        if !dir.exchange(held, self.name).map_err(kept)? {
            return Err(kept(io::Error::other("the swap stopped working")));
        }
        let back = stat_id(dir, held).map_err(kept)?;
        if back != our_id {
            // A third writer replaced our stale version within those microseconds and we
            // just took theirs out: it is the newest, put it back. The version we took
            // out first survives only in so far as that writer had read it.
            warn!(
                "{}: three writers within microseconds; a concurrent edit may be lost",
                self.path.display()
            );
            if !dir.exchange(held, self.name).map_err(kept)? {
                return Err(kept(io::Error::other("the swap stopped working")));
            }
        }
        dir.remove_file(held)?;
        dir.sync()?;
        if back == our_id {
            // Appenders that opened ours during its microseconds in place wrote to it.
            atomic::wait_sole_opener(&ours, LATE_WRITERS);
            let now = Text::read(&ours, self.dir.path())?;
            if now.len() > new.len() && only_appended(&new, &now, now.len())? {
                self.tails.push(now.slice_vec(new.len(), now.len())?);
            }
        }
        Ok(Step::Again)
    }

    /// We replaced `old`. Appenders that opened it before may still write to it: wait
    /// until nobody else has it open, then keep what they added.
    fn absorb_late_writes(
        &mut self,
        old: InPlace,
        ours: File,
        our_id: FileId,
        new: Text,
    ) -> io::Result<()> {
        atomic::wait_sole_opener(&old.file, LATE_WRITERS);
        let now = Text::read(&old.file, self.dir.path())?;
        if only_appended(&old.known, &now, now.len())? {
            if now.len() > old.known.len() {
                self.tails.push(now.slice_vec(old.known.len(), now.len())?);
            }
        } else {
            // Rewritten in place (`>`, an editor that truncates and writes) after or while
            // we read it (an empty file we read is taken as such a moment, not as a file
            // to append to): that text is the newest; build on it and replace ours.
            self.corrective = Some(Corrective {
                basis: now,
                perms: Perms::of(&old.file)?,
                in_place: InPlace {
                    file: ours,
                    id: our_id,
                    known: new,
                },
            });
        }
        Ok(())
    }

    /// Append the pending tails with `O_APPEND`, as their writers meant to, to the file in
    /// place if it is `into` (one that has our rows). Whether they were delivered.
    fn deliver_tails(&mut self, into: FileId) -> io::Result<bool> {
        let reader = match self.dir.file(self.name, How::READ) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if atomic::file_id(&reader)? != into {
            return Ok(false);
        }
        // Appending to a file that a writer has just truncated is pointless: it will write
        // its whole text over it.
        let now = read_settled(&reader, self.dir.path())?;
        drop(reader);
        let mut f = match self.dir.file(self.name, How::APPEND_EXISTING) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if atomic::file_id(&f)? != into {
            return Ok(false);
        }
        // Rewritten in place since we put it there? Then its writer read the file at some
        // point; a tail its text already has one more time than ours did, it carried over
        // itself. (Only appended to: append, no guessing.)
        let rewritten = !only_appended(&self.placed, &now, now.len())?;
        let mut bytes: Vec<u8> = Vec::new();
        for t in &self.tails {
            if !(rewritten && now.occurrences(t)? > self.placed.occurrences(t)?) {
                bytes.extend_from_slice(t);
            }
        }
        if !bytes.is_empty() {
            f.write_all(&bytes)?;
        }
        // Replaced while we wrote? Whether that editor saw our bytes is unknown; they stay
        // pending and go to the new file too (a duplicate is better than a loss).
        let stayed = self.name_id().is_ok_and(|id| id == into);
        f.sync_data()?;
        if stayed {
            self.tails.clear();
        }
        Ok(stayed)
    }

    /// Giving up: bytes others appended must not vanish with us.
    fn append_tails_best_effort(&mut self) {
        if self.tails.is_empty() {
            return;
        }
        let bytes = self.tails.concat();
        let done = self
            .dir
            .file(self.name, How::APPEND_EXISTING)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_data()));
        if let Err(e) = done {
            warn!(
                "{}: {} bytes others appended could not be carried over: {e}",
                self.path.display(),
                bytes.len()
            );
        }
    }
}

/// Device and inode of `name` in `dir` (a symlink itself, not its target).
fn stat_id(dir: &Dir, name: &OsStr) -> io::Result<FileId> {
    let s = dir.stat(name)?;
    Ok((s.dev, s.ino))
}

/// Open and read the file in place (never through a symlink). `None` when there is none.
fn read_current(dir: &Dir, name: &OsStr) -> io::Result<Option<(InPlace, Perms)>> {
    let file = match dir.file(name, How::READ) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let known = read_settled(&file, dir.path())?;
    let id = atomic::file_id(&file)?;
    let perms = Perms::of(&file)?;
    Ok(Some((InPlace { file, id, known }, perms)))
}

/// Read all of `file` (open read-only). A text without the status table or without a
/// final newline may be a moment in someone else's write: a writer that truncates and
/// rewrites in place, caught half way (perhaps with an append landed in between), or an
/// append half done. Built on, such a text would be published, so it is read again at a
/// moment when nobody has the file open for writing. Complete-looking texts are taken at
/// once: appenders keep the file open nearly all the time, and a prefix that has the
/// table is safe to build on (the rest arrives as an append, see `only_appended`).
fn read_settled(file: &File, dir: &Path) -> io::Result<Text> {
    let text = Text::read(file, dir)?;
    if text.last_byte()? == Some(b'\n')
        && text::scan(&text, text.len(), &[], 0, u64::MAX)?
            .table
            .is_some()
    {
        return Ok(text);
    }
    Ok(atomic::read_without_writers_with(file, MID_WRITE, |f| Text::read(f, dir))?.0)
}
