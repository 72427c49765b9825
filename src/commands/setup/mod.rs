//! `ai-employee setup [gmail|smtp|whatsapp|github|agent]`: ask for what a part needs (or
//! take it from flags), check it live with the watcher's own client code, write the file
//! in `credentials/` (0700) atomically with mode 0600, read it back with the watcher's
//! loader, and restart the part's child if a supervisor runs. Without a part: each part's
//! state and what to do next (`overview.rs`).
//!
//! Exit status: 0 saved (without a part: every part the table needs is configured), 1 the
//! check failed, the file exists (no `--force`) or nothing was saved, 2 usage (a value
//! missing with `--no-input`), 73 the file could not be written, 78 the vault or its
//! table cannot be used (without a part: a part the table needs is missing or invalid).

mod agent;
mod github;
mod gmail;
mod mail;
mod overview;
mod prompt;
mod smtp;
mod whatsapp;

use std::path::Path;

use ai_employee_vault::control::ChildStatus;
use ai_employee_vault::exit_codes;
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{Dir, How};

use super::control::{self, Verb};
use super::status::{self, Outcome};
use crate::cli::{SetupCommon, SetupPart};
use crate::config::{self, Config, DEFAULT_TABLE, Source};
use prompt::{AskError, Asker};

pub use overview::{missing, needing_setup};

/// A part of the product that needs something from its owner before it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Gmail,
    Smtp,
    Whatsapp,
    Github,
    Agent,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Gmail,
        Part::Smtp,
        Part::Whatsapp,
        Part::Github,
        Part::Agent,
    ];

    /// As typed after `ai-employee setup`.
    pub const fn name(self) -> &'static str {
        match self {
            Part::Gmail => "gmail",
            Part::Smtp => "smtp",
            Part::Whatsapp => "whatsapp",
            Part::Github => "github",
            Part::Agent => "agent",
        }
    }

    /// Its file in `credentials/` (the agent keeps its own login).
    pub const fn file(self) -> Option<&'static str> {
        match self {
            Part::Gmail => Some("gmail.toml"),
            Part::Smtp => Some("smtp.toml"),
            Part::Whatsapp => Some("whatsapp.toml"),
            Part::Github => Some("github.toml"),
            Part::Agent => None,
        }
    }

    /// The part a process of the table needs set up, from its arguments
    /// (`watch gmail …`, `agent …`); the approval handler's is `smtp` (optional: it runs
    /// without, and re-reads its files when they change).
    pub fn of_process(args: &[String]) -> Option<Part> {
        match args {
            [first, ..] if first == "agent" => Some(Part::Agent),
            [watch, w, ..] if watch == "watch" => match w.as_str() {
                "gmail" => Some(Part::Gmail),
                "whatsapp" => Some(Part::Whatsapp),
                "github" => Some(Part::Github),
                "approvals" => Some(Part::Smtp),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the child keeps running without this part's file and reads it again when
    /// it changes (the approval handler): it is started if at rest, never restarted.
    const fn rereads(self) -> bool {
        matches!(self, Part::Smtp)
    }

    /// The one command that sets it up.
    pub fn command(self) -> String {
        format!("ai-employee setup {}", self.name())
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn run(vault: &Path, part: Option<SetupPart>) -> i32 {
    if !vault.is_dir() {
        return super::fail(
            exit_codes::CONFIG,
            format_args!(
                "no vault at {}: create it with `ai-employee init --vault {}`",
                vault.display(),
                vault.display()
            ),
        );
    }
    let Some(part) = part else {
        return overview::run(vault);
    };
    match part {
        SetupPart::Gmail(a) => gmail::run(vault, &a),
        SetupPart::Smtp(a) => smtp::run(vault, &a),
        SetupPart::Whatsapp(a) => whatsapp::run(vault, &a),
        SetupPart::Github(a) => github::run(vault, &a),
        SetupPart::Agent(a) => agent::run(vault, &a),
    }
}

/// One credentials file to save: how its text is had and judged.
struct Save<'a> {
    part: Part,
    common: &'a SetupCommon,
    /// Ask for (or take) the values; the file's text.
    collect: &'a dyn Fn(&Asker) -> Result<String, AskError>,
    /// Read the text as the watcher reads it (no network): every problem, or nothing.
    parse: &'a dyn Fn(&str) -> Result<(), String>,
    /// The live check: what was accepted, or what failed (one line).
    check: &'a dyn Fn(&str) -> Result<String, String>,
    /// Read the saved file back with the watcher's loader.
    reread: &'a dyn Fn() -> Result<(), String>,
}

/// The steps every part with a file shares: the existing file, the values, the parse,
/// the check, the write (0600, atomic), the re-read, the supervisor.
fn save(vault: &Path, s: &Save<'_>) -> i32 {
    let part = s.part;
    let Some(file) = part.file() else {
        return exit_codes::FAILURE;
    };
    let rel = Folder::Credentials.rel(file);
    let not_saved = |code: i32, why: &dyn std::fmt::Display| {
        super::fail(code, format_args!("setup {part}: {why}; nothing saved"))
    };
    let asker = Asker::new(s.common.no_input);
    let exists = std::fs::symlink_metadata(vault.join(&rel)).is_ok();
    if exists && !s.common.force {
        if !asker.interactive() {
            return not_saved(
                exit_codes::FAILURE,
                &format_args!("{rel} exists (pass --force to replace it)"),
            );
        }
        match asker.confirm(&format!("{rel} exists. Replace it?"), false) {
            Ok(true) => {}
            Ok(false) => {
                println!("{rel} kept; nothing saved");
                return exit_codes::FAILURE;
            }
            Err(e) => return not_saved(e.exit_code(), &e),
        }
    }
    let text = match (s.collect)(&asker) {
        Ok(t) => t,
        Err(e) => return not_saved(e.exit_code(), &e),
    };
    if let Err(e) = (s.parse)(&text) {
        return not_saved(exit_codes::FAILURE, &e);
    }
    if s.common.skip_check {
        println!("not checked (--skip-check)");
    } else {
        eprintln!("checking …");
        match (s.check)(&text) {
            Ok(line) => println!("✓ {line}"),
            Err(e) => {
                return not_saved(
                    exit_codes::FAILURE,
                    &format_args!("check failed: {e} (--skip-check saves without it)"),
                );
            }
        }
    }
    if let Err(e) = write_credentials(vault, file, &text) {
        return super::fail(
            exit_codes::CANT_CREATE,
            format_args!("setup {part}: failed to write {rel}: {e}"),
        );
    }
    if let Err(e) = (s.reread)() {
        return super::fail(
            exit_codes::FAILURE,
            format_args!("setup {part}: {rel} was saved but does not read back: {e}"),
        );
    }
    println!("saved {rel} (mode 0600)");
    apply(vault, part);
    exit_codes::OK
}

/// Write `credentials/<name>` atomically with mode 0600, `credentials/` made 0700.
fn write_credentials(vault: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let dir = Dir::open(vault)?.make_folder(Folder::Credentials, true)?;
    dir.write_atomic(name, text.as_bytes(), 0o600)?;
    // An existing file keeps its bits through the replace: make it private too.
    dir.file(name, How::READ)?
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
}

/// After a save: restart (or start) the part's children if a supervisor runs.
fn apply(vault: &Path, part: Part) {
    let report = match status::fetch(vault) {
        Outcome::Report(r) => r,
        Outcome::NotRunning(_) => {
            println!("no supervisor runs on this vault; start it with: ai-employee supervise");
            return;
        }
        Outcome::Unknown(e) => {
            println!(
                "the supervisor could not be asked ({e}); restart the child yourself: \
                 ai-employee restart NAME"
            );
            return;
        }
    };
    let table = supervisor_table(&report.supervisor.table);
    let children: Vec<&ChildStatus> = report
        .children
        .iter()
        .filter(|c| child_part(table.as_ref(), &c.name) == Some(part))
        .collect();
    if children.is_empty() {
        println!("no process of the supervisor's table uses {part}");
    }
    for c in children {
        let name = c.name.as_str();
        if !c.enabled {
            println!(
                "{name} is disabled in the table: set `enabled = true` there, then run \
                 ai-employee reload"
            );
        } else if part.rereads() && c.state == "running" {
            println!(
                "{name} reads the new file by itself (running, pid {})",
                c.pid.unwrap_or_default()
            );
        } else {
            control::run_with(vault, Verb::Restart, name, false);
        }
    }
}

/// The table the running supervisor reported (`<built-in default>` or a path).
fn supervisor_table(shown: &str) -> Option<Config> {
    if shown == Source::BuiltIn.to_string() {
        config::parse(DEFAULT_TABLE, Source::BuiltIn).ok()
    } else {
        config::load_file(Path::new(shown)).ok()
    }
}

/// The part the process `name` of `table` needs; by name when the table is unknown.
fn child_part(table: Option<&Config>, name: &str) -> Option<Part> {
    match table.and_then(|t| t.processes.iter().find(|p| p.name == name)) {
        Some(p) => Part::of_process(&p.args),
        None => Part::ALL.into_iter().find(|p| p.name() == name),
    }
}

/// The text of a credentials file: a comment naming the command and the docs, then the
/// keys (TOML, escaped by toml_edit).
fn render(part: Part, docs: &str, keys: &[(&str, toml_edit::Value)]) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    for (k, v) in keys {
        doc.insert(k, toml_edit::Item::Value(v.clone()));
    }
    format!(
        "# Written by `ai-employee setup {part}`; see {docs}.\n{}",
        doc
    )
}

/// The port for `tls` when none was given: what the watcher's loader defaults to.
fn default_port(tls: &str, tls_port: u16, starttls_port: u16, plain_port: u16) -> u16 {
    match tls {
        "tls" => tls_port,
        "starttls" => starttls_port,
        _ => plain_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_map_to_parts_by_their_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Part::of_process(&args(&["watch", "gmail"])),
            Some(Part::Gmail)
        );
        assert_eq!(
            Part::of_process(&args(&["watch", "approvals"])),
            Some(Part::Smtp)
        );
        assert_eq!(
            Part::of_process(&args(&["agent", "--once"])),
            Some(Part::Agent)
        );
        assert_eq!(Part::of_process(&args(&["watch", "filesystem"])), None);
        assert_eq!(Part::of_process(&args(&["-c", "sleep 1"])), None);
    }

    #[test]
    fn values_are_escaped_and_read_back_as_written() {
        let pw = "a\"b\\c 'd' # e\nf";
        let text = render(
            Part::Smtp,
            "docs/approvals.md",
            &[
                ("host", "127.0.0.1".into()),
                ("tls", "none".into()),
                ("username", "me".into()),
                ("password", pw.into()),
                ("from", "Me <me@example.com>".into()),
            ],
        );
        ai_employee_approvals::setup::parse_smtp_text(&text).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(doc["password"].as_str(), Some(pw));
    }

    #[test]
    fn files_are_toml_with_a_comment() {
        let text = render(
            Part::Smtp,
            "docs/approvals.md",
            &[("host", "smtp.example.com".into()), ("port", 587i64.into())],
        );
        assert_eq!(
            text,
            "# Written by `ai-employee setup smtp`; see docs/approvals.md.\nhost = \"smtp.example.com\"\nport = 587\n"
        );
    }
}
