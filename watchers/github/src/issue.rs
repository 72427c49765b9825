//! A page of `GET /repos/{owner}/{repo}/issues`, untrusted: the JSON array → the issues
//! it lists. Each element is read on its own, so one that is not an issue (a field of
//! the wrong type, a missing number) is skipped with its reason instead of costing the
//! page. Pull requests (the `pull_request` key, whatever its value) are told apart here
//! and never become tasks.

use serde::Deserialize;

/// What the watcher keeps of an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    /// Empty when the issue has no text.
    pub body: String,
    /// The issue's page (`html_url`).
    pub url: String,
    /// The author's login, or empty.
    pub author: String,
    /// Label names, in the API's order.
    pub labels: Vec<String>,
    /// As GitHub wrote them (ISO 8601, UTC).
    pub created_at: String,
    pub updated_at: String,
    /// The element is a pull request (GitHub lists them as issues).
    pub pull_request: bool,
}

/// The issues of a page, and why some elements were not read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Page {
    pub issues: Vec<Issue>,
    /// One line per element that was not an issue.
    pub skipped: Vec<String>,
}

/// The reply is not a list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the reply is not JSON: {0}")]
    NotJson(String),
    #[error("the reply is not a list of issues but {0}")]
    NotAList(&'static str),
}

#[derive(Deserialize)]
struct Raw {
    number: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    labels: Vec<Label>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    login: Option<String>,
}

/// A label: an object with a `name` (what the API sends) or a plain string (what it
/// accepts on input, and what some proxies pass on).
#[derive(Deserialize)]
#[serde(untagged)]
enum Label {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
    },
}

/// Parse one page.
pub fn parse_page(bytes: &[u8]) -> Result<Page, PageError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| PageError::NotJson(e.to_string()))?;
    let serde_json::Value::Array(items) = value else {
        return Err(PageError::NotAList(kind(&value)));
    };
    let mut page = Page::default();
    for (i, item) in items.into_iter().enumerate() {
        let pull_request = item
            .as_object()
            .is_some_and(|o| o.contains_key("pull_request"));
        match serde_json::from_value::<Raw>(item) {
            Ok(raw) if raw.number == 0 => page
                .skipped
                .push(format!("element {i}: `number` is 0, not an issue number")),
            Ok(raw) => page.issues.push(Issue {
                number: raw.number,
                title: raw.title.unwrap_or_default(),
                body: raw.body.unwrap_or_default(),
                url: raw.html_url.unwrap_or_default(),
                author: raw.user.and_then(|u| u.login).unwrap_or_default(),
                labels: raw
                    .labels
                    .into_iter()
                    .filter_map(|l| match l {
                        Label::Name(n) => Some(n),
                        Label::Object { name } => name,
                    })
                    .collect(),
                created_at: raw.created_at.unwrap_or_default(),
                updated_at: raw.updated_at.unwrap_or_default(),
                pull_request,
            }),
            Err(e) => page.skipped.push(format!("element {i}: {e}")),
        }
    }
    Ok(page)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pull_requests_and_odd_elements() {
        let page = parse_page(
            br#"[
              {"number": 7, "title": "Crash: on start", "body": "It fails.\r\n---\n",
               "html_url": "https://github.com/o/r/issues/7", "user": {"login": "ana"},
               "labels": [{"name": "ai"}, {"id": 3}, "urgent"], "state": "open",
               "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T00:00:00Z",
               "extra": {"deep": [1, 2]}},
              {"number": 8, "title": "A PR", "pull_request": {"url": "x"}},
              {"number": 9, "body": null, "user": null, "pull_request": null},
              {"number": "ten"},
              {"title": "no number"},
              {"number": 0},
              3
            ]"#,
        )
        .expect("a list");
        assert_eq!(page.issues.len(), 3);
        let first = &page.issues[0];
        assert_eq!(first.number, 7);
        assert_eq!(first.title, "Crash: on start");
        assert_eq!(first.author, "ana");
        assert_eq!(first.labels, ["ai", "urgent"]);
        assert!(!first.pull_request);
        assert!(page.issues[1].pull_request);
        // A `pull_request` key is a pull request, whatever its value.
        assert!(page.issues[2].pull_request);
        assert_eq!(page.issues[2].body, "");
        assert_eq!(page.skipped.len(), 4, "{:?}", page.skipped);
        assert!(
            page.skipped[0].starts_with("element 3: "),
            "{:?}",
            page.skipped
        );
    }

    #[test]
    fn not_a_list() {
        assert_eq!(
            parse_page(br#"{"message": "Bad credentials"}"#),
            Err(PageError::NotAList("an object"))
        );
        assert!(matches!(parse_page(b"[1,"), Err(PageError::NotJson(_))));
        assert_eq!(parse_page(b"[]"), Ok(Page::default()));
    }
}
