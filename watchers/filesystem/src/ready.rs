//! When is a file in `Inbox/` complete? A pure decision over what was observed, so the
//! rules can be tested without files or clocks.
//!
//! - Somebody has it open for writing (Linux lease check): not complete; wait for the
//!   close (`IN_CLOSE_WRITE`), whatever the size does meanwhile.
//! - Nobody has it open for writing (proven): complete.
//! - Cannot tell (macOS, leases unavailable): complete when a write was closed
//!   (`IN_CLOSE_WRITE`, Linux only), or when it has not changed for `settle`: its
//!   modification time is at least `settle` old, or size and times were the same at two
//!   looks `settle` apart.

use std::time::{Duration, Instant};

use ai_employee_vault::atomic::Writers;

use super::ledger::Snap;

/// What the watcher has seen of one file since it last judged it.
#[derive(Debug, Clone)]
pub struct Track {
    /// A close after writing was reported since the last decision.
    pub closed: bool,
    /// The fingerprint at the last look, and since when it has been the same.
    pub last: Option<(Snap, Instant)>,
}

impl Track {
    pub fn new() -> Track {
        Track {
            closed: false,
            last: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take it now.
    Ready,
    /// A writer has it open: look again when it is closed.
    WaitForClose,
    /// Look again at this instant (unless an event comes first).
    WaitUntil(Instant),
}

/// Judge a file with fingerprint `snap`, whose modification time is `age` in the past.
/// Consumes `track.closed`.
pub fn decide(
    track: &mut Track,
    snap: Snap,
    writers: Writers,
    age: Duration,
    now: Instant,
    settle: Duration,
) -> Decision {
    let closed = std::mem::take(&mut track.closed);
    match writers {
        Writers::Open => {
            track.last = None;
            return Decision::WaitForClose;
        }
        Writers::None => return Decision::Ready,
        Writers::Unknown => {}
    }
    if closed || age >= settle {
        return Decision::Ready;
    }
    let since = match track.last {
        Some((s, since)) if s == snap => since,
        _ => {
            track.last = Some((snap, now));
            now
        }
    };
    if now.duration_since(since) >= settle {
        return Decision::Ready;
    }
    // The earlier of: `settle` after the fingerprint was first seen, and the moment the
    // modification time becomes `settle` old.
    Decision::WaitUntil((since + settle).min(now + (settle - age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(500);

    fn snap(size: u64) -> Snap {
        Snap {
            size,
            mtime_ns: size as i64,
            ctime_ns: 0,
            dev: 1,
            ino: 1,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_proven_writer_blocks_even_when_stable() {
        let mut t = Track::new();
        t.closed = true;
        let now = Instant::now();
        assert_eq!(
            decide(&mut t, snap(1), Writers::Open, ms(10_000), now, SETTLE),
            Decision::WaitForClose
        );
        assert!(!t.closed);
        assert_eq!(
            decide(&mut t, snap(1), Writers::None, ms(0), now, SETTLE),
            Decision::Ready
        );
    }

    #[test]
    fn close_or_old_mtime_is_enough_when_writers_are_unknown() {
        let now = Instant::now();
        let mut t = Track::new();
        t.closed = true;
        assert_eq!(
            decide(&mut t, snap(1), Writers::Unknown, ms(0), now, SETTLE),
            Decision::Ready
        );
        let mut t = Track::new();
        assert_eq!(
            decide(&mut t, snap(1), Writers::Unknown, SETTLE, now, SETTLE),
            Decision::Ready
        );
    }

    #[test]
    fn settles_on_a_stable_fingerprint() {
        let t0 = Instant::now();
        let mut t = Track::new();
        // Fresh file: wait until its mtime is `settle` old.
        assert_eq!(
            decide(&mut t, snap(1), Writers::Unknown, ms(100), t0, SETTLE),
            Decision::WaitUntil(t0 + ms(400))
        );
        // It grew: the clock starts again (the mtime is fresh too).
        let t1 = t0 + ms(300);
        assert_eq!(
            decide(&mut t, snap(2), Writers::Unknown, ms(0), t1, SETTLE),
            Decision::WaitUntil(t1 + SETTLE)
        );
        // Unchanged for `settle` (an mtime in the future, say on a network share).
        let unchanged_at =
            |t: &mut Track, now| decide(t, snap(2), Writers::Unknown, ms(0), now, SETTLE);
        assert_eq!(
            unchanged_at(&mut t, t1 + ms(200)),
            Decision::WaitUntil(t1 + SETTLE)
        );
        assert_eq!(unchanged_at(&mut t, t1 + SETTLE), Decision::Ready);
    }
}
