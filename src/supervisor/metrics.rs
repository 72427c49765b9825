//! `[supervisor] metrics = "127.0.0.1:9464"`: Prometheus metrics over HTTP (`GET
//! /metrics`, OpenMetrics text). Values come from the same status report as
//! `ai-employee status --json`, taken at scrape time.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::control::server::Call;
use crate::control::{Request, StatusReport};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Child {
    name: String,
}

/// The metrics text for a status report.
pub fn render(report: &StatusReport) -> String {
    let mut registry = Registry::with_prefix("ai_employee");
    let up = Family::<Child, Gauge>::default();
    let restarts = Family::<Child, Counter>::default();
    let last_exit = Family::<Child, Gauge>::default();
    let rss = Family::<Child, Gauge>::default();
    let cpu = Family::<Child, Counter<f64>>::default();
    for c in &report.children {
        let l = Child {
            name: c.name.clone(),
        };
        up.get_or_create(&l).set(i64::from(c.state == "running"));
        restarts.get_or_create(&l).inc_by(u64::from(c.restarts));
        if let Some(e) = &c.last_exit {
            last_exit.get_or_create(&l).set(exit_code(e));
        }
        if let Some(b) = c.rss_bytes {
            rss.get_or_create(&l)
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        if let Some(s) = c.cpu_seconds {
            cpu.get_or_create(&l).inc_by(s);
        }
    }
    let uptime = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    uptime.set(report.supervisor.uptime_secs);
    let healthy = Gauge::<i64>::default();
    healthy.set(i64::from(report.health == crate::control::Health::Healthy));
    registry.register("child_up", "1 if the child is running", up);
    registry.register(
        "child_restarts",
        "Restarts since the supervisor started",
        restarts,
    );
    registry.register(
        "child_last_exit_code",
        "Exit code of the last run (128 + signal number when killed by a signal)",
        last_exit,
    );
    registry.register(
        "child_rss_bytes",
        "Resident set size of the running process",
        rss,
    );
    registry.register(
        "child_cpu_seconds",
        "User + system CPU time of the running process",
        cpu,
    );
    registry.register(
        "supervisor_uptime_seconds",
        "Seconds since the supervisor started",
        uptime,
    );
    registry.register(
        "supervisor_healthy",
        "1 if every child is as it should be (status exit 0)",
        healthy,
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        warn!("metrics: encoding failed: {e}");
    }
    out
}

/// Shell convention: a signal death is 128 + its number.
fn exit_code(e: &crate::control::LastExit) -> i64 {
    match (e.code, &e.signal) {
        (Some(c), _) => i64::from(c),
        (None, Some(name)) => name
            .parse::<nix::sys::signal::Signal>()
            .map_or(-1, |s| 128 + s as i64),
        (None, None) => -1,
    }
}

/// Serve `GET /metrics` on `addr` from the current runtime.
pub async fn serve(addr: SocketAddr, calls: mpsc::UnboundedSender<Call>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    info!("metrics: serving http://{addr}/metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(calls);
    if let Err(e) = axum::serve(listener, app).await {
        warn!("metrics: server stopped: {e}");
    }
}

async fn scrape(State(calls): State<mpsc::UnboundedSender<Call>>) -> impl IntoResponse {
    let (reply, answer) = oneshot::channel();
    let sent = calls.send(Call {
        request: Request::Status,
        reply,
    });
    let status = match (sent, answer.await) {
        (Ok(()), Ok(r)) => r.status,
        _ => None,
    };
    match status {
        Some(s) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            render(&s),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "the supervisor is shutting down\n".to_string(),
        ),
    }
}
