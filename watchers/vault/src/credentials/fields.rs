//! A credentials file read key by key: typed values, and every problem of the file, each
//! `file:line:column: message` in the credentials files' words (`` `port` must be an
//! integer, found a string ``).
//!
//! A reader returns `Err(Recorded)` for a value it could not use, after recording why;
//! the parser reads every key before it gives up, so all problems are reported at once.
//! One rule keeps that from repeating a mistake: a missing key is not reported when the
//! file has an unknown key, which is most likely the missing one, misspelt
//! ([`Fields::missing`], [`Fields::lacking`]).

use std::time::Duration;

use toml_edit::{Document, Table, Value};

use crate::toml_fields::{Diagnostic, Diagnostics, Field, Kind, Problems, Recorded, line_column};
use crate::units::parse_flag_duration;

/// The keys of one credentials file, being read.
pub struct Fields<'d> {
    table: &'d Table,
    problems: Problems,
    /// A key was unknown (see [`Fields::missing`]).
    unknown: bool,
}

impl<'d> Fields<'d> {
    /// Parse `text` (named `rel` in messages) and `read` it: its value, or every problem.
    /// A syntax error is the one problem reported (the parser stops there).
    pub fn read<T>(
        rel: &str,
        text: &str,
        read: impl FnOnce(&mut Fields<'_>) -> Result<T, Recorded>,
    ) -> Result<T, Diagnostics> {
        let doc = match Document::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
                let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(Diagnostics(vec![Diagnostic {
                    file: rel.to_string(),
                    line,
                    column,
                    message: format!("invalid TOML: {message}"),
                }]));
            }
        };
        let mut fields = Fields {
            table: doc.as_table(),
            problems: Problems::default(),
            unknown: false,
        };
        let value = read(&mut fields);
        fields.problems.finish(rel, text, value)
    }

    /// Whether the file sets `key`.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn field(&self, key: &str) -> Option<Field<'d>> {
        let (k, item) = self.table.get_key_value(key)?;
        Some(Field::new(key.to_string(), Some(k), item))
    }

    /// The value of `key`, unless it is absent or a `[table]`.
    pub fn value(&self, key: &str) -> Option<&'d Value> {
        self.field(key)?.value()
    }

    /// Record `message` at the value of `key` (or at the key, for a `[table]`).
    pub fn value_error(&mut self, key: &str, message: String) -> Recorded {
        let at = self.field(key).map_or(0, |f| f.at());
        self.problems.at(at, message)
    }

    /// Record `message` at `key` itself.
    pub fn key_error(&mut self, key: &str, message: String) -> Recorded {
        let at = self.field(key).map_or(0, |f| f.key_at());
        self.problems.at(at, message)
    }

    /// Record `message` (`missing `host``) for the file as a whole; left out when a key
    /// was unknown, since that key is most likely the missing one, misspelt.
    pub fn missing(&mut self, message: String) -> Recorded {
        match self.problems.any() {
            Some(recorded) if self.unknown => recorded,
            _ => self.problems.whole_file(message),
        }
    }

    /// Record `message` at `key`, which needs a key the file lacks (`` `username` is set
    /// but `password` is not ``); left out, like [`Fields::missing`], when a key was
    /// unknown.
    pub fn lacking(&mut self, key: &str, message: String) -> Recorded {
        match self.problems.any() {
            Some(recorded) if self.unknown => recorded,
            _ => self.key_error(key, message),
        }
    }

    /// Record `unknown key `x` (known: …)` at each key not in `known`.
    pub fn only_keys(&mut self, known: &[&str]) {
        self.unknown_keys(known, &|key| {
            format!("unknown key `{key}` (known: {})", known.join(", "))
        });
    }

    /// Record an unknown-key problem, `message(key)`, at each key not in `known`.
    pub fn unknown_keys(&mut self, known: &[&str], message: &dyn Fn(&str) -> String) {
        for (key, field) in Field::entries(self.table, str::to_string) {
            if !known.contains(&key) {
                self.problems.at(field.key_at(), message(key));
                self.unknown = true;
            }
        }
    }

    /// `` `key` must be {expected}, found … `` at the value of `key`.
    fn wrong_type(&mut self, field: &Field<'_>, expected: &str) -> Recorded {
        let found = match field.kind() {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a number",
            Kind::Boolean => "a boolean",
            Kind::Array => "a list",
            Kind::Datetime => "a date",
            Kind::Table | Kind::ArrayOfTables | Kind::Nothing => "a table",
        };
        let message = format!("`{}` must be {expected}, found {found}", field.path);
        self.problems.at(field.at(), message)
    }

    /// `key`'s value as `get` reads it (`Err` with its kind when it is not that type);
    /// `None` when the file does not set `key`.
    fn typed<T>(
        &mut self,
        key: &str,
        expected: &str,
        get: fn(&Field<'d>) -> Result<T, Kind>,
    ) -> Result<Option<T>, Recorded> {
        let Some(field) = self.field(key) else {
            return Ok(None);
        };
        match get(&field) {
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(self.wrong_type(&field, expected)),
        }
    }

    pub fn str(&mut self, key: &str) -> Result<Option<&'d str>, Recorded> {
        self.typed(key, "a string", Field::str)
    }

    /// A string the file must set (`missing `key`` otherwise).
    pub fn required_str(&mut self, key: &str) -> Result<&'d str, Recorded> {
        match self.str(key)? {
            Some(s) => Ok(s),
            None => Err(self.missing(format!("missing `{key}`"))),
        }
    }

    /// A string with more than white space in it (`` `key` is empty `` otherwise).
    pub fn nonblank(&mut self, key: &str) -> Result<Option<&'d str>, Recorded> {
        match self.str(key)? {
            Some(s) if s.trim().is_empty() => {
                Err(self.value_error(key, format!("`{key}` is empty")))
            }
            s => Ok(s),
        }
    }

    pub fn integer(&mut self, key: &str) -> Result<Option<i64>, Recorded> {
        self.typed(key, "an integer", Field::integer)
    }

    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>, Recorded> {
        self.typed(key, "true or false", Field::boolean)
    }

    /// A duration string, more than zero and at most ten years.
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, Recorded> {
        let Some(s) = self.str(key)? else {
            return Ok(None);
        };
        match parse_flag_duration(s) {
            Ok(d) if d.is_zero() => {
                Err(self.value_error(key, format!("`{key}` must be more than 0")))
            }
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(self.value_error(key, format!("`{key}`: {e}"))),
        }
    }

    /// One of `choices` by name (`default` when not set):
    /// `` `tls` must be "none", "starttls" or "tls", not "ssl" `` otherwise.
    pub fn choice<T: Copy>(
        &mut self,
        key: &str,
        choices: &[(&str, T)],
        default: &str,
    ) -> Result<T, Recorded> {
        let name = self.str(key)?.unwrap_or(default);
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == name) {
            return Ok(*v);
        }
        let quoted: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        let listed = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(self.value_error(key, format!("`{key}` must be {listed}, not {name:?}")))
    }

    /// `host`: a host name or address (`default` when not set; required without one).
    pub fn host(&mut self, default: Option<&'static str>) -> Result<&'d str, Recorded> {
        let host = match default {
            Some(d) => self.str("host")?.unwrap_or(d),
            None => self.required_str("host")?,
        };
        if host.trim().is_empty() || host.contains(char::is_whitespace) {
            return Err(self.value_error("host", "`host` must be a host name or address".into()));
        }
        Ok(host)
    }

    /// `port`: 1 to 65535 (`default` when not set).
    pub fn port(&mut self, default: u16) -> Result<u16, Recorded> {
        match self.integer("port")? {
            None => Ok(default),
            Some(p) => match u16::try_from(p) {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(self.value_error("port", format!("`port` must be 1 to 65535, not {p}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(
        text: &str,
        read: impl FnOnce(&mut Fields<'_>) -> Result<T, Recorded>,
    ) -> Result<T, String> {
        Fields::read("credentials/x.toml", text, read).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_values_and_absent_keys() {
        let got = read("s = \"x\"\ni = 5\nb = true\nd = \"1m\"\n", |f| {
            let s = f.str("s")?.map(str::to_string);
            Ok((
                s,
                f.integer("i")?,
                f.boolean("b")?,
                f.duration("d")?,
                f.has("absent"),
            ))
        });
        let minute = Some(Duration::from_secs(60));
        assert_eq!(
            got,
            Ok((Some("x".into()), Some(5), Some(true), minute, false))
        );
    }

    #[test]
    fn every_problem_at_once_in_source_order() {
        let text = "port = 0\nf = 1.5\nl = [1]\nt = 1979-05-27\n[x]\n";
        let got = read(text, |f| {
            let port = f.port(25);
            let strings = ["t", "l", "f", "x"].map(|k| f.str(k));
            port?;
            strings.into_iter().try_for_each(|s| s.map(drop))
        });
        assert_eq!(
            got.unwrap_err(),
            "credentials/x.toml:1:8: `port` must be 1 to 65535, not 0\n\
             credentials/x.toml:2:5: `f` must be a string, found a number\n\
             credentials/x.toml:3:5: `l` must be a string, found a list\n\
             credentials/x.toml:4:5: `t` must be a string, found a date\n\
             credentials/x.toml:5:2: `x` must be a string, found a table"
        );
    }

    #[test]
    fn a_missing_key_is_left_out_after_an_unknown_one() {
        let known = ["host", "port"];
        let unknown: &dyn Fn(&str) -> String = &|k| format!("unknown key `{k}`");
        let got = read("hots = \"h\"\n", |f| {
            f.unknown_keys(&known, unknown);
            f.host(None).map(drop)
        });
        assert_eq!(
            got.unwrap_err(),
            "credentials/x.toml:1:1: unknown key `hots`"
        );
        // Without an unknown key, the missing one is reported, with the other problems.
        let got = read("port = \"25\"\n", |f| {
            f.unknown_keys(&known, unknown);
            let port = f.port(25);
            f.host(None)?;
            port.map(drop)
        });
        assert_eq!(
            got.unwrap_err(),
            "credentials/x.toml: missing `host`\n\
             credentials/x.toml:1:8: `port` must be an integer, found a string"
        );
    }

    #[test]
    fn choices_hosts_and_durations() {
        let tls = [("none", 0), ("starttls", 1), ("tls", 2)];
        assert_eq!(read("", |f| f.choice("tls", &tls, "tls")), Ok(2));
        assert_eq!(
            read("tls = \"ssl\"\n", |f| f.choice("tls", &tls, "tls")).unwrap_err(),
            "credentials/x.toml:1:7: `tls` must be \"none\", \"starttls\" or \"tls\", not \"ssl\""
        );
        assert_eq!(
            read("host = \"a b\"\n", |f| f.host(Some("d")).map(drop)).unwrap_err(),
            "credentials/x.toml:1:8: `host` must be a host name or address"
        );
        assert_eq!(read("", |f| f.host(Some("d")).map(str::len)), Ok(1));
        assert_eq!(
            read("timeout = \"0s\"\n", |f| f.duration("timeout")).unwrap_err(),
            "credentials/x.toml:1:11: `timeout` must be more than 0"
        );
        assert_eq!(
            read("ca = \" \"\n", |f| f.nonblank("ca").map(drop)).unwrap_err(),
            "credentials/x.toml:1:6: `ca` is empty"
        );
    }

    #[test]
    fn a_syntax_error_is_the_one_problem() {
        assert_eq!(
            read("host = [\n", |_| Ok(())).unwrap_err(),
            "credentials/x.toml:1:9: invalid TOML: unclosed array, expected `]`"
        );
    }
}
