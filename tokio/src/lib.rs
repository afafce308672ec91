//! tokio sockets over the xdpstack daemon, so that hyper, axum, tonic and
//! the rest of the tokio ecosystem run on the stack unchanged: only the
//! listener changes.
//!
//! A process attaches to `xdpstack daemon` ([`Stack::connect`]) as the
//! `attach` crate does: the daemon learns its uid from the kernel and hands
//! it one shared-memory channel per daemon core. [`TcpListener`] binds one
//! member of the port's reuseport group on every core (the daemon's rules
//! decide: the same uid for every member, reuseport set on all, ports below
//! 1024 only with `CAP_NET_BIND_SERVICE`); [`TcpStream`] implements tokio's
//! [`AsyncRead`](tokio::io::AsyncRead) and
//! [`AsyncWrite`](tokio::io::AsyncWrite) over the connection's records;
//! [`UdpSocket`] sends and receives datagrams. [`TcpStream::connect`] and
//! [`Stack::connect_tcp`] open outgoing connections (hyper's and tonic's
//! clients), streams like the accepted ones.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use tokio::io::AsyncWriteExt;
//! let stack = xdpstack_tokio::Stack::connect("/run/xdpstack.sock").await?;
//! let listener = stack.bind("0.0.0.0:8080".parse().unwrap()).await?;
//! loop {
//!     let (mut stream, _peer) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nhi\n").await;
//!     });
//! }
//! # }
//! ```
//!
//! # Threading
//!
//! One [`Stack`] per process, shared by every runtime thread: each daemon
//! core's channel sits behind its own lock, held only to copy bytes between
//! a task's buffer and the channel, and one driver task per core (spawned on
//! the runtime that called [`Stack::connect`]) takes the daemon's records
//! and wakes the tasks they concern. A connection lives on the daemon core
//! that accepted it; a task using it may run on any runtime thread (tokio's
//! scheduler moves tasks between threads, so a channel per thread could not
//! follow a connection without a lock anyway). With one worker thread, the
//! setting of the issue's benchmark, no lock is ever contended; with
//! several, tasks of different cores never share one.
//!
//! # Readiness and batching
//!
//! Nothing a task does makes a system call: a read copies from the bytes
//! the driver took from the ring, a write pushes a record into the ring and
//! kicks the driver, which publishes once for every task that wrote since
//! its last turn. Doorbells (eventfds) ring only when the other side
//! announced that it sleeps: the driver does only when a turn found nothing,
//! and waits on the doorbell through tokio's
//! [`AsyncFd`](tokio::io::unix::AsyncFd).
//!
//! # Errors
//!
//! When the daemon goes away (its end of the control socket closes), every
//! pending and later call fails with an [`io::Error`] whose inner error is
//! [`Error::DaemonGone`]. A write that finds the send credit used up or the
//! ring full returns `Poll::Pending` and is woken when credit comes back or
//! the ring has room again: nothing is dropped.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod connect;
mod driver;
mod tcp;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use driver::CoreCell;

pub use tcp::{
    split::{ReadHalf, WriteHalf},
    split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError},
    ListenOptions, TcpListener, TcpStream,
};
pub use udp::UdpSocket;

/// The environment variable naming the daemon's control socket for
/// [`TcpListener::bind`] and [`UdpSocket::bind`] (the process-wide
/// [`Stack::default`]).
pub const CONTROL_ENV: &str = "XDPSTACK_CONTROL";

/// Why a call failed (the inner error of the [`io::Error`]s this crate
/// returns).
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The daemon went away (exited, crashed, was killed): its control
    /// socket closed and its channels carry nothing more.
    #[error("the xdpstack daemon is gone (its control socket closed): the connection is lost")]
    DaemonGone,
    /// The daemon broke the ring protocol; the core is unusable.
    #[error("the xdpstack daemon broke the ring protocol: {0}")]
    Broken(String),
    /// The daemon refused the request (its reason: "refused port hijack",
    /// a privileged port, ...).
    #[error("the xdpstack daemon refused: {0}")]
    Refused(String),
    /// Attaching failed.
    #[error("cannot attach to the xdpstack daemon at {path}: {why}")]
    Attach {
        /// The control socket.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// No daemon was named for the default stack.
    #[error("no xdpstack daemon: set {CONTROL_ENV} to its control socket or call Stack::connect")]
    NoDaemon,
    /// An outgoing connection failed (the daemon's answer).
    #[error("connecting to {addr} through the xdpstack daemon: {message}")]
    Connect {
        /// The destination.
        addr: SocketAddr,
        /// Why, as the daemon says (it decides the `io::ErrorKind`).
        why: attach::proto::ConnectFailure,
        /// The daemon's words.
        message: String,
    },
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::DaemonGone => io::ErrorKind::ConnectionAborted,
            Error::Broken(_) => io::ErrorKind::InvalidData,
            Error::Refused(_) => io::ErrorKind::PermissionDenied,
            Error::Attach { .. } | Error::NoDaemon => io::ErrorKind::NotConnected,
            Error::Connect { why, .. } => {
                use attach::proto::ConnectFailure as F;
                match why {
                    F::Refused => io::ErrorKind::ConnectionRefused,
                    F::TimedOut => io::ErrorKind::TimedOut,
                    F::Unreachable => io::ErrorKind::HostUnreachable,
                    F::AddrInUse => io::ErrorKind::AddrNotAvailable,
                    F::Invalid => io::ErrorKind::InvalidInput,
                }
            }
        };
        io::Error::new(kind, e)
    }
}

/// The attachment to the daemon: one channel per daemon core, driven by
/// tasks of the runtime that connected. Cheap to clone; the last clone (and
/// the last socket made with it) dropped detaches the process.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cores: Vec<Arc<CoreCell>>,
    watch_stop: Arc<Notify>,
    /// The core of the next outgoing connection (round robin).
    pub next_core: std::sync::atomic::AtomicUsize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for c in &self.cores {
            c.stop();
        }
        self.watch_stop.notify_one();
    }
}

static DEFAULT: Mutex<Option<Stack>> = Mutex::new(None);

impl Stack {
    /// Attach to the daemon whose control socket is `path`. Spawns one
    /// driver task per daemon core (and a watcher of the control socket)
    /// on the current runtime: the stack serves as long as that runtime
    /// runs.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<Stack> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let client = tokio::task::spawn_blocking(move || attach::Client::connect(&p))
            .await
            .map_err(io::Error::other)?
            .map_err(|e| Error::Attach {
                path,
                why: e.to_string(),
            })?;
        let watch = client.watch();
        let cores = client
            .into_cores()
            .into_iter()
            .map(|c| CoreCell::new(c).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        for c in &cores {
            tokio::spawn(driver::drive(c.clone()));
        }
        let watch_stop = Arc::new(Notify::new());
        tokio::spawn(driver::watch(cores.clone(), watch, watch_stop.clone()));
        Ok(Stack {
            inner: Arc::new(Inner {
                cores,
                watch_stop,
                next_core: Default::default(),
            }),
        })
    }

    /// The process-wide stack of [`TcpListener::bind`] and
    /// [`UdpSocket::bind`]: the one given to [`Stack::set_default`], else
    /// one attached (once) to the daemon named by `XDPSTACK_CONTROL`.
    pub async fn default() -> io::Result<Stack> {
        if let Some(s) = DEFAULT.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(s);
        }
        let path = std::env::var_os(CONTROL_ENV).ok_or(Error::NoDaemon)?;
        let s = Stack::connect(path).await?;
        let mut d = DEFAULT.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.get_or_insert(s).clone())
    }

    /// Make `stack` the process-wide default.
    pub fn set_default(stack: &Stack) {
        *DEFAULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(stack.clone());
    }

    /// The daemon's cores (one channel each).
    pub fn cores(&self) -> usize {
        self.inner.cores.len()
    }

    /// A TCP listener on `addr` ([`ListenOptions::default`]: a reuseport
    /// member on every core).
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with(self, addr, ListenOptions::default()).await
    }

    /// A UDP socket on `addr` (a reuseport member on every core).
    pub async fn bind_udp(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::bind_with(self, addr, ListenOptions::default()).await
    }
}

/// A control request on core `cell` (a blocking round trip to the daemon,
/// on tokio's blocking pool).
pub(crate) async fn control<T: Send + 'static>(
    cell: Arc<CoreCell>,
    f: impl FnOnce(&mut attach::Core) -> Result<T, attach::AttachError> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(move || {
        let mut st = cell.lock();
        st.check()?;
        f(&mut st.core).map_err(|e| match e {
            attach::AttachError::Refused(r) => Error::Refused(r).into(),
            attach::AttachError::Io(e) => e,
            e => io::Error::other(e.to_string()),
        })
    })
    .await
    .map_err(io::Error::other)?
}
