//! The live check of a `credentials/gmail.toml` before `ai-employee setup gmail` saves it:
//! the watcher's own connection and login (`session::log_in`), then `CAPABILITY` and a
//! read-only `EXAMINE` of the mailbox. Nothing is written.

use std::path::Path;

use ai_employee_vault::layout::Folder;
use ai_employee_vault::oauth::TokenSource;

use super::config::{self, Auth, CREDENTIALS_FILE};
use super::conn;
use super::session::{self, Failure};

/// What the server said, for the one line `setup` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `alice@127.0.0.1:993`.
    pub account: String,
    /// Whether the server offers IDLE (new mail seen at once rather than polled).
    pub idle: bool,
    /// The mailbox's message count.
    pub messages: u32,
}

/// Parse the text of a `credentials/gmail.toml` for `vault` as the watcher does (no
/// network): every problem, one line each.
pub fn parse(vault: &Path, text: &str) -> Result<(), String> {
    config::parse(CREDENTIALS_FILE, text, &vault.join(Folder::Credentials))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Check the text of a `credentials/gmail.toml` for `vault` against its server: the file
/// parses as the watcher reads it, the connection (TCP, TLS or STARTTLS) works, the
/// login is accepted, the server speaks IMAP4rev1 and `mailbox` opens. The error is one
/// line (or one per problem of the text) saying what failed.
pub fn check(vault: &Path, text: &str, mailbox: &str) -> Result<Checked, String> {
    let credentials_dir = vault.join(Folder::Credentials);
    let cfg = config::parse(CREDENTIALS_FILE, text, &credentials_dir).map_err(|e| e.to_string())?;
    let tls = conn::tls_config(&cfg).map_err(|e| format!("{e} (`ca_file`)"))?;
    let tokens = match &cfg.auth {
        Auth::Password(_) => None,
        Auth::OAuth { path, rel } => {
            let src = TokenSource::new(path.clone(), rel.clone()).with_timeout(cfg.timeout);
            src.check().map_err(|e| e.to_string())?;
            Some(src)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the runtime: {e}"))?;
    let text_of = |f: Failure| match f {
        Failure::Setup(m) | Failure::Transient(m) | Failure::Vault(m) => m,
    };
    rt.block_on(async {
        let mut s = session::log_in(&cfg, &tls, tokens.as_ref())
            .await
            .map_err(text_of)?;
        let limit = cfg.timeout;
        let caps = match tokio::time::timeout(limit, s.capabilities()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("CAPABILITY: {}", conn::imap_error_text(&e))),
            Err(_) => return Err("CAPABILITY: no answer".to_string()),
        };
        if !(caps.has_str("IMAP4rev1") || caps.has_str("IMAP4rev2")) {
            return Err(format!(
                "{}:{}: capability missing: the server does not offer IMAP4rev1",
                cfg.host, cfg.port
            ));
        }
        let idle = caps.has_str("IDLE");
        let mb = match tokio::time::timeout(limit, s.examine(mailbox)).await {
            Ok(Ok(mb)) => mb,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot open mailbox {mailbox:?}: {}",
                    conn::imap_error_text(&e)
                ));
            }
            Err(_) => return Err("EXAMINE: no answer".to_string()),
        };
        if mb.uid_validity.is_none() {
            return Err(format!(
                "the server gives no UIDVALIDITY for {mailbox}: the watcher cannot remember \
                 what it has seen"
            ));
        }
        // The check is done; a LOGOUT that fails changes nothing.
        let _ = tokio::time::timeout(limit, s.logout()).await;
        Ok(Checked {
            account: format!("{}@{}:{}", cfg.username, cfg.host, cfg.port),
            idle,
            messages: mb.exists,
        })
    })
}
