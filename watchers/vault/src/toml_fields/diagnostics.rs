//! Problems found in a file, and the `file:line:column: message` lines they become.

use std::fmt;

use super::line_column;

/// One problem in a file, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as messages name it: a path as given, `credentials/smtp.toml`,
    /// `<built-in default>`.
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole (cannot be read, lacks a key).
    pub line: usize,
    /// 1-based, in characters; 0 with line 0.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A problem with the file as a whole: `file: message`.
    pub fn whole_file(file: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in one file, in source order: one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The problems on one line, joined by `"; "`, for a place that holds one line (an
    /// approval's `error` field, a Dashboard row). One problem reads as its line.
    pub fn one_line(&self) -> String {
        self.0
            .iter()
            .map(Diagnostic::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// That a problem was recorded in [`Problems`]: what a reader returns instead of a value
/// it could not read. Only [`Problems`] makes one, so a `Recorded` always stands for a
/// message the user will see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded(());

/// The problems found so far in one file's text, each at a byte offset of it or (`None`)
/// about the file as a whole.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<(Option<usize>, String)>,
}

impl Problems {
    /// A problem at byte `offset` of the text.
    pub fn at(&mut self, offset: usize, message: String) -> Recorded {
        self.list.push((Some(offset), message));
        Recorded(())
    }

    /// A problem with the file as a whole (a required key is missing).
    pub fn whole_file(&mut self, message: String) -> Recorded {
        self.list.push((None, message));
        Recorded(())
    }

    /// A problem already recorded, if any: for a problem that would only repeat it.
    pub fn any(&self) -> Option<Recorded> {
        (!self.list.is_empty()).then_some(Recorded(()))
    }

    /// How many have been recorded (compare before and after reading a part to know
    /// whether that part was valid).
    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// `Ok(value)` when nothing was recorded; otherwise every problem, sorted by position
    /// (the file's own first; problems at one spot keep the order they were found in).
    /// `value` is `Err` only when something was recorded.
    pub fn finish<T>(
        self,
        file: &str,
        text: &str,
        value: Result<T, Recorded>,
    ) -> Result<T, Diagnostics> {
        match value {
            Ok(v) if self.list.is_empty() => Ok(v),
            _ => Err(self.into_diagnostics(file, text)),
        }
    }

    /// Every problem recorded, sorted by position, as lines. Not generic, so the release
    /// binary holds it (and its sort) once, not once per `finish::<T>`.
    fn into_diagnostics(mut self, file: &str, text: &str) -> Diagnostics {
        self.list.sort_by_key(|p| p.0);
        Diagnostics(
            self.list
                .into_iter()
                .map(|(offset, message)| {
                    let (line, column) = offset.map_or((0, 0), |o| line_column(text, o));
                    Diagnostic {
                        file: file.to_string(),
                        line,
                        column,
                        message,
                    }
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_in_source_order_the_files_own_first() {
        let text = "a = 1\nb = 2\n";
        let mut p = Problems::default();
        p.at(6, "second line".into());
        p.at(0, "first line".into());
        p.whole_file("missing `c`".into());
        p.at(0, "first line, found later".into());
        let e = p.finish("f.toml", text, Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.toml: missing `c`\nf.toml:1:1: first line\nf.toml:1:1: first line, found later\n\
             f.toml:2:1: second line"
        );
        assert_eq!(
            e.one_line(),
            "f.toml: missing `c`; f.toml:1:1: first line; f.toml:1:1: first line, found later; \
             f.toml:2:1: second line"
        );
    }

    #[test]
    fn nothing_recorded_is_the_value() {
        assert_eq!(Problems::default().finish("f", "", Ok(7)), Ok(7));
        let mut p = Problems::default();
        let r = p.at(0, "bad".into());
        assert_eq!(p.count(), 1);
        assert_eq!(
            p.finish::<u8>("f", "x", Err(r)).map_err(|e| e.to_string()),
            Err("f:1:1: bad".to_string())
        );
    }
}
