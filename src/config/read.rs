//! Typed readers of the table's values. Each returns the value, or records the problem in
//! the table's words (`process[2].restart: expected one of …, found "sometimes"`) and
//! returns `None`; reading goes on, so every problem of a table is reported at once.
//!
//! Message style: lowercase, names the field path (`process[2].restart`, counting
//! `[[process]]` entries from 1), says what was expected and what was found, and suggests
//! the fix when there is an obvious one.

use std::time::Duration;

use ai_employee_vault::toml_fields::{Field, Problems, did_you_mean};
use ai_employee_vault::units::{
    MAX_DURATION, format_duration, format_size, parse_duration, parse_size,
};
use toml_edit::{Item, TableLike, Value};

use super::MAX_SIZE;

/// `log_max_size` below this would rotate on almost every line.
const MIN_LOG_SIZE: u64 = 1024;
const MAX_LOG_FILES: i64 = 100;

/// The problems of one table, and the readers that record them.
pub(super) struct Checker<'t> {
    /// The table's text, for a line named inside a message ("first defined at line 3").
    pub text: &'t str,
    pub problems: Problems,
}

impl Checker<'_> {
    pub fn error(&mut self, at: usize, message: String) {
        self.problems.at(at, message);
    }

    /// Record `message` at `at`: the value cannot be used.
    pub fn reject<T>(&mut self, at: usize, message: String) -> Option<T> {
        self.error(at, message);
        None
    }

    /// `path: expected …, found …` at the value.
    pub fn type_error<T>(&mut self, field: &Field<'_>, expected: &str) -> Option<T> {
        let found = field.kind().noun();
        self.reject(
            field.at(),
            format!("{}: expected {expected}, found {found}", field.path),
        )
    }

    pub fn table<'f>(&mut self, field: &Field<'f>) -> Option<&'f dyn TableLike> {
        match field.item.as_table_like() {
            Some(t) => Some(t),
            None => self.type_error(field, "a table"),
        }
    }

    pub fn string<'f>(&mut self, field: &Field<'f>) -> Option<&'f str> {
        match field.item {
            Item::Value(Value::String(s)) => Some(s.value()),
            Item::Value(v) => {
                let (found, hint) = (field.kind().noun(), quote_hint(v));
                self.reject(
                    field.at(),
                    format!("{}: expected a string, found {found}{hint}", field.path),
                )
            }
            _ => self.type_error(field, "a string"),
        }
    }

    /// `s` (the field's value) has no NUL: a path or argument cannot hold one.
    pub fn no_nul(&mut self, field: &Field<'_>, s: &str) -> bool {
        let ok = !s.contains('\0');
        if !ok {
            self.error(
                field.at(),
                format!("{}: must not contain a NUL character", field.path),
            );
        }
        ok
    }

    pub fn boolean(&mut self, field: &Field<'_>) -> Option<bool> {
        match field.item {
            Item::Value(Value::Boolean(b)) => Some(*b.value()),
            Item::Value(Value::String(s)) if matches!(s.value().as_str(), "true" | "false") => {
                self.quoted(field, "a boolean", s.value())
            }
            _ => self.type_error(field, "a boolean (true or false)"),
        }
    }

    pub fn integer(&mut self, field: &Field<'_>) -> Option<i64> {
        match field.item {
            Item::Value(Value::Integer(i)) => Some(*i.value()),
            Item::Value(Value::String(s)) if s.value().parse::<i64>().is_ok() => {
                self.quoted(field, "an integer", s.value())
            }
            _ => self.type_error(field, "an integer"),
        }
    }

    /// `enabled = "false"`: the right value, in quotes.
    fn quoted<T>(&mut self, field: &Field<'_>, expected: &str, text: &str) -> Option<T> {
        self.reject(
            field.at(),
            format!(
                "{}: expected {expected}, found a string (remove the quotes: {text})",
                field.path
            ),
        )
    }

    /// An integer from `low` to `high`.
    pub fn integer_in(&mut self, field: &Field<'_>, low: i64, high: i64) -> Option<i64> {
        let n = self.integer(field)?;
        self.in_range(field, n, low, high)
    }

    /// `x` (the field's value) if it is from `low` to `high`.
    fn in_range<T: PartialOrd + std::fmt::Display>(
        &mut self,
        field: &Field<'_>,
        x: T,
        low: T,
        high: T,
    ) -> Option<T> {
        if low <= x && x <= high {
            return Some(x);
        }
        self.reject(
            field.at(),
            format!(
                "{}: must be between {low} and {high}, found {x}",
                field.path
            ),
        )
    }

    /// A choice among fixed strings, with a suggestion for a near miss.
    pub fn choice(&mut self, field: &Field<'_>, values: &[&'static str]) -> Option<&'static str> {
        let s = self.string(field)?;
        if let Some(v) = values.iter().find(|v| **v == s) {
            return Some(v);
        }
        let (expected, hint) = (one_of(values), did_you_mean(s, values, &[]));
        self.reject(
            field.at(),
            format!(
                "{}: expected one of {expected}, found {s:?}{hint}",
                field.path
            ),
        )
    }

    /// A duration string, at most [`MAX_DURATION`].
    pub fn duration(&mut self, field: &Field<'_>) -> Option<Duration> {
        let problem = match field.item {
            Item::Value(Value::String(s)) => match parse_duration(s.value()) {
                Ok(d) if d <= MAX_DURATION => return Some(d),
                Ok(_) => format!(
                    "must be at most {:?} (ten years), found {:?}",
                    format_duration(MAX_DURATION),
                    s.value()
                ),
                Err(e) => e.to_string(),
            },
            Item::Value(Value::Integer(i)) => {
                let n = i.value();
                format!(
                    "expected a duration string, found an integer (write \"{n}s\" for {n} seconds)"
                )
            }
            _ => return self.type_error(field, "a duration string such as \"30s\""),
        };
        self.reject(field.at(), format!("{}: {problem}", field.path))
    }

    pub fn positive_duration(&mut self, field: &Field<'_>) -> Option<Duration> {
        match self.duration(field)? {
            d if d.is_zero() => self.greater_than_zero(field),
            d => Some(d),
        }
    }

    /// `path: must be greater than zero`.
    pub fn greater_than_zero<T>(&mut self, field: &Field<'_>) -> Option<T> {
        self.reject(
            field.at(),
            format!("{}: must be greater than zero", field.path),
        )
    }

    /// A size: a string with a unit, or an integer number of bytes; at most [`MAX_SIZE`].
    pub fn size(&mut self, field: &Field<'_>) -> Option<u64> {
        let (n, found) = match field.item {
            Item::Value(Value::String(s)) => match parse_size(s.value()) {
                Ok(n) => (n, format!("{:?}", s.value())),
                Err(e) => return self.reject(field.at(), format!("{}: {e}", field.path)),
            },
            Item::Value(Value::Integer(i)) => match u64::try_from(*i.value()) {
                Ok(n) => (n, n.to_string()),
                Err(_) => {
                    let problem = format!("{}: must not be negative, found {i}", field.path);
                    return self.reject(field.at(), problem);
                }
            },
            _ => return self.type_error(field, "a size such as \"10MiB\""),
        };
        if n <= MAX_SIZE {
            return Some(n);
        }
        let max = format_size(MAX_SIZE);
        self.reject(
            field.at(),
            format!("{}: must be at most {max:?}, found {found}", field.path),
        )
    }

    /// `log_max_size`: a size of at least 1 KiB.
    pub fn log_size(&mut self, field: &Field<'_>) -> Option<u64> {
        let n = self.size(field)?;
        if n >= MIN_LOG_SIZE {
            return Some(n);
        }
        let (min, found) = (format_size(MIN_LOG_SIZE), format_size(n));
        self.reject(
            field.at(),
            format!("{}: must be at least {min}, found {found}", field.path),
        )
    }

    /// `log_max_files`: 1 to 100.
    pub fn log_files(&mut self, field: &Field<'_>) -> Option<u32> {
        let n = self.integer_in(field, 1, MAX_LOG_FILES)?;
        u32::try_from(n).ok()
    }

    /// A number: a float or an integer (`factor = 2` is `2.0`).
    pub fn number(&mut self, field: &Field<'_>) -> Option<f64> {
        match field.item {
            Item::Value(Value::Float(f)) => Some(*f.value()),
            Item::Value(Value::Integer(i)) => Some(*i.value() as f64),
            _ => self.type_error(field, "a number"),
        }
    }

    /// A number from `low` to `high` (NaN is outside every range).
    pub fn number_in(&mut self, field: &Field<'_>, low: f64, high: f64) -> Option<f64> {
        let x = self.number(field)?;
        self.in_range(field, x, low, high)
    }

    /// An array of strings without NUL (`args = ["watch", "gmail"]`).
    pub fn string_list(&mut self, field: &Field<'_>) -> Option<Vec<String>> {
        self.list(field, "an array of strings", |c, f| {
            let s = c.string(f)?;
            c.no_nul(f, s).then(|| s.to_string())
        })
    }

    /// An array whose elements `element` reads, each named `path[n]` (counting from 1);
    /// `expected` names the array in the message for anything else (`an array of
    /// strings`). Every element is read, so every bad one is reported.
    pub fn list<T>(
        &mut self,
        field: &Field<'_>,
        expected: &str,
        mut element: impl FnMut(&mut Self, &Field<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let array = match field.item {
            Item::Value(Value::Array(a)) => a,
            Item::Value(Value::String(s)) => {
                let words: Vec<&str> = s.value().split_whitespace().collect();
                let (key, words) = (field.key.map_or("", |k| k.get()), one_of(&words));
                let problem = format!(
                    "{}: expected {expected}, found a string (write {key} = [{words}])",
                    field.path
                );
                return self.reject(field.at(), problem);
            }
            _ => return self.type_error(field, expected),
        };
        let mut list = Vec::new();
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            // A copy keeps the value's span, so the element's problems point at it.
            let item = Item::Value(v.clone());
            let f = Field::new(format!("{}[{}]", field.path, i + 1), None, &item);
            match element(self, &f) {
                Some(x) => list.push(x),
                None => ok = false,
            }
        }
        ok.then_some(list)
    }
}

/// For a number or boolean where a string was expected: ` (put it in quotes: "8080")`.
pub(super) fn quote_hint(v: &Value) -> String {
    let text = match v {
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        _ => return String::new(),
    };
    format!(" (put it in quotes: \"{text}\")")
}

/// `"always", "on-failure", "never"`
pub(super) fn one_of(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::Document;

    /// `read` applied to the value of `v` in `text`: what it returns, and the problems
    /// it recorded (`line:column: message`).
    fn read<T>(
        text: &str,
        read: impl FnOnce(&mut Checker<'_>, &Field<'_>) -> Option<T>,
    ) -> (Option<T>, String) {
        let doc = Document::parse(text).expect("valid TOML");
        let table = doc.as_table();
        let (key, item) = table.get_key_value("v").expect("a key v");
        let field = Field::new("t.v".to_string(), Some(key), item);
        let mut c = Checker {
            text,
            problems: Problems::default(),
        };
        let value = read(&mut c, &field);
        let problems = match c.problems.finish("f", text, Ok(())) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        (value, problems)
    }

    #[test]
    fn a_value_or_a_recorded_problem() {
        assert_eq!(
            read("v = 7", |c, f| c.integer_in(f, 1, 9)),
            (Some(7), String::new())
        );
        assert_eq!(
            read("v = 10", |c, f| c.integer_in(f, 1, 9)),
            (
                None,
                "f:1:5: t.v: must be between 1 and 9, found 10".to_string()
            )
        );
        assert_eq!(
            read("v = \"7\"", |c, f| c.integer(f)),
            (
                None,
                "f:1:5: t.v: expected an integer, found a string (remove the quotes: 7)".into()
            )
        );
        assert_eq!(
            read("v = [1]", |c, f| c.boolean(f)).1,
            "f:1:5: t.v: expected a boolean (true or false), found an array"
        );
        assert_eq!(
            read("v = \"al\"", |c, f| c.choice(f, &["all", "none"])).1,
            "f:1:5: t.v: expected one of \"all\", \"none\", found \"al\" (did you mean \"all\"?)"
        );
    }

    #[test]
    fn durations_and_sizes_have_a_ceiling() {
        assert_eq!(
            read("v = \"3650d\"", |c, f| c.duration(f)).0,
            Some(MAX_DURATION)
        );
        assert_eq!(
            read("v = \"3651d\"", |c, f| c.duration(f)).1,
            "f:1:5: t.v: must be at most \"3650d\" (ten years), found \"3651d\""
        );
        assert_eq!(
            read("v = 2199023255553", |c, f| c.size(f)).1,
            "f:1:5: t.v: must be at most \"1TiB\", found 2199023255553"
        );
        assert_eq!(read("v = \"1KiB\"", |c, f| c.log_size(f)).0, Some(1024));
    }

    #[test]
    fn a_list_written_as_one_string_is_shown_as_a_list_under_its_own_key() {
        assert_eq!(
            read("v = \"watch gmail\"", |c, f| c.string_list(f)).1,
            "f:1:5: t.v: expected an array of strings, found a string (write v = [\"watch\", \
             \"gmail\"])"
        );
        assert_eq!(
            read("v = [\"a\", 1, \"b\"]", |c, f| c.string_list(f)).1,
            "f:1:11: t.v[2]: expected a string, found an integer (put it in quotes: \"1\")"
        );
    }
}
