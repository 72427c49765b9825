//! The values `ai-employee setup` asks for: from its flag, else asked on the terminal
//! (dialoguer; secrets hidden), else its default. With `--no-input`, or without a
//! terminal, a value that has neither flag nor default is a usage error (exit 2).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use ai_employee_vault::exit_codes;
use dialoguer::{Confirm, Input, Password};

/// Why a value could not be had; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No flag, no default and no terminal to ask on.
    #[error("{what} is needed: pass {flag} (or run on a terminal without --no-input)")]
    Missing {
        what: &'static str,
        flag: &'static str,
    },
    /// A value given that cannot be used (an empty secret file, say).
    #[error("{0}")]
    Bad(String),
    /// The terminal went away or could not be read.
    #[error("cannot read the answer: {0}")]
    Terminal(String),
}

impl AskError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AskError::Missing { .. } | AskError::Bad(_) => exit_codes::USAGE,
            AskError::Terminal(_) => exit_codes::FAILURE,
        }
    }
}

/// Where a secret comes from when not asked for.
#[derive(Debug, Clone, Copy)]
pub enum SecretFrom<'a> {
    /// `--…-file FILE`: its first line.
    File(&'a Path),
    /// `--…-stdin`: the first line of standard input.
    Stdin,
    /// Ask (hidden input), if there is a terminal.
    Ask,
}

/// Asks, or does not.
pub struct Asker {
    interactive: bool,
}

impl Asker {
    /// Prompts only on a terminal (stdin and stderr), and never with `--no-input`.
    pub fn new(no_input: bool) -> Asker {
        Asker {
            interactive: !no_input
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal(),
        }
    }

    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// A text value: `given` (a flag), else asked with `default` offered, else `default`.
    /// `empty_ok`: an empty answer is a value ("none").
    pub fn text(
        &self,
        given: Option<&str>,
        prompt: &'static str,
        default: Option<&str>,
        flag: &'static str,
        empty_ok: bool,
    ) -> Result<String, AskError> {
        if let Some(v) = given {
            return Ok(v.trim().to_string());
        }
        if !self.interactive {
            return match default {
                Some(d) => Ok(d.to_string()),
                None if empty_ok => Ok(String::new()),
                None => Err(AskError::Missing { what: prompt, flag }),
            };
        }
        let mut input = Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(empty_ok);
        if let Some(d) = default {
            input = input.default(d.to_string());
        }
        input
            .interact_text()
            .map(|s| s.trim().to_string())
            .map_err(|e| AskError::Terminal(e.to_string()))
    }

    /// A secret: from `from`, else asked without echo. Never empty.
    pub fn secret(
        &self,
        from: SecretFrom<'_>,
        prompt: &'static str,
        flag: &'static str,
    ) -> Result<String, AskError> {
        let value = match from {
            SecretFrom::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AskError::Bad(format!("cannot read {}: {e}", path.display())))?;
                first_line(&text)
            }
            SecretFrom::Stdin => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| AskError::Bad(format!("cannot read standard input: {e}")))?;
                first_line(&line)
            }
            SecretFrom::Ask if self.interactive => {
                Password::new()
                    .with_prompt(prompt)
                    .interact()
                    .map_err(|e| AskError::Terminal(e.to_string()))?
            }
            SecretFrom::Ask => {
                return Err(AskError::Missing { what: prompt, flag });
            }
        };
        if value.trim().is_empty() {
            return Err(AskError::Bad(format!("{} is empty", prompt)));
        }
        Ok(value)
    }

    /// Yes or no; without a terminal, `default`.
    pub fn confirm(&self, prompt: &str, default: bool) -> Result<bool, AskError> {
        if !self.interactive {
            return Ok(default);
        }
        Confirm::new()
            .with_prompt(prompt)
            .default(default)
            .interact()
            .map_err(|e| AskError::Terminal(e.to_string()))
    }
}

/// The first line of `text`, without its line end.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_the_first_line() {
        assert_eq!(first_line("pw\nrest\n"), "pw");
        assert_eq!(first_line("pw\r\n"), "pw");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn a_missing_value_names_its_flag() {
        let a = Asker { interactive: false };
        let e = a
            .text(None, "IMAP host", None, "--host", false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "IMAP host is needed: pass --host (or run on a terminal without --no-input)"
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            a.text(None, "Port", Some("993"), "--port", false).unwrap(),
            "993"
        );
    }
}
