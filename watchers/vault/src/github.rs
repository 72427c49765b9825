//! What the GitHub issues watcher and the approval handler's `github_comment` share:
//! `credentials/github.toml` (the token, the API's base URL, the timeout), repository
//! names (`OWNER/NAME`) and the pagination `Link` header of the GitHub REST API.

use std::path::Path;
use std::time::Duration;

use crate::credentials::{self, Fields, Guide, LoadError, Secret, host_of, is_loopback};
use crate::toml_fields::{Diagnostics, Recorded};

/// The credentials file, relative to the vault.
pub const CREDENTIALS_FILE: &str = "credentials/github.toml";
/// GitHub's REST API (github.com); GitHub Enterprise Server is `https://HOST/api/v3`.
pub const DEFAULT_BASE_URL: &str = "https://api.github.com";
/// The REST API version both sides ask for (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";
/// `Accept` of every request.
pub const ACCEPT: &str = "application/vnd.github+json";
/// The largest reply either side reads: a page of 100 issues or comments of GitHub's
/// longest text (65,536 characters), escaped.
pub const REPLY_LIMIT: u64 = 32 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The keys of `credentials/github.toml`.
const KEYS: &[&str] = &["token", "base_url", "timeout"];

/// `credentials/github.toml`.
#[derive(Debug, Clone)]
pub struct GithubCredentials {
    /// A fine-grained personal access token (Issues: read and write on the repository).
    pub token: Secret,
    /// The REST API's root, without a trailing `/`.
    pub base_url: String,
    /// The longest one request may take.
    pub timeout: Duration,
}

impl GithubCredentials {
    /// `Authorization`'s value.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.token.expose())
    }

    /// A client for this API: no redirects (they could carry the token elsewhere), the
    /// timeout for each call.
    pub fn agent(&self) -> ureq::Agent {
        crate::http::client(self.timeout)
            .timeout_connect(Some((self.timeout / 2).min(Duration::from_secs(10))))
            .build()
            .into()
    }
}

/// What the watcher says when the file is missing, unreadable or invalid (exit 78).
const GUIDE: Guide = Guide {
    create: "with `token = \"github_pat_…\"` (a fine-grained token with Issues: read and write on the repository; see docs/github.md), or run: ai-employee setup github",
    unreadable: " (see docs/github.md)",
    invalid: " (see docs/github.md)",
};

/// Read `credentials/github.toml` from `vault` (never through a link), warning when other
/// users can read it. The error is the reason for exit 78.
pub fn load(vault: &Path) -> Result<GithubCredentials, LoadError> {
    let path = vault.join(CREDENTIALS_FILE);
    let text = GUIDE.read(&path)?;
    let creds = parse(CREDENTIALS_FILE, &text).map_err(|e| GUIDE.invalid(e))?;
    credentials::warn_if_readable_by_others(&path, CREDENTIALS_FILE);
    Ok(creds)
}

/// Parse the file's text; `rel` names it in errors (every problem at once).
pub fn parse(rel: &str, text: &str) -> Result<GithubCredentials, Diagnostics> {
    Fields::read(rel, text, |f| {
        f.only_keys(KEYS);
        let token = match f.nonblank("token") {
            Ok(Some(t)) if t.trim().contains(char::is_whitespace) => Err(f.value_error(
                "token",
                "`token` must be one word (a stray space or line inside it?)".into(),
            )),
            Ok(Some(t)) => Ok(Secret::from(t.trim().to_string())),
            Ok(None) => Err(f.missing(
                "missing `token` (a fine-grained personal access token with Issues: read and \
                 write)"
                    .into(),
            )),
            Err(e) => Err(e),
        };
        let base_url = base_url(f);
        let timeout = f.duration("timeout");
        Ok(GithubCredentials {
            token: token?,
            base_url: base_url?,
            timeout: timeout?.unwrap_or(DEFAULT_TIMEOUT),
        })
    })
}

/// `base_url`: https:// (http:// only for a loopback stand-in), without a trailing `/`.
fn base_url(f: &mut Fields<'_>) -> Result<String, Recorded> {
    let url = f
        .str("base_url")?
        .unwrap_or(DEFAULT_BASE_URL)
        .trim()
        .trim_end_matches('/')
        .to_string();
    let http = url.starts_with("http://");
    if !(url.starts_with("https://") || http) || host_of(&url).is_none_or(str::is_empty) {
        return Err(f.value_error(
            "base_url",
            format!(
                "`base_url` must be https://HOST[/PATH] (or http:// for a local stand-in), not {url:?}"
            ),
        ));
    }
    if url.contains(['?', '#']) || url.contains(char::is_whitespace) {
        return Err(f.value_error(
            "base_url",
            format!("`base_url` must be a plain URL without query or spaces, not {url:?}"),
        ));
    }
    if http && !host_of(&url).is_some_and(is_loopback) {
        return Err(f.value_error(
            "base_url",
            "`base_url` with http:// would send the token unencrypted: only a loopback host may use it".into(),
        ));
    }
    Ok(url)
}

/// A repository, `OWNER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

/// Why a text is not `OWNER/NAME` (one line; the caller names the flag or field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRepo(String);

impl Repo {
    /// `OWNER/NAME` as GitHub allows them: the owner 1 to 39 letters, digits and `-`
    /// (not first or last), the name 1 to 100 letters, digits, `-`, `_` and `.` (not `.`
    /// or `..`). Either is safe in a URL path and a file name as it is.
    pub fn parse(s: &str) -> Result<Repo, BadRepo> {
        let bad = |why: &str| Err(BadRepo(format!("{s:?} is not OWNER/NAME: {why}")));
        let Some((owner, name)) = s.split_once('/') else {
            return bad("no `/`");
        };
        if owner.is_empty() || owner.len() > 39 {
            return bad("the owner must be 1 to 39 characters");
        }
        if !owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || owner.starts_with('-')
            || owner.ends_with('-')
        {
            return bad("the owner may hold only letters, digits and `-` (not first or last)");
        }
        if name.is_empty() || name.len() > 100 {
            return bad("the name must be 1 to 100 characters");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            || name == "."
            || name == ".."
        {
            return bad("the name may hold only letters, digits, `-`, `_` and `.`");
        }
        Ok(Repo {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// `{base}/repos/{owner}/{name}`.
    pub fn api_url(&self, base: &str) -> String {
        format!("{base}/repos/{}/{}", self.owner, self.name)
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The `rel="next"` URL of a `Link` header (`<https://…?page=2>; rel="next", <…>;
/// rel="last"`), if there is one.
pub fn next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some((url, params)) = rest.split_once('>') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"'))
                .is_some_and(|v| v.split_whitespace().any(|r| r == "next"))
        });
        if is_next && !url.is_empty() {
            return Some(url.to_string());
        }
    }
    None
}

/// Whether `url` (a `next` link from a reply) stays on the API at `base`: a link to
/// another host or scheme is never followed with the token.
pub fn same_origin(base: &str, url: &str) -> bool {
    fn origin(u: &str) -> Option<(&str, &str)> {
        let (scheme, rest) = u.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        Some((scheme, authority))
    }
    match (origin(base), origin(url)) {
        (Some((s1, a1)), Some((s2, a2))) => {
            s1.eq_ignore_ascii_case(s2) && a1.eq_ignore_ascii_case(a2)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_their_errors() {
        let c = parse(CREDENTIALS_FILE, "token = \" github_pat_abc \"\n").expect("valid");
        assert_eq!(c.token.expose(), "github_pat_abc");
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(!format!("{c:?}").contains("github_pat_abc"));
        let c = parse(
            CREDENTIALS_FILE,
            "token = \"t\"\nbase_url = \"http://127.0.0.1:9/api/v3/\"\ntimeout = \"5s\"\n",
        )
        .expect("valid");
        assert_eq!(c.base_url, "http://127.0.0.1:9/api/v3");
        assert_eq!(c.timeout, Duration::from_secs(5));
        let cases = [
            (
                "tokn = \"x\"\n",
                "credentials/github.toml:1:1: unknown key `tokn` (known: token, base_url, timeout)",
            ),
            (
                "",
                "credentials/github.toml: missing `token` (a fine-grained personal access token with Issues: read and write)",
            ),
            (
                "token = \"a b\"\n",
                "credentials/github.toml:1:9: `token` must be one word (a stray space or line inside it?)",
            ),
            (
                "token = \"t\"\nbase_url = \"http://github.example.com\"\n",
                "credentials/github.toml:2:12: `base_url` with http:// would send the token unencrypted: only a loopback host may use it",
            ),
            (
                "token = \"t\"\nbase_url = \"ftp://x\"\n",
                "credentials/github.toml:2:12: `base_url` must be https://HOST[/PATH] (or http:// for a local stand-in), not \"ftp://x\"",
            ),
            (
                "token = 5\n",
                "credentials/github.toml:1:9: `token` must be a string, found an integer",
            ),
        ];
        for (text, want) in cases {
            let got = parse(CREDENTIALS_FILE, text).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn repositories() {
        let r = Repo::parse("octo-cat/hello_world.rs").expect("valid");
        assert_eq!(
            (r.owner.as_str(), r.name.as_str()),
            ("octo-cat", "hello_world.rs")
        );
        assert_eq!(r.to_string(), "octo-cat/hello_world.rs");
        assert_eq!(
            r.api_url("https://h"),
            "https://h/repos/octo-cat/hello_world.rs"
        );
        for bad in [
            "",
            "x",
            "/x",
            "x/",
            "a/b/c",
            "-a/b",
            "a-/b",
            "a/..",
            "a/.",
            "a b/c",
            "a/b c",
            "a/b?x",
            "a/b#1",
            "ü/b",
            &format!("{}/b", "a".repeat(40)),
        ] {
            assert!(Repo::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Repo::parse("a/b/c").unwrap_err().to_string(),
            "\"a/b/c\" is not OWNER/NAME: the name may hold only letters, digits, `-`, `_` and `.`"
        );
    }

    #[test]
    fn next_links() {
        let h = "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", \
                 <https://api.github.com/repositories/1/issues?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        let last = "<https://x/?page=1>; rel=\"first\", <https://x/?page=4>; rel=\"prev\"";
        assert_eq!(next_link(last), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage, <; rel=next"), None);
        assert_eq!(next_link("<u>; rel=next").as_deref(), Some("u"));
        assert!(same_origin(
            "https://api.github.com",
            "https://API.github.com/x?page=2"
        ));
        assert!(!same_origin(
            "https://api.github.com",
            "https://evil.example/x"
        ));
        assert!(!same_origin(
            "https://api.github.com",
            "http://api.github.com/x"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:80",
            "http://127.0.0.1:8080/x"
        ));
    }
}
