//! Which names in `Inbox/` are taken, and the names of the task files made from them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use chrono::{DateTime, Utc};

/// Endings of files that are still being written (browsers, download tools, editors) or
/// are an editor's scratch files. Compared without regard to ASCII case.
const TEMP_SUFFIXES: &[&str] = &[
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".tmp",
    ".swp",
    ".swo",
    ".swx",
    "~",
];

/// True for names the watcher never takes: dotfiles (`.DS_Store`, rsync's `.name.XXXX`),
/// Office lock files (`~$report.docx`), and the temporary endings above.
pub fn is_ignored(name: &OsStr) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'.' || b.starts_with(b"~$") {
        return true;
    }
    let lower = b.to_ascii_lowercase();
    TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s.as_bytes()))
}

/// Longest sanitized name kept in a task file name (bytes). `FILE_<stamp>-<n>_` and `.md`
/// add at most about 40 bytes, and most file systems allow 255.
pub const MAX_NAME_BYTES: usize = 200;

/// Longest extension kept whole when a long name is shortened.
const MAX_EXT_BYTES: usize = 16;

/// A name that is safe inside a task file name: no path separators, no control or
/// direction-changing characters, none of the characters Windows, macOS Finder or
/// Obsidian links trip over (`\ / : * ? " < > | # ^ [ ]`, each becomes `_`); not longer
/// than [`MAX_NAME_BYTES`] (the extension is kept); bytes that are not UTF-8 become `�`.
pub fn sanitize(name: &OsStr) -> String {
    let lossy = name.to_string_lossy();
    let mut out: String = lossy
        .chars()
        .map(|c| if is_unsafe(c) { '_' } else { c })
        .collect();
    // Trailing dots and spaces vanish on Windows shares. A trailing `.md` goes too: the
    // copy of a dropped note must not be a second note beside its task's (`notes.md`
    // gives the copy `FILE_…_notes` and the one note `FILE_…_notes.md`).
    loop {
        let before = out.len();
        while out.ends_with(['.', ' ']) {
            out.pop();
        }
        // Compared as bytes: the three before the end need not start a character (when
        // they are `.md`, they do).
        let bytes = out.as_bytes();
        if bytes.len() > 3 && bytes[bytes.len() - 3..].eq_ignore_ascii_case(b".md") {
            out.truncate(out.len() - 3);
        }
        if out.len() == before {
            break;
        }
    }
    if out.len() > MAX_NAME_BYTES {
        out = shorten(&out);
    }
    if out.is_empty() {
        out.push_str("file");
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '#' | '^' | '[' | ']'
        )
        // Zero-width and bidirectional controls (an "invoice\u{202E}fdp.exe" spoof).
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Cut `s` to [`MAX_NAME_BYTES`] at a character boundary, keeping a short extension.
fn shorten(s: &str) -> String {
    let ext = match s.rfind('.') {
        Some(i) if i > 0 && s.len() - i <= MAX_EXT_BYTES => &s[i..],
        _ => "",
    };
    let stem = &s[..s.len() - ext.len()];
    let mut cut = MAX_NAME_BYTES - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// `20261121T235901Z`: the UTC second a file was received.
pub fn stamp(received: DateTime<Utc>) -> String {
    received.format("%Y%m%dT%H%M%SZ").to_string()
}

/// What every name this watcher gives a copy (and, with `.md`, its note) starts with.
pub const TASK_PREFIX: &str = "FILE_";

/// The task name for the `n`-th candidate (1 = the plain name): `FILE_<stamp>_<name>`,
/// then `FILE_<stamp>-2_<name>`, `FILE_<stamp>-3_<name>` … when the plain one is taken.
pub fn task_name(stamp: &str, n: u32, sanitized: &str) -> String {
    if n <= 1 {
        format!("FILE_{stamp}_{sanitized}")
    } else {
        format!("FILE_{stamp}-{n}_{sanitized}")
    }
}

/// The `n`-th alternative of an existing task name (used only when a name is found taken
/// while publishing): `-n` inserted after the stamp.
pub fn alternative(task: &str, n: u32) -> String {
    match task
        .strip_prefix("FILE_")
        .and_then(|r| r.find('_').map(|i| (r, i)))
    {
        Some((rest, i)) => format!("FILE_{}-{n}{}", &rest[..i], &rest[i..]),
        None => format!("{task}-{n}"),
    }
}

/// The metadata file of a task: `<copy>.md`.
pub fn meta_name(task: &str) -> String {
    format!("{task}.md")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn every_task_name_starts_with_the_prefix_the_loop_looks_for() {
        // The task loop looks for a copy beside a note only under this prefix.
        for name in [
            task_name("20261121T235901Z", 1, "a.pdf"),
            task_name("20261121T235901Z", 3, "a.pdf"),
            alternative("FILE_20261121T235901Z_a.pdf", 2),
        ] {
            assert!(name.starts_with(TASK_PREFIX), "{name}");
            assert!(meta_name(&name).starts_with(TASK_PREFIX), "{name}");
        }
    }

    #[test]
    fn ignored_names() {
        for n in [
            ".hidden",
            ".DS_Store",
            "~$report.docx",
            "movie.mp4.part",
            "a.PART",
            "setup.exe.crdownload",
            "x.tmp",
            ".x.swp",
            "notes.txt.swp",
            "notes.txt~",
            "file.download",
        ] {
            assert!(is_ignored(OsStr::new(n)), "{n} should be ignored");
        }
        for n in ["report.pdf", "part", "tmp.txt", "a~b", "~report", "x.parts"] {
            assert!(!is_ignored(OsStr::new(n)), "{n} should be taken");
        }
    }

    #[test]
    fn sanitize_replaces_separators_controls_and_spoofs() {
        assert_eq!(sanitize(OsStr::new("report Q3.pdf")), "report Q3.pdf");
        assert_eq!(sanitize(OsStr::new("a\\b:c*d?.txt")), "a_b_c_d_.txt");
        assert_eq!(sanitize(OsStr::new("line\nbreak\t.txt")), "line_break_.txt");
        assert_eq!(sanitize(OsStr::new("inv\u{202E}fdp.exe")), "inv_fdp.exe");
        assert_eq!(sanitize(OsStr::new("trailing. ")), "trailing");
        assert_eq!(sanitize(OsStr::new("...")), "file");
        let bad = OsString::from_vec(vec![b'a', 0xff, b'b']);
        assert_eq!(sanitize(&bad), "a\u{FFFD}b");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let s = sanitize(OsStr::new(&long));
        assert!(s.len() <= MAX_NAME_BYTES, "{}", s.len());
        assert!(s.ends_with("é.pdf"));
        let no_ext = "x".repeat(400);
        assert_eq!(sanitize(OsStr::new(&no_ext)).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn a_dropped_note_gives_one_note() {
        for (dropped, clean) in [
            ("notes.md", "notes"),
            ("Notes.MD", "Notes"),
            ("a.md.md", "a"),
            ("b. .md", "b"),
            ("readme.mdx", "readme.mdx"),
            // A multi-byte character just before the end is no boundary to cut at.
            ("a\u{fffd}b", "a\u{fffd}b"),
            ("é.md", "é"),
            ("notes.мd", "notes.мd"),
        ] {
            assert_eq!(sanitize(OsStr::new(dropped)), clean, "{dropped}");
        }
        // Nothing but the extension: a name is still there.
        assert_eq!(sanitize(OsStr::new(".md")), ".md");
        assert_eq!(meta_name(&task_name("s", 1, "notes")), "FILE_s_notes.md");
    }

    #[test]
    fn task_names() {
        assert_eq!(
            task_name("20261121T235901Z", 1, "a.pdf"),
            "FILE_20261121T235901Z_a.pdf"
        );
        assert_eq!(
            task_name("20261121T235901Z", 3, "a_b.pdf"),
            "FILE_20261121T235901Z-3_a_b.pdf"
        );
        assert_eq!(
            alternative("FILE_20261121T235901Z_a_b.pdf", 2),
            "FILE_20261121T235901Z-2_a_b.pdf"
        );
        assert_eq!(meta_name("FILE_x_a.pdf"), "FILE_x_a.pdf.md");
    }
}
