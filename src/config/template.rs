//! The argument templates of `[agent]` (`command`, `resume`, `verify`): `{name}` is a
//! placeholder replaced inside the argument, `{{` and `}}` are literal braces, any other
//! brace is an error. The table's reader checks every argument with [`parse`]; the task
//! loop fills them in with [`render`].

/// A value the task loop puts into an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{prompt}`: the rendered prompt.
    Prompt,
    /// `{task}`: the task's id (its file stem).
    Task,
    /// `{task_file}`: the vault-relative path of the task file in `In_Progress/`.
    TaskFile,
    /// `{vault}`: the vault's absolute path.
    Vault,
    /// `{session_id}`: the agent session to continue (in `resume` only).
    SessionId,
}

impl Placeholder {
    pub const ALL: [Placeholder; 5] = [
        Placeholder::Prompt,
        Placeholder::Task,
        Placeholder::TaskFile,
        Placeholder::Vault,
        Placeholder::SessionId,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Prompt => "prompt",
            Placeholder::Task => "task",
            Placeholder::TaskFile => "task_file",
            Placeholder::Vault => "vault",
            Placeholder::SessionId => "session_id",
        }
    }

    pub fn parse(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One part of an argument: text as it is passed, or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Placeholder(Placeholder),
}

/// Why an argument is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{word}` where `word` names no placeholder.
    #[error("unknown placeholder {{{0}}}")]
    Unknown(String),
    /// `{` with no `}` after it.
    #[error("unclosed '{{' (write {{{{ for a literal brace)")]
    Unclosed,
    /// `}` that closes nothing.
    #[error("unmatched '}}' (write }}}} for a literal brace)")]
    Unmatched,
    /// `{…}` holding something other than a name (`{"a": 1}`).
    #[error("{{{0}}} is not a placeholder (write {{{{ and }}}} for literal braces)")]
    NotAName(String),
}

/// The pieces of `arg`, in order; `{{` and `}}` become `Text("{")` and `Text("}")`.
pub fn parse(arg: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        if i > 0 {
            pieces.push(Piece::Text(&rest[..i]));
        }
        let (brace, after) = (&rest[i..=i], &rest[i + 1..]);
        if after.starts_with(brace) {
            pieces.push(Piece::Text(brace));
            rest = &after[1..];
            continue;
        }
        if brace == "}" {
            return Err(TemplateError::Unmatched);
        }
        let Some(end) = after.find('}') else {
            return Err(TemplateError::Unclosed);
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError::NotAName(name.to_string()));
        }
        match Placeholder::parse(name) {
            Some(p) => pieces.push(Piece::Placeholder(p)),
            None => return Err(TemplateError::Unknown(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// `arg` with every placeholder replaced by `value(placeholder)`.
pub fn render<'v>(
    arg: &str,
    value: impl Fn(Placeholder) -> &'v str,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(arg.len());
    for piece in parse(arg)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Placeholder(p) => out.push_str(value(p)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_text_and_escaped_braces() {
        use Piece::{Placeholder as P, Text as T};
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(
            parse("--file={task_file}"),
            Ok(vec![T("--file="), P(Placeholder::TaskFile)])
        );
        assert_eq!(
            parse("{vault}{task}"),
            Ok(vec![P(Placeholder::Vault), P(Placeholder::Task)])
        );
        assert_eq!(
            parse("{{\"a\": 1}}"),
            Ok(vec![T("{"), T("\"a\": 1"), T("}")])
        );
        assert_eq!(
            parse("{{{session_id}}}"),
            Ok(vec![T("{"), P(Placeholder::SessionId), T("}")])
        );
    }

    #[test]
    fn any_other_brace_is_an_error() {
        let err = |s| parse(s).unwrap_err();
        assert_eq!(err("{promt}"), TemplateError::Unknown("promt".into()));
        assert_eq!(err("{Prompt}"), TemplateError::Unknown("Prompt".into()));
        assert_eq!(err("a{prompt"), TemplateError::Unclosed);
        assert_eq!(err("a}b"), TemplateError::Unmatched);
        assert_eq!(err("{prompt}}"), TemplateError::Unmatched);
        assert_eq!(err("{}"), TemplateError::NotAName(String::new()));
        assert_eq!(
            err("{\"a\": 1}"),
            TemplateError::NotAName("\"a\": 1".into())
        );
        assert_eq!(err("{ task }"), TemplateError::NotAName(" task ".into()));
        assert_eq!(
            TemplateError::Unknown("x".into()).to_string(),
            "unknown placeholder {x}"
        );
        assert_eq!(
            TemplateError::NotAName("".into()).to_string(),
            "{} is not a placeholder (write {{ and }} for literal braces)"
        );
    }

    #[test]
    fn render_fills_in_every_placeholder() {
        let value = |p: Placeholder| match p {
            Placeholder::Prompt => "do {it}",
            Placeholder::Task => "EMAIL_1",
            _ => "?",
        };
        assert_eq!(
            render("{task}: {prompt} {{x}}", value).as_deref(),
            Ok("EMAIL_1: do {it} {x}")
        );
        assert_eq!(render("{", value), Err(TemplateError::Unclosed));
    }
}
