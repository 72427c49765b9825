//! Where an approval ends: `Done/` or `Failed/`, with the result added to its
//! frontmatter. The decision is recorded in the ledger before the file moves, and the
//! move itself is idempotent, so a crash in the middle is finished at the next start.

use std::io;
use std::path::Path;

use ai_employee_vault::atomic::FileId;
use ai_employee_vault::frontmatter;
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{self, Dir, Replace};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use super::util::sha256_hex;

/// Where an approval ends: one of two vault folders. Recorded in the ledger's decisions
/// (as `"Done"` or `"Failed"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    Done,
    Failed,
}

impl Destination {
    pub fn folder(self) -> Folder {
        match self {
            Destination::Done => Folder::Done,
            Destination::Failed => Folder::Failed,
        }
    }
}

/// A time as the handler writes it (frontmatter, ledger): RFC 3339 in UTC, in seconds.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Result values written into the frontmatter and the audit log.
pub mod results {
    pub const SENT: &str = "sent";
    pub const QUEUED: &str = "queued";
    pub const RECORDED: &str = "recorded";
    /// `run_task`: a person approved running the agent on a task (the task loop acts on
    /// it when the file is in `Done/`).
    pub const APPROVED: &str = "approved";
    pub const DRY_RUN: &str = "dry_run";
    pub const REFUSED: &str = "refused";
    pub const FAILED: &str = "failed";
    pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
    /// Audit only: a transient failure, tried again later.
    pub const RETRYING: &str = "retrying";
    /// The results that mean "this was carried out": a file carrying one of them is not
    /// executed again.
    pub const EXECUTED: &[&str] = &[SENT, QUEUED, RECORDED, APPROVED];
    /// Results after which the same file name and content is not run again: it was
    /// carried out, or may have been.
    pub const ONCE: &[&str] = &[SENT, QUEUED, RECORDED, APPROVED, OUTCOME_UNKNOWN];
}

/// What happens to one approval file, decided before it is moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub folder: Destination,
    /// Vault-relative destination, e.g. `Done/APPROVAL_x.md`.
    pub dest: String,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `executed_at` (Done) or `failed_at` (Failed), RFC 3339.
    pub at: String,
    /// More frontmatter (`message_id`, `smtp_reply`, `payment_task`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
    /// SHA-256 of the text written to `dest`.
    pub final_sha256: String,
    /// The original has no usable frontmatter: ours goes in front of its text.
    #[serde(default)]
    pub prefix: bool,
}

impl Decision {
    /// Build a decision for `original`, choosing a free name in the folder.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vault: &Path,
        name: &str,
        original: &str,
        folder: Destination,
        result: &str,
        error: Option<String>,
        at: String,
        fields: Vec<(String, String)>,
    ) -> Decision {
        let prefix = frontmatter::parse(original).is_err();
        let mut d = Decision {
            folder,
            dest: free_name(vault, folder.folder(), name),
            result: result.to_string(),
            error,
            at,
            fields,
            final_sha256: String::new(),
            prefix,
        };
        d.final_sha256 = sha256_hex(render(original, &d).as_bytes());
        d
    }
}

/// The text the file has at its destination: the original, byte for byte, with the
/// lines of the keys the handler sets (`status`, `result`, `executed_at` or `failed_at`,
/// `error`, and the result's own fields) replaced by new ones before the closing `---`.
/// A frontmatter whose lines cannot be edited that way (the check: it must parse back to
/// exactly the intended keys and body) is rewritten as a whole instead.
pub fn render(original: &str, d: &Decision) -> String {
    if !d.prefix
        && let Some(text) = render_in_place(original, d)
    {
        return text;
    }
    render_rewritten(original, d)
}

/// The keys whose lines [`render_in_place`] replaces.
const STALE: &[&str] = &["status", "result", "error", "executed_at", "failed_at"];

/// [`render`] keeping the original text; `None` when it cannot.
fn render_in_place(original: &str, d: &Decision) -> Option<String> {
    let doc = frontmatter::parse(original).ok()?;
    let mut want = doc.front.clone();
    for stale in STALE {
        want.remove(*stale);
    }
    add_fields(&mut want, d);
    let bom = if original.starts_with('\u{feff}') {
        "\u{feff}"
    } else {
        ""
    };
    let rest = &original[bom.len()..];
    let (open, nl) = if rest.starts_with("---\r\n") {
        ("---\r\n", "\r\n")
    } else if rest.starts_with("---\n") {
        ("---\n", "\n")
    } else {
        return None;
    };
    let rest = &rest[open.len()..];
    // The frontmatter's lines up to the closing marker line.
    let mut end = None;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if (bare == "---" || bare == "...") && line.ends_with('\n') {
            end = Some(offset);
            break;
        }
        offset += line.len();
    }
    let end = end?;
    let (yaml, after) = rest.split_at(end);
    let replaced = |key: &str| STALE.contains(&key) || d.fields.iter().any(|(k, _)| k == key);
    let mut kept = String::with_capacity(yaml.len());
    let mut dropping = false;
    for line in yaml.split_inclusive('\n') {
        if line.starts_with('#') {
            // A comment in the first column ends any value before it.
            dropping = false;
        } else if !line.starts_with([' ', '\t', '\r', '\n']) {
            let key = line
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(['"', '\'']))
                .unwrap_or("");
            dropping = replaced(key);
        }
        if !dropping {
            kept.push_str(line);
        }
    }
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push_str(nl);
    }
    let mut added = Mapping::new();
    add_fields(&mut added, d);
    let mut new_lines = frontmatter::render_yaml(&added);
    if nl == "\r\n" {
        new_lines = new_lines.replace('\n', "\r\n");
    }
    let text = format!("{bom}{open}{kept}{new_lines}{after}");
    let check = frontmatter::parse(&text).ok()?;
    (check.front == want && check.body == doc.body).then_some(text)
}

/// [`render`] by writing the frontmatter anew (comments and quoting are not kept).
fn render_rewritten(original: &str, d: &Decision) -> String {
    let parsed = if d.prefix {
        None
    } else {
        frontmatter::parse(original).ok()
    };
    match parsed {
        Some(doc) => {
            let mut front = doc.front;
            for stale in ["result", "error", "executed_at", "failed_at"] {
                front.remove(stale);
            }
            add_fields(&mut front, d);
            frontmatter::render(&front, &doc.body)
        }
        None => {
            let mut front = Mapping::new();
            add_fields(&mut front, d);
            format!("{}{original}", frontmatter::render(&front, ""))
        }
    }
}

fn add_fields(front: &mut Mapping, d: &Decision) {
    let status = match d.folder {
        Destination::Done => "done",
        Destination::Failed => "failed",
    };
    frontmatter::set(front, "status", status);
    frontmatter::set(front, "result", d.result.as_str());
    match d.folder {
        Destination::Done => frontmatter::set(front, "executed_at", d.at.as_str()),
        Destination::Failed => frontmatter::set(front, "failed_at", d.at.as_str()),
    }
    if let Some(e) = &d.error {
        frontmatter::set(front, "error", e.as_str());
    }
    for (k, v) in &d.fields {
        front.insert(Value::String(k.clone()), Value::String(v.clone()));
    }
}

/// `Folder/name`, or `Folder/stem-2.ext`, `-3` … if taken.
pub fn free_name(vault: &Path, folder: Folder, name: &str) -> String {
    folder.rel(&free_file_name(vault, folder, name))
}

/// `name`, or `stem-2.ext`, `-3` … if taken in `folder`.
fn free_file_name(vault: &Path, folder: Folder, name: &str) -> String {
    // A folder that cannot be opened (or is a symlink): the name is as good as any, the
    // write into it fails and says why.
    let Ok(dir) = nofollow::open_folder(&vault.join(folder)) else {
        return name.to_string();
    };
    let exists = |n: &str| dir.exists(n);
    if !exists(name) {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let mut n = 2u32;
    loop {
        let candidate = format!("{stem}-{n}{ext}");
        if !exists(&candidate) || n == u32::MAX {
            return candidate;
        }
        n += 1;
    }
}

/// The folder and file name of a vault-relative `rel` such as `Done/x.md`, the folder
/// opened without following a symlink.
fn split(vault: &Path, rel: &str) -> io::Result<(Dir, String)> {
    let (folder, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let dir = nofollow::open_folder(&vault.join(folder))?;
    Ok((dir, name.to_string()))
}

/// Carry out `d` for `Approved/<name>` whose bytes were `original` (SHA-256 `sha`), read
/// from the file `id`: create the destination (unless a previous run already did), then
/// remove the source if it is still that file with those bytes. Idempotent. Returns the
/// vault-relative destination.
pub fn finish(
    vault: &Path,
    name: &str,
    sha: &str,
    id: FileId,
    original: &str,
    d: &Decision,
) -> io::Result<(String, Left)> {
    let text = render(original, d);
    let text_sha = sha256_hex(text.as_bytes());
    // Opened first: nothing but the removal stands between the destination appearing and
    // the source going.
    let approved = nofollow::open_folder(&vault.join(Folder::Approved))?;
    let mut dest = d.dest.clone();
    for _ in 0..1000 {
        let (dir, file) = split(vault, &dest)?;
        if dir.create_new(&file, text.as_bytes(), 0o600)? {
            break;
        }
        // Taken: by an earlier run of this very step (then we are done) or by someone else.
        if dir
            .read(&file, None)
            .is_ok_and(|b| sha256_hex(&b) == text_sha)
        {
            break;
        }
        dest = free_name(vault, d.folder.folder(), name);
    }
    let left = remove_if_same(&approved, name, sha, id)?;
    Ok((dest, left))
}

/// What [`remove_if_same`] left in `Approved/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Nothing of it: removed now, or gone already.
    Nothing,
    /// Another file under the name (replaced since it was read): a new approval.
    Other,
    /// The same file with other bytes: changed in place after it was read.
    Changed,
}

/// Remove `name` from `dir` if it is still the file `id` with the bytes of SHA-256 `sha`
/// (a file edited or replaced since it was read, even by identical bytes, stays). Says
/// what is left, decided here, in one look: a check made later could take a new file
/// that got the same inode number for the changed one.
pub fn remove_if_same(dir: &Dir, name: &str, sha: &str, id: FileId) -> io::Result<Left> {
    match dir.stat(name) {
        Ok(s) if (s.dev, s.ino) == id => {}
        Ok(_) => return Ok(Left::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Left::Nothing),
        Err(e) => return Err(e),
    }
    match dir.read(name, None) {
        Ok(bytes) if sha256_hex(&bytes) == sha => {
            dir.remove_file(name)?;
            dir.sync()?;
            Ok(Left::Nothing)
        }
        Ok(_) => Ok(Left::Changed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Left::Nothing),
        Err(e) => Err(e),
    }
}

/// A file that cannot be read as an approval (symlink, over the size limit, not UTF-8,
/// not a regular file): a note `Failed/<name>` with the error, and the file itself moved
/// next to it as `Failed/<stem>.original` (a symlink is moved as a link, never followed).
/// Returns the note's vault-relative path.
pub fn park_unreadable(vault: &Path, name: &str, error: &str, at: &str) -> io::Result<String> {
    let note_name = free_file_name(vault, Folder::Failed, name);
    let note_rel = Folder::Failed.rel(&note_name);
    let stem = note_name.trim_end_matches(".md");
    let original_name = free_file_name(vault, Folder::Failed, &format!("{stem}.original"));
    let mut front = Mapping::new();
    frontmatter::set(&mut front, "type", "approval_request");
    frontmatter::set(&mut front, "status", "failed");
    frontmatter::set(&mut front, "result", results::REFUSED);
    frontmatter::set(&mut front, "failed_at", at);
    frontmatter::set(&mut front, "error", error);
    frontmatter::set(&mut front, "original", original_name.as_str());
    let body = format!(
        "`{}` could not be read as an approval. It was moved, unchanged, next to this \
         note as `{original_name}`.\n",
        Folder::Approved.rel(name)
    );
    let approved = nofollow::open_folder(&vault.join(Folder::Approved))?;
    let (failed, note) = split(vault, &note_rel)?;
    failed.create_new(&note, frontmatter::render(&front, &body).as_bytes(), 0o600)?;
    // The file is moved as it is: a symlink as a link, never followed.
    match approved.rename(name, &failed, &original_name, Replace::Yes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    failed.sync()?;
    approved.sync()?;
    Ok(note_rel)
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::atomic;

    use super::*;

    fn decision(vault: &Path, original: &str, folder: Destination) -> Decision {
        Decision::new(
            vault,
            "a.md",
            original,
            folder,
            "sent",
            None,
            "2026-01-07T10:31:00Z".into(),
            vec![("message_id".into(), "<x@y>".into())],
        )
    }

    #[test]
    fn destinations_are_recorded_by_their_folder_names() {
        for d in [Destination::Done, Destination::Failed] {
            let json = serde_json::to_string(&d).expect("serializes");
            assert_eq!(json, format!("\"{}\"", d.folder().name()));
            assert_eq!(serde_json::from_str::<Destination>(&json).ok(), Some(d));
        }
    }

    #[test]
    fn done_keeps_the_frontmatter_and_body_and_adds_the_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original =
            "---\ntype: approval_request\naction: send_email\nstatus: pending\n---\nHello\n";
        let d = decision(dir.path(), original, Destination::Done);
        let text = render(original, &d);
        let doc = frontmatter::parse(&text).expect("parses");
        assert_eq!(frontmatter::get_str(&doc.front, "status"), Some("done"));
        assert_eq!(frontmatter::get_str(&doc.front, "result"), Some("sent"));
        assert_eq!(
            frontmatter::get_str(&doc.front, "executed_at"),
            Some("2026-01-07T10:31:00Z")
        );
        assert_eq!(
            frontmatter::get_str(&doc.front, "message_id"),
            Some("<x@y>")
        );
        assert_eq!(doc.body, "Hello\n");
        assert_eq!(d.dest, "Done/a.md");
        assert_eq!(d.final_sha256, sha256_hex(text.as_bytes()));
    }

    #[test]
    fn the_original_text_is_kept_byte_for_byte_around_the_added_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = "---\ntype: approval_request   # kept\naction: send_email\nstatus: pending\nto: 'a@b.c'\nresult: failed\nerror: |\n  an old\n  error\n# a comment\nmessage_id: <old@y>\n---\nHello\n";
        let d = decision(dir.path(), original, Destination::Done);
        let text = render(original, &d);
        assert_eq!(
            text,
            "---\ntype: approval_request   # kept\naction: send_email\nto: 'a@b.c'\n# a comment\nstatus: done\nresult: sent\nexecuted_at: '2026-01-07T10:31:00Z'\nmessage_id: <x@y>\n---\nHello\n"
        );
        // CRLF stays CRLF; a BOM stays.
        let crlf = "\u{feff}---\r\ntype: approval_request\r\n---\r\nHi\r\n";
        let text = render(crlf, &decision(dir.path(), crlf, Destination::Done));
        assert!(
            text.starts_with("\u{feff}---\r\ntype: approval_request\r\nstatus: done\r\n"),
            "{text:?}"
        );
        assert!(text.ends_with("---\r\nHi\r\n"), "{text:?}");
        // A frontmatter whose lines cannot be edited (a flow mapping) is rewritten.
        let flow = "---\n{type: approval_request, status: pending}\n---\nHi\n";
        let d = decision(dir.path(), flow, Destination::Done);
        let text = render(flow, &d);
        let doc = frontmatter::parse(&text).expect("parses");
        assert_eq!(frontmatter::get_str(&doc.front, "status"), Some("done"));
        assert_eq!(
            frontmatter::get_str(&doc.front, "type"),
            Some("approval_request")
        );
        assert_eq!(doc.body, "Hi\n");
    }

    #[test]
    fn unparseable_text_is_kept_after_our_frontmatter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = "no frontmatter here\n";
        let mut d = decision(dir.path(), original, Destination::Failed);
        d.error = Some("bad".into());
        let text = render(original, &d);
        assert!(text.ends_with("---\nno frontmatter here\n"), "{text}");
        let doc = frontmatter::parse(&text).expect("parses");
        assert_eq!(frontmatter::get_str(&doc.front, "error"), Some("bad"));
    }

    /// A vault with the folders an approval moves between.
    fn vault() -> io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        for f in ["Approved", "Done", "Failed"] {
            std::fs::create_dir(dir.path().join(f))?;
        }
        Ok(dir)
    }

    #[test]
    fn what_finish_leaves_is_decided_in_one_look() -> io::Result<()> {
        let dir = vault()?;
        let v = dir.path();
        let original = "---\ntype: approval_request\n---\nbody\n";
        let path = v.join("Approved/a.md");
        std::fs::write(&path, original)?;
        let sha = sha256_hex(original.as_bytes());
        let id = atomic::path_id(&path)?;
        // Changed in place: stays, and is said to be the changed file.
        std::fs::write(&path, "---\ntype: approval_request\n---\nother\n")?;
        let d = decision(v, original, Destination::Done);
        assert_eq!(finish(v, "a.md", &sha, id, original, &d)?.1, Left::Changed);
        assert!(path.exists());
        // Replaced by another file: stays, a new approval.
        std::fs::remove_file(&path)?;
        std::fs::write(v.join("new.md"), original)?;
        std::fs::rename(v.join("new.md"), &path)?;
        if atomic::path_id(&path)? != id {
            let approved = Dir::open(&v.join("Approved"))?;
            assert_eq!(remove_if_same(&approved, "a.md", &sha, id)?, Left::Other);
            assert!(path.exists());
        }
        Ok(())
    }

    #[test]
    fn finish_is_idempotent_and_never_clobbers() -> io::Result<()> {
        let dir = vault()?;
        let v = dir.path();
        std::fs::write(v.join("Done/a.md"), "someone else's")?;
        let original = "---\ntype: approval_request\n---\nbody\n";
        std::fs::write(v.join("Approved/a.md"), original)?;
        let sha = sha256_hex(original.as_bytes());
        let id = atomic::path_id(&v.join("Approved/a.md"))?;
        let d = decision(v, original, Destination::Done);
        assert_eq!(d.dest, "Done/a-2.md");
        // A crash after the destination was written but before the source was removed:
        std::fs::write(v.join("Done/a-2.md"), render(original, &d))?;
        assert_eq!(
            finish(v, "a.md", &sha, id, original, &d)?,
            ("Done/a-2.md".to_string(), Left::Nothing)
        );
        assert!(!v.join("Approved/a.md").exists());
        assert!(!v.join("Done/a-3.md").exists());
        assert_eq!(
            std::fs::read_to_string(v.join("Done/a.md"))?,
            "someone else's"
        );
        Ok(())
    }
}
