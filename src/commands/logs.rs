//! `ai-employee logs [NAME] [-f] [-n N]`: the last lines of `Logs/system.log` or of a
//! child's `Logs/<name>.log`, then (with `-f`) whatever is appended, following the file
//! across rotations (`name.log` → `name.log.1` and a new `name.log`). Reads the files
//! directly: works whether or not a supervisor is running.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_employee_vault::Vault;
use ai_employee_vault::exit_codes;

/// How often `-f` looks for new lines and rotations.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Read backwards in chunks of this size to find the last lines.
const CHUNK: u64 = 64 * 1024;

pub fn run(vault_root: &Path, name: Option<&str>, follow: bool, lines: usize) -> i32 {
    let vault = Vault::new(vault_root.to_path_buf());
    let path = match name {
        Some(n) => {
            if n.is_empty() || n.contains('/') || n.starts_with('.') {
                eprintln!("ai-employee: {n:?} is not a process name");
                return exit_codes::USAGE;
            }
            vault.child_log(n)
        }
        None => vault.system_log(),
    };
    match tail(&path, lines, follow) {
        Ok(()) => exit_codes::OK,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "ai-employee: no log at {} (has {} run on this vault yet?)",
                path.display(),
                name.unwrap_or("the supervisor")
            );
            exit_codes::FAILURE
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit_codes::OK,
        Err(e) => {
            eprintln!("ai-employee: cannot read {}: {e}", path.display());
            exit_codes::FAILURE
        }
    }
}

/// A log file of the vault, never through a symlink (the file or `Logs/`).
fn open_log(path: &Path) -> io::Result<File> {
    ai_employee_vault::nofollow::open_in_folder(path, ai_employee_vault::nofollow::How::READ)
}

fn tail(path: &Path, lines: usize, follow: bool) -> io::Result<()> {
    let mut file = open_log(path)?;
    if follow {
        // Before the first line is out: whoever reads it may stop us right after.
        end_on_stop_signals();
    }
    let len = file.metadata()?.len();
    let start = last_lines_start(&mut file, len, lines)?;
    let mut out = io::stdout().lock();
    file.seek(SeekFrom::Start(start))?;
    copy_to_end(&mut file, &mut out)?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    drop(out);
    follow_file(path.to_path_buf(), file)
}

/// Ctrl+C, SIGTERM or SIGHUP end `-f` at once, also when they were ignored by whoever
/// started it (a background job of a script inherits SIGINT ignored, and would otherwise
/// follow forever): a thread waits for them, then the signal's default action ends the
/// process as it would have.
fn end_on_stop_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
    // Registered on the thread that acts on them: if it cannot start, nothing is caught
    // and the default dispositions stay.
    let waiter = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]);
            let _ = ready_tx.send(());
            let Ok(mut signals) = signals else { return };
            if let Some(sig) = signals.forever().next() {
                let _ = io::stdout().flush();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        });
    if waiter.is_ok() {
        let _ = ready_rx.recv();
    }
}

/// The last `lines` lines of the log at `path` as text (invalid UTF-8 replaced); `top`
/// shows these.
pub fn last_lines(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = open_log(path)?;
    let len = file.metadata()?.len();
    // A screenful: never more than the last CHUNK bytes, however long the lines.
    let start = last_lines_start(&mut file, len, lines)?.max(len.saturating_sub(CHUNK));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(CHUNK).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Offset of the first of the last `n` lines of `file` (of length `len`).
fn last_lines_start(file: &mut File, len: u64, n: usize) -> io::Result<u64> {
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut newlines = 0;
    let mut buf = vec![0u8; CHUNK as usize];
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while pos > 0 {
        let size = CHUNK.min(pos);
        pos -= size;
        file.seek(SeekFrom::Start(pos))?;
        let chunk = &mut buf[..size as usize];
        file.read_exact(chunk)?;
        for i in (0..chunk.len()).rev() {
            if chunk[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok(pos + i as u64 + 1);
            }
        }
    }
    Ok(0)
}

fn copy_to_end(file: &mut File, out: &mut impl Write) -> io::Result<u64> {
    io::copy(file, out)
}

/// Print what is appended to `path`, switching to the new file when it is rotated
/// (another inode at the path) or truncated.
fn follow_file(path: PathBuf, mut file: File) -> io::Result<()> {
    let mut ino = file.metadata()?.ino();
    loop {
        std::thread::sleep(FOLLOW_POLL);
        let mut out = io::stdout().lock();
        copy_to_end(&mut file, &mut out)?;
        out.flush()?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.ino() != ino => {
                // Rotated: finish the old file (lines written just before the rename),
                // then start the new one.
                copy_to_end(&mut file, &mut out)?;
                if let Ok(f) = open_log(&path) {
                    file = f;
                    ino = m.ino();
                    copy_to_end(&mut file, &mut out)?;
                    out.flush()?;
                }
            }
            Ok(m) if m.len() < file.stream_position()? => {
                // Truncated in place: start again from its beginning.
                file.seek(SeekFrom::Start(0))?;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_of_last(text: &str, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, text).unwrap();
        let mut f = File::open(&p).unwrap();
        let at = last_lines_start(&mut f, text.len() as u64, n).unwrap();
        text[at as usize..].to_string()
    }

    #[test]
    fn last_lines() {
        assert_eq!(start_of_last("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(start_of_last("a\nb\nc", 2), "b\nc");
        assert_eq!(start_of_last("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(start_of_last("a\nb\nc\n", 0), "");
        assert_eq!(start_of_last("", 3), "");
        let long: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(start_of_last(&long, 2), "line 19998\nline 19999\n");
    }
}
