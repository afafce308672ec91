//! Attach to an `xdpstack daemon` and serve TCP through it as an ordinary,
//! unprivileged process.
//!
//! The daemon owns the NIC, the XDP program and one engine per core. A
//! process connects to its control socket ([`Client::connect`]); the
//! daemon learns who it is from the kernel (`SO_PEERCRED`), never from the
//! process, and hands it one shared-memory [`Core`] per daemon core. A
//! `Core` has the socket API of the engine itself ([`TcpApi`]: listen with
//! reuseport, accept, recv, send, shutdown, close), so the same application
//! code runs inside a daemon worker or attached; one thread per core runs
//! it ([`run`]), and may be pinned beside the daemon's worker of that core.
//!
//! Listening binds one member of the port's reuseport group on the core, as
//! the process's uid: every member must set reuseport and have the same
//! uid, otherwise the bind is refused with the registry's error ("refused
//! port hijack" for another uid); ports below 1024 need uid 0 or
//! `CAP_NET_BIND_SERVICE` in the attaching process.
//!
//! Data moves through the [`nic::shm`] rings in batches; doorbells
//! (eventfds) are rung only when the other side announced it sleeps.
//!
//! ```no_run
//! use stack::reuseport::{BindAddr, BindOptions};
//! use stack::socket::TcpApi;
//! let client = attach::Client::connect("/run/xdpstack.sock").unwrap();
//! for mut core in client.into_cores() {
//!     std::thread::spawn(move || {
//!         let l = core
//!             .tcp_listen(BindAddr::DUAL_STACK, 8080, BindOptions::new(0).with_reuseport(true))
//!             .unwrap();
//!         loop {
//!             core.poll_events();
//!             while let Some(c) = core.accept(l) {
//!                 let _ = core.send(c, b"HTTP/1.0 200 OK\r\n\r\nhi\n");
//!                 core.close(c);
//!             }
//!             core.wait(std::time::Duration::from_millis(100));
//!         }
//!     });
//! }
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod proto;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nic::shm::{recv_with_fds, Channel, RingError, RingRx, RingTx, Side};
use stack::reuseport::{BindAddr, BindOptions, MemberId, Selector};
use stack::shared::StackReport;
use stack::socket::{ConnEnd, ConnError, ConnId, ListenerId, TcpApi, UdpApi, UdpError, UdpId};

use proto::{Reply, Request};

/// Why attaching or a listener operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The control socket.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The daemon answered something this client does not understand.
    #[error("control protocol: {0}")]
    Protocol(String),
    /// The daemon refused the request; its reason.
    #[error("{0}")]
    Refused(String),
    /// The shared memory of a core broke.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// The control connection (shared by the cores' threads).
struct Control {
    sock: UnixStream,
    buf: Vec<u8>,
}

impl Control {
    fn request(&mut self, req: &Request, fds: &mut Vec<OwnedFd>) -> Result<Reply, AttachError> {
        let mut line = serde_json::to_vec(req).map_err(|e| AttachError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.sock.write_all(&line)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = recv_with_fds(self.sock.as_fd(), &mut chunk, fds)?;
            if n == 0 {
                return Err(AttachError::Protocol(
                    "the daemon closed the control socket".into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if self.buf.last() == Some(&b'\n') {
                break;
            }
            if self.buf.len() > 1 << 20 {
                return Err(AttachError::Protocol("reply too long".into()));
            }
        }
        let r: Reply =
            serde_json::from_slice(&self.buf).map_err(|e| AttachError::Protocol(e.to_string()))?;
        if !r.ok {
            return Err(AttachError::Refused(r.error.unwrap_or_default()));
        }
        Ok(r)
    }

    fn simple(&mut self, req: &Request) -> Result<Reply, AttachError> {
        let mut fds = Vec::new();
        self.request(req, &mut fds)
    }
}

/// An attachment to the daemon.
pub struct Client {
    cores: Vec<Core>,
}

impl Client {
    /// Connect to the daemon's control socket and map one channel per core.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, AttachError> {
        let sock = UnixStream::connect(path)?;
        let ctl = Arc::new(Mutex::new(Control {
            sock,
            buf: Vec::new(),
        }));
        let mut fds = Vec::new();
        let reply = ctl
            .lock()
            .map_err(|_| AttachError::Protocol("poisoned".into()))?
            .request(&Request::Hello, &mut fds)?;
        let n = reply
            .cores
            .ok_or_else(|| AttachError::Protocol("hello without cores".into()))?;
        if n == 0 || fds.len() != 3 * n {
            return Err(AttachError::Protocol(format!(
                "{} descriptors for {n} cores",
                fds.len()
            )));
        }
        let mut cores = Vec::with_capacity(n);
        let mut it = fds.into_iter();
        for index in 0..n {
            let (Some(mem), Some(mine), Some(theirs)) = (it.next(), it.next(), it.next()) else {
                unreachable!("counted above");
            };
            let chan = Channel::open(mem)?;
            let (tx, rx) = chan.split(Side::App);
            cores.push(Core {
                index,
                ctl: ctl.clone(),
                chan,
                tx,
                rx,
                bell: mine,
                core_bell: theirs,
                listeners: BTreeMap::new(),
                udp: BTreeMap::new(),
                conns: HashMap::default(),
                deferred: VecDeque::new(),
                ready: Vec::new(),
                ended: Vec::new(),
                track_ready: false,
                rec: Vec::new(),
                tx_blocked: false,
                broken: None,
                connects: HashMap::default(),
                next_token: 1,
            });
        }
        Ok(Client { cores })
    }

    /// A handle that tells when the daemon has gone away (its end of the
    /// control socket closed).
    pub fn watch(&self) -> DaemonWatch {
        DaemonWatch(self.cores[0].ctl.clone())
    }

    /// The daemon's cores, one [`Core`] each (give each its own thread).
    pub fn into_cores(self) -> Vec<Core> {
        self.cores
    }
}

/// See [`Client::watch`].
#[derive(Clone)]
pub struct DaemonWatch(Arc<Mutex<Control>>);

impl DaemonWatch {
    /// Whether the daemon closed the control socket (exited, crashed). A
    /// core's channel then carries nothing more.
    pub fn gone(&self) -> bool {
        // A request in flight holds the lock: the daemon is answering.
        let Ok(c) = self.0.try_lock() else {
            return false;
        };
        let mut b = [0u8; 1];
        matches!(
            nix::sys::socket::recv(
                std::os::fd::AsRawFd::as_raw_fd(&c.sock),
                &mut b,
                nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ),
            Ok(0) | Err(nix::errno::Errno::ECONNRESET)
        )
    }
}

impl DaemonWatch {
    /// A new descriptor of the control socket, for an event loop to watch:
    /// it becomes readable with the end of the stream when the daemon goes
    /// away (then [`DaemonWatch::gone`] says so). Read nothing from it:
    /// the replies to requests arrive on the same socket.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        let c = self
            .0
            .lock()
            .map_err(|_| io::Error::other("control socket lock poisoned"))?;
        c.sock.as_fd().try_clone_to_owned()
    }
}

/// What an attached process knows of one of its connections
/// ([`Core::conn_status`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStatus {
    /// Bytes received and not read yet.
    pub unread: usize,
    /// The peer finished sending (after the bytes in `unread`).
    pub eof: bool,
    /// The daemon reported the connection gone (reset, or released).
    pub gone: bool,
    /// Whether this process shut its sending side down.
    pub shut: bool,
    /// Bytes that may be sent before more credit comes back.
    pub credit: usize,
}

struct ListenerState {
    queue: VecDeque<ConnId>,
    /// Waiting in the daemon (last [`proto::PENDING`]).
    remote_pending: usize,
    closed: bool,
}

/// A UDP socket's datagrams received and not read yet.
struct UdpState {
    queue: VecDeque<(SocketAddr, std::net::IpAddr, Vec<u8>)>,
    cap: usize,
    dropped: u64,
}

#[derive(Default)]
struct ConnState {
    inbuf: VecDeque<u8>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    /// Bytes the application read since the last [`proto::READ`].
    read: usize,
    eof: bool,
    gone: bool,
    shut: bool,
    credit: usize,
    ready: bool,
}

impl ConnState {
    /// A connection just accepted or connected, with the whole send credit.
    fn opened(peer: Option<SocketAddr>, local: Option<SocketAddr>) -> ConnState {
        ConnState {
            peer,
            local,
            credit: proto::SEND_CREDIT,
            ..ConnState::default()
        }
    }
}

/// Connection `id` of `conns` if it may still be written to: `NotFound`
/// once the daemon ended it, `Closed` once our side shut it down.
fn writable(
    conns: &mut HashMap<u64, ConnState, IdBuild>,
    id: u64,
) -> Result<&mut ConnState, ConnError> {
    let s = conns.get_mut(&id).ok_or(ConnError::NotFound)?;
    if s.gone {
        return Err(ConnError::NotFound);
    }
    if s.shut {
        return Err(ConnError::Closed);
    }
    Ok(s)
}

/// One daemon core as seen by the attached process: the socket API over
/// that core's shared-memory channel. Not thread-safe by design: one thread
/// per core.
pub struct Core {
    index: usize,
    ctl: Arc<Mutex<Control>>,
    chan: Channel,
    tx: RingTx,
    rx: RingRx,
    /// Our doorbell: the daemon writes it when we announced sleep.
    bell: OwnedFd,
    /// The core's doorbell.
    core_bell: OwnedFd,
    listeners: BTreeMap<u64, ListenerState>,
    udp: BTreeMap<u64, UdpState>,
    conns: HashMap<u64, ConnState, IdBuild>,
    /// Commands that found the ring full (close, abort, shutdown, taken,
    /// read), with their u32 payload if any.
    deferred: VecDeque<(u8, u64, Option<u32>)>,
    ready: Vec<ConnId>,
    /// Connections the daemon reported gone (while tracking), for
    /// `take_ended`.
    ended: Vec<(ConnId, ConnEnd)>,
    track_ready: bool,
    rec: Vec<u8>,
    tx_blocked: bool,
    broken: Option<RingError>,
    /// Outgoing connections asked for ([`Core::connect`]), by token.
    connects: HashMap<u64, Connect, IdBuild>,
    next_token: u64,
}

/// An outgoing connection asked for, by its token.
enum Connect {
    /// No answer yet.
    Waiting,
    /// Given up by the application: an answer that comes is undone (an
    /// established connection is aborted).
    Cancelled,
    /// Answered, not yet taken.
    Done(Result<ConnId, ConnectFailed>),
}

/// Why an outgoing connection failed (from the daemon's
/// [`proto::CONNECT_FAILED`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailed {
    /// The reason.
    pub why: proto::ConnectFailure,
    /// The daemon's words.
    pub message: String,
}

impl Core {
    /// Ask the daemon for a TCP connection to `remote` on this core (from
    /// `local`: our address of the family by default; port 0 or `None`: an
    /// ephemeral port). Returns the token [`Core::take_connect`] answers
    /// for, or `None` when the ring has no room now (try again after
    /// [`Core::flush`]).
    pub fn connect(&mut self, remote: SocketAddr, local: Option<SocketAddr>) -> Option<u64> {
        if !self.deferred.is_empty() {
            return None;
        }
        let token = self.next_token;
        let payload = [proto::encode_peer(Some(remote)), proto::encode_peer(local)];
        if !self
            .tx
            .push(proto::CONNECT, token, &[&payload[0], &payload[1]])
        {
            self.tx_blocked = true;
            return None;
        }
        self.next_token += 1;
        self.connects.insert(token, Connect::Waiting);
        Some(token)
    }

    /// The answer to connect `token`, once it came: the connection
    /// (established; the daemon starts reading it for us now, as for an
    /// accepted one) or why it failed. `None` while waiting (or for a token
    /// that is not waiting).
    pub fn take_connect(&mut self, token: u64) -> Option<Result<ConnId, ConnectFailed>> {
        if !matches!(self.connects.get(&token), Some(Connect::Done(_))) {
            return None;
        }
        let Some(Connect::Done(r)) = self.connects.remove(&token) else {
            return None;
        };
        if let Ok(c) = r {
            self.command_u32(
                proto::TAKEN,
                proto::conn_to_wire(c),
                Some(proto::RECV_WINDOW as u32),
            );
        }
        Some(r)
    }

    /// Give connect `token` up: the daemon stops opening it
    /// ([`proto::CANCEL_CONNECT`]: no SYN retransmitted until the connect
    /// timeout), and a connection it made anyway is aborted (now, or when
    /// the daemon's answer comes).
    pub fn cancel_connect(&mut self, token: u64) {
        match self.connects.remove(&token) {
            Some(Connect::Waiting) => {
                self.connects.insert(token, Connect::Cancelled);
                self.command(proto::CANCEL_CONNECT, token);
            }
            Some(Connect::Done(Ok(c))) => self.abort(c),
            _ => {}
        }
    }

    /// Connects waiting for the daemon's answer.
    pub fn connects_waiting(&self) -> usize {
        self.connects
            .values()
            .filter(|c| matches!(c, Connect::Waiting))
            .count()
    }

    fn connected(&mut self, id: u64, payload: &[u8]) {
        let (token, peer, local) = proto::decode_opened(payload);
        match self.connects.get_mut(&token) {
            Some(w @ Connect::Waiting) => {
                self.conns.insert(id, ConnState::opened(peer, local));
                *w = Connect::Done(Ok(proto::conn_from_wire(id)));
            }
            _ => {
                // Given up (or never asked for): not ours to keep.
                self.connects.remove(&token);
                self.command(proto::ABORT, id);
            }
        }
    }

    fn connect_failed(&mut self, token: u64, payload: &[u8]) {
        let failed = ConnectFailed {
            why: proto::ConnectFailure::from_code(payload.first().copied().unwrap_or(0)),
            message: String::from_utf8_lossy(payload.get(1..).unwrap_or(&[])).into_owned(),
        };
        match self.connects.get_mut(&token) {
            Some(w @ Connect::Waiting) => *w = Connect::Done(Err(failed)),
            _ => {
                self.connects.remove(&token);
            }
        }
    }

    /// The daemon core this channel serves (pin the thread beside it).
    pub fn index(&self) -> usize {
        self.index
    }

    /// What is known of connection `c` (None: not one of this core's).
    pub fn conn_status(&self, c: ConnId) -> Option<ConnStatus> {
        let s = self.conns.get(&proto::conn_to_wire(c))?;
        Some(ConnStatus {
            unread: s.inbuf.len(),
            eof: s.eof,
            gone: s.gone,
            shut: s.shut,
            credit: s.credit,
        })
    }

    /// Our address of connection `c`: the one the peer reached (None from
    /// a daemon that does not say).
    pub fn local_addr(&self, c: ConnId) -> Option<SocketAddr> {
        self.conns.get(&proto::conn_to_wire(c))?.local
    }

    /// [`TcpApi::send`] of several buffers as one record where they fit
    /// (a vectored write: a response's head and body in one `SEND`, one
    /// record for the daemon to stage instead of one per buffer). Returns
    /// the bytes taken, from the first buffer on.
    pub fn send_vectored(&mut self, c: ConnId, bufs: &[&[u8]]) -> Result<usize, ConnError> {
        let id = proto::conn_to_wire(c);
        let s = writable(&mut self.conns, id)?;
        let max = self.tx.max_payload();
        let (mut sent, mut i, mut off) = (0, 0, 0);
        let mut parts: [&[u8]; 8] = [&[]; 8];
        while i < bufs.len() && s.credit > 0 && self.deferred.is_empty() {
            let limit = s.credit.min(max);
            let (mut k, mut n, mut j, mut o) = (0, 0, i, off);
            while j < bufs.len() && n < limit && k < parts.len() {
                let b = &bufs[j][o..];
                let take = b.len().min(limit - n);
                if take > 0 {
                    parts[k] = &b[..take];
                    k += 1;
                    n += take;
                }
                if take == b.len() {
                    j += 1;
                    o = 0;
                } else {
                    o += take;
                }
            }
            if n == 0 {
                break;
            }
            if !self.tx.push(proto::SEND, id, &parts[..k]) {
                // The ring is short of room: what fits of the current
                // buffer alone.
                let rest = &bufs[i][off..];
                return Ok(sent + self.send(c, rest).unwrap_or(0));
            }
            s.credit -= n;
            sent += n;
            (i, off) = (j, o);
        }
        Ok(sent)
    }

    /// Whether records wait to be published ([`Core::flush`]).
    pub fn unpublished(&self) -> bool {
        self.tx.unpublished() || !self.deferred.is_empty()
    }

    /// Whether the daemon broke the ring protocol (the core is unusable).
    pub fn broken(&self) -> Option<&RingError> {
        self.broken.as_ref()
    }

    fn mark(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            if self.track_ready && !c.ready {
                c.ready = true;
                self.ready.push(proto::conn_from_wire(id));
            }
        }
    }

    /// Take what the daemon sent (accepted connections, data, closes,
    /// credit) into the local queues. Returns the records taken.
    pub fn poll_events(&mut self) -> usize {
        let mut n = 0;
        let mut rec = std::mem::take(&mut self.rec);
        loop {
            let r = match self.rx.pop(&mut rec) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    log::error!("core {}: {e}", self.index);
                    self.broken = Some(e);
                    break;
                }
            };
            n += 1;
            match r.kind {
                proto::ACCEPTED => self.accepted(r.id, &rec),
                proto::CONNECTED => self.connected(r.id, &rec),
                proto::CONNECT_FAILED => self.connect_failed(r.id, &rec),
                proto::DATA => {
                    if let Some(c) = self.conns.get_mut(&r.id) {
                        c.inbuf.extend(&rec[..]);
                        self.mark(r.id);
                    }
                }
                proto::EOF => {
                    if let Some(c) = self.conns.get_mut(&r.id) {
                        c.eof = true;
                        self.mark(r.id);
                    }
                }
                proto::GONE => {
                    if let Some(c) = self.conns.get_mut(&r.id) {
                        if !c.gone && self.track_ready {
                            // Reported in this turn; `take_ended` forgets it.
                            self.ended
                                .push((proto::conn_from_wire(r.id), ConnEnd::Reset));
                        }
                        c.gone = true;
                        self.mark(r.id);
                    }
                }
                proto::SENT => {
                    let v = le_u32(&rec);
                    if let Some(c) = self.conns.get_mut(&r.id) {
                        c.credit = (c.credit + v).min(proto::SEND_CREDIT);
                        self.mark(r.id);
                    }
                }
                proto::DGRAM => {
                    let from = rec.get(..proto::PEER_LEN).and_then(proto::decode_peer);
                    let to = rec
                        .get(proto::PEER_LEN..proto::PEER_LEN + proto::IP_LEN)
                        .and_then(proto::decode_ip);
                    if let (Some(u), Some(from), Some(to)) = (self.udp.get_mut(&r.id), from, to) {
                        if u.queue.len() >= u.cap {
                            u.dropped += 1;
                        } else {
                            let data = rec[proto::PEER_LEN + proto::IP_LEN..].to_vec();
                            u.queue.push_back((from, to, data));
                        }
                    }
                }
                proto::PENDING => {
                    let v = le_u32(&rec);
                    if let Some(l) = self.listeners.get_mut(&r.id) {
                        l.remote_pending = v;
                    }
                }
                _ => {}
            }
        }
        self.rx.release();
        self.rec = rec;
        n
    }

    fn accepted(&mut self, id: u64, payload: &[u8]) {
        let (lid, peer, local) = proto::decode_opened(payload);
        // Offered on a listener closed meanwhile: not ours to take. The
        // daemon gives it back to the group when it reads our close.
        let Some(l) = self.listeners.get_mut(&lid).filter(|l| !l.closed) else {
            return;
        };
        l.queue.push_back(proto::conn_from_wire(id));
        self.conns.insert(id, ConnState::opened(peer, local));
    }

    /// A command without payload; kept for later when the ring is full.
    fn command(&mut self, kind: u8, id: u64) {
        self.command_u32(kind, id, None);
    }

    /// A command with an optional u32 payload; kept for later (in order)
    /// when the ring is full.
    fn command_u32(&mut self, kind: u8, id: u64, v: Option<u32>) {
        if !self.deferred.is_empty() || !push_u32(&mut self.tx, kind, id, v) {
            self.deferred.push_back((kind, id, v));
            self.tx_blocked = true;
        }
    }

    /// Publish what was written and ring the core if it sleeps.
    pub fn flush(&mut self) {
        while let Some(&(kind, id, v)) = self.deferred.front() {
            if !push_u32(&mut self.tx, kind, id, v) {
                break;
            }
            self.deferred.pop_front();
        }
        if self.tx.unpublished() {
            self.tx.publish();
            if self.chan.peer_sleeping(Side::App) {
                let _ = nix::unistd::write(&self.core_bell, &1u64.to_ne_bytes());
            }
        }
    }

    /// Whether a write found the ring full since the last wait (come back
    /// soon: the daemon frees it without telling).
    pub fn tx_blocked(&self) -> bool {
        self.tx_blocked || !self.deferred.is_empty()
    }

    /// The descriptor that becomes readable when the daemon has something
    /// for a sleeping process (for an event loop: call
    /// [`Core::prepare_sleep`] before waiting on it, [`Core::woke`] after).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.bell.as_fd()
    }

    /// Announce a sleep; false when records already wait (do not sleep).
    pub fn prepare_sleep(&mut self) -> bool {
        self.flush();
        self.chan.prepare_sleep(Side::App, &self.rx)
    }

    /// The sleep is over: clear the doorbell.
    pub fn woke(&mut self) {
        self.chan.woke(Side::App);
        let mut b = [0u8; 8];
        let _ = nix::unistd::read(&self.bell, &mut b);
        self.tx_blocked = false;
    }

    /// The sleep is over without the doorbell having rung (the event loop
    /// woke for something else): as [`Core::woke`] without reading the
    /// doorbell, which stays readable if the daemon rang it meanwhile.
    pub fn woke_quiet(&mut self) {
        self.chan.woke(Side::App);
        self.tx_blocked = false;
    }

    /// Sleep until the daemon has something or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) {
        if !self.prepare_sleep() {
            return;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [nix::poll::PollFd::new(
            self.bell.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
        );
        self.woke();
    }

    /// A TCP listener or UDP socket on this core; the member id. The uid in
    /// `opts` is ignored: the daemon uses the kernel's.
    fn bind(
        &self,
        udp: bool,
        addr: BindAddr,
        port: u16,
        opts: &BindOptions,
    ) -> Result<u64, AttachError> {
        let bind = proto::Bind {
            core: self.index,
            addr: proto::addr_to_str(&addr),
            port,
            backlog: opts.backlog,
            reuseport: opts.reuseport,
        };
        let req = if udp {
            Request::UdpBind(bind)
        } else {
            Request::Listen(bind)
        };
        self.ctl(&req)?
            .listener
            .ok_or_else(|| AttachError::Protocol("bind without an id".into()))
    }

    fn ctl(&self, req: &Request) -> Result<Reply, AttachError> {
        self.ctl
            .lock()
            .map_err(|_| AttachError::Protocol("poisoned".into()))?
            .simple(req)
    }
}

impl TcpApi for Core {
    type Error = AttachError;

    fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, AttachError> {
        let lid = self.bind(false, addr, port, &opts)?;
        self.listeners.insert(
            lid,
            ListenerState {
                queue: VecDeque::new(),
                remote_pending: 0,
                closed: false,
            },
        );
        Ok(ListenerId(MemberId(lid)))
    }

    fn set_selector(&mut self, _id: MemberId, _sel: Arc<dyn Selector>) {
        // The daemon's selector decides for attached processes.
    }

    fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        let c = self.listeners.get_mut(&id.0 .0)?.queue.pop_front()?;
        // From now on the daemon reads the connection for us, at most the
        // receive window ahead of the application.
        self.command_u32(
            proto::TAKEN,
            proto::conn_to_wire(c),
            Some(proto::RECV_WINDOW as u32),
        );
        Some(c)
    }

    fn pending(&self, id: ListenerId) -> usize {
        self.listeners
            .get(&id.0 .0)
            .map_or(0, |l| l.queue.len() + l.remote_pending)
    }

    fn drain(&mut self, id: ListenerId) -> Result<(), AttachError> {
        self.ctl(&Request::Drain {
            core: self.index,
            listener: id.0 .0,
        })
        .map(|_| ())
    }

    fn close_listener(&mut self, id: ListenerId) -> Result<(), AttachError> {
        let lid = id.0 .0;
        let Some(l) = self.listeners.get_mut(&lid).filter(|l| !l.closed) else {
            return Err(AttachError::Refused("no such listener".into()));
        };
        // In the ring, after everything we took: the daemon gives what we
        // did not take (our queue, and what is still on its way) back to
        // the group, which migrates it to a remaining member.
        l.closed = true;
        for c in std::mem::take(&mut l.queue) {
            self.conns.remove(&proto::conn_to_wire(c));
        }
        self.command(proto::CLOSE_LISTENER, lid);
        self.flush();
        if self.listeners.values().filter(|l| l.closed).count() > 64 {
            self.listeners.retain(|_, l| !l.closed);
        }
        Ok(())
    }

    fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        let id = proto::conn_to_wire(c);
        let s = self.conns.get_mut(&id).ok_or(ConnError::NotFound)?;
        if !s.inbuf.is_empty() {
            let (a, b) = s.inbuf.as_slices();
            let n = a.len().min(buf.len());
            buf[..n].copy_from_slice(&a[..n]);
            let m = b.len().min(buf.len() - n);
            buf[n..n + m].copy_from_slice(&b[..m]);
            s.inbuf.drain(..n + m);
            // The window goes back in steps of a quarter: the daemon never
            // waits on less than three quarters of it.
            s.read += n + m;
            if s.read >= proto::READ_REPORT && !s.gone && !s.eof {
                let v = std::mem::take(&mut s.read).min(u32::MAX as usize) as u32;
                self.command_u32(proto::READ, id, Some(v));
            }
            return Ok(n + m);
        }
        if s.gone {
            return Err(ConnError::NotFound);
        }
        if s.eof {
            return Err(ConnError::Closed);
        }
        Ok(0)
    }

    fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let id = proto::conn_to_wire(c);
        let s = writable(&mut self.conns, id)?;
        let mut sent = 0;
        let max = self.tx.max_payload();
        while sent < data.len() && s.credit > 0 && self.deferred.is_empty() {
            let n = (data.len() - sent).min(s.credit).min(max);
            if !self.tx.push(proto::SEND, id, &[&data[sent..sent + n]]) {
                // Try a smaller piece once before giving up for this turn.
                let room = self.tx.room().min(n);
                if room == 0 || !self.tx.push(proto::SEND, id, &[&data[sent..sent + room]]) {
                    self.tx_blocked = true;
                    break;
                }
                sent += room;
                s.credit -= room;
                continue;
            }
            sent += n;
            s.credit -= n;
        }
        Ok(sent)
    }

    fn peer_addr(&mut self, c: ConnId) -> Option<SocketAddr> {
        self.conns.get(&proto::conn_to_wire(c))?.peer
    }

    fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError> {
        let id = proto::conn_to_wire(c);
        let s = self.conns.get_mut(&id).ok_or(ConnError::NotFound)?;
        if !s.shut {
            s.shut = true;
            self.command(proto::SHUTDOWN, id);
        }
        Ok(())
    }

    fn close(&mut self, c: ConnId) {
        let id = proto::conn_to_wire(c);
        if let Some(s) = self.conns.remove(&id) {
            if !s.gone {
                self.command(proto::CLOSE, id);
            }
        }
    }

    fn abort(&mut self, c: ConnId) {
        let id = proto::conn_to_wire(c);
        if let Some(s) = self.conns.remove(&id) {
            if !s.gone {
                self.command(proto::ABORT, id);
            }
        }
    }

    fn set_ready_tracking(&mut self, on: bool) {
        self.track_ready = on;
        if !on {
            self.ended.clear();
            for c in self.ready.drain(..) {
                if let Some(s) = self.conns.get_mut(&proto::conn_to_wire(c)) {
                    s.ready = false;
                }
            }
        }
    }

    fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        for c in self.ready.drain(..) {
            if let Some(s) = self.conns.get_mut(&proto::conn_to_wire(c)) {
                s.ready = false;
                out.push(c);
            }
        }
    }

    /// The connections the daemon reported gone (reset, or released by its
    /// engine), forgotten here: their ids name nothing any more.
    fn take_ended(&mut self, out: &mut Vec<(ConnId, ConnEnd)>) {
        for (c, why) in self.ended.drain(..) {
            if self.conns.remove(&proto::conn_to_wire(c)).is_some() {
                out.push((c, why));
            }
        }
    }

    fn connections(&self) -> usize {
        self.conns.len()
    }

    fn abort_all(&mut self) {
        let lids: Vec<u64> = self
            .listeners
            .iter()
            .filter(|(_, l)| !l.closed)
            .map(|(&k, _)| k)
            .collect();
        for l in lids {
            let _ = self.close_listener(ListenerId(MemberId(l)));
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.abort(proto::conn_from_wire(id));
        }
        self.flush();
    }

    fn report(&self) -> Option<StackReport> {
        None
    }
}

impl UdpApi for Core {
    type Error = AttachError;

    fn udp_bind(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<UdpId, AttachError> {
        let id = self.bind(true, addr, port, &opts)?;
        self.udp.insert(
            id,
            UdpState {
                queue: VecDeque::new(),
                cap: opts.backlog.max(1),
                dropped: 0,
            },
        );
        Ok(UdpId(MemberId(id)))
    }

    fn udp_close(&mut self, id: UdpId) -> Result<(), AttachError> {
        if self.udp.remove(&id.0 .0).is_none() {
            return Err(AttachError::Refused("no such UDP socket".into()));
        }
        self.command(proto::UDP_CLOSE, id.0 .0);
        Ok(())
    }

    fn recv_from(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, SocketAddr, std::net::IpAddr)>, UdpError> {
        let u = self.udp.get_mut(&id.0 .0).ok_or(UdpError::NotFound)?;
        let Some((from, to, data)) = u.queue.pop_front() else {
            return Ok(None);
        };
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(Some((n, from, to)))
    }

    fn send_to(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: SocketAddr,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), UdpError> {
        if !self.udp.contains_key(&id.0 .0) {
            return Err(UdpError::NotFound);
        }
        if data.len() > 65_507 {
            return Err(UdpError::TooLarge);
        }
        let (peer, src) = (proto::encode_peer(Some(to)), proto::encode_ip(from));
        if !self.deferred.is_empty() || !self.tx.push(proto::SENDTO, id.0 .0, &[&peer, &src, data])
        {
            self.tx_blocked = true;
            return Err(UdpError::BufferFull);
        }
        Ok(())
    }
}

/// A hasher for ids the daemon or this process chose (connections,
/// listeners): a multiply and a fold instead of SipHash, which showed in
/// the profile of a busy process (a lookup or two per read and write). Ids
/// are no input an attacker picks, so no flooding defence is needed.
#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        let x = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}

/// `HashMap`s keyed by ids use [`IdHasher`].
pub type IdBuild = std::hash::BuildHasherDefault<IdHasher>;

/// Push a record with an optional u32 (little-endian) payload.
fn push_u32(tx: &mut RingTx, kind: u8, id: u64, v: Option<u32>) -> bool {
    match v {
        Some(v) => tx.push(kind, id, &[&v.to_le_bytes()]),
        None => tx.push(kind, id, &[]),
    }
}

/// The u32 (little-endian) a record starts with; 0 if it is shorter.
fn le_u32(rec: &[u8]) -> usize {
    rec.get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// An application on one [`Core`], driven by [`run`] (the attached
/// counterpart of a worker's `App`).
pub trait Service {
    /// Accept, read, write. Returns when it needs to be called again even
    /// without events.
    fn poll(&mut self, core: &mut Core, now: Instant) -> Option<Instant>;
    /// Graceful stop (see `stack::worker::App::stopping`): true while busy.
    /// By default none: the service stops at once.
    fn stopping(&mut self, _core: &mut Core, _now: Instant) -> bool {
        false
    }
    /// Release everything. By default every connection is reset.
    fn shutdown(&mut self, core: &mut Core) {
        core.abort_all();
    }
}

/// Run `svc` on `core` until `stop` is set, then stop it gracefully within
/// `grace`.
pub fn run<S: Service>(core: &mut Core, svc: &mut S, stop: &AtomicBool, grace: Duration) {
    let mut deadline: Option<Instant> = None;
    let mut stopping: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            stopping = Some(now + grace);
        }
        let events = core.poll_events();
        if core.broken().is_some() {
            break;
        }
        if events > 0 || deadline.is_none_or(|d| d <= now) || core.tx_blocked() {
            deadline = svc.poll(core, now);
        }
        if let Some(end) = stopping {
            if !svc.stopping(core, now) || now >= end {
                break;
            }
        }
        core.flush();
        let mut timeout = Duration::from_millis(100);
        if let Some(d) = deadline {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        if core.tx_blocked() {
            timeout = timeout.min(Duration::from_millis(1));
        }
        if let Some(end) = stopping {
            timeout = timeout.min(end.saturating_duration_since(now));
        }
        if events > 0 {
            continue;
        }
        if !timeout.is_zero() {
            core.wait(timeout);
        }
        // After a wait the application looks again.
        deadline = Some(Instant::now());
    }
    svc.shutdown(core);
    core.flush();
}
