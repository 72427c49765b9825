//! TOML text → validated [`Config`].
//!
//! `toml_edit` parses the text and keeps the byte span of every key and value. A syntax
//! error stops there (one error, at the parser's position). Otherwise the schema of each
//! section (`schema/`) walks the tree once, builds the model with defaults filled in, and
//! records *every* problem with the offset of the offending key or value (the readers in
//! `read.rs`); the problems are then sorted by position and turned into
//! `file:line:column: message` errors.

use ai_employee_vault::toml_fields::{Diagnostic, Diagnostics, Problems, line_column};
use toml_edit::Document;

use super::read::Checker;
use super::{Config, Source, schema};

pub(super) fn parse(text: &str, source: Source) -> Result<Config, Diagnostics> {
    let file = source.to_string();
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = match e.span() {
                Some(span) => line_column(text, span.start),
                None => (0, 0),
            };
            return Err(Diagnostics(vec![Diagnostic {
                file,
                line,
                column,
                message: syntax_message(text, &e),
            }]));
        }
    };
    let mut checker = Checker {
        text,
        problems: Problems::default(),
    };
    let table = schema::read(&mut checker, doc.as_table());
    let config = Config {
        source,
        supervisor: table.supervisor,
        processes: table.processes,
        notify: table.notify,
        agent: table.agent,
    };
    checker.problems.finish(&file, text, Ok(config))
}

/// `invalid TOML: …` from the parser's message, naming the key for a duplicate.
fn syntax_message(text: &str, e: &toml_edit::TomlError) -> String {
    let message = e.message().trim_end_matches('\n');
    let start = e.span().map_or(0, |s| s.start);
    let snippet = e.span().and_then(|s| text.get(s)).unwrap_or("");
    let rest = text.get(start..).unwrap_or("");
    let line = text.get(..start).unwrap_or("");
    let line = &line[line.rfind('\n').map_or(0, |i| i + 1)..];
    if message == "duplicate key" && !snippet.is_empty() {
        // `[supervisor]` twice is a table defined twice, not a key.
        let header = line.trim_start();
        if header.starts_with('[') && !header.starts_with("[[") {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            return format!(
                "invalid TOML: table {header}{} is defined more than once",
                &rest[..end]
            );
        }
        format!(
            "invalid TOML: duplicate key {:?}",
            snippet.trim_matches(['"', '\''])
        )
    } else if message.starts_with("string values must be quoted") {
        // `health_interval = 30s`: show the quoted form.
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']' | '#'))
            .collect();
        if word.is_empty() {
            "invalid TOML: missing value after '='".to_string()
        } else {
            format!("invalid TOML: string values must be quoted (write {word:?})")
        }
    } else {
        format!("invalid TOML: {message}")
    }
}
