//! The priority score (docs/agent.md, "Priority"): pure, from a task's facts, the
//! `[agent]` settings and the time.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::AgentSettings;

/// What the score is made from, read from a task file.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// Frontmatter `priority` (high, medium / normal, low; anything else: medium).
    pub priority: Option<&'a str>,
    /// Frontmatter `deadline`.
    pub deadline: Option<DateTime<Utc>>,
    /// Frontmatter `from`.
    pub sender: Option<&'a str>,
    /// Title, subject and body, searched for urgency and approval keywords.
    pub text: &'a str,
    /// Frontmatter `type` (`payment` always needs approval to run).
    pub kind: Option<&'a str>,
    /// When the loop first saw the task (age is counted from it).
    pub queued_at: DateTime<Utc>,
}

/// A score and its parts (`tasks --verbose` shows them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    pub total: f64,
    pub urgency: f64,
    pub deadline: f64,
    pub sender: f64,
    pub age: f64,
}

/// Score a task at `now`.
pub fn score(facts: &Facts<'_>, settings: &AgentSettings, now: DateTime<Utc>) -> Score {
    let _ = (facts, settings, now);
    Score::default()
}

/// Why running this task needs a person's approval first (`approval_keywords` matched as
/// a whole word, or it is a payment), or `None`.
pub fn needs_run_approval(facts: &Facts<'_>, settings: &AgentSettings) -> Option<String> {
    let _ = (facts, settings);
    None
}
