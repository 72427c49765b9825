//! "did you mean …?": the known word a misspelt one most likely stands for.

/// ` (did you mean "restart"?)` or nothing.
pub fn did_you_mean(word: &str, known: &[&str], aliases: &[(&str, &str)]) -> String {
    match suggest(word, known, aliases) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    }
}

/// The known word closest to `word`: the target of an alias (a name another tool uses),
/// a case or `-`/`_` variant, or the nearest word within a small edit distance: 1 for a
/// word of up to 3 characters, 2 up to 8, 3 beyond (optimal string alignment: insertions,
/// deletions, substitutions, and a swap of two neighbours counts as one edit).
pub fn suggest<'k>(word: &str, known: &[&'k str], aliases: &[(&str, &'k str)]) -> Option<&'k str> {
    let normal = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let w = normal(word);
    if let Some((_, target)) = aliases.iter().find(|(alias, _)| normal(alias) == w) {
        return Some(target);
    }
    let limit = match w.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(&w, &normal(k)), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("restrat", "restart"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        // A swap of neighbours is one edit, but a swapped pair is not edited again.
        assert_eq!(edit_distance("ab", "bca"), 3);
    }

    #[test]
    fn aliases_variants_and_near_misses() {
        let known = ["command", "stop_signal", "env"];
        let aliases = [("cmd", "command"), ("environment", "env")];
        assert_eq!(suggest("CMD", &known, &aliases), Some("command"));
        assert_eq!(
            suggest("Stop-Signal", &known, &aliases),
            Some("stop_signal")
        );
        assert_eq!(suggest("comand", &known, &aliases), Some("command"));
        assert_eq!(suggest("evn", &known, &aliases), Some("env"));
        // 3 characters: one edit at most.
        assert_eq!(suggest("eng", &known, &aliases), Some("env"));
        assert_eq!(suggest("xyz", &known, &aliases), None);
        assert_eq!(
            did_you_mean("comand", &known, &[]),
            " (did you mean \"command\"?)"
        );
        assert_eq!(did_you_mean("banana", &known, &[]), "");
    }
}
