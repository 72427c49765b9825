//! `github_comment`: one comment on a GitHub issue,
//! `POST {base_url}/repos/{owner}/{repo}/issues/{n}/comments` with the token of
//! `credentials/github.toml`.
//!
//! Exactly once, even across a crash: every comment carries a marker, an HTML comment
//! naming the approval (`<!-- ai-employee approval TAG -->`, invisible on GitHub), and
//! every attempt first lists the issue's comments and looks for it. An attempt cut short
//! (the handler killed after its intent was recorded, a reply lost on the way back) is
//! therefore run again: it finds its marker and records the comment it names, or finds
//! none and posts. Nothing is posted unless the listing answered.
//!
//! Classification: no connection, HTTP 429, 5xx or a rate limit → transient (retried with
//! backoff, and the retry looks for the marker first); 401, 403, 404, 410, 422 →
//! permanent; a failure after the comment was sent → transient too, for the same reason.

use ai_employee_vault::github::{self, GithubCredentials};
use serde_json::json;

use super::{Action, Context, Creds, Outcome, Plan, Refused, rehearsal};
use crate::outcome::results;
use crate::request::GithubComment;

pub const NAME: &str = "github_comment";

/// The most pages of comments looked through for the marker (10,000 comments).
const MAX_PAGES: usize = 100;

/// The marker that names the approval `tag` in the comment's text.
pub fn marker(tag: &str) -> String {
    format!("<!-- ai-employee approval {tag} -->")
}

/// The comment's text as posted: the approved text, then the marker on its own line.
pub fn text_with_marker(body: &str, tag: &str) -> String {
    format!("{}\n\n{}", body.trim_end(), marker(tag))
}

/// `github_comment`: the comment, and `credentials/github.toml` as it was when the
/// attempt started.
pub struct PostComment {
    comment: GithubComment,
    creds: Creds<GithubCredentials>,
    /// What `prepare` accepted, for `perform`.
    ready: Option<(GithubCredentials, String)>,
}

impl PostComment {
    pub fn new(comment: GithubComment, creds: Creds<GithubCredentials>) -> PostComment {
        PostComment {
            comment,
            creds,
            ready: None,
        }
    }
}

impl Action for PostComment {
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        let Some(cfg) = self.creds.ready(NAME, cx.dry_run)? else {
            return Ok(rehearsal());
        };
        self.ready = Some((cfg.clone(), cx.tag.to_string()));
        Ok(Plan {
            // Looked for on GitHub by `perform` itself, so an interrupted attempt is run
            // again rather than reported as unknown.
            effect: Some(format!(
                "a comment marked {} on {}#{}",
                cx.tag, self.comment.repo, self.comment.issue
            )),
            message_id: None,
            rehearse: false,
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        match &self.ready {
            Some((cfg, tag)) => post(cfg, &self.comment, tag),
            None => super::unprepared(),
        }
    }

    fn result(&self) -> &'static str {
        results::SENT
    }

    fn finds_its_own_mark(&self) -> bool {
        true
    }
}

/// Look for the marker of `tag` on the issue; post the comment if it is not there.
pub fn post(cfg: &GithubCredentials, c: &GithubComment, tag: &str) -> Outcome {
    let agent = cfg.agent();
    let url = format!(
        "{}/issues/{}/comments",
        c.repo.api_url(&cfg.base_url),
        c.issue
    );
    let target = format!("{}#{}", c.repo, c.issue);
    match find_marker(&agent, cfg, &url, &marker(tag)) {
        Ok(Some((id, html))) => {
            return Outcome::Success {
                detail: format!(
                    "GitHub: the comment on {target} was already there (found by its marker): {html}"
                ),
                fields: fields(id, &html),
            };
        }
        Ok(None) => {}
        Err(o) => return o,
    }
    let body = json!({ "body": text_with_marker(&c.body, tag) }).to_string();
    let sent = agent
        .post(&url)
        .header("Authorization", &cfg.authorization())
        .header("Accept", github::ACCEPT)
        .header("X-GitHub-Api-Version", github::API_VERSION)
        .header("Content-Type", "application/json")
        .send(&body);
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => return classify_error(&cfg.base_url, &e),
    };
    let status = resp.status().as_u16();
    let text = ai_employee_vault::http::reply_text(&mut resp).unwrap_or_default();
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match status {
        200..=299 => {
            let id = reply.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
            let html = reply
                .get("html_url")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            Outcome::Success {
                detail: format!("GitHub: HTTP {status}, comment posted on {target} {html}"),
                fields: fields(id, &html),
            }
        }
        _ => refused(
            status,
            &reply,
            &text,
            &format!("GitHub refused the comment on {target}"),
        ),
    }
}

fn fields(id: u64, html: &str) -> Vec<(String, String)> {
    let mut f = Vec::new();
    if id > 0 {
        f.push(("github_comment_id".to_string(), id.to_string()));
    }
    if !html.is_empty() {
        f.push(("github_comment_url".to_string(), html.to_string()));
    }
    f
}

/// The comment of the issue (at `url`) that holds `mark`: its id and page, or `None`.
/// `Err`: the listing failed, so nothing may be posted now.
fn find_marker(
    agent: &ureq::Agent,
    cfg: &GithubCredentials,
    url: &str,
    mark: &str,
) -> Result<Option<(u64, String)>, Outcome> {
    let mut next = Some(format!("{url}?per_page=100"));
    let mut pages = 0;
    while let Some(page) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            tracing::warn!(
                "{url}: more than {MAX_PAGES} pages of comments; the marker was looked for in \
                 the first {MAX_PAGES}"
            );
            break;
        }
        let got = agent
            .get(&page)
            .header("Authorization", &cfg.authorization())
            .header("Accept", github::ACCEPT)
            .header("X-GitHub-Api-Version", github::API_VERSION)
            .call();
        let mut resp = match got {
            Ok(r) => r,
            // Nothing was posted: always worth another try.
            Err(e) => {
                return Err(Outcome::Transient(format!(
                    "GitHub API {}: looking for an earlier comment: {}",
                    cfg.base_url,
                    ai_employee_vault::http::error_text(&e)
                )));
            }
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let text = ai_employee_vault::http::reply_text(&mut resp).unwrap_or_default();
            let reply: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            return Err(refused(
                status,
                &reply,
                &text,
                "GitHub refused to list the issue's comments",
            ));
        }
        let link = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes =
            ai_employee_vault::http::reply_bytes(&mut resp, github::REPLY_LIMIT).map_err(|e| {
                Outcome::Transient(format!(
                    "GitHub API {}: reading the issue's comments: {}",
                    cfg.base_url,
                    ai_employee_vault::http::error_text(&e)
                ))
            })?;
        let comments: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| {
            Outcome::Transient(format!(
                "GitHub API {}: the issue's comments are not a JSON list: {e}",
                cfg.base_url
            ))
        })?;
        for c in &comments {
            if c.get("body")
                .and_then(|b| b.as_str())
                .is_some_and(|b| b.contains(mark))
            {
                let id = c.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
                let html = c
                    .get("html_url")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                return Ok(Some((id, html)));
            }
        }
        next = link
            .as_deref()
            .and_then(github::next_link)
            .filter(|n| github::same_origin(&cfg.base_url, n));
    }
    Ok(None)
}

/// An error status: 429, 5xx and rate limits may pass (transient); the rest will not.
fn refused(status: u16, reply: &serde_json::Value, text: &str, what: &str) -> Outcome {
    let msg = reply
        .get("message")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let said = if msg.is_empty() {
        String::new()
    } else {
        format!(": {msg}")
    };
    let limited = status == 403 && msg.to_lowercase().contains("rate limit");
    match status {
        429 | 500..=599 => Outcome::Transient(format!("{what}: HTTP {status}{said}")),
        _ if limited => Outcome::Transient(format!("{what}: HTTP {status}{said}")),
        _ => Outcome::Permanent(format!("{what}: HTTP {status}{said}")),
    }
}

fn classify_error(base: &str, e: &ureq::Error) -> Outcome {
    use std::io::ErrorKind;
    use ureq::{Error, Timeout};
    let text = format!(
        "GitHub API {base}: {}",
        ai_employee_vault::http::error_text(e)
    );
    let before_sending = match e {
        Error::HostNotFound | Error::ConnectionFailed => true,
        Error::Timeout(Timeout::Resolve | Timeout::Connect) => true,
        Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkDown
        ),
        _ => false,
    };
    if before_sending {
        Outcome::Transient(text)
    } else {
        // The comment may have been posted: the next attempt looks for its marker first.
        Outcome::Transient(format!(
            "{text} (the comment may have been posted; the next attempt looks for it first)"
        ))
    }
}
