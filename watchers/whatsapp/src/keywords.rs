//! Which messages become tasks: whole-word, case-insensitive keyword matching that works
//! in any script.
//!
//! A text is cut into words: runs of letters, digits and combining marks; every other
//! character separates words. Chinese and Japanese are written without spaces, so each
//! ideograph and each hiragana character is a word of its own (as in Unicode's word
//! boundary rules, UAX #29). Words compare after Unicode lowercasing. A keyword of
//! several words (`"call me"`, `"follow-up"`) matches those words in a row, whatever
//! separates them in the message.

/// The keywords that turn a message into a task (SPEC §5).
pub const DEFAULT_KEYWORDS: &[&str] = &["urgent", "asap", "invoice", "payment", "help"];
/// The keywords that make the task `priority: high`.
pub const DEFAULT_HIGH_KEYWORDS: &[&str] = &["urgent", "asap"];

/// One keyword as configured and as the words it matches.
#[derive(Debug, Clone)]
struct Keyword {
    shown: String,
    words: Vec<String>,
}

/// A keyword with no letters or digits: it can never match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keyword {0:?} has no letters or digits, so it can never match")]
pub struct NeverMatches(pub String);

/// A list of keywords.
#[derive(Debug, Clone)]
pub struct Keywords {
    list: Vec<Keyword>,
}

impl Keywords {
    /// Build from the configured list. Errors name a keyword with no letters or digits.
    pub fn new<S: AsRef<str>>(list: &[S]) -> Result<Keywords, NeverMatches> {
        let mut out: Vec<Keyword> = Vec::new();
        for k in list {
            let shown = k.as_ref().trim();
            let words = words(shown);
            if words.is_empty() {
                return Err(NeverMatches(shown.to_string()));
            }
            if !out.iter().any(|o| o.words == words) {
                out.push(Keyword {
                    shown: shown.to_string(),
                    words,
                });
            }
        }
        Ok(Keywords { list: out })
    }

    /// The keywords (as configured) that occur in `text`, in the configured order.
    pub fn matches(&self, text: &str) -> Vec<String> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let text = words(text);
        self.list
            .iter()
            .filter(|k| text.windows(k.words.len()).any(|w| w == k.words.as_slice()))
            .map(|k| k.shown.clone())
            .collect()
    }

    /// The configured keywords, for the start-up log line.
    pub fn shown(&self) -> Vec<&str> {
        self.list.iter().map(|k| k.shown.as_str()).collect()
    }
}

/// The lowercased words of `text`.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if stands_alone(c) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(lower(c).collect());
        } else if c.is_alphanumeric() || is_combining_mark(c) {
            cur.extend(lower(c));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Unicode lowercase, with the Greek final sigma folded into σ (uppercase Σ lowercases
/// to σ wherever it stands).
fn lower(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|l| if l == 'ς' { 'σ' } else { l })
}

/// Ideographs and hiragana: a word each (scripts written without spaces).
fn stands_alone(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{309F}'      // Hiragana
        | '\u{3400}'..='\u{4DBF}'    // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK Unified Ideographs
        | '\u{F900}'..='\u{FAFF}'    // CJK Compatibility Ideographs
        | '\u{20000}'..='\u{3134F}') // CJK Extensions B–G and supplements
}

/// Combining marks that `char::is_alphanumeric` does not cover (an accent typed as a
/// separate character: `e` + U+0301), so they stay inside their word.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Keywords {
        Keywords::new(DEFAULT_KEYWORDS).unwrap()
    }

    #[test]
    fn whole_words_only() {
        let k = default();
        assert_eq!(k.matches("Please send the invoice"), vec!["invoice"]);
        assert_eq!(k.matches("invoices attached"), Vec::<String>::new());
        assert_eq!(
            k.matches("helpful tip, unhelpful reply"),
            Vec::<String>::new()
        );
        assert_eq!(k.matches("paymentless"), Vec::<String>::new());
        assert_eq!(k.matches("help!"), vec!["help"]);
        assert_eq!(k.matches("(urgent)"), vec!["urgent"]);
        assert_eq!(
            k.matches("re:payment/invoice#42"),
            vec!["invoice", "payment"]
        );
        assert_eq!(k.matches("asap_now"), vec!["asap"]);
        assert_eq!(k.matches(""), Vec::<String>::new());
    }

    #[test]
    fn case_insensitive_in_any_script() {
        let k = default();
        assert_eq!(k.matches("URGENT: call me"), vec!["urgent"]);
        assert_eq!(k.matches("Need HeLp"), vec!["help"]);
        let k = Keywords::new(&["Straße", "ΣΟΦΙΑ", "счёт", "café", "紧急", "至急"]).unwrap();
        assert_eq!(k.matches("in der STRASSE"), Vec::<String>::new());
        assert_eq!(k.matches("in der STRAẞE"), vec!["Straße"]);
        assert_eq!(k.matches("σοφια ist da"), vec!["ΣΟΦΙΑ"]);
        let greek = Keywords::new(&["λόγος"]).unwrap();
        assert_eq!(greek.matches("ΛΌΓΟΣ!"), vec!["λόγος"]);
        assert_eq!(k.matches("Оплатите СЧЁТ сегодня"), vec!["счёт"]);
        assert_eq!(k.matches("счёта"), Vec::<String>::new());
        assert_eq!(k.matches("un CAFÉ?"), vec!["café"]);
        // Ideographs are words of their own: a keyword inside a sentence without spaces.
        assert_eq!(k.matches("这个很紧急，请回复"), vec!["紧急"]);
        assert_eq!(k.matches("至急ご連絡ください"), vec!["至急"]);
        assert_eq!(k.matches("紧"), Vec::<String>::new());
    }

    #[test]
    fn combining_accents_stay_in_their_word() {
        let k = Keywords::new(&["cafe"]).unwrap();
        // "café" with a separate combining accent is not the word "cafe".
        assert_eq!(k.matches("un cafe\u{301} noir"), Vec::<String>::new());
        assert_eq!(k.matches("un cafe noir"), vec!["cafe"]);
    }

    #[test]
    fn phrases_and_configuration() {
        let k = Keywords::new(&["call me", "follow-up", "Invoice", "invoice"]).unwrap();
        assert_eq!(k.shown(), vec!["call me", "follow-up", "Invoice"]);
        assert_eq!(k.matches("please CALL  me back"), vec!["call me"]);
        assert_eq!(k.matches("call, me"), vec!["call me"]);
        assert_eq!(k.matches("recall me"), Vec::<String>::new());
        assert_eq!(k.matches("a follow up"), vec!["follow-up"]);
        assert_eq!(k.matches("INVOICE"), vec!["Invoice"]);
        assert!(Keywords::new(&["--"]).is_err());
        assert!(Keywords::new(&[""]).is_err());
        let none = Keywords::new::<&str>(&[]).unwrap();
        assert!(none.matches("urgent").is_empty());
    }

    #[test]
    fn emoji_and_numbers() {
        let k = Keywords::new(&["help", "2fa"]).unwrap();
        assert_eq!(k.matches("🆘help🆘"), vec!["help"]);
        assert_eq!(k.matches("my 2FA code"), vec!["2fa"]);
        assert_eq!(k.matches("12fa"), Vec::<String>::new());
    }
}
