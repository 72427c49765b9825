//! `ai-employee setup gmail`: `credentials/gmail.toml`, checked by logging in as the
//! watcher does, then `CAPABILITY` and `EXAMINE` of the mailbox.

use std::path::Path;

use ai_employee_gmail::check;

use super::mail::{self, Defaults};
use super::{Part, Save, render, save};
use crate::cli::SetupGmail;

const DEFAULTS: Defaults = Defaults {
    host_prompt: "IMAP host",
    host: Some("imap.gmail.com"),
    tls: "tls",
    ports: (993, 143, 143),
    login_optional: false,
};

pub fn run(vault: &Path, a: &SetupGmail) -> i32 {
    save(
        vault,
        &Save {
            part: Part::Gmail,
            common: &a.common,
            collect: &|asker| {
                let (keys, _) = mail::ask(asker, &a.server, &DEFAULTS)?;
                Ok(render(Part::Gmail, "docs/gmail.md", &keys))
            },
            parse: &|text| check::parse(vault, text),
            check: &|text| {
                let c = check::check(vault, text, &a.mailbox)?;
                let idle = if c.idle {
                    "IDLE: new mail is seen at once"
                } else {
                    "no IDLE: the watcher checks every minute"
                };
                Ok(format!(
                    "logged in as {}; {} opened ({} messages); {idle}",
                    c.account, a.mailbox, c.messages
                ))
            },
            reread: &|| {
                ai_employee_gmail::load_credentials(vault)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        },
    )
}
