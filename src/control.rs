//! The server side of the control socket, run inside the supervisor's event loop. Each
//! connection is a local task; requests go to the runtime over a channel and are answered
//! in the order they were sent.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_employee_vault::control::{MAX_REQUEST_BYTES, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// A request on its way to the runtime, with where to send the answer.
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The listening socket; removed from the file system when dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Harmless if left: the next supervisor replaces a stale socket (see `start`).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind `path` (replacing a stale socket: the caller holds the vault lock, so no other
/// supervisor can be using it), make it owner-only, and serve it on the current
/// `LocalSet`, sending every request to `calls`.
pub fn start(path: &Path, calls: mpsc::UnboundedSender<Call>) -> io::Result<ControlSocket> {
    if let Some(dir) = path.parent() {
        ai_employee_vault::layout::ensure_private_dir(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let owner = nix::unistd::geteuid().as_raw();
    tokio::task::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let calls = calls.clone();
                    tokio::task::spawn_local(async move {
                        if let Err(e) = serve(stream, owner, calls).await {
                            debug!("control connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

async fn serve(
    stream: UnixStream,
    owner: u32,
    calls: mpsc::UnboundedSender<Call>,
) -> io::Result<()> {
    let peer = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if peer != owner {
        warn!(
            "control socket: refused a connection from uid {peer} (the supervisor runs as uid {owner})"
        );
        // Take the request line first (briefly), so the client reads the reason instead
        // of a reset connection.
        let mut ignored = Vec::new();
        // Whatever the read brings (a line, an error, the timeout), the refusal follows.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            (&mut reader)
                .take(MAX_REQUEST_BYTES as u64)
                .read_until(b'\n', &mut ignored),
        )
        .await;
        let refusal = Response::error(format!(
            "refused: the supervisor runs as uid {owner}, you are uid {peer}"
        ));
        return send(&mut write, &refusal).await;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_REQUEST_BYTES + 1) as u64;
        let n = match tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut reader).take(limit).read_until(b'\n', &mut line),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            let r = Response::error(format!(
                "request too long or not ended by a newline (at most {MAX_REQUEST_BYTES} bytes)"
            ));
            return send(&mut write, &r).await;
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if calls.send(Call { request, reply }).is_err() {
                    return Ok(());
                }
                match answer.await {
                    Ok(r) => r,
                    Err(_) => Response::error("the supervisor is shutting down"),
                }
            }
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        send(&mut write, &response).await?;
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(r).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}
