//! Task metrics: a fold over `Logs/tasks.jsonl` (see [`super::events`]) in a time window,
//! for `tasks metrics` and `tasks health`, and the same fold over the whole log into
//! [`Totals`] for the loop's start-up. docs/agent.md ("Metrics and health") says what each number means.
//!
//! The log is append-only with non-decreasing `ts`, so a window's first line is found by
//! a binary search over byte offsets ([`find_start`]) and only the window is parsed, each
//! line into a borrowed minimal record. Lines that cannot be read are skipped and counted;
//! a torn last line is not a record (the journal's rule).

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ai_employee_vault::journal::Reader;
use ai_employee_vault::layout::Vault;
use ai_employee_vault::nofollow::{self, How};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};

use super::events::{self, EventKind, RunResult, TaskEvent};
use super::snapshot::{DURATION_BUCKETS, Totals};

/// Per-hour buckets kept at most (the newest): 31 days.
pub const MAX_HOURS: usize = 31 * 24;

/// What the fold needs of one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    pub ts: DateTime<Utc>,
    pub kind: EventKind,
    pub result: Option<RunResult>,
    pub duration_ms: Option<u64>,
    pub cost_usd: Option<f64>,
    pub turns: Option<u32>,
}

impl From<&TaskEvent> for Record {
    fn from(e: &TaskEvent) -> Record {
        Record {
            ts: e.ts,
            kind: e.event,
            result: e.result,
            duration_ms: e.duration_ms,
            cost_usd: e.cost_usd,
            turns: e.turns,
        }
    }
}

/// The numbers of one window of the log. docs/agent.md ("Metrics and health") defines each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Final outcomes: `done`, `failed`, `rejected`, `needs_review`, `invalid` events.
    pub tasks_done: u64,
    pub failed: u64,
    pub rejected: u64,
    pub needs_review: u64,
    pub invalid: u64,
    /// `run` events, and those whose result is an error ([`RunResult::is_error`]).
    pub runs: u64,
    pub run_errors: u64,
    /// `run_errors / runs`; `None` without runs.
    pub error_rate: Option<f64>,
    /// `retry` events: failed attempts with another one to come.
    pub retries: u64,
    /// `tasks_done` per hour of the window.
    pub throughput_per_hour: f64,
    /// Nearest-rank percentiles of the `run` events' `duration_ms`.
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    /// Sums over the `run` events (final events repeat the task's total; not added again).
    pub cost_usd: f64,
    pub turns: u64,
    /// `cost_usd / tasks_done`; `None` without done tasks.
    pub cost_per_done_usd: Option<f64>,
    /// The last final outcome in the window.
    pub last_completion: Option<DateTime<Utc>>,
    /// Clock hours (UTC) from the one `since` falls in to the one `until` falls in (at
    /// most the newest [`MAX_HOURS`]), oldest first.
    pub hours: Vec<HourCount>,
    /// Lines of the part of the log read that could not be read as an event.
    pub skipped_lines: u64,
}

/// The final outcomes of one clock hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourCount {
    pub start: DateTime<Utc>,
    pub done: u64,
    pub failed: u64,
}

/// Count one event into `totals`: the rule both the start-up fold and the loop's live
/// counters follow.
pub fn count(totals: &mut Totals, r: &Record) {
    match r.kind {
        EventKind::Done => totals.done += 1,
        EventKind::Failed => totals.failed += 1,
        EventKind::Rejected => totals.rejected += 1,
        EventKind::NeedsReview => totals.needs_review += 1,
        EventKind::Invalid => totals.invalid += 1,
        EventKind::Retry => totals.retries += 1,
        EventKind::Run => {
            totals.runs += 1;
            if r.result.is_some_and(RunResult::is_error) {
                totals.run_errors += 1;
            }
            totals.cost_usd += r.cost_usd.unwrap_or(0.0);
            totals.turns += u64::from(r.turns.unwrap_or(0));
            if let Some(ms) = r.duration_ms {
                let secs = ms as f64 / 1000.0;
                let bucket = DURATION_BUCKETS
                    .iter()
                    .position(|&upper| secs <= upper)
                    .unwrap_or(DURATION_BUCKETS.len());
                if totals.duration_counts.len() <= DURATION_BUCKETS.len() {
                    totals.duration_counts.resize(DURATION_BUCKETS.len() + 1, 0);
                }
                totals.duration_counts[bucket] += 1;
                totals.duration_sum_s += secs;
            }
        }
        _ => {}
    }
}

/// Whether the event is a task's final outcome.
fn is_final(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Done
            | EventKind::Failed
            | EventKind::Rejected
            | EventKind::NeedsReview
            | EventKind::Invalid
    )
}

/// The whole log folded into the loop's counters: since the log began, and since
/// `today_start` (the local midnight, [`start_of_local_day`]).
pub fn totals(
    records: impl IntoIterator<Item = Record>,
    today_start: DateTime<Utc>,
) -> (Totals, Totals) {
    let mut all = empty_totals();
    let mut today = empty_totals();
    for r in records {
        count(&mut all, &r);
        if r.ts >= today_start {
            count(&mut today, &r);
        }
    }
    (all, today)
}

fn empty_totals() -> Totals {
    Totals {
        duration_counts: vec![0; DURATION_BUCKETS.len() + 1],
        ..Totals::default()
    }
}

/// The start of the local day `now` is in (as UTC).
pub fn start_of_local_day(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&chrono::Local);
    let midnight = local.date_naive().and_hms_opt(0, 0, 0);
    midnight
        .and_then(|m| m.and_local_timezone(chrono::Local).earliest())
        .map(|m| m.with_timezone(&Utc))
        // A day without a midnight (a DST jump at 00:00): the local clock's hours so far.
        .unwrap_or_else(|| now - TimeDelta::seconds(i64::from(local.num_seconds_from_midnight())))
}

/// The window fold: feed it the records in log order, then [`Fold::finish`].
#[derive(Debug, Clone)]
pub struct Fold {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    totals: Totals,
    durations: Vec<u64>,
    first_hour: DateTime<Utc>,
    hours: Vec<HourCount>,
    last_completion: Option<DateTime<Utc>>,
    skipped: u64,
}

impl Fold {
    /// A fold over `since ..= until`.
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Fold {
        let last_hour = floor_hour(until);
        let newest_first = last_hour - TimeDelta::hours(MAX_HOURS as i64 - 1);
        let first_hour = floor_hour(since).max(newest_first);
        let n = ((last_hour - first_hour).num_hours() + 1).max(0) as usize;
        let hours = (0..n)
            .map(|i| HourCount {
                start: first_hour + TimeDelta::hours(i as i64),
                done: 0,
                failed: 0,
            })
            .collect();
        Fold {
            since,
            until,
            totals: Totals::default(),
            durations: Vec::new(),
            first_hour,
            hours,
            last_completion: None,
            skipped: 0,
        }
    }

    /// Count `r` if it is in the window. Returns false once `r` is past the window's end:
    /// in an ordered log, no later record is in it either.
    pub fn add(&mut self, r: &Record) -> bool {
        if r.ts > self.until {
            return false;
        }
        if r.ts < self.since {
            return true;
        }
        count(&mut self.totals, r);
        if r.kind == EventKind::Run
            && let Some(ms) = r.duration_ms
        {
            self.durations.push(ms);
        }
        if is_final(r.kind) {
            self.last_completion = Some(r.ts);
            let done = r.kind == EventKind::Done;
            if (done || r.kind == EventKind::Failed)
                && let Ok(i) = usize::try_from((floor_hour(r.ts) - self.first_hour).num_hours())
                && let Some(h) = self.hours.get_mut(i)
            {
                if done {
                    h.done += 1;
                } else {
                    h.failed += 1;
                }
            }
        }
        true
    }

    /// A line that could not be read as an event.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    pub fn finish(mut self) -> Metrics {
        let t = &self.totals;
        let hours = (self.until - self.since).num_milliseconds().max(0) as f64 / 3_600_000.0;
        let ratio = |a: f64, b: u64| (b > 0).then(|| a / b as f64);
        let p95 = percentile(&mut self.durations, 95);
        let p50 = percentile(&mut self.durations, 50);
        Metrics {
            since: self.since,
            until: self.until,
            tasks_done: t.done,
            failed: t.failed,
            rejected: t.rejected,
            needs_review: t.needs_review,
            invalid: t.invalid,
            runs: t.runs,
            run_errors: t.run_errors,
            error_rate: ratio(t.run_errors as f64, t.runs),
            retries: t.retries,
            throughput_per_hour: if hours > 0.0 {
                t.done as f64 / hours
            } else {
                0.0
            },
            duration_p50_ms: p50,
            duration_p95_ms: p95,
            cost_usd: t.cost_usd,
            turns: t.turns,
            cost_per_done_usd: ratio(t.cost_usd, t.done),
            last_completion: self.last_completion,
            hours: self.hours,
            skipped_lines: self.skipped,
        }
    }
}

/// The `p`-th percentile (nearest rank: the value at rank ⌈p·n/100⌉), exact.
fn percentile(values: &mut [u64], p: u64) -> Option<u64> {
    let n = values.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).clamp(1, n);
    let (_, v, _) = values.select_nth_unstable((rank - 1) as usize);
    Some(*v)
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t - TimeDelta::seconds(i64::from(t.minute() * 60 + t.second()))
        - TimeDelta::nanoseconds(i64::from(t.nanosecond()))
}

/// Fold `records` (in log order) over `since ..= until`.
pub fn fold(
    records: impl IntoIterator<Item = Record>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Metrics {
    let mut f = Fold::new(since, until);
    for r in records {
        if !f.add(&r) {
            break;
        }
    }
    f.finish()
}

// ---- Reading the log --------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// Where the log is.
pub fn log_path(vault: &Path) -> PathBuf {
    Vault::new(vault.to_path_buf())
        .logs_dir()
        .join(events::FILE_NAME)
}

/// The metrics of `since ..= until` from the vault's log (none yet: all zero).
pub fn read(
    vault: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Metrics, MetricsError> {
    let mut f = Fold::new(since, until);
    scan(vault, Some(since), &mut |line| match line {
        Some(r) => f.add(&r),
        None => {
            f.skip();
            true
        }
    })?;
    Ok(f.finish())
}

/// The whole log folded into [`totals`], and the count of lines that could not be read.
pub fn read_totals(
    vault: &Path,
    today_start: DateTime<Utc>,
) -> Result<(Totals, Totals, u64), MetricsError> {
    let (mut all, mut today, mut skipped) = (empty_totals(), empty_totals(), 0);
    scan(vault, None, &mut |line| {
        match line {
            Some(r) => {
                count(&mut all, &r);
                if r.ts >= today_start {
                    count(&mut today, &r);
                }
            }
            None => skipped += 1,
        }
        true
    })?;
    Ok((all, today, skipped))
}

/// Feed the log's events from the first at or after `from` (all: `None`) to `each`
/// (`None`: a line that is not an event) until it returns false. Events of kinds this
/// version does not know are left out. A missing log has no events.
fn scan(
    vault: &Path,
    from: Option<DateTime<Utc>>,
    each: &mut dyn FnMut(Option<Record>) -> bool,
) -> Result<(), MetricsError> {
    let path = log_path(vault);
    let err = |source| MetricsError::Read {
        path: path.clone(),
        source,
    };
    let file = match nofollow::open_in_folder(&path, How::READ) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    let start = match from {
        Some(since) => {
            let len = file.metadata().map_err(err)?.len();
            find_start(&file, len, since).map_err(err)?
        }
        None => 0,
    };
    let mut reader = Reader::starting_at(file, start);
    while let Some(line) = reader.next_line().map_err(err)? {
        let go_on = match parse_line(line.bytes) {
            Ok(Some(r)) => each(Some(r)),
            Ok(None) => true,
            Err(()) => each(None),
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

/// The fields of a line the metrics read; the rest (task, error …) is skipped unparsed.
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    result: Option<Cow<'a, str>>,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default)]
    cost_usd: Option<f64>,
    #[serde(default)]
    turns: Option<u32>,
}

/// Only the time of a line, for the binary search.
#[derive(Deserialize)]
struct RawTs<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
}

/// One line → its record; `Ok(None)` for an event kind this version does not know.
fn parse_line(bytes: &[u8]) -> Result<Option<Record>, ()> {
    let raw: RawLine = serde_json::from_slice(bytes).map_err(|_| ())?;
    let ts = parse_ts(&raw.ts).ok_or(())?;
    let Some(kind) = from_name::<EventKind>(&raw.event) else {
        return Ok(None);
    };
    Ok(Some(Record {
        ts,
        kind,
        // A result this version does not know counts as a run, not as an error.
        result: raw.result.as_deref().and_then(from_name::<RunResult>),
        duration_ms: raw.duration_ms,
        cost_usd: raw.cost_usd,
        turns: raw.turns,
    }))
}

/// A unit enum variant from its serde name.
fn from_name<'a, T: Deserialize<'a>>(name: &'a str) -> Option<T> {
    let d: serde::de::value::StrDeserializer<'a, serde::de::value::Error> =
        name.into_deserializer();
    T::deserialize(d).ok()
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn line_ts(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let raw: RawTs = serde_json::from_slice(bytes).ok()?;
    parse_ts(&raw.ts)
}

/// How much of a run of unreadable lines one probe of [`find_start`] reads before it
/// gives up searching and the reading starts from what is known.
const PROBE_LIMIT: u64 = 1 << 20;

/// The offset of the first line whose event is at or after `since` (the end when none
/// is), in a file of `len` bytes whose lines are in time order: a binary search over byte
/// offsets. An unreadable line takes the time of the next readable one; the torn last
/// line is not a line.
pub fn find_start(file: &File, len: u64, since: DateTime<Utc>) -> io::Result<u64> {
    let mut probe = Probe {
        file,
        len,
        buf: Vec::with_capacity(8192),
    };
    // Every offset below `lo` is known to come before the window's first line.
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let mut at = probe.line_start_from(mid)?;
        let mut scanned = 0;
        let found = loop {
            match probe.line(at)? {
                None => break None,
                Some(end) => {
                    if let Some(ts) = line_ts(&probe.buf) {
                        break Some((at, ts));
                    }
                    scanned += end - at;
                    if scanned > PROBE_LIMIT {
                        return probe.line_start_from(lo);
                    }
                    at = end;
                }
            }
        };
        match found {
            Some((at, ts)) if ts < since => lo = at + 1,
            _ => hi = mid,
        }
    }
    probe.line_start_from(lo)
}

/// Reads single lines at offsets of a journal file.
struct Probe<'f> {
    file: &'f File,
    len: u64,
    /// The last line read, without its newline.
    buf: Vec<u8>,
}

impl Probe<'_> {
    /// The first offset at or after `pos` where a line starts (`len` when none does).
    fn line_start_from(&mut self, pos: u64) -> io::Result<u64> {
        if pos == 0 {
            return Ok(0);
        }
        let mut at = pos - 1;
        let mut chunk = [0u8; 4096];
        while at < self.len {
            let n = self.file.read_at(&mut chunk, at)?;
            if n == 0 {
                break;
            }
            if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
                return Ok(at + i as u64 + 1);
            }
            at += n as u64;
        }
        Ok(self.len)
    }

    /// Read the line starting at `start` into `buf`; returns where the next one starts,
    /// or `None` at the end or at a torn last line.
    fn line(&mut self, start: u64) -> io::Result<Option<u64>> {
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let mut at = start;
        while at < self.len {
            let n = self.file.read_at(&mut chunk, at)?;
            if n == 0 {
                break;
            }
            if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&chunk[..i]);
                return Ok(Some(at + i as u64 + 1));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn rec(ts: &str, kind: EventKind) -> Record {
        Record {
            ts: t(ts),
            kind,
            result: None,
            duration_ms: None,
            cost_usd: None,
            turns: None,
        }
    }

    fn run(ts: &str, result: RunResult, ms: u64, cost: f64, turns: u32) -> Record {
        Record {
            result: Some(result),
            duration_ms: Some(ms),
            cost_usd: Some(cost),
            turns: Some(turns),
            ..rec(ts, EventKind::Run)
        }
    }

    /// A vault whose log is `text`.
    fn vault_with_log(text: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Logs")).unwrap();
        std::fs::write(log_path(dir.path()), text).unwrap();
        dir
    }

    fn line(e: &TaskEvent) -> String {
        format!("{}\n", serde_json::to_string(e).unwrap())
    }

    #[test]
    fn percentiles_are_exact_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50), Some(50));
        assert_eq!(percentile(&mut v, 95), Some(95));
        let mut one = vec![7];
        assert_eq!(percentile(&mut one, 50), Some(7));
        assert_eq!(percentile(&mut one, 95), Some(7));
        let mut none: Vec<u64> = vec![];
        assert_eq!(percentile(&mut none, 95), None);
        // 20 values: p95 is the 19th, p50 the 10th.
        let mut v: Vec<u64> = (1..=20).map(|i| i * 10).collect();
        assert_eq!(percentile(&mut v, 95), Some(190));
        assert_eq!(percentile(&mut v, 50), Some(100));
    }

    #[test]
    fn the_fold_counts_outcomes_runs_costs_and_hours_in_the_window() {
        let since = t("2026-12-06T10:30:00Z");
        let until = t("2026-12-06T12:30:00Z");
        let records = [
            // Before the window.
            rec("2026-12-06T10:29:59.999Z", EventKind::Done),
            run("2026-12-06T10:00:00Z", RunResult::Failed, 9_999, 9.0, 99),
            // In it: the edges are included.
            rec("2026-12-06T10:30:00Z", EventKind::Done),
            run("2026-12-06T10:40:00Z", RunResult::Done, 1_000, 0.5, 4),
            run("2026-12-06T11:00:00Z", RunResult::Crashed, 3_000, 0.25, 2),
            rec("2026-12-06T11:00:01Z", EventKind::Retry),
            run(
                "2026-12-06T11:10:00Z",
                RunResult::WaitingApproval,
                2_000,
                0.25,
                2,
            ),
            rec("2026-12-06T11:20:00Z", EventKind::Failed),
            rec("2026-12-06T11:21:00Z", EventKind::Rejected),
            rec("2026-12-06T11:22:00Z", EventKind::NeedsReview),
            rec("2026-12-06T11:23:00Z", EventKind::Invalid),
            rec("2026-12-06T11:24:00Z", EventKind::Queued),
            rec("2026-12-06T12:30:00Z", EventKind::Done),
            // After it.
            rec("2026-12-06T12:30:00.001Z", EventKind::Done),
        ];
        let m = fold(records, since, until);
        assert_eq!(
            (
                m.tasks_done,
                m.failed,
                m.rejected,
                m.needs_review,
                m.invalid
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!((m.runs, m.run_errors, m.retries), (3, 1, 1));
        assert_eq!(m.error_rate, Some(1.0 / 3.0));
        assert_eq!(m.throughput_per_hour, 1.0);
        assert_eq!(
            (m.duration_p50_ms, m.duration_p95_ms),
            (Some(2_000), Some(3_000))
        );
        assert_eq!((m.cost_usd, m.turns), (1.0, 8));
        assert_eq!(m.cost_per_done_usd, Some(0.5));
        assert_eq!(m.last_completion, Some(t("2026-12-06T12:30:00Z")));
        let hours: Vec<(String, u64, u64)> = m
            .hours
            .iter()
            .map(|h| (h.start.format("%H:%M").to_string(), h.done, h.failed))
            .collect();
        assert_eq!(
            hours,
            [
                ("10:00".into(), 1, 0),
                ("11:00".into(), 0, 1),
                ("12:00".into(), 1, 0)
            ]
        );
    }

    #[test]
    fn an_empty_window_has_no_rates() {
        let m = fold([], t("2026-12-06T10:00:00Z"), t("2026-12-06T10:00:00Z"));
        assert_eq!((m.runs, m.error_rate, m.cost_per_done_usd), (0, None, None));
        assert_eq!((m.duration_p50_ms, m.throughput_per_hour), (None, 0.0));
        assert_eq!(m.hours.len(), 1);
    }

    #[test]
    fn a_long_window_keeps_the_newest_hours_only() {
        let until = t("2026-12-06T10:15:00Z");
        let m = fold(
            [rec("2026-12-06T10:00:00Z", EventKind::Done)],
            until - TimeDelta::days(365),
            until,
        );
        assert_eq!(m.hours.len(), MAX_HOURS);
        assert_eq!(
            m.hours.last().map(|h| (h.start, h.done)),
            Some((t("2026-12-06T10:00:00Z"), 1))
        );
    }

    #[test]
    fn totals_fill_the_duration_histogram_and_today() {
        let records = [
            run("2026-12-05T23:00:00Z", RunResult::Done, 500, 0.1, 1),
            run(
                "2026-12-06T01:00:00Z",
                RunResult::Timeout,
                3_600_001,
                0.2,
                2,
            ),
            run("2026-12-06T02:00:00Z", RunResult::Done, 5_000, 0.3, 3),
            rec("2026-12-06T02:00:01Z", EventKind::Done),
        ];
        let (all, today) = totals(records, t("2026-12-06T00:00:00Z"));
        assert_eq!(
            (all.runs, all.run_errors, all.done, all.turns),
            (3, 1, 1, 6)
        );
        assert_eq!(all.duration_counts.len(), DURATION_BUCKETS.len() + 1);
        // 0.5 s → ≤1, 5 s → ≤5 (upper bounds included), 3600.001 s → +Inf.
        assert_eq!(all.duration_counts[0], 1);
        assert_eq!(all.duration_counts[1], 1);
        assert_eq!(all.duration_counts[DURATION_BUCKETS.len()], 1);
        assert!((all.duration_sum_s - 3605.501).abs() < 1e-9);
        assert_eq!((today.runs, today.done), (2, 1));
        assert!((today.cost_usd - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_log_is_read_with_garbage_lines_skipped_and_a_torn_tail_ignored() {
        let mut done = TaskEvent::new(t("2026-12-06T10:00:00Z"), EventKind::Done, "a");
        done.cost_usd = Some(1.0);
        let mut r = TaskEvent::new(t("2026-12-06T10:00:00Z"), EventKind::Run, "a");
        r.result = Some(RunResult::Done);
        r.duration_ms = Some(42);
        let mut text = line(&r) + &line(&done);
        text.push_str("not json\n\n{\"ts\":\"yesterday\",\"event\":\"done\"}\n");
        // A kind or result from a newer version: no warning, the run still counts.
        text.push_str("{\"ts\":\"2026-12-06T10:00:01Z\",\"event\":\"teleported\"}\n");
        text.push_str(
            "{\"ts\":\"2026-12-06T10:00:02Z\",\"event\":\"run\",\"result\":\"quantum\"}\n",
        );
        text.push_str(&line(&done));
        // The torn tail parses, but is not a record.
        text.push_str(line(&done).trim_end());
        let v = vault_with_log(text.as_bytes());
        let m = read(
            v.path(),
            t("2026-12-06T00:00:00Z"),
            t("2026-12-07T00:00:00Z"),
        )
        .unwrap();
        assert_eq!((m.tasks_done, m.runs, m.run_errors), (2, 2, 0));
        assert_eq!(m.duration_p50_ms, Some(42));
        assert_eq!(m.skipped_lines, 2);
        let (all, _, skipped) = read_totals(v.path(), t("2026-12-06T00:00:00Z")).unwrap();
        assert_eq!((all.done, all.runs, skipped), (2, 2, 2));
    }

    #[test]
    fn a_missing_log_has_no_events_and_a_symlinked_one_is_refused() {
        let v = tempfile::tempdir().unwrap();
        let (since, until) = (t("2026-12-06T00:00:00Z"), t("2026-12-07T00:00:00Z"));
        let m = read(v.path(), since, until).unwrap();
        assert_eq!((m.tasks_done, m.runs, m.skipped_lines), (0, 0, 0));
        std::fs::create_dir(v.path().join("Logs")).unwrap();
        let elsewhere = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), log_path(v.path())).unwrap();
        let e = read(v.path(), since, until).unwrap_err();
        assert!(e.to_string().contains("tasks.jsonl"), "{e}");
    }

    /// A log of `n` events a minute apart from `start`, with a garbage line every 97th.
    fn long_log(start: DateTime<Utc>, n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            if i % 97 == 50 {
                out.extend_from_slice(b"{\"ts\":\"garbage\n");
            }
            let e = TaskEvent::new(
                start + TimeDelta::minutes(i),
                EventKind::Done,
                format!("task-{i}"),
            );
            out.extend_from_slice(line(&e).as_bytes());
        }
        out
    }

    /// The ts of the line that starts at `at`.
    fn ts_at(log: &[u8], at: u64) -> Option<DateTime<Utc>> {
        let rest = &log[at as usize..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        line_ts(&rest[..end])
    }

    #[test]
    fn the_binary_search_finds_the_first_line_of_the_window() {
        let start = t("2026-12-01T00:00:00Z");
        let log = long_log(start, 5000);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&log).unwrap();
        let file = f.as_file();
        let len = log.len() as u64;
        // Mid-file, on a line's time and between two lines' times.
        for minute in [1, 49, 50, 51, 1234, 2500, 4999] {
            for offset_s in [0, -30] {
                let since = start + TimeDelta::minutes(minute) + TimeDelta::seconds(offset_s);
                let at = find_start(file, len, since).unwrap();
                assert!(at == 0 || log[at as usize - 1] == b'\n', "a line start");
                let expected = start + TimeDelta::minutes(minute);
                // Garbage lines before the first line in the window may be included.
                let first = (at..len).find_map(|p| {
                    (p == 0 || log[p as usize - 1] == b'\n')
                        .then(|| ts_at(&log, p))
                        .flatten()
                });
                assert_eq!(first, Some(expected), "since {since}");
                let before = log[..at as usize]
                    .split(|&b| b == b'\n')
                    .rev()
                    .find_map(line_ts);
                assert_eq!(before, Some(expected - TimeDelta::minutes(1)));
            }
        }
        // All in the window, and none.
        assert_eq!(
            find_start(file, len, start - TimeDelta::days(1)).unwrap(),
            0
        );
        assert_eq!(find_start(file, len, start).unwrap(), 0);
        assert_eq!(
            find_start(file, len, start + TimeDelta::days(30)).unwrap(),
            len
        );
        assert_eq!(find_start(file, 0, start).unwrap(), 0);
    }

    #[test]
    fn the_binary_search_ignores_a_torn_tail_and_survives_a_log_of_garbage() {
        let start = t("2026-12-01T00:00:00Z");
        let mut log = long_log(start, 100);
        let whole = log.len() as u64;
        log.extend_from_slice(b"{\"ts\":\"2026-12-31T00:00:00Z\",\"event\":\"done\"}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&log).unwrap();
        let at = find_start(f.as_file(), log.len() as u64, start + TimeDelta::days(10)).unwrap();
        assert_eq!(at, whole);
        // Nothing readable: the search gives up and the reading starts at the beginning.
        let garbage = "x".repeat(200) + "\n";
        let junk = garbage.repeat(20_000);
        let mut g = tempfile::NamedTempFile::new().unwrap();
        g.write_all(junk.as_bytes()).unwrap();
        let at = find_start(g.as_file(), junk.len() as u64, start).unwrap();
        assert!(at < junk.len() as u64 / 2, "{at}");
    }

    #[test]
    fn reading_from_mid_file_equals_folding_everything() {
        let start = t("2026-12-01T00:00:00Z");
        let v = vault_with_log(&long_log(start, 3000));
        let until = start + TimeDelta::days(10);
        for since_min in [0, 1, 1500, 2999, 3000] {
            let since = start + TimeDelta::minutes(since_min);
            let m = read(v.path(), since, until).unwrap();
            assert_eq!(
                m.tasks_done,
                3000 - since_min as u64,
                "since minute {since_min}"
            );
        }
    }
}
