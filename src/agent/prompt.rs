//! The prompt the agent is given: a template (the built-in one below, or the file
//! `[agent] prompt` names in the vault, which `init` writes for the user to edit) with
//! `{placeholders}` filled in. docs/agent.md lists them.

/// The built-in template (also what `init` writes to the vault).
pub const DEFAULT_TEMPLATE: &str = ai_employee_vault::layout::AGENT_PROMPT_TEMPLATE;

/// The continuation after a run that ended without a status line.
pub const CONTINUE: &str = "Task file: {task_file}\n\nYou stopped without the status line. \
Continue the task where you left off, and end with exactly one status line: `STATUS: done`, \
`STATUS: waiting for approval` or `STATUS: failed: <reason>`.";

/// What fills a template.
#[derive(Debug, Clone, Default)]
pub struct Fill<'a> {
    /// Vault-relative path of the task file (`In_Progress/…`).
    pub task_file: &'a str,
    pub task: &'a str,
    pub title: &'a str,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The last error, for a retry.
    pub last_error: Option<&'a str>,
    /// Approval requests this task already has (vault-relative), so none is drafted twice.
    pub existing: &'a [String],
    /// The copy a filesystem task describes (vault-relative), if any.
    pub attachment: Option<&'a str>,
}

/// Fill `template`. Unknown `{words}` stay as written; `{{` and `}}` are braces.
pub fn render(template: &str, f: &Fill<'_>) -> String {
    let retry = match f.last_error {
        Some(e) if f.attempt > 1 => format!(
            "This is attempt {} of {}. The previous attempt failed: {e}\n",
            f.attempt, f.max_attempts
        ),
        _ => String::new(),
    };
    let existing = if f.existing.is_empty() {
        "none".to_string()
    } else {
        f.existing.join(", ")
    };
    let attachment = f
        .attachment
        .map(|a| format!("The file it describes: {a}\n"))
        .unwrap_or_default();
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('{')
            && let Some(end) = tail.find('}')
        {
            let word = &tail[1..end];
            let value = match word {
                "task_file" => Some(f.task_file.to_string()),
                "task" => Some(f.task.to_string()),
                "title" => Some(f.title.to_string()),
                "attempt" => Some(f.attempt.to_string()),
                "retry_note" => Some(retry.clone()),
                "existing_approvals" => Some(existing.clone()),
                "attachment_note" => Some(attachment.clone()),
                _ => None,
            };
            if let Some(v) = value {
                out.push_str(&v);
                rest = &tail[end + 1..];
                continue;
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_default_template() {
        let existing = vec!["Pending_Approval/APPROVAL_x_email.md".to_string()];
        let p = render(
            DEFAULT_TEMPLATE,
            &Fill {
                task_file: "In_Progress/EMAIL_x.md",
                task: "EMAIL_x",
                title: "Invoice",
                attempt: 2,
                max_attempts: 5,
                last_error: Some("timed out"),
                existing: &existing,
                attachment: None,
            },
        );
        assert!(p.contains("Task file: In_Progress/EMAIL_x.md"), "{p}");
        assert!(p.contains("task: EMAIL_x"));
        assert!(p.contains("attempt 2 of 5"));
        assert!(p.contains("Pending_Approval/APPROVAL_x_email.md"));
        assert!(!p.contains("{task"), "{p}");
    }

    #[test]
    fn braces_and_unknown_words() {
        let f = Fill::default();
        assert_eq!(render("{{x}} {nope} {", &f), "{x} {nope} {");
    }
}
