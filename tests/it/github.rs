//! `ai-employee watch github` and the approval handler's `github_comment`, as real
//! processes against a stand-in of the GitHub REST API on loopback (`github/standin.rs`:
//! ETags and 304, `Link` pagination, rate-limit headers, the comments endpoint, the token
//! checked). Every wait is on a condition with a deadline.

pub(crate) mod standin;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_employee_vault::frontmatter;
use serde_json::json;

use self::standin::{OWNER, REPO, Scripted, StandIn, TOKEN, epoch, issue, pull_request};
use crate::approvals::{Handler, approve, field, files, new_vault, write_private};
use crate::common::{TestVault, WatcherProc, wait_until};

const LONG: Duration = Duration::from_secs(30);

fn github_toml(vault: &Path, base: &str) {
    write_private(
        &vault.join("credentials/github.toml"),
        &format!("token = \"{TOKEN}\"\nbase_url = \"{base}\"\ntimeout = \"5s\"\n"),
    );
}

/// An initialised vault whose credentials point at `gh`.
fn vault_for(gh: &StandIn) -> TestVault {
    let tv = new_vault();
    github_toml(&tv.vault, &gh.base_url());
    tv
}

fn watch(vault: &Path, extra: &[&str]) -> WatcherProc {
    let repo = format!("{OWNER}/{REPO}");
    let mut args = vec![
        "--repo",
        repo.as_str(),
        "--label",
        "ai",
        "--interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    WatcherProc::spawn("github", vault, &args)
}

/// The GitHub tasks in Needs_Action/.
fn tasks(vault: &Path) -> Vec<String> {
    files(&vault.join("Needs_Action"))
        .into_iter()
        .filter(|n| n.starts_with("GITHUB_"))
        .collect()
}

fn name(n: u64) -> String {
    format!("GITHUB_{OWNER}_{REPO}_{n}.md")
}

fn names(ns: &[u64]) -> Vec<String> {
    let mut v: Vec<String> = ns.iter().map(|n| name(*n)).collect();
    v.sort();
    v
}

fn wait_tasks(vault: &Path, want: &[u64], w: &WatcherProc) {
    let want = names(want);
    let ok = wait_until(LONG, || tasks(vault) == want);
    assert!(ok, "tasks {:?}, want {want:?}\n{}", tasks(vault), w.log());
}

/// Wait until the stand-in has seen `n` more listing requests than now.
fn wait_listings(gh: &StandIn, n: usize, w: &WatcherProc) {
    let start = gh.listings().len();
    let ok = wait_until(LONG, || gh.listings().len() >= start + n);
    assert!(ok, "no further polls:\n{}", w.log());
}

#[test]
fn open_labelled_issues_become_tasks_once_and_a_304_costs_nothing() {
    let gh = StandIn::start(vec![
        issue(
            1,
            "Login fails: \"500\"",
            "Steps:\n1. open /login\n",
            &["ai"],
        ),
        issue(2, "Checkout is down", "prod!", &["ai", "urgent"]),
        issue(3, "Not for the employee", "x", &["bug"]),
        pull_request(4, "A pull request", &["ai"]),
        {
            let mut closed = issue(5, "Closed", "x", &["ai"]);
            closed["state"] = json!("closed");
            closed
        },
    ]);
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let mut w = watch(v, &[]);
    wait_tasks(v, &[1, 2], &w);

    let one = v.join("Needs_Action").join(name(1));
    let text = fs::read_to_string(&one).expect("task");
    let doc = frontmatter::parse(&text).expect("frontmatter");
    let get = |k: &str| frontmatter::get_str(&doc.front, k).map(str::to_string);
    assert_eq!(get("type").as_deref(), Some("github_issue"));
    assert_eq!(get("status").as_deref(), Some("pending"));
    assert_eq!(get("priority").as_deref(), Some("normal"));
    assert_eq!(get("repo").as_deref(), Some("acme/widgets"));
    assert_eq!(get("title").as_deref(), Some("Login fails: \"500\""));
    assert_eq!(get("author").as_deref(), Some("octocat"));
    assert_eq!(
        get("url").as_deref(),
        Some("https://github.com/acme/widgets/issues/1")
    );
    assert_eq!(field(&one, "number").as_deref(), Some("1"));
    assert!(
        doc.body
            .contains("```markdown\nSteps:\n1. open /login\n```"),
        "{text}"
    );
    assert_eq!(
        field(&v.join("Needs_Action").join(name(2)), "priority").as_deref(),
        Some("high")
    );

    // The next polls are conditional and answered 304: no rate limit spent, no file
    // touched.
    let before: Vec<(String, SystemTime)> = tasks(v)
        .into_iter()
        .map(|n| {
            let m = fs::metadata(v.join("Needs_Action").join(&n)).expect("meta");
            (n, m.modified().expect("mtime"))
        })
        .collect();
    wait_listings(&gh, 3, &w);
    let listings = gh.listings();
    assert_eq!(listings[0].status, 200);
    assert_eq!(listings[0].if_none_match, None);
    for l in &listings[1..] {
        assert_eq!(l.status, 304, "{l:?}");
        assert!(l.if_none_match.is_some(), "{l:?}");
        assert!(
            l.query.contains("labels=ai") && l.query.contains("state=open"),
            "{l:?}"
        );
    }
    assert_eq!(
        gh.hub().remaining,
        4999,
        "only the first listing cost a request"
    );
    for (n, mtime) in &before {
        let m = fs::metadata(v.join("Needs_Action").join(n)).expect("meta");
        assert_eq!(m.modified().expect("mtime"), *mtime, "{n} was rewritten");
    }

    // A new labelled issue: one more task.
    gh.hub().issues.push(issue(6, "New one", "", &["ai"]));
    wait_tasks(v, &[1, 2, 6], &w);

    // A task that moved on, whose issue is then edited: never written again.
    fs::rename(&one, v.join("Done").join(name(1))).expect("to Done");
    gh.hub().issues[0]["title"] = json!("Login fails (edited)");
    let seen_edit = wait_until(LONG, || {
        gh.listings().iter().filter(|l| l.status == 200).count() >= 3
    });
    assert!(seen_edit, "{}", w.log());
    wait_listings(&gh, 2, &w);
    assert_eq!(tasks(v), names(&[2, 6]));
    w.stop_clean(Duration::from_secs(10));
    assert!(w.log().contains("GITHUB_acme_widgets_6.md"), "{}", w.log());
    assert!(!w.log().contains(TOKEN), "{}", w.log());

    // A restart remembers the ETags and the tasks.
    let spent = gh.hub().remaining;
    let mut w = watch(v, &[]);
    wait_listings(&gh, 3, &w);
    assert_eq!(tasks(v), names(&[2, 6]));
    assert_eq!(
        gh.hub().remaining,
        spent,
        "the restart's polls were all 304"
    );
    w.stop_clean(Duration::from_secs(10));
    assert!(w.log().contains("0 new tasks"), "{}", w.log());
}

/// Between two polls (an hour apart here) the watcher sleeps: no wake-up to look at a
/// stop flag, and SIGTERM still ends it at once.
#[test]
fn between_polls_it_sleeps_and_a_stop_wakes_it() {
    let gh = StandIn::start(vec![issue(1, "Login fails", "", &["ai"])]);
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let repo = format!("{OWNER}/{REPO}");
    let args = ["--repo", &repo, "--label", "ai", "--interval", "1h"];
    let mut w = WatcherProc::spawn("github", v, &args);
    wait_tasks(v, &[1], &w);
    // Its first poll is over once the task is written.
    let (woken, secs) = crate::common::wake_ups_over(w.pid(), Duration::from_secs(2));
    // Ten a second before (a 100 ms look at the flag).
    assert!(
        (woken as f64) <= 3.0 + secs,
        "{woken} wake-ups in {secs:.1} s:\n{}",
        w.log()
    );
    // Stopped well before the next poll, cleanly.
    w.stop_clean(Duration::from_secs(10));
    assert_eq!(gh.listings().len(), 1, "{}", w.log());
}

#[test]
fn every_page_is_read_through_link_headers() {
    let issues: Vec<_> = (1..=7)
        .map(|n| issue(n, &format!("Issue {n}"), "", &["ai"]))
        .chain([pull_request(8, "PR", &["ai"])])
        .collect();
    let gh = StandIn::start(issues);
    gh.hub().page_size = 2;
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let mut w = watch(v, &[]);
    wait_tasks(v, &[1, 2, 3, 4, 5, 6, 7], &w);
    // Pages 1 to 4, each followed from the previous one's Link; then all four again,
    // conditionally.
    let ok = wait_until(LONG, || gh.listings().len() >= 8);
    assert!(ok, "{}", w.log());
    let listings = gh.listings();
    let pages: Vec<&str> = listings[..4]
        .iter()
        .map(|l| {
            l.query
                .split('&')
                .find(|kv| kv.starts_with("page="))
                .unwrap_or("page=1")
        })
        .collect();
    assert_eq!(pages, ["page=1", "page=2", "page=3", "page=4"]);
    assert!(listings[..4].iter().all(|l| l.status == 200));
    assert!(
        listings[4..8].iter().all(|l| l.status == 304),
        "{:?}",
        &listings[4..8]
    );
    w.stop_clean(Duration::from_secs(10));
}

#[test]
fn the_rate_limit_is_waited_out() {
    let gh = StandIn::start(vec![
        issue(1, "One", "", &["ai"]),
        issue(2, "Two", "", &["ai"]),
    ]);
    {
        let mut h = gh.hub();
        h.page_size = 1;
        // One request left in this window, which resets in 3 s.
        h.remaining = 1;
        h.reset = epoch() + 3;
    }
    let reset = gh.hub().reset;
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let mut w = watch(v, &[]);
    wait_tasks(v, &[1, 2], &w);
    let listings = gh.listings();
    // Page 1 spent the last request; page 2 waited for the reset, and nothing was asked
    // in between (a request then would have been refused with 403).
    assert_eq!(listings[0].status, 200);
    assert_eq!(listings[1].status, 200, "{listings:?}");
    let at = |s: SystemTime| s.duration_since(UNIX_EPOCH).expect("epoch").as_secs();
    assert!(
        at(listings[1].at) >= reset,
        "asked at {} before the reset {reset}",
        at(listings[1].at)
    );
    assert!(gh.log().iter().all(|s| s.status != 403), "{:?}", gh.log());
    let log = w.log();
    assert_eq!(log.matches("rate limit").count(), 2, "{log}");
    assert!(log.contains("the rate limit is lifted"), "{log}");

    // A 429 with retry-after: the next request comes after it.
    wait_listings(&gh, 1, &w);
    gh.hub().script.push_back(Scripted {
        status: 429,
        headers: vec![("retry-after".into(), "2".into())],
        body: r#"{"message":"You have exceeded a secondary rate limit."}"#.into(),
    });
    let ok = wait_until(LONG, || gh.listings().iter().any(|l| l.status == 429));
    assert!(ok, "{}", w.log());
    wait_listings(&gh, 1, &w);
    let listings = gh.listings();
    let i = listings.iter().position(|l| l.status == 429).expect("429");
    let waited = listings[i + 1]
        .at
        .duration_since(listings[i].at)
        .unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}"
    );
    assert_eq!(tasks(v), names(&[1, 2]));
    w.stop_clean(Duration::from_secs(10));
}

#[test]
fn a_watcher_killed_at_any_moment_writes_each_task_once() {
    let n = 40;
    let gh = StandIn::start(
        (1..=n)
            .map(|i| issue(i, &format!("Issue number {i}"), "text", &["ai"]))
            .collect(),
    );
    gh.hub().page_size = 3;
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for round in 0..12 {
        let mut w = watch(v, &[]);
        // Kill after a random number of further requests (within a page's work, or
        // between pages).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let more = 1 + (seed % 4) as usize;
        let start = gh.log().len();
        let ok = wait_until(LONG, || {
            gh.log().len() >= start + more || tasks(v).len() == n as usize
        });
        assert!(ok, "round {round}: {}", w.log());
        std::thread::sleep(Duration::from_millis(seed % 20));
        w.kill9();
    }
    let mut w = watch(v, &[]);
    let all: Vec<u64> = (1..=n).collect();
    wait_tasks(v, &all, &w);
    wait_listings(&gh, 14, &w);
    w.stop_clean(Duration::from_secs(10));
    let got = tasks(v);
    assert_eq!(got, names(&all), "each issue once, under its own name");
    let staging = v.join(".ai-employee/staging-github");
    assert!(files(&staging).is_empty(), "{:?}", files(&staging));
}

#[test]
fn hostile_issues_stay_inside_their_task() {
    let huge = format!("{}\n```\n````\n---\n", "A".repeat(300_000));
    let titles = [
        "---\ntype: email\nstatus: done\n---",
        "../../../etc/passwd",
        "..\\..\\Done\\x.md",
        "\u{202e}gpj.exe\u{0}\u{7}",
        "[[Company_Handbook]] <script>alert(1)</script> #tag",
        "yes",
        "",
        "Ünïcødé 🚀 标题",
    ];
    let bodies = [
        "---\npriority: high\n---\n",
        &huge,
        "```\n# not a heading\n```",
        "\r\n\r\n\u{1b}[2J\u{0}",
        "",
        "- [ ] task\n> quote",
        "```````",
        "ok",
    ];
    let issues: Vec<_> = titles
        .iter()
        .zip(bodies.iter())
        .enumerate()
        .map(|(i, (t, b))| issue(i as u64 + 1, t, b, &["ai"]))
        .collect();
    let gh = StandIn::start(issues);
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let root_before = files(v);
    let mut w = watch(v, &[]);
    let all: Vec<u64> = (1..=titles.len() as u64).collect();
    wait_tasks(v, &all, &w);
    w.stop_clean(Duration::from_secs(10));
    for (i, title) in titles.iter().enumerate() {
        let path = v.join("Needs_Action").join(name(i as u64 + 1));
        let text = fs::read_to_string(&path).expect("task");
        assert!(text.len() < 70 * 1024, "{} bytes", text.len());
        let doc = frontmatter::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |k: &str| frontmatter::get_str(&doc.front, k).map(str::to_string);
        assert_eq!(get("type").as_deref(), Some("github_issue"), "{text}");
        assert_eq!(get("status").as_deref(), Some("pending"));
        assert_eq!(get("priority").as_deref(), Some("normal"));
        assert_eq!(get("title").as_deref(), Some(*title));
        // The text is inside one fence that nothing in it closes.
        let body = &doc.body;
        let heading = body.lines().next().unwrap_or_default();
        assert!(
            heading.starts_with("# GitHub issue acme/widgets#"),
            "{heading:?}"
        );
        assert!(
            !body.contains('\u{0}') && !body.contains('\u{1b}'),
            "{body:?}"
        );
        let headings: Vec<&str> = body.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(headings, ["## Issue text", "## Replying"], "{body}");
    }
    let big = fs::read_to_string(v.join("Needs_Action").join(name(2))).expect("task");
    assert!(
        big.contains("The text was shortened (65536 of its 300014 bytes"),
        "{}",
        &big[big.len() - 600..]
    );
    // Nothing was written anywhere else.
    assert_eq!(files(v), root_before);
    assert!(files(&v.join("Done")).is_empty());
}

#[test]
fn missing_or_refused_credentials_need_setup() {
    let gh = StandIn::start(vec![issue(1, "One", "", &["ai"])]);
    let tv = new_vault();
    let v = &tv.vault;
    let mut w = watch(v, &[]);
    let st = w.wait_exit(LONG).expect("exits");
    assert_eq!(st.code(), Some(78), "{}", w.log());
    assert!(
        w.log().contains("no credentials: create ") && w.log().contains("credentials/github.toml"),
        "{}",
        w.log()
    );
    assert!(gh.log().is_empty());

    // A token GitHub refuses: needs setup too, and the token is never printed.
    write_private(
        &v.join("credentials/github.toml"),
        &format!(
            "token = \"wrong-{TOKEN}\"\nbase_url = \"{}\"\n",
            gh.base_url()
        ),
    );
    let mut w = watch(v, &[]);
    let st = w.wait_exit(LONG).expect("exits");
    assert_eq!(st.code(), Some(78), "{}", w.log());
    assert!(
        w.log()
            .contains("GitHub refused the token (HTTP 401: Bad credentials)"),
        "{}",
        w.log()
    );
    assert!(!w.log().contains(TOKEN), "{}", w.log());

    // A typo in the file: the line and column.
    write_private(&v.join("credentials/github.toml"), "tokn = \"x\"\n");
    let mut w = watch(v, &[]);
    assert_eq!(w.wait_exit(LONG).and_then(|s| s.code()), Some(78));
    assert!(
        w.log()
            .contains("credentials/github.toml:1:1: unknown key `tokn`"),
        "{}",
        w.log()
    );

    // The default table's placeholder repository.
    github_toml(v, &gh.base_url());
    let mut w = WatcherProc::spawn("github", v, &["--repo", "OWNER/NAME", "--label", "ai"]);
    assert_eq!(w.wait_exit(LONG).and_then(|s| s.code()), Some(78));
    assert!(
        w.log().contains("--repo is still OWNER/NAME"),
        "{}",
        w.log()
    );
    assert!(tasks(v).is_empty());
}

const FAST: &[&str] = &["--retry-initial", "100ms", "--retry-max", "300ms"];

fn comment_request(issue: u64, text: &str) -> String {
    format!(
        "---\ntype: approval_request\naction: github_comment\nrepo: acme/widgets\nissue: {issue}\ncreated: 2026-04-01T10:00:00Z\nstatus: pending\n---\n{text}\n"
    )
}

/// Comments on issue `n` whose text starts with `text`.
fn comments_with(gh: &StandIn, n: u64, text: &str) -> usize {
    gh.hub()
        .comments
        .get(&n)
        .map(|cs| {
            cs.iter()
                .filter(|c| c["body"].as_str().is_some_and(|b| b.starts_with(text)))
                .count()
        })
        .unwrap_or(0)
}

fn wait_done(vault: &Path, name: &str, h: &Handler) {
    let ok = wait_until(LONG, || vault.join("Done").join(name).exists());
    assert!(
        ok,
        "{name} not in Done/ (Failed/: {:?})\n{}",
        files(&vault.join("Failed")),
        h.stderr()
    );
}

#[test]
fn an_approved_github_comment_is_posted_once_and_a_rejected_one_never() {
    let gh = StandIn::start(vec![
        issue(1, "One", "", &["ai"]),
        issue(2, "Two", "", &["ai"]),
    ]);
    let tv = vault_for(&gh);
    let v = &tv.vault;
    let mut h = Handler::start(v, FAST);
    h.wait_log("watching ");
    assert!(h.log().contains("github_comment"), "{}", h.log());

    approve(v, "reply.md", &comment_request(1, "Fixed in v2, thanks!"));
    wait_done(v, "reply.md", &h);
    let posts = gh.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/repos/acme/widgets/issues/1/comments");
    let sent: serde_json::Value = serde_json::from_str(&posts[0].body).expect("json");
    let body = sent["body"].as_str().expect("body");
    assert!(
        body.starts_with("Fixed in v2, thanks!\n\n<!-- ai-employee approval "),
        "{body}"
    );
    assert!(body.ends_with(" -->"), "{body}");
    let done = v.join("Done/reply.md");
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert!(
        field(&done, "github_comment_url").is_some_and(
            |u| u.starts_with("https://github.com/acme/widgets/issues/1#issuecomment-")
        ),
        "{}",
        fs::read_to_string(&done).unwrap_or_default()
    );

    // Rejected: moved to Rejected/, never executed. A later approval goes through, and
    // only it is posted.
    let pending = v.join("Pending_Approval/no.md");
    fs::write(&pending, comment_request(2, "REJECTED text")).expect("draft");
    fs::rename(&pending, v.join("Rejected/no.md")).expect("reject");
    approve(v, "later.md", &comment_request(2, "Looking into it."));
    wait_done(v, "later.md", &h);
    assert_eq!(gh.posts().len(), 2);
    assert_eq!(comments_with(&gh, 2, "REJECTED"), 0);
    assert_eq!(comments_with(&gh, 2, "Looking into it."), 1);

    // The same comment approved again is a duplicate: refused, not posted.
    approve(v, "again.md", &comment_request(1, "Fixed in v2, thanks!"));
    let ok = wait_until(LONG, || v.join("Failed/again.md").exists());
    assert!(ok, "{}", h.stderr());
    assert_eq!(gh.posts().len(), 2);

    // A reply lost on the way back: the retry finds the comment by its marker.
    gh.hub().drop_post_replies = 1;
    approve(
        v,
        "lost.md",
        &comment_request(1, "Reply LOST on the way back"),
    );
    wait_done(v, "lost.md", &h);
    assert_eq!(comments_with(&gh, 1, "Reply LOST"), 1);
    assert_eq!(
        gh.posts().len(),
        3,
        "one POST, then a listing that found it"
    );
    assert!(
        h.stderr().contains("already there (found by its marker)")
            || fs::read_to_string(v.join("Done/lost.md"))
                .unwrap_or_default()
                .contains("github_comment_url"),
        "{}",
        h.stderr()
    );
    h.stop();
    assert!(!h.stderr().contains(TOKEN), "{}", h.stderr());
    for line in crate::approvals::audit_lines(v) {
        assert!(!line.to_string().contains(TOKEN), "{line}");
    }
}

#[test]
fn a_handler_killed_during_the_post_comments_once_after_its_restart() {
    let gh = StandIn::start(vec![issue(3, "Three", "", &["ai"])]);
    let tv = vault_for(&gh);
    let v = &tv.vault;
    gh.hub().hold_posts = true;
    let mut h = Handler::start(v, FAST);
    h.wait_log("watching ");
    approve(
        v,
        "crash.md",
        &comment_request(3, "Posted while the handler DIED"),
    );
    let ok = wait_until(LONG, || gh.posts().len() == 1);
    assert!(ok, "{}", h.stderr());
    // GitHub has the comment; the handler never hears back.
    h.kill9();
    gh.hub().hold_posts = false;
    let h = Handler::start(v, FAST);
    wait_done(v, "crash.md", &h);
    assert_eq!(comments_with(&gh, 3, "Posted while the handler DIED"), 1);
    assert_eq!(gh.posts().len(), 1, "not posted again");
    let done = v.join("Done/crash.md");
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert!(field(&done, "github_comment_id").is_some());
    // The restart ran the interrupted attempt again, which found the comment.
    let ok = wait_until(LONG, || {
        h.stderr().contains("already there (found by its marker)")
    });
    assert!(ok, "{}", h.stderr());
}
