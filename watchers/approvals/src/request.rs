//! An approval file's frontmatter → a validated [`Request`], or the reason it is refused.
//!
//! Only what passes here is ever executed. The checks, in order: `type`, `action`,
//! "already executed", `expires`, `approved_by`, `allow_duplicate`, `task`, then the
//! action's own fields (and, for email attachments, that each one is a regular file
//! inside the vault, outside `credentials/` and `.ai-employee/`). Messages are one line, name the field, and say
//! what was expected and what was found.

use std::io;
use std::path::{Component, Path, PathBuf};

use ai_employee_vault::frontmatter::{self, Document};
use ai_employee_vault::layout::{Folder, STATE_DIR};
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, Mailboxes};
use serde_norway::{Mapping, Value};

use super::actions::email::NAME as EMAIL;
use super::actions::github::NAME as GITHUB;
use super::actions::linkedin::NAME as LINKEDIN;
use super::actions::payment::NAME as PAYMENT;
use super::actions::run_task::NAME as RUN_TASK;
use super::actions::whatsapp::NAME as WHATSAPP;
use super::outcome::results;

/// The actions this handler carries out; nothing else is ever executed.
pub const ACTIONS: &[&str] = &[EMAIL, WHATSAPP, LINKEDIN, PAYMENT, RUN_TASK, GITHUB];

/// Approval files larger than this are refused unread.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Total size of an email's attachments.
pub const MAX_ATTACHMENT_BYTES: u64 = 20 * 1024 * 1024;
/// WhatsApp's limit for a text message.
pub const MAX_WHATSAPP_CHARS: usize = 4096;
/// LinkedIn's limit for a post.
pub const MAX_LINKEDIN_CHARS: usize = 3000;
/// The longest task id (`task`).
pub const MAX_TASK_ID_CHARS: usize = 200;
/// The longest GitHub comment: GitHub takes 65,536 characters, and the handler adds its
/// marker (an HTML comment of about 60) to each.
pub const MAX_GITHUB_COMMENT_CHARS: usize = 65_000;

#[derive(Debug, Clone)]
pub struct Request {
    pub action: Action,
    /// `approved_by` from the frontmatter, else `human`.
    pub approved_by: String,
    /// `allow_duplicate: true`: carry it out even if the same action with the same
    /// content was carried out within the last 7 days.
    pub allow_duplicate: bool,
    /// `task`: the id of the task this approval belongs to (the task loop's, a file stem
    /// such as `EMAIL_20261206T050000_hello`); recorded in the audit log.
    pub task: Option<String>,
}

impl Request {
    /// The content key of the duplicate rule: SHA-256 of the action's parameters and text
    /// after parsing, in a canonical form. Two approvals with the same key do the same
    /// thing. In: the action; for email the addresses of `to`, `cc` and `bcc` (lowercase,
    /// sorted, without display names), `subject`, the text and each attachment's path and
    /// SHA-256; for WhatsApp the number and the message; for LinkedIn the post; for a
    /// payment `amount`, `currency` (uppercase), `recipient`, `reason`; for `run_task`
    /// `task` and `created` (a copy of one request, not a new request for the task); for
    /// a GitHub comment the repository (lowercase), the issue number and the comment.
    /// Texts have their line ends made `\n` and trailing white space at the end removed.
    /// Not in: everything else in the frontmatter (`status`, `created` and `task` of the
    /// other actions, `expires`, `approved_by`, `message_id`, notes, key order, quoting,
    /// spacing) and the file's name.
    pub fn content_key(&self) -> String {
        use serde_json::json;
        let text = |t: &str| {
            t.replace("\r\n", "\n")
                .replace('\r', "\n")
                .trim_end()
                .to_string()
        };
        let addrs = |list: &[Mailbox]| {
            let mut v: Vec<String> = list
                .iter()
                .map(|m| m.email.to_string().to_lowercase())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let canonical = match &self.action {
            Action::Email(e) => json!({
                "action": EMAIL,
                "to": addrs(&e.to),
                "cc": addrs(&e.cc),
                "bcc": addrs(&e.bcc),
                "subject": e.subject.trim(),
                "text": text(&e.body),
                "attachments": e.attachments.iter().map(|a| json!([
                    a.rel, super::util::sha256_hex(&a.bytes)
                ])).collect::<Vec<_>>(),
            }),
            Action::Whatsapp(w) => json!({
                "action": WHATSAPP,
                "to": w.to,
                "text": text(&w.body),
            }),
            Action::Linkedin(l) => json!({
                "action": LINKEDIN,
                "text": text(&l.body),
            }),
            Action::Payment(p) => json!({
                "action": PAYMENT,
                "amount": p.amount,
                "currency": p.currency.as_deref().map(|c| c.trim().to_uppercase()),
                "recipient": p.recipient.trim(),
                "reason": text(&p.reason),
            }),
            Action::RunTask(r) => json!({
                "action": RUN_TASK,
                "task": r.task,
                "created": r.created,
            }),
            Action::GithubComment(c) => json!({
                "action": GITHUB,
                "repo": c.repo.to_string().to_lowercase(),
                "issue": c.issue,
                "text": text(&c.body),
            }),
        };
        super::util::sha256_hex(canonical.to_string().as_bytes())
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Email(Email),
    Whatsapp(Whatsapp),
    Linkedin(Linkedin),
    Payment(Payment),
    RunTask(RunTask),
    GithubComment(GithubComment),
}

/// `github_comment`: one comment on an issue (or pull request) of a repository.
#[derive(Debug, Clone)]
pub struct GithubComment {
    pub repo: ai_employee_vault::github::Repo,
    /// The issue's number.
    pub issue: u64,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Email {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// `message_id` from the frontmatter: a file re-approved after an unknown outcome
    /// sends the very same message (mail clients drop a second copy with the same ID).
    pub message_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    /// As written in the approval.
    pub rel: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Whatsapp {
    /// Digits only, country code first.
    pub to: String,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Linkedin {
    pub body: String,
}

/// `run_task`: a person lets the task loop run the AI agent on a task.
#[derive(Debug, Clone)]
pub struct RunTask {
    /// The task's id (as in `task`).
    pub task: String,
    /// `title`, if any: for the audit log.
    pub title: Option<String>,
    /// `created` as written, if any: tells one request of the task loop from another for
    /// the same task (a copy of the same request is a duplicate, a new request is not).
    pub created: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Payment {
    /// As a decimal string (`120.5`).
    pub amount: String,
    pub currency: Option<String>,
    pub recipient: String,
    pub reason: String,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Email(_) => EMAIL,
            Action::Whatsapp(_) => WHATSAPP,
            Action::Linkedin(_) => LINKEDIN,
            Action::Payment(_) => PAYMENT,
            Action::RunTask(_) => RUN_TASK,
            Action::GithubComment(_) => GITHUB,
        }
    }

    /// Who or what the action is aimed at (the audit log's `target`).
    pub fn target(&self) -> String {
        match self {
            Action::Email(e) => {
                e.to.iter()
                    .map(|m| m.email.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Action::Whatsapp(w) => format!("+{}", w.to),
            Action::Linkedin(_) => super::actions::linkedin::QUEUE_FILE.to_string(),
            Action::Payment(p) => p.recipient.clone(),
            Action::RunTask(r) => r.task.clone(),
            Action::GithubComment(c) => format!("{}#{}", c.repo, c.issue),
        }
    }

    /// The audit log's `parameters`: no secrets, no full bodies.
    pub fn parameters(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Action::Email(e) => json!({
                "subject": e.subject,
                "cc": e.cc.iter().map(|m| m.email.to_string()).collect::<Vec<_>>(),
                "bcc_count": e.bcc.len(),
                "body_chars": e.body.chars().count(),
                "body_preview": preview(&e.body),
                "attachments": e.attachments.iter().map(|a| json!({
                    "path": a.rel, "bytes": a.bytes.len()
                })).collect::<Vec<_>>(),
            }),
            Action::Whatsapp(w) => json!({
                "body_chars": w.body.chars().count(),
                "body_preview": preview(&w.body),
            }),
            Action::Linkedin(l) => json!({
                "body_chars": l.body.chars().count(),
                "body_preview": preview(&l.body),
            }),
            Action::Payment(p) => json!({
                "amount": p.amount,
                "currency": p.currency,
                "recipient": p.recipient,
                "reason": p.reason,
            }),
            Action::RunTask(r) => match &r.title {
                Some(title) => json!({ "title": title }),
                None => json!({}),
            },
            Action::GithubComment(c) => json!({
                "body_chars": c.body.chars().count(),
                "body_preview": preview(&c.body),
            }),
        }
    }
}

/// The first 40 characters on one line, with `…` when cut.
pub fn preview(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = flat.chars().take(40).collect();
    if flat.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// The `action` field as written, for the audit log of a refused file.
pub fn action_of(front: &Mapping) -> String {
    match front.get("action") {
        Some(Value::String(s)) => s.clone(),
        _ => "unknown".to_string(),
    }
}

/// Why an approval file is not a request this handler carries out: one line that names
/// the field, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("missing field `{field}` ({needs})")]
    Missing { field: &'static str, needs: String },
    #[error("field `{field}` is empty")]
    Empty { field: &'static str },
    /// The field holds another kind of value (`found`: "a number", "a list containing a
    /// number" …).
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    /// The field has the right kind of value, but not a usable one (`problem` says how,
    /// and what was found).
    #[error("field `{field}` {problem}")]
    BadValue {
        field: &'static str,
        problem: String,
    },
    #[error("field `{field}`: {text:?} is not a valid email address")]
    BadAddress { field: &'static str, text: String },
    #[error("`type` is {0:?}, not \"approval_request\": only approval requests are executed")]
    NotARequest(String),
    #[error("unknown action {0:?}: only {list} are allowed", list = ACTIONS.join(", "))]
    UnknownAction(String),
    /// `when`: ` at <executed_at>`, or nothing.
    #[error(
        "already executed (result: {result}{when}): to run it again, remove `result` and \
         `executed_at`"
    )]
    AlreadyExecuted { result: String, when: String },
    #[error("approval expired at {0}: ask again rather than act late")]
    Expired(String),
    #[error("the email text (after the frontmatter) is empty")]
    NoEmailText,
    /// The text to send is empty (`what`: "message", "post").
    #[error("the {what} is empty (a `body` field or text after the frontmatter)")]
    NoText { what: &'static str },
    #[error("the {what} has {chars} characters, over {service}'s {max}")]
    TooLong {
        what: &'static str,
        chars: usize,
        service: &'static str,
        max: usize,
    },
    #[error("attachment {rel:?}: {why}")]
    Attachment { rel: String, why: Unattachable },
    #[error("attachments: {} in all, over the {} limit", mib(*.total), mib(*.limit))]
    AttachmentsTooLarge { total: u64, limit: u64 },
    #[error("cannot resolve the vault folder: {0}")]
    Vault(io::Error),
}

/// Check everything that can be checked without credentials or network.
pub fn validate(doc: &Document, now: DateTime<Utc>, vault: &Path) -> Result<Request, Invalid> {
    let f = Fields(&doc.front);
    match f.str("type")? {
        None => {
            return Err(Invalid::Missing {
                field: "type",
                needs: "an approval file has `type: approval_request`".into(),
            });
        }
        Some("approval_request") => {}
        Some(other) => return Err(Invalid::NotARequest(other.to_string())),
    }
    let action = match f.str("action")? {
        None => {
            return Err(Invalid::Missing {
                field: "action",
                needs: format!("one of {}", ACTIONS.join(", ")),
            });
        }
        Some(a) if ACTIONS.contains(&a) => a,
        Some(other) => return Err(Invalid::UnknownAction(other.to_string())),
    };
    if let Some(Value::String(r)) = doc.front.get("result")
        && results::EXECUTED.contains(&r.as_str())
    {
        let when = frontmatter::get_str(&doc.front, "executed_at")
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        return Err(Invalid::AlreadyExecuted {
            result: r.clone(),
            when,
        });
    }
    if let Some(expires) = f.str("expires")? {
        let t = parse_time(expires).ok_or_else(|| Invalid::BadValue {
            field: "expires",
            problem: format!(
                "is not a time: {expires:?} (expected RFC 3339 with a time zone, e.g. \
                 2026-01-08T10:30:00Z)"
            ),
        })?;
        if t <= now {
            return Err(Invalid::Expired(
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
    }
    let approved_by = f.str("approved_by")?.unwrap_or("human").to_string();
    let allow_duplicate = match doc.front.get("allow_duplicate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(f.wrong("allow_duplicate", "true or false", v)),
    };
    let task = task_of(&f)?;
    let action = match action {
        EMAIL => Action::Email(email(&f, &doc.body, vault)?),
        WHATSAPP => Action::Whatsapp(whatsapp(&f, &doc.body)?),
        LINKEDIN => Action::Linkedin(linkedin(&f, &doc.body)?),
        RUN_TASK => Action::RunTask(run_task(&f, task.as_deref())?),
        GITHUB => Action::GithubComment(github_comment(&f, &doc.body)?),
        _ => Action::Payment(payment(&f)?),
    };
    Ok(Request {
        action,
        approved_by,
        allow_duplicate,
        task,
    })
}

/// Whether `s` is a task id: 1 to [`MAX_TASK_ID_CHARS`] characters of `A-Z a-z 0-9 . _ -`,
/// not starting with `.` (a task file's stem: never a path, never hidden).
pub fn is_task_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TASK_ID_CHARS
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `task`, optional on every request: the id of the task it belongs to.
fn task_of(f: &Fields) -> Result<Option<String>, Invalid> {
    let task = match f.0.get("task") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(v) => return Err(f.wrong("task", "a task id (a string)", v)),
    };
    if task.is_empty() {
        return Err(Invalid::Empty { field: "task" });
    }
    if is_task_id(task) {
        return Ok(Some(task.clone()));
    }
    let chars = task.chars().count();
    let problem = if chars > MAX_TASK_ID_CHARS {
        format!("is not a task id: {chars} characters, over {MAX_TASK_ID_CHARS}")
    } else {
        format!(
            "is not a task id: {task:?} (1 to {MAX_TASK_ID_CHARS} characters of A-Z, a-z, 0-9, \
             `.`, `_`, `-`, not starting with `.`)"
        )
    };
    Err(Invalid::BadValue {
        field: "task",
        problem,
    })
}

fn run_task(f: &Fields, task: Option<&str>) -> Result<RunTask, Invalid> {
    let task = task.ok_or_else(|| Invalid::Missing {
        field: "task",
        needs: format!("{RUN_TASK} needs `task`, the id of the task to run"),
    })?;
    Ok(RunTask {
        task: task.to_string(),
        // Notes, not checked (like every other key): kept when they are text.
        title: frontmatter::get_str(f.0, "title").map(str::to_string),
        created: frontmatter::get_str(f.0, "created").map(str::to_string),
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Typed access to the frontmatter with uniform messages.
struct Fields<'a>(&'a Mapping);

impl Fields<'_> {
    fn wrong(&self, field: &'static str, expected: &'static str, v: &Value) -> Invalid {
        Invalid::WrongType {
            field,
            expected,
            found: frontmatter::kind(v).to_string(),
        }
    }

    fn str(&self, key: &'static str) -> Result<Option<&str>, Invalid> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    fn required(&self, key: &'static str, action: &str, needs: &str) -> Result<&str, Invalid> {
        match self.str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(Invalid::Empty { field: key }),
            None => Err(Invalid::Missing {
                field: key,
                needs: format!("{action} needs {needs}"),
            }),
        }
    }

    /// A string or a list of strings.
    fn strings(&self, key: &'static str, expected: &'static str) -> Result<Vec<String>, Invalid> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(Invalid::WrongType {
                        field: key,
                        expected,
                        found: format!("a list containing {}", frontmatter::kind(other)),
                    }),
                })
                .collect(),
            Some(v) => Err(self.wrong(key, expected, v)),
        }
    }
}

const EMAIL_NEEDS: &str = "`to`, `subject` and the email text after the frontmatter";

fn email(f: &Fields, body: &str, vault: &Path) -> Result<Email, Invalid> {
    let to = addresses(f, "to")?;
    if to.is_empty() {
        return Err(Invalid::Missing {
            field: "to",
            needs: format!("{EMAIL} needs {EMAIL_NEEDS}"),
        });
    }
    let cc = addresses(f, "cc")?;
    let bcc = addresses(f, "bcc")?;
    let subject = f.required("subject", EMAIL, EMAIL_NEEDS)?;
    if subject.contains(['\r', '\n']) {
        return Err(Invalid::BadValue {
            field: "subject",
            problem: "must be one line".into(),
        });
    }
    let body = body.trim_start_matches(['\r', '\n']);
    if body.trim().is_empty() {
        return Err(Invalid::NoEmailText);
    }
    let paths = match f.0.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(_)) => f.strings("attachments", "a list of vault-relative paths")?,
        Some(v) => return Err(f.wrong("attachments", "a list of vault-relative paths", v)),
    };
    let attachments = attachments(vault, &paths)?;
    let message_id = match f.str("message_id")? {
        None => None,
        Some(id) => {
            let ok = id.starts_with('<')
                && id.ends_with('>')
                && id.contains('@')
                && id.is_ascii()
                && !id.contains(char::is_whitespace);
            if !ok {
                return Err(Invalid::BadValue {
                    field: "message_id",
                    problem: format!("must look like \"<id@domain>\", found {id:?}"),
                });
            }
            Some(id.to_string())
        }
    };
    Ok(Email {
        message_id,
        to,
        cc,
        bcc,
        subject: subject.to_string(),
        body: body.to_string(),
        attachments,
    })
}

fn addresses(f: &Fields, key: &'static str) -> Result<Vec<Mailbox>, Invalid> {
    let mut out = Vec::new();
    for text in f.strings(key, "an email address or a list of them")? {
        let parsed: Mailboxes = match text.parse() {
            Ok(p) => p,
            Err(_) => return Err(Invalid::BadAddress { field: key, text }),
        };
        out.extend(parsed);
    }
    Ok(out)
}

fn attachments(vault: &Path, paths: &[String]) -> Result<Vec<Attachment>, Invalid> {
    let canon_vault = vault.canonicalize().map_err(Invalid::Vault)?;
    let mut total = 0u64;
    let mut out = Vec::new();
    for rel in paths {
        let a = attachment(vault, &canon_vault, rel)?;
        total += a.bytes.len() as u64;
        if total > MAX_ATTACHMENT_BYTES {
            return Err(Invalid::AttachmentsTooLarge {
                total,
                limit: MAX_ATTACHMENT_BYTES,
            });
        }
        out.push(a);
    }
    Ok(out)
}

fn attachment(vault: &Path, canon_vault: &Path, rel: &str) -> Result<Attachment, Invalid> {
    let found = attachment_bytes(vault, canon_vault, rel).map_err(|why| Invalid::Attachment {
        rel: rel.to_string(),
        why,
    });
    let (canon, bytes) = found?;
    let file_name = canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".to_string());
    Ok(Attachment {
        rel: rel.to_string(),
        file_name,
        bytes,
    })
}

/// Why a file cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum Unattachable {
    #[error("empty path")]
    EmptyPath,
    #[error("must not contain \"..\"")]
    ParentDir,
    #[error("outside the vault")]
    Outside,
    #[error("not found")]
    NotFound,
    #[error("a symbolic link leads outside the vault")]
    LinkOutside,
    /// Under `credentials/` or the state folder (the name).
    #[error("files under {0}/ are never attached")]
    Private(String),
    #[error("not a regular file")]
    NotRegular,
    #[error("{} is over the {} limit", mib(*.size), mib(*.limit))]
    TooLarge { size: u64, limit: u64 },
    #[error("cannot be read: {0}")]
    Unreadable(io::Error),
}

/// The canonical path and the bytes of the attachment `rel`.
fn attachment_bytes(
    vault: &Path,
    canon_vault: &Path,
    rel: &str,
) -> Result<(PathBuf, Vec<u8>), Unattachable> {
    if rel.trim().is_empty() {
        return Err(Unattachable::EmptyPath);
    }
    let p = Path::new(rel);
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(Unattachable::ParentDir);
    }
    let joined: PathBuf = if p.is_absolute() {
        p.to_path_buf()
    } else {
        vault.join(p)
    };
    if !(joined.starts_with(vault) || joined.starts_with(canon_vault)) {
        return Err(Unattachable::Outside);
    }
    let canon = match joined.canonicalize() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unattachable::NotFound),
        Err(e) => return Err(Unattachable::Unreadable(e)),
    };
    let Ok(inside) = canon.strip_prefix(canon_vault) else {
        return Err(Unattachable::LinkOutside);
    };
    if let Some(Component::Normal(first)) = inside.components().next()
        && (first == Folder::Credentials.name() || first == STATE_DIR)
    {
        return Err(Unattachable::Private(first.to_string_lossy().into_owned()));
    }
    let bytes = read_regular(canon_vault, inside, MAX_ATTACHMENT_BYTES)?;
    Ok((canon, bytes))
}

/// Read the regular file `rel` of `vault` (resolved beneath it with no symlink in any
/// component: the path was canonicalised just before, so a link there now was swapped
/// in meanwhile), at most `limit` bytes.
fn read_regular(vault: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, Unattachable> {
    use ai_employee_vault::nofollow::{Dir, How};
    use std::io::Read;
    let file = Dir::open(vault)
        .and_then(|root| root.file(rel, How::READ))
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => Unattachable::NotRegular,
            _ => Unattachable::Unreadable(e),
        })?;
    let meta = file.metadata().map_err(Unattachable::Unreadable)?;
    if meta.len() > limit {
        return Err(Unattachable::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Unattachable::Unreadable)?;
    Ok(bytes)
}

pub fn mib(bytes: u64) -> String {
    ai_employee_vault::units::format_mib(bytes)
}

/// The text to send: the `body` field if there is one, else the Markdown after the
/// frontmatter; not empty, and at most `max` characters (`what`: "message", "post").
fn message_body(
    f: &Fields,
    body: &str,
    what: &'static str,
    service: &'static str,
    max: usize,
) -> Result<String, Invalid> {
    let text = match f.str("body")? {
        Some(b) => b.trim().to_string(),
        None => body.trim().to_string(),
    };
    if text.is_empty() {
        return Err(Invalid::NoText { what });
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(Invalid::TooLong {
            what,
            chars,
            service,
            max,
        });
    }
    Ok(text)
}

fn whatsapp(f: &Fields, body: &str) -> Result<Whatsapp, Invalid> {
    let raw = match f.0.get("to") {
        None | Some(Value::Null) => {
            return Err(Invalid::Missing {
                field: "to",
                needs: format!("{WHATSAPP} needs `to` and a message body"),
            });
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(v) => return Err(f.wrong("to", "a phone number", v)),
    };
    let to = phone_digits(&raw).ok_or_else(|| Invalid::BadValue {
        field: "to",
        problem: format!(
            "is not a phone number: {raw:?} (use international format, e.g. \"+14155550123\")"
        ),
    })?;
    let body = message_body(f, body, "message", "WhatsApp", MAX_WHATSAPP_CHARS)?;
    Ok(Whatsapp { to, body })
}

/// `+1 (415) 555-0123` → `14155550123`; 8 to 15 digits (E.164).
fn phone_digits(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
    {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (8..=15).contains(&digits.len()).then_some(digits)
}

const GITHUB_NEEDS: &str = "`repo` (OWNER/NAME), `issue` (its number) and the comment";

fn github_comment(f: &Fields, body: &str) -> Result<GithubComment, Invalid> {
    let repo = f.required("repo", GITHUB, GITHUB_NEEDS)?;
    let repo =
        ai_employee_vault::github::Repo::parse(repo.trim()).map_err(|e| Invalid::BadValue {
            field: "repo",
            problem: e.to_string(),
        })?;
    let bad_issue = |found: String| Invalid::BadValue {
        field: "issue",
        problem: format!("must be an issue number (1 or more), found {found}"),
    };
    let issue = match f.0.get("issue") {
        None | Some(Value::Null) => {
            return Err(Invalid::Missing {
                field: "issue",
                needs: format!("{GITHUB} needs {GITHUB_NEEDS}"),
            });
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n > 0 => n,
            _ => return Err(bad_issue(n.to_string())),
        },
        Some(Value::String(s)) => {
            let t = s.trim();
            let digits = t.strip_prefix('#').unwrap_or(t);
            match digits.parse::<u64>() {
                Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(bad_issue(format!("{s:?}"))),
            }
        }
        Some(v) => return Err(f.wrong("issue", "an issue number", v)),
    };
    let body = message_body(f, body, "comment", "GitHub", MAX_GITHUB_COMMENT_CHARS)?;
    Ok(GithubComment { repo, issue, body })
}

fn linkedin(f: &Fields, body: &str) -> Result<Linkedin, Invalid> {
    let body = message_body(f, body, "post", "LinkedIn", MAX_LINKEDIN_CHARS)?;
    Ok(Linkedin { body })
}

const PAYMENT_NEEDS: &str = "`amount`, `recipient` and `reason`";

fn payment(f: &Fields) -> Result<Payment, Invalid> {
    let amount = match f.0.get("amount") {
        None | Some(Value::Null) => {
            return Err(Invalid::Missing {
                field: "amount",
                needs: format!("{PAYMENT} needs {PAYMENT_NEEDS}"),
            });
        }
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| (x, n.to_string())),
        Some(Value::String(s)) => {
            let t = s.trim();
            t.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && t.chars().all(|c| c.is_ascii_digit() || c == '.'))
                .map(|x| (x, t.to_string()))
        }
        Some(v) => return Err(f.wrong("amount", "a number", v)),
    };
    let amount = match amount {
        Some((x, text)) if x > 0.0 => text,
        _ => {
            return Err(Invalid::BadValue {
                field: "amount",
                problem: format!(
                    "must be a positive number, found {}",
                    display(f.0.get("amount"))
                ),
            });
        }
    };
    let currency = f.str("currency")?.map(|c| c.trim().to_string());
    let recipient = f
        .required("recipient", PAYMENT, PAYMENT_NEEDS)?
        .trim()
        .to_string();
    let reason = f
        .required("reason", PAYMENT, PAYMENT_NEEDS)?
        .trim()
        .to_string();
    Ok(Payment {
        amount,
        currency,
        recipient,
        reason,
    })
}

fn display(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("{s:?}"),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => frontmatter::kind(other).to_string(),
        None => "nothing".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Request, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = frontmatter::parse(text).map_err(|e| e.to_string())?;
        validate(&doc, Utc::now(), dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_email() {
        let r = check(
            "---\ntype: approval_request\naction: send_email\nto: '\"Doe, J\" <j@example.com>, b@example.com'\nsubject: 'Invoice #1: due'\n---\nHello\n",
        )
        .expect("valid");
        let Action::Email(e) = r.action else {
            panic!("not an email")
        };
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.subject, "Invoice #1: due");
        assert_eq!(e.body, "Hello\n");
        assert_eq!(r.approved_by, "human");
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            phone_digits("+1 (415) 555-0123").as_deref(),
            Some("14155550123")
        );
        assert_eq!(phone_digits("12345"), None);
        assert_eq!(phone_digits("+1415abc"), None);
    }

    #[test]
    fn the_content_key_ignores_form_and_bookkeeping_but_not_content() {
        let key = |t: &str| check(t).expect("valid").content_key();
        let base = key(
            "---\ntype: approval_request\naction: send_email\nto: [a@example.com, B@example.com]\ncc: c@example.com\nsubject: Hi\nstatus: pending\ncreated: 2026-01-01T00:00:00Z\n---\nHello\n\nBye\n",
        );
        // Other spacing, quoting, order, line ends, bookkeeping keys, display names.
        assert_eq!(
            base,
            key(
                "---\r\nsubject:   'Hi'\r\naction: send_email\r\ntype: approval_request\r\ncc: [\"C <c@example.com>\"]\r\nto: [\"b@example.com\", \"Ann <a@EXAMPLE.com>\"]\r\nstatus: approved\r\napproved_by: bob\r\nmessage_id: <x@y>\r\n---\r\nHello\r\n\r\nBye\r\n\r\n"
            )
        );
        for other in [
            // The text, a recipient moved to cc, the subject, the action.
            "---\ntype: approval_request\naction: send_email\nto: [a@example.com, B@example.com]\ncc: c@example.com\nsubject: Hi\n---\nHello\n\nBye!\n",
            "---\ntype: approval_request\naction: send_email\nto: a@example.com\ncc: [b@example.com, c@example.com]\nsubject: Hi\n---\nHello\n\nBye\n",
            "---\ntype: approval_request\naction: send_email\nto: [a@example.com, B@example.com]\ncc: c@example.com\nsubject: Hi!\n---\nHello\n\nBye\n",
            "---\ntype: approval_request\naction: linkedin_post\n---\nHello\n\nBye\n",
        ] {
            assert_ne!(base, key(other), "{other}");
        }
        let pay = |amount: &str, currency: &str| {
            key(&format!(
                "---\ntype: approval_request\naction: payment\namount: {amount}\ncurrency: {currency}\nrecipient: Acme\nreason: hosting\n---\n"
            ))
        };
        assert_eq!(pay("120.50", "eur"), pay("120.5", "EUR"));
        assert_ne!(pay("120.5", "EUR"), pay("120.6", "EUR"));
    }

    #[test]
    fn allow_duplicate_must_be_a_boolean() {
        let text = |v: &str| {
            format!(
                "---\ntype: approval_request\naction: linkedin_post\nallow_duplicate: {v}\n---\nPost\n"
            )
        };
        assert!(check(&text("true")).expect("valid").allow_duplicate);
        assert!(!check(&text("false")).expect("valid").allow_duplicate);
        assert_eq!(
            check(&text("yes")).err().as_deref(),
            Some("field `allow_duplicate` must be true or false, found a string")
        );
    }

    #[test]
    fn every_action_takes_a_task_id_and_run_task_needs_one() {
        let task = "EMAIL_20261206T050000_deploy-the-site.v2";
        for (action, fields) in [
            ("send_email", "to: a@example.com\nsubject: s\n"),
            ("send_whatsapp", "to: '+14155550123'\n"),
            ("linkedin_post", ""),
            ("payment", "amount: 5\nrecipient: r\nreason: x\n"),
            ("run_task", "title: \"Deploy the site\"\n"),
        ] {
            let r = check(&format!(
                "---\ntype: approval_request\naction: {action}\n{fields}task: {task}\n---\nText\n"
            ))
            .unwrap_or_else(|e| panic!("{action}: {e}"));
            assert_eq!(r.task.as_deref(), Some(task), "{action}");
            assert_eq!(r.action.name(), action);
        }
        let r = check("---\ntype: approval_request\naction: linkedin_post\n---\nText\n")
            .expect("valid");
        assert_eq!(r.task, None);
        let run = check(&format!(
            "---\ntype: approval_request\naction: run_task\ntask: {task}\ntitle: Deploy\n---\n"
        ))
        .expect("valid");
        assert_eq!(run.action.target(), task);
        assert_eq!(
            run.action.parameters(),
            serde_json::json!({"title": "Deploy"})
        );
        // 200 characters is a task id; a dot inside one is fine.
        assert!(is_task_id(&"a".repeat(MAX_TASK_ID_CHARS)));
        assert!(is_task_id("a.b-c_D9"));
        for bad in ["", ".x", "a/b", "a b", "é", "a\n"] {
            assert!(!is_task_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_run_task_request_is_a_duplicate_only_of_a_copy_of_itself() {
        let key = |task: &str, created: &str| {
            check(&format!(
                "---\ntype: approval_request\naction: run_task\ntask: {task}\n{created}status: pending\n---\nNotes\n"
            ))
            .expect("valid")
            .content_key()
        };
        let first = key("T1", "created: 2026-12-06T05:00:00Z\n");
        // A sync-conflict copy (other status, other notes) is the same request ...
        assert_eq!(
            first,
            check("---\ntype: approval_request\naction: run_task\ntask: T1\ncreated: 2026-12-06T05:00:00Z\nstatus: approved\n---\nOther notes\n")
                .expect("valid")
                .content_key()
        );
        // ... a new request for the same task, or one for another task, is not.
        assert_ne!(first, key("T1", "created: 2026-12-07T09:00:00Z\n"));
        assert_ne!(first, key("T2", "created: 2026-12-06T05:00:00Z\n"));
        assert_ne!(first, key("T1", ""));
    }

    #[test]
    fn github_comments_and_their_refusals() {
        let g = |extra: &str, body: &str| {
            format!("---\ntype: approval_request\naction: github_comment\n{extra}---\n{body}")
        };
        let r = check(&g(
            "repo: Acme/web-app\nissue: 42\n",
            "Thanks, fixed in #43.\n",
        ))
        .expect("valid");
        let Action::GithubComment(c) = &r.action else {
            panic!("{:?}", r.action);
        };
        assert_eq!((c.repo.to_string(), c.issue), ("Acme/web-app".into(), 42));
        assert_eq!(c.body, "Thanks, fixed in #43.");
        assert_eq!(r.action.target(), "Acme/web-app#42");
        // `#42` as a string, the text in `body`: the same comment, the same content key.
        let same = check(&g(
            "repo: acme/WEB-APP\nissue: '#42'\nbody: \"Thanks, fixed in #43.\"\n",
            "",
        ))
        .expect("valid");
        assert_eq!(r.content_key(), same.content_key());
        let other = check(&g(
            "repo: acme/web-app\nissue: 43\n",
            "Thanks, fixed in #43.\n",
        ))
        .expect("valid");
        assert_ne!(r.content_key(), other.content_key());
        let long = "z".repeat(MAX_GITHUB_COMMENT_CHARS + 1);
        let cases: Vec<(String, &str)> = vec![
            (
                g("issue: 1\n", "x"),
                "missing field `repo` (github_comment needs `repo` (OWNER/NAME), `issue` (its number) and the comment)",
            ),
            (
                g("repo: acme\nissue: 1\n", "x"),
                "field `repo` \"acme\" is not OWNER/NAME: no `/`",
            ),
            (
                g("repo: ../etc/passwd\nissue: 1\n", "x"),
                "field `repo` \"../etc/passwd\" is not OWNER/NAME: the owner may hold only letters, digits and `-` (not first or last)",
            ),
            (
                g("repo: [a]\nissue: 1\n", "x"),
                "field `repo` must be a string, found a list",
            ),
            (
                g("repo: a/b\n", "x"),
                "missing field `issue` (github_comment needs `repo` (OWNER/NAME), `issue` (its number) and the comment)",
            ),
            (
                g("repo: a/b\nissue: 0\n", "x"),
                "field `issue` must be an issue number (1 or more), found 0",
            ),
            (
                g("repo: a/b\nissue: -3\n", "x"),
                "field `issue` must be an issue number (1 or more), found -3",
            ),
            (
                g("repo: a/b\nissue: 1.5\n", "x"),
                "field `issue` must be an issue number (1 or more), found 1.5",
            ),
            (
                g("repo: a/b\nissue: 'twelve'\n", "x"),
                "field `issue` must be an issue number (1 or more), found \"twelve\"",
            ),
            (
                g("repo: a/b\nissue: [1]\n", "x"),
                "field `issue` must be an issue number, found a list",
            ),
            (
                g("repo: a/b\nissue: 1\n", "  \n"),
                "the comment is empty (a `body` field or text after the frontmatter)",
            ),
            (
                g("repo: a/b\nissue: 1\n", &long),
                "the comment has 65001 characters, over GitHub's 65000",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check(&text).err().as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn previews_are_short_and_flat() {
        assert_eq!(preview("a\n\nb"), "a b");
        assert_eq!(preview(&"x".repeat(50)).chars().count(), 41);
    }

    /// Every refusal, one line naming the field, byte for byte.
    #[test]
    fn every_refusal_says_which_field_and_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path();
        std::fs::create_dir_all(v.join("credentials")).expect("set-up");
        std::fs::write(v.join("credentials/x.txt"), "s").expect("set-up");
        std::fs::create_dir_all(v.join("Inbox/sub")).expect("set-up");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("o.txt"), "o").expect("write");
        std::os::unix::fs::symlink(outside.path().join("o.txt"), v.join("Inbox/link.txt"))
            .expect("symlink");
        let big = std::fs::File::create(v.join("Inbox/big.bin")).expect("set-up");
        big.set_len(21 * 1024 * 1024).expect("set-up");
        let big2 = std::fs::File::create(v.join("Inbox/big2.bin")).expect("set-up");
        big2.set_len(15 * 1024 * 1024).expect("set-up");
        let e = |extra: &str, body: &str| {
            format!("---\ntype: approval_request\naction: send_email\n{extra}---\n{body}")
        };
        let long_wa = "x".repeat(4097);
        let long_li = "y".repeat(3001);
        let cases: Vec<(String, &str)> = vec![
            ("---\naction: send_email\n---\nx".into(), "missing field `type` (an approval file has `type: approval_request`)"),
            ("---\ntype: other\n---\nx".into(), "`type` is \"other\", not \"approval_request\": only approval requests are executed"),
            ("---\ntype: 5\n---\nx".into(), "field `type` must be a string, found a number"),
            ("---\ntype: approval_request\n---\nx".into(), "missing field `action` (one of send_email, send_whatsapp, linkedin_post, payment, run_task, github_comment)"),
            ("---\ntype: approval_request\naction: bogus\n---\nx".into(), "unknown action \"bogus\": only send_email, send_whatsapp, linkedin_post, payment, run_task, github_comment are allowed"),
            ("---\ntype: approval_request\naction: linkedin_post\nresult: sent\nexecuted_at: 2026-01-01T00:00:00Z\n---\nx".into(), "already executed (result: sent at 2026-01-01T00:00:00Z): to run it again, remove `result` and `executed_at`"),
            ("---\ntype: approval_request\naction: linkedin_post\nresult: queued\n---\nx".into(), "already executed (result: queued): to run it again, remove `result` and `executed_at`"),
            ("---\ntype: approval_request\naction: linkedin_post\nexpires: tomorrow\n---\nx".into(), "field `expires` is not a time: \"tomorrow\" (expected RFC 3339 with a time zone, e.g. 2026-01-08T10:30:00Z)"),
            ("---\ntype: approval_request\naction: linkedin_post\nexpires: 2020-01-01T00:00:00+02:00\n---\nx".into(), "approval expired at 2019-12-31T22:00:00Z: ask again rather than act late"),
            ("---\ntype: approval_request\naction: linkedin_post\napproved_by: 5\n---\nx".into(), "field `approved_by` must be a string, found a number"),
            ("---\ntype: approval_request\naction: linkedin_post\nallow_duplicate: [1]\n---\nx".into(), "field `allow_duplicate` must be true or false, found a list"),
            (e("", "x"), "missing field `to` (send_email needs `to`, `subject` and the email text after the frontmatter)"),
            (e("to: 5\n", "x"), "field `to` must be an email address or a list of them, found a number"),
            (e("to: [5]\n", "x"), "field `to` must be an email address or a list of them, found a list containing a number"),
            (e("to: 'not an address'\n", "x"), "field `to`: \"not an address\" is not a valid email address"),
            (e("to: a@b.c\ncc: 'bad'\n", "x"), "field `cc`: \"bad\" is not a valid email address"),
            (e("to: a@b.c\n", "x"), "missing field `subject` (send_email needs `to`, `subject` and the email text after the frontmatter)"),
            (e("to: a@b.c\nsubject: ''\n", "x"), "field `subject` is empty"),
            (e("to: a@b.c\nsubject: \"a\\nb\"\n", "x"), "field `subject` must be one line"),
            (e("to: a@b.c\nsubject: s\n", "\n\n  \n"), "the email text (after the frontmatter) is empty"),
            (e("to: a@b.c\nsubject: s\nattachments: x\n", "x"), "field `attachments` must be a list of vault-relative paths, found a string"),
            (e("to: a@b.c\nsubject: s\nattachments: [5]\n", "x"), "field `attachments` must be a list of vault-relative paths, found a list containing a number"),
            (e("to: a@b.c\nsubject: s\nattachments: ['']\n", "x"), "attachment \"\": empty path"),
            (e("to: a@b.c\nsubject: s\nattachments: ['../x']\n", "x"), "attachment \"../x\": must not contain \"..\""),
            (e("to: a@b.c\nsubject: s\nattachments: ['/etc/passwd']\n", "x"), "attachment \"/etc/passwd\": outside the vault"),
            (e("to: a@b.c\nsubject: s\nattachments: ['Inbox/missing.txt']\n", "x"), "attachment \"Inbox/missing.txt\": not found"),
            (e("to: a@b.c\nsubject: s\nattachments: ['credentials/x.txt']\n", "x"), "attachment \"credentials/x.txt\": files under credentials/ are never attached"),
            (e("to: a@b.c\nsubject: s\nattachments: ['Inbox/link.txt']\n", "x"), "attachment \"Inbox/link.txt\": a symbolic link leads outside the vault"),
            (e("to: a@b.c\nsubject: s\nattachments: ['Inbox/sub']\n", "x"), "attachment \"Inbox/sub\": not a regular file"),
            (e("to: a@b.c\nsubject: s\nattachments: ['Inbox/big.bin']\n", "x"), "attachment \"Inbox/big.bin\": 21.0 MiB is over the 20.0 MiB limit"),
            (e("to: a@b.c\nsubject: s\nattachments: ['Inbox/big2.bin', 'Inbox/big2.bin']\n", "x"), "attachments: 30.0 MiB in all, over the 20.0 MiB limit"),
            (e("to: a@b.c\nsubject: s\nmessage_id: bad\n", "x"), "field `message_id` must look like \"<id@domain>\", found \"bad\""),
            (e("to: a@b.c\nsubject: s\nmessage_id: 5\n", "x"), "field `message_id` must be a string, found a number"),
            ("---\ntype: approval_request\naction: send_whatsapp\n---\nx".into(), "missing field `to` (send_whatsapp needs `to` and a message body)"),
            ("---\ntype: approval_request\naction: send_whatsapp\nto: [1]\n---\nx".into(), "field `to` must be a phone number, found a list"),
            ("---\ntype: approval_request\naction: send_whatsapp\nto: abc\n---\nx".into(), "field `to` is not a phone number: \"abc\" (use international format, e.g. \"+14155550123\")"),
            ("---\ntype: approval_request\naction: send_whatsapp\nto: 12345\n---\nx".into(), "field `to` is not a phone number: \"12345\" (use international format, e.g. \"+14155550123\")"),
            ("---\ntype: approval_request\naction: send_whatsapp\nto: '+14155550123'\n---\n  \n".into(), "the message is empty (a `body` field or text after the frontmatter)"),
            ("---\ntype: approval_request\naction: send_whatsapp\nto: '+14155550123'\nbody: 5\n---\nx".into(), "field `body` must be a string, found a number"),
            (format!("---\ntype: approval_request\naction: send_whatsapp\nto: '+14155550123'\n---\n{long_wa}"), "the message has 4097 characters, over WhatsApp's 4096"),
            ("---\ntype: approval_request\naction: linkedin_post\n---\n".into(), "the post is empty (a `body` field or text after the frontmatter)"),
            (format!("---\ntype: approval_request\naction: linkedin_post\n---\n{long_li}"), "the post has 3001 characters, over LinkedIn's 3000"),
            ("---\ntype: approval_request\naction: payment\n---\n".into(), "missing field `amount` (payment needs `amount`, `recipient` and `reason`)"),
            ("---\ntype: approval_request\naction: payment\namount: [1]\n---\n".into(), "field `amount` must be a number, found a list"),
            ("---\ntype: approval_request\naction: payment\namount: -1\n---\n".into(), "field `amount` must be a positive number, found -1"),
            ("---\ntype: approval_request\naction: payment\namount: abc\n---\n".into(), "field `amount` must be a positive number, found \"abc\""),
            ("---\ntype: approval_request\naction: payment\namount: 0\n---\n".into(), "field `amount` must be a positive number, found 0"),
            ("---\ntype: approval_request\naction: payment\namount: 5\n---\n".into(), "missing field `recipient` (payment needs `amount`, `recipient` and `reason`)"),
            ("---\ntype: approval_request\naction: payment\namount: 5\nrecipient: ''\n---\n".into(), "field `recipient` is empty"),
            ("---\ntype: approval_request\naction: payment\namount: 5\nrecipient: r\n---\n".into(), "missing field `reason` (payment needs `amount`, `recipient` and `reason`)"),
            ("---\ntype: approval_request\naction: payment\namount: 5\nrecipient: r\nreason: x\ncurrency: 5\n---\n".into(), "field `currency` must be a string, found a number"),
            ("---\ntype: approval_request\naction: run_task\n---\n".into(), "missing field `task` (run_task needs `task`, the id of the task to run)"),
            ("---\ntype: approval_request\naction: run_task\ntask: ''\n---\n".into(), "field `task` is empty"),
            ("---\ntype: approval_request\naction: run_task\ntask: 5\n---\n".into(), "field `task` must be a task id (a string), found a number"),
            ("---\ntype: approval_request\naction: run_task\ntask: ../Done/x\n---\n".into(), "field `task` is not a task id: \"../Done/x\" (1 to 200 characters of A-Z, a-z, 0-9, `.`, `_`, `-`, not starting with `.`)"),
            ("---\ntype: approval_request\naction: run_task\ntask: .hidden\n---\n".into(), "field `task` is not a task id: \".hidden\" (1 to 200 characters of A-Z, a-z, 0-9, `.`, `_`, `-`, not starting with `.`)"),
            (format!("---\ntype: approval_request\naction: run_task\ntask: {}\n---\n", "t".repeat(201)), "field `task` is not a task id: 201 characters, over 200"),
            // On every action, checked before the action's own fields.
            ("---\ntype: approval_request\naction: linkedin_post\ntask: 'a b'\n---\nx".into(), "field `task` is not a task id: \"a b\" (1 to 200 characters of A-Z, a-z, 0-9, `.`, `_`, `-`, not starting with `.`)"),
            (e("task: [x]\n", "x"), "field `task` must be a task id (a string), found a list"),
        ];
        for (text, want) in &cases {
            let doc = frontmatter::parse(text).expect("parses");
            let got = validate(&doc, Utc::now(), v).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(*want), "{text}");
        }
        // The vault itself cannot be resolved (only needed for attachments).
        let doc = frontmatter::parse(&e("to: a@b.c\nsubject: s\nattachments: ['x']\n", "x"))
            .expect("parses");
        let got = validate(&doc, Utc::now(), Path::new("/nonexistent/v"));
        assert!(matches!(got, Err(Invalid::Vault(_))), "{got:?}");
    }
}
