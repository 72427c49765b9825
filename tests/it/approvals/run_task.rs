//! The task loop's approval gate, from the approval handler's side: a `run_task` request
//! a person moved to `Approved/` ends in `Done/` with `result: approved` (the loop then
//! runs the agent) or in `Failed/` with the reason; and an outbound draft the agent linked
//! to its task (`task:`) is carried out as usual and traced to the task in the audit log.

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::{Handler, Smtp, approve, audit_lines, email, field, files, new_vault, smtp_toml};
use crate::common::wait_until;

const TASK: &str = "EMAIL_20261206T050000_deploy-the-site";

/// A request as the task loop writes it, expiring at `expires`.
fn run_request(task: &str, expires: &str) -> String {
    format!(
        "---\ntype: approval_request\naction: run_task\ntask: {task}\ntitle: \"Deploy the site to production\"\nreason: matches approval keyword \"deploy\"\ncreated: 2026-12-06T05:00:00Z\nexpires: {expires}\nstatus: pending\n---\nThe task loop asks to run the AI agent on this task (In_Progress/{task}.md).\nMove this file to Approved/ to let it run, or to Rejected/ to reject the task.\n"
    )
}

fn hours_from_now(h: i64) -> String {
    (Utc::now() + chrono::Duration::hours(h)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn wait_for(vault: &Path, rel: &str, h: &Handler) {
    assert!(
        wait_until(Duration::from_secs(10), || vault.join(rel).exists()),
        "no {rel}:\n{}",
        h.stderr()
    );
}

#[test]
fn an_approved_run_task_ends_in_done_and_a_refused_one_in_failed_with_the_reason() {
    let tv = new_vault();
    let v = &tv.vault;
    // No credentials: run_task needs none.
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let name = format!("RUN_{TASK}.md");
    let request = run_request(TASK, &hours_from_now(24));
    approve(v, &name, &request);
    approve(
        v,
        "RUN_expired.md",
        &run_request("EMAIL_old", "2026-01-01T00:00:00Z"),
    );
    approve(
        v,
        "RUN_no-task.md",
        "---\ntype: approval_request\naction: run_task\nstatus: pending\n---\n",
    );
    approve(
        v,
        "RUN_bad-task.md",
        &run_request("../Done/x", &hours_from_now(24)),
    );
    // Still waiting for a person: never handled.
    std::fs::write(
        v.join("Pending_Approval/RUN_pending.md"),
        run_request("EMAIL_pending", &hours_from_now(24)),
    )
    .expect("write pending");

    let done = v.join("Done").join(&name);
    wait_for(v, &format!("Done/{name}"), &h);
    assert_eq!(field(&done, "result").as_deref(), Some("approved"));
    assert_eq!(field(&done, "status").as_deref(), Some("done"));
    assert_eq!(field(&done, "task").as_deref(), Some(TASK));
    assert!(field(&done, "executed_at").is_some());

    for failed in ["RUN_expired.md", "RUN_no-task.md", "RUN_bad-task.md"] {
        wait_for(v, &format!("Failed/{failed}"), &h);
        assert_eq!(
            field(&v.join("Failed").join(failed), "result").as_deref(),
            Some("refused"),
            "{failed}"
        );
    }
    let error = |n: &str| field(&v.join("Failed").join(n), "error").unwrap_or_default();
    assert_eq!(
        error("RUN_expired.md"),
        "approval expired at 2026-01-01T00:00:00Z: ask again rather than act late"
    );
    assert_eq!(
        error("RUN_no-task.md"),
        "missing field `task` (run_task needs `task`, the id of the task to run)"
    );
    assert_eq!(
        error("RUN_bad-task.md"),
        "field `task` is not a task id: \"../Done/x\" (1 to 200 characters of A-Z, a-z, 0-9, \
         `.`, `_`, `-`, not starting with `.`)"
    );
    // An outcome is written into Done/ or Failed/ before the request leaves Approved/ (its
    // frontmatter gains the result): wait for the last one to go.
    assert!(
        wait_until(Duration::from_secs(10), || files(&v.join("Approved"))
            .is_empty()),
        "{:?}",
        files(&v.join("Approved"))
    );
    assert!(v.join("Pending_Approval/RUN_pending.md").exists());

    // One audit record for the approval, carrying the task; the expired one is traced too.
    let lines = audit_lines(v);
    let approved: Vec<_> = lines.iter().filter(|l| l["result"] == "approved").collect();
    assert_eq!(approved.len(), 1, "{lines:?}");
    let a = approved[0];
    assert_eq!(a["action_type"], "run_task");
    assert_eq!(a["target"], TASK);
    assert_eq!(a["parameters"]["task"], TASK);
    assert_eq!(a["parameters"]["title"], "Deploy the site to production");
    assert_eq!(a["parameters"]["file"], name.as_str());
    assert!(a.get("error").is_none());
    let expired = lines
        .iter()
        .find(|l| l["parameters"]["task"] == "EMAIL_old")
        .expect("the expired request's audit line");
    assert_eq!(expired["result"], "refused");
    assert_eq!(lines.len(), 4, "{lines:?}");

    // The same request approved again (a copy moved back by mistake): already handled,
    // never a second approval.
    approve(v, &name, &request);
    wait_for(v, &format!("Failed/{name}"), &h);
    let error = field(&v.join("Failed").join(&name), "error").unwrap_or_default();
    assert!(error.starts_with("already handled at "), "{error}");
    assert!(error.contains(&format!("(see Done/{name})")), "{error}");
    assert_eq!(
        audit_lines(v)
            .iter()
            .filter(|l| l["result"] == "approved")
            .count(),
        1
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

#[test]
fn an_email_draft_linked_to_its_task_is_sent_and_traced_to_the_task() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    approve(
        v,
        "EMAIL_reply.md",
        &email(
            "client@example.com",
            "Re: the site",
            "The site is live.\n",
            &format!("task: {TASK}\ntitle: \"Reply to the client\"\n"),
        ),
    );
    let done = v.join("Done/EMAIL_reply.md");
    wait_for(v, "Done/EMAIL_reply.md", &h);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].header("Subject").as_deref(), Some("Re: the site"));
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(field(&done, "task").as_deref(), Some(TASK));
    let lines = audit_lines(v);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["action_type"], "send_email");
    assert_eq!(lines[0]["result"], "sent");
    assert_eq!(lines[0]["target"], "client@example.com");
    assert_eq!(lines[0]["parameters"]["task"], TASK);
    assert_eq!(lines[0]["parameters"]["subject"], "Re: the site");

    // A draft whose `task` is not a task id is refused, and nothing is sent.
    approve(
        v,
        "EMAIL_bad.md",
        &email(
            "client@example.com",
            "Other",
            "Text.\n",
            "task: \"two words\"\n",
        ),
    );
    wait_for(v, "Failed/EMAIL_bad.md", &h);
    assert_eq!(
        field(&v.join("Failed/EMAIL_bad.md"), "error").as_deref(),
        Some(
            "field `task` is not a task id: \"two words\" (1 to 200 characters of A-Z, a-z, \
             0-9, `.`, `_`, `-`, not starting with `.`)"
        )
    );
    assert_eq!(smtp.mails().len(), 1);
    h.stop();
}
