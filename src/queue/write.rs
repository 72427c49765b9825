//! A valid result's files into the vault: each with the vault's no-replace atomic write
//! (`nofollow::Dir::create_new`: a temp file, fsync, a rename that never replaces), the
//! folder opened without following a symlink.

use std::io;
use std::path::Path;

use ai_employee_vault::nofollow::Dir;

use super::validate::ResultFile;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Created now.
    Created(String),
    /// Already there with the same text (a result applied again after a crash).
    AlreadyThere(String),
    /// Something else is already there under that name: left alone, not written.
    Conflict(String),
}

/// Write `files` into the vault at `root` (each is `Plans/<name>` or
/// `Pending_Approval/<name>`, as [`super::validate_result`] made sure). Stops at the first
/// I/O error (a file written before it stays: writing again is harmless).
pub fn write_files(root: &Path, files: &[ResultFile]) -> io::Result<Vec<Written>> {
    let vault = Dir::open(root)?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let folder = vault.folder(f.folder.name())?;
        let rel = format!("{}/{}", f.folder.name(), f.name);
        if folder.create_new(&f.name, f.content.as_bytes(), 0o644)? {
            out.push(Written::Created(rel));
            continue;
        }
        let limit = f.content.len() as u64 + 1;
        let same = match folder.read(&f.name, Some(limit)) {
            Ok(bytes) => bytes == f.content.as_bytes(),
            Err(_) => false,
        };
        out.push(if same {
            Written::AlreadyThere(rel)
        } else {
            Written::Conflict(rel)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_employee_vault::layout::Folder;

    #[test]
    fn writes_once_and_never_replaces_or_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Plans")).unwrap();
        std::fs::create_dir(dir.path().join("Pending_Approval")).unwrap();
        let f = |folder, name: &str, text: &str| ResultFile {
            folder,
            name: name.into(),
            content: text.into(),
        };
        let files = [
            f(Folder::Plans, "P.md", "plan"),
            f(Folder::PendingApproval, "A.md", "draft"),
        ];
        let w = write_files(dir.path(), &files).unwrap();
        assert_eq!(
            w,
            [
                Written::Created("Plans/P.md".into()),
                Written::Created("Pending_Approval/A.md".into())
            ]
        );
        // Again: the same text is already there.
        let w = write_files(dir.path(), &files).unwrap();
        assert!(matches!(w[0], Written::AlreadyThere(_)));
        // Other text under the same name: not replaced.
        let w = write_files(dir.path(), &[f(Folder::Plans, "P.md", "other")]).unwrap();
        assert_eq!(w, [Written::Conflict("Plans/P.md".into())]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Plans/P.md")).unwrap(),
            "plan"
        );
        // A Plans folder that is a symlink is refused.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::remove_dir_all(dir.path().join("Plans")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("Plans")).unwrap();
        assert!(write_files(dir.path(), &[f(Folder::Plans, "X.md", "x")]).is_err());
        assert!(!elsewhere.path().join("X.md").exists());
    }
}
