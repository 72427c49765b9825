//! What an agent run answered. Claude Code's `--output-format json` prints one JSON object
//! (`{"type":"result","subtype":"success","is_error":false,"result":"…","session_id":"…",
//! "total_cost_usd":0.03,"num_turns":4,"usage":{…}}`); any other agent prints text. The
//! task's status is the last status line of the result text (see [`status_line`]).
//!
//! Everything here reads what the agent printed, which is untrusted: no input makes these
//! functions panic, and their cost is linear in the input's size.

use serde::Serialize;
use serde_json::{Map, Value};

/// What the run said, read from its standard output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    /// The output was Claude Code's JSON result.
    pub json: bool,
    /// `is_error` of the JSON result.
    pub is_error: bool,
    /// `result` of the JSON result (its `subtype`, such as `error_max_turns`, when it has
    /// no `result`), or the whole text output.
    pub text: String,
    /// `session_id` of the JSON result, only when it is safe to pass back as an argument
    /// (see [`session_id_is_safe`]).
    pub session_id: Option<String>,
    /// `total_cost_usd`, when a finite, non-negative number.
    pub cost_usd: Option<f64>,
    pub turns: Option<u32>,
    /// `usage`, kept as it came.
    pub usage: Option<serde_json::Value>,
    pub status: Status,
}

/// The status line the prompt asks the agent to end with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// `STATUS: done`
    Done,
    /// `STATUS: waiting for approval`
    WaitingApproval,
    /// `STATUS: failed: <reason>`
    Failed(String),
    /// No status line.
    #[default]
    Missing,
}

/// The longest failure reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The reason of `STATUS: failed` without one.
pub const NO_REASON: &str = "no reason given";

/// How many lines that start with `{`, counted from the end, are tried as the JSON result
/// (Claude Code prints it last; the bound keeps hostile output linear).
const MAX_JSON_CANDIDATES: usize = 16;

/// Read a run's standard output (at most the loop's cap of it).
///
/// Claude Code's JSON result is the whole output, or its last line that is a JSON object
/// with `"type":"result"` (or an `is_error` or `result` key), so other lines before it
/// (`--output-format stream-json`, a wrapper's messages) do not hide it. Any other output
/// is plain text, whose status line is read from the whole text.
pub fn parse_output(stdout: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(stdout);
    match find_result(&text) {
        Some(obj) => from_result(&obj),
        None => {
            let status = status_line(&text);
            Answer {
                text: text.into_owned(),
                status,
                ..Answer::default()
            }
        }
    }
}

/// The JSON result object in `text`, if there is one.
fn find_result(text: &str) -> Option<Map<String, Value>> {
    let whole = text.trim();
    if !whole.starts_with('{') {
        // Only a line of its own can be the result.
    } else if let Some(obj) = result_object(whole) {
        return Some(obj);
    }
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .take(MAX_JSON_CANDIDATES)
        .find_map(result_object)
}

fn result_object(candidate: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(candidate) {
        Ok(Value::Object(obj))
            if obj.get("type").and_then(Value::as_str) == Some("result")
                || obj.contains_key("is_error")
                || obj.contains_key("result") =>
        {
            Some(obj)
        }
        _ => None,
    }
}

fn from_result(obj: &Map<String, Value>) -> Answer {
    let text = match (obj.get("result"), obj.get("subtype")) {
        (Some(Value::String(r)), _) => r.clone(),
        (_, Some(Value::String(s))) if s != "success" => s.clone(),
        _ => String::new(),
    };
    let session_id = obj
        .get("session_id")
        .and_then(Value::as_str)
        .filter(|s| session_id_is_safe(s))
        .map(str::to_string);
    let cost_usd = obj
        .get("total_cost_usd")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0);
    let turns = obj
        .get("num_turns")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let usage = obj.get("usage").filter(|u| u.is_object()).cloned();
    let status = status_line(&text);
    Answer {
        json: true,
        is_error: obj.get("is_error").and_then(Value::as_bool) == Some(true),
        text,
        session_id,
        cost_usd,
        turns,
        usage,
        status,
    }
}

/// Whether a session id can be passed back to the agent (`--resume {session_id}`): 1 to
/// 128 ASCII letters, digits, `-` and `_`, starting with a letter or digit, so it can never
/// read as an option. Claude Code's are UUIDs.
pub fn session_id_is_safe(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The last status line of `text`.
///
/// A status line is `STATUS: done`, `STATUS: waiting for approval` (or
/// `waiting_approval`) or `STATUS: failed: <reason>`: the keyword in any case, Markdown
/// decoration around it ignored (`**STATUS:** done`, `` `STATUS: done` ``, `- STATUS:
/// done`, `## Status: Done.`), a trailing period dropped. A line inside a fenced code block
/// counts only when that block ends the text (an agent quoting its instructions in the
/// middle of its answer has not finished); anywhere else, the last status line wins. The
/// reason is trimmed, stripped of control characters and cut to [`MAX_REASON_CHARS`].
pub fn status_line(text: &str) -> Status {
    let trailing = trailing_block(text);
    let mut best = Status::Missing;
    let mut fences = Fences::default();
    for line in text.lines() {
        let trimmed = line.trim();
        if fences.step(trimmed) || (fences.block != 0 && fences.block != trailing) {
            continue;
        }
        if let Some(status) = parse_status(trimmed) {
            best = status;
        }
    }
    best
}

/// Which fenced code blocks a line is in, numbered from 1 in order; 0 outside any.
#[derive(Default)]
struct Fences {
    block: usize,
    seen: usize,
}

impl Fences {
    /// Take one trimmed line; true when it is a fence (opening or closing).
    fn step(&mut self, trimmed: &str) -> bool {
        if !(trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            return false;
        }
        if self.block == 0 {
            self.seen += 1;
            self.block = self.seen;
        } else {
            self.block = 0;
        }
        true
    }
}

/// The number of the fenced block that ends `text` (its last non-empty line is in it or
/// closes it), or 0.
fn trailing_block(text: &str) -> usize {
    let mut fences = Fences::default();
    let mut last = 0;
    for line in text.lines() {
        let trimmed = line.trim();
        let inside = fences.block;
        if fences.step(trimmed) {
            last = inside.max(fences.block);
        } else if !trimmed.is_empty() {
            last = fences.block;
        }
    }
    last
}

/// Markdown decoration that may stand around a status line's parts.
fn is_decoration(c: char) -> bool {
    matches!(c, '*' | '_' | '`' | '#' | '>' | '-' | '~') || c.is_whitespace()
}

/// One line read as a status line.
fn parse_status(line: &str) -> Option<Status> {
    let rest = line.trim_start_matches(is_decoration);
    let keyword = rest.get(..6)?;
    if !keyword.eq_ignore_ascii_case("status") {
        return None;
    }
    let rest = rest[6..]
        .trim_start_matches(is_decoration)
        .strip_prefix(':')?;
    let value = rest
        .trim_start_matches(is_decoration)
        .trim_end_matches(is_decoration);
    let value = value.strip_suffix('.').unwrap_or(value);
    let value = value.trim_end_matches(is_decoration);
    let words: Vec<String> = value
        .chars()
        .take(40)
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .take(3)
        .map(str::to_string)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["done", ..] => return Some(Status::Done),
        ["waiting", "for", "approval"] | ["waiting", "approval", ..] => {
            return Some(Status::WaitingApproval);
        }
        ["failed", ..] => {}
        _ => return None,
    }
    let failed = value.get(..6)?;
    if !failed.eq_ignore_ascii_case("failed") {
        return None;
    }
    let after = &value[6..];
    // `failed: reason`, `failed - reason`, `failed (reason)`, `failed`; not `failedx`.
    if after.chars().next().is_some_and(char::is_alphanumeric) {
        return None;
    }
    let reason = after.trim_start_matches(|c: char| is_decoration(c) || c == ':');
    Some(Status::Failed(clean_reason(reason)))
}

/// A reason as it is kept: control characters removed, trimmed, at most
/// [`MAX_REASON_CHARS`] characters.
fn clean_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS * 2)
        .collect();
    let cleaned: String = cleaned.trim().chars().take(MAX_REASON_CHARS).collect();
    let cleaned = cleaned.trim_end().to_string();
    if cleaned.is_empty() {
        NO_REASON.to_string()
    } else {
        cleaned
    }
}

/// What Claude Code says when it cannot run at all, lowercase (its bundled texts: not
/// logged in, a bad or revoked key or token, a login that expired, no credit, an
/// organization that disabled API keys).
const SETUP_PHRASES: &[&str] = &[
    "not logged in",
    "please run /login",
    "claude auth login",
    "invalid api key",
    "invalid auth token",
    "invalid x-api-key",
    "authentication_error",
    "authentication required",
    "failed to authenticate",
    "oauth token revoked",
    "oauth token has expired",
    "login expired",
    "login reached its time limit",
    "could not refresh your login",
    "credit balance is too low",
    "credit balance too low",
    "disabled api key authentication",
    "belongs to a disabled organization",
    "organization has been disabled",
];

/// How much of the end of a plain-text answer is searched for a set-up failure.
const SETUP_TAIL_BYTES: usize = 8 * 1024;

/// The longest set-up reason returned, in characters.
const MAX_SETUP_REASON_CHARS: usize = 300;

/// Whether a run that ended with `exit_code` and this answer (and this tail of its
/// standard error) shows that the agent cannot run at all (not logged in, no API key):
/// the one-line reason.
///
/// Only a run that failed (a non-zero or no exit code, or `is_error`) can need set-up;
/// its answer text (the end of it, for plain text) and then `stderr` are searched, line
/// by line, for Claude Code's set-up messages, and the first line that has one is the
/// reason (control characters removed, at most 300 characters). Claude Code 2.x with no
/// login answers exit 1 and `"is_error":true,"result":"Not logged in · Please run /login"`.
pub fn needs_setup(exit_code: Option<i32>, answer: &Answer, stderr: &str) -> Option<String> {
    if exit_code == Some(0) && !answer.is_error {
        return None;
    }
    let text = if answer.json {
        answer.text.as_str()
    } else {
        tail(&answer.text, SETUP_TAIL_BYTES)
    };
    let stderr = tail(stderr, SETUP_TAIL_BYTES);
    text.lines()
        .chain(stderr.lines())
        .find(|line| is_setup_line(line))
        .map(|line| {
            let cleaned: String = line
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_SETUP_REASON_CHARS + 1024)
                .collect();
            cleaned
                .trim()
                .chars()
                .take(MAX_SETUP_REASON_CHARS)
                .collect()
        })
}

fn is_setup_line(line: &str) -> bool {
    let lower = line.to_lowercase();
    SETUP_PHRASES.iter().any(|p| lower.contains(p))
}

/// The last `max` bytes of `s` (less, to stay on a character boundary).
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Claude Code 2.1 printed with no login (HOME empty), shortened.
    const NOT_LOGGED_IN: &str = r#"{"duration_api_ms":0,"stop_reason":"stop_sequence","session_id":"6d9a1209-222c-4bfc-8b1e-a02943d3ad11","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"modelUsage":{},"permission_denials":[],"terminal_reason":"api_error","is_error":true,"num_turns":1,"subtype":"success","api_error_status":null,"result":"Not logged in · Please run /login","type":"result","duration_ms":194}"#;

    fn result_json(result: &str) -> String {
        serde_json::json!({
            "type": "result", "subtype": "success", "is_error": false, "result": result,
            "session_id": "0b1c2d3e-0000-4000-8000-000000000001", "total_cost_usd": 0.0312,
            "num_turns": 4, "usage": {"input_tokens": 10, "output_tokens": 20},
        })
        .to_string()
    }

    #[test]
    fn claude_json_result_is_read() {
        let out = result_json("Plan written to Plans/x.md.\nSTATUS: done");
        let a = parse_output(out.as_bytes());
        assert!(a.json);
        assert!(!a.is_error);
        assert_eq!(a.text, "Plan written to Plans/x.md.\nSTATUS: done");
        assert_eq!(
            a.session_id.as_deref(),
            Some("0b1c2d3e-0000-4000-8000-000000000001")
        );
        assert_eq!(a.cost_usd, Some(0.0312));
        assert_eq!(a.turns, Some(4));
        assert_eq!(
            a.usage,
            Some(serde_json::json!({"input_tokens": 10, "output_tokens": 20}))
        );
        assert_eq!(a.status, Status::Done);
    }

    #[test]
    fn the_result_may_follow_other_lines_and_be_pretty_printed() {
        let out = format!(
            "npm warn something\n{{\"type\":\"system\",\"subtype\":\"init\"}}\n{}\n\n",
            result_json("STATUS: waiting for approval")
        );
        let a = parse_output(out.as_bytes());
        assert!(a.json);
        assert_eq!(a.status, Status::WaitingApproval);

        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<Value>(&result_json("STATUS: done")).unwrap(),
        )
        .unwrap();
        let a = parse_output(pretty.as_bytes());
        assert!(a.json);
        assert_eq!(a.status, Status::Done);
    }

    #[test]
    fn the_last_result_line_wins() {
        let out = format!(
            "{}\n{}\n",
            result_json("STATUS: done"),
            result_json("STATUS: failed: second")
        );
        assert_eq!(
            parse_output(out.as_bytes()).status,
            Status::Failed("second".into())
        );
    }

    #[test]
    fn not_logged_in_is_an_error_result() {
        let a = parse_output(format!("{NOT_LOGGED_IN}\n").as_bytes());
        assert!(a.json);
        assert!(a.is_error);
        assert_eq!(a.text, "Not logged in · Please run /login");
        assert_eq!(a.cost_usd, Some(0.0));
        assert_eq!(a.status, Status::Missing);
        assert_eq!(
            needs_setup(Some(1), &a, "").as_deref(),
            Some("Not logged in · Please run /login")
        );
    }

    #[test]
    fn an_error_result_without_result_text_keeps_its_subtype() {
        let out = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":30,"session_id":"abc"}"#;
        let a = parse_output(out.as_bytes());
        assert!(a.is_error);
        assert_eq!(a.text, "error_max_turns");
        assert_eq!(a.turns, Some(30));
        assert_eq!(a.status, Status::Missing);
        assert_eq!(needs_setup(Some(1), &a, ""), None);
    }

    #[test]
    fn plain_text_and_json_that_is_not_a_result_are_text() {
        let a = parse_output(b"did the thing\nSTATUS: done\n");
        assert!(!a.json);
        assert_eq!(a.text, "did the thing\nSTATUS: done\n");
        assert_eq!(a.status, Status::Done);

        let a = parse_output(b"{\"level\":\"info\",\"msg\":\"x\"}\nSTATUS: failed: no access\n");
        assert!(!a.json);
        assert_eq!(a.status, Status::Failed("no access".into()));

        // A JSON array, a number, a string: not a result.
        for out in ["[1,2]", "42", "\"STATUS: done\"", "{", "{}"] {
            let a = parse_output(out.as_bytes());
            assert!(!a.json, "{out}");
            assert_eq!(a.text, out);
        }
    }

    #[test]
    fn fields_of_the_wrong_type_or_range_are_dropped() {
        let out = r#"{"type":"result","is_error":"yes","result":42,"session_id":"--dangerously-skip-permissions","total_cost_usd":-1,"num_turns":99999999999,"usage":"lots"}"#;
        let a = parse_output(out.as_bytes());
        assert!(a.json);
        assert!(!a.is_error);
        assert_eq!(a.text, "");
        assert_eq!(a.session_id, None);
        assert_eq!(a.cost_usd, None);
        assert_eq!(a.turns, None);
        assert_eq!(a.usage, None);
    }

    #[test]
    fn session_ids_that_could_read_as_options_are_refused() {
        assert!(session_id_is_safe("6d9a1209-222c-4bfc-8b1e-a02943d3ad11"));
        assert!(session_id_is_safe("abc_DEF-1"));
        for bad in [
            "",
            "-x",
            "--resume",
            "a b",
            "a/b",
            "a\nb",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!session_id_is_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_read_lossily() {
        let mut out = b"\xff\xfe garbage \xc3\x28\n".to_vec();
        out.extend_from_slice(b"STATUS: failed: bad \xff bytes\n");
        let a = parse_output(&out);
        assert!(!a.json);
        assert_eq!(a.status, Status::Failed("bad \u{fffd} bytes".into()));

        // Inside the JSON result's string, invalid bytes are replaced, not fatal.
        let mut out = b"{\"type\":\"result\",\"is_error\":false,\"result\":\"ok \xff".to_vec();
        out.extend_from_slice(b"\\nSTATUS: done\"}");
        let a = parse_output(&out);
        assert!(a.json);
        assert_eq!(a.status, Status::Done);
    }

    #[test]
    fn deeply_nested_json_is_text_not_a_crash() {
        let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let a = parse_output(deep.as_bytes());
        assert!(!a.json);
        assert_eq!(a.status, Status::Missing);

        // A result whose usage nests deeper than the reader allows is not a result.
        let out = format!(
            r#"{{"type":"result","result":"STATUS: done","usage":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(!parse_output(out.as_bytes()).json);
        // The status line is still read from the text.
        assert_eq!(parse_output(out.as_bytes()).status, Status::Missing);
    }

    #[test]
    fn huge_lines_are_read_in_linear_time() {
        let start = std::time::Instant::now();
        // 8 MiB on one line, and 200,000 lines that start like JSON.
        let mut big = "x".repeat(8 << 20);
        big.push_str("\nSTATUS: done\n");
        assert_eq!(parse_output(big.as_bytes()).status, Status::Done);
        let many = "{\"a\":[\n1,\n".repeat(200_000);
        assert_eq!(parse_output(many.as_bytes()).status, Status::Missing);
        let reason = format!("STATUS: failed: {}", "r".repeat(1 << 20));
        match status_line(&reason) {
            Status::Failed(r) => assert_eq!(r.chars().count(), MAX_REASON_CHARS),
            other => panic!("{other:?}"),
        }
        // Generous: a quadratic reading of these inputs takes minutes.
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn status_forms() {
        let cases: &[(&str, Status)] = &[
            ("STATUS: done", Status::Done),
            ("status: DONE", Status::Done),
            ("Status:done.", Status::Done),
            ("**STATUS:** done", Status::Done),
            ("**STATUS: done**", Status::Done),
            ("`STATUS: done`", Status::Done),
            ("  - STATUS: done  ", Status::Done),
            ("## Status: Done.", Status::Done),
            ("> STATUS: done", Status::Done),
            ("STATUS: waiting for approval", Status::WaitingApproval),
            ("STATUS: waiting_approval", Status::WaitingApproval),
            ("**Status:** Waiting for approval.", Status::WaitingApproval),
            ("STATUS: WAITING-FOR-APPROVAL", Status::WaitingApproval),
            (
                "STATUS: failed: the invoice is missing",
                Status::Failed("the invoice is missing".into()),
            ),
            (
                "**STATUS:** failed: no SMTP settings.",
                Status::Failed("no SMTP settings".into()),
            ),
            ("STATUS: FAILED - timeout", Status::Failed("timeout".into())),
            ("STATUS: failed", Status::Failed(NO_REASON.into())),
            ("STATUS: failed:   ", Status::Failed(NO_REASON.into())),
            (
                "STATUS: failed: tab\there\u{1b}[31m red\u{7}",
                Status::Failed("tabhere[31m red".into()),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&status_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn lines_that_are_not_status_lines() {
        for line in [
            "STATUS: in progress",
            "STATUS done",
            "statuses: done",
            "The STATUS: done line comes last",
            "STATUS: donex",
            "STATUS: failedx",
            "STATUS: waiting",
            "STATUS:",
            "STATU",
            "ÉSTATUS: done",
            "",
        ] {
            assert_eq!(status_line(line), Status::Missing, "{line:?}");
        }
    }

    #[test]
    fn the_last_status_line_wins() {
        let text = "STATUS: failed: first try\nthen I fixed it\nSTATUS: done\nThanks!\n";
        assert_eq!(status_line(text), Status::Done);
        let text = "STATUS: done\nSTATUS: waiting for approval\n";
        assert_eq!(status_line(text), Status::WaitingApproval);
    }

    #[test]
    fn a_status_line_in_a_code_block_counts_only_at_the_end() {
        // Quoted in the middle (the agent repeating its instructions): not its status.
        let middle = "I was asked to end with:\n```\nSTATUS: done\n```\nbut I ran out of turns.\n";
        assert_eq!(status_line(middle), Status::Missing);
        // A real status line after the quote wins.
        let both = format!("{middle}STATUS: failed: out of turns\n");
        assert_eq!(status_line(&both), Status::Failed("out of turns".into()));
        // The block that ends the answer: its status line counts.
        let end = "All done.\n\n```text\nSTATUS: done\n```\n\n";
        assert_eq!(status_line(end), Status::Done);
        let unclosed = "All done.\n~~~\nSTATUS: waiting for approval\n";
        assert_eq!(status_line(unclosed), Status::WaitingApproval);
        // A status line before a quoted one in the middle still counts.
        let before = "STATUS: done\n```\nSTATUS: failed: example\n```\nmore text\n";
        assert_eq!(status_line(before), Status::Done);
    }

    #[test]
    fn setup_failures_are_recognised() {
        let json = |text: &str| Answer {
            json: true,
            is_error: true,
            text: text.into(),
            ..Answer::default()
        };
        let cases = [
            "Not logged in · Please run /login",
            "Invalid API key · Fix external API key",
            "API Error: 401 Invalid API key · Please run /login",
            "OAuth token revoked · Please run /login",
            "Login expired · Please run /login",
            "Credit balance is too low",
            "Your ANTHROPIC_API_KEY belongs to a disabled organization · Update or unset the environment variable",
            "Your organization has disabled API key authentication · Run /login to sign in with your claude.ai account",
            "Failed to authenticate. API Error: 401 {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}",
        ];
        for text in cases {
            assert_eq!(
                needs_setup(Some(1), &json(text), "").as_deref(),
                Some(text),
                "{text}"
            );
        }
        // On standard error, from a plain-text agent.
        let plain = parse_output(b"");
        assert_eq!(
            needs_setup(Some(1), &plain, "warming up\nError: Invalid API key\n").as_deref(),
            Some("Error: Invalid API key")
        );
        // Killed by a signal: no exit code, still classified.
        assert!(needs_setup(None, &plain, "Not logged in").is_some());
    }

    #[test]
    fn a_successful_run_or_an_ordinary_failure_is_not_setup() {
        // The answer talks about logging in, but the run succeeded.
        let ok = parse_output(
            result_json("Told the client: please run /login.\nSTATUS: done").as_bytes(),
        );
        assert_eq!(needs_setup(Some(0), &ok, ""), None);
        // Failed for another reason.
        let failed = Answer {
            json: true,
            is_error: true,
            text: "API Error: 529 Overloaded".into(),
            ..Answer::default()
        };
        assert_eq!(needs_setup(Some(1), &failed, "No conversation found"), None);
        assert_eq!(needs_setup(Some(2), &parse_output(b"crash"), "panic"), None);
    }

    #[test]
    fn setup_reasons_are_one_clean_bounded_line() {
        let text = format!("Not logged in\u{1b}[0m\r {}", "x".repeat(10_000));
        let a = Answer {
            json: true,
            is_error: true,
            text,
            ..Answer::default()
        };
        let reason = needs_setup(Some(1), &a, "").unwrap();
        assert!(reason.starts_with("Not logged in[0m x"));
        assert_eq!(reason.chars().count(), MAX_SETUP_REASON_CHARS);
        assert!(!reason.chars().any(char::is_control));
        // Only the tail of a long plain-text answer is searched, on a char boundary.
        let mut long = "é".repeat(SETUP_TAIL_BYTES);
        long.push_str("\nNot logged in\n");
        let a = parse_output(long.as_bytes());
        assert_eq!(
            needs_setup(Some(1), &a, "").as_deref(),
            Some("Not logged in")
        );
        let a = parse_output(format!("Not logged in\n{}", "é".repeat(SETUP_TAIL_BYTES)).as_bytes());
        assert_eq!(needs_setup(Some(1), &a, ""), None);
    }
}
