//! What `ai-employee setup smtp` and `setup whatsapp` check before they save a file, with
//! the code the actions send with (`actions::email::check`, `actions::whatsapp::check`),
//! and the parse of a saved file as the handler reads it.

use std::path::Path;

use ai_employee_vault::credentials;
use ai_employee_vault::layout::Folder;

use crate::actions::{Outcome, email, whatsapp};
pub use crate::credentials::{SMTP_FILE, WHATSAPP_FILE};
use crate::credentials::{parse_smtp, parse_whatsapp_if_set};

/// Check the text of a `credentials/smtp.toml` for `vault`: it parses as the handler
/// reads it, the server answers EHLO (and STARTTLS or TLS), and the login is accepted.
/// Ok: what was accepted; Err: one line saying what failed (or one per problem).
pub fn check_smtp(vault: &Path, text: &str) -> Result<String, String> {
    let cfg = parse_smtp(SMTP_FILE, text).map_err(|e| e.to_string())?;
    let tokens = cfg.oauth.as_ref().map(|o| o.source(vault));
    if let Some(t) = &tokens {
        t.check().map_err(|e| e.to_string())?;
    }
    let credentials_dir = vault.join(Folder::Credentials);
    outcome_text(email::check(&cfg, tokens.as_ref(), &credentials_dir))
}

/// Check the sending side of a `credentials/whatsapp.toml` text (`token`,
/// `phone_number_id`, `base_url`) against the Cloud API. `Ok(None)`: the text has none of
/// the handler's keys (webhook only), nothing to check.
pub fn check_whatsapp(text: &str) -> Result<Option<String>, String> {
    match parse_whatsapp_if_set(WHATSAPP_FILE, text).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(cfg) => outcome_text(whatsapp::check(&cfg)).map(Some),
    }
}

/// Parse the text of a `credentials/smtp.toml` as the handler does (no network).
pub fn parse_smtp_text(text: &str) -> Result<(), String> {
    parse_smtp(SMTP_FILE, text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Parse the sending side of a `credentials/whatsapp.toml` text as the handler does.
pub fn parse_whatsapp_text(text: &str) -> Result<(), String> {
    parse_whatsapp_if_set(WHATSAPP_FILE, text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Read the vault's `credentials/smtp.toml` as the handler does: `Err` says why it
/// cannot be used.
pub fn read_smtp(vault: &Path) -> Result<(), String> {
    let text = credentials::read_file(&vault.join(SMTP_FILE))
        .map_err(|e| format!("cannot read {SMTP_FILE}: {e}"))?;
    parse_smtp_text(&text)
}

/// Read the sending side of the vault's `credentials/whatsapp.toml` as the handler does.
pub fn read_whatsapp(vault: &Path) -> Result<(), String> {
    let text = credentials::read_file(&vault.join(WHATSAPP_FILE))
        .map_err(|e| format!("cannot read {WHATSAPP_FILE}: {e}"))?;
    parse_whatsapp_text(&text)
}

fn outcome_text(o: Outcome) -> Result<String, String> {
    match o {
        Outcome::Success { detail, .. } => Ok(detail),
        Outcome::Transient(e) | Outcome::Permanent(e) | Outcome::Unknown(e) => Err(e),
    }
}
