//! The vault's trust boundary on the file system: no symlink inside the vault is followed
//! out of its role. Real binaries, real files, real symlinks; each test waits for the
//! line or exit that says the work was done (or refused), never for a fixed time.
//!
//! Each case puts a recognisable file outside the vault and a symlink to it (or to its
//! folder) where the program reads or writes, then checks that nothing of the outside
//! file reached the vault and that nothing outside was written.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::common::{BIN, TestVault, WatcherProc, sh_process, wait_until};

const SECRET: &str = "root:$6$not-a-real-hash:19000:0:99999:7:::\n";
const LIMIT: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `ai-employee init` on a fresh temp vault.
fn new_vault() -> TestVault {
    let tv = TestVault::new();
    let st = Command::new(BIN)
        .args(["init", "--vault"])
        .arg(&tv.vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run init");
    assert!(st.success(), "init failed");
    tv
}

/// A folder next to the vault (outside it) holding `secret.txt`.
fn outside_dir(tv: &TestVault) -> PathBuf {
    let d = tv.dir.path().join("outside");
    fs::create_dir_all(&d).expect("outside dir");
    fs::write(d.join("secret.txt"), SECRET).expect("secret");
    d
}

/// Put a symlink to `target` in the place of the folder `rel` of a running vault in one
/// step (the folder is kept as `<rel>.old`): a watcher that notices a missing folder
/// recreates it, so a rename followed by a symlink would race with it.
fn swap_in_link(vault: &Path, rel: &str, target: impl AsRef<Path>) {
    let p = vault.join(rel);
    let link = vault.join(format!("{rel}.old"));
    symlink(target, &link).expect("symlink");
    #[cfg(target_os = "linux")]
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &link,
        nix::fcntl::AT_FDCWD,
        &p,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .expect("exchange");
    #[cfg(not(target_os = "linux"))]
    {
        let tmp = vault.join(format!("{rel}.tmp"));
        fs::rename(&p, &tmp).expect("rename");
        fs::rename(&link, &p).expect("rename");
        fs::rename(&tmp, &link).expect("rename");
    }
}

/// Replace the folder `rel` of the vault by a symlink to `target`.
fn replace_with_link(vault: &Path, rel: &str, target: &Path) {
    let p = vault.join(rel);
    if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(&p).expect("remove folder");
    } else {
        let _ = fs::remove_file(&p);
    }
    symlink(target, &p).expect("symlink");
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of every regular file under `dir` (recursively, not following links).
fn hashes_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            out.extend(hashes_under(&e.path()));
        } else if t.is_file() {
            out.push(sha(&fs::read(e.path()).unwrap_or_default()));
        }
    }
    out
}

/// Whether any file under the vault (not following links) has the bytes of `content`.
fn vault_holds(vault: &Path, content: &[u8]) -> bool {
    hashes_under(vault).contains(&sha(content))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What a file looks like from outside: bytes and modification time.
fn fingerprint(p: &Path) -> (Vec<u8>, Option<SystemTime>) {
    (
        fs::read(p).unwrap_or_default(),
        fs::metadata(p).and_then(|m| m.modified()).ok(),
    )
}

/// A file outside the vault with an old modification time, so a touch shows.
fn outside_file(tv: &TestVault, name: &str, text: &str) -> PathBuf {
    let p = tv.dir.path().join(name);
    fs::write(&p, text).expect("outside file");
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    p
}

fn exit_code(w: &mut WatcherProc) -> Option<i32> {
    w.wait_exit(LIMIT).and_then(|s| s.code())
}

// ---- the filesystem watcher ----

#[test]
fn a_symlinked_inbox_is_refused_and_nothing_outside_is_copied() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_dir(&tv);
    replace_with_link(v, "Inbox", &outside);
    let mut w = WatcherProc::spawn("filesystem", v, &[]);
    // Today's failure mode: the secret shows up in Needs_Action. Wait for either.
    let ended = wait_until(LIMIT, || {
        vault_holds(&v.join("Needs_Action"), SECRET.as_bytes()) || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert!(
        !vault_holds(v, SECRET.as_bytes()),
        "the outside file was copied into the vault: {:?}\n{}",
        names(&v.join("Needs_Action")),
        w.log()
    );
    assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
    let log = w.log();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains("Inbox") && log.contains("is a symbolic link") && log.contains("--inbox"),
        "{log}"
    );

    if is_root() {
        // The real thing: Inbox -> /etc.
        replace_with_link(v, "Inbox", Path::new("/etc"));
        let mut w = WatcherProc::spawn("filesystem", v, &[]);
        assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
        let shadow = fs::read("/etc/shadow").unwrap_or_default();
        if !shadow.is_empty() {
            assert!(!vault_holds(v, &shadow), "/etc/shadow reached the vault");
        }
        assert!(names(&v.join("Needs_Action")).is_empty());
    }
}

#[test]
fn symlinks_inside_inbox_are_never_copied() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_dir(&tv);
    symlink(outside.join("secret.txt"), v.join("Inbox/secret.txt")).expect("symlink");
    symlink(&outside, v.join("Inbox/folder")).expect("symlink");
    if is_root() {
        symlink("/etc/shadow", v.join("Inbox/shadow")).expect("symlink");
    }
    fs::write(v.join("Inbox/real.txt"), "real").expect("write");
    let mut w = WatcherProc::spawn("filesystem", v, &[]);
    w.wait_log("\"real.txt\"");
    w.stop_clean(LIMIT);
    assert!(!vault_holds(&v.join("Needs_Action"), SECRET.as_bytes()));
    let shadow = fs::read("/etc/shadow").unwrap_or_default();
    if !shadow.is_empty() {
        assert!(!vault_holds(&v.join("Needs_Action"), &shadow));
    }
    assert_eq!(names(&v.join("Needs_Action")).len(), 2);
}

#[test]
fn an_explicit_inbox_elsewhere_is_watched_but_links_inside_it_are_not_followed() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_dir(&tv);
    let elsewhere = tv.dir.path().join("Scans");
    fs::create_dir(&elsewhere).expect("mkdir");
    fs::write(elsewhere.join("scan.pdf"), "a scan").expect("write");
    symlink(outside.join("secret.txt"), elsewhere.join("link.txt")).expect("symlink");
    // Named through a symlink of its own: the user's explicit choice, followed.
    let named = tv.dir.path().join("scans-link");
    symlink(&elsewhere, &named).expect("symlink");
    let mut w = WatcherProc::spawn(
        "filesystem",
        v,
        &["--inbox", named.to_str().expect("utf-8")],
    );
    w.wait_log("\"scan.pdf\"");
    fs::write(elsewhere.join("late.txt"), "dropped later").expect("write");
    w.wait_log("\"late.txt\"");
    w.stop_clean(LIMIT);
    assert!(!vault_holds(v, SECRET.as_bytes()));
    let na = names(&v.join("Needs_Action"));
    assert_eq!(na.len(), 4, "{na:?}");
    assert!(vault_holds(&v.join("Needs_Action"), b"dropped later"));
}

#[test]
fn inbox_replaced_by_a_symlink_while_running_stops_the_watcher() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_dir(&tv);
    let mut w = WatcherProc::spawn("filesystem", v, &[]);
    w.wait_log("watching ");
    swap_in_link(v, "Inbox", &outside);
    let ended = wait_until(LIMIT, || {
        vault_holds(&v.join("Needs_Action"), SECRET.as_bytes()) || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert!(!vault_holds(v, SECRET.as_bytes()), "{}", w.log());
    assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
    assert!(w.log().contains("Inbox"), "{}", w.log());
}

#[test]
fn needs_action_replaced_by_a_symlink_while_running_writes_nothing_outside() {
    let tv = new_vault();
    let v = &tv.vault;
    let target = tv.dir.path().join("elsewhere");
    fs::create_dir(&target).expect("mkdir");
    let mut w = WatcherProc::spawn("filesystem", v, &[]);
    w.wait_log("watching ");
    swap_in_link(v, "Needs_Action", &target);
    fs::write(v.join("Inbox/a.txt"), "a").expect("write");
    let ended = wait_until(LIMIT, || {
        !names(&target).is_empty() || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
    assert!(names(&target).is_empty(), "{:?}", names(&target));
    assert!(w.log().contains("Needs_Action"), "{}", w.log());
}

#[test]
fn a_symlinked_needs_action_or_state_folder_is_refused() {
    for rel in ["Needs_Action", ".ai-employee"] {
        let tv = new_vault();
        let v = &tv.vault;
        let target = tv.dir.path().join("elsewhere");
        fs::create_dir(&target).expect("mkdir");
        replace_with_link(v, rel, &target);
        fs::write(v.join("Inbox/a.txt"), "a").expect("write");
        let mut w = WatcherProc::spawn("filesystem", v, &[]);
        let ended = wait_until(LIMIT, || {
            !names(&target).is_empty() || w.log().contains("symbolic")
        });
        assert!(ended, "{rel}: {}", w.log());
        assert_eq!(exit_code(&mut w), Some(78), "{rel}: {}", w.log());
        assert!(
            names(&target).is_empty(),
            "{rel}: written outside: {:?}",
            names(&target)
        );
        assert!(w.log().contains(rel), "{}", w.log());
    }
}

#[test]
fn a_symlinked_ledger_is_not_written_through() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_file(&tv, "outside-ledger", "mine\n");
    let before = fingerprint(&outside);
    fs::create_dir_all(v.join(".ai-employee")).expect("mkdir");
    symlink(&outside, v.join(".ai-employee/filesystem.ledger")).expect("symlink");
    fs::write(v.join("Inbox/a.txt"), "a").expect("write");
    let mut w = WatcherProc::spawn("filesystem", v, &[]);
    let ended = wait_until(LIMIT, || {
        fingerprint(&outside) != before || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert_eq!(fingerprint(&outside), before, "{}", w.log());
    assert_ne!(exit_code(&mut w), Some(0), "{}", w.log());
    assert!(names(&v.join("Needs_Action")).is_empty());
}

#[test]
fn a_symlinked_heartbeat_file_is_not_touched() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_file(&tv, "outside-beat", "mine\n");
    let before = fingerprint(&outside);
    fs::create_dir_all(v.join(".ai-employee/heartbeat")).expect("mkdir");
    let beat = v.join(".ai-employee/heartbeat/filesystem");
    symlink(&outside, &beat).expect("symlink");
    let mut w = WatcherProc::spawn_with("filesystem", v, &[], |cmd| {
        cmd.env("AI_EMPLOYEE_HEARTBEAT", &beat);
    });
    // The first beat happens before this line.
    w.wait_log("watching ");
    w.stop_clean(LIMIT);
    assert_eq!(fingerprint(&outside), before);
}

// ---- sparse files and the size limit ----

/// Allocated bytes of a file (`st_blocks` counts 512-byte units).
fn allocated(p: &Path) -> u64 {
    fs::metadata(p)
        .map(|m| m.blocks() * 512)
        .unwrap_or(u64::MAX)
}

#[test]
fn a_sparse_file_stays_sparse_in_needs_action() {
    let tv = new_vault();
    let v = &tv.vault;
    // 2 GiB apparent size: a little data at the start, in the middle and at the end.
    let p = v.join("Inbox/.sparse.img");
    let f = fs::File::create(&p).expect("create");
    let size: u64 = 2 << 30;
    f.set_len(size).expect("truncate");
    let chunk = vec![0xA5u8; 64 * 1024];
    {
        use std::os::unix::fs::FileExt;
        for off in [0, size / 2 + 12345, size - chunk.len() as u64] {
            f.write_all_at(&chunk, off).expect("write");
        }
    }
    f.sync_all().expect("sync");
    drop(f);
    let source_blocks = allocated(&p);
    assert!(
        source_blocks < 16 << 20,
        "this file system cannot make sparse files ({source_blocks} bytes allocated)"
    );
    // The hash of the whole content, holes included.
    let want = {
        let mut h = Sha256::new();
        let zeros = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        let data = [0, size / 2 + 12345, size - chunk.len() as u64];
        for d in data {
            while pos < d {
                let n = (d - pos).min(zeros.len() as u64) as usize;
                h.update(&zeros[..n]);
                pos += n as u64;
            }
            h.update(&chunk);
            pos += chunk.len() as u64;
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut w = WatcherProc::spawn("filesystem", v, &["--max-size", "4GiB"]);
    w.wait_log("watching ");
    fs::rename(&p, v.join("Inbox/disk.img")).expect("rename");
    w.wait_log("-> Needs_Action/");
    w.stop_clean(LIMIT);
    let na = names(&v.join("Needs_Action"));
    let copy = na
        .iter()
        .find(|n| n.ends_with("_disk.img"))
        .unwrap_or_else(|| panic!("no copy: {na:?}"));
    let copy = v.join("Needs_Action").join(copy);
    assert_eq!(fs::metadata(&copy).expect("copy").len(), size);
    let copy_blocks = allocated(&copy);
    assert!(
        copy_blocks <= source_blocks + (1 << 20),
        "the copy takes {copy_blocks} bytes on disk, the original {source_blocks}"
    );
    let note = fs::read_to_string(copy.with_file_name(format!(
        "{}.md",
        copy.file_name().expect("name").to_string_lossy()
    )))
    .expect("note");
    assert!(note.contains(&format!("sha256: {want}")), "{note}");
}

#[test]
fn a_file_over_max_size_gets_a_note_and_no_copy() {
    let tv = new_vault();
    let v = &tv.vault;
    let mut w = WatcherProc::spawn("filesystem", v, &["--max-size", "1KiB"]);
    w.wait_log("watching ");
    fs::write(v.join("Inbox/small.txt"), "small").expect("write");
    fs::write(v.join("Inbox/big.bin"), vec![7u8; 4096]).expect("write");
    w.wait_log("\"big.bin\"");
    w.wait_log("\"small.txt\"");
    w.stop_clean(LIMIT);
    let log = w.log();
    assert!(log.contains("over the 1KiB limit"), "{log}");
    let na = names(&v.join("Needs_Action"));
    assert_eq!(na.len(), 3, "{na:?}");
    let note_name = na
        .iter()
        .find(|n| n.ends_with("_big.bin.md"))
        .unwrap_or_else(|| panic!("{na:?}"));
    let note = fs::read_to_string(v.join("Needs_Action").join(note_name)).expect("note");
    assert!(note.contains("copied: false"), "{note}");
    assert!(note.contains("size: 4096"), "{note}");
    assert!(
        note.contains(&format!("sha256: {}", sha(&[7u8; 4096]))),
        "{note}"
    );
    assert!(note.contains("--max-size"), "{note}");
    // The original stays; a restart takes nothing again.
    assert!(v.join("Inbox/big.bin").exists());
    let mut w = WatcherProc::spawn("filesystem", v, &["--max-size", "1KiB"]);
    let log = w.wait_log("watching ");
    assert!(log.contains("2 already done"), "{log}");
    w.stop_clean(LIMIT);
}

// ---- the approval handler ----

fn draft(subject: &str) -> String {
    format!(
        "---\ntype: approval_request\naction: send_email\nto: \"a@example.com\"\nsubject: {subject:?}\ncreated: 2026-01-07T10:30:00Z\nstatus: pending\n---\nnot approved by anyone\n"
    )
}

#[test]
fn approved_symlinked_to_pending_approval_executes_nothing() {
    let tv = new_vault();
    let v = &tv.vault;
    fs::write(v.join("Pending_Approval/draft.md"), draft("DRAFT")).expect("write");
    replace_with_link(v, "Approved", Path::new("Pending_Approval"));
    let mut w = WatcherProc::spawn("approvals", v, &["--dry-run", "--rescan", "200ms"]);
    let ended = wait_until(LIMIT, || {
        !names(&v.join("Done")).is_empty()
            || !names(&v.join("Failed")).is_empty()
            || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
    assert!(
        names(&v.join("Done")).is_empty(),
        "{:?}",
        names(&v.join("Done"))
    );
    assert!(names(&v.join("Failed")).is_empty());
    assert_eq!(names(&v.join("Pending_Approval")), ["draft.md"]);
    let log = w.log();
    assert!(
        log.contains("Approved") && log.contains("is a symbolic link"),
        "{log}"
    );
}

#[test]
fn approved_replaced_by_a_symlink_while_running_executes_nothing() {
    let tv = new_vault();
    let v = &tv.vault;
    fs::write(v.join("Pending_Approval/draft.md"), draft("DRAFT")).expect("write");
    let mut w = WatcherProc::spawn("approvals", v, &["--dry-run", "--rescan", "200ms"]);
    w.wait_log("watching ");
    swap_in_link(v, "Approved", "Pending_Approval");
    let ended = wait_until(LIMIT, || {
        !names(&v.join("Done")).is_empty() || w.log().contains("symbolic")
    });
    assert!(ended, "{}", w.log());
    assert_eq!(exit_code(&mut w), Some(78), "{}", w.log());
    assert!(
        names(&v.join("Done")).is_empty(),
        "{:?}",
        names(&v.join("Done"))
    );
    assert_eq!(names(&v.join("Pending_Approval")), ["draft.md"]);
}

/// A working folder swapped for a symlink while a watcher sleeps is seen at once (the
/// vault folder's file events), not at its next check (every 10 s where those events
/// come): each watcher exits 78 within a few seconds, with nothing else happening.
#[test]
fn a_folder_swapped_for_a_symlink_is_seen_at_once() {
    for (watcher, rel) in [("approvals", "Done"), ("filesystem", "Needs_Action")] {
        let tv = new_vault();
        let v = &tv.vault;
        let target = tv.dir.path().join("elsewhere");
        fs::create_dir(&target).expect("mkdir");
        let mut w = WatcherProc::spawn(watcher, v, &[]);
        w.wait_log("watching ");
        let swapped = std::time::Instant::now();
        swap_in_link(v, rel, &target);
        let ended = wait_until(LIMIT, || w.log().contains("symbolic"));
        let took = swapped.elapsed();
        assert!(ended, "{watcher}: {}", w.log());
        assert_eq!(exit_code(&mut w), Some(78), "{watcher}: {}", w.log());
        assert!(
            took < Duration::from_secs(5),
            "{watcher}: {rel} seen as a symlink after {took:?}, not at once:\n{}",
            w.log()
        );
    }
}

#[test]
fn symlinked_done_or_failed_folders_are_refused() {
    for rel in ["Done", "Failed"] {
        let tv = new_vault();
        let v = &tv.vault;
        let target = tv.dir.path().join("elsewhere");
        fs::create_dir(&target).expect("mkdir");
        replace_with_link(v, rel, &target);
        // One approval that would go to Done/ (dry run), one to Failed/ (expired).
        fs::write(v.join("Approved/ok.md"), draft("OK")).expect("write");
        fs::write(
            v.join("Approved/old.md"),
            draft("OLD").replace("status:", "expires: 2020-01-01T00:00:00Z\nstatus:"),
        )
        .expect("write");
        let mut w = WatcherProc::spawn("approvals", v, &["--dry-run", "--rescan", "200ms"]);
        let ended = wait_until(LIMIT, || {
            !names(&target).is_empty() || w.log().contains("symbolic")
        });
        assert!(ended, "{rel}: {}", w.log());
        assert_eq!(exit_code(&mut w), Some(78), "{rel}: {}", w.log());
        assert!(names(&target).is_empty(), "{rel}: {:?}", names(&target));
        assert_eq!(names(&v.join("Approved")), ["ok.md", "old.md"]);
    }
}

#[test]
fn a_symlinked_credentials_file_is_not_read() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_file(&tv, "outside.toml", "this line is not TOML = [ at all\n");
    symlink(&outside, v.join("credentials/smtp.toml")).expect("symlink");
    // Email is not enabled (each action by its own credentials), and the link is named,
    // never followed: nothing of the other file reaches the log.
    let w = WatcherProc::spawn("approvals", v, &["--rescan", "200ms"]);
    let log = w.wait_log("watching ");
    let line = log
        .lines()
        .find(|l| l.contains("actions enabled"))
        .unwrap_or_default();
    assert!(
        line.contains("not enabled: send_email (credentials/smtp.toml"),
        "{log}"
    );
    assert!(line.contains("is a symbolic link"), "{log}");
    assert!(!log.contains("not TOML"), "{log}");
}

#[test]
fn the_audit_log_and_linkedin_queue_are_not_written_through_symlinks() {
    let tv = new_vault();
    let v = &tv.vault;
    // Credentials that make the handler start; no email is sent in this test.
    fs::write(
        v.join("credentials/smtp.toml"),
        "host = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"ai@example.com\"\n",
    )
    .expect("write");
    fs::set_permissions(
        v.join("credentials/smtp.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let queue = outside_file(&tv, "outside-queue.md", "my queue\n");
    let audit = outside_file(&tv, "outside-audit.json", "{}\n");
    symlink(&queue, v.join("LINKEDIN_QUEUE.md")).expect("symlink");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    symlink(&audit, v.join(format!("Logs/{today}.json"))).expect("symlink");
    let (q0, a0) = (fingerprint(&queue), fingerprint(&audit));
    fs::write(
        v.join("Approved/post.md"),
        "---\ntype: approval_request\naction: linkedin_post\n---\nA post\n",
    )
    .expect("write");
    let mut w = WatcherProc::spawn(
        "approvals",
        v,
        &["--rescan", "200ms", "--max-attempts", "1"],
    );
    // It leaves Approved/ (to Failed/: the queue cannot be written).
    let left = wait_until(LIMIT, || names(&v.join("Approved")).is_empty());
    assert!(left, "{}", w.log());
    w.wait_log("post.md →");
    w.stop_clean(LIMIT);
    assert_eq!(fingerprint(&queue), q0, "{}", w.log());
    assert_eq!(fingerprint(&audit), a0, "{}", w.log());
    assert!(names(&v.join("Done")).is_empty(), "{}", w.log());
    assert_eq!(names(&v.join("Failed")), ["post.md"]);
}

// ---- the supervisor ----

fn one_child_table(tv: &TestVault, script: &str) {
    tv.write_config(&sh_process("child", script, ""));
}

#[test]
fn a_symlinked_logs_or_state_folder_stops_the_supervisor_at_start() {
    for rel in ["Logs", ".ai-employee"] {
        let tv = new_vault();
        let target = tv.dir.path().join("elsewhere");
        fs::create_dir(&target).expect("mkdir");
        replace_with_link(&tv.vault, rel, &target);
        one_child_table(&tv, "exec sleep 30");
        let mut s = tv.start();
        let st = s.wait_exit(LIMIT);
        let console = s.console();
        assert_eq!(st.and_then(|s| s.code()), Some(78), "{rel}: {console}");
        assert!(
            console.contains(rel) && console.contains("is a symbolic link"),
            "{console}"
        );
        assert!(names(&target).is_empty(), "{rel}: {:?}", names(&target));
    }
}

#[test]
fn a_symlinked_inbox_leaves_the_supervisor_running_with_a_warning() {
    let tv = new_vault();
    let outside = outside_dir(&tv);
    replace_with_link(&tv.vault, "Inbox", &outside);
    one_child_table(&tv, "exec sleep 30");
    let mut s = tv.start();
    assert!(
        wait_until(LIMIT, || s.console().contains("will refuse to run")),
        "{}",
        s.console()
    );
    assert!(
        s.console().contains("Inbox is a symbolic link"),
        "{}",
        s.console()
    );
    assert_eq!(
        s.stop().and_then(|st| st.code()),
        Some(0),
        "{}",
        s.console()
    );
    // Nothing was created through the link.
    assert_eq!(names(&outside), ["secret.txt"]);
}

#[test]
fn symlinked_log_files_are_not_written_through() {
    let tv = new_vault();
    let v = &tv.vault;
    let sys_out = outside_file(&tv, "outside-system.log", "mine\n");
    let child_out = outside_file(&tv, "outside-child.log", "mine\n");
    let (s0, c0) = (fingerprint(&sys_out), fingerprint(&child_out));
    symlink(&sys_out, v.join("Logs/system.log")).expect("symlink");
    symlink(&child_out, v.join("Logs/child.log")).expect("symlink");
    let marker = tv.dir.path().join("printed");
    one_child_table(
        &tv,
        &format!(
            "echo hello from the child; touch {}; exec sleep 30",
            marker.display()
        ),
    );
    let mut s = tv.start();
    assert!(wait_until(LIMIT, || marker.exists()), "{}", s.console());
    // A stop drains the child's output pipe and writes every log line before the
    // supervisor exits: after it, nothing more can be written anywhere.
    assert_eq!(
        s.stop().and_then(|st| st.code()),
        Some(0),
        "{}",
        s.console()
    );
    assert_eq!(fingerprint(&sys_out), s0, "{}", s.console());
    assert_eq!(fingerprint(&child_out), c0, "{}", s.console());
}

#[test]
fn a_symlinked_dashboard_outside_the_vault_is_never_rewritten() {
    let tv = new_vault();
    let v = &tv.vault;
    let outside = outside_file(
        &tv,
        "outside.md",
        "# Not the vault\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n",
    );
    let before = fingerprint(&outside);
    fs::remove_file(v.join("Dashboard.md")).expect("rm");
    symlink(&outside, v.join("Dashboard.md")).expect("symlink");
    one_child_table(&tv, "exec sleep 30");
    let mut s = tv.start();
    let ended = wait_until(LIMIT, || {
        fingerprint(&outside) != before || s.console().contains("Dashboard.md")
    });
    assert!(ended, "{}", s.console());
    s.stop();
    assert_eq!(fingerprint(&outside), before, "{}", s.console());
    assert!(fs::symlink_metadata(v.join("Dashboard.md")).is_ok_and(|m| m.file_type().is_symlink()));
    let console = s.console();
    assert!(console.contains("symbolic link"), "{console}");
}

#[test]
fn append_rows_refuses_a_dashboard_that_leads_outside_the_vault() {
    use ai_employee_vault::dashboard::{Row, append_rows};
    let tv = TestVault::new();
    fs::create_dir_all(&tv.vault).expect("mkdir");
    let outside = outside_file(&tv, "outside.md", "# mine\n");
    let before = fingerprint(&outside);
    let d = tv.vault.join("Dashboard.md");
    let row = Row {
        timestamp: "2026-02-16 18:25:00".into(),
        action: "System_Status".into(),
        status: "✓ Online".into(),
        details: "x".into(),
    };
    for target in [outside.clone(), PathBuf::from("../outside.md")] {
        let _ = fs::remove_file(&d);
        symlink(&target, &d).expect("symlink");
        let err = append_rows(&d, std::slice::from_ref(&row)).expect_err("refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fingerprint(&outside), before);
    }
    // Into a working folder of the vault (an approval, say): refused as well.
    fs::create_dir_all(tv.vault.join("Approved")).expect("mkdir");
    fs::write(tv.vault.join("Approved/a.md"), "# approval\n").expect("write");
    let _ = fs::remove_file(&d);
    symlink("Approved/a.md", &d).expect("symlink");
    assert!(append_rows(&d, std::slice::from_ref(&row)).is_err());
    assert_eq!(
        fs::read_to_string(tv.vault.join("Approved/a.md")).expect("read"),
        "# approval\n"
    );
}
