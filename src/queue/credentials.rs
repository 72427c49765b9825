//! `credentials/queue.toml`: the Redis ACL user, its password and an extra CA for
//! `rediss://`. The task loop and `workers` read the vault's; a worker on another host
//! reads the file `--credentials` names (same format). The password never appears in a
//! message or a log.
//!
//! ```toml
//! username = "ai-employee"      # the ACL user (omit for the default user)
//! password = "…"                # its password
//! ca_file = "redis-ca.pem"      # optional, relative to the file's folder
//! ```
//!
//! No file is fine: Redis without a password (on loopback, or a private network).

use std::path::Path;

use ai_employee_vault::credentials::{self, Fields, Guide, LoadError};
use ai_employee_vault::toml_fields::{Diagnostics, Recorded};

use super::client::Credentials;

/// The file's name in the vault.
pub const FILE: &str = "credentials/queue.toml";

const GUIDE: Guide = Guide {
    create: "(username and password of the Redis ACL user); see docs/workers.md",
    unreadable: "; see docs/workers.md",
    invalid: "",
};

/// The vault's `credentials/queue.toml`; none when the file does not exist.
pub fn load_vault(vault: &Path) -> Result<Credentials, LoadError> {
    load_file(&vault.join(FILE), FILE, true)
}

/// A credentials file at `path` (`shown` in messages). `optional`: a missing file means
/// no credentials.
pub fn load_file(path: &Path, shown: &str, optional: bool) -> Result<Credentials, LoadError> {
    let text = match GUIDE.read(path) {
        Ok(t) => t,
        Err(LoadError::Missing { .. }) if optional => return Ok(Credentials::default()),
        Err(e) => return Err(e),
    };
    credentials::warn_if_readable_by_others(path, shown);
    let dir = ai_employee_vault::atomic::parent_dir(path);
    parse(shown, &text, dir).map_err(|e| GUIDE.invalid(e))
}

/// The file's text; a relative `ca_file` is taken from `dir`.
pub fn parse(shown: &str, text: &str, dir: &Path) -> Result<Credentials, Diagnostics> {
    Fields::read(shown, text, |f| read(f, dir))
}

fn read(f: &mut Fields<'_>, dir: &Path) -> Result<Credentials, Recorded> {
    f.only_keys(&["username", "password", "ca_file"]);
    let username = f.nonblank("username");
    let password = f.str("password");
    let ca_file = f.nonblank("ca_file");
    let (username, password, ca_file) = (username?, password?, ca_file?);
    if username.is_some() && password.is_none() {
        return Err(f.lacking(
            "username",
            "`username` is set but `password` is not".to_string(),
        ));
    }
    Ok(Credentials {
        username: username.map(str::to_string),
        password: password.map(|p| p.to_string().into()),
        ca_file: ca_file.map(|c| dir.join(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Credentials, String> {
        parse("credentials/queue.toml", text, Path::new("/v/credentials"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_user_and_never_shows_the_password() {
        let c =
            parse_str("username = \"w\"\npassword = \"s3cret\"\nca_file = \"ca.pem\"\n").unwrap();
        assert_eq!(c.username.as_deref(), Some("w"));
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("s3cret"));
        assert_eq!(
            c.ca_file.as_deref(),
            Some(Path::new("/v/credentials/ca.pem"))
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(parse_str("").unwrap().password.is_none());
    }

    #[test]
    fn problems_name_the_file_line_and_column() {
        assert_eq!(
            parse_str("username = \"w\"\npasword = \"x\"\n").unwrap_err(),
            "credentials/queue.toml:2:1: unknown key `pasword` (known: username, password, ca_file)"
        );
        assert_eq!(
            parse_str("password = 3\n").unwrap_err(),
            "credentials/queue.toml:1:12: `password` must be a string, found an integer"
        );
        assert!(
            parse_str("username = \"w\"\n")
                .unwrap_err()
                .contains("`password` is not")
        );
    }
}
