//! `[[notify]]` webhooks: a JSON POST per event, off the event loop. Each webhook has its
//! own thread and a bounded queue, so a receiver that hangs or is down delays nothing but
//! its own later notifications; when the queue is full, new events for it are dropped
//! (and counted in the log). A failing webhook is logged once, then again only when it
//! works again, not once per event.
//!
//! The body: `{"event", "child", "details", "text", "host", "vault", "timestamp"}`;
//! `text` is a one-line summary, so Slack- and Mattermost-style incoming webhooks show
//! something readable without a template (an event a child sent is named in it:
//! `task failed: …`, see `phrase::RELAYED`).

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{NotifyEvent, NotifySpec};

/// Events queued per webhook before new ones are dropped.
const QUEUE: usize = 64;
/// First wait between attempts; doubled after each.
const RETRY_FIRST: Duration = Duration::from_secs(1);

struct Hook {
    events: Vec<NotifyEvent>,
    host: String,
    tx: SyncSender<String>,
    thread: JoinHandle<()>,
}

/// The webhooks of the current table.
pub struct Notifier {
    hooks: Vec<Hook>,
    vault: String,
    host: String,
}

impl Notifier {
    pub fn start(specs: &[NotifySpec], vault: &Path) -> Notifier {
        let mut hooks = Vec::new();
        for spec in specs {
            let (tx, rx) = sync_channel(QUEUE);
            let host = url_host(&spec.webhook);
            let worker = Worker {
                url: spec.webhook.clone(),
                host: host.clone(),
                timeout: spec.timeout,
                retries: spec.retries,
            };
            match std::thread::Builder::new()
                .name("notify".into())
                .stack_size(256 * 1024)
                .spawn(move || worker.run(rx))
            {
                Ok(thread) => hooks.push(Hook {
                    events: spec.events.clone(),
                    host,
                    tx,
                    thread,
                }),
                Err(e) => warn!("notify: failed to start the sender for {host}: {e}"),
            }
        }
        Notifier {
            hooks,
            vault: vault.display().to_string(),
            host: hostname(),
        }
    }

    /// Queue `event` for every webhook that subscribes to it. Never blocks.
    pub fn send(&self, event: NotifyEvent, child: Option<&str>, details: &str) {
        if !self.hooks.iter().any(|h| h.events.contains(&event)) {
            return;
        }
        let text = match (child, super::phrase::headline(event)) {
            (Some(c), _) => format!("ai-employee on {}: {c}: {details}", self.host),
            (None, Some(h)) => format!("ai-employee on {}: {h}: {details}", self.host),
            (None, None) => format!("ai-employee on {}: {details}", self.host),
        };
        let body = serde_json::json!({
            "event": event.as_str(),
            "child": child,
            "details": details,
            "text": text,
            "host": self.host,
            "vault": self.vault,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .to_string();
        for h in self.hooks.iter().filter(|h| h.events.contains(&event)) {
            match h.tx.try_send(body.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => warn!(
                    "notify: {} is not keeping up; dropped a {} event",
                    h.host,
                    event.as_str()
                ),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Let queued events go out, waiting at most `limit` in all (at shutdown, so the
    /// `system_offline` event is sent). Webhooks still busy after that are abandoned.
    pub fn finish(self, limit: Duration) {
        let until = crate::supervisor::machine::later(Instant::now(), limit);
        let threads: Vec<JoinHandle<()>> = self
            .hooks
            .into_iter()
            .map(|h| {
                drop(h.tx);
                h.thread
            })
            .collect();
        for t in threads {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() && t.join().is_err() {
                warn!("notify: a webhook sender stopped with a panic");
            }
        }
    }
}

struct Worker {
    url: String,
    host: String,
    timeout: Duration,
    retries: u32,
}

impl Worker {
    fn run(self, rx: Receiver<String>) {
        let agent: ureq::Agent = ai_employee_vault::http::client(self.timeout).build().into();
        let mut failing = false;
        for body in rx {
            let mut wait = RETRY_FIRST;
            let mut last_error = String::new();
            let mut sent = false;
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                match agent
                    .post(&self.url)
                    .header("Content-Type", "application/json")
                    .send(&body)
                {
                    Ok(r) if r.status().is_success() => {
                        sent = true;
                        break;
                    }
                    Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                    // ureq's errors name the host, not the path (where secrets live).
                    Err(e) => last_error = ai_employee_vault::http::error_text(&e),
                }
            }
            if sent && failing {
                info!("notify: webhook {} works again", self.host);
                failing = false;
            } else if !sent && !failing {
                warn!(
                    "notify: webhook {} failed after {} attempts: {last_error}; further failures \
                     are not logged until it works again",
                    self.host,
                    self.retries + 1
                );
                failing = true;
            }
        }
    }
}

/// The host of a URL, for logs: the rest may hold a token.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_name_only_the_host() {
        assert_eq!(
            url_host("https://hooks.slack.com/services/T000/B000/XXXX"),
            "hooks.slack.com"
        );
        assert_eq!(
            url_host("http://user:pw@127.0.0.1:8080/x?t=1"),
            "127.0.0.1:8080"
        );
    }
}
