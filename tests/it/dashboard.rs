//! Dashboard.md rows: real files, real concurrent writer processes (`sh` loops, and a
//! second copy of this test binary), no fixed sleeps.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ai_employee_vault::dashboard::{HEADER, Row, Section, append_rows, replace_section, update};
use ai_employee_vault::layout::dashboard_template;

const SEPARATOR: &str = "|---|---|---|---|";

fn row(tag: &str, k: usize) -> Row {
    Row {
        timestamp: "2026-02-16 18:25:00".into(),
        action: "System_Status".into(),
        status: "✓ Online".into(),
        details: format!("{tag} row {k}"),
    }
}

fn temp_vault() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("aie-dash-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().join("Dashboard.md");
    (dir, d)
}

/// How often each line occurs.
fn line_counts(text: &str) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for l in text.lines() {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// `sh -c script` in `dir`, a real separate process.
fn sh(dir: &Path, script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

/// Wait for `child` to exit, at most `limit` (then kill it and fail).
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("writer process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Temp files of ours (`.Dashboard.md.*.tmp`) left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".Dashboard.md."))
        .collect()
}

/// The rows of the status table, top to bottom.
fn table_rows(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .windows(2)
        .position(|w| w[0] == HEADER && w[1] == SEPARATOR)
        .expect("status table");
    lines[at + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .copied()
        .collect()
}

// ---- plain behaviour ----

#[test]
fn missing_file_is_created_from_the_template() {
    let (dir, d) = temp_vault();
    append_rows(&d, &[row("a", 1)]).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    let want = format!("{}{}\n", dashboard_template(), row("a", 1).markdown());
    assert_eq!(text, want);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn rows_read_newest_first_across_calls_and_within_a_batch() {
    let (_dir, d) = temp_vault();
    append_rows(&d, &[row("a", 1)]).unwrap();
    append_rows(&d, &[row("a", 2), row("a", 3)]).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    let want: Vec<String> = [3, 2, 1].iter().map(|&k| row("a", k).markdown()).collect();
    assert_eq!(table_rows(&text), want);
}

#[test]
fn table_in_the_middle_of_a_document_keeps_everything_around_it() {
    let (_dir, d) = temp_vault();
    let before = "# My dashboard\n\nNotes | with pipes\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| 2026-01-01 00:00:00 | System_Status | ✗ Offline | old |\n\n## Tasks\n\n- [ ] something\n";
    fs::write(&d, before).unwrap();
    append_rows(&d, &[row("a", 1)]).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    let want = before.replace(
        "|---|---|---|---|\n",
        &format!("|---|---|---|---|\n{}\n", row("a", 1).markdown()),
    );
    assert_eq!(text, want);
}

#[test]
fn document_without_the_table_gets_a_section_at_the_end() {
    let (_dir, d) = temp_vault();
    fs::write(&d, "# Mine\n\nhand-written notes\n").unwrap();
    append_rows(&d, &[row("a", 1)]).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    assert_eq!(
        text,
        format!(
            "# Mine\n\nhand-written notes\n\n## System Status\n\n{HEADER}\n{SEPARATOR}\n{}\n",
            row("a", 1).markdown()
        )
    );
}

#[test]
fn cells_are_escaped() {
    let (_dir, d) = temp_vault();
    let r = Row {
        timestamp: "2026-02-16 18:25:00".into(),
        action: "Watcher_Status".into(),
        status: "✗ Gave Up".into(),
        details: "gmail: exited | code 1\nsee log".into(),
    };
    append_rows(&d, &[r]).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    assert_eq!(
        table_rows(&text),
        ["| 2026-02-16 18:25:00 | Watcher_Status | ✗ Gave Up | gmail: exited \\| code 1 see log |"]
    );
}

#[test]
fn permissions_are_kept() {
    let (_dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o640)).unwrap();
    append_rows(&d, &[row("a", 1)]).unwrap();
    assert_eq!(
        fs::metadata(&d).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[test]
fn a_symlinked_dashboard_is_updated_where_it_points() {
    let (dir, d) = temp_vault();
    let real = dir.path().join("real.md");
    fs::write(&real, dashboard_template()).unwrap();
    std::os::unix::fs::symlink(&real, &d).unwrap();
    append_rows(&d, &[row("a", 1)]).unwrap();
    assert!(fs::symlink_metadata(&d).unwrap().file_type().is_symlink());
    assert!(
        fs::read_to_string(&real)
            .unwrap()
            .contains(&row("a", 1).markdown())
    );
}

// ---- the section kept between markers ----

fn tasks_section(k: usize) -> Section {
    Section {
        id: "tasks".into(),
        heading: "## Tasks".into(),
        note: "kept current by the task loop; edits inside are replaced".into(),
        lines: vec![format!("Pending {k} · Running 1"), format!("Updated {k}")],
    }
}

const OPEN: &str =
    "<!-- ai-employee:tasks (kept current by the task loop; edits inside are replaced) -->";
const CLOSE: &str = "<!-- /ai-employee:tasks -->";

#[test]
fn the_section_goes_after_the_table_and_rows_keep_going_on_top() {
    let (dir, d) = temp_vault();
    fs::write(
        &d,
        format!(
            "{}
## Notes

mine
",
            dashboard_template()
        ),
    )
    .unwrap();
    replace_section(&d, &tasks_section(1)).unwrap();
    let section =
        |k: usize| format!("## Tasks\n{OPEN}\nPending {k} · Running 1\nUpdated {k}\n{CLOSE}\n");
    assert_eq!(
        fs::read_to_string(&d).unwrap(),
        format!(
            "{}\n{}\n## Notes\n\nmine\n",
            dashboard_template(),
            section(1)
        )
    );
    // Rows and the new section in one write; the table stays where it is.
    update(&d, &[row("a", 1)], Some(&tasks_section(2))).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    assert_eq!(
        text,
        format!(
            "{}{}\n\n{}\n## Notes\n\nmine\n",
            dashboard_template(),
            row("a", 1).markdown(),
            section(2)
        )
    );
    // Rows alone leave the section alone; a section alone leaves the rows.
    append_rows(&d, &[row("a", 2)]).unwrap();
    replace_section(&d, &tasks_section(3)).unwrap();
    let text = fs::read_to_string(&d).unwrap();
    assert_eq!(
        table_rows(&text),
        [row("a", 2).markdown(), row("a", 1).markdown()]
    );
    assert_eq!(text.matches(OPEN).count(), 1);
    assert!(text.contains(&format!(
        "{OPEN}\nPending 3 · Running 1\nUpdated 3\n{CLOSE}\n"
    )));
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_missing_file_gets_the_template_and_the_section() {
    let (_dir, d) = temp_vault();
    update(&d, &[row("a", 1)], Some(&tasks_section(1))).unwrap();
    assert_eq!(
        fs::read_to_string(&d).unwrap(),
        format!(
            "{}{}\n\n## Tasks\n{OPEN}\nPending 1 · Running 1\nUpdated 1\n{CLOSE}\n",
            dashboard_template(),
            row("a", 1).markdown()
        )
    );
}

#[test]
fn the_section_is_not_written_through_a_symlink_leading_outside_the_vault() {
    let (dir, d) = temp_vault();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("elsewhere.md");
    fs::write(&target, "theirs\n").unwrap();
    std::os::unix::fs::symlink(&target, &d).unwrap();
    let err = replace_section(&d, &tasks_section(1)).unwrap_err();
    assert!(err.to_string().contains("outside the vault"), "{err}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "theirs\n");
    assert!(leftovers(dir.path()).is_empty());
}

/// An appender (`sh` loop, as above) while the section is replaced 200 times: every
/// appended line is there exactly once, the section is there once with the last lines,
/// and nothing else changed.
#[test]
fn appends_are_never_lost_while_the_section_is_replaced() {
    let (dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    let (n, per_call) = with_an_appender(dir.path(), |k| {
        replace_section(&d, &tasks_section(k)).unwrap();
    });
    let text = fs::read_to_string(&d).unwrap();
    assert_appended_once(&line_counts(&text), n);
    let section = format!("## Tasks\n{OPEN}\nPending 199 · Running 1\nUpdated 199\n{CLOSE}\n");
    assert_eq!(text.matches(OPEN).count(), 1);
    assert_eq!(text.matches(CLOSE).count(), 1);
    assert!(text.contains(&section), "{text}");
    assert!(text.starts_with(dashboard_template()));
    // Nothing else: the template, the section with a blank line on each side (their
    // first line was there before it), their lines.
    assert_eq!(
        text.lines().count(),
        dashboard_template().lines().count() + 2 + section.lines().count() + n
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    eprintln!("{n} lines appended concurrently; replace_section took {per_call:?} per call");
}

// ---- concurrency ----

/// A reader never sees a file without the table, nor one with fewer rows than before.
#[test]
fn readers_never_see_a_partial_file() {
    let (_dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    let stop = AtomicBool::new(false);
    let (reads, bad, per_call) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut bad, mut last_rows) = (0usize, Vec::new(), 0usize);
            while !stop.load(Ordering::Relaxed) {
                let text = fs::read_to_string(&d).unwrap_or_default();
                reads += 1;
                let ok = text.starts_with(dashboard_template()) && text.ends_with('\n');
                let rows = text.lines().filter(|l| l.contains(" row ")).count();
                if !ok || rows < last_rows {
                    bad.push(text);
                } else {
                    last_rows = rows;
                }
            }
            (reads, bad)
        });
        let t = Instant::now();
        for k in 0..200 {
            append_rows(&d, &[row("a", k)]).unwrap();
        }
        let per_call = t.elapsed() / 200;
        stop.store(true, Ordering::Relaxed);
        let (reads, bad) = reader.join().unwrap();
        (reads, bad, per_call)
    });
    eprintln!("append_rows without contention: {per_call:?} per call; reader saw {reads} versions");
    assert!(
        bad.is_empty(),
        "{} partial reads, first:\n{}",
        bad.len(),
        bad[0]
    );
    assert!(reads >= 200, "the reader hardly ran ({reads} reads)");
    assert_eq!(table_rows(&fs::read_to_string(&d).unwrap()).len(), 200);
}

/// The appender: a separate `sh` process doing `echo ... >> Dashboard.md` in a tight loop
/// (open O_APPEND, write, close) for as long as we write. Every one of its lines and every
/// one of our rows is there exactly once, and nothing else is.
#[test]
fn appends_by_another_process_are_never_lost() {
    let (dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    let (n, per_call) = with_an_appender(dir.path(), |k| {
        append_rows(&d, &[row("a", k)]).unwrap();
    });

    let text = fs::read_to_string(&d).unwrap();
    let counts = line_counts(&text);
    let ours: Vec<String> = (0..200).map(|k| row("a", k).markdown()).collect();
    for r in &ours {
        assert_eq!(counts.get(r.as_str()), Some(&1), "{r}");
    }
    assert_appended_once(&counts, n);
    // Nothing else: no torn or glued lines.
    let template_lines = dashboard_template().lines().count();
    assert_eq!(text.lines().count(), template_lines + 200 + n);
    // Ours still read newest first.
    let mut want = ours.clone();
    want.reverse();
    assert_eq!(table_rows(&text), want);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    eprintln!("{n} lines appended concurrently; append_rows took {per_call:?} per call");
}

/// Run `write(k)` for k in 0..200 (a write to `dir/Dashboard.md`) while a separate `sh`
/// process appends lines to it (`appended line N`), from before the first call to after
/// the last. Returns how many lines it appended and the time per call.
fn with_an_appender(dir: &Path, mut write: impl FnMut(usize)) -> (usize, Duration) {
    let d = dir.join("Dashboard.md");
    let mut writer = sh(
        dir,
        // Per turn: 4 lines each with its own open(O_APPEND)/write/close (no fork: shell
        // builtins), then 4 lines through one descriptor kept open across an external
        // command (~1 ms): a late writer to a file we may have replaced meanwhile. A few
        // thousand lines a second: racing with all 200 calls, yet the file stays small.
        r#"set -e; i=0
        while [ ! -e stop ] && [ $i -lt 100000 ]; do
          for x in 1 2 3 4; do echo "appended line $i" >> Dashboard.md; i=$((i+1)); done
          {
            echo "appended line $i"; i=$((i+1)); echo "appended line $i"; i=$((i+1))
            /bin/true
            echo "appended line $i"; i=$((i+1)); echo "appended line $i"; i=$((i+1))
          } >> Dashboard.md
        done
        echo $i > count.tmp; mv count.tmp count"#,
    );
    assert!(wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&d).is_ok_and(|t| t.contains("appended line 0\n"))
    }));
    let t = Instant::now();
    for k in 0..200 {
        write(k);
    }
    let per_call = t.elapsed() / 200;
    fs::write(dir.join("stop"), "").unwrap();
    assert!(wait_exit(&mut writer, Duration::from_secs(30)).success());
    let n: usize = fs::read_to_string(dir.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (n, per_call)
}

/// Every line the appender of [`with_an_appender`] wrote (`n` of them) is there exactly
/// once.
fn assert_appended_once(counts: &HashMap<&str, usize>, n: usize) {
    let lost: Vec<usize> = (0..n)
        .filter(|i| counts.get(format!("appended line {i}").as_str()) != Some(&1))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {n} appended lines lost or duplicated, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// The saver: a separate `sh` process that, in a loop, reads the Dashboard (`cat` to a
/// snapshot), writes the snapshot plus one line to a temp file and renames it over the
/// Dashboard, the way a careful editor or the agent saves.
///
/// What can be asserted, precisely:
/// - Its lines. It runs sequentially, so each of its reads comes after its previous
///   save, and it builds on what it read: a line of its own can only vanish if it later
///   reads a version without it. We never publish such a version for longer than the
///   microseconds between a swap that catches its save coming in and the swap back
///   (longer only if we are descheduled right there). So: every `saved line i` is present
///   exactly once, or else one of the saver's later snapshots lacks it; and that is rare
///   (usually none; a replace that ignores its saves loses about half of them).
/// - Our rows are NOT all guaranteed: when its read comes before our swap and its save
///   after, its save drops our row. That is its lost update, which nothing on our side
///   can prevent (it does not look before it saves). But once it has *seen* one of our
///   rows (it is in one of its snapshots) the row must survive: it builds on what it
///   read, and we never take away what is there. Rows written after it stopped are all
///   present, and none of ours is ever duplicated.
#[test]
fn saves_by_rename_from_another_process_are_never_lost() {
    whole_file_saves("mv .w.tmp Dashboard.md", Saver::Atomic);
}

/// The same with a saver that truncates the file and writes it in place (`>`), which is
/// not atomic itself. When its save lands on the file we have just swapped out, we carry
/// its line over to the file in place once it has closed the file (microseconds
/// normally, more when we are descheduled); if it reads the file before that, its next
/// save drops its own line. So losses explained by a later snapshot lacking the line are
/// more frequent here (a few percent), and still bounded (a replace that ignores its
/// saves loses nearly all of them). Nothing is ever duplicated; the rest as above.
///
/// Its windows widen when the machine stalls on I/O (an fsync taking tens of
/// milliseconds), so it is run alone, after the rest of the suite, by `tests/run.sh`
/// (`cargo test --test it -- --ignored --exact dashboard::saves_in_place_…`).
#[test]
#[ignore = "timing-sensitive under parallel I/O: tests/run.sh runs it alone"]
fn saves_in_place_from_another_process_are_never_lost() {
    whole_file_saves("cat .w.tmp > Dashboard.md", Saver::InPlace);
}

#[derive(PartialEq)]
enum Saver {
    Atomic,
    InPlace,
}

fn whole_file_saves(save: &str, kind: Saver) {
    let (dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    fs::create_dir(dir.path().join("snaps")).unwrap();
    let script = r#"set -e; i=0
        while [ ! -e stop ] || [ $i -lt 20 ]; do
          cat Dashboard.md > snaps/$i
          { cat snaps/$i; echo "saved line $i"; } > .w.tmp
          SAVE
          i=$((i+1))
        done
        echo $i > count.tmp; mv count.tmp count"#;
    let mut writer = sh(dir.path(), &script.replace("SAVE", save));
    assert!(wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&d).is_ok_and(|t| t.contains("saved line 0\n"))
    }));
    let t = Instant::now();
    for k in 0..200 {
        append_rows(&d, &[row("a", k)]).unwrap();
    }
    let per_call = t.elapsed() / 200;
    fs::write(dir.path().join("stop"), "").unwrap();
    let st = wait_exit(&mut writer, Duration::from_secs(60));
    assert!(st.success(), "writer: {st:?}");
    for k in 0..10 {
        append_rows(&d, &[row("after", k)]).unwrap();
    }
    let n: usize = fs::read_to_string(dir.path().join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let snaps: Vec<String> = (0..n)
        .map(|i| fs::read_to_string(dir.path().join(format!("snaps/{i}"))).unwrap())
        .collect();
    let snap_counts: Vec<HashMap<&str, usize>> = snaps.iter().map(|s| line_counts(s)).collect();

    let text = fs::read_to_string(&d).unwrap();
    let counts = line_counts(&text);
    // Their lines: once, or missing only if the saver later read a version without it,
    // which must stay rare.
    let mut theirs_lost = Vec::new();
    for j in 0..n {
        let l = format!("saved line {j}");
        match counts.get(l.as_str()) {
            Some(1) => {}
            None => {
                let unseen = snap_counts[j + 1..]
                    .iter()
                    .any(|c| !c.contains_key(l.as_str()));
                assert!(
                    unseen,
                    "{l} lost although the saver saw it in every later read"
                );
                theirs_lost.push(j);
            }
            other => panic!("{l}: {other:?} times (of {n} saves)"),
        }
    }
    let bound = if kind == Saver::Atomic { n / 10 } else { n / 4 };
    assert!(
        theirs_lost.len() <= bound,
        "{} of {n} saved lines lost: {theirs_lost:?}",
        theirs_lost.len()
    );
    // Ours: never twice; present if the writer ever saw it; all rows after it stopped.
    let ours: Vec<String> = (0..200).map(|k| row("a", k).markdown()).collect();
    let mut seen = [false; 200];
    let mut partial_snapshots = 0;
    for c in &snap_counts {
        let in_snap = ours
            .iter()
            .enumerate()
            .filter(|(_, r)| c.contains_key(r.as_str()));
        let mut m = 0;
        for (k, _) in in_snap {
            seen[k] = true;
            m += 1;
        }
        if m > 0 && m < 200 {
            partial_snapshots += 1;
        }
    }
    assert!(partial_snapshots > 0, "the writer never ran while we wrote");
    let mut lost = Vec::new();
    for (k, r) in ours.iter().enumerate() {
        match counts.get(r.as_str()) {
            Some(1) => {}
            None if !seen[k] => lost.push(k),
            other => panic!(
                "{r}: {other:?} times in the result, seen by the writer: {}",
                seen[k]
            ),
        }
    }
    for k in 0..10 {
        let r = row("after", k).markdown();
        assert_eq!(counts.get(r.as_str()), Some(&1), "{r}");
    }
    // Nothing else: template, our rows, their lines.
    let template_lines = dashboard_template().lines().count();
    assert_eq!(
        text.lines().count(),
        template_lines + (200 - lost.len()) + 10 + (n - theirs_lost.len())
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    eprintln!(
        "{n} saves ({save}) concurrently; append_rows took {per_call:?} per call; \
         {} of our 200 rows were dropped by the saver's stale saves (never seen by it); \
         {} of its own lines it dropped itself after reading a version without them",
        lost.len(),
        theirs_lost.len()
    );
}

/// Two processes both using `append_rows` (this binary, re-run as a helper): both look
/// before they swap, so neither loses the other's rows.
#[test]
fn two_processes_appending_rows_lose_nothing() {
    let (dir, d) = temp_vault();
    fs::write(&d, dashboard_template()).unwrap();
    // /proc/self/exe still works when a concurrent build has replaced the binary.
    let exe = if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap()
    };
    let mut other = Command::new(exe)
        .args([
            "dashboard::helper_process_appending_rows",
            "--exact",
            "--ignored",
            "--quiet",
        ])
        .env("AIE_DASHBOARD_HELPER", &d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        fs::read_to_string(&d).is_ok_and(|t| t.contains(&row("b", 0).markdown()))
    }));
    for k in 0..150 {
        append_rows(&d, &[row("a", k)]).unwrap();
    }
    assert!(wait_exit(&mut other, Duration::from_secs(60)).success());
    let text = fs::read_to_string(&d).unwrap();
    let counts = line_counts(&text);
    for tag in ["a", "b"] {
        for k in 0..150 {
            let r = row(tag, k).markdown();
            assert_eq!(counts.get(r.as_str()), Some(&1), "{r}");
        }
    }
    assert_eq!(table_rows(&text).len(), 300);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// Not a test on its own: the second process of the test above.
#[test]
#[ignore = "helper process for two_processes_appending_rows_lose_nothing"]
fn helper_process_appending_rows() {
    let Some(d) = std::env::var_os("AIE_DASHBOARD_HELPER") else {
        return;
    };
    for k in 0..150 {
        append_rows(Path::new(&d), &[row("b", k)]).unwrap();
    }
}
