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
//!
//! Task files have typed frontmatter: one struct per kind of task ([`TaskFrontmatter`]),
//! whose fields are the keys in the order written after `type`, rendered by
//! [`render_task`] and read back by [`parse_task`].
//!
//! [`render`] is the one place frontmatter is written. Readers differ in which plain
//! scalars they type: YAML 1.1 readers (PyYAML, Ruby, many Obsidian plugins) read `yes`,
//! `on`, `2026-01-01`, `0o17` … as booleans, dates and numbers; YAML 1.2 readers read
//! `0o17` and `1e3` as numbers. serde_norway quotes only what its own (1.2) resolver would
//! type, so `render` quotes every string that *any* of these readers would type
//! ([`typed_when_plain`]), and writes floats in a form both read as numbers (`1.0e+20`,
//! not `1e20`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_norway::value::TaggedValue;
use serde_norway::{Mapping, Number, Value};

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
    #[error("not a {want} task: `type` is {found}")]
    WrongType { want: &'static str, found: String },
    #[error("frontmatter of a {kind} task: {error}")]
    Fields { kind: &'static str, error: String },
}

/// The frontmatter of one kind of task: a struct whose fields are the keys, in the order
/// they are written after `type`.
pub trait TaskFrontmatter: Serialize {
    /// The value of `type` (`file_drop`, `email` …).
    const TYPE: &'static str;
}

/// The status a task is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
}

/// A task's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Normal,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
        }
    }
}

impl PartialEq<&str> for Priority {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// `text` in a fenced code block (info string `info`) whose fence of backticks is longer
/// than any run of backticks in `text`, so nothing in it can end the block early.
pub fn code_block(info: &str, text: &str) -> String {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{text}\n{fence}\n")
}

/// A task file: `type: T::TYPE`, then the fields of `front`, then `body`, written by
/// [`render`] (so every value reads back as written, in YAML 1.1 and 1.2 readers).
pub fn render_task<T: TaskFrontmatter>(front: &T, body: &str) -> String {
    render_fields(T::TYPE, serde_norway::to_value(front), body)
}

/// The part of [`render_task`] that is the same for every kind (compiled once).
fn render_fields(kind: &str, fields: Result<Value, serde_norway::Error>, body: &str) -> String {
    let mut m = Mapping::new();
    set(&mut m, "type", kind);
    match fields {
        Ok(Value::Mapping(fields)) => m.extend(fields),
        // A struct of strings, numbers, booleans, lists and unit enums always becomes a
        // mapping (each kind's tests pin its bytes). Should one ever not, the task is
        // still written, with its type and body, and the reason is logged.
        Ok(other) => tracing::error!("the fields of a {kind} task are {}", self::kind(&other)),
        Err(e) => tracing::error!("the fields of a {kind} task cannot be written: {e}"),
    }
    render(&m, body)
}

/// A task file read back: its typed frontmatter (whose `type` must be `T::TYPE`) and its
/// body.
pub fn parse_task<T: TaskFrontmatter + DeserializeOwned>(
    text: &str,
) -> Result<(T, String), FrontmatterError> {
    let mut doc = parse(text)?;
    match doc.front.remove("type") {
        Some(Value::String(t)) if t == T::TYPE => {}
        other => {
            return Err(FrontmatterError::WrongType {
                want: T::TYPE,
                found: match other {
                    Some(Value::String(t)) => format!("{t:?}"),
                    Some(v) => kind(&v).to_string(),
                    None => "missing".to_string(),
                },
            });
        }
    }
    let front = serde_norway::from_value(Value::Mapping(doc.front)).map_err(|e| {
        FrontmatterError::Fields {
            kind: T::TYPE,
            error: one_line(&e.to_string()),
        }
    })?;
    Ok((front, doc.body))
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
    } else if let Some(front) = parse_flat(yaml) {
        Value::Mapping(front)
    } else {
        serde_norway::from_str(yaml)
            .map_err(|e| FrontmatterError::Yaml(one_line(&e.to_string())))?
    };
    match value {
        // What is read must be writable back (result fields are added to approvals and
        // tasks by re-rendering them): a key the writer cannot represent (a tagged or
        // nested key) would otherwise lose the whole frontmatter on the way to Done/, and
        // a tag it writes as read but no reader accepts (`!%5b` is read as `![`) would
        // leave a file nothing can parse.
        Value::Mapping(front) if !writable(&front) => Err(FrontmatterError::Yaml(
            "a key is not a plain value (tags and nested keys cannot be written back)".into(),
        )),
        Value::Mapping(front) if !reads_back(&front) => Err(FrontmatterError::Yaml(
            "a tag or value cannot be written back as read (use plain values)".into(),
        )),
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

/// The common frontmatter read directly, to the very mapping serde_norway reads from it
/// (a test compares the two over generated documents, and the fuzz target on every
/// input): one `key: value` per line, every key a plain word, every value a plain string
/// of a few safe characters that no reader types, a single-quoted string of printable
/// ASCII on its line, a decimal integer or fraction, `true`, `false` or `null`, no key
/// twice, at least one line (no text at all reads as null, not as a mapping). `None` for
/// anything else (comments, blank lines, other styles, lists, nested mappings, tags,
/// other characters), which serde_norway reads. What [`render_flat`]
/// writes reads this way; every task file the loop reads is such a file, and the YAML
/// parser was a tenth of the loop's scheduling thread.
pub fn parse_flat(yaml: &str) -> Option<Mapping> {
    if yaml.is_empty() {
        return None;
    }
    let mut front = Mapping::new();
    for line in yaml.split_terminator('\n') {
        let (key, value) = line.split_once(": ")?;
        if !flat_text(key) || typed_when_plain(key) || key.len() > FLAT_KEY {
            return None;
        }
        let value = if let Some(quoted) = value.strip_prefix('\'') {
            Value::String(single_quoted_text(quoted)?)
        } else {
            flat_scalar(value)?
        };
        if front
            .insert(Value::String(key.to_string()), value)
            .is_some()
        {
            return None; // serde_norway refuses a key given twice
        }
    }
    Some(front)
}

/// The text of a single-quoted scalar that ends its line (`quoted` is what follows the
/// opening quote): printable ASCII, `''` for a quote.
fn single_quoted_text(quoted: &str) -> Option<String> {
    let inner = quoted.strip_suffix('\'')?;
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                out.push('\'');
                i += 2;
            }
            b'\'' => return None,
            c @ 0x20..=0x7e => {
                out.push(c as char);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A plain value [`parse_flat`] takes: `true`, `false`, `null`, a decimal integer without
/// a leading zero, a fraction `digits.digits`, or a string no reader types.
fn flat_scalar(v: &str) -> Option<Value> {
    match v {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let decimal = |d: &str| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit());
    if decimal(whole) && (whole == "0" || !whole.starts_with('0')) {
        return match fraction {
            // 18 digits always fit an i64.
            None if whole.len() <= 18 && digits.len() < v.len() => v
                .parse::<i64>()
                .ok()
                .map(|n| Value::Number(Number::from(n))),
            None if whole.len() <= 18 && digits.len() == v.len() => v
                .parse::<u64>()
                .ok()
                .map(|n| Value::Number(Number::from(n))),
            Some(f) if decimal(f) && v.len() <= 24 => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(|x| Value::Number(Number::from(x))),
            _ => None,
        };
    }
    (flat_text(v) && !typed_when_plain(v)).then(|| Value::String(v.to_string()))
}

/// Whether serde_norway can write `front`: it cannot write a key that is a mapping or
/// carries a tag. A document whose keys are all plain scalars and which has no tag
/// anywhere always can, and is not written to find out (every task file the loop reads
/// went through a whole serialization for this check); any other is tried.
fn writable(front: &Mapping) -> bool {
    fn scalar(k: &Value) -> bool {
        matches!(
            k,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
        )
    }
    fn plain(v: &Value) -> bool {
        match v {
            Value::Tagged(_) => false,
            Value::Mapping(m) => m.iter().all(|(k, v)| scalar(k) && plain(v)),
            Value::Sequence(s) => s.iter().all(plain),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
        }
    }
    front.iter().all(|(k, v)| scalar(k) && plain(v)) || serde_norway::to_string(front).is_ok()
}

/// Whether `front`, written by [`render_yaml`], parses again. Only a tag can fail to
/// (the writer puts it out as read, decoded), so a document without one is not tried.
fn reads_back(front: &Mapping) -> bool {
    fn has_tag(v: &Value) -> bool {
        match v {
            Value::Tagged(_) => true,
            Value::Mapping(m) => m.iter().any(|(k, v)| has_tag(k) || has_tag(v)),
            Value::Sequence(s) => s.iter().any(has_tag),
            _ => false,
        }
    }
    !front.iter().any(|(k, v)| has_tag(k) || has_tag(v))
        || serde_norway::from_str::<Value>(&render_yaml(front)).is_ok()
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

/// Render a document back to text. Every string reads back as that string, and every
/// number as that number, in YAML 1.1 and 1.2 readers alike.
pub fn render(front: &Mapping, body: &str) -> String {
    let yaml = if front.is_empty() {
        String::new()
    } else {
        render_yaml(front)
    };
    format!("---\n{yaml}---\n{body}")
}

/// A decimal given as text (`120.50`, digits and at most one `.`), as a YAML number when
/// that keeps its value (an integer, or at most 15 significant digits: what a double
/// holds exactly); otherwise as the string, so that no digit is ever lost.
pub fn decimal(text: &str) -> Value {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Value::Number(Number::from(n));
    }
    let plain = !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|&b| b == b'.').count() <= 1;
    let significant = t
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .collect::<Vec<u8>>();
    let significant = significant
        .iter()
        .rposition(|&b| b != b'0')
        .map_or(0, |i| i + 1);
    match t.parse::<f64>() {
        Ok(f) if plain && f.is_finite() && significant <= 15 => Value::Number(Number::from(f)),
        _ => Value::String(text.to_string()),
    }
}

/// serde_norway's output, with the strings only other readers would type single-quoted
/// and floats in a form every reader types as a float: written directly when every key
/// and value is plain ([`render_flat`]), otherwise by [`render_general`].
pub fn render_yaml(front: &Mapping) -> String {
    render_flat(front).unwrap_or_else(|| render_general(front))
}

/// The longest key [`render_flat`] writes.
const FLAT_KEY: usize = 100;

/// The common frontmatter written directly, byte for byte as [`render_general`] writes
/// it (a test compares the two over generated documents): every key a plain word, every
/// value a plain string of a few safe characters, a string that gets single quotes, a
/// number, a boolean or null. `None` for anything else (lists, nested mappings, tags,
/// other characters), which goes the general way. Every task file the loop
/// edits is rendered twice per run, and the general way clones, serializes and searches
/// the document (a tenth of the loop's scheduling thread).
fn render_flat(front: &Mapping) -> Option<String> {
    let mut out = String::with_capacity(32 * front.len());
    for (k, v) in front {
        let Value::String(k) = k else { return None };
        // A key over 128 characters is written as a complex key (`? key`).
        if !flat_text(k) || typed_when_plain(k) || k.len() > FLAT_KEY {
            return None;
        }
        out.push_str(k);
        out.push_str(": ");
        match v {
            Value::String(s) if typed_when_plain(s) => out.push_str(&single_quoted(s)),
            Value::String(s) if flat_text(s) => out.push_str(s),
            Value::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => out.push_str(&float_text(f)),
                _ => return None,
            },
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
            _ => return None,
        }
        out.push('\n');
    }
    Some(out)
}

/// A string every reader takes as itself when written plain, in any position: it starts
/// with a letter or digit, ends with no blank, and has only letters, digits, blanks and
/// `_ . / + -` (no indicator, no `: ` or ` #`, no quote; never folded, however long).
fn flat_text(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(|&c| c != b' ')
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b' ' | b'_' | b'.' | b'/' | b'+' | b'-')
        })
}

/// [`render_yaml`] for any document. serde_norway chooses a scalar's style itself, so
/// each value that needs its own text is first replaced by a placeholder (letters and
/// digits only, so always written plain, as is, on one line) that occurs in no string or
/// tag of the document, and after serializing the placeholder is replaced by the value's
/// text.
fn render_general(front: &Mapping) -> String {
    let mut texts = Vec::new();
    collect_texts(front, &mut texts);
    let prefix = placeholder_prefix(&texts);
    let mut swaps = Vec::new();
    let swapped = swap(Value::Mapping(front.clone()), &prefix, &mut swaps);
    let Ok(mut out) = serde_norway::to_string(&swapped) else {
        return serde_norway::to_string(front).unwrap_or_default();
    };
    for (token, text) in &swaps {
        if out.matches(token.as_str()).count() != 1 {
            // Cannot happen (the placeholder is unique and written as is); never write
            // a document that is not the one asked for.
            return serde_norway::to_string(front).unwrap_or_default();
        }
        out = out.replacen(token.as_str(), text, 1);
    }
    out
}

/// Every string and tag in the document (what a placeholder must not occur in).
fn collect_texts<'a>(m: &'a Mapping, out: &mut Vec<&'a str>) {
    fn value<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Sequence(items) => items.iter().for_each(|i| value(i, out)),
            Value::Mapping(m) => collect_texts(m, out),
            Value::Tagged(t) => {
                value(&t.value, out);
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    for (k, v) in m {
        value(k, out);
        value(v, out);
    }
}

/// `aiq<n>z`, with the first `n` that occurs in none of `texts` (nor does any tag, which
/// serde_norway writes from strings collected there too).
fn placeholder_prefix(texts: &[&str]) -> String {
    (0u64..)
        .map(|n| format!("aiq{n}z"))
        .find(|p| !texts.iter().any(|t| t.contains(p.as_str())))
        .unwrap_or_default()
}

/// `v` with each value that needs its own text replaced by a placeholder (recorded in
/// `swaps` with that text).
fn swap(v: Value, prefix: &str, swaps: &mut Vec<(String, String)>) -> Value {
    let mut placeholder = |text: String| {
        // Ends in a letter, so that no placeholder is the start of another.
        let token = format!("{prefix}{}q", swaps.len());
        swaps.push((token.clone(), text));
        Value::String(token)
    };
    match v {
        Value::String(s) if typed_when_plain(&s) => placeholder(single_quoted(&s)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.is_finite() => placeholder(float_text(f)),
            _ => Value::Number(n),
        },
        Value::Sequence(items) => {
            Value::Sequence(items.into_iter().map(|i| swap(i, prefix, swaps)).collect())
        }
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, v)| (swap(k, prefix, swaps), swap(v, prefix, swaps)))
                .collect(),
        ),
        Value::Tagged(t) => {
            let TaggedValue { tag, value } = *t;
            Value::Tagged(Box::new(TaggedValue {
                tag,
                value: swap(value, prefix, swaps),
            }))
        }
        other => other,
    }
}

/// `'text'` (the strings [`typed_when_plain`] accepts are printable ASCII on one line).
fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A finite float as YAML 1.1 wants it (a `.` in the mantissa, a signed exponent), which
/// YAML 1.2 reads as the same float: `1e20` → `1.0e+20`, `2.5e-7` → `2.5e-7`.
fn float_text(f: f64) -> String {
    // serde_norway's own text for a finite float (shortest round trip).
    let s = Number::from(f).to_string();
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_string(), Some(e.to_string())),
        None => (s, None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exponent {
        None => mantissa,
        Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
    }
}

/// Whether a YAML 1.1 reader (the full 1.1 type repository as PyYAML implements it:
/// bool, null, int, float, timestamp, merge, value) or a YAML 1.2 reader (core schema)
/// reads `s`, written as a plain scalar, as something other than the string `s`.
pub fn typed_when_plain(s: &str) -> bool {
    matches!(
        s,
        "" | "~"
            | "null"
            | "Null"
            | "NULL"
            | "y"
            | "Y"
            | "n"
            | "N"
            | "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "<<"
            | "="
    ) || yaml_int(s)
        || yaml_float(s)
        || yaml11_timestamp(s)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all_of(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(ok)
}

fn digit_or_underscore(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// 1.1: `0b1010`, `017`, `1_000`, `0x1F`, `190:20:30` (all with an optional sign);
/// 1.2: `[-+]?[0-9]+`, `0o17`, `0x1F`.
fn yaml_int(s: &str) -> bool {
    let t = strip_sign(s);
    if let Some(bin) = t.strip_prefix("0b") {
        return all_of(bin, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return all_of(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return all_of(oct, |b| matches!(b, b'0'..=b'7'));
    }
    all_of(t, digit_or_underscore) && t.as_bytes()[0].is_ascii_digit() || sexagesimal(t, false)
}

/// 1.1 base 60: `[1-9][0-9_]*(:[0-5]?[0-9])+`, for floats with a `.[0-9_]*` tail and
/// any leading digit.
fn sexagesimal(t: &str, float: bool) -> bool {
    let (t, ok_tail) = if float {
        match t.split_once('.') {
            Some((head, tail)) => (head, tail.bytes().all(digit_or_underscore)),
            None => return false,
        }
    } else {
        (t, true)
    };
    let mut parts = t.split(':');
    let first = parts.next().unwrap_or("");
    let first_ok = all_of(first, digit_or_underscore)
        && if float {
            first.as_bytes()[0].is_ascii_digit()
        } else {
            matches!(first.as_bytes()[0], b'1'..=b'9')
        };
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        let b = p.as_bytes();
        match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => matches!(b[0], b'0'..=b'5') && b[1].is_ascii_digit(),
            _ => false,
        }
    });
    ok_tail && first_ok && rest > 0 && rest_ok
}

/// 1.1: `[-+]?([0-9][0-9_]*)?\.[0-9._]*([eE][-+][0-9]+)?`, base 60 with a fraction,
/// `.inf`, `.nan`; 1.2: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn yaml_float(s: &str) -> bool {
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    if sexagesimal(t, true) {
        return true;
    }
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (t, None),
    };
    let exponent_ok = exponent.is_none_or(|e| all_of(strip_sign(e), |b| b.is_ascii_digit()));
    if !exponent_ok || mantissa.is_empty() {
        return false;
    }
    // 1.1: a `.` is required; digits, `_` and further dots around it.
    let yaml11 = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty()
                || (int.as_bytes()[0].is_ascii_digit() && int.bytes().all(digit_or_underscore)))
                && frac.bytes().all(|b| digit_or_underscore(b) || b == b'.')
        }
        None => false,
    };
    // 1.2: digits with at most one `.` and at least one digit, exponent optional.
    let yaml12 = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit()))
                && !(int.is_empty() && frac.is_empty())
        }
        None => all_of(mantissa, |b| b.is_ascii_digit()),
    };
    yaml11 || yaml12
}

/// 1.1 timestamps: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`,
/// `2001-12-14 21:59:43.10 -5`, `2001-12-15T02:59:43.1Z` (month and day may have one
/// digit, the time zone is optional).
fn yaml11_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b[from.min(b.len())..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (n >= min).then_some(from + n)
    };
    let expect = |at: usize, c: u8| -> Option<usize> { (b.get(at) == Some(&c)).then_some(at + 1) };
    let date = (|| {
        let i = digits(0, 4, 4)?;
        let i = expect(i, b'-')?;
        let i = digits(i, 1, 2)?;
        let i = expect(i, b'-')?;
        digits(i, 1, 2)
    })();
    let Some(mut i) = date else {
        return false;
    };
    if i == b.len() {
        return true;
    }
    // The time: `T`, `t` or blanks, then hh:mm:ss[.fraction].
    let time = (|| {
        let mut i = i;
        if matches!(b.get(i), Some(b'T' | b't')) {
            i += 1;
        } else {
            let blanks = b[i..]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
            if blanks == 0 {
                return None;
            }
            i += blanks;
        }
        let i = digits(i, 1, 2)?;
        let i = expect(i, b':')?;
        let i = digits(i, 2, 2)?;
        let i = expect(i, b':')?;
        let mut i = digits(i, 2, 2)?;
        if b.get(i) == Some(&b'.') {
            i += 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        }
        Some(i)
    })();
    match time {
        Some(t) => i = t,
        None => return false,
    }
    // The zone: blanks, then `Z` or ±h[h][:mm].
    i += b[i..]
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t'))
        .count();
    if i == b.len() {
        return true;
    }
    if b[i] == b'Z' {
        return i + 1 == b.len();
    }
    if !matches!(b[i], b'+' | b'-') {
        return false;
    }
    let Some(mut i) = digits(i + 1, 1, 2) else {
        return false;
    };
    if b.get(i) == Some(&b':') {
        match digits(i + 1, 2, 2) {
            Some(j) => i = j,
            None => return false,
        }
    }
    i == b.len()
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

    /// A small deterministic generator (xorshift): the same documents on every run.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
        /// Text of the characters a frontmatter value has, the dangerous ones included,
        /// or a word that readers type.
        fn text(&mut self) -> String {
            const WORDS: &[&str] = &[
                "yes",
                "No",
                "null",
                "~",
                "",
                "1.5",
                "0x1F",
                "0o17",
                "1e3",
                "1_000",
                "190:20:30",
                "2026-12-07",
                "2026-12-07T03:52:48.547968Z",
                "2001-12-14 21:59:43.10 -5",
                "<<",
                "=",
                "-",
                "---",
                "...",
                "a: b",
                "a #b",
                " lead",
                "trail ",
                ".inf",
                "+1",
                "-2",
                "task t-00237.md",
                "running",
                "done",
                "EMAIL_x",
                "it's",
                "on",
                "off",
                "y",
            ];
            const CHARS: &[u8] = b"abcXYZ019 _./+-:#'\",[]{}!&*?|>%@`~\t";
            const SAFE: &[u8] = b"abcXYZ019  _./+-";
            match self.below(4) {
                0 => return self.pick(WORDS).to_string(),
                // Long text of the flat writer's characters (blanks too), now and then
                // with one that is not.
                1 => {
                    let len = 1 + self.below(200);
                    let mut t: String = (0..len)
                        .map(|_| SAFE[self.below(SAFE.len())] as char)
                        .collect();
                    if self.below(3) == 0 {
                        let at = self.below(len);
                        t.insert(at, CHARS[self.below(CHARS.len())] as char);
                    }
                    return t;
                }
                _ => {}
            }
            let most = if self.below(4) == 0 { 120 } else { 12 };
            let len = self.below(most);
            let mut t = String::new();
            for _ in 0..len {
                match self.below(40) {
                    0 => t.push('\n'),
                    1 => t.push('é'),
                    _ => t.push(CHARS[self.below(CHARS.len())] as char),
                }
            }
            t
        }
        fn value(&mut self) -> Value {
            match self.below(9) {
                0 => Value::Number(Number::from(self.next() as i64)),
                1 => Value::Number(Number::from(self.below(5000) as u64)),
                2 => {
                    let f = [
                        0.1,
                        -2.5e-7,
                        1e20,
                        120.5,
                        3.0,
                        1e-300,
                        f64::INFINITY,
                        f64::NAN,
                    ];
                    Value::Number(Number::from(f[self.below(f.len())]))
                }
                3 => Value::Bool(self.below(2) == 0),
                4 => Value::Null,
                5 => Value::Sequence(vec![Value::String(self.text())]),
                _ => Value::String(self.text()),
            }
        }
    }

    #[test]
    fn the_flat_writer_writes_what_the_general_one_does() {
        const KEYS: &[&str] = &[
            "title",
            "state",
            "started_at",
            "attempt",
            "from",
            "yes",
            "1",
            "a b",
            "k:",
            "x_y",
            "priority",
            "a-b.c",
            "",
        ];
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut flat, mut all) = (0, 0);
        for _ in 0..20_000 {
            let mut m = Mapping::new();
            for _ in 0..1 + g.below(8) {
                let k = if g.below(10) == 0 {
                    g.text()
                } else {
                    g.pick(KEYS).to_string()
                };
                // Mostly values of the kinds the flat writer takes, so both ways are tried.
                let v = if g.below(2) == 0 {
                    Value::String(
                        g.pick(&[
                            "task t-00237.md",
                            "running",
                            "2026-12-07T03:52:48Z",
                            "a/b+c-1",
                        ])
                        .to_string(),
                    )
                } else {
                    g.value()
                };
                m.insert(Value::String(k), v);
            }
            all += 1;
            if let Some(out) = render_flat(&m) {
                flat += 1;
                assert_eq!(out, render_general(&m), "{m:?}");
            }
        }
        // Not vacuous: a good share went the flat way, and a good share did not.
        assert!(
            flat > all / 10 && flat < all * 9 / 10,
            "{flat} of {all} flat"
        );
    }

    #[test]
    fn the_flat_reader_reads_what_serde_norway_reads() {
        // Lines of keys and values from pieces that are near the flat reader's edges:
        // words readers type, numbers of every spelling, quotes, blanks, indicators.
        const KEYS: &[&str] = &[
            "title", "state", "attempt", "yes", "1", "a b", "x_y", "a-b.c", "k:", "", " k", "k ",
            "True", "null", "#c", "a#b", "title",
        ];
        const VALUES: &[&str] = &[
            "task t-00237.md",
            "running",
            "done",
            "true",
            "false",
            "null",
            "True",
            "FALSE",
            "Null",
            "~",
            "yes",
            "No",
            "on",
            "y",
            "0",
            "-0",
            "+0",
            "7",
            "-7",
            "+7",
            "007",
            "-007",
            "12345678901234567890",
            "-9223372036854775808",
            "999999999999999999",
            "0.5",
            "-0.5",
            "00.5",
            "5.",
            ".5",
            "1.5.2",
            "1e3",
            "1E3",
            "1.0e+20",
            "2e-5",
            "inf",
            "-inf",
            ".inf",
            "nan",
            ".NaN",
            "NaN",
            "infinity",
            "0x1F",
            "0o17",
            "0b11",
            "1_000",
            "190:20:30",
            "2026-12-07",
            "2026-12-07T03:52:48Z",
            "'2026-12-07T03:52:48Z'",
            "'it''s'",
            "'it's'",
            "' lead'",
            "'trail '",
            "''",
            "'a #b'",
            "'é'",
            "'a\tb'",
            "'a\u{1}b'",
            "'a\rb'",
            "'a\u{7f}b'",
            "'a\u{85}b'",
            "\"dq\"",
            "a #b",
            "a#b",
            "a: b",
            "trail ",
            " lead",
            "- x",
            "[a]",
            "{a: 1}",
            "&a x",
            "*a",
            "!t x",
            "|",
            ">",
            "%x",
            "@x",
            "`x`",
            "?",
            "-",
            "---",
            "...",
            "<<",
            "=",
            "é",
            "00000000-0000-0000-0000-000000000000",
            "a/b+c-1",
            "1.0",
            "0.0125",
            "12.50",
            "1234567890.12345678901234567890",
            "0.1e1",
        ];
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let (mut flat, mut all) = (0, 0);
        // Half the documents of the kind the loop reads (distinct keys, mostly flat
        // values), so that both ways are taken; the other half anything.
        const CLEAN_KEYS: &[&str] = &["title", "state", "attempt", "started_at", "x_y", "a-b.c"];
        const CLEAN_VALUES: &[&str] = &[
            "task t-00237.md",
            "running",
            "'2026-12-07T03:52:48Z'",
            "1",
            "-3",
            "0.0125",
            "true",
            "null",
            "00000000-0000-0000-0000-000000000000",
            "'it''s'",
        ];
        // The edges no generated document reaches: no line at all reads as null.
        for yaml in ["", "\n", " ", "k: v"] {
            let general = serde_norway::from_str::<Value>(yaml);
            match (parse_flat(yaml), general) {
                (None, _) => {}
                (Some(front), Ok(Value::Mapping(m))) => assert_eq!(front, m, "{yaml:?}"),
                (Some(front), other) => panic!("{yaml:?}: flat {front:?}, serde_norway {other:?}"),
            }
        }
        for _ in 0..30_000 {
            let mut yaml = String::new();
            let clean = g.below(2) == 0;
            for line in CLEAN_KEYS.iter().take(1 + g.below(CLEAN_KEYS.len())) {
                let key = if clean {
                    line.to_string()
                } else if g.below(8) == 0 {
                    g.text()
                } else {
                    g.pick(KEYS).to_string()
                };
                let value = match g.below(10) {
                    _ if clean && g.below(4) != 0 => g.pick(CLEAN_VALUES).to_string(),
                    0 => g.text(),
                    1 => format!("'{}'", g.text()),
                    _ => g.pick(VALUES).to_string(),
                };
                let odd = g.below(if clean { 40 } else { 12 }) == 0;
                let sep = if odd {
                    g.pick(&[":  ", ":", " : ", ":\t"])
                } else {
                    ": "
                };
                yaml.push_str(&format!("{key}{sep}{value}"));
                let odd = g.below(if clean { 40 } else { 12 }) == 0;
                yaml.push_str(if odd {
                    g.pick(&["\r\n", " # c\n", "\n\n", " \n", ""])
                } else {
                    "\n"
                });
            }
            all += 1;
            let general = serde_norway::from_str::<Value>(&yaml);
            if let Some(front) = parse_flat(&yaml) {
                flat += 1;
                match general {
                    Ok(Value::Mapping(m)) => assert_eq!(front, m, "{yaml:?}"),
                    other => {
                        panic!("{yaml:?}: read flat as {front:?}, by serde_norway as {other:?}")
                    }
                }
            }
        }
        assert!(
            flat > all / 20 && flat < all * 9 / 10,
            "{flat} of {all} flat"
        );
        // What the flat writer writes reads back the flat way unless it has a float in
        // the writer's exponent form, and always to what serde_norway reads.
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut back, mut written) = (0, 0);
        for _ in 0..20_000 {
            let mut m = Mapping::new();
            for _ in 0..1 + g.below(8) {
                m.insert(
                    Value::String(g.pick(&["title", "state", "attempt", "x_y"]).into()),
                    g.value(),
                );
            }
            let Some(yaml) = render_flat(&m) else {
                continue;
            };
            written += 1;
            if let Some(front) = parse_flat(&yaml) {
                back += 1;
                assert_eq!(
                    Value::Mapping(front),
                    serde_norway::from_str::<Value>(&yaml).unwrap_or(Value::Null),
                    "{yaml:?}"
                );
            }
        }
        assert!(back > written / 2, "{back} of {written} read back flat");
    }

    #[test]
    fn a_task_files_frontmatter_goes_the_flat_way() {
        let text = "---\ntype: email\ntitle: task t-00237.md\nstate: running\nattempt: 1\n\
                    started_at: '2026-12-07T03:52:48.547968Z'\ncost_usd: 0.0125\n---\nbody\n";
        let doc = match parse(text) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            render_flat(&doc.front).as_deref(),
            Some(&text[4..text.len() - 9])
        );
        assert_eq!(render(&doc.front, &doc.body), text);
        // And read the flat way, to what the general way reads.
        assert_eq!(
            parse_flat(&text[4..text.len() - 9]),
            serde_norway::from_str::<Mapping>(&text[4..text.len() - 9]).ok()
        );
    }

    #[test]
    fn a_key_that_cannot_be_written_back_is_refused_and_the_quick_check_agrees() {
        for bad in ["? {a: 1}\n: x", "k: {!t a: b}", "? !t\n: v"] {
            let text = format!("---\n{bad}\n---\nbody\n");
            match parse(&text) {
                Err(FrontmatterError::Yaml(e)) => assert!(e.contains("not a plain value"), "{e}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Whatever parses as a mapping: the quick check says what writing it says.
        for yaml in [
            "a: 1",
            "? [1, 2]\n: x",
            "k: !t v",
            "k: !!binary aGk=",
            "~: v",
            "1: v",
            "true: v",
            "1.5: v",
            ".nan: v",
            "k:\n  ? [1]\n  : v",
            "k:\n  - ? [1]\n    : v",
            "k: [!t a]",
            "k: !t {a: 1}",
            "k: !t [a]",
            "'': v",
            "k: \"\\x00\"",
            "k: .inf",
            "k: {a: [1, {b: c}]}",
            "? {a: 1}\n: x",
            "k: {? {a: 1}\n: x}",
        ] {
            if let Ok(Value::Mapping(m)) = serde_norway::from_str::<Value>(yaml) {
                assert_eq!(
                    writable(&m),
                    serde_norway::to_string(&m).is_ok(),
                    "{yaml:?}"
                );
            }
        }
        let doc = parse("---\n? [1, 2]\n: x\ntitle: t\n---\nbody\n").unwrap();
        assert_eq!(parse(&render(&doc.front, &doc.body)).unwrap(), doc);
    }

    #[test]
    fn a_code_block_outfences_the_backticks_inside() {
        assert_eq!(code_block("text", "plain"), "```text\nplain\n```\n");
        assert_eq!(
            code_block("markdown", "a ```` b ` c"),
            "`````markdown\na ```` b ` c\n`````\n"
        );
    }

    #[test]
    fn a_tag_that_cannot_be_written_back_is_refused() {
        // `%5b` is read as `[`, which no reader accepts in a tag when written back.
        let e = parse("---\nnull: !%5b0 x\n---\n").err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("cannot be written back")),
            "{e:?}"
        );
        let ok = parse("---\nk: !custom x\n---\n").expect("a plain tag reads back");
        assert_eq!(ok.front.len(), 1);
    }

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
    fn strings_other_readers_would_type_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "null",
            "~",
            "",
            "<<",
            "=",
            "2026-01-01",
            "2026-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2026-11-21T23:59:01.250Z",
            "0o17",
            "0x1F",
            "0b1_0",
            "017",
            "1_000",
            "-12",
            "+1",
            "1e3",
            "1E-3",
            "1.5",
            ".5",
            "1.",
            "1.2.3",
            "12:30:00",
            "190:20:30.15",
            ".inf",
            "-.INF",
            ".NaN",
        ] {
            assert!(typed_when_plain(s), "{s:?}");
            let mut m = Mapping::new();
            set(&mut m, "v", s);
            let text = render(&m, "");
            assert_eq!(text, format!("---\nv: '{s}'\n---\n"), "{s:?}");
            assert_eq!(parse(&text).map(|d| d.front), Ok(m));
        }
        for s in [
            "yess",
            "report.pdf",
            "2026-01-01.pdf",
            "2026-01-01 notes",
            "0x",
            "1e",
            "12:30 x",
            "1.5 kg",
            "inf",
            "nan",
            "0:30",
            "2026-01-01T10",
            "Ana Lima",
        ] {
            assert!(!typed_when_plain(s), "{s:?}");
        }
    }

    #[test]
    fn floats_are_written_so_that_yaml_1_1_reads_floats() {
        assert_eq!(float_text(1e20), "1.0e+20");
        assert_eq!(float_text(2.5e-7), "2.5e-7");
        assert_eq!(float_text(12.5), "12.5");
        assert_eq!(float_text(1.0), "1.0");
        let mut m = Mapping::new();
        set(&mut m, "big", 1e20);
        set(&mut m, "count", 7u64);
        assert_eq!(render(&m, ""), "---\nbig: 1.0e+20\ncount: 7\n---\n");
        assert_eq!(parse(&render(&m, "")).map(|d| d.front), Ok(m));
    }

    #[test]
    fn decimals_are_numbers_when_exact() {
        assert_eq!(decimal("120"), Value::Number(Number::from(120u64)));
        assert_eq!(decimal("120.50"), Value::Number(Number::from(120.5)));
        assert_eq!(decimal(".5"), Value::Number(Number::from(0.5)));
        assert_eq!(
            decimal("0.000000000000001"),
            Value::Number(Number::from(1e-15))
        );
        // 17 significant digits: a double would change it.
        assert_eq!(
            decimal("12345678901234567.5"),
            Value::String("12345678901234567.5".into())
        );
        assert_eq!(decimal("lots"), Value::String("lots".into()));
    }

    #[test]
    fn a_placeholder_never_collides_with_the_content() {
        let mut m = Mapping::new();
        set(&mut m, "aiq0z0q", "yes");
        set(&mut m, "x", "aiq0z0q aiq1z");
        set(&mut m, "yes", "no");
        let text = render(&m, "");
        assert_eq!(parse(&text).map(|d| d.front), Ok(m), "{text}");
        assert!(text.contains("'yes': 'no'"), "{text}");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Note {
        status: Status,
        priority: Priority,
        title: String,
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    }

    impl TaskFrontmatter for Note {
        const TYPE: &'static str = "note";
    }

    #[test]
    fn typed_tasks_render_and_read_back() {
        let note = Note {
            status: Status::Pending,
            priority: Priority::High,
            title: "no".into(),
            tags: vec!["a: b".into()],
            size: None,
        };
        let text = render_task(&note, "Body\n");
        assert_eq!(
            text,
            "---\ntype: note\nstatus: pending\npriority: high\ntitle: 'no'\ntags:\n- 'a: b'\n---\nBody\n"
        );
        assert_eq!(parse_task::<Note>(&text), Ok((note, "Body\n".to_string())));
        assert_eq!(
            parse_task::<Note>("---\ntype: email\n---\n").err(),
            Some(FrontmatterError::WrongType {
                want: "note",
                found: "\"email\"".into()
            })
        );
        let e = parse_task::<Note>("---\ntype: note\nstatus: done\n---\n").err();
        assert!(
            matches!(&e, Some(FrontmatterError::Fields { kind: "note", error }) if error.contains("done")),
            "{e:?}"
        );
        assert_eq!(Priority::Normal, "normal");
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
