//! A section of Dashboard.md kept current by a program: the lines between two HTML comment
//! markers, replaced whole on every write. No I/O beyond reading [`Text`]s.
//!
//! ```markdown
//! ## Tasks
//! <!-- ai-employee:tasks (kept current by the task loop; edits inside are replaced) -->
//! Pending 3 · Running 2 · Waiting for approval 1 · Done today 14 · Failed today 1 · Cost today $0.42
//! Updated 2026-12-06 05:10:03
//! <!-- /ai-employee:tasks -->
//! ```
//!
//! - Both markers (the first opening one, then the first closing one after it): only the
//!   bytes between them are replaced; the marker lines and everything around stay as
//!   they are.
//! - Neither: the whole section (heading, markers, lines) is inserted after the status
//!   table's rows, or at the end of the file when there is no table.
//! - Only one of them (a person deleted the other): nothing is taken out. The missing
//!   marker is written next to the one found (the closing one after the opening one and
//!   our lines; the opening one and our lines before the closing one), so what followed
//!   or preceded it stays, outside the section.
//!
//! Markers are recognised on their own line (surrounding spaces allowed), also inside a
//! code block: do not paste them into the Dashboard as an example.

use std::io;
use std::path::Path;

use super::text::{Lines, Text, TextWriter, ranges_equal, scan};

/// A section the writer keeps current (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Names the markers: `<!-- ai-employee:ID (NOTE) -->` … `<!-- /ai-employee:ID -->`.
    /// ASCII letters, digits, `-` and `_`.
    pub id: String,
    /// The line written above the opening marker when the section is added, e.g.
    /// `## Tasks`.
    pub heading: String,
    /// Said in the opening marker, for the person reading the file.
    pub note: String,
    /// The lines between the markers. A line break inside one becomes a space.
    pub lines: Vec<String>,
}

impl Section {
    fn open_prefix(&self) -> String {
        format!("<!-- ai-employee:{}", self.id)
    }

    fn open_marker(&self) -> String {
        if self.note.is_empty() {
            format!("{} -->", self.open_prefix())
        } else {
            format!(
                "{} ({}) -->",
                self.open_prefix(),
                self.note.replace("--", "- -")
            )
        }
    }

    fn close_marker(&self) -> String {
        format!("<!-- /ai-employee:{} -->", self.id)
    }

    /// The lines between the markers, each ended by `nl`.
    fn body(&self, nl: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            out.extend_from_slice(one_line(l).as_bytes());
            out.extend_from_slice(nl);
        }
        out
    }

    /// Whether `line` (trimmed) is this section's opening marker.
    fn is_open(&self, line: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(line.trim_ascii()) else {
            return false;
        };
        s.strip_prefix(&self.open_prefix())
            .is_some_and(|rest| rest.ends_with("-->") && (rest.starts_with(' ') || rest == "-->"))
    }

    fn is_close(&self, line: &[u8]) -> bool {
        line.trim_ascii() == self.close_marker().as_bytes()
    }
}

fn one_line(s: &str) -> String {
    s.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

/// Where the markers are: each as (start of its line, end of its line with the `\n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Markers {
    open: Option<(u64, u64)>,
    close: Option<(u64, u64)>,
    /// The opening marker's line has no line ending (the last line of the file).
    open_unended: bool,
    crlf: bool,
}

/// The first opening marker and the first closing one after it; without an opening
/// marker, the first closing one.
fn find(src: &Text, section: &Section) -> io::Result<Markers> {
    let mut m = Markers {
        open: None,
        close: None,
        open_unended: false,
        crlf: false,
    };
    let mut first_close = None;
    let mut lines = Lines::new(src, 0, src.len());
    while let Some(l) = lines.next_line() {
        if l.newline && l.last == Some(b'\r') {
            m.crlf = true;
        }
        if !l.complete() {
            continue;
        }
        match m.open {
            None if section.is_open(l.head) => {
                m.open = Some((l.start, l.end()));
                m.open_unended = !l.newline;
            }
            None if first_close.is_none() && section.is_close(l.head) => {
                first_close = Some((l.start, l.end()));
            }
            Some(_) if m.close.is_none() && section.is_close(l.head) => {
                m.close = Some((l.start, l.end()));
            }
            _ => {}
        }
    }
    lines.take_error()?;
    if m.open.is_none() {
        m.close = first_close;
    }
    Ok(m)
}

fn newline(crlf: bool) -> &'static [u8] {
    if crlf { b"\r\n" } else { b"\n" }
}

/// Whether `src` has the section with exactly `section`'s lines between its markers.
pub fn is_current(src: &Text, section: &Section) -> io::Result<bool> {
    let m = find(src, section)?;
    let (Some((_, from)), Some((to, _))) = (m.open, m.close) else {
        return Ok(false);
    };
    let body = Text::from(section.body(newline(m.crlf)));
    Ok(to - from == body.len() && ranges_equal(src, from, &body, 0, body.len())?)
}

/// `src` with the section's lines between its markers (see the module docs for where it
/// goes and what happens to damaged markers). Everything else stays byte for byte.
pub fn build(src: &Text, section: &Section, dir: &Path) -> io::Result<Text> {
    let m = find(src, section)?;
    let nl = newline(m.crlf);
    let body = section.body(nl);
    let len = src.len();
    let mut out = TextWriter::new(dir);
    match (m.open, m.close) {
        (Some((_, from)), Some((to, _))) => {
            out.copy(src, 0, from)?;
            out.push(&body)?;
            out.copy(src, to, len)?;
        }
        (Some((_, from)), None) => {
            out.copy(src, 0, from)?;
            if m.open_unended {
                out.push(nl)?;
            }
            out.push(&body)?;
            out.push(section.close_marker().as_bytes())?;
            out.push(nl)?;
            out.copy(src, from, len)?;
        }
        (None, Some((at, _))) => {
            out.copy(src, 0, at)?;
            out.push(section.open_marker().as_bytes())?;
            out.push(nl)?;
            out.push(&body)?;
            out.copy(src, at, len)?;
        }
        (None, None) => {
            let found = scan(src, len, &[], 0, u64::MAX)?;
            let at = if found.table.is_some() {
                found.rows_end.min(len)
            } else {
                len
            };
            out.copy(src, 0, at)?;
            if at > 0 {
                if !out.ends_with(b"\n") {
                    out.push(nl)?;
                }
                if !out.ends_with(b"\n\n") && !out.ends_with(b"\n\r\n") {
                    out.push(nl)?;
                }
            }
            for part in [
                section.heading.as_str(),
                &section.open_marker(),
                "",
                &section.close_marker(),
            ] {
                if part.is_empty() {
                    out.push(&body)?;
                    continue;
                }
                out.push(one_line(part).as_bytes())?;
                out.push(nl)?;
            }
            let rest = src.slice_vec(at, at.saturating_add(1))?;
            if !rest.is_empty() && rest != b"\n" && rest != b"\r" {
                out.push(nl)?;
            }
            out.copy(src, at, len)?;
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(lines: &[&str]) -> Section {
        Section {
            id: "tasks".into(),
            heading: "## Tasks".into(),
            note: "kept current by the task loop; edits inside are replaced".into(),
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    const OPEN: &str =
        "<!-- ai-employee:tasks (kept current by the task loop; edits inside are replaced) -->";
    const CLOSE: &str = "<!-- /ai-employee:tasks -->";

    fn edit(text: &str, s: &Section) -> String {
        let t = Text::from(text.as_bytes().to_vec());
        let mut out = Vec::new();
        build(&t, s, &std::env::temp_dir())
            .and_then(|b| b.write_to(&mut out))
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn current(text: &str, s: &Section) -> bool {
        is_current(&Text::from(text.as_bytes().to_vec()), s).unwrap()
    }

    /// Every byte of `before`, in order, is in `after`.
    fn keeps_all(before: &str, after: &str) -> bool {
        let mut rest = after.bytes();
        before.bytes().all(|b| rest.any(|o| o == b))
    }

    #[test]
    fn a_missing_section_goes_after_the_status_table() {
        let s = tasks(&["Pending 3", "Updated now"]);
        let text = "# AI Employee Dashboard\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| r1 | a | b | c |\n\n## Notes\n\nmine\n";
        let out = edit(text, &s);
        assert_eq!(
            out,
            format!(
                "# AI Employee Dashboard\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| r1 | a | b | c |\n\n## Tasks\n{OPEN}\nPending 3\nUpdated now\n{CLOSE}\n\n## Notes\n\nmine\n"
            )
        );
        assert!(current(&out, &s));
        assert!(!current(text, &s));
        // Written again: the same text.
        assert_eq!(edit(&out, &s), out);
    }

    #[test]
    fn a_missing_section_after_a_table_at_the_end_or_without_a_table() {
        let s = tasks(&["x"]);
        let template = crate::layout::dashboard_template();
        assert_eq!(
            edit(template, &s),
            format!("{template}\n## Tasks\n{OPEN}\nx\n{CLOSE}\n")
        );
        // Text glued to the table: a blank line on each side.
        let glued = "| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| r |\nafter";
        assert_eq!(
            edit(glued, &s),
            format!(
                "| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| r |\n\n## Tasks\n{OPEN}\nx\n{CLOSE}\n\nafter"
            )
        );
        assert_eq!(
            edit("# Mine\nno newline", &s),
            format!("# Mine\nno newline\n\n## Tasks\n{OPEN}\nx\n{CLOSE}\n")
        );
        assert_eq!(edit("", &s), format!("## Tasks\n{OPEN}\nx\n{CLOSE}\n"));
    }

    #[test]
    fn a_present_section_has_only_its_inside_replaced() {
        let s = tasks(&["Pending 1", "Updated later"]);
        // Moved by a person above the table, marker indented, note reworded, CRLF.
        let text = format!(
            "# D\r\n\r\n## My tasks heading\r\n  <!-- ai-employee:tasks (whatever) -->\r\nPending 9\r\nUpdated before\r\n{CLOSE}\r\ntail\r\n\r\n| Timestamp | Action | Status | Details |\r\n|---|---|---|---|\r\n"
        );
        let out = edit(&text, &s);
        assert_eq!(
            out,
            text.replace(
                "Pending 9\r\nUpdated before\r\n",
                "Pending 1\r\nUpdated later\r\n"
            )
        );
        assert!(current(&out, &s));
        // Another section's markers are not ours.
        let other = format!("<!-- ai-employee:tasksx -->\nx\n{CLOSE}\n");
        assert!(!current(&other, &s));
    }

    #[test]
    fn what_a_person_writes_inside_is_replaced_and_outside_kept() {
        let s = tasks(&["Pending 0"]);
        let text =
            format!("before\n\n## Tasks\n{OPEN}\nPending 0\nmy note inside\n{CLOSE}\nafter\n");
        assert!(!current(&text, &s));
        assert_eq!(
            edit(&text, &s),
            format!("before\n\n## Tasks\n{OPEN}\nPending 0\n{CLOSE}\nafter\n")
        );
    }

    #[test]
    fn an_opening_marker_alone_gets_its_closing_one_and_keeps_what_followed() {
        let s = tasks(&["new"]);
        let text = format!("## Tasks\n{OPEN}\nold line\n\n## Notes\nmine\n");
        let out = edit(&text, &s);
        assert_eq!(
            out,
            format!("## Tasks\n{OPEN}\nnew\n{CLOSE}\nold line\n\n## Notes\nmine\n")
        );
        assert!(keeps_all(&text, &out));
        assert!(current(&out, &s));
        assert_eq!(edit(&out, &s), out);
        // The marker as the last line, without a line ending.
        let out = edit(&format!("a\n{OPEN}"), &s);
        assert_eq!(out, format!("a\n{OPEN}\nnew\n{CLOSE}\n"));
    }

    #[test]
    fn a_closing_marker_alone_gets_its_opening_one_and_keeps_what_preceded() {
        let s = tasks(&["new"]);
        let text = format!("## Tasks\nold line\n{CLOSE}\nafter\n");
        let out = edit(&text, &s);
        assert_eq!(
            out,
            format!("## Tasks\nold line\n{OPEN}\nnew\n{CLOSE}\nafter\n")
        );
        assert!(keeps_all(&text, &out));
        assert!(current(&out, &s));
    }

    #[test]
    fn markers_in_the_wrong_order_lose_nothing() {
        let s = tasks(&["new"]);
        let text = format!("{CLOSE}\nmiddle\n{OPEN}\nold\n");
        let out = edit(&text, &s);
        assert_eq!(out, format!("{CLOSE}\nmiddle\n{OPEN}\nnew\n{CLOSE}\nold\n"));
        assert!(keeps_all(&text, &out));
        assert!(current(&out, &s));
        assert_eq!(edit(&out, &s), out);
    }

    #[test]
    fn lines_cannot_break_out_of_the_section() {
        let s = tasks(&["a\nb", "c\r\nd"]);
        let out = edit("", &s);
        assert_eq!(out, format!("## Tasks\n{OPEN}\na b\nc d\n{CLOSE}\n"));
        let mut s = tasks(&[]);
        s.note = "a --> b".into();
        assert!(!s.open_marker()[4..s.open_marker().len() - 3].contains("-->"));
    }
}
