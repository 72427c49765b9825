//! The approval handler when a write fails part-way (a full disk): found by the
//! chaos run (tests/soak/chaos.py). The failure is the one ENOSPC gives in the middle of
//! an append: the `write` stores the first bytes, the rest fails. It is produced here with
//! RLIMIT_FSIZE set on the running handler (`prlimit`, SIGXFSZ ignored), which cuts a
//! write at an exact byte, without root and without a special file system. The file under
//! test (the ledger, the audit log) is padded first, so the limit only ever reaches it:
//! every other file the handler writes is far smaller than the limit.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use super::{FAST, Handler, Smtp, approve, email, field, files, new_vault, smtp_toml};
use crate::common::{TestVault, WatcherProc, wait_until};

const PAD: usize = 64 * 1024;

/// `watch approvals` with SIGXFSZ ignored (so a write past RLIMIT_FSIZE fails with EFBIG
/// instead of killing the process, as ENOSPC would).
fn handler_without_sigxfsz(vault: &Path) -> Handler {
    let mut args = vec!["--rescan", "200ms"];
    args.extend_from_slice(FAST);
    Handler(WatcherProc::spawn_with("approvals", vault, &args, |cmd| {
        // SAFETY: `signal` is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }))
}

/// The largest file `pid` may write (`None`: no limit).
fn limit_file_size(pid: i32, bytes: Option<u64>) {
    let lim = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall; `lim` outlives it, the old-limit pointer is null.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// An email approval whose message the server accepts while the handler's ledger is
/// full: the record of the outcome is cut after 20 bytes. Space comes back once the
/// handler has said so. Returns the server and the (still running) handler.
fn send_while_the_ledger_is_full(tv: &TestVault, text: &str) -> (Smtp, Handler) {
    let v = &tv.vault;
    let gate = tv.dir.path().join("gate");
    let smtp = Smtp::start_gated(tv.dir.path(), &gate);
    smtp_toml(v, smtp.port, false, "");
    let ledger = v.join(".ai-employee/approvals.ledger");
    fs::write(&ledger, "\n".repeat(PAD)).expect("pad the ledger");
    let h = handler_without_sigxfsz(v);
    h.wait_log("watching ");
    approve(v, "report.md", text);
    // The message is at the server (its intent is durable); the disk fills now.
    assert!(
        wait_until(Duration::from_secs(10), || gate.join("data").exists()),
        "{}",
        h.stderr()
    );
    let len = fs::metadata(&ledger).expect("ledger").len();
    limit_file_size(h.pid(), Some(len + 20));
    fs::write(gate.join("release"), "").expect("release");
    h.wait_log("failed to append to the ledger");
    limit_file_size(h.pid(), None);
    (smtp, h)
}

fn report() -> String {
    email(
        "client@example.com",
        "LEDGER-FULL report",
        "The report.\nLast line.\n",
        "",
    )
}

/// Known outcome, unrecorded: it is recorded once the disk has room again, not turned
/// into "outcome unknown — the handler stopped" (the handler never stopped).
#[test]
fn a_sent_email_is_archived_as_sent_when_its_outcome_is_recorded_late() {
    let tv = new_vault();
    let v = &tv.vault;
    let (smtp, mut h) = send_while_the_ledger_is_full(&tv, &report());
    let (done, failed) = (v.join("Done/report.md"), v.join("Failed/report.md"));
    assert!(
        wait_until(Duration::from_secs(10), || (done.exists()
            || failed.exists())
            && files(&v.join("Approved")).is_empty()),
        "{}",
        h.stderr()
    );
    assert_eq!(
        field(&failed, "error"),
        None,
        "reported as failed although it was sent:\n{}",
        h.stderr()
    );
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert!(field(&done, "smtp_reply").is_some_and(|r| r.starts_with("250")));
    assert_eq!(smtp.with_subject_containing("LEDGER-FULL").len(), 1);
    h.stop();
}

/// A write cut short must not swallow the record appended after it: here the one that
/// says the email was sent (and with what content), which the duplicate rule needs
/// after a restart.
#[test]
fn a_ledger_write_cut_short_does_not_hide_the_next_record_after_a_restart() {
    let tv = new_vault();
    let v = &tv.vault;
    let text = report();
    let (smtp, mut h) = send_while_the_ledger_is_full(&tv, &text);
    assert!(
        wait_until(Duration::from_secs(10), || files(&v.join("Approved"))
            .is_empty()),
        "{}",
        h.stderr()
    );
    h.stop();
    let mut h = handler_without_sigxfsz(v);
    h.wait_log("watching ");
    // A sync-conflict copy of the approval that was carried out: a duplicate.
    approve(v, "report (1).md", &text);
    let copy = v.join("Failed/report (1).md");
    assert!(
        wait_until(Duration::from_secs(10), || copy.exists()
            || v.join("Done/report (1).md").exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(
        smtp.with_subject_containing("LEDGER-FULL").len(),
        1,
        "sent twice:\n{}",
        h.stderr()
    );
    assert!(
        field(&copy, "error").is_some_and(|e| e.starts_with("duplicate of Done/report.md")),
        "{:?}",
        field(&copy, "error")
    );
    let ledger = fs::read_to_string(v.join(".ai-employee/approvals.ledger")).expect("ledger");
    for line in ledger.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok() || line.len() <= 20,
            "a record glued to the cut-off write: {line}"
        );
    }
    h.stop();
}

fn post(text: &str) -> String {
    format!("---\ntype: approval_request\naction: linkedin_post\n---\n{text}\n")
}

/// The audit log (`Logs/YYYY-MM-DD.json`, one JSON object a line) after an entry that
/// the full disk cut short: the entries written after it are still lines of their own.
#[test]
fn an_audit_line_cut_short_does_not_spoil_the_next_one() {
    let tv = new_vault();
    let v = &tv.vault;
    // Padded with JSON lines so the audit log is the largest file the handler writes
    // (today's and tomorrow's, in case the test runs across midnight UTC).
    let now = chrono::Utc::now();
    let logs: Vec<_> = [now, now + chrono::Duration::days(1)]
        .iter()
        .map(|t| v.join(format!("Logs/{}.json", t.format("%Y-%m-%d"))))
        .collect();
    for p in &logs {
        fs::write(p, "{\"padding\":true}\n".repeat(4096)).expect("pad the audit log");
    }
    let h = handler_without_sigxfsz(v);
    h.wait_log("watching ");
    let len = fs::metadata(&logs[0]).expect("audit log").len();
    limit_file_size(h.pid(), Some(len + 20));
    approve(v, "first.md", &post("FIRST post"));
    h.wait_log("failed to append to the audit log");
    limit_file_size(h.pid(), None);
    approve(v, "second.md", &post("SECOND post"));
    let mut h = h;
    assert!(
        wait_until(Duration::from_secs(10), || v
            .join("Done/second.md")
            .exists()
            && files(&v.join("Approved")).is_empty()),
        "{}",
        h.stderr()
    );
    h.stop();
    let mut entries = Vec::new();
    for p in &logs {
        let text = fs::read_to_string(p).expect("audit log");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}): {line}", p.display()));
            if entry.get("padding").is_none() {
                entries.push(entry);
            }
        }
    }
    let files_in: Vec<_> = entries
        .iter()
        .filter_map(|e| e["parameters"]["file"].as_str())
        .collect();
    assert_eq!(files_in, ["second.md"], "{entries:?}");
}
