//! A size-rotated append-only file: `name.log` → `name.log.1` → … → `name.log.N`.
//!
//! Opened lazily on the first write, so a child that prints nothing costs no descriptor.
//! Neither the files nor the folder they are in (`Logs/`) are reached through a symlink
//! (see `crate::nofollow`): a log is never written to a file outside the vault.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::nofollow::{self, How, Replace};

#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub fn new(path: PathBuf, max_size: u64, max_files: u32) -> Self {
        RotatingFile {
            path,
            max_size: max_size.max(1024),
            max_files,
            file: None,
            size: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Change the limits (a reload); takes effect at the next write.
    pub fn set_limits(&mut self, max_size: u64, max_files: u32) {
        self.max_size = max_size.max(1024);
        self.max_files = max_files;
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let f = nofollow::open_in_folder(&self.path, How::append(0o644))?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Append `buf`; rotates first if it would cross the size limit (a write larger than
    /// the limit goes whole into a fresh file).
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.open()?;
        if self.size > 0 && self.size.saturating_add(buf.len() as u64) > self.max_size {
            self.rotate()?;
        }
        let f = self.open()?;
        f.write_all(buf)?;
        self.size = self.size.saturating_add(buf.len() as u64);
        Ok(())
    }

    /// Shift `name.log.(i)` → `name.log.(i+1)`, dropping the oldest, and start afresh.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        // Renames and removals name files in the folder's descriptor: a symlink among
        // them is renamed or removed as a link, never followed.
        let (dir, name) = nofollow::folder_of(&self.path)?;
        if self.max_files == 0 {
            dir.remove_file(&name).or_else(ignore_missing)?;
        } else {
            let numbered = |i: u32| {
                let mut s = OsString::from(&name);
                s.push(format!(".{i}"));
                s
            };
            dir.remove_file(numbered(self.max_files))
                .or_else(ignore_missing)?;
            for i in (1..self.max_files).rev() {
                dir.rename(numbered(i), &dir, numbered(i + 1), Replace::Yes)
                    .or_else(ignore_missing)?;
            }
            dir.rename(&name, &dir, numbered(1), Replace::Yes)
                .or_else(ignore_missing)?;
        }
        self.size = 0;
        self.open()?;
        Ok(())
    }

    /// Whether the file is open (it is opened by the first write).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Close the descriptor (reopened on the next write).
    pub fn close(&mut self) {
        self.file = None;
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_size_and_keeps_n_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.log");
        let mut f = RotatingFile::new(path.clone(), 1024, 2);
        let line = [b'x'; 300];
        for _ in 0..20 {
            f.write_all(&line)?;
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= 1024);
        assert_eq!(size(&dir.path().join("c.log.1")), 900);
        assert_eq!(size(&dir.path().join("c.log.2")), 900);
        assert!(!dir.path().join("c.log.3").exists());
        Ok(())
    }
}
