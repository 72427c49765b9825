//! The client side of the control socket, used by `status`, `start`, `stop`, `restart`
//! and `reload` (blocking: these commands do one thing and exit).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Request, Response, socket_path};

/// How long a request may take before the command gives up (a reload re-reads the table
/// and starts children; a status with a thousand children takes milliseconds).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no supervisor could be reached.
#[derive(Debug)]
pub enum ConnectError {
    /// No socket, or nobody listening on it: no supervisor runs on this vault.
    NotRunning(PathBuf),
    /// The socket belongs to another user.
    Denied(PathBuf, io::Error),
    Other(PathBuf, io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::NotRunning(p) => write!(
                f,
                "no supervisor is running on this vault (no one listens on {})",
                p.display()
            ),
            ConnectError::Denied(p, e) => write!(
                f,
                "cannot use {}: {e} (only the user running the supervisor may)",
                p.display()
            ),
            ConnectError::Other(p, e) => write!(f, "cannot connect to {}: {e}", p.display()),
        }
    }
}

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(vault: &Path) -> Result<Client, ConnectError> {
        let path = socket_path(vault);
        let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ConnectError::NotRunning(path.clone())
            }
            io::ErrorKind::PermissionDenied => ConnectError::Denied(path.clone(), e),
            _ => ConnectError::Other(path.clone(), e),
        })?;
        let other = |e| ConnectError::Other(path.clone(), e);
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(other)?;
        let writer = stream.try_clone().map_err(other)?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Send one request and read its response.
    pub fn call(&mut self, req: &Request) -> io::Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Err(e) = self.writer.write_all(&line) {
            // A server that refuses us answers and closes at once: read its reason.
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e);
            }
        }
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the supervisor closed the connection without answering",
            ));
        }
        serde_json::from_str(&reply).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable answer from the supervisor: {e}"),
            )
        })
    }
}

/// Tell the supervisor of `vault`, if one runs, about an event for its `[[notify]]`
/// webhooks (a child's best effort: waits at most about a second, never fails the
/// caller). Returns whether the supervisor took it.
pub fn send_event(vault: &Path, event: &str, details: &str) -> bool {
    const LIMIT: Duration = Duration::from_secs(1);
    let path = socket_path(vault);
    let Ok(stream) = UnixStream::connect(&path) else {
        return false;
    };
    // Both fail only for a zero duration, which LIMIT is not.
    let _ = stream.set_read_timeout(Some(LIMIT));
    // As above.
    let _ = stream.set_write_timeout(Some(LIMIT));
    let Ok(writer) = stream.try_clone() else {
        return false;
    };
    let mut client = Client {
        reader: BufReader::new(stream),
        writer,
    };
    let req = Request::Event {
        event: event.to_string(),
        details: details.to_string(),
    };
    match client.call(&req) {
        Ok(r) if r.ok => true,
        Ok(r) => {
            tracing::debug!(
                "the supervisor did not take the event: {}",
                r.error.as_deref().unwrap_or("no reason given")
            );
            false
        }
        Err(e) => {
            tracing::debug!("could not tell the supervisor about the event: {e}");
            false
        }
    }
}
