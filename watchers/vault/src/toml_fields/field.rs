//! One key and its value: where they are, what the value is.

use toml_edit::{Item, Key, TableLike, Value};

/// One key/value under validation: where it is and what messages call it.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The key's name in messages: `process[2].restart`, `supervisor.metrics`, `port`.
    pub path: String,
    pub key: Option<&'a Key>,
    pub item: &'a Item,
}

impl<'a> Field<'a> {
    pub fn new(path: String, key: Option<&'a Key>, item: &'a Item) -> Self {
        Field { path, key, item }
    }

    /// Every entry of `table`, in file order, named `path(key)` in messages.
    pub fn entries(
        table: &'a dyn TableLike,
        path: impl Fn(&str) -> String + 'a,
    ) -> impl Iterator<Item = (&'a str, Field<'a>)> + 'a {
        table
            .iter()
            .map(move |(name, item)| (name, Field::new(path(name), table.key(name), item)))
    }

    /// Offset of the value (or, for a `[table]`, of its key in the header).
    pub fn at(&self) -> usize {
        let value_span = match self.item {
            Item::Value(v) => v.span(),
            _ => None,
        };
        value_span
            .or_else(|| self.key.and_then(Key::span))
            .or_else(|| self.item.span())
            .map_or(0, |s| s.start)
    }

    /// Offset of the key itself (for unknown keys).
    pub fn key_at(&self) -> usize {
        self.key
            .and_then(Key::span)
            .map_or_else(|| self.at(), |s| s.start)
    }

    /// What the value is (for `found …`).
    pub fn kind(&self) -> Kind {
        Kind::of(self.item)
    }

    /// The value, unless the item is a `[table]`, an array of tables or nothing.
    pub fn value(&self) -> Option<&'a Value> {
        self.item.as_value()
    }

    /// The string value, or what the value is instead.
    pub fn str(&self) -> Result<&'a str, Kind> {
        match self.item {
            Item::Value(Value::String(s)) => Ok(s.value()),
            other => Err(Kind::of(other)),
        }
    }

    /// The integer value, or what the value is instead.
    pub fn integer(&self) -> Result<i64, Kind> {
        match self.item {
            Item::Value(Value::Integer(i)) => Ok(*i.value()),
            other => Err(Kind::of(other)),
        }
    }

    /// The boolean value, or what the value is instead.
    pub fn boolean(&self) -> Result<bool, Kind> {
        match self.item {
            Item::Value(Value::Boolean(b)) => Ok(*b.value()),
            other => Err(Kind::of(other)),
        }
    }
}

/// What a TOML item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nothing,
    String,
    Integer,
    Float,
    Boolean,
    Datetime,
    Array,
    /// A `[table]` or an inline `{ … }` table.
    Table,
    ArrayOfTables,
}

impl Kind {
    pub fn of(item: &Item) -> Kind {
        match item {
            Item::None => Kind::Nothing,
            Item::Value(v) => Kind::of_value(v),
            Item::Table(_) => Kind::Table,
            Item::ArrayOfTables(_) => Kind::ArrayOfTables,
        }
    }

    pub fn of_value(v: &Value) -> Kind {
        match v {
            Value::String(_) => Kind::String,
            Value::Integer(_) => Kind::Integer,
            Value::Float(_) => Kind::Float,
            Value::Boolean(_) => Kind::Boolean,
            Value::Datetime(_) => Kind::Datetime,
            Value::Array(_) => Kind::Array,
            Value::InlineTable(_) => Kind::Table,
        }
    }

    /// "a string", "an integer", "a date-time", … (the process table's words).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Nothing => "nothing",
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::Boolean => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array => "an array",
            Kind::Table => "a table",
            Kind::ArrayOfTables => "an array of tables",
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = 1 + text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count());
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::Document;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // after "bé = " (é is two bytes)
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn a_field_knows_where_its_key_and_value_are() {
        let text = "a = 1\n[t]\nb = \"x\"\n";
        let doc = Document::parse(text).expect("valid");
        let fields: Vec<_> = Field::entries(doc.as_table(), |k| format!("top.{k}")).collect();
        let (name, a) = &fields[0];
        assert_eq!((*name, a.path.as_str()), ("a", "top.a"));
        assert_eq!((a.key_at(), a.at()), (0, 4));
        assert_eq!((a.integer(), a.str()), (Ok(1), Err(Kind::Integer)));
        // A [table]'s value is where its header names it.
        let (_, t) = &fields[1];
        assert_eq!((t.at(), t.kind()), (7, Kind::Table));
        assert!(t.value().is_none());
    }

    #[test]
    fn kinds_in_words() {
        let doc =
            Document::parse("s = \"x\"\nf = 1.5\nd = 1979-05-27\na = []\ni = {}\n").expect("valid");
        let nouns: Vec<_> = doc
            .as_table()
            .iter()
            .map(|(_, item)| Kind::of(item).noun())
            .collect();
        assert_eq!(
            nouns,
            ["a string", "a float", "a date-time", "an array", "a table"]
        );
    }
}
