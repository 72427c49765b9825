//! What makes unread mail important (pure; no I/O).
//!
//! - On Gmail (the server offers `X-GM-EXT-1`): what Gmail itself files as
//!   `is:unread is:important`.
//! - Everywhere (Gmail included): unread mail that is flagged (starred on Gmail), from a
//!   configured sender (`--sender`), or whose subject or text contains a configured
//!   keyword (`--keyword`, whole words, case-insensitive).
//!
//! Priority: `high` for flagged mail, a configured sender or a keyword; `normal` for mail
//! taken only because Gmail marked it important.

use ai_employee_vault::frontmatter::Priority;

/// Why a message was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Flagged,
    Sender(String),
    Keyword(String),
    GmailImportant,
}

impl Reason {
    pub fn describe(&self) -> String {
        match self {
            Reason::Flagged => "flagged".into(),
            Reason::Sender(s) => format!("from {s}"),
            Reason::Keyword(k) => format!("mentions \"{k}\""),
            Reason::GmailImportant => "marked important by Gmail".into(),
        }
    }
}

/// `high` unless Gmail's own marking is the only reason.
pub fn priority(reasons: &[Reason]) -> Priority {
    if reasons.iter().any(|r| *r != Reason::GmailImportant) {
        Priority::High
    } else {
        Priority::Normal
    }
}

/// The configured senders and keywords.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Lowercased addresses (`boss@example.com`) or domains (`@example.com`).
    senders: Vec<String>,
    /// Lowercased words or phrases.
    keywords: Vec<String>,
}

impl Rules {
    pub fn new(senders: &[String], keywords: &[String]) -> Rules {
        Rules {
            senders: senders
                .iter()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            keywords: keywords
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
        }
    }

    /// Whether a message's headers or text may matter (else flags decide alone).
    pub fn needs_content(&self) -> bool {
        !self.senders.is_empty() || !self.keywords.is_empty()
    }

    /// The configured sender `address` matches, if any.
    pub fn sender(&self, address: &str) -> Option<&str> {
        let address = address.trim().to_lowercase();
        self.senders
            .iter()
            .find(|s| match s.strip_prefix('@') {
                Some(domain) => address.rsplit_once('@').is_some_and(|(_, d)| d == domain),
                None => **s == address,
            })
            .map(String::as_str)
    }

    /// The first keyword found as a whole word in any of `texts`.
    pub fn keyword(&self, texts: &[&str]) -> Option<&str> {
        let lowered: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
        self.keywords
            .iter()
            .find(|k| lowered.iter().any(|t| contains_word(t, k)))
            .map(String::as_str)
    }
}

/// Every reason that applies, in order of strength.
pub fn reasons(
    rules: &Rules,
    flagged: bool,
    gmail_important: bool,
    from_address: Option<&str>,
    texts: &[&str],
) -> Vec<Reason> {
    let mut out = Vec::new();
    if flagged {
        out.push(Reason::Flagged);
    }
    if let Some(s) = from_address.and_then(|a| rules.sender(a)) {
        out.push(Reason::Sender(s.to_string()));
    }
    if let Some(k) = rules.keyword(texts) {
        out.push(Reason::Keyword(k.to_string()));
    }
    if gmail_important {
        out.push(Reason::GmailImportant);
    }
    out
}

/// `needle` in `hay` with no letter or digit right before or after it (both lowercased).
fn contains_word(hay: &str, needle: &str) -> bool {
    let mut from = 0;
    while let Some(i) = hay.get(from..).and_then(|h| h.find(needle)) {
        let start = from + i;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back();
        let after = hay[end..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return true;
        }
        // Step one character past this match's start.
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(
            &["Boss@Example.com".into(), "@vip.example".into()],
            &["Invoice".into(), "past due".into(), "ASAP".into()],
        )
    }

    #[test]
    fn whole_words_case_insensitive() {
        let r = rules();
        assert_eq!(r.keyword(&["Your INVOICE is ready"]), Some("invoice"));
        assert_eq!(r.keyword(&["invoices attached"]), None);
        assert_eq!(r.keyword(&["reinvoice"]), None);
        assert_eq!(r.keyword(&["subject", "account Past  due"]), None);
        assert_eq!(r.keyword(&["account past due."]), Some("past due"));
        assert_eq!(r.keyword(&["(asap)"]), Some("asap"));
        assert_eq!(r.keyword(&["Grüße: invoice"]), Some("invoice"));
        assert_eq!(r.keyword(&["éinvoice"]), None);
        assert_eq!(r.keyword(&[""]), None);
    }

    #[test]
    fn senders_by_address_or_domain() {
        let r = rules();
        assert_eq!(r.sender("boss@example.com"), Some("boss@example.com"));
        assert_eq!(r.sender("BOSS@EXAMPLE.COM"), Some("boss@example.com"));
        assert_eq!(r.sender("someone@vip.example"), Some("@vip.example"));
        assert_eq!(r.sender("someone@notvip.example"), None);
        assert_eq!(r.sender("boss@example.com.evil"), None);
    }

    #[test]
    fn reasons_and_priority() {
        let r = rules();
        assert!(reasons(&r, false, false, Some("x@y"), &["hello"]).is_empty());
        let flagged = reasons(&r, true, false, None, &[]);
        assert_eq!(flagged, vec![Reason::Flagged]);
        assert_eq!(priority(&flagged), "high");
        let gmail = reasons(&r, false, true, Some("x@y"), &["hello"]);
        assert_eq!(gmail, vec![Reason::GmailImportant]);
        assert_eq!(priority(&gmail), "normal");
        let all = reasons(&r, false, true, Some("boss@example.com"), &["invoice"]);
        assert_eq!(
            all,
            vec![
                Reason::Sender("boss@example.com".into()),
                Reason::Keyword("invoice".into()),
                Reason::GmailImportant
            ]
        );
        assert_eq!(priority(&all), "high");
        assert!(!Rules::new(&[], &[" ".into()]).needs_content());
    }
}
