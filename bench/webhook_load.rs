//! Load generator for the WhatsApp webhook (`ai-employee watch whatsapp`).
//!
//! N keep-alive connections each send signed POST deliveries, one text message with a
//! unique message id per request, back to back for D seconds. A set fraction of the
//! messages contain a keyword (`--match-ratio`), so they must become tasks; the rest
//! must not. Prints requests/s, latency percentiles (send of the request to the end of
//! the response), status counts, and how many matching messages were answered 200 (the
//! number of task files the vault must hold afterwards).
//!
//! ```text
//! cargo run --release --example webhook_load -- \
//!     --url http://127.0.0.1:8787/webhook --secret S --connections 50 --duration 20s
//! ```
//! `bench/whatsapp.sh` runs the whole benchmark (watcher, load, task count).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Signed webhook deliveries at a set concurrency")]
struct Args {
    /// Webhook URL (http://host:port/path)
    #[arg(long, default_value = "http://127.0.0.1:8787/webhook")]
    url: String,
    /// The app secret the watcher verifies signatures with
    #[arg(long)]
    secret: String,
    /// Concurrent keep-alive connections
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// How long to send (e.g. 20s)
    #[arg(long, default_value = "20s", value_parser = ai_employee_vault::units::parse_duration)]
    duration: Duration,
    /// Fraction of messages that contain a keyword (0.0 to 1.0)
    #[arg(long, default_value_t = 1.0)]
    match_ratio: f64,
    /// Prefix of the message ids (unique per run, so runs never collide)
    #[arg(long)]
    id_prefix: Option<String>,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    matching_ok: u64,
    matching_failed: u64,
    errors: u64,
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A delivery of one message from sender `n`, stamped with the current second like a
/// real delivery. Each message comes from its own sender, as in a busy inbox, so task
/// file names (stamp + sender) do not collide: a taken name costs the task sink one
/// more lookup per earlier task with the same name.
fn body(n: u64, id: &str, matching: bool) -> Vec<u8> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = if matching {
        "Hi, the invoice is overdue, please pay asap"
    } else {
        "Hi, just checking in about next week"
    };
    format!(
        concat!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"#,
            r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"#,
            r#""contacts":[{{"profile":{{"name":"Load Test {n}"}},"wa_id":"1{n:012}"}}],"#,
            r#""messages":[{{"from":"1{n:012}","id":"{id}","timestamp":"{ts}","type":"text","text":{{"body":"{text}"}}}}]}}}}]}}]}}"#
        ),
        n = n,
        id = id,
        ts = ts,
        text = text,
    )
    .into_bytes()
}

/// Read one response; its status.
async fn read_response(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<u16> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed in headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut rest = vec![0; length];
    r.read_exact(&mut rest).await?;
    Ok(status)
}

/// What every connection sends to.
struct Target {
    host: String,
    path: String,
    secret: Vec<u8>,
    prefix: String,
    ratio: f64,
    end: Instant,
}

async fn connection(n: usize, target: Arc<Target>) -> Tally {
    let Target {
        host,
        path,
        secret,
        prefix,
        ratio,
        end,
    } = &*target;
    let (ratio, end) = (*ratio, *end);
    let mut t = Tally::default();
    let mut seq: u64 = 0;
    'reconnect: while Instant::now() < end {
        let stream = match TcpStream::connect(host.as_str()).await {
            Ok(s) => s,
            Err(_) => {
                t.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        while Instant::now() < end {
            // Exactly `ratio` of each connection's messages match (as evenly spread as
            // integer steps allow).
            let matching = ((seq + 1) as f64 * ratio).floor() > (seq as f64 * ratio).floor();
            let id = format!("wamid.{prefix}.{n}.{seq}");
            seq += 1;
            let sender = (n as u64) * 10_000_000 + seq;
            let b = body(sender, &id, matching);
            let sig = sign(secret, &b);
            let mut req = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )
            .into_bytes();
            req.extend_from_slice(&b);
            let started = Instant::now();
            let status = match wr.write_all(&req).await {
                Ok(()) => read_response(&mut rd).await,
                Err(e) => Err(e),
            };
            match status {
                Ok(s) => {
                    t.latencies_us.push(started.elapsed().as_micros() as u64);
                    *t.statuses.entry(s).or_default() += 1;
                    if matching {
                        if s == 200 {
                            t.matching_ok += 1;
                        } else {
                            t.matching_failed += 1;
                        }
                    }
                }
                Err(_) => {
                    t.errors += 1;
                    if matching {
                        t.matching_failed += 1;
                    }
                    continue 'reconnect;
                }
            }
        }
    }
    t
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("http://")
        .expect("--url must start with http://");
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h.to_string(), format!("/{p}")),
        None => (rest.to_string(), "/".to_string()),
    };
    assert!(
        (0.0..=1.0).contains(&args.match_ratio),
        "--match-ratio must be between 0 and 1"
    );
    let prefix = args.id_prefix.clone().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_default()
    });
    let started = Instant::now();
    let end = started + args.duration;
    let target = Arc::new(Target {
        host,
        path,
        secret: args.secret.as_bytes().to_vec(),
        prefix,
        ratio: args.match_ratio,
        end,
    });
    let handles: Vec<_> = (0..args.connections)
        .map(|n| tokio::spawn(connection(n, target.clone())))
        .collect();
    let mut all = Tally::default();
    for h in handles {
        let t = h.await.expect("connection task");
        all.latencies_us.extend(t.latencies_us);
        for (s, c) in t.statuses {
            *all.statuses.entry(s).or_default() += c;
        }
        all.matching_ok += t.matching_ok;
        all.matching_failed += t.matching_failed;
        all.errors += t.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let statuses: Vec<String> = all
        .statuses
        .iter()
        .map(|(s, c)| format!("{s}={c}"))
        .collect();
    println!(
        "connections={} duration={:.2}s match_ratio={}",
        args.connections, elapsed, args.match_ratio
    );
    println!("requests={n} rps={:.1}", n as f64 / elapsed);
    println!(
        "latency_ms p50={:.2} p95={:.2} p99={:.2} max={:.2}",
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 95.0),
        percentile(&all.latencies_us, 99.0),
        all.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!("status {}", statuses.join(" "));
    println!("errors={}", all.errors);
    println!("matching_ok={}", all.matching_ok);
    println!("matching_failed={}", all.matching_failed);
}
