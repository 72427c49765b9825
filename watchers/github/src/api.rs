//! One conditional `GET` of a page of issues, and what its answer means: a page, "not
//! modified" (304, which costs no rate limit), a wait the rate limit asks for, a failure
//! worth retrying, or a set-up problem (the token refused, the repository not found).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_employee_vault::github::{self, GithubCredentials};

/// The longest wait a rate-limit header can ask for (a reset further away is capped).
const MAX_WAIT: Duration = Duration::from_secs(2 * 3600);
/// GitHub's advice for a secondary rate limit without `retry-after`: wait a minute.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// The rate-limit headers of an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub remaining: Option<u64>,
    /// When the window resets (`x-ratelimit-reset`, seconds since the epoch).
    pub reset: Option<u64>,
}

impl RateLimit {
    /// How long to wait before the next request: until the reset when nothing remains.
    pub fn wait(&self, now: SystemTime) -> Option<Duration> {
        if self.remaining != Some(0) {
            return None;
        }
        Some(until(self.reset?, now))
    }
}

/// `reset` (seconds since the epoch) from `now`, plus a second of margin, capped.
fn until(reset: u64, now: SystemTime) -> Duration {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(reset)
        .saturating_sub(now)
        .saturating_add(Duration::from_secs(1))
        .min(MAX_WAIT)
}

/// What came of a request.
#[derive(Debug)]
pub enum Answer {
    /// 304: the page is as it was (its stored ETag matched).
    NotModified(RateLimit),
    /// 200: the page's bytes, its ETag and the next page's URL.
    Page {
        bytes: Vec<u8>,
        etag: Option<String>,
        next: Option<String>,
        rate: RateLimit,
    },
}

/// Why a request gave no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The rate limit (403 or 429 with `retry-after` or no requests remaining, or
    /// GitHub's secondary limit): ask again after `wait`.
    #[error("{why}")]
    RateLimited { wait: Duration, why: String },
    /// The network or GitHub failed; worth trying again later.
    #[error("{0}")]
    Transient(String),
    /// The token or the repository needs a person (exit 78).
    #[error("{0}")]
    Setup(String),
}

/// The GitHub REST API, as the credentials describe it.
pub struct Api {
    agent: ureq::Agent,
    auth: String,
    base: String,
}

impl Api {
    pub fn new(creds: &GithubCredentials) -> Api {
        Api {
            agent: creds.agent(),
            auth: creds.authorization(),
            base: creds.base_url.clone(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET url`, conditional on `etag` when there is one.
    pub fn get(&self, url: &str, etag: Option<&str>) -> Result<Answer, Failure> {
        let mut req = self
            .agent
            .get(url)
            .header("Authorization", &self.auth)
            .header("Accept", github::ACCEPT)
            .header("X-GitHub-Api-Version", github::API_VERSION);
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        let mut resp = req.call().map_err(|e| {
            Failure::Transient(format!(
                "{}: {}",
                self.base,
                ai_employee_vault::http::error_text(&e)
            ))
        })?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let rate = RateLimit {
            remaining: number("x-ratelimit-remaining"),
            reset: number("x-ratelimit-reset"),
        };
        let retry_after = number("retry-after");
        let etag = header("etag");
        let link = header("link");
        let status = resp.status().as_u16();
        match status {
            304 => Ok(Answer::NotModified(rate)),
            200 => {
                let bytes = ai_employee_vault::http::reply_bytes(&mut resp, github::REPLY_LIMIT)
                    .map_err(|e| {
                        Failure::Transient(format!(
                            "{}: reading the reply: {}",
                            self.base,
                            ai_employee_vault::http::error_text(&e)
                        ))
                    })?;
                let next = link.as_deref().and_then(github::next_link);
                let next = match next {
                    Some(n) if github::same_origin(&self.base, &n) => Some(n),
                    Some(n) => {
                        return Err(Failure::Transient(format!(
                            "{}: the next page is on another server ({n}); not followed with \
                             the token",
                            self.base
                        )));
                    }
                    None => None,
                };
                Ok(Answer::Page {
                    bytes,
                    etag,
                    next,
                    rate,
                })
            }
            _ => {
                let text = ai_employee_vault::http::reply_text(&mut resp).unwrap_or_default();
                Err(classify(
                    status,
                    rate,
                    retry_after,
                    &message(&text),
                    SystemTime::now(),
                ))
            }
        }
    }
}

/// GitHub's `message` in an error reply, on one line (or the start of the body).
fn message(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let m = v
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What an error status means (GitHub's documented answers).
pub fn classify(
    status: u16,
    rate: RateLimit,
    retry_after: Option<u64>,
    message: &str,
    now: SystemTime,
) -> Failure {
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    let limited = |wait: Duration| Failure::RateLimited {
        wait: wait.min(MAX_WAIT),
        why: format!("HTTP {status}{said}"),
    };
    match status {
        403 | 429 if retry_after.is_some() => {
            limited(Duration::from_secs(retry_after.unwrap_or_default()))
        }
        403 | 429 if rate.remaining == Some(0) => {
            limited(rate.reset.map_or(SECONDARY_WAIT, |r| until(r, now)))
        }
        429 => limited(SECONDARY_WAIT),
        403 if message.to_lowercase().contains("rate limit") => limited(SECONDARY_WAIT),
        401 => Failure::Setup(format!(
            "GitHub refused the token (HTTP 401{said}): put a valid token in {}",
            github::CREDENTIALS_FILE
        )),
        403 => Failure::Setup(format!(
            "GitHub refused access (HTTP 403{said}): the token needs Issues: read (and write, \
             for replies) on the repository"
        )),
        404 | 410 => Failure::Setup(format!(
            "GitHub answered HTTP {status}{said}: no such repository, issues are turned off, \
             or the token cannot see it"
        )),
        422 => Failure::Setup(format!("GitHub refused the query (HTTP 422{said})")),
        _ => Failure::Transient(format!("GitHub answered HTTP {status}{said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let none = RateLimit::default();
        let spent = RateLimit {
            remaining: Some(0),
            reset: Some(1010),
        };
        assert_eq!(spent.wait(now), Some(Duration::from_secs(11)));
        assert_eq!(none.wait(now), None);
        let wait = |f: Failure| match f {
            Failure::RateLimited { wait, .. } => Some(wait),
            _ => None,
        };
        assert_eq!(
            wait(classify(403, spent, None, "API rate limit exceeded", now)),
            Some(Duration::from_secs(11))
        );
        assert_eq!(
            wait(classify(429, none, Some(3), "", now)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            wait(classify(
                403,
                none,
                None,
                "You have exceeded a secondary rate limit",
                now
            )),
            Some(SECONDARY_WAIT)
        );
        assert_eq!(
            wait(classify(
                403,
                RateLimit {
                    remaining: Some(0),
                    reset: Some(u64::MAX)
                },
                None,
                "",
                now
            )),
            Some(MAX_WAIT)
        );
        assert!(
            matches!(classify(401, none, None, "Bad credentials", now), Failure::Setup(m) if m.contains("HTTP 401: Bad credentials"))
        );
        assert!(matches!(
            classify(403, none, None, "Resource not accessible", now),
            Failure::Setup(_)
        ));
        assert!(matches!(
            classify(404, none, None, "Not Found", now),
            Failure::Setup(_)
        ));
        assert!(
            matches!(classify(502, none, None, "", now), Failure::Transient(m) if m == "GitHub answered HTTP 502")
        );
        assert_eq!(
            message("{\"message\": \"Bad\\n  credentials\"}"),
            "Bad credentials"
        );
        assert_eq!(message("<html>oops</html>"), "<html>oops</html>");
    }
}
