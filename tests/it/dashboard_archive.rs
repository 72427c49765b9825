//! A large Dashboard.md: old rows are archived to `Logs/dashboard-YYYY.md` (never lost,
//! never twice), the rest of the file is kept, and the merge with other writers works the
//! same on a text too large to be held in memory (it is kept in a private file).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ai_employee_vault::dashboard::archive::{self as dashboard_archive, ARCHIVE_ABOVE, KEEP};
use ai_employee_vault::dashboard::text::Text;
use ai_employee_vault::dashboard::{Row, append_rows};

use crate::common::{BIN, TestVault, wait_until};

const TOP: &str = "# AI Employee Dashboard\n\nMy notes before the table.\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n";
const BOTTOM: &str = "\n## Notes\n\n- [ ] a person's line after the table\n";

/// `n` old rows, newest first, going back an hour each from 2026-01-01 00:00 (24,000 of
/// them reach back into 2023).
fn old_rows(n: usize) -> Vec<String> {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (0..n)
        .map(|i| {
            let t = start - chrono::Duration::hours(i as i64 + 1);
            format!(
                "| {} | System_Status | ⚠ Degraded | System Degraded: old row {i} with some padding to make it longer than a short row |",
                t.format("%Y-%m-%d %H:%M:%S")
            )
        })
        .collect()
}

fn new_row(k: usize) -> Row {
    Row {
        timestamp: "2026-12-05 12:00:00".into(),
        action: "System_Status".into(),
        status: "✓ Online".into(),
        details: format!("new row {k}"),
    }
}

fn vault_with(rows: &[String]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("aie-arch-")
        .tempdir()
        .unwrap();
    fs::create_dir(dir.path().join("Logs")).unwrap();
    let d = dir.path().join("Dashboard.md");
    let mut text = String::from(TOP);
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    text.push_str(BOTTOM);
    fs::write(&d, text).unwrap();
    (dir, d)
}

fn archives(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(dir.join("Logs"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("dashboard-")
                .then(|| (name, fs::read_to_string(e.path()).unwrap()))
        })
        .collect();
    v.sort();
    v
}

fn counts<'a>(texts: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut m = HashMap::new();
    for t in texts {
        for l in t.lines() {
            *m.entry(l).or_insert(0) += 1;
        }
    }
    m
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            n.starts_with('.').then_some(n)
        })
        .collect()
}

#[test]
fn past_the_limit_old_rows_move_to_yearly_archives_and_none_is_lost() {
    // About 3 MiB of rows, from 2026 back into 2024.
    let old = old_rows(24_000);
    let (dir, d) = vault_with(&old);
    assert!(fs::metadata(&d).unwrap().len() > 2 * ARCHIVE_ABOVE);
    append_rows(&d, &[new_row(1)]).unwrap();

    let text = fs::read_to_string(&d).unwrap();
    // Our row on top, the person's text before and after the table intact.
    assert!(
        text.starts_with(&format!("{TOP}{}\n", new_row(1).markdown())),
        "{}",
        &text[..400]
    );
    assert!(text.ends_with(BOTTOM));
    // What stays: the newest rows, within KEEP bytes of rows.
    let kept: Vec<&str> = text.lines().filter(|l| l.contains("old row")).collect();
    let kept_bytes: usize = kept.iter().map(|l| l.len() + 1).sum();
    assert!(kept_bytes as u64 <= KEEP, "{kept_bytes}");
    assert!(kept_bytes as u64 > KEEP - 1000, "{kept_bytes}");
    assert_eq!(
        kept,
        old[..kept.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );

    // Every old row exactly once across the Dashboard and the archives, each in the
    // archive of its year, newest first.
    let arch = archives(dir.path());
    let names: Vec<&str> = arch.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "dashboard-2023.md",
            "dashboard-2024.md",
            "dashboard-2025.md"
        ]
    );
    let all = counts(std::iter::once(text.as_str()).chain(arch.iter().map(|(_, t)| t.as_str())));
    for r in &old {
        assert_eq!(all.get(r.as_str()), Some(&1), "{r}");
    }
    for (name, body) in &arch {
        let year = &name["dashboard-".len()..name.len() - 3];
        let rows: Vec<&str> = body.lines().filter(|l| l.contains("old row")).collect();
        assert!(!rows.is_empty());
        for r in &rows {
            assert!(r.starts_with(&format!("| {year}-")), "{name}: {r}");
        }
        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(rows, sorted, "{name}: newest first");
        assert!(
            body.starts_with(&format!("# Dashboard.md archive, {year}\n")),
            "{body:.300}"
        );
        assert_eq!(body.matches("## Archived from Dashboard.md on ").count(), 1);
    }

    // The next write has nothing to archive.
    append_rows(&d, &[new_row(2)]).unwrap();
    assert_eq!(archives(dir.path()), arch);
    let text = fs::read_to_string(&d).unwrap();
    assert!(text.starts_with(&format!(
        "{TOP}{}\n{}\n",
        new_row(2).markdown(),
        new_row(1).markdown()
    )));
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// An earlier attempt archived the rows, but its Dashboard never replaced the file (a
/// crash, or a save by someone else in between): the rows are not archived twice.
#[test]
fn rows_archived_by_an_interrupted_attempt_are_not_archived_again() {
    let old = old_rows(9_000);
    let extra = new_row(1).markdown().len() as u64 + 1;
    // Where the write of new_row(1) cuts: the rows that fit in KEEP with it on top.
    let mut kept = 0;
    let mut bytes = extra;
    while bytes + (old[kept].len() as u64) < KEEP {
        bytes += old[kept].len() as u64 + 1;
        kept += 1;
    }
    // Interrupted at the same cut, and at an earlier one (the table changed in between).
    for first in [kept, 1000] {
        let (dir, d) = vault_with(&old);
        let text = fs::read(&d).unwrap();
        let offset =
            |k: usize| (TOP.len() + old[..k].iter().map(|r| r.len() + 1).sum::<usize>()) as u64;
        let n = dashboard_archive::archive_rows(
            &Text::from(text),
            offset(first),
            offset(old.len()),
            &d,
            0o644,
        )
        .unwrap();
        assert_eq!(n as usize, old.len() - first);

        append_rows(&d, &[new_row(1)]).unwrap();
        let text = fs::read_to_string(&d).unwrap();
        let arch = archives(dir.path());
        let in_archives = counts(arch.iter().map(|(_, t)| t.as_str()));
        let in_dashboard = counts(std::iter::once(text.as_str()));
        for (k, r) in old.iter().enumerate() {
            let a = in_archives.get(r.as_str()).copied().unwrap_or(0);
            let b = in_dashboard.get(r.as_str()).copied().unwrap_or(0);
            assert!(a <= 1, "{r} archived {a} times (first = {first})");
            assert_eq!(b, usize::from(k < kept), "{r} (first = {first})");
            assert!(a + b >= 1, "{r} lost (first = {first})");
            if first == kept {
                assert_eq!(a + b, 1, "{r}");
            }
        }
        assert!(text.starts_with(&format!("{TOP}{}\n", new_row(1).markdown())));
    }
}

/// `Logs/dashboard-2025.md` as a symlink elsewhere: not followed, nothing archived, and
/// the row is still written (the old rows stay).
#[test]
fn a_symlinked_archive_is_not_followed_and_the_row_is_still_written() {
    let old = old_rows(12_000);
    let (dir, d) = vault_with(&old);
    let target = dir.path().join("elsewhere.md");
    fs::write(&target, "do not touch\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("Logs/dashboard-2025.md")).unwrap();
    append_rows(&d, &[new_row(1)]).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "do not touch\n");
    let text = fs::read_to_string(&d).unwrap();
    assert!(text.starts_with(&format!("{TOP}{}\n", new_row(1).markdown())));
    let arch = archives(dir.path());
    let all = counts(std::iter::once(text.as_str()).chain(arch.iter().map(|(_, t)| t.as_str())));
    for r in &old {
        assert!(all.get(r.as_str()).is_some_and(|&n| n >= 1), "{r} lost");
    }
}

/// The merge on a file too large for memory (2 MB of notes outside the table, so nothing
/// is archived and every text is kept in a private file): a shell loop appends lines as
/// fast as it can while 40 rows are written; every line and every row is there once.
#[test]
fn appends_to_a_large_dashboard_are_never_lost() {
    let dir = tempfile::Builder::new()
        .prefix("aie-big-")
        .tempdir()
        .unwrap();
    let d = dir.path().join("Dashboard.md");
    let notes: String = (0..20_000)
        .map(|i| format!("note {i}: a long paragraph a person wrote about the week ahead\n"))
        .collect();
    let base = format!(
        "{notes}\n{}",
        &TOP["# AI Employee Dashboard\n\nMy notes before the table.\n\n".len()..]
    );
    fs::write(&d, &base).unwrap();
    assert!(base.len() > 1_000_000);
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(
            r#"i=0
            while [ ! -e stop ] && [ $i -lt 100000 ]; do
              for x in 1 2 3 4; do echo "appended line $i" >> Dashboard.md; i=$((i+1)); done
            done
            echo $i > count.tmp; mv count.tmp count"#,
        )
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        fs::read_to_string(&d).is_ok_and(|t| t.contains("appended line 0\n"))
    }));
    let t = Instant::now();
    for k in 0..40 {
        append_rows(&d, &[new_row(k)]).unwrap();
    }
    eprintln!(
        "large Dashboard: append_rows took {:?} per call",
        t.elapsed() / 40
    );
    fs::write(dir.path().join("stop"), "").unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while writer.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "the appender did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    let n: usize = fs::read_to_string(dir.path().join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let text = fs::read_to_string(&d).unwrap();
    let c = counts(std::iter::once(text.as_str()));
    for k in 0..40 {
        assert_eq!(c.get(new_row(k).markdown().as_str()), Some(&1), "row {k}");
    }
    let lost: Vec<usize> = (0..n)
        .filter(|i| c.get(format!("appended line {i}").as_str()) != Some(&1))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {n} appended lines lost or doubled: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(text.starts_with(&notes));
    assert_eq!(text.lines().count(), base.lines().count() + 40 + n);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// End to end: a supervisor started on a vault whose Dashboard.md is 3 MB writes its
/// Online row and archives the old rows.
#[test]
fn the_supervisor_archives_a_large_dashboard() {
    let tv = TestVault::new();
    fs::create_dir_all(tv.vault.join("Logs")).unwrap();
    let old = old_rows(24_000);
    let mut text = String::from(TOP);
    for r in &old {
        text.push_str(r);
        text.push('\n');
    }
    fs::write(tv.vault.join("Dashboard.md"), &text).unwrap();
    tv.write_config("[[process]]\nname = \"s\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n");
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(30), || tv
            .dashboard()
            .contains("System Online")),
        "{}",
        sup.console()
    );
    assert!(sup.stop().is_some());
    let dash = tv.dashboard();
    assert!(dash.len() < 600_000, "{}", dash.len());
    let arch: Vec<String> = ["2023", "2024", "2025"]
        .iter()
        .map(|y| {
            fs::read_to_string(tv.vault.join(format!("Logs/dashboard-{y}.md"))).unwrap_or_default()
        })
        .collect();
    let all = counts(std::iter::once(dash.as_str()).chain(arch.iter().map(String::as_str)));
    for r in &old {
        assert_eq!(all.get(r.as_str()), Some(&1), "{r}");
    }
    let _ = BIN;
}
