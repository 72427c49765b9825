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

/// A score and its parts (`tasks --verbose` shows them). Each part is already weighted,
/// so `total` is their sum: `urgency + deadline + sender + age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    pub total: f64,
    /// `weights.urgency` × U (priority, or 1 for an urgency keyword).
    pub urgency: f64,
    /// `weights.deadline` × D (how close the deadline is).
    pub deadline: f64,
    /// `weights.sender` × S (1 for a VIP sender).
    pub sender: f64,
    /// `weights.age_per_hour` × hours since the task was queued.
    pub age: f64,
}

/// Score a task at `now`:
/// `urgency·U + deadline·D + sender·S + age_per_hour·hours_waiting` (docs/agent.md,
/// "Priority"), where U = [`urgency_value`], D = [`deadline_value`], S = 1 when
/// [`is_vip`].
pub fn score(facts: &Facts<'_>, settings: &AgentSettings, now: DateTime<Utc>) -> Score {
    let w = &settings.weights;
    let urgency = w.urgency * urgency_value(facts, &settings.urgency_keywords);
    let (deadline, age) = time_parts(facts.deadline, facts.queued_at, settings, now);
    let vip = facts
        .sender
        .is_some_and(|s| is_vip(s, &settings.vip_senders));
    let sender = if vip { w.sender } else { 0.0 };
    Score {
        total: urgency + deadline + sender + age,
        urgency,
        deadline,
        sender,
        age,
    }
}

/// The parts of the score that change with time, weighted: the deadline's and the age's.
/// The loop keeps the rest of a task's score (it depends only on the file) and adds these
/// when it orders the queue.
pub fn time_parts(
    deadline: Option<DateTime<Utc>>,
    queued_at: DateTime<Utc>,
    settings: &AgentSettings,
    now: DateTime<Utc>,
) -> (f64, f64) {
    let w = &settings.weights;
    (
        w.deadline * deadline.map_or(0.0, |d| deadline_value(d, now)),
        w.age_per_hour * hours_between(queued_at, now).max(0.0),
    )
}

/// Why running this task needs a person's approval first (`approval_keywords` matched as
/// a whole word, or it is a payment), or `None`. The reason is `payment` or the keyword
/// as configured.
pub fn needs_run_approval(facts: &Facts<'_>, settings: &AgentSettings) -> Option<String> {
    if facts
        .kind
        .is_some_and(|k| k.trim().eq_ignore_ascii_case("payment"))
    {
        return Some("payment".to_string());
    }
    settings
        .approval_keywords
        .iter()
        .map(|k| k.trim())
        .find(|k| has_word(facts.text, k))
        .map(str::to_string)
}

/// U: the frontmatter priority (high 1, medium or normal 0.5, low 0, missing or anything
/// else 0.5), or 1 when the text has an urgency keyword.
pub fn urgency_value(facts: &Facts<'_>, urgency_keywords: &[String]) -> f64 {
    let priority = match facts
        .priority
        .map(|p| p.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("high") => 1.0,
        Some("low") => 0.0,
        _ => 0.5,
    };
    if priority < 1.0
        && urgency_keywords
            .iter()
            .any(|k| has_word(facts.text, k.trim()))
    {
        1.0
    } else {
        priority
    }
}

/// D: a deadline already past or less than 2 h away 1, less than a day 0.7, less than a
/// week 0.4, later 0.
pub fn deadline_value(deadline: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    let hours = hours_between(now, deadline);
    if hours < 2.0 {
        1.0
    } else if hours < 24.0 {
        0.7
    } else if hours < 24.0 * 7.0 {
        0.4
    } else {
        0.0
    }
}

/// Hours from `from` to `to` (negative when `to` is earlier).
fn hours_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    // Any two chrono times are less than 600,000 years apart: the difference fits.
    let d = to.signed_duration_since(from);
    d.num_milliseconds() as f64 / 3_600_000.0
}

/// Whether `sender` (the frontmatter `from`: an address, `Name <address>` or a phone
/// number) is one of `vip_senders`, compared without regard to case. An entry matches the
/// whole `from`, the address inside `<…>`, or — when it starts with `@` — every address of
/// that domain (exactly that domain: `@example.com` does not match `a@sub.example.com`).
/// Phone numbers match by their digits (`+1 (415) 555-0123` is `14155550123`).
pub fn is_vip(sender: &str, vip_senders: &[String]) -> bool {
    let whole = sender.trim();
    let address = angle_address(whole).unwrap_or(whole);
    let domain = address.rsplit_once('@').map(|(_, d)| d);
    let digits = phone_digits(whole);
    vip_senders.iter().map(|e| e.trim()).any(|entry| {
        if entry.is_empty() {
            return false;
        }
        if let Some(d) = entry.strip_prefix('@') {
            return !d.is_empty() && domain.is_some_and(|dom| dom.eq_ignore_ascii_case(d));
        }
        entry.eq_ignore_ascii_case(whole)
            || entry.eq_ignore_ascii_case(address)
            || (digits.is_some() && phone_digits(entry) == digits)
    })
}

/// The address inside the last `<…>` of `Name <address>`.
fn angle_address(from: &str) -> Option<&str> {
    let open = from.rfind('<')?;
    let rest = &from[open + 1..];
    let close = rest.find('>')?;
    Some(rest[..close].trim())
}

/// The digits of a phone number (digits, spaces, `+`, `-`, `.`, brackets; at least 5
/// digits), or `None` for anything else.
fn phone_digits(s: &str) -> Option<String> {
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 5).then_some(digits)
}

/// Whether `word` (one or more words) appears in `text` as a whole word, in any case:
/// the characters just before and after it are not letters, digits or `_`. So `deploy`
/// matches `Deploy`, `deploy,` and `pre-deploy`, but not `redeploy`, `deployment` or
/// `deploy_prod`.
pub fn has_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    if word.is_ascii() {
        // No allocation: ASCII case folding in place. An ASCII match starts and ends on
        // character boundaries (every byte of a multi-byte character is ≥ 0x80).
        let (hay, needle) = (text.as_bytes(), word.as_bytes());
        let first = needle[0].to_ascii_lowercase();
        return (0..hay.len().saturating_sub(needle.len() - 1)).any(|i| {
            hay[i].to_ascii_lowercase() == first
                && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
                && bounded(text, i, i + needle.len())
        });
    }
    let (hay, needle) = (text.to_lowercase(), word.to_lowercase());
    hay.match_indices(needle.as_str())
        .any(|(i, m)| bounded(&hay, i, i + m.len()))
}

/// Whether `text[start..end]` stands as a word of its own.
fn bounded(text: &str, start: usize, end: usize) -> bool {
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    !text[..start].chars().next_back().is_some_and(word_char)
        && !text[end..].chars().next().is_some_and(word_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn facts(priority: Option<&'static str>, text: &'static str) -> Facts<'static> {
        Facts {
            priority,
            text,
            queued_at: now(),
            ..Facts::default()
        }
    }

    fn total(f: &Facts<'_>, s: &AgentSettings) -> f64 {
        score(f, s, now()).total
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn parts_with_the_defaults() {
        let s = AgentSettings::default();
        let cases = [
            (Some("high"), 0.4),
            (Some("HIGH "), 0.4),
            (Some("medium"), 0.2),
            (Some("normal"), 0.2),
            (Some("low"), 0.0),
            (Some("whenever"), 0.2),
            (None, 0.2),
        ];
        for (p, want) in cases {
            let got = score(&facts(p, "hello"), &s, now());
            assert!(close(got.urgency, want), "{p:?}: {got:?}");
            assert!(close(got.total, want), "{p:?}: {got:?}");
        }
    }

    #[test]
    fn high_beats_medium_beats_low() {
        let s = AgentSettings::default();
        let high = total(&facts(Some("high"), ""), &s);
        let medium = total(&facts(Some("medium"), ""), &s);
        let low = total(&facts(Some("low"), ""), &s);
        assert!(high > medium && medium > low, "{high} {medium} {low}");
    }

    #[test]
    fn an_urgency_keyword_counts_as_high() {
        let s = AgentSettings::default();
        let f = facts(Some("low"), "Please reply ASAP, thanks");
        assert!(close(score(&f, &s, now()).urgency, 0.4));
        // Not inside another word.
        let f = facts(Some("low"), "the criticality report");
        assert!(close(score(&f, &s, now()).urgency, 0.0));
    }

    #[test]
    fn deadline_steps() {
        let at = |h: i64| now() + TimeDelta::hours(h);
        assert_eq!(deadline_value(at(-5), now()), 1.0);
        assert_eq!(deadline_value(at(1), now()), 1.0);
        assert_eq!(deadline_value(now() + TimeDelta::minutes(119), now()), 1.0);
        assert_eq!(deadline_value(at(2), now()), 0.7);
        assert_eq!(deadline_value(at(23), now()), 0.7);
        assert_eq!(deadline_value(at(24), now()), 0.4);
        assert_eq!(deadline_value(at(24 * 7 - 1), now()), 0.4);
        assert_eq!(deadline_value(at(24 * 7), now()), 0.0);
        // The extremes of the calendar do not overflow.
        assert_eq!(deadline_value(DateTime::<Utc>::MIN_UTC, now()), 1.0);
        assert_eq!(deadline_value(DateTime::<Utc>::MAX_UTC, now()), 0.0);
    }

    #[test]
    fn a_deadline_in_an_hour_beats_high_without_one() {
        let s = AgentSettings::default();
        let mut due = facts(None, "");
        due.deadline = Some(now() + TimeDelta::hours(1));
        let high = facts(Some("high"), "");
        // 0.4·0.5 + 0.3·1 = 0.5 against 0.4·1 = 0.4.
        assert!(close(total(&due, &s), 0.5));
        assert!(total(&due, &s) > total(&high, &s));
    }

    #[test]
    fn a_vip_sender_beats_the_same_task_from_anyone() {
        let s = AgentSettings {
            vip_senders: vec!["boss@example.com".into()],
            ..AgentSettings::default()
        };
        let mut vip = facts(None, "");
        vip.sender = Some("The Boss <Boss@Example.com>");
        let mut other = facts(None, "");
        other.sender = Some("someone@example.com");
        assert!(close(total(&vip, &s), 0.5));
        assert!(close(total(&other, &s), 0.2));
    }

    #[test]
    fn vip_matching() {
        let vips: Vec<String> = ["boss@example.com", "@client.org", "+1 (415) 555-0123", " "]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for yes in [
            "boss@example.com",
            "BOSS@EXAMPLE.COM",
            "Big Boss <boss@example.com>",
            "\"Boss, The\" < boss@example.com >",
            "anyone@client.org",
            "Ann <ann@CLIENT.org>",
            "14155550123",
            "+1 415 555 0123",
        ] {
            assert!(is_vip(yes, &vips), "{yes}");
        }
        for no in [
            "boss@example.com.evil",
            "xboss@example.com",
            "a@sub.client.org",
            "a@notclient.org",
            "client.org",
            "@client.org <x@y.z>",
            "4155550123",
            "",
            "Boss <boss@example.com",
        ] {
            assert!(!is_vip(no, &vips), "{no}");
        }
        assert!(!is_vip("a@b.c", &["@".to_string()]));
    }

    #[test]
    fn age_lets_a_low_task_overtake_a_fresh_high_one() {
        let s = AgentSettings::default();
        let mut old_low = facts(Some("low"), "");
        old_low.queued_at = now() - TimeDelta::hours(20);
        let fresh_high = facts(Some("high"), "");
        let old = score(&old_low, &s, now());
        // 0.05 × 20 h = 1.0 against 0.4.
        assert!(close(old.age, 1.0), "{old:?}");
        assert!(old.total > total(&fresh_high, &s));
        // After 8 h it is not there yet (0.4 = 0.4 is not ahead); after 9 h it is.
        old_low.queued_at = now() - TimeDelta::hours(8);
        assert!(total(&old_low, &s) <= total(&fresh_high, &s) + 1e-9);
        old_low.queued_at = now() - TimeDelta::hours(9);
        assert!(total(&old_low, &s) > total(&fresh_high, &s));
    }

    #[test]
    fn age_is_never_negative() {
        let s = AgentSettings::default();
        let mut f = facts(Some("low"), "");
        f.queued_at = now() + TimeDelta::hours(5);
        assert_eq!(score(&f, &s, now()).age, 0.0);
        f.queued_at = DateTime::<Utc>::MAX_UTC;
        assert_eq!(score(&f, &s, now()).age, 0.0);
    }

    #[test]
    fn the_weights_are_used() {
        let mut s = AgentSettings::default();
        s.weights.urgency = 2.0;
        s.weights.deadline = 0.0;
        s.weights.age_per_hour = 0.0;
        let mut f = facts(Some("high"), "");
        f.deadline = Some(now());
        f.queued_at = now() - TimeDelta::hours(100);
        let got = score(&f, &s, now());
        assert_eq!(
            got,
            Score {
                total: 2.0,
                urgency: 2.0,
                deadline: 0.0,
                sender: 0.0,
                age: 0.0
            }
        );
    }

    #[test]
    fn whole_words() {
        for (text, yes) in [
            ("deploy", true),
            ("Deploy the site", true),
            ("please deploy, then rest", true),
            ("(DEPLOY)", true),
            ("pre-deploy checks", true),
            ("deploy.", true),
            ("redeploy", false),
            ("deployment", false),
            ("deploy_prod", false),
            ("deploy2", false),
            ("édeploy", false),
            ("", false),
        ] {
            assert_eq!(has_word(text, "deploy"), yes, "{text:?}");
        }
        assert!(has_word("go to Production now", "production"));
        assert!(has_word("right now!", "right now"));
        assert!(!has_word("anything", ""));
        // Non-ASCII keywords fold case too.
        assert!(has_word("SOFORT erledigen", "sofort"));
        assert!(has_word("Ärger im Büro", "ärger"));
        assert!(!has_word("Verärgerung", "ärger"));
    }

    #[test]
    fn run_approval() {
        let s = AgentSettings::default();
        let mut f = facts(None, "Delete the old backups");
        assert_eq!(needs_run_approval(&f, &s).as_deref(), Some("delete"));
        f.text = "Push to production and deploy";
        // The first keyword of the list that appears.
        assert_eq!(needs_run_approval(&f, &s).as_deref(), Some("deploy"));
        f.text = "the deployment notes, a redeploy";
        assert_eq!(needs_run_approval(&f, &s), None);
        f.kind = Some("payment");
        assert_eq!(needs_run_approval(&f, &s).as_deref(), Some("payment"));
        f.kind = Some("email");
        assert_eq!(needs_run_approval(&f, &s), None);
    }
}
