//! Where things live in a vault, and `init`, which creates what is missing.

use std::io;
use std::path::{Path, PathBuf};

use super::nofollow::Dir;

/// The vault's folders (SPEC §1). A `Folder` is also its path relative to the vault's
/// root, for folder descriptors (`nofollow::Dir`); [`Vault::folder`] gives the full path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    Inbox,
    NeedsAction,
    InProgress,
    Plans,
    PendingApproval,
    Approved,
    Rejected,
    Done,
    Failed,
    Logs,
    Credentials,
}

impl Folder {
    /// Every folder, in the order `init` creates them.
    pub const ALL: [Folder; 11] = [
        Folder::Inbox,
        Folder::NeedsAction,
        Folder::InProgress,
        Folder::Plans,
        Folder::PendingApproval,
        Folder::Approved,
        Folder::Rejected,
        Folder::Done,
        Folder::Failed,
        Folder::Logs,
        Folder::Credentials,
    ];

    /// Its name in the vault.
    pub const fn name(self) -> &'static str {
        match self {
            Folder::Inbox => "Inbox",
            Folder::NeedsAction => "Needs_Action",
            Folder::InProgress => "In_Progress",
            Folder::Plans => "Plans",
            Folder::PendingApproval => "Pending_Approval",
            Folder::Approved => "Approved",
            Folder::Rejected => "Rejected",
            Folder::Done => "Done",
            Folder::Failed => "Failed",
            Folder::Logs => "Logs",
            Folder::Credentials => "credentials",
        }
    }

    /// The vault-relative name of file `name` in it (`Approved/x.md`), as messages and
    /// frontmatter show it.
    pub fn rel(self, name: &str) -> String {
        format!("{}/{name}", self.name())
    }

    /// Whether the program reads or writes it. Such a folder may not be a symlink (see
    /// `crate::nofollow`): `Logs/` (and the state folder) stop the supervisor, the others
    /// stop the watcher that uses them (exit 78). The other folders (`Plans/` …) are the
    /// user's.
    pub const fn is_working(self) -> bool {
        !matches!(
            self,
            Folder::Plans | Folder::PendingApproval | Folder::Rejected
        )
    }
}

impl AsRef<Path> for Folder {
    fn as_ref(&self) -> &Path {
        Path::new(self.name())
    }
}

/// The names of [`Folder::ALL`]: the folders every vault has (SPEC §1).
pub const FOLDERS: &[&str] = &{
    let mut names = [""; Folder::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Folder::ALL[i].name();
        i += 1;
    }
    names
};

/// File name of the process table inside a vault.
pub const VAULT_CONFIG_NAME: &str = "ai-employee.toml";

/// Supervisor state (lock, child records, heartbeats, control socket), hidden from Obsidian.
pub const STATE_DIR: &str = ".ai-employee";

/// The supervisor's control socket, in the state folder.
const CONTROL_SOCKET: &str = "control.sock";

/// Heartbeat files, one per child, in the state folder.
const HEARTBEAT_DIR: &str = "heartbeat";

#[derive(Debug, Clone)]
pub struct Vault {
    root: PathBuf,
}

impl Vault {
    /// `root` should be absolute (callers make it so).
    pub fn new(root: PathBuf) -> Self {
        Vault { root }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// One of the vault's folders.
    pub fn folder(&self, folder: Folder) -> PathBuf {
        self.root.join(folder)
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.folder(Folder::Logs)
    }
    pub fn system_log(&self) -> PathBuf {
        self.logs_dir().join("system.log")
    }
    pub fn child_log(&self, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }
    pub fn dashboard(&self) -> PathBuf {
        self.root.join("Dashboard.md")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }
    /// A file (or folder) of the state folder that one part of the program owns
    /// (`gmail.state`, `filesystem.ledger` …).
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }
    pub fn lock_file(&self) -> PathBuf {
        self.state_file("supervisor.lock")
    }
    /// The lock that keeps one instance of watcher `name` per vault.
    pub fn watcher_lock(&self, name: &str) -> PathBuf {
        self.state_file(&format!("{name}.lock"))
    }
    /// The socket `ai-employee status`, `start` and `stop` talk to the supervisor through.
    pub fn control_socket(&self) -> PathBuf {
        self.state_file(CONTROL_SOCKET)
    }
    pub fn children_record(&self) -> PathBuf {
        self.state_file("children")
    }
    pub fn heartbeat_dir(&self) -> PathBuf {
        self.state_file(HEARTBEAT_DIR)
    }
    pub fn heartbeat(&self, name: &str) -> PathBuf {
        self.heartbeat_dir().join(name)
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join(VAULT_CONFIG_NAME)
    }
}

/// What `init` did.
#[derive(Debug, Default)]
pub struct InitReport {
    pub created: Vec<PathBuf>,
    /// Working folders that are symlinks, one line each (left alone: the watcher that
    /// uses the folder refuses to run until it is a real folder).
    pub refused: Vec<String>,
}

const DASHBOARD_TEMPLATE: &str = "# AI Employee Dashboard\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n";

/// The task loop's prompt template (`Agent_Prompt.md`, `[agent] prompt`), written by
/// `init` for the user to edit; the loop's built-in template when the file is missing.
pub const AGENT_PROMPT_TEMPLATE: &str = include_str!("agent_prompt.md");

/// The default `[agent] prompt` file.
pub const AGENT_PROMPT_FILE: &str = "Agent_Prompt.md";

const HANDBOOK_TEMPLATE: &str = "# Company Handbook\n\nRules of engagement for the AI employee. Edit freely: the supervisor never\nwrites this file.\n\n- Ask for approval before sending anything on my behalf.\n- Never pay anything automatically.\n";

/// Create what is missing (folders, Dashboard.md, Company_Handbook.md, the process table,
/// the state folder); never overwrite what exists.
pub fn init(vault: &Vault, config_text: &str) -> io::Result<InitReport> {
    let mut report = create_folders(vault)?;
    report.created.extend(write_templates(vault, config_text)?);
    Ok(report)
}

/// The folder part of [`init`]: cheap (no file is written, nothing is fsynced). Never
/// creates anything through a symlink. `Logs/` or the state folder as a symlink is an
/// error ([`nofollow::is_symlink_error`] holds for it, and its message names the folder).
pub fn create_folders(vault: &Vault) -> io::Result<InitReport> {
    let mut report = InitReport::default();
    if !vault.root().exists() {
        std::fs::create_dir_all(vault.root())?;
        report.created.push(vault.root().to_path_buf());
    }
    let root = Dir::open(vault.root())?;
    for f in Folder::ALL {
        let existed = root.exists(f);
        // `credentials/` holds passwords and tokens: private (0700), made so if it is not.
        match root.make_folder(f, f == Folder::Credentials) {
            Ok(_) if !existed => report.created.push(vault.folder(f)),
            Ok(_) => {}
            Err(e) if e.is_symlink() && f == Folder::Logs => return Err(e.into()),
            Err(e) if e.is_symlink() => {
                if f.is_working() {
                    report.refused.push(e.to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    root.make_folder(STATE_DIR, true)?;
    root.make_folder(Path::new(STATE_DIR).join(HEARTBEAT_DIR), true)?;
    Ok(report)
}

/// The file part of [`init`]: each missing template written atomically and durably.
pub fn write_templates(vault: &Vault, config_text: &str) -> io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let root = Dir::open(vault.root())?;
    for (path, text) in [
        (vault.dashboard(), DASHBOARD_TEMPLATE),
        (vault.root().join("Company_Handbook.md"), HANDBOOK_TEMPLATE),
        (vault.root().join(AGENT_PROMPT_FILE), AGENT_PROMPT_TEMPLATE),
        (vault.config_file(), config_text),
    ] {
        // A name taken by anything (a symlink too) is left alone.
        let name = path.file_name().unwrap_or_default();
        if root.create_new(name, text.as_bytes(), 0o600)? {
            created.push(path);
        }
    }
    Ok(created)
}

/// Make `dir` private (0700), creating it (and its parents) if needed. `dir` itself must
/// not be a symlink (its parent is followed).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = super::atomic::parent_dir(dir);
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let name = dir
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no folder name"))?;
    Dir::open(parent)?.make_folder(name, true)?;
    Ok(())
}

/// The Dashboard written when none exists.
pub fn dashboard_template() -> &'static str {
    DASHBOARD_TEMPLATE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_name_their_files_relative_to_the_vault() {
        assert_eq!(Folder::Approved.rel("a.md"), "Approved/a.md");
        assert_eq!(
            Folder::Credentials.rel("smtp.toml"),
            "credentials/smtp.toml"
        );
        let vault = Vault::new(PathBuf::from("/v"));
        assert_eq!(
            vault.folder(Folder::NeedsAction),
            Path::new("/v/Needs_Action")
        );
        assert_eq!(
            vault.control_socket(),
            Path::new("/v/.ai-employee/control.sock")
        );
    }
}
