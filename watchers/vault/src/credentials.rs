//! Reading the files in `credentials/`: never through a link, typed fields with every
//! problem reported at once as `file:line:column` lines ([`Fields`]), and secrets that
//! never print. Shared by every watcher that talks to the outside world.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

mod fields;

pub use fields::Fields;

use crate::nofollow::{Dir, How};
use crate::toml_fields::Diagnostics;

/// Open the file `path` of the vault's `credentials/` folder as `how` says. Nothing from
/// `credentials/` down (the folder, any folder below it, the file) is reached through a
/// symlink: a link there could make a parse error quote another file's line, or a token
/// refresh overwrite a file outside the vault. A path without a `credentials` folder is
/// opened without following its last component.
pub fn open_file(path: &Path, how: How) -> io::Result<File> {
    let (base, rel) = anchor(path);
    Dir::open(&base)?.file(rel, how)
}

/// The whole file `path` of `credentials/` as text (see [`open_file`]).
pub fn read_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    open_file(path, How::READ)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Replace the file `path` of `credentials/` atomically (see [`open_file`]); it keeps its
/// permission bits, a new file is `0600`.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (base, rel) = anchor(path);
    let root = Dir::open(&base)?;
    let (folder, name) = match (rel.parent(), rel.file_name()) {
        (Some(f), Some(n)) => (f, n),
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    let dir = if folder.as_os_str().is_empty() {
        root
    } else {
        root.open_dir(folder)?
    };
    dir.write_atomic(name, bytes, 0o600)
}

/// `path` split after the vault: (`<vault>`, `credentials/…`), or (its folder, its name).
fn anchor(path: &Path) -> (PathBuf, PathBuf) {
    let parts: Vec<_> = path.components().collect();
    if let Some(i) = parts.iter().rposition(|c| c.as_os_str() == "credentials")
        && i + 1 < parts.len()
    {
        let base: PathBuf = parts[..i].iter().collect();
        let rel: PathBuf = parts[i..].iter().collect();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        return (base, rel);
    }
    let base = crate::atomic::parent_dir(path).to_path_buf();
    let rel = path.file_name().map(PathBuf::from).unwrap_or_default();
    (base, rel)
}

/// A password or token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The host part of `scheme://[user@]host[:port]/…`.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The keys of a mail server and its login (`gmail.toml` for IMAP, `smtp.toml`), in the
/// order messages list them; each file has a few more of its own.
pub const MAIL_SERVER_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "password",
    "oauth_token_file",
];

/// What a watcher tells a person whose credentials file is missing, unreadable or
/// invalid, after the file's path or problems.
#[derive(Debug)]
pub struct Guide {
    /// After `no credentials: create <path> `: what to write, where the docs are.
    pub create: &'static str,
    /// After `cannot read <path>: <error>`.
    pub unreadable: &'static str,
    /// After the file's problems.
    pub invalid: &'static str,
}

/// Why a watcher cannot use its credentials file (exit 78).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no credentials: create {} {}", path.display(), guide.create)]
    Missing {
        path: PathBuf,
        guide: &'static Guide,
    },
    #[error("cannot read {}: {source}{}", path.display(), guide.unreadable)]
    Unreadable {
        path: PathBuf,
        source: io::Error,
        guide: &'static Guide,
    },
    /// Every problem of the file, one line each.
    #[error("{errors}{}", guide.invalid)]
    Invalid {
        errors: Diagnostics,
        guide: &'static Guide,
    },
}

impl Guide {
    /// The text of the credentials file `path`, which the watcher cannot run without.
    pub fn read(&'static self, path: &Path) -> Result<String, LoadError> {
        read_file(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LoadError::Missing {
                path: path.to_path_buf(),
                guide: self,
            },
            _ => LoadError::Unreadable {
                path: path.to_path_buf(),
                source: e,
                guide: self,
            },
        })
    }

    /// The file's problems, as the watcher reports them.
    pub fn invalid(&'static self, errors: Diagnostics) -> LoadError {
        LoadError::Invalid {
            errors,
            guide: self,
        }
    }
}

/// Warn when the credentials file `path` (`rel` in the vault) can be read by other users.
pub fn warn_if_readable_by_others(path: &Path, rel: &str) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::symlink_metadata(path) {
        warn_if_open(rel, m.mode());
    }
}

/// Warn when permission bits `mode` of the credentials file `rel` let other users read it.
pub fn warn_if_open(rel: &str, mode: u32) {
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{rel} can be read by other users (mode {:o}): run `chmod 600` on it",
            mode & 0o777
        );
    }
}
