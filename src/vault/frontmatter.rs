//! Markdown files with YAML frontmatter: the task and approval files of the vault.
//!
//! ```text
//! ---
//! type: file_drop
//! original_name: 'report: Q3.pdf'
//! ---
//! Body text.
//! ```
//! Values are written by a YAML serializer, so anything (a subject with `:`, a sender like
//! `"Doe, J" <j@x>`) is quoted as needed and parses back to the same value.

use serde_norway::{Mapping, Value};

/// A parsed file: the frontmatter mapping (key order kept) and the body after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub front: Mapping,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontmatterError {
    #[error("no frontmatter: the file must start with a line \"---\"")]
    MissingStart,
    #[error("frontmatter is not closed: no line \"---\" after line 1")]
    MissingEnd,
    #[error("frontmatter is not valid YAML: {0}")]
    Yaml(String),
    #[error("frontmatter must be a mapping of keys to values, found {0}")]
    NotAMapping(&'static str),
}

/// Split and parse `text`. Accepts `\n` and `\r\n` line ends and a UTF-8 BOM.
pub fn parse(text: &str) -> Result<Document, FrontmatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or(FrontmatterError::MissingStart)?;
    let (yaml, body) = split_at_end_marker(rest).ok_or(FrontmatterError::MissingEnd)?;
    let value: Value = if yaml.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_norway::from_str(yaml)
            .map_err(|e| FrontmatterError::Yaml(one_line(&e.to_string())))?
    };
    match value {
        // What is read must be writable back (result fields are added to approvals and
        // tasks by re-rendering them): a key the writer cannot represent (a tagged or
        // nested key) would otherwise lose the whole frontmatter on the way to Done/.
        Value::Mapping(front) if serde_norway::to_string(&front).is_err() => {
            Err(FrontmatterError::Yaml(
                "a key is not a plain value (tags and nested keys cannot be written back)".into(),
            ))
        }
        Value::Mapping(front) => Ok(Document {
            front,
            body: body.to_string(),
        }),
        Value::Null => Ok(Document {
            front: Mapping::new(),
            body: body.to_string(),
        }),
        other => Err(FrontmatterError::NotAMapping(kind(&other))),
    }
}

fn split_at_end_marker(rest: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed == "---" || trimmed == "..." {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    // A closing marker on the very last line without a newline.
    let last = rest[offset..].trim_end_matches('\r');
    (last == "---").then(|| (&rest[..offset], ""))
}

/// Render a document back to text.
pub fn render(front: &Mapping, body: &str) -> String {
    let yaml = if front.is_empty() {
        String::new()
    } else {
        serde_norway::to_string(front).unwrap_or_default()
    };
    format!("---\n{yaml}---\n{body}")
}

/// Look up a string value.
pub fn get_str<'a>(front: &'a Mapping, key: &str) -> Option<&'a str> {
    front.get(key).and_then(Value::as_str)
}

/// Set a key (replacing in place, or appending at the end).
pub fn set(front: &mut Mapping, key: &str, value: impl Into<Value>) {
    front.insert(Value::String(key.to_string()), value.into());
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_values_round_trip() {
        let mut m = Mapping::new();
        set(&mut m, "type", "email");
        set(&mut m, "subject", "Re: Invoice #1234: \"urgent\" 'now'");
        set(&mut m, "from", "\"Doe, J\" <j@x>");
        set(&mut m, "empty", "");
        set(&mut m, "looks_like_bool", "yes");
        set(&mut m, "looks_like_number", "0123");
        set(&mut m, "multi", "line one\nline two");
        let text = render(&m, "Body\n");
        let doc = parse(&text).expect("parses");
        assert_eq!(doc.front, m);
        assert_eq!(doc.body, "Body\n");
    }

    #[test]
    fn errors() {
        assert_eq!(parse("no marker"), Err(FrontmatterError::MissingStart));
        assert_eq!(parse("---\na: 1\n"), Err(FrontmatterError::MissingEnd));
        assert!(matches!(
            parse("---\na: [1\n---\n"),
            Err(FrontmatterError::Yaml(_))
        ));
        assert_eq!(
            parse("---\n- a\n---\n"),
            Err(FrontmatterError::NotAMapping("a list"))
        );
    }

    #[test]
    fn crlf_and_bom_and_empty() {
        let doc = parse("\u{feff}---\r\na: b\r\n---\r\nbody").expect("parses");
        assert_eq!(get_str(&doc.front, "a"), Some("b"));
        assert_eq!(doc.body, "body");
        assert!(parse("---\n---\n").expect("empty").front.is_empty());
    }
}
