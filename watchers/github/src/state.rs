//! What the watcher remembers between polls and restarts, per query (repository and
//! label): each page's URL, its `ETag` and the next page's URL, in
//! `<vault>/.ai-employee/github.state` (JSON, written atomically, never through a link).
//!
//! A page's ETag is stored only after the tasks of its issues are durable, so a crash
//! never lets a 304 hide an issue that has no task. Losing the file costs one full
//! listing (the task ledger keeps issues from becoming tasks twice).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use ai_employee_vault::json_state::{self, LoadError};
use serde::{Deserialize, Serialize};

/// One page of a listing as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMark {
    pub url: String,
    pub etag: Option<String>,
    /// The `rel="next"` link that came with it (a 304 has none of its own).
    pub next: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Per query (`OWNER/NAME labels=LABEL`), its pages in order.
    queries: BTreeMap<String, Vec<PageMark>>,
}

#[derive(Debug)]
pub struct State {
    path: PathBuf,
    file: File,
}

impl State {
    /// Read the state (a missing file is an empty state).
    pub fn load(path: &Path) -> Result<State, LoadError> {
        let file = json_state::load(
            path,
            "remove it to list every issue again (no task is written twice)",
        )?;
        Ok(State {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Page `i` of `query`, if it was seen at `url`.
    pub fn page(&self, query: &str, i: usize, url: &str) -> Option<&PageMark> {
        self.file
            .queries
            .get(query)
            .and_then(|pages| pages.get(i))
            .filter(|p| p.url == url)
    }

    /// Record page `i` of `query` (durably, if it changed); the pages after it are
    /// forgotten when it is the last (`mark.next` is `None`). A later page whose URL
    /// changed is not used ([`State::page`] matches the URL).
    pub fn set_page(&mut self, query: &str, i: usize, mark: PageMark) -> io::Result<()> {
        let pages = self.file.queries.entry(query.to_string()).or_default();
        let old = pages.clone();
        let last = mark.next.is_none();
        match i.cmp(&pages.len()) {
            std::cmp::Ordering::Less => pages[i] = mark,
            std::cmp::Ordering::Equal => pages.push(mark),
            // A page after a gap is never kept: pages are found in order.
            std::cmp::Ordering::Greater => {}
        }
        if last {
            pages.truncate(i + 1);
        }
        if *pages == old {
            return Ok(());
        }
        self.save().inspect_err(|_| {
            self.file.queries.insert(query.to_string(), old);
        })
    }

    fn save(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(io::Error::other)?;
        json_state::save(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(url: &str, etag: &str, next: Option<&str>) -> PageMark {
        PageMark {
            url: url.into(),
            etag: Some(etag.into()),
            next: next.map(str::to_string),
        }
    }

    #[test]
    fn pages_survive_a_reload_and_shrink_with_the_listing() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = tmp.path().join("github.state");
        let mut s = State::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.page("q", 0, "u1"), None);
        s.set_page("q", 0, mark("u1", "a", Some("u2")))
            .unwrap_or_else(|e| panic!("{e}"));
        s.set_page("q", 1, mark("u2", "b", None))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = State::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.page("q", 1, "u2"), Some(&mark("u2", "b", None)));
        assert_eq!(s.page("q", 1, "other"), None);
        // The listing became one page.
        s.set_page("q", 0, mark("u1", "c", None))
            .unwrap_or_else(|e| panic!("{e}"));
        let s = State::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.page("q", 1, "u2"), None);
        assert_eq!(s.page("q", 0, "u1"), Some(&mark("u1", "c", None)));
        std::fs::write(&path, "{oops").unwrap_or_else(|e| panic!("{e}"));
        let err = State::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is damaged"), "{err}");
    }
}
