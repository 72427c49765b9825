//! `credentials/whatsapp.toml`, the webhook side: `app_secret` (signs every POST) and
//! `verify_token` (the GET handshake). The approval handler reads its own keys from the
//! same file (`token`, `phone_number_id`, …); those are left alone here, and any other key
//! is an error with `file:line:column`, so a typo such as `app_secert` is caught.

use std::path::Path;

use ai_employee_vault::credentials::{self, Fields, Guide, LoadError, Secret};
use ai_employee_vault::toml_fields::{Diagnostics, Recorded};

pub const FILE: &str = "credentials/whatsapp.toml";

/// Keys this watcher reads.
const OWN_KEYS: &[&str] = &["app_secret", "verify_token"];
/// Keys the approval handler reads from the same file (see
/// `watchers/approvals/credentials.rs`).
const APPROVAL_KEYS: &[&str] = &[
    "token",
    "access_token",
    "phone_number_id",
    "base_url",
    "timeout",
    "dry_run",
];

/// What the webhook needs.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    /// The Meta app's secret (App settings → Basic): the HMAC key of
    /// `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The string typed into the webhook form; Meta echoes it in the GET handshake.
    pub verify_token: Secret,
}

/// What the watcher says when the file is missing, unreadable or invalid.
const GUIDE: Guide = Guide {
    create: "with `app_secret` and `verify_token` (see docs/whatsapp.md), or run: ai-employee \
             setup whatsapp",
    unreadable: " (see docs/whatsapp.md)",
    invalid: " (see docs/whatsapp.md)",
};

/// Read the file from `vault`. The error is the reason for exit 78: one line, or one
/// line per problem of the file.
pub fn load(vault: &Path) -> Result<WebhookSecrets, LoadError> {
    let path = vault.join(FILE);
    let text = GUIDE.read(&path)?;
    let secrets = parse(FILE, &text).map_err(|e| GUIDE.invalid(e))?;
    credentials::warn_if_readable_by_others(&path, FILE);
    Ok(secrets)
}

/// Parse the file's text; `rel` names it in errors.
pub fn parse(rel: &str, text: &str) -> Result<WebhookSecrets, Diagnostics> {
    Fields::read(rel, text, |f| {
        f.unknown_keys(&[OWN_KEYS, APPROVAL_KEYS].concat(), &|key| {
            format!(
                "unknown key `{key}` (the webhook reads {}; the approval handler reads {})",
                OWN_KEYS.join(", "),
                APPROVAL_KEYS.join(", ")
            )
        });
        let app_secret = secret(
            f,
            "app_secret",
            "the Meta app's secret, from App settings → Basic",
        );
        let verify_token = secret(
            f,
            "verify_token",
            "any string you choose, typed again into the webhook form",
        );
        Ok(WebhookSecrets {
            app_secret: app_secret?,
            verify_token: verify_token?,
        })
    })
}

/// A secret the file must set; `what` says what it is when it is missing.
fn secret(f: &mut Fields<'_>, key: &str, what: &str) -> Result<Secret, Recorded> {
    // Pasted values sometimes carry a stray space or newline; neither can be part of a
    // value Meta issues or accepts.
    match f.nonblank(key)? {
        Some(value) => Ok(Secret::from(value.trim().to_string())),
        None => Err(f.missing(format!("missing `{key}` ({what})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_keys_and_the_approval_handlers_keys() {
        let c = parse(
            FILE,
            "app_secret = \" 0123abcd \"\nverify_token = \"tok:en\"\ntoken = \"EAAB\"\nphone_number_id = 123\nbase_url = \"https://graph.facebook.com/v21.0\"\ntimeout = \"10s\"\ndry_run = true\n",
        )
        .expect("valid");
        assert_eq!(c.app_secret.expose(), "0123abcd");
        assert_eq!(c.verify_token.expose(), "tok:en");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("0123abcd") && !shown.contains("tok:en"),
            "{shown}"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let cases = [
            (
                "verify_token = \"v\"\napp_secert = \"s\"\n",
                "credentials/whatsapp.toml:2:1: unknown key `app_secert` (the webhook reads app_secret, verify_token; the approval handler reads token, access_token, phone_number_id, base_url, timeout, dry_run)",
            ),
            (
                "verify_token = \"v\"\n",
                "credentials/whatsapp.toml: missing `app_secret` (the Meta app's secret, from App settings → Basic)",
            ),
            (
                "app_secret = \"s\"\n",
                "credentials/whatsapp.toml: missing `verify_token` (any string you choose, typed again into the webhook form)",
            ),
            (
                "app_secret = \"s\"\nverify_token = \"  \"\n",
                "credentials/whatsapp.toml:2:16: `verify_token` is empty",
            ),
            (
                "app_secret = 12\nverify_token = \"v\"\n",
                "credentials/whatsapp.toml:1:14: `app_secret` must be a string, found an integer",
            ),
            (
                "app_secret = \"s\nverify_token = \"v\"\n",
                "credentials/whatsapp.toml:1:16: invalid TOML: invalid basic string, expected `\"`",
            ),
        ];
        for (text, want) in cases {
            let got = parse(FILE, text).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn every_problem_at_once_but_a_misspelt_key_once() {
        let unknown = "(the webhook reads app_secret, verify_token; the approval handler reads \
                       token, access_token, phone_number_id, base_url, timeout, dry_run)";
        let cases = [
            (
                "app_secret = 12\n".to_string(),
                "credentials/whatsapp.toml: missing `verify_token` (any string you choose, typed again into the webhook form)\n\
                 credentials/whatsapp.toml:1:14: `app_secret` must be a string, found an integer".to_string(),
            ),
            // `app_secert` is the missing `app_secret`: one problem, not two.
            (
                "verify_token = \"v\"\napp_secert = \"s\"\nverify = 1\n".to_string(),
                format!(
                    "credentials/whatsapp.toml:2:1: unknown key `app_secert` {unknown}\n\
                     credentials/whatsapp.toml:3:1: unknown key `verify` {unknown}"
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(FILE, &text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
