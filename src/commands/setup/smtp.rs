//! `ai-employee setup smtp`: `credentials/smtp.toml` for the approval handler's emails,
//! checked with its own SMTP session (EHLO, STARTTLS or TLS, AUTH), no message sent.

use std::path::Path;

use ai_employee_approvals::setup as approvals;

use super::mail::{self, Defaults};
use super::{Part, Save, render, save};
use crate::cli::SetupSmtp;

const DEFAULTS: Defaults = Defaults {
    host_prompt: "SMTP host",
    host: None,
    tls: "starttls",
    ports: (465, 587, 25),
    login_optional: true,
};

pub fn run(vault: &Path, a: &SetupSmtp) -> i32 {
    save(
        vault,
        &Save {
            part: Part::Smtp,
            common: &a.common,
            collect: &|asker| {
                let (mut keys, user) = mail::ask(asker, &a.server, &DEFAULTS)?;
                let default_from = user.contains('@').then_some(user.as_str());
                let from = asker.text(
                    a.from.as_deref(),
                    "Sender (Name <address>)",
                    default_from,
                    "--from",
                    false,
                )?;
                keys.push(("from", from.into()));
                Ok(render(Part::Smtp, "docs/approvals.md", &keys))
            },
            parse: &approvals::parse_smtp_text,
            check: &|text| approvals::check_smtp(vault, text),
            reread: &|| approvals::read_smtp(vault),
        },
    )
}
