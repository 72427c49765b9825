//! An idle approval handler sleeps: its own reads of `Approved/` (listing it, opening it
//! to look at a file) must not wake it, or it wakes itself again at once and spins.

use std::time::Duration;

use super::{Handler, approve, new_vault};
use crate::common::{WatcherProc, cpu_used_over, wait_until};

/// How long the CPU time is measured.
const WINDOW: Duration = Duration::from_secs(3);

/// The most CPU an idle handler may use in [`WINDOW`]: 5 % of it. A handler that wakes
/// itself uses most of a core; one that sleeps, a few milliseconds.
fn idle_bound() -> Duration {
    WINDOW / 20
}

#[test]
fn an_idle_handler_uses_almost_no_cpu_before_and_after_an_approval() {
    let tv = new_vault();
    let v = &tv.vault;
    // As the default table starts it: no flags, no credentials.
    let mut h = Handler(WatcherProc::spawn("approvals", v, &[]));
    h.wait_log("watching ");
    let used = cpu_used_over(h.pid(), WINDOW);
    assert!(
        used < idle_bound(),
        "an idle handler used {used:?} of CPU in {WINDOW:?}:\n{}",
        h.stderr()
    );

    // It still sees an approval at once, and sleeps again once it has carried it out
    // (moving it to Done/ and reading it make events of its own).
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nWe shipped v2!\n",
    );
    assert!(
        wait_until(Duration::from_secs(10), || v.join("Done/post.md").exists()),
        "the approval was not carried out:\n{}",
        h.stderr()
    );
    let used = cpu_used_over(h.pid(), WINDOW);
    assert!(
        used < idle_bound(),
        "after an approval the handler used {used:?} of CPU in {WINDOW:?}:\n{}",
        h.stderr()
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.stderr());
}

/// Over 10 s the handler wakes at most 3 times: one folder check (two if the window spans
/// both ends of one period), no listing; a listing every 3 s made 4 or 5.
fn assert_sleeps(h: &Handler, when: &str) {
    let (woken, secs) = crate::common::wake_ups_over(h.pid(), Duration::from_secs(10));
    eprintln!("{woken} wake-ups in {secs:.1} s {when}");
    assert!(
        woken <= 3,
        "{woken} wake-ups in {secs:.1} s {when}:\n{}",
        h.stderr()
    );
}

/// Idle, the handler sleeps until its folder check (every 10 s: the vault folder's file
/// events say when one is needed sooner) or its listing of `Approved/` (every minute while
/// file events work; every `--rescan`, 3 s, without them) is due, and a stop signal wakes
/// it. It looked at a stop flag five times a second and checked its folders every second
/// (5.4 wake-ups a second), then listed the folder every 3 s (0.4 a second).
#[test]
fn an_idle_handler_wakes_only_for_its_checks() {
    let tv = new_vault();
    let mut h = Handler(WatcherProc::spawn("approvals", &tv.vault, &[]));
    h.wait_log("watching ");
    assert_sleeps(&h, "idle");
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.stderr());
}

/// `Approved/` removed and made again (by a person, a sync tool): the file events were for
/// the folder that is gone, so the new one is listed every `--rescan` (3 s) until the
/// listing watches it: an approval moved into it is carried out within seconds, and the
/// handler then sleeps as before (no listing every 3 s for good).
#[test]
fn an_approved_folder_made_again_is_watched_again() {
    let tv = new_vault();
    let v = &tv.vault;
    let mut h = Handler(WatcherProc::spawn("approvals", v, &[]));
    h.wait_log("watching ");
    std::fs::remove_dir(v.join("Approved")).unwrap();
    std::fs::create_dir(v.join("Approved")).unwrap();
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nWe shipped v2!\n",
    );
    assert!(
        wait_until(Duration::from_secs(15), || v.join("Done/post.md").exists()),
        "the approval in the new Approved/ was not carried out:\n{}",
        h.stderr()
    );
    h.wait_log("Approved again");
    assert_sleeps(&h, "after the new folder was watched");
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.stderr());
}
