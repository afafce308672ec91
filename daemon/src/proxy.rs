//! The daemon's application on each worker: it serves the listeners of
//! attached processes on this core's engine, moving accepted connections and
//! their bytes between the engine's sockets and each process's shared-memory
//! channel for this core.
//!
//! One turn (`ProxyApp`'s [`App::poll`](stack::worker::App::poll)): control
//! messages from the control thread (attach, listen, drain, close, detach);
//! every process's commands (send, shutdown, close, abort), batched from its
//! ring; accepts on its listeners; the connections the engine ended (engine
//! `take_ended`: GONE to the process in the same turn), with activity (engine
//! `take_ready`) and those that found the process's ring full; send credit
//! returned; orphans past their deadline reset; each ring published once, the
//! process's doorbell rung only if it announced it sleeps.
//!
//! Back-pressure: a process may have at most [`proto::SEND_CREDIT`] bytes
//! sent and not yet taken by the connection's socket (credit comes back as
//! [`proto::SENT`]); received bytes are read from a socket only while the
//! process's ring has room and, for a process that announced a receive
//! window in [`proto::TAKEN`], while fewer than that many bytes are
//! delivered and not yet read ([`proto::READ`]): a process that stops
//! reading one connection closes that peer's window, and neither the
//! daemon nor the process grows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use attach::proto;
use nic::shm::{Channel, RingRx, RingTx, Side};
use nic::Rings;
use nix::sys::eventfd::EventFd;
use serde::Serialize;
use serde_json::{json, Value};
use stack::engine::Engine;
use stack::reuseport::{BindAddr, BindOptions, MemberId};
use stack::socket::{
    ConnEnd, ConnError, ConnId, ConnMap, ConnectError, ListenerId, TcpApi, UdpApi, UdpId,
};

use super::Hub;

/// Why a core refused a process's bind or drain (sent back to the process
/// as its reply's error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreRefusal {
    /// The process has no channel on this core.
    #[error("not attached on this core")]
    NotAttached,
    /// The listener is not one of the process's.
    #[error("no such listener of this process")]
    NoSuchListener,
    /// The stack refused (a reuseport rule, a port in use, ...).
    #[error("{0}")]
    Stack(String),
}

/// A request from the control thread to one core.
pub enum Ctl {
    /// A process attached: its channel for this core and its doorbell.
    Attach {
        /// Process id (daemon-wide).
        client: u64,
        /// The channel.
        chan: Channel,
        /// Its doorbell.
        bell: Arc<EventFd>,
    },
    /// Open a TCP listener or bind a UDP socket for the process (bind
    /// rules with its uid).
    Bind {
        /// Process.
        client: u64,
        /// UDP rather than TCP.
        udp: bool,
        /// Address.
        addr: BindAddr,
        /// Port.
        port: u16,
        /// Options, uid from SO_PEERCRED.
        opts: BindOptions,
        /// The answer: the member id.
        reply: mpsc::SyncSender<Result<u64, CoreRefusal>>,
    },
    /// Drain a listener of the process (closing is a ring record, ordered
    /// with the connections offered on the listener).
    Drain {
        /// Process.
        client: u64,
        /// Listener.
        listener: u64,
        /// The answer.
        reply: mpsc::SyncSender<Result<u64, CoreRefusal>>,
    },
    /// The process is gone (its control socket closed).
    Detach {
        /// Process.
        client: u64,
    },
}

struct Client {
    chan: Channel,
    tx: RingTx,
    rx: RingRx,
    bell: Arc<EventFd>,
    /// Records published this turn: ring the doorbell after the egress if
    /// the process sleeps ([`ProxyApp::ring_bells`]).
    bell_due: bool,
    /// Connections with bytes or a close the ring had no room for.
    blocked: Vec<ConnId>,
    /// Connects refused at once whose answer found the ring full: (token,
    /// payload of CONNECT_FAILED).
    refusals: VecDeque<(u64, Vec<u8>)>,
}

#[derive(Default)]
struct PConn {
    client: u64,
    /// The listener it was offered on.
    listener: u64,
    /// The process accepted it ([`proto::TAKEN`]): only then is it read.
    /// Until then it can go back to the group intact.
    taken: bool,
    /// Bytes the process sent that the socket has not taken yet.
    staged: Vec<u8>,
    /// Credit to return (bytes moved from `staged` to the socket).
    owed: usize,
    eof_sent: bool,
    shut: bool,
    close: bool,
    blocked: bool,
    /// Released by the engine; GONE not yet delivered.
    gone: bool,
    /// The receive window the process announced in TAKEN (None: as much
    /// as the ring takes).
    window: Option<usize>,
    /// Bytes delivered and not yet returned as read.
    unread: usize,
    /// An outgoing connection not yet reported to its process: the
    /// process's token (the answer, CONNECTED or CONNECT_FAILED, carries
    /// it).
    connecting: Option<u64>,
    /// Why the engine ended it (an outgoing connection's failure).
    ended: Option<ConnEnd>,
}

impl PConn {
    /// Stage bytes the process sent. `staging` counts the connections with
    /// staged bytes ([`ProxyApp::staging`]).
    fn stage(&mut self, bytes: &[u8], staging: &mut usize) {
        if self.staged.is_empty() && !bytes.is_empty() {
            *staging += 1;
        }
        self.staged.extend_from_slice(bytes);
    }

    /// Drop the first `n` staged bytes (taken by the socket, or all of them
    /// with `usize::MAX`).
    fn unstage(&mut self, n: usize, staging: &mut usize) {
        if self.staged.is_empty() {
            return;
        }
        self.staged.drain(..n.min(self.staged.len()));
        if self.staged.is_empty() {
            *staging -= 1;
        }
    }
}

/// A process's listener on this core.
struct LState {
    client: u64,
    /// The last pending count told to the process.
    told: u32,
    /// Its backlog: at most this many connections offered and not taken.
    backlog: usize,
    offered: usize,
}

/// What the proxy did (per core).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyCounters {
    /// Processes attached.
    pub attached: u64,
    /// Processes detached (exit, kill, a broken ring).
    pub detached: u64,
    /// Processes dropped for breaking the ring protocol.
    pub corrupt: u64,
    /// Listeners opened.
    pub listeners: u64,
    /// Connections handed to processes.
    pub accepted: u64,
    /// Connections reset because their process went away.
    pub reset_at_detach: u64,
    /// Connections offered to a process that closed the listener or died
    /// before taking them, given back to the group (they migrate).
    pub requeued: u64,
    /// Connections reset because the daemon stopped.
    pub reset_at_stop: u64,
    /// Connections reset for sending past their credit.
    pub over_credit: u64,
    /// Times a connection's bytes stayed in its socket because its process
    /// had its whole receive window unread (an application not reading).
    pub window_full: u64,
    /// Connections the engine ended (reset by the peer, timed out) while
    /// a process held them: GONE sent at once.
    pub ended: u64,
    /// Orphans (closed by a process that went away, bytes still staged)
    /// reset because their peer took nothing for `ORPHAN_TIMEOUT`.
    pub orphans_reset: u64,
    /// Bytes to processes.
    pub bytes_to_apps: u64,
    /// Bytes from processes.
    pub bytes_from_apps: u64,
    /// Outgoing connections processes asked for (CONNECT records).
    pub connects: u64,
    /// Of those, established and handed to the process.
    pub connected: u64,
    /// Of those, failed (refused at once, refused by the peer, timed out,
    /// unreachable).
    pub connect_failed: u64,
    /// Of those, given up by the process before the answer
    /// (CANCEL_CONNECT): aborted, answered no more.
    pub connects_cancelled: u64,
    /// Doorbells rung (a process slept).
    pub doorbells: u64,
    /// Records read from processes.
    pub commands: u64,
    /// Datagrams handed to processes.
    pub datagrams_to_apps: u64,
    /// Datagrams sent for processes.
    pub datagrams_from_apps: u64,
    /// Datagrams of processes the engine could not send (no frame, too
    /// large, not their socket).
    pub datagrams_refused: u64,
}

/// The u32 (little-endian) a record starts with; 0 if it is shorter.
fn le_u32(rec: &[u8]) -> usize {
    rec.get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Our address of connection `c`, as the engine has it.
fn local_addr<R: Rings>(engine: &mut Engine<R>, c: ConnId) -> Option<std::net::SocketAddr> {
    engine
        .local(c)
        .ok()
        .flatten()
        .map(|e| std::net::SocketAddr::new(stack::engine::to_std(e.addr), e.port))
}

/// What a CONNECT_FAILED record says to people, by reason.
fn connect_failure_text(why: proto::ConnectFailure) -> &'static str {
    use proto::ConnectFailure as F;
    match why {
        F::Refused => "connection refused by the peer",
        F::TimedOut => "connection timed out (no answer to the SYN)",
        F::Unreachable => "destination unreachable",
        F::AddrInUse => "local address in use",
        F::Invalid => "connect refused",
    }
}

/// Answer the connects refused at once, in order, while the ring has room.
fn flush_refusals(cl: &mut Client) {
    while let Some((token, payload)) = cl.refusals.front() {
        if !cl.tx.push(proto::CONNECT_FAILED, *token, &[payload]) {
            break;
        }
        cl.refusals.pop_front();
    }
}

/// The per-core proxy.
pub struct ProxyApp {
    core: usize,
    hub: Arc<Hub>,
    clients: BTreeMap<u64, Client>,
    listeners: HashMap<MemberId, LState>,
    /// UDP socket → process.
    udp: HashMap<MemberId, u64>,
    conns: ConnMap<PConn>,
    /// How many of `conns` have staged bytes: a turn with any is busy (an
    /// acknowledgement will let them move), known without visiting every
    /// connection. Kept by [`PConn::stage`], [`PConn::unstage`] and
    /// [`ProxyApp::remove_conn`], the only places `staged` changes or a
    /// connection leaves `conns`; debug builds check it against the
    /// connections at the end of every turn.
    staging: usize,
    ready: Vec<ConnId>,
    owed: Vec<ConnId>,
    /// Per-turn scratch lists, kept to spare an allocation a turn.
    owed_spare: Vec<ConnId>,
    retry: Vec<ConnId>,
    touched: Vec<ConnId>,
    client_ids: Vec<u64>,
    ended: Vec<(ConnId, ConnEnd)>,
    /// Orphans in the order they were left, with their deadline.
    orphans: VecDeque<(Instant, ConnId)>,
    /// The time of the current turn.
    now: Instant,
    scratch: Vec<u8>,
    rec: Vec<u8>,
    counters: ProxyCounters,
}

/// Bytes the proxy reads from a socket at once: the most of a datagram it
/// delivers.
const SCRATCH: usize = 64 * 1024;

/// Payload of the largest datagram record (sender, our address, the data):
/// a datagram is read from the engine only when the ring has room for this
/// much, so a ring whose records cannot carry it never delivers one.
pub const DGRAM_RECORD: usize = proto::PEER_LEN + proto::IP_LEN + SCRATCH;

/// The client id of connections whose process is gone but whose close is
/// still finishing (process ids start at 1).
const ORPHAN: u64 = 0;

/// An orphan whose peer takes nothing of its last bytes for this long is
/// reset (the engine's own close timeout starts only once the socket has
/// taken them).
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);

impl ProxyApp {
    /// The proxy of core `core`.
    pub fn new<R: Rings>(core: usize, hub: Arc<Hub>, engine: &mut Engine<R>) -> Self {
        engine.set_ready_tracking(true);
        ProxyApp {
            core,
            hub,
            clients: BTreeMap::new(),
            listeners: HashMap::new(),
            udp: HashMap::new(),
            conns: Default::default(),
            staging: 0,
            ready: Vec::new(),
            owed: Vec::new(),
            owed_spare: Vec::new(),
            retry: Vec::new(),
            touched: Vec::new(),
            client_ids: Vec::new(),
            ended: Vec::new(),
            orphans: VecDeque::new(),
            now: Instant::now(),
            scratch: vec![0; SCRATCH],
            rec: Vec::new(),
            counters: ProxyCounters::default(),
        }
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }

    fn control<R: Rings>(&mut self, engine: &mut Engine<R>) {
        while let Some(ctl) = self.hub.take(self.core) {
            match ctl {
                Ctl::Attach { client, chan, bell } => {
                    let (tx, rx) = chan.split(Side::Daemon);
                    self.clients.insert(
                        client,
                        Client {
                            chan,
                            tx,
                            rx,
                            bell,
                            bell_due: false,
                            blocked: Vec::new(),
                            refusals: VecDeque::new(),
                        },
                    );
                    self.counters.attached += 1;
                }
                Ctl::Bind {
                    client,
                    udp,
                    addr,
                    port,
                    opts,
                    reply,
                } => {
                    let r = self.bind(engine, client, udp, addr, port, opts);
                    let _ = reply.send(r);
                }
                Ctl::Drain {
                    client,
                    listener,
                    reply,
                } => {
                    let id = MemberId(listener);
                    let r = match self.listeners.get(&id) {
                        Some(l) if l.client == client => engine
                            .drain(ListenerId(id))
                            .map(|()| listener)
                            .map_err(|e| CoreRefusal::Stack(e.to_string())),
                        _ => Err(CoreRefusal::NoSuchListener),
                    };
                    let _ = reply.send(r);
                }
                Ctl::Detach { client } => {
                    // What the process wrote before it went (its last
                    // responses, its closes) is still in its ring: act on
                    // it first, or a connection it finished is reset.
                    for _ in 0..64 {
                        if !self.clients.contains_key(&client) {
                            break;
                        }
                        let before = self.counters.commands;
                        self.commands(engine, client);
                        if self.counters.commands == before {
                            break;
                        }
                    }
                    self.detach(engine, client)
                }
            }
        }
    }

    /// A member of a group for the process, with the daemon's selector.
    fn bind<R: Rings>(
        &mut self,
        engine: &mut Engine<R>,
        client: u64,
        udp: bool,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<u64, CoreRefusal> {
        if !self.clients.contains_key(&client) {
            return Err(CoreRefusal::NotAttached);
        }
        let backlog = opts.backlog;
        let id = if udp {
            UdpApi::udp_bind(engine, addr, port, opts).map(|u| u.member())
        } else {
            TcpApi::tcp_listen(engine, addr, port, opts).map(|l| l.member())
        }
        .map_err(|e| CoreRefusal::Stack(e.to_string()))?;
        let _ = engine
            .shared()
            .registry
            .set_selector(id, self.hub.selector.clone());
        if udp {
            self.udp.insert(id, client);
        } else {
            self.listeners.insert(
                id,
                LState {
                    client,
                    told: 0,
                    backlog,
                    offered: 0,
                },
            );
            self.counters.listeners += 1;
        }
        Ok(id.0)
    }

    /// The process is gone: its listeners leave their groups (what waits on
    /// them, and what was offered to the process and not taken, migrates to
    /// the remaining members), its connections are reset, its channel is
    /// unmapped.
    fn detach<R: Rings>(&mut self, engine: &mut Engine<R>, client: u64) {
        let Some(_c) = self.clients.remove(&client) else {
            return;
        };
        self.counters.detached += 1;
        let mine: Vec<u64> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.client == client)
            .map(|(&id, _)| id.0)
            .collect();
        // All of them out of selection first, so nothing given back comes
        // to another of them.
        for &l in &mine {
            let _ = engine.drain(ListenerId(MemberId(l)));
        }
        for l in mine {
            self.close_listener_of(engine, client, l);
        }
        let udp: Vec<MemberId> = self
            .udp
            .iter()
            .filter(|(_, &o)| o == client)
            .map(|(&m, _)| m)
            .collect();
        for m in udp {
            self.udp.remove(&m);
            let _ = engine.udp_close(UdpId(m));
        }
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, p)| p.client == client)
            .map(|(&c, _)| c)
            .collect();
        for c in conns {
            let Some(p) = self.conns.get_mut(&c) else {
                continue;
            };
            if p.close && !p.gone {
                // Closed by the process with bytes still staged: finish the
                // close as an orphan (no process, no ring), within a
                // deadline.
                p.client = ORPHAN;
                self.orphans.push_back((self.now + ORPHAN_TIMEOUT, c));
                continue;
            }
            let gone = p.gone;
            self.remove_conn(c);
            if !gone {
                engine.abort(c);
                self.counters.reset_at_detach += 1;
            }
        }
    }

    /// Close a listener of `client`: the connections offered on it and not
    /// taken go back to the group first (Linux 5.14's migration, across
    /// processes), then the engine closes it (what is still handshaking or
    /// queued there migrates too).
    fn close_listener_of<R: Rings>(&mut self, engine: &mut Engine<R>, client: u64, lid: u64) {
        let id = MemberId(lid);
        if self.listeners.get(&id).is_none_or(|l| l.client != client) {
            return;
        }
        let _ = engine.drain(ListenerId(id));
        let offered: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, p)| p.client == client && p.listener == lid && !p.taken && !p.gone)
            .map(|(&c, _)| c)
            .collect();
        for c in offered {
            self.remove_conn(c);
            if engine.requeue(c).is_ok() {
                self.counters.requeued += 1;
            }
        }
        self.listeners.remove(&id);
        let _ = engine.close_listener(ListenerId(id));
    }

    /// Read one process's commands.
    fn commands<R: Rings>(&mut self, engine: &mut Engine<R>, client: u64) {
        let mut rec = std::mem::take(&mut self.rec);
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        let mut broken = false;
        for _ in 0..4096 {
            let Some(cl) = self.clients.get_mut(&client) else {
                break;
            };
            let r = match cl.rx.pop(&mut rec) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("core {}: process {client}: {e}: detached", self.core);
                    broken = true;
                    break;
                }
            };
            self.counters.commands += 1;
            match r.kind {
                proto::CLOSE_LISTENER => {
                    // Offered connections not taken so far go back to the
                    // group.
                    self.close_listener_of(engine, client, r.id);
                    continue;
                }
                proto::SENDTO => {
                    self.send_datagram(engine, client, r.id, &rec);
                    continue;
                }
                proto::CONNECT => {
                    self.connect(engine, client, r.id, &rec);
                    continue;
                }
                proto::CANCEL_CONNECT => {
                    self.cancel_connect(engine, client, r.id);
                    continue;
                }
                proto::UDP_CLOSE => {
                    let m = MemberId(r.id);
                    if self.udp.get(&m) == Some(&client) {
                        self.udp.remove(&m);
                        let _ = engine.udp_close(UdpId(m));
                    }
                    continue;
                }
                _ => {}
            }
            let c = proto::conn_from_wire(r.id);
            let Some(p) = self.conns.get_mut(&c).filter(|p| p.client == client) else {
                continue; // gone meanwhile, or not this process's
            };
            match r.kind {
                proto::SEND => {
                    if p.staged.len() + rec.len() > proto::SEND_CREDIT {
                        self.counters.over_credit += 1;
                        engine.abort(c);
                        p.gone = true;
                        p.unstage(usize::MAX, &mut self.staging);
                    } else {
                        self.counters.bytes_from_apps += rec.len() as u64;
                        p.stage(&rec, &mut self.staging);
                    }
                }
                proto::TAKEN if !p.taken => {
                    p.taken = true;
                    p.window = (rec.len() >= 4).then(|| le_u32(&rec).max(1));
                    if let Some(l) = self.listeners.get_mut(&MemberId(p.listener)) {
                        l.offered = l.offered.saturating_sub(1);
                    }
                }
                proto::READ => p.unread = p.unread.saturating_sub(le_u32(&rec)),
                proto::SHUTDOWN => p.shut = true,
                proto::CLOSE => p.close = true,
                proto::ABORT => {
                    engine.abort(c);
                    self.forget(c);
                    continue;
                }
                _ => {}
            }
            touched.push(c);
        }
        if let Some(cl) = self.clients.get_mut(&client) {
            cl.rx.release();
        }
        self.rec = rec;
        if broken {
            self.counters.corrupt += 1;
            self.detach(engine, client);
        } else {
            for &c in &touched {
                self.pump(engine, c);
            }
        }
        self.touched = touched;
    }

    /// Move what can move for one connection: staged bytes into the socket,
    /// a pending shutdown or close, received bytes and the end of stream
    /// into the process's ring.
    fn pump<R: Rings>(&mut self, engine: &mut Engine<R>, c: ConnId) {
        let Some(p) = self.conns.get_mut(&c) else {
            return;
        };
        if !p.gone {
            if !p.staged.is_empty() {
                match engine.send(c, &p.staged) {
                    Ok(n) => {
                        p.unstage(n, &mut self.staging);
                        if n > 0 {
                            if p.owed == 0 {
                                self.owed.push(c);
                            }
                            p.owed += n;
                        }
                    }
                    Err(_) => p.unstage(usize::MAX, &mut self.staging),
                }
            }
            if p.staged.is_empty() {
                if p.close {
                    engine.close(c);
                    self.forget(c);
                    return;
                }
                if p.shut {
                    p.shut = false;
                    let _ = engine.shutdown(c);
                }
            }
        }
        // An orphan (its process is gone, its close waits for the socket to
        // take the last bytes) has no ring to read into.
        let Some(cl) = self.clients.get_mut(&p.client) else {
            if p.gone {
                self.forget(c);
            }
            return;
        };
        if let Some(token) = p.connecting {
            // An outgoing connection: its process learns how it went.
            let pushed = if p.gone {
                let why = match p.ended {
                    Some(ConnEnd::TimedOut) => proto::ConnectFailure::TimedOut,
                    Some(ConnEnd::Unreachable) => proto::ConnectFailure::Unreachable,
                    _ => proto::ConnectFailure::Refused,
                };
                let msg = connect_failure_text(why);
                cl.tx.push(
                    proto::CONNECT_FAILED,
                    token,
                    &[&[why.code()], msg.as_bytes()],
                )
            } else if engine.is_connecting(c) {
                return;
            } else {
                let peer = proto::encode_peer(TcpApi::peer_addr(engine, c));
                let local = proto::encode_peer(local_addr(engine, c));
                cl.tx.push(
                    proto::CONNECTED,
                    proto::conn_to_wire(c),
                    &[&token.to_le_bytes(), &peer, &local],
                )
            };
            if !pushed {
                if !p.blocked {
                    p.blocked = true;
                    cl.blocked.push(c);
                }
                return;
            }
            p.connecting = None;
            if p.gone {
                self.counters.connect_failed += 1;
                self.forget(c);
            } else {
                self.counters.connected += 1;
            }
            return;
        }
        if p.gone {
            if cl.tx.push(proto::GONE, proto::conn_to_wire(c), &[]) {
                self.forget(c);
            } else if !p.blocked {
                p.blocked = true;
                cl.blocked.push(c);
            }
            return;
        }
        if !p.taken {
            // Offered, not accepted yet: its bytes stay in the socket.
            return;
        }
        let id = proto::conn_to_wire(c);
        loop {
            let room = cl.tx.room().min(self.scratch.len());
            if room == 0 {
                if !p.blocked {
                    p.blocked = true;
                    cl.blocked.push(c);
                }
                return;
            }
            // The process's window: when it is used up, the bytes stay in
            // the socket (its window closes) until a READ comes back.
            let room = match p.window {
                Some(w) => room.min(w.saturating_sub(p.unread)),
                None => room,
            };
            if room == 0 {
                self.counters.window_full += 1;
                return;
            }
            match engine.recv(c, &mut self.scratch[..room]) {
                Ok(0) => return,
                Ok(n) => {
                    let pushed = cl.tx.push(proto::DATA, id, &[&self.scratch[..n]]);
                    debug_assert!(pushed, "room() promised space");
                    p.unread += n;
                    self.counters.bytes_to_apps += n as u64;
                }
                Err(ConnError::Closed) => {
                    if !p.eof_sent {
                        if cl.tx.push(proto::EOF, id, &[]) {
                            p.eof_sent = true;
                        } else if !p.blocked {
                            p.blocked = true;
                            cl.blocked.push(c);
                        }
                    }
                    return;
                }
                Err(ConnError::NotFound) => {
                    p.gone = true;
                    if cl.tx.push(proto::GONE, id, &[]) {
                        self.forget(c);
                    } else if !p.blocked {
                        p.blocked = true;
                        cl.blocked.push(c);
                    }
                    return;
                }
            }
        }
    }

    fn accept_all<R: Rings>(&mut self, engine: &mut Engine<R>) {
        for (&lid, l) in self.listeners.iter_mut() {
            let client = l.client;
            let Some(cl) = self.clients.get_mut(&client) else {
                continue;
            };
            // No more on offer than the backlog: the rest waits in the
            // engine's queue, which drops SYNs once full.
            while l.offered < l.backlog && cl.tx.room() >= 8 + 2 * proto::PEER_LEN {
                let Some(c) = engine.accept(ListenerId(lid)) else {
                    break;
                };
                let peer = proto::encode_peer(TcpApi::peer_addr(engine, c));
                let local = local_addr(engine, c);
                let pushed = cl.tx.push(
                    proto::ACCEPTED,
                    proto::conn_to_wire(c),
                    &[&lid.0.to_le_bytes(), &peer, &proto::encode_peer(local)],
                );
                debug_assert!(pushed);
                self.counters.accepted += 1;
                l.offered += 1;
                let fresh = PConn {
                    client,
                    listener: lid.0,
                    ..PConn::default()
                };
                if let Some(old) = self.conns.insert(c, fresh) {
                    // Not expected (ids are not reused while held); the
                    // count stays true if it happens.
                    if !old.staged.is_empty() {
                        self.staging -= 1;
                    }
                }
            }
            let pending = engine.pending(ListenerId(lid)) as u32;
            if pending != l.told && cl.tx.push(proto::PENDING, lid.0, &[&pending.to_le_bytes()]) {
                l.told = pending;
            }
        }
    }

    /// A CONNECT record of `client` (token `token`): the engine opens the
    /// connection, the answer comes once it is established or has failed
    /// (`pump`); a request refused at once is answered at once.
    fn connect<R: Rings>(&mut self, engine: &mut Engine<R>, client: u64, token: u64, rec: &[u8]) {
        use proto::ConnectFailure as F;
        self.counters.connects += 1;
        let remote = rec.get(..proto::PEER_LEN).and_then(proto::decode_peer);
        let local = rec
            .get(proto::PEER_LEN..2 * proto::PEER_LEN)
            .and_then(proto::decode_peer);
        let result = match remote {
            None => Err((F::Invalid, "malformed CONNECT record".to_string())),
            Some(_) if local.is_some_and(|l| proto::PRIVILEGED_PORTS.contains(&l.port())) => Err((
                F::Invalid,
                "a local port below 1024 is not offered to attached processes".to_string(),
            )),
            Some(remote) => engine.tcp_connect(remote, local).map_err(|e| {
                let why = match e {
                    ConnectError::NoPort(_) | ConnectError::InUse(_) => F::AddrInUse,
                    _ => F::Invalid,
                };
                (why, e.to_string())
            }),
        };
        match result {
            Ok(c) => {
                let fresh = PConn {
                    client,
                    listener: stack::engine::OUTGOING.0,
                    connecting: Some(token),
                    ..PConn::default()
                };
                if let Some(old) = self.conns.insert(c, fresh) {
                    if !old.staged.is_empty() {
                        self.staging -= 1;
                    }
                }
            }
            Err((why, msg)) => {
                self.counters.connect_failed += 1;
                if let Some(cl) = self.clients.get_mut(&client) {
                    let mut payload = vec![why.code()];
                    payload.extend_from_slice(msg.as_bytes());
                    cl.refusals.push_back((token, payload));
                    flush_refusals(cl);
                }
            }
        }
    }

    /// A CANCEL_CONNECT record of `client`: its connect `token`, if still
    /// opening, is aborted and answered no more. (A scan of the
    /// connections: cancels are rare.)
    fn cancel_connect<R: Rings>(&mut self, engine: &mut Engine<R>, client: u64, token: u64) {
        let found = self
            .conns
            .iter()
            .find(|(_, p)| p.client == client && p.connecting == Some(token))
            .map(|(c, _)| *c);
        if let Some(c) = found {
            // Opening still, or established with its answer not yet
            // written (a full ring): either way no one will take it.
            engine.abort(c);
            self.counters.connects_cancelled += 1;
            self.forget(c);
        }
    }

    fn send_datagram<R: Rings>(
        &mut self,
        engine: &mut Engine<R>,
        client: u64,
        id: u64,
        rec: &[u8],
    ) {
        let m = MemberId(id);
        let head = proto::PEER_LEN + proto::IP_LEN;
        let to = rec.get(..proto::PEER_LEN).and_then(proto::decode_peer);
        let from = rec.get(proto::PEER_LEN..head).and_then(proto::decode_ip);
        let sent = match (self.udp.get(&m), to, rec.get(head..)) {
            (Some(&owner), Some(to), Some(data)) if owner == client => {
                engine.send_to(UdpId(m), data, to, from).is_ok()
            }
            _ => false,
        };
        if sent {
            self.counters.datagrams_from_apps += 1;
        } else {
            self.counters.datagrams_refused += 1;
        }
    }

    /// Datagrams waiting in the engine, into their process's ring while it
    /// has room (the rest waits in the engine's bounded queue).
    fn udp_all<R: Rings>(&mut self, engine: &mut Engine<R>) {
        for (&m, &client) in &self.udp {
            let Some(cl) = self.clients.get_mut(&client) else {
                continue;
            };
            while cl.tx.room() >= DGRAM_RECORD {
                let Ok(Some((n, from, to))) = engine.recv_from(UdpId(m), &mut self.scratch) else {
                    break;
                };
                let pushed = cl.tx.push(
                    proto::DGRAM,
                    m.0,
                    &[
                        &proto::encode_peer(Some(from)),
                        &proto::encode_ip(Some(to)),
                        &self.scratch[..n],
                    ],
                );
                debug_assert!(pushed);
                self.counters.datagrams_to_apps += 1;
            }
        }
    }

    /// Drop the proxy's record of a connection (one offered and not taken
    /// frees a place in its listener's backlog).
    fn forget(&mut self, c: ConnId) {
        if let Some(p) = self.remove_conn(c) {
            if !p.taken {
                if let Some(l) = self.listeners.get_mut(&MemberId(p.listener)) {
                    l.offered = l.offered.saturating_sub(1);
                }
            }
        }
    }

    /// Take a connection out of `conns`, its staged bytes (if any) out of
    /// the count.
    fn remove_conn(&mut self, c: ConnId) -> Option<PConn> {
        let p = self.conns.remove(&c)?;
        if !p.staged.is_empty() {
            self.staging -= 1;
        }
        Some(p)
    }

    /// Connections the engine ended (the peer's reset, a timeout): their
    /// staged bytes dropped, their process told (GONE) in this turn. The
    /// engine reports every accepted connection it releases on its own, so
    /// no sweep over the connections looks for them.
    fn drain_ended<R: Rings>(&mut self, engine: &mut Engine<R>) {
        let mut ended = std::mem::take(&mut self.ended);
        ended.clear();
        engine.take_ended(&mut ended);
        for &(c, why) in &ended {
            let Some(p) = self.conns.get_mut(&c) else {
                continue;
            };
            self.counters.ended += 1;
            p.gone = true;
            p.ended = Some(why);
            p.unstage(usize::MAX, &mut self.staging);
            self.pump(engine, c);
        }
        self.ended = ended;
    }

    /// Reset the orphans past their deadline (a peer that takes nothing
    /// would keep one, and the turn busy, for ever).
    fn expire_orphans<R: Rings>(&mut self, engine: &mut Engine<R>, now: Instant) {
        while let Some(&(at, c)) = self.orphans.front() {
            if at > now {
                break;
            }
            self.orphans.pop_front();
            if self.conns.get(&c).is_some_and(|p| p.client == ORPHAN) {
                self.counters.orphans_reset += 1;
                engine.abort(c);
                self.forget(c);
            }
        }
    }

    fn publish(&mut self) {
        for cl in self.clients.values_mut() {
            if cl.tx.unpublished() {
                cl.tx.publish();
                cl.bell_due = true;
            }
        }
    }

    /// The doorbells of the processes that sleep and got records this turn,
    /// rung after the worker's egress (`App::flush`): a process woken
    /// during `poll` would take the shared core before the replies it sent
    /// last turn leave. The sleeping flag is read after the publish, so a
    /// process that announced its sleep after that saw the records.
    fn ring_bells(&mut self) {
        for cl in self.clients.values_mut() {
            if std::mem::take(&mut cl.bell_due) && cl.chan.peer_sleeping(Side::Daemon) {
                let _ = cl.bell.write(1);
                self.counters.doorbells += 1;
            }
        }
    }
}

impl<R: Rings> stack::worker::App<R> for ProxyApp {
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant> {
        self.now = now;
        self.control(engine);
        let mut ids = std::mem::take(&mut self.client_ids);
        ids.clear();
        ids.extend(self.clients.keys().copied());
        for &id in &ids {
            self.commands(engine, id);
        }
        self.client_ids = ids;
        self.accept_all(engine);
        self.udp_all(engine);
        self.drain_ended(engine);
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        engine.take_ready(&mut ready);
        for &c in &ready {
            self.pump(engine, c);
        }
        self.ready = ready;
        let mut retry = std::mem::take(&mut self.retry);
        retry.clear();
        for cl in self.clients.values_mut() {
            retry.append(&mut cl.blocked);
            flush_refusals(cl);
        }
        for &c in &retry {
            if let Some(p) = self.conns.get_mut(&c) {
                p.blocked = false;
            }
        }
        for &c in &retry {
            self.pump(engine, c);
        }
        self.retry = retry;
        // Staged bytes wait for room in the socket: an acknowledgement
        // makes the connection ready again. Credit goes back now.
        let mut owed = std::mem::replace(&mut self.owed, std::mem::take(&mut self.owed_spare));
        for &c in &owed {
            let Some(p) = self.conns.get_mut(&c) else {
                continue;
            };
            let Some(cl) = self.clients.get_mut(&p.client) else {
                continue;
            };
            let n = p.owed.min(u32::MAX as usize) as u32;
            if cl
                .tx
                .push(proto::SENT, proto::conn_to_wire(c), &[&n.to_le_bytes()])
            {
                p.owed = 0;
            } else {
                self.owed.push(c);
            }
        }
        owed.clear();
        self.owed_spare = owed;
        self.expire_orphans(engine, now);
        self.publish();
        debug_assert_eq!(
            self.staging,
            self.conns.values().filter(|p| !p.staged.is_empty()).count(),
            "connections with staged bytes"
        );
        let busy = !self.owed.is_empty()
            || self
                .clients
                .values()
                .any(|c| !c.blocked.is_empty() || !c.refusals.is_empty())
            || self.staging > 0;
        if busy {
            return Some(now + Duration::from_millis(1));
        }
        // Nothing to look at before a packet, a command or an orphan's
        // deadline.
        self.orphans.front().map(|&(at, _)| at)
    }

    fn shutdown(&mut self, engine: &mut Engine<R>) {
        self.counters.reset_at_stop += self.conns.len() as u64;
        self.conns.clear();
        self.staging = 0;
        engine.abort_all();
    }

    fn prepare_sleep(&mut self) -> bool {
        if self.hub.has_work(self.core) {
            return false;
        }
        let all = self
            .clients
            .values()
            .all(|cl| cl.chan.prepare_sleep(Side::Daemon, &cl.rx));
        if !all {
            // Records wait somewhere: clear the flags set so far (clearing
            // one never set is harmless) and stay awake.
            for cl in self.clients.values() {
                cl.chan.woke(Side::Daemon);
            }
            return false;
        }
        // Control messages posted after the check above ring the doorbell.
        !self.hub.has_work(self.core)
    }

    fn woke(&mut self) {
        for cl in self.clients.values() {
            cl.chan.woke(Side::Daemon);
        }
    }

    fn flush(&mut self) {
        self.ring_bells();
    }
}

/// Pending control messages of one core. The worker looks every turn, and
/// the inbox is nearly always empty: `waiting` answers that without the
/// lock. It is set with each push and cleared when a pop empties the
/// queue, both under the lock, so it is true whenever a message waits; a
/// pop that runs before a push's flag is seen leaves the message for the
/// next turn, which the push's doorbell (`Hub::post`) brings.
#[derive(Default)]
pub struct Inbox {
    queue: std::sync::Mutex<VecDeque<Ctl>>,
    waiting: std::sync::atomic::AtomicBool,
}

impl Inbox {
    /// Queue a message.
    pub fn push(&self, ctl: Ctl) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(ctl);
            self.waiting.store(true, Ordering::SeqCst);
        }
    }

    /// Take one message (none waiting: one atomic load, no lock).
    pub fn pop(&self) -> Option<Ctl> {
        if !self.waiting() {
            return None;
        }
        let mut q = self.queue.lock().ok()?;
        let m = q.pop_front();
        if q.is_empty() {
            self.waiting.store(false, Ordering::SeqCst);
        }
        m
    }

    /// Whether messages wait.
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;
