//! `ai-employee setup github`: `credentials/github.toml`, the token checked against the
//! API with the watcher's own client.

use std::path::Path;

use ai_employee_vault::github::{self, CREDENTIALS_FILE};
use toml_edit::Value;

use super::prompt::SecretFrom;
use super::{Part, Save, render, save};
use crate::cli::SetupGithub;

pub fn run(vault: &Path, a: &SetupGithub) -> i32 {
    let from = match (&a.token_file, a.token_stdin) {
        (Some(f), _) => SecretFrom::File(f),
        (None, true) => SecretFrom::Stdin,
        (None, false) => SecretFrom::Ask,
    };
    save(
        vault,
        &Save {
            part: Part::Github,
            common: &a.common,
            collect: &|asker| {
                let token = asker.secret(from, "GitHub token", "--token-file or --token-stdin")?;
                let mut keys: Vec<(&str, Value)> = vec![("token", token.trim().into())];
                if let Some(url) = &a.base_url {
                    keys.push(("base_url", url.clone().into()));
                }
                Ok(render(Part::Github, "docs/github.md", &keys))
            },
            parse: &|text| {
                github::parse(CREDENTIALS_FILE, text)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            check: &|text| {
                let creds = github::parse(CREDENTIALS_FILE, text).map_err(|e| e.to_string())?;
                ai_employee_github::check(&creds)
            },
            reread: &|| github::load(vault).map(|_| ()).map_err(|e| e.to_string()),
        },
    )
}
