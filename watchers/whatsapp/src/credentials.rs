//! `credentials/whatsapp.toml`, the webhook side: `app_secret` (signs every POST) and
//! `verify_token` (the GET handshake). The approval handler reads its own keys from the
//! same file (`token`, `phone_number_id`, …); those are left alone here, and any other key
//! is an error with `file:line:column`, so a typo such as `app_secert` is caught.

use std::path::Path;

use ai_employee_vault::credentials::{Fields, Secret};

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

/// Read the file from `vault`. The error is the one-line reason for exit 78.
pub fn load(vault: &Path) -> Result<WebhookSecrets, String> {
    let path = vault.join(FILE);
    let text = match ai_employee_vault::credentials::read_file(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no credentials: create {} with `app_secret` and `verify_token` (see docs/whatsapp.md)",
                path.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e} (see docs/whatsapp.md)",
                path.display()
            ));
        }
    };
    let secrets = parse(FILE, &text).map_err(|e| format!("{e} (see docs/whatsapp.md)"))?;
    warn_if_readable_by_others(&path);
    Ok(secrets)
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.mode() & 0o077 != 0
    {
        tracing::warn!(
            "{FILE} can be read by other users (mode {:o}): run `chmod 600` on it",
            meta.mode() & 0o777
        );
    }
}

/// Parse the file's text; `rel` names it in errors.
pub fn parse(rel: &str, text: &str) -> Result<WebhookSecrets, String> {
    let f = Fields::parse(rel, text)?;
    for (key, _) in f.doc.as_table().iter() {
        if !OWN_KEYS.contains(&key) && !APPROVAL_KEYS.contains(&key) {
            return Err(f.err_key(
                key,
                format!(
                    "unknown key `{key}` (the webhook reads {}; the approval handler reads {})",
                    OWN_KEYS.join(", "),
                    APPROVAL_KEYS.join(", ")
                ),
            ));
        }
    }
    let secret = |key: &str, what: &str| -> Result<Secret, String> {
        let value = f
            .opt_str(key)?
            .ok_or_else(|| format!("{rel}: missing `{key}` ({what})"))?;
        // Pasted values sometimes carry a stray space or newline; neither can be part of
        // a value Meta issues or accepts.
        let value = value.trim();
        if value.is_empty() {
            return Err(f.err_value(key, format!("`{key}` is empty")));
        }
        Ok(Secret::from(value.to_string()))
    };
    Ok(WebhookSecrets {
        app_secret: secret(
            "app_secret",
            "the Meta app's secret, from App settings → Basic",
        )?,
        verify_token: secret(
            "verify_token",
            "any string you choose, typed again into the webhook form",
        )?,
    })
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
            assert_eq!(parse(FILE, text).err().as_deref(), Some(want), "{text}");
        }
    }
}
