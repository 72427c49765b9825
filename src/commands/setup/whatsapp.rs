//! `ai-employee setup whatsapp`: `credentials/whatsapp.toml`, the webhook's secrets (the
//! watcher's) and, optionally, the Cloud API token and sender the approval handler sends
//! replies with; the token is checked against the API's base URL.

use std::path::{Path, PathBuf};

use ai_employee_approvals::setup as approvals;
use toml_edit::Value;

use super::prompt::SecretFrom;
use super::{Part, Save, render, save};
use crate::cli::SetupWhatsapp;

/// A secret from its `--…-file`, else asked.
fn from(f: &Option<PathBuf>) -> SecretFrom<'_> {
    match f {
        Some(p) => SecretFrom::File(p),
        None => SecretFrom::Ask,
    }
}

pub fn run(vault: &Path, a: &SetupWhatsapp) -> i32 {
    save(
        vault,
        &Save {
            part: Part::Whatsapp,
            common: &a.common,
            collect: &|asker| {
                let app_secret = asker.secret(
                    from(&a.app_secret_file),
                    "Meta app secret",
                    "--app-secret-file",
                )?;
                let verify_token = asker.secret(
                    from(&a.verify_token_file),
                    "Webhook verify token",
                    "--verify-token-file",
                )?;
                let mut keys: Vec<(&str, Value)> = vec![
                    ("app_secret", app_secret.into()),
                    ("verify_token", verify_token.into()),
                ];
                let sending = !a.no_sending
                    && (a.token_file.is_some()
                        || a.phone_number_id.is_some()
                        || asker.confirm(
                            "Also set up sending approved replies (a Cloud API access token)?",
                            true,
                        )?);
                if sending {
                    let token = asker.secret(
                        from(&a.token_file),
                        "Cloud API access token",
                        "--token-file",
                    )?;
                    let id = asker.text(
                        a.phone_number_id.as_deref(),
                        "Phone number ID",
                        None,
                        "--phone-number-id",
                        false,
                    )?;
                    keys.push(("token", token.into()));
                    keys.push(("phone_number_id", id.into()));
                }
                if let Some(url) = &a.base_url {
                    keys.push(("base_url", url.clone().into()));
                }
                Ok(render(Part::Whatsapp, "docs/whatsapp.md", &keys))
            },
            parse: &|text| {
                ai_employee_whatsapp::parse_credentials(
                    ai_employee_whatsapp::CREDENTIALS_FILE,
                    text,
                )
                .map_err(|e| e.to_string())?;
                approvals::parse_whatsapp_text(text)
            },
            check: &|text| {
                Ok(approvals::check_whatsapp(text)?.unwrap_or_else(|| {
                    "sending not set up (webhook only); Meta checks the webhook's secrets when \
                     the webhook is saved in its form"
                        .to_string()
                }))
            },
            reread: &|| {
                ai_employee_whatsapp::load_credentials(vault).map_err(|e| e.to_string())?;
                approvals::read_whatsapp(vault)
            },
        },
    )
}
