//! The few IMAP commands the watcher sends beyond async-imap's typed ones: a `UID FETCH`
//! whose answers are read attribute by attribute (for X-GM-THRID and partial bodies),
//! and the check for news (EXISTS) that arrived while another command ran.

use std::time::Duration;

use async_imap::imap_proto::{AttributeValue, Response, Status};
use async_imap::types::UnsolicitedResponse;
use chrono::{DateTime, Utc};

use super::conn::ImapSession;

/// One message's answer to a `UID FETCH`.
#[derive(Debug, Default)]
pub struct Fetched {
    pub uid: u32,
    pub seen: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub size: Option<u32>,
    pub internal_date: Option<DateTime<Utc>>,
    pub gmail_thread: Option<u64>,
    pub body: Option<Vec<u8>>,
}

/// The answers to `UID FETCH <set> <items>`, and whether the server announced new
/// messages (EXISTS) while answering.
pub async fn uid_fetch(
    s: &mut ImapSession,
    set: &str,
    items: &str,
    limit: Duration,
) -> Result<(Vec<Fetched>, bool), String> {
    let run = async {
        let id = s
            .run_command(format!("UID FETCH {set} {items}"))
            .await
            .map_err(|e| super::conn::imap_error_text(&e))?;
        let mut out = Vec::new();
        let mut news = false;
        loop {
            let Some(resp) = s
                .read_response()
                .await
                .map_err(|e| ai_employee_vault::tls::io_error_text(&e))?
            else {
                return Err("the server closed the connection".to_string());
            };
            match resp.parsed() {
                Response::Fetch(_, attrs) => {
                    let f = parse_fetch(attrs);
                    if f.uid != 0 {
                        out.push(f);
                    }
                }
                Response::Done {
                    tag,
                    status,
                    information,
                    ..
                } if *tag == id => {
                    return match status {
                        Status::Ok => Ok((out, news)),
                        _ => Err(format!(
                            "UID FETCH refused: {}",
                            information.as_deref().unwrap_or("(no reason given)")
                        )),
                    };
                }
                Response::MailboxData(async_imap::imap_proto::MailboxDatum::Exists(_)) => {
                    news = true;
                }
                Response::Data {
                    status: Status::Bye,
                    information,
                    ..
                } => {
                    return Err(format!(
                        "the server said goodbye: {}",
                        information.as_deref().unwrap_or("")
                    ));
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "UID FETCH: no answer within {}s",
            limit.as_secs_f64()
        )),
    }
}

fn parse_fetch(attrs: &[AttributeValue<'_>]) -> Fetched {
    let mut f = Fetched::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => f.uid = *u,
            AttributeValue::Flags(flags) => {
                for fl in flags {
                    match fl.to_ascii_lowercase().as_str() {
                        "\\seen" => f.seen = true,
                        "\\flagged" => f.flagged = true,
                        "\\deleted" => f.deleted = true,
                        _ => {}
                    }
                }
            }
            AttributeValue::Rfc822Size(n) => f.size = Some(*n),
            AttributeValue::InternalDate(d) => f.internal_date = internal_date(d),
            AttributeValue::GmailThrId(t) => f.gmail_thread = Some(*t),
            AttributeValue::BodySection {
                section: None,
                data: Some(d),
                ..
            }
            | AttributeValue::Rfc822(Some(d)) => f.body = Some(d.to_vec()),
            _ => {}
        }
    }
    f
}

/// `22-Nov-2026 02:53:35 +0000` (the day may be space-padded).
fn internal_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Drain the unsolicited answers async-imap queued (`next` takes one, e.g.
/// `|| rx.try_recv().ok()`); true if new messages were announced.
pub fn drain_news(mut next: impl FnMut() -> Option<UnsolicitedResponse>) -> bool {
    let mut news = false;
    while let Some(r) = next() {
        if matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        ) {
            news = true;
        }
    }
    news
}

/// `1,4,7:9` from sorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_dates() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(
            internal_date(" 2-Nov-2026 02:53:35 +0100").map(|d| d.to_rfc3339()),
            Some("2026-11-02T01:53:35+00:00".into())
        );
    }
}
