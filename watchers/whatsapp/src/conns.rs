//! The webhook's connections: accepted here, served by hyper's HTTP/1 with a header read
//! timeout, at most a fixed number at a time.
//!
//! - **Header timeout**: a connection must deliver a complete request head within
//!   `header_timeout` of the moment the server starts waiting for it (when it connects,
//!   or after the previous answer on a kept-alive connection). Sending a byte now and
//!   then does not extend it. Otherwise hyper closes the connection.
//! - **Body timeout**: the handler reads the body within `body_timeout` or answers 408
//!   and closes (see `server.rs`).
//! - **Connection cap**: at most `cap` connections are open. A new connection beyond it
//!   closes the oldest one that has no request being processed (it is idle, or still
//!   sending its head or body), so slow clients can never keep a real delivery out; if
//!   every connection is processing a complete request, the new one waits (in the
//!   kernel's queue) until one finishes. Reaching the cap is logged once per episode.
//!   The cap is never more than half the open-file limit, so the task writer always
//!   has files left to open.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ai_employee_vault::units::format_duration;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_service::Service;

/// How long in-flight requests may take to finish after SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning about slow clients in this time (with a count).
const SLOW_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long to wait before accepting again after the process ran out of file
/// descriptors (or memory for sockets).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the flags set.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// `--max-connections`, before the open-file limit is taken into account.
    pub max_connections: usize,
}

/// The connection cap for `wanted` and the process's open-file limit: at most half of
/// that limit (the rest is for the task files, the ledger, logs), at least 1. Returns the
/// cap and the open-file limit (None when unlimited or unknown).
pub fn effective_cap(wanted: usize) -> (usize, Option<u64>) {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft != RLIM_INFINITY => {
            let half = usize::try_from(soft / 2).unwrap_or(usize::MAX);
            (wanted.min(half).max(1), Some(soft))
        }
        _ => (wanted.max(1), None),
    }
}

/// A connection's shared state.
struct Slot {
    /// A request whose body has arrived is being processed: never closed to make room.
    busy: AtomicBool,
    /// Chosen to be closed to make room (counted out of the live connections).
    evicting: AtomicBool,
    evict: Notify,
}

/// Put into every request's extensions, so the handler can say when the request is
/// complete and being processed ([`ConnMark::busy`]).
#[derive(Clone)]
pub struct ConnMark {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl ConnMark {
    /// Mark the connection busy until the guard is dropped (the answer is ready).
    pub fn busy(&self) -> BusyGuard {
        self.slot.busy.store(true, Ordering::Release);
        BusyGuard(self.clone())
    }
}

pub struct BusyGuard(ConnMark);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.slot.busy.store(false, Ordering::Release);
        // The accept loop may be waiting for a connection it can close.
        self.0.shared.room.notify_one();
    }
}

/// The episode of being at the cap, for its two log lines.
struct Episode {
    evicted: u64,
    waited: u64,
}

struct Table {
    next_id: u64,
    /// By age: ids grow.
    conns: BTreeMap<u64, Arc<Slot>>,
    evicting: usize,
    episode: Option<Episode>,
}

impl Table {
    fn live(&self) -> usize {
        self.conns.len() - self.evicting
    }
}

/// What the accept loop and the handlers share.
pub struct Shared {
    cap: usize,
    limits: Limits,
    table: Mutex<Table>,
    /// A connection ended or stopped being busy.
    room: Notify,
    slow: SlowLog,
}

enum Room {
    Free,
    /// The oldest closable connection is being closed: wait until it is gone.
    Evicted,
    /// Every connection is processing a request: wait until one is done.
    AllBusy,
}

impl Shared {
    pub fn new(cap: usize, limits: Limits) -> Arc<Shared> {
        Arc::new(Shared {
            cap,
            limits,
            table: Mutex::new(Table {
                next_id: 0,
                conns: BTreeMap::new(),
                evicting: 0,
                episode: None,
            }),
            room: Notify::new(),
            slow: SlowLog::new(limits),
        })
    }

    /// The slow-client warnings (the handler reports body timeouts here).
    pub fn slow(&self) -> &SlowLog {
        &self.slow
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means a panic elsewhere; the table is still consistent
        // (every change to it is a single step).
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make room for one more connection: free when under the cap; otherwise close the
    /// oldest connection that is not processing a request, and have the caller wait
    /// until it is gone (so that at most `cap` connections, plus the one waiting, hold
    /// file descriptors).
    fn make_room(&self) -> Room {
        let mut t = self.table();
        if t.conns.len() < self.cap {
            return Room::Free;
        }
        if t.episode.is_none() {
            tracing::warn!(
                "reached the connection limit ({} open): for each new connection the oldest one that has not sent a complete request is closed (--max-connections; slow or idle clients, or more traffic than the limit allows)",
                self.cap
            );
            t.episode = Some(Episode {
                evicted: 0,
                waited: 0,
            });
        }
        if t.evicting > 0 {
            // One is already on its way out.
            return Room::Evicted;
        }
        let victim = t
            .conns
            .values()
            .find(|s| !s.busy.load(Ordering::Acquire))
            .cloned();
        match victim {
            Some(slot) => {
                slot.evicting.store(true, Ordering::Release);
                slot.evict.notify_one();
                t.evicting += 1;
                if let Some(e) = t.episode.as_mut() {
                    e.evicted += 1;
                }
                Room::Evicted
            }
            None => Room::AllBusy,
        }
    }

    /// Close the oldest connection that is not processing a request, whatever the cap.
    fn evict_oldest(&self) {
        let mut t = self.table();
        if t.evicting > 0 {
            return;
        }
        let victim = t
            .conns
            .values()
            .find(|s| !s.busy.load(Ordering::Acquire))
            .cloned();
        if let Some(slot) = victim {
            slot.evicting.store(true, Ordering::Release);
            slot.evict.notify_one();
            t.evicting += 1;
        }
    }

    fn note_waited(&self) {
        if let Some(e) = self.table().episode.as_mut() {
            e.waited += 1;
        }
    }

    fn register(self: &Arc<Self>) -> (u64, Arc<Slot>) {
        let slot = Arc::new(Slot {
            busy: AtomicBool::new(false),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        let mut t = self.table();
        let id = t.next_id;
        t.next_id += 1;
        t.conns.insert(id, Arc::clone(&slot));
        (id, slot)
    }

    fn unregister(&self, id: u64) {
        let mut t = self.table();
        if let Some(slot) = t.conns.remove(&id)
            && slot.evicting.load(Ordering::Acquire)
        {
            t.evicting -= 1;
        }
        // The episode ends when a quarter of the cap is free again.
        if t.episode.is_some() && t.live() * 4 <= self.cap * 3 {
            if let Some(e) = t.episode.take() {
                tracing::info!(
                    "back under the connection limit ({} open of {}): {} closed to make room, {} new connections waited for a free one",
                    t.live(),
                    self.cap,
                    e.evicted,
                    e.waited
                );
            }
        }
        drop(t);
        self.room.notify_one();
    }

    fn open(&self) -> usize {
        self.table().conns.len()
    }
}

/// Removes its connection from the table however the connection task ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

/// At most one warning a minute about connections closed for slowness, with counts.
pub struct SlowLog {
    limits: Limits,
    inner: Mutex<SlowCounts>,
}

struct SlowCounts {
    last: Option<Instant>,
    headers: u64,
    bodies: u64,
}

impl SlowLog {
    fn new(limits: Limits) -> SlowLog {
        SlowLog {
            limits,
            inner: Mutex::new(SlowCounts {
                last: None,
                headers: 0,
                bodies: 0,
            }),
        }
    }

    fn header_timeout(&self) {
        self.note(|c| c.headers += 1);
    }

    /// A request body did not arrive within the body timeout.
    pub fn body_timeout(&self) {
        self.note(|c| c.bodies += 1);
    }

    /// Count it; log at once when nothing was logged in the last minute, else leave it
    /// to the next [`SlowLog::flush`].
    fn note(&self, count: impl FnOnce(&mut SlowCounts)) {
        let mut c = self.counts();
        count(&mut c);
        if c.last.is_none_or(|l| l.elapsed() >= SLOW_LOG_EVERY) {
            self.log(&mut c);
        }
    }

    /// Log what was counted since the last line (called every minute).
    fn flush(&self) {
        let mut c = self.counts();
        if c.headers + c.bodies > 0 {
            self.log(&mut c);
        }
    }

    fn counts(&self) -> MutexGuard<'_, SlowCounts> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log(&self, c: &mut SlowCounts) {
        let mut parts = Vec::new();
        if c.headers > 0 {
            parts.push(format!(
                "{} that sent no complete request header within {}",
                c.headers,
                format_duration(self.limits.header_timeout)
            ));
        }
        if c.bodies > 0 {
            parts.push(format!(
                "{} whose request body did not arrive within {} (408)",
                c.bodies,
                format_duration(self.limits.body_timeout)
            ));
        }
        tracing::warn!(
            "closed slow connections: {} (--header-timeout, --body-timeout; at most one such line a minute)",
            parts.join("; ")
        );
        *c = SlowCounts {
            last: Some(Instant::now()),
            headers: 0,
            bodies: 0,
        };
    }
}

/// Serve `router` on `listener` until `stop` completes, then let requests in flight
/// finish (at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()>,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::pin!(stop);
    let mut flush = tokio::time::interval(SLOW_LOG_EVERY);
    // Out of file descriptors since the last accepted connection (logged once).
    let mut out_of_fds = false;
    'accept: loop {
        let accepted = tokio::select! {
            () = &mut stop => break 'accept,
            r = listener.accept() => r,
            _ = flush.tick() => {
                shared.slow.flush();
                continue;
            }
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) => {
                on_accept_error(&e, &shared, &mut out_of_fds);
                tokio::select! {
                    () = &mut stop => break 'accept,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        out_of_fds = false;
        let mut waited = false;
        loop {
            // Registered before looking, so that a wake-up in between is not lost.
            let room = shared.room.notified();
            match shared.make_room() {
                Room::Free => break,
                Room::Evicted => {}
                Room::AllBusy if !waited => {
                    shared.note_waited();
                    waited = true;
                }
                Room::AllBusy => {}
            }
            tokio::select! {
                () = &mut stop => break 'accept,
                () = room => {}
            }
        }
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("failed to set TCP_NODELAY: {e}");
        }
        spawn_connection(tcp, router.clone(), &shared, shutdown_rx.clone());
    }
    drop(listener);
    tracing::info!("stopping: finishing requests in flight");
    // Fails only when no connection is left to tell.
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        loop {
            let room = shared.room.notified();
            if shared.open() == 0 {
                return;
            }
            room.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "stopping with {} connections still open after {}",
            shared.open(),
            format_duration(DRAIN_TIMEOUT)
        );
    }
}

fn on_accept_error(e: &io::Error, shared: &Shared, out_of_fds: &mut bool) {
    match e.raw_os_error() {
        // Out of file descriptors or socket memory (other files of this process, or the
        // whole system): the connections open now are all it can hold. Close the oldest
        // idle or slow one, and try again soon.
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            if !std::mem::replace(out_of_fds, true) {
                tracing::warn!(
                    "cannot accept connections ({e}) with {} open; closing slow or idle ones to make room",
                    shared.open()
                );
            }
            shared.evict_oldest();
        }
        // The client gave up before we accepted it, and the like.
        _ => tracing::debug!("accept failed: {e}"),
    }
}

fn spawn_connection(
    tcp: tokio::net::TcpStream,
    router: Router,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (id, slot) = shared.register();
    let registration = Registration {
        shared: Arc::clone(shared),
        id,
    };
    let mark = ConnMark {
        slot: Arc::clone(&slot),
        shared: Arc::clone(shared),
    };
    let header_timeout = shared.limits.header_timeout;
    let slow = Arc::clone(shared);
    tokio::spawn(async move {
        let _registration = registration;
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(mark.clone());
            router.clone().call(req.map(Body::new))
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(tcp), service);
        tokio::pin!(conn);
        let mut shutting_down = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    match r {
                        Ok(()) => {}
                        Err(e) if e.is_timeout() => {
                            tracing::debug!("closed a connection: no complete request header within {}", format_duration(header_timeout));
                            slow.slow.header_timeout();
                        }
                        Err(e) => tracing::debug!("connection ended: {e}"),
                    }
                    break;
                }
                () = slot.evict.notified() => {
                    tracing::debug!("closed a slow or idle connection to make room");
                    break;
                }
                Ok(()) = shutdown.changed(), if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 3,
        }
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let shared = Shared::new(3, limits());
        let evicting = |s: &(u64, Arc<Slot>)| s.1.evicting.load(Ordering::Acquire);
        let a = shared.register();
        let b = shared.register();
        let c = shared.register();
        a.1.busy.store(true, Ordering::Release);
        // a is busy: b, the oldest idle one, goes.
        assert!(matches!(shared.make_room(), Room::Evicted));
        assert!(!evicting(&a) && evicting(&b) && !evicting(&c));
        // Until b is gone, nobody else is chosen.
        assert!(matches!(shared.make_room(), Room::Evicted));
        assert!(!evicting(&c));
        shared.unregister(b.0);
        assert!(matches!(shared.make_room(), Room::Free));
        let d = shared.register();
        d.1.busy.store(true, Ordering::Release);
        assert!(matches!(shared.make_room(), Room::Evicted));
        assert!(evicting(&c));
        shared.unregister(c.0);
        let e = shared.register();
        e.1.busy.store(true, Ordering::Release);
        // Everyone is processing a request: wait.
        assert!(matches!(shared.make_room(), Room::AllBusy));
        shared.unregister(a.0);
        assert!(matches!(shared.make_room(), Room::Free));
    }

    #[test]
    fn the_cap_is_at_most_half_the_open_file_limit() {
        let (cap, limit) = effective_cap(usize::MAX);
        if let Some(limit) = limit {
            assert_eq!(cap as u64, (limit / 2).max(1));
        }
        assert_eq!(effective_cap(1).0, 1);
    }
}
