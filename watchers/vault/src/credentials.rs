//! Reading the files in `credentials/`: typed fields with `file:line:column` errors, and
//! secrets that never print. Shared by every watcher that talks to the outside world.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Document, Item, Value};

use crate::nofollow::{Dir, How};
use crate::units::parse_flag_duration;

/// Open the file `path` of the vault's `credentials/` folder as `how` says. Nothing from
/// `credentials/` down (the folder, any folder below it, the file) is reached through a
/// symlink: a link there could make a parse error quote another file's line, or a token
/// refresh overwrite a file outside the vault. A path without a `credentials` folder is
/// opened without following its last component.
pub fn open_file(path: &Path, how: How) -> io::Result<File> {
    let (base, rel) = anchor(path);
    Dir::open(&base)?.file(rel, how)
}

/// The whole file `path` of `credentials/` as text (see [`open_file`]).
pub fn read_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    open_file(path, How::READ)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Replace the file `path` of `credentials/` atomically (see [`open_file`]); it keeps its
/// permission bits, a new file is `0600`.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (base, rel) = anchor(path);
    let root = Dir::open(&base)?;
    let (folder, name) = match (rel.parent(), rel.file_name()) {
        (Some(f), Some(n)) => (f, n),
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    let dir = if folder.as_os_str().is_empty() {
        root
    } else {
        root.open_dir(folder)?
    };
    dir.write_atomic(name, bytes, 0o600)
}

/// `path` split after the vault: (`<vault>`, `credentials/…`), or (its folder, its name).
fn anchor(path: &Path) -> (PathBuf, PathBuf) {
    let parts: Vec<_> = path.components().collect();
    if let Some(i) = parts.iter().rposition(|c| c.as_os_str() == "credentials")
        && i + 1 < parts.len()
    {
        let base: PathBuf = parts[..i].iter().collect();
        let rel: PathBuf = parts[i..].iter().collect();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        return (base, rel);
    }
    let base = crate::atomic::parent_dir(path).to_path_buf();
    let rel = path.file_name().map(PathBuf::from).unwrap_or_default();
    (base, rel)
}

/// A password or token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The host part of `scheme://[user@]host[:port]/…`.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A parsed TOML file and the helpers that turn its values into typed fields with
/// `file:line:column` errors.
pub struct Fields<'a> {
    pub rel: &'a str,
    pub text: &'a str,
    pub doc: Document<&'a str>,
}

impl<'a> Fields<'a> {
    pub fn parse(rel: &'a str, text: &'a str) -> Result<Self, String> {
        let doc = Document::parse(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| line_column(text, s.start));
            format!(
                "{rel}:{line}:{col}: invalid TOML: {}",
                e.message().split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })?;
        Ok(Fields { rel, text, doc })
    }

    pub fn has(&self, key: &str) -> bool {
        self.doc.get(key).is_some()
    }

    pub fn at(&self, offset: Option<usize>, message: String) -> String {
        let (line, col) = line_column(self.text, offset.unwrap_or(0));
        format!("{}:{line}:{col}: {message}", self.rel)
    }

    pub fn err_key(&self, key: &str, message: String) -> String {
        let offset = self
            .doc
            .as_table()
            .key(key)
            .and_then(|k| k.span())
            .map(|s| s.start);
        self.at(offset, message)
    }

    pub fn err_value(&self, key: &str, message: String) -> String {
        let offset = self
            .doc
            .get(key)
            .and_then(|i| i.as_value())
            .and_then(|v| v.span())
            .map(|s| s.start);
        match offset {
            Some(o) => self.at(Some(o), message),
            None => self.err_key(key, message),
        }
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.doc.get(key).and_then(Item::as_value)
    }

    pub fn wrong_type(&self, key: &str, expected: &str) -> String {
        let found = match self.doc.get(key) {
            Some(Item::Value(Value::String(_))) => "a string",
            Some(Item::Value(Value::Integer(_))) => "an integer",
            Some(Item::Value(Value::Float(_))) => "a number",
            Some(Item::Value(Value::Boolean(_))) => "a boolean",
            Some(Item::Value(Value::Array(_))) => "a list",
            Some(Item::Value(Value::Datetime(_))) => "a date",
            _ => "a table",
        };
        self.err_value(key, format!("`{key}` must be {expected}, found {found}"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, String> {
        match (self.doc.get(key), self.value(key)) {
            (None, _) => Ok(None),
            (_, Some(Value::String(s))) => Ok(Some(s.value())),
            _ => Err(self.wrong_type(key, "a string")),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<&str, String> {
        self.opt_str(key)?
            .ok_or_else(|| format!("{}: missing `{key}`", self.rel))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i64>, String> {
        match (self.doc.get(key), self.value(key)) {
            (None, _) => Ok(None),
            (_, Some(Value::Integer(i))) => Ok(Some(*i.value())),
            _ => Err(self.wrong_type(key, "an integer")),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match (self.doc.get(key), self.value(key)) {
            (None, _) => Ok(None),
            (_, Some(Value::Boolean(b))) => Ok(Some(*b.value())),
            _ => Err(self.wrong_type(key, "true or false")),
        }
    }

    pub fn opt_duration(&self, key: &str) -> Result<Option<Duration>, String> {
        let Some(s) = self.opt_str(key)? else {
            return Ok(None);
        };
        let d = parse_flag_duration(s).map_err(|e| self.err_value(key, format!("`{key}`: {e}")))?;
        if d.is_zero() {
            return Err(self.err_value(key, format!("`{key}` must be more than 0")));
        }
        Ok(Some(d))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = 1 + before.get(line_start..).map_or(0, |s| s.chars().count());
    (line, column)
}
