//! The admin socket (Unix only): a running sled server listens at `<data-dir>/admin.sock`,
//! so `oauth-mcp admin` can add or remove clients and users without stopping it (sled lets
//! one process hold a data directory; issue 14, "live administration").
//!
//! # Credential: the file's permissions
//! There is no password or token: whoever may connect may administer, and only the owner of
//! the socket file may connect (mode 0600; Linux checks write permission on the socket
//! file at `connect`). The socket is never reachable by anyone else, not even for an
//! instant: it is bound inside a fresh directory of mode 0700 under the data directory,
//! set to 0600 there, and only then renamed to `admin.sock` (atomically, replacing a stale
//! file). A socket file that exists already is replaced only when nothing answers on it
//! (a server that crashed); one that answers belongs to another process, and serving is
//! refused (the binary then runs without a socket and logs a warning). The file is removed
//! when the [`AdminSocket`] is dropped, if it is still ours. The client side sends a request
//! (which may carry a password) only to a socket owned by the owner of the data (sled's `db`
//! file), never to one another user put there.
//!
//! # Protocol
//! One connection, one request, one answer, each a line of JSON ([`Request`],
//! [`Answer`]). A request longer than [`MAX_REQUEST_BYTES`], one not complete within
//! [`READ_TIMEOUT`], or one that does not parse gets an [`Answer::Failed`] (never a crash);
//! a request runs for at most [`RUN_TIMEOUT`]; at most [`MAX_CONNECTIONS`] are served at
//! once (more are told to retry). The request runs on an [`Admin`] attached to the
//! server's own actors ([`Admin::attach`]), through the same [`apply`] as offline
//! administration.
//!
//! Off unless asked: an embedding host calls [`AdminSocket::serve`]; the `oauth-mcp` binary
//! does for a sled data directory (on PostgreSQL, `admin` connects to the database itself).

use std::{
    io,
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{
    request::{apply, Answer, Request},
    Admin, AdminError,
};
use crate::services::Services;

/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// The longest request accepted, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a client has to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may run (revoking walks every token).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Requests served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// The longest answer a client reads (a listing of every client).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// The listening admin socket of a running server; dropping it stops listening and removes
/// the socket file.
#[derive(Debug)]
pub struct AdminSocket {
    path: PathBuf,
    /// Device and inode of the socket file as created, so that only our own file is removed.
    identity: (u64, u64),
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    /// Listens on `<data_dir>/admin.sock` and serves requests with `services`' actors. Must
    /// be called inside the server's actix System (after [`Services`] started).
    pub fn serve(services: &Services, data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(SOCKET_NAME);
        refuse_if_answering(&path)?;
        let std_listener = bind_private(data_dir, &path)?;
        let meta = std::fs::symlink_metadata(&path)?;
        std_listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(std_listener)?;
        let services = services.clone();
        let task = actix_web::rt::spawn(accept_loop(listener, services));
        tracing::info!(socket = %path.display(), "admin socket listening");
        Ok(Self {
            path,
            identity: (meta.dev(), meta.ino()),
            task,
        })
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.task.abort();
        // Remove the file only if it is still the one we bound (not a successor's).
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Fails if a process answers on `path`; otherwise (nothing there, or a stale socket that
/// refuses connections) lets the caller replace it. Anything but a socket is left alone.
fn refuse_if_answering(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process answers on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

/// Binds the socket in a fresh 0700 directory, makes it 0600, then renames it to `path`:
/// at no instant is a socket reachable by another user under either name.
fn bind_private(data_dir: &Path, path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    // Short: a socket path has at most about 100 bytes (`sun_path`).
    let private = data_dir.join(format!(".admin-{:08x}", rand::random::<u32>()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let temporary = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

async fn accept_loop(listener: UnixListener, services: Services) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Arc::clone(&slots).try_acquire_owned();
        let services = services.clone();
        actix_web::rt::spawn(async move {
            let answer = match slot {
                Ok(_slot) => serve_one(stream, &services).await,
                Err(_) => {
                    let busy = Answer::Failed(format!(
                        "the server is running {MAX_CONNECTIONS} admin requests already; \
                         retry"
                    ));
                    write_answer(stream, &busy).await
                }
            };
            if let Err(e) = answer {
                tracing::debug!(error = %e, "admin socket: could not answer");
            }
        });
    }
}

async fn serve_one(mut stream: UnixStream, services: &Services) -> io::Result<()> {
    let answer = match read_request(&mut stream).await {
        Err(message) => Answer::Failed(message),
        Ok(request) => {
            tracing::info!(?request, "admin request over the socket");
            let admin = Admin::attach(services);
            match tokio::time::timeout(RUN_TIMEOUT, apply(&admin, request)).await {
                Ok(Ok(report)) => Answer::Done(report),
                Ok(Err(e)) => Answer::Failed(e.to_string()),
                Err(_) => Answer::Failed(format!(
                    "the request did not finish within {} s",
                    RUN_TIMEOUT.as_secs()
                )),
            }
        }
    };
    write_answer(stream, &answer).await
}

/// Reads one request line, bounded in size and time. The error is the operator's message:
/// it never repeats the request (which may hold a password).
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(stream).take(limit);
    match tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => {
            return Err(format!(
                "no complete request within {} s",
                READ_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() >= MAX_REQUEST_BYTES {
            format!("the request is longer than {MAX_REQUEST_BYTES} bytes")
        } else {
            "the request ended without a newline".into()
        });
    }
    serde_json::from_slice(&line).map_err(|e| {
        format!(
            "unreadable request ({:?} error at column {}): one JSON object with a known \"op\" \
             is expected",
            e.classify(),
            e.column()
        )
    })
}

async fn write_answer(mut stream: UnixStream, answer: &Answer) -> io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

/// The request may carry a password: send it only to a socket owned by the owner of the
/// data (sled's `db` file, written by the server), never to one someone else put there.
fn check_owner(data_dir: &Path, path: &Path) -> Result<(), String> {
    let socket = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !socket.file_type().is_socket() {
        return Err("it is not a socket".into());
    }
    let data = std::fs::metadata(data_dir.join("db")).map_err(|e| e.to_string())?;
    if socket.uid() != data.uid() {
        return Err(format!(
            "it belongs to uid {}, the data to uid {}: not sent",
            socket.uid(),
            data.uid()
        ));
    }
    Ok(())
}

/// Sends `request` to the server running on `data_dir` and answers its report (the
/// client side, used by `oauth-mcp admin` when the directory is in use).
pub async fn send(data_dir: &Path, request: &Request) -> Result<String, AdminError> {
    let path = data_dir.join(SOCKET_NAME);
    let unavailable = |reason: String| AdminError::SocketUnavailable {
        dir: data_dir.to_owned(),
        socket: path.clone(),
        reason,
    };
    check_owner(data_dir, &path).map_err(unavailable)?;
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| AdminError::Internal(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut answer = Vec::new();
    let mut reader = BufReader::new(stream).take(MAX_ANSWER_BYTES);
    let read = reader.read_until(b'\n', &mut answer);
    match tokio::time::timeout(RUN_TIMEOUT + READ_TIMEOUT, read).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unavailable(e.to_string())),
        Err(_) => return Err(unavailable("no answer in time".into())),
    }
    match serde_json::from_slice(&answer) {
        Ok(Answer::Done(report)) => Ok(report),
        Ok(Answer::Failed(message)) => Err(AdminError::Remote(message)),
        Err(_) => Err(unavailable("an unreadable answer".into())),
    }
}
