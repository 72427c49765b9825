//! The questions both mail parts ask (`gmail`: IMAP, `smtp`): the server, TLS, the port,
//! the login and its password or OAuth token file, an extra CA.

use toml_edit::Value;

use super::prompt::{AskError, Asker, SecretFrom};
use crate::cli::{MailServerArgs, PasswordArgs};

/// A file's keys and values, in the order it lists them.
pub type Keys = Vec<(&'static str, Value)>;

/// What differs between the two.
pub struct Defaults {
    pub host_prompt: &'static str,
    pub host: Option<&'static str>,
    pub tls: &'static str,
    /// The loader's default port for tls, starttls and none.
    pub ports: (u16, u16, u16),
    /// Whether no login at all is a choice (a local relay).
    pub login_optional: bool,
}

/// Where the password comes from.
pub fn password_from(p: &PasswordArgs) -> SecretFrom<'_> {
    match (&p.password_file, p.password_stdin) {
        (Some(f), _) => SecretFrom::File(f),
        (None, true) => SecretFrom::Stdin,
        (None, false) => SecretFrom::Ask,
    }
}

/// The server's keys, in the order the file lists them, and the login (empty: none).
pub fn ask(asker: &Asker, a: &MailServerArgs, d: &Defaults) -> Result<(Keys, String), AskError> {
    let host = asker.text(a.host.as_deref(), d.host_prompt, d.host, "--host", false)?;
    let tls = asker.text(
        a.tls.as_deref(),
        "TLS (tls, starttls or none)",
        Some(d.tls),
        "--tls",
        false,
    )?;
    if !matches!(tls.as_str(), "tls" | "starttls" | "none") {
        return Err(AskError::Bad(format!(
            "TLS must be tls, starttls or none, not {tls:?}"
        )));
    }
    let (t, s, n) = d.ports;
    let default_port = super::default_port(&tls, t, s, n).to_string();
    let port = asker.text(
        a.port.map(|p| p.to_string()).as_deref(),
        "Port",
        Some(&default_port),
        "--port",
        false,
    )?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AskError::Bad(format!("the port must be 1 to 65535, not {port:?}")))?;
    let user = if d.login_optional {
        asker.text(
            a.user.as_deref(),
            "Login (empty for none)",
            None,
            "--user",
            true,
        )?
    } else {
        asker.text(
            a.user.as_deref(),
            "Login (the mail account)",
            None,
            "--user",
            false,
        )?
    };
    let mut keys: Keys = vec![
        ("host", host.into()),
        ("port", i64::from(port).into()),
        ("tls", tls.into()),
    ];
    if !user.is_empty() {
        keys.push(("username", user.clone().into()));
        match &a.oauth_token_file {
            Some(name) => keys.push(("oauth_token_file", name.clone().into())),
            None => {
                let pw = asker.secret(
                    password_from(&a.password),
                    "Password",
                    "--password-file or --password-stdin",
                )?;
                keys.push(("password", pw.into()));
            }
        }
    }
    if let Some(ca) = &a.ca_file {
        keys.push(("ca_file", ca.clone().into()));
    }
    Ok((keys, user))
}
