//! Small helpers the handler's modules share: the SHA-256 of a file, the identity tag
//! derived from it, and secrets redacted from what is written down.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// A short stable name for an approval identity (file name + content hash), used in the
/// Message-ID, the LinkedIn queue marker and the payment task's name.
pub fn identity_tag(name: &str, sha: &str) -> String {
    let mut input = Vec::with_capacity(name.len() + 1 + sha.len());
    input.extend_from_slice(name.as_bytes());
    input.push(0);
    input.extend_from_slice(sha.as_bytes());
    sha256_hex(&input)[..20].to_string()
}

/// Replace every secret (and its JSON-escaped form) in `text`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.chars().count() < 4 {
            continue;
        }
        out = out.replace(s.as_str(), "[redacted]");
        let escaped = serde_json::to_string(s).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != s {
            out = out.replace(escaped, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_and_tags() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(identity_tag("a.md", "x").len(), 20);
        assert_ne!(identity_tag("a.md", "x"), identity_tag("b.md", "x"));
    }

    #[test]
    fn redaction_covers_plain_and_json_escaped_secrets() {
        let secrets = vec!["pa\"ss-word".to_string(), "abc".to_string()];
        assert_eq!(
            redact("x pa\"ss-word y pa\\\"ss-word abc", &secrets),
            "x [redacted] y [redacted] abc"
        );
    }
}
