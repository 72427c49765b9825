//! The status table of Dashboard.md as text: rows, cells, and the pure edits the merge
//! is built on (find the table, insert rows, count a row). No I/O.

use super::text::{self, Text};

/// One row of the `| Timestamp | Action | Status | Details |` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub timestamp: String,
    /// e.g. `System_Status`, `Watcher_Status`.
    pub action: String,
    /// e.g. `✓ Online`, `⚠ Degraded`, `✗ Offline`.
    pub status: String,
    pub details: String,
}

impl Row {
    /// The table line for this row (no line ending), cells escaped so that they cannot
    /// break the table: `|` becomes `\|`, line breaks become spaces.
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            escape_cell(&self.timestamp),
            escape_cell(&self.action),
            escape_cell(&self.status),
            escape_cell(&self.details)
        )
    }
}

/// The header line of the status table.
pub const HEADER: &str = "| Timestamp | Action | Status | Details |";
pub(crate) const SEPARATOR: &str = "|---|---|---|---|";
pub(crate) const SECTION: &str = "## System Status";

fn escape_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push_str("\\|"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(' ');
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// The cells of a table line, trimmed (`None` when it is not one).
pub(crate) fn cells(line: &[u8]) -> Option<Vec<&str>> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let s = s.strip_prefix('|')?;
    let s = s.strip_suffix('|').unwrap_or(s);
    Some(s.split('|').map(str::trim).collect())
}

pub(crate) fn is_header(line: &[u8]) -> bool {
    let want = ["timestamp", "action", "status", "details"];
    cells(line)
        .is_some_and(|c| c.len() == 4 && c.iter().zip(want).all(|(a, b)| a.eq_ignore_ascii_case(b)))
}

pub(crate) fn is_separator(line: &[u8]) -> bool {
    cells(line).is_some_and(|c| {
        c.len() == 4
            && c.iter().all(|cell| {
                let d = cell.strip_prefix(':').unwrap_or(cell);
                let d = d.strip_suffix(':').unwrap_or(d);
                !d.is_empty() && d.bytes().all(|b| b == b'-')
            })
    })
}

/// Leading spaces of a line (tabs count as four).
pub(crate) fn indent(line: &[u8]) -> usize {
    line.iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .map(|&b| if b == b'\t' { 4 } else { 1 })
        .sum()
}

/// The first `| Timestamp | Action | Status | Details |` table (outside code blocks).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn find_table(text: &[u8]) -> Option<text::TablePos> {
    let t = Text::from(text.to_vec());
    text::scan(&t, t.len(), &[], 0, u64::MAX).ok()?.table
}

/// `text` with `rows` (oldest first) at the top of the status table, newest first; a
/// `## System Status` section with the table is added at the end when there is none.
/// (For small texts in memory: the template; the merge itself uses
/// `text::build`, which this calls.)
pub(crate) fn insert_rows(text: &[u8], rows: &[&str]) -> Vec<u8> {
    let t = Text::from(text.to_vec());
    let built = text::scan(&t, t.len(), &[], 0, u64::MAX)
        .and_then(|scan| text::build(&t, t.len(), &scan, rows, None, &std::env::temp_dir()));
    let mut out = Vec::new();
    match built.and_then(|b| b.write_to(&mut out)) {
        Ok(()) => out,
        // Only reachable for a text too large for memory, which this is never given.
        Err(_) => text.to_vec(),
    }
}

/// [`insert_rows`] for the text module's tests.
#[cfg(test)]
pub(crate) fn tests_insert_rows(text: &[u8], rows: &[&str]) -> Vec<u8> {
    insert_rows(text, rows)
}

/// How many lines of `text` are the table row `row` (cells compared trimmed, so a table
/// re-aligned by an editor still matches).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn count_row(text: &[u8], row: &str) -> usize {
    let t = Text::from(text.to_vec());
    text::scan(&t, t.len(), &[row], 0, u64::MAX).map_or(0, |s| s.counts[0])
}

/// The merge's properties, for the fuzz target (`src/fuzz.rs`): the row is added exactly
/// once, it is the first row of the table found afterwards, and every byte of `text` is
/// still there in order around it.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_insert(text: &[u8], details: &str) {
    let row = Row {
        timestamp: "2026-01-01 00:00:00".into(),
        action: "System_Status".into(),
        status: "✓ Online".into(),
        details: details.into(),
    }
    .markdown();
    let out = insert_rows(text, &[&row]);
    assert_eq!(
        count_row(&out, &row),
        count_row(text, &row) + 1,
        "the row was not added exactly once"
    );
    let Some(t) = find_table(&out) else {
        panic!("no table after the insert")
    };
    let at = usize::try_from(t.rows_at).unwrap_or(usize::MAX);
    assert!(
        out.get(at..).is_some_and(|r| r.starts_with(row.as_bytes())),
        "the new row is not the table's first row"
    );
    // Every byte of the original, in order (a subsequence of the result).
    let mut rest = out.iter();
    for b in text {
        assert!(rest.any(|o| o == b), "a byte of the file was lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(details: &str) -> Row {
        Row {
            timestamp: "2026-02-16 18:25:00".into(),
            action: "System_Status".into(),
            status: "✓ Online".into(),
            details: details.into(),
        }
    }

    fn s(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap_or_default()
    }

    #[test]
    fn row_format_matches_the_spec() {
        assert_eq!(
            row("System Online: All Watchers Active").markdown(),
            "| 2026-02-16 18:25:00 | System_Status | ✓ Online | System Online: All Watchers Active |"
        );
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(escape_cell("a|b\nc\r\nd\re"), "a\\|b c d e");
        assert_eq!(escape_cell("  trailing newline\n"), "trailing newline");
        let line = row("x | y\nz").markdown();
        assert_eq!(
            cells(line.as_bytes()).map(|c| c.len()),
            Some(5),
            "naive split sees the escaped pipe"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn rows_go_to_the_top_newest_first() {
        let text = b"# D\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| old |\n\nafter\n";
        let out = s(insert_rows(text, &["| r1 |", "| r2 |"]));
        assert_eq!(
            out,
            "# D\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| r2 |\n| r1 |\n| old |\n\nafter\n"
        );
    }

    #[test]
    fn header_in_the_middle_of_a_document_is_found() {
        let text = "# Title\n\nSome text | with a pipe.\n\n| Other | Table |\n|---|---|\n| a | b |\n\n## Status\n\n|Timestamp|Action|Status|Details|\n| :--- | --- | ---: | :-: |\n| x | y | z | w |\n\n## Notes\n";
        let out = s(insert_rows(text.as_bytes(), &["| new |"]));
        assert!(
            out.contains("| :--- | --- | ---: | :-: |\n| new |\n| x | y | z | w |\n"),
            "{out}"
        );
        assert_eq!(out.len(), text.len() + "| new |\n".len());
    }

    #[test]
    fn a_header_inside_a_code_block_is_not_the_table() {
        let text = "```\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n```\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n";
        let out = s(insert_rows(text.as_bytes(), &["| new |"]));
        assert!(out.ends_with("|---|---|---|---|\n| new |\n"), "{out}");
        assert!(out.starts_with(
            "```\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n```\n"
        ));
    }

    #[test]
    fn a_header_without_separator_is_not_the_table() {
        let text = "| Timestamp | Action | Status | Details |\nnot a separator\n";
        let out = s(insert_rows(text.as_bytes(), &["| new |"]));
        assert!(out.starts_with(text));
        assert!(out.ends_with("\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| new |\n"), "{out}");
    }

    #[test]
    fn a_code_block_left_open_is_closed_before_the_table_is_added() {
        let text = b"# Notes\n\n````rust\nfn main() {}\n";
        let once = insert_rows(text, &["| a | b | c | d |"]);
        assert!(s(once.clone()).contains("fn main() {}\n````\n\n## System Status"));
        // The next row goes into the same table, not into a second section.
        let twice = insert_rows(&once, &["| e | f | g | h |"]);
        assert_eq!(s(twice.clone()).matches(SECTION).count(), 1);
        assert_eq!(
            find_table(&twice).map(|t| t.rows_at),
            find_table(&once).map(|t| t.rows_at)
        );
    }

    #[test]
    fn missing_table_is_added_at_the_end() {
        assert_eq!(
            s(insert_rows(b"# Mine\nno newline", &["| new |"])),
            "# Mine\nno newline\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| new |\n"
        );
        assert_eq!(
            s(insert_rows(b"", &["| new |"])),
            "## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| new |\n"
        );
    }

    #[test]
    fn separator_at_end_of_file_without_newline() {
        let out = s(insert_rows(
            b"| Timestamp | Action | Status | Details |\n|---|---|---|---|",
            &["| new |"],
        ));
        assert_eq!(
            out,
            "| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| new |\n"
        );
    }

    #[test]
    fn crlf_files_get_crlf_rows() {
        let out = s(insert_rows(
            b"| Timestamp | Action | Status | Details |\r\n|---|---|---|---|\r\n| old |\r\n",
            &["| new |"],
        ));
        assert_eq!(
            out,
            "| Timestamp | Action | Status | Details |\r\n|---|---|---|---|\r\n| new |\r\n| old |\r\n"
        );
    }

    #[test]
    fn template_has_the_table() {
        assert!(find_table(crate::layout::dashboard_template().as_bytes()).is_some());
    }

    #[test]
    fn rows_are_counted_even_when_realigned() {
        let r = row("a | b").markdown();
        let text =
            format!("{r}\n|2026-02-16 18:25:00|  System_Status  |✓ Online|a \\| b|\nother\n");
        assert_eq!(count_row(text.as_bytes(), &r), 2);
        assert_eq!(count_row(b"nothing", &r), 0);
    }
}
