//! One stack per core: the demux (L2, header parse, flow table, reuseport
//! selection, handoff to other cores), a smoltcp interface in `Medium::Ip`
//! for TCP and ICMP, native UDP datagram queues, the listeners with the
//! backlog the stack owns, and the socket API applications on the same core
//! use.
//!
//! # Example
//!
//! Listeners share a port when every one sets reuseport with the same uid;
//! an application's loop on its core is ingress, its own work, egress. (Here
//! over the in-memory pipe; `nic::xsk::XskRings` is the real NIC queue.)
//!
//! ```
//! use nic::mem::{MemConfig, MemRings};
//! use stack::engine::{Engine, EngineConfig};
//! use stack::reuseport::{BindAddr, BindError, BindOptions, FlowHasher};
//! use stack::shared::Shared;
//!
//! let (nic_queue, _wire_peer) = MemRings::pair(MemConfig::default());
//! let shared = Shared::new(1, FlowHasher::random()).unwrap();
//! let cfg = EngineConfig::new(
//!     [2, 0, 0, 0, 0, 1],
//!     Some(("198.18.0.1".parse().unwrap(), 24)),
//!     None,
//! );
//! let mut engine = Engine::new(nic_queue, cfg, shared.clone(), 0, 0);
//!
//! let opts = BindOptions::new(1000).with_reuseport(true).with_backlog(128);
//! let a = engine.tcp_listen(BindAddr::Any4, 80, opts.clone()).unwrap();
//! let b = engine.tcp_listen(BindAddr::Any4, 80, opts).unwrap(); // joins a's group
//!
//! // Another uid cannot join: a refused port hijack.
//! let other = BindOptions::new(1001).with_reuseport(true);
//! let err = engine.tcp_listen(BindAddr::Any4, 80, other).unwrap_err();
//! assert!(matches!(err, BindError::PortHijack { .. }));
//!
//! // UDP: a socket with its own datagram queue.
//! let dns = engine
//!     .udp_bind(BindAddr::Any4, 53, BindOptions::new(1000).with_backlog(1024))
//!     .unwrap();
//!
//! // One turn of the worker loop.
//! engine.ingress();
//! for l in [a, b] {
//!     while let Some(conn) = engine.accept(l) {
//!         let mut buf = [0u8; 1024];
//!         if let Ok(n) = engine.recv(conn, &mut buf) {
//!             let _ = engine.send(conn, &buf[..n]);
//!         }
//!         engine.close(conn);
//!     }
//! }
//! let mut buf = [0u8; 512];
//! while let Ok(Some((n, from, to))) = engine.recv_from(dns, &mut buf) {
//!     let _ = engine.send_to(dns, &buf[..n], from, Some(to));
//! }
//! engine.egress();
//!
//! // Stop taking new flows on `a`, then close it: what it had not accepted
//! // yet migrates to `b`.
//! engine.drain(a).unwrap();
//! engine.close_listener(a).unwrap();
//! assert_eq!(shared.report().listeners.len(), 3); // b, dns, and a (closed)
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::{Frame, Port, PortConfig, PortStats, Rings, RxPacket};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::{Duration as SDuration, Instant as SInstant};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};

use crate::counters::L2Counters;
use crate::flow::{FlowTable, Owner};
use crate::handoff::Msg;
use crate::l2::{Egress, Ingress, L2Config, ETH_HDR, L2};
use crate::parse::{FlowKey, ParsedIp, Proto, L4};
use crate::reuseport::{BindAddr, BindError, BindOptions, ListenerCounters, MemberId};
use crate::shared::{ListenerReport, Shared};
use crate::socket::{ConnError, ConnId, UdpError};

/// Addresses and sizes of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Our MAC.
    pub mac: [u8; 6],
    /// IPv4 address and prefix.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// IPv6 address and prefix.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// IPv4 gateway for off-link peers.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway for off-link peers.
    pub gateway6: Option<Ipv6Addr>,
    /// TCP receive buffer per connection.
    pub tcp_rx_buf: usize,
    /// TCP send buffer per connection.
    pub tcp_tx_buf: usize,
    /// Seed for TCP initial sequence numbers.
    pub seed: u64,
    /// A connection the application closed that has not finished closing
    /// after this long (a peer that never acknowledges our FIN or never
    /// sends its own: FIN_WAIT, LAST_ACK, CLOSING) is reset, as Linux's
    /// `tcp_fin_timeout` bounds FIN_WAIT_2.
    pub close_timeout: std::time::Duration,
}

impl EngineConfig {
    /// Defaults for the given MAC and addresses.
    pub fn new(mac: [u8; 6], ipv4: Option<(Ipv4Addr, u8)>, ipv6: Option<(Ipv6Addr, u8)>) -> Self {
        EngineConfig {
            mac,
            ipv4,
            ipv6,
            gateway4: None,
            gateway6: None,
            tcp_rx_buf: 64 * 1024,
            tcp_tx_buf: 64 * 1024,
            seed: random_seed(),
            close_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// A seed from the standard library's per-process random keys.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Engine counters, beyond L2's and the port's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineCounters {
    /// IP packets handed to smoltcp.
    pub ip_packets: u64,
    /// TCP connections accepted by applications.
    pub accepted: u64,
    /// SYNs dropped because the chosen listener's accept queue was full.
    pub syn_backlog_full: u64,
    /// Connections reset or closed by the peer before the application
    /// accepted them.
    pub pending_lost: u64,
    /// Connections whose TIME_WAIT was cut short to keep the socket set small.
    pub time_wait_reaped: u64,
    /// Connections released after closing.
    pub closed: u64,
    /// Closed connections reset because they did not finish closing within
    /// `close_timeout`.
    pub close_timeouts: u64,
    /// Packets handed to another core.
    pub handed_off: u64,
    /// Packets received from another core.
    pub handed_in: u64,
    /// Packets that could not be handed off (queue full or too many hops).
    pub handoff_dropped: u64,
    /// Pending connections migrated to another listener.
    pub migrated_out: u64,
    /// Pending connections migrated in from another listener.
    pub migrated_in: u64,
    /// Pending connections reset because no live listener was left.
    pub migration_resets: u64,
    /// Segments of flows another core owns that reached this core's queue
    /// (the client moved the flow to another queue), sent to the owner.
    pub rehashed: u64,
    /// UDP datagrams delivered to application queues.
    pub udp_rx: u64,
    /// UDP datagrams dropped because the queue was full.
    pub udp_queue_full: u64,
    /// UDP datagrams sent.
    pub udp_tx: u64,
    /// UDP datagrams that could not be sent (no free frame).
    pub udp_tx_dropped: u64,
}

/// Everything an engine counts, for reports.
#[derive(Clone, Debug)]
pub struct EngineStats {
    /// Engine counters.
    pub engine: EngineCounters,
    /// Demux counters.
    pub l2: L2Counters,
    /// Port counters and frame places.
    pub port: PortStats,
    /// Sockets in the set now.
    pub sockets: usize,
    /// Flows in the flow table now.
    pub flows: usize,
}

/// Times one packet may be handed between cores (a bound against loops
/// while groups change under it).
const MAX_HOPS: u8 = 4;

/// A TCP listener (reuseport group member) on this core.
pub type ListenerId = MemberId;

/// A UDP socket (reuseport group member) on this core.
pub type UdpId = MemberId;

struct Listener {
    port: u16,
    backlog: usize,
    pending: VecDeque<SocketHandle>,
    counters: Arc<ListenerCounters>,
    draining: bool,
}

struct Conn {
    key: FlowKey,
    member: MemberId,
    rx_core: usize,
    accepted: bool,
    closing: bool,
    /// When the application closed it (engine milliseconds), for
    /// `close_timeout`.
    closing_since_ms: u64,
    /// Listed in `Engine::closing`.
    listed_closing: bool,
    /// Listed in `Engine::ready` since the last `take_ready`.
    ready: bool,
    counters: Arc<ListenerCounters>,
}

impl Conn {
    fn new(
        key: FlowKey,
        member: MemberId,
        rx_core: usize,
        counters: Arc<ListenerCounters>,
    ) -> Self {
        Conn {
            key,
            member,
            rx_core,
            accepted: false,
            closing: false,
            closing_since_ms: 0,
            listed_closing: false,
            ready: false,
            counters,
        }
    }
}

/// A received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Sender.
    pub from: SocketAddr,
    /// Our address it was sent to.
    pub to: IpAddr,
    /// Payload.
    pub data: Vec<u8>,
}

struct UdpMember {
    cap: usize,
    addr: BindAddr,
    port: u16,
    queue: VecDeque<Datagram>,
    counters: Arc<ListenerCounters>,
}

enum Pkt {
    /// A held rx frame of this port; the IP packet is at ETH_HDR.
    Frame(Frame, usize),
    /// A packet from another core.
    Bytes(Vec<u8>),
}

/// One core's stack over one port.
pub struct Engine<R: Rings> {
    port: Port<R>,
    iface: Interface,
    sockets: SocketSet<'static>,
    l2: L2,
    cfg: EngineConfig,
    shared: Arc<Shared>,
    core: usize,
    queue: u32,
    flows: FlowTable,
    listeners: HashMap<MemberId, Listener>,
    udp: HashMap<MemberId, UdpMember>,
    conns: HashMap<SocketHandle, Conn>,
    counters: EngineCounters,
    frames: Vec<Frame>,
    reply: [u8; 256],
    pool: Vec<Vec<u8>>,
    dirty: bool,
    last_sweep_ms: u64,
    /// Connections the application closed (or that were reset), until released.
    closing: Vec<SocketHandle>,
    /// Accepted connections that received a segment since the last
    /// `take_ready`, when tracking is on.
    ready: Vec<SocketHandle>,
    track_ready: bool,
}

impl<R: Rings> Engine<R> {
    /// An engine on core `core` over `rings` (NIC queue `queue`).
    pub fn new(rings: R, cfg: EngineConfig, shared: Arc<Shared>, core: usize, queue: u32) -> Self {
        let port_cfg = PortConfig {
            l2_headroom: ETH_HDR,
            verify_rx_checksums: false,
            tx_reserve: rings_reserve(&rings),
            ..PortConfig::default()
        };
        let mut port = Port::new(rings, port_cfg);
        let mut icfg = Config::new(HardwareAddress::Ip);
        icfg.random_seed = cfg.seed;
        let now = SInstant::from_micros(shared.epoch.elapsed().as_micros() as i64);
        let mut iface = Interface::new(icfg, &mut port.device(None), now);
        iface.update_ip_addrs(|addrs| {
            if let Some((a, p)) = cfg.ipv4 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(a), p));
            }
            if let Some((a, p)) = cfg.ipv6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(a), p));
            }
        });
        // smoltcp needs a route for off-link peers; in Medium::Ip the next hop
        // it picks is not used: L2 resolves the gateway's MAC itself.
        if let Some(gw) = cfg.gateway4 {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = cfg.gateway6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let l2 = L2::new(
            L2Config {
                mac: cfg.mac,
                ipv4: cfg.ipv4,
                ipv6: cfg.ipv6,
                gateway4: cfg.gateway4,
                gateway6: cfg.gateway6,
            },
            shared.neighbors.clone(),
        );
        Engine {
            port,
            iface,
            sockets: SocketSet::new(Vec::new()),
            l2,
            cfg,
            shared,
            core,
            queue,
            flows: FlowTable::new(),
            listeners: HashMap::new(),
            udp: HashMap::new(),
            conns: HashMap::new(),
            counters: EngineCounters::default(),
            frames: Vec::with_capacity(64),
            reply: [0; 256],
            pool: Vec::new(),
            dirty: true,
            last_sweep_ms: 0,
            closing: Vec::new(),
            ready: Vec::new(),
            track_ready: false,
        }
    }

    fn now(&self) -> SInstant {
        SInstant::from_micros(self.shared.epoch.elapsed().as_micros() as i64)
    }

    /// The port (for its backend's info).
    pub fn port(&self) -> &Port<R> {
        &self.port
    }

    /// What all cores share (registry, mesh, counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This engine's core index.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Receive one batch from the NIC and whatever other cores sent, and run
    /// it through the stack. Returns the number of packets processed.
    pub fn ingress(&mut self) -> usize {
        let now = self.now();
        let now_ms = now.total_millis() as u64;
        let mut work = self.drain_mesh(now);
        let n = self.port.recv(&mut self.frames);
        let frames = std::mem::take(&mut self.frames);
        for &f in &frames {
            let l2 = &mut self.l2;
            let reply = &mut self.reply;
            let verdict = self
                .port
                .read(f, |b| l2.ingress(b, reply, now_ms))
                .unwrap_or(Ingress::Consumed);
            match verdict {
                Ingress::Ip { len, parsed } => {
                    self.route(now, Pkt::Frame(f, len), parsed, None, self.core, 0);
                }
                Ingress::Reply { len } => {
                    let reply = &self.reply[..len];
                    self.port.send_frame(len, |b| b.copy_from_slice(reply));
                }
                Ingress::Consumed | Ingress::Drop(_) => {}
            }
            self.port.release(f);
        }
        self.frames = frames;
        work += n;
        if work > 0 {
            self.sweep_pending();
        }
        if now_ms >= self.last_sweep_ms + 1000 {
            self.last_sweep_ms = now_ms;
            // Backstop for a lost close notice: remote entries idle 10 min.
            self.flows.expire_remote(now_ms.saturating_sub(600_000));
        }
        work
    }

    fn drain_mesh(&mut self, now: SInstant) -> usize {
        let mut n = 0;
        while n < 256 {
            let Some(msg) = self.shared.mesh.recv(self.core) else {
                break;
            };
            n += 1;
            match msg {
                Msg::Packet {
                    data,
                    parsed,
                    member,
                    rx_core,
                    hops,
                } => {
                    self.counters.handed_in += 1;
                    self.route(now, Pkt::Bytes(data), parsed, member, rx_core, hops);
                }
                Msg::Migrate {
                    socket,
                    key,
                    to,
                    rx_core,
                } => self.migrate_in(*socket, key, to, rx_core),
                Msg::FlowClosed { key } => {
                    if let Some(Owner::Remote { .. }) = self.flows.lookup(&key, 0) {
                        self.flows.remove(&key);
                    }
                }
            }
        }
        n
    }

    /// The demux: where does this packet go?
    fn route(
        &mut self,
        now: SInstant,
        pkt: Pkt,
        parsed: ParsedIp,
        hint: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) {
        let now_ms = now.total_millis() as u64;
        let key = parsed.key;
        match key.proto {
            Proto::Tcp => {
                let (syn, ack, rst) = match parsed.l4 {
                    L4::Tcp {
                        flags_syn,
                        flags_ack,
                        flags_rst,
                        ..
                    } => (flags_syn, flags_ack, flags_rst),
                    _ => (false, false, false),
                };
                // A new flow handed to this core for one of its live
                // listeners is admitted here, whatever an older entry says
                // (the selection moved while the SYN was in flight).
                let local_hint =
                    hint.filter(|m| self.listeners.get(m).is_some_and(|l| !l.draining));
                if syn && !ack {
                    let local =
                        matches!(self.flows.lookup(&key, now_ms), Some(Owner::Local { .. }));
                    if let (false, Some(m)) = (local, local_hint) {
                        return self.admit(now, pkt, parsed, m, rx_core);
                    }
                    // A SYN another core sent here that no socket here owns:
                    // select afresh rather than follow an entry left by an
                    // earlier bounce (both cores could point at each other
                    // while their groups change).
                    if hops > 0 && !local {
                        return self.new_tcp_flow(now, pkt, parsed, None, rx_core, hops);
                    }
                }
                let entry = self.flows.lookup(&key, now_ms);
                match entry {
                    Some(Owner::Local { handle, .. }) => {
                        self.feed(now, pkt);
                        if rst {
                            self.drop_if_reverted(handle);
                        }
                        self.mark_ready(handle);
                    }
                    Some(Owner::Remote { core }) => {
                        self.forward(core, pkt, parsed, None, rx_core, hops);
                        if rst {
                            self.flows.remove(&key);
                        }
                    }
                    None => {
                        // Another core may own it: the client moved the
                        // flow to another queue (see `FlowDirectory`).
                        let owner = self.shared.directory.owner(&key);
                        match owner.filter(|&o| o != self.core) {
                            Some(o) => {
                                self.counters.rehashed += 1;
                                self.flows.insert(key, Owner::Remote { core: o }, now_ms);
                                self.forward(o, pkt, parsed, None, rx_core, hops);
                            }
                            None if syn && !ack => {
                                self.new_tcp_flow(now, pkt, parsed, hint, rx_core, hops)
                            }
                            // Not a flow we know: smoltcp answers with RST.
                            None => self.feed(now, pkt),
                        }
                    }
                }
            }
            Proto::Udp => {
                let local = hint.filter(|m| self.udp.contains_key(m));
                let target = self.target(local, &key);
                match target {
                    // No socket: smoltcp answers ICMP port unreachable.
                    None => self.feed(now, pkt),
                    Some((m, core)) if core == self.core => self.deliver_udp(m, pkt, parsed),
                    Some((m, core)) => {
                        self.forward(core, pkt, parsed, Some(m), rx_core, hops);
                    }
                }
            }
            Proto::Icmp => self.feed(now, pkt),
        }
    }

    /// The member (and its core) for a new flow: the local member another
    /// core already chose, or the group's selection.
    fn target(&self, local: Option<MemberId>, key: &FlowKey) -> Option<(MemberId, usize)> {
        match local {
            Some(m) => Some((m, self.core)),
            None => self
                .shared
                .registry
                .select(key, self.queue, self.core)
                .map(|s| (s.member, s.core)),
        }
    }

    fn new_tcp_flow(
        &mut self,
        now: SInstant,
        pkt: Pkt,
        parsed: ParsedIp,
        hint: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) {
        let key = parsed.key;
        let local_hint = hint.filter(|m| self.listeners.get(m).is_some_and(|l| !l.draining));
        let target = self.target(local_hint, &key);
        match target {
            None => self.feed(now, pkt),
            Some((m, core)) if core == self.core => self.admit(now, pkt, parsed, m, rx_core),
            Some((m, core)) => {
                // Only the cores that receive the flow's packets need to know
                // where it went. Sending it back to the receiving core needs
                // no entry here (that core admits it and keeps its own), and
                // one would point back at a core whose entry points here.
                if self.forward(core, pkt, parsed, Some(m), rx_core, hops) && core != rx_core {
                    self.flows
                        .insert(key, Owner::Remote { core }, now.total_millis() as u64);
                }
            }
        }
    }

    /// A new connection for listener `m` on this core: a fresh socket takes
    /// the SYN and joins the accept queue, unless the queue is full (the SYN
    /// is dropped and counted, as Linux does; the client retries).
    fn admit(&mut self, now: SInstant, pkt: Pkt, parsed: ParsedIp, m: MemberId, rx_core: usize) {
        let key = parsed.key;
        let Some(l) = self.listeners.get_mut(&m) else {
            return self.release_pkt(pkt);
        };
        if l.pending.len() >= l.backlog {
            l.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.syn_backlog_full += 1;
            return self.release_pkt(pkt);
        }
        let port = l.port;
        let counters = l.counters.clone();
        // One owner per 4-tuple in the whole process: if another core took
        // this flow already (its SYN came in on another queue first), the
        // flow is theirs.
        let owner = self.shared.directory.claim(key, self.core);
        if owner != self.core {
            self.counters.rehashed += 1;
            let now_ms = now.total_millis() as u64;
            self.flows
                .insert(key, Owner::Remote { core: owner }, now_ms);
            self.forward(owner, pkt, parsed, None, rx_core, 0);
            return;
        }
        let h = new_listen_socket(&mut self.sockets, &self.cfg, port);
        self.feed(now, pkt);
        if self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
            // smoltcp did not take it (e.g. not for one of our addresses).
            self.sockets.remove(h);
            self.shared.directory.release(&key, self.core);
            return;
        }
        if let Some(l) = self.listeners.get_mut(&m) {
            l.pending.push_back(h);
        }
        self.own_flow(key, m, h, rx_core);
        self.conns.insert(h, Conn::new(key, m, rx_core, counters));
    }

    /// Hand a packet to `core`. Returns whether it was sent.
    fn forward(
        &mut self,
        core: usize,
        pkt: Pkt,
        parsed: ParsedIp,
        member: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) -> bool {
        if hops >= MAX_HOPS {
            self.counters.handoff_dropped += 1;
            self.release_pkt(pkt);
            return false;
        }
        let data = match pkt {
            Pkt::Bytes(b) => b,
            Pkt::Frame(f, len) => {
                let mut buf = self.buffer();
                self.port.read(f, |b| {
                    if let Some(ip) = b.get(ETH_HDR..ETH_HDR + len) {
                        buf.extend_from_slice(ip);
                    }
                });
                buf
            }
        };
        let msg = Msg::Packet {
            data,
            parsed,
            member,
            rx_core,
            hops: hops + 1,
        };
        match self.shared.mesh.send(self.core, core, msg) {
            Ok(()) => {
                self.counters.handed_off += 1;
                true
            }
            Err(msg) => {
                self.counters.handoff_dropped += 1;
                if let Msg::Packet { data, .. } = msg {
                    self.recycle(data);
                }
                false
            }
        }
    }

    /// A packet buffer: from this core's pool, else one another core gave
    /// back (handoff is mostly one way: the receiver frees what the sender
    /// took), else a new one.
    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .pool
            .pop()
            .or_else(|| self.shared.mesh.spare())
            .unwrap_or_default();
        b.clear();
        b
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 256 {
            self.pool.push(buf);
        } else {
            self.shared.mesh.give_spare(buf);
        }
    }

    fn release_pkt(&mut self, pkt: Pkt) {
        if let Pkt::Bytes(b) = pkt {
            self.recycle(b);
        }
        // Frames are released by the ingress loop.
    }

    /// Run one packet through smoltcp.
    fn feed(&mut self, now: SInstant, pkt: Pkt) {
        self.counters.ip_packets += 1;
        self.dirty = true;
        match pkt {
            Pkt::Frame(f, len) => {
                let rx = RxPacket {
                    frame: f,
                    offset: ETH_HDR,
                    len,
                };
                self.iface.poll_ingress_single(
                    now,
                    &mut self.port.device(Some(rx)),
                    &mut self.sockets,
                );
            }
            Pkt::Bytes(b) => {
                if let Some(f) = self.port.inject(ETH_HDR, &b) {
                    let rx = RxPacket {
                        frame: f,
                        offset: ETH_HDR,
                        len: b.len(),
                    };
                    self.iface.poll_ingress_single(
                        now,
                        &mut self.port.device(Some(rx)),
                        &mut self.sockets,
                    );
                    self.port.release(f);
                }
                self.recycle(b);
            }
        }
    }

    fn deliver_udp(&mut self, m: MemberId, pkt: Pkt, parsed: ParsedIp) {
        let key = parsed.key;
        let Some(u) = self.udp.get_mut(&m) else {
            return self.release_pkt(pkt);
        };
        if u.queue.len() >= u.cap {
            u.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.udp_queue_full += 1;
            return self.release_pkt(pkt);
        }
        let mut data = self.buffer();
        let plen = parsed.payload_len;
        // The payload starts after the IP and UDP headers (parse_ip allows no
        // IPv6 extension headers); the UDP length, not the IP length, says
        // where it ends.
        let copy = |ip: &[u8], out: &mut Vec<u8>| {
            let ip_hdr = match ip.first().map(|b| b >> 4) {
                Some(4) => usize::from(ip[0] & 0x0f) * 4,
                _ => 40,
            };
            let start = ip_hdr + 8;
            if let Some(p) = ip.get(start..start + plen) {
                out.extend_from_slice(p);
            }
        };
        match &pkt {
            Pkt::Frame(f, len) => {
                let len = *len;
                self.port.read(*f, |b| {
                    if let Some(ip) = b.get(ETH_HDR..ETH_HDR + len) {
                        copy(ip, &mut data);
                    }
                });
            }
            Pkt::Bytes(b) => copy(b, &mut data),
        }
        let Some(u) = self.udp.get_mut(&m) else {
            return;
        };
        u.counters
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        u.queue.push_back(Datagram {
            from: SocketAddr::new(key.src, key.sport),
            to: key.dst,
            data,
        });
        self.counters.udp_rx += 1;
        if let Pkt::Bytes(b) = pkt {
            self.recycle(b);
        }
    }

    /// smoltcp turns a socket reset in SYN-RECEIVED back into a listening
    /// one. Left in the set it would take the next SYN for its port in place
    /// of the socket the demux made for that SYN, and that flow would have
    /// no flow-table entry of its own. It is a lost handshake: drop it now.
    fn drop_if_reverted(&mut self, h: SocketHandle) {
        let Some(c) = self.conns.get(&h) else {
            return;
        };
        if c.accepted || self.sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen {
            return;
        }
        if let Some(l) = self.listeners.get_mut(&c.member) {
            l.pending.retain(|&p| p != h);
        }
        self.counters.pending_lost += 1;
        self.release_conn(h);
    }

    /// Pending connections the peer reset before accept leave the queue
    /// (closed, or reverted to listening: see `drop_if_reverted`).
    fn sweep_pending(&mut self) {
        let mut lost = Vec::new();
        for l in self.listeners.values_mut() {
            let sockets = &self.sockets;
            l.pending.retain(|&h| {
                let closed = matches!(
                    sockets.get::<tcp::Socket>(h).state(),
                    tcp::State::Closed | tcp::State::Listen
                );
                if closed {
                    lost.push(h);
                }
                !closed
            });
        }
        for h in lost {
            self.counters.pending_lost += 1;
            self.release_conn(h);
        }
    }

    fn release_conn(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
        if let Some(c) = self.conns.remove(&h) {
            self.flows.remove(&c.key);
            self.shared.directory.release(&c.key, self.core);
            if c.rx_core != self.core {
                let _ = self
                    .shared
                    .mesh
                    .send(self.core, c.rx_core, Msg::FlowClosed { key: c.key });
            }
        }
    }

    fn migrate_in(
        &mut self,
        socket: tcp::Socket<'static>,
        key: FlowKey,
        to: MemberId,
        rx_core: usize,
    ) {
        let h = self.sockets.add(socket);
        let Some(l) = self.listeners.get_mut(&to) else {
            // The target closed meanwhile: nobody can accept it.
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.counters.migration_resets += 1;
            let counters = Arc::new(ListenerCounters::default());
            let mut c = Conn::new(key, to, rx_core, counters);
            c.accepted = true;
            self.conns.insert(h, c);
            let now_ms = self.now().total_millis() as u64;
            self.mark_closing(h, now_ms);
            self.own_flow(key, to, h, rx_core);
            self.dirty = true;
            return;
        };
        l.pending.push_back(h);
        l.counters.migrated_in.fetch_add(1, Ordering::Relaxed);
        let counters = l.counters.clone();
        self.counters.migrated_in += 1;
        self.conns.insert(h, Conn::new(key, to, rx_core, counters));
        self.own_flow(key, to, h, rx_core);
        self.dirty = true;
    }

    /// Send what the sockets have queued and finish the frames (link-layer
    /// headers, tx ring, kick).
    pub fn egress(&mut self) {
        let now = self.now();
        let now_ms = now.total_millis() as u64;
        for _ in 0..64 {
            let r = self
                .iface
                .poll_egress(now, &mut self.port.device(None), &mut self.sockets);
            if r == smoltcp::iface::PollResult::None {
                break;
            }
        }
        let l2 = &mut self.l2;
        self.port
            .flush(|frame, ip_len| match l2.egress(frame, ip_len, now_ms) {
                Egress::Send => Some(ETH_HDR + ip_len),
                Egress::Resolve { len } => Some(len),
                Egress::Invalid => None,
            });
        self.reap(now_ms);
        self.dirty = false;
    }

    /// Release sockets of closed connections. TIME_WAIT is cut short: smoltcp
    /// keeps it 10 s in the set, which a busy `Connection: close` server cannot
    /// afford (every packet scans the set).
    ///
    /// Only the connections on the closing list are looked at, not every
    /// connection.
    fn reap(&mut self, now_ms: u64) {
        if self.closing.is_empty() {
            return;
        }
        let timeout = self.cfg.close_timeout.as_millis() as u64;
        let mut list = std::mem::take(&mut self.closing);
        let mut i = 0;
        while i < list.len() {
            let h = list[i];
            let Some(c) = self.conns.get_mut(&h) else {
                // Released elsewhere (the handle may name a new socket by now).
                list.swap_remove(i);
                continue;
            };
            if !c.closing {
                // The handle was reused by a connection that is not closing.
                list.swap_remove(i);
                continue;
            }
            let expired = now_ms.saturating_sub(c.closing_since_ms) >= timeout;
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            let state = socket.state();
            if expired && !matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                // The peer never finished the close: reset. The RST goes out
                // on the next egress, then the socket is released.
                socket.abort();
                c.closing_since_ms = now_ms;
                self.counters.close_timeouts += 1;
                self.dirty = true;
                i += 1;
                continue;
            }
            let tw = match state {
                tcp::State::Closed => false,
                tcp::State::TimeWait => true,
                _ => {
                    i += 1;
                    continue;
                }
            };
            list.swap_remove(i);
            self.counters.closed += 1;
            if tw {
                self.counters.time_wait_reaped += 1;
            }
            self.release_conn(h);
        }
        // Anything listed meanwhile (nothing here marks, but stay safe).
        list.append(&mut self.closing);
        self.closing = list;
    }

    /// How long the engine may sleep before smoltcp has timers to run.
    pub fn poll_delay(&mut self) -> Option<std::time::Duration> {
        let now = self.now();
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d: SDuration| std::time::Duration::from_micros(d.total_micros()))
    }

    /// Sleep in poll() on the XSK and this core's doorbell for at most
    /// `timeout` (not at all if another core already sent something).
    pub fn wait(&mut self, timeout: std::time::Duration) {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let shared = self.shared.clone();
        if !shared.mesh.prepare_sleep(self.core) {
            return;
        }
        if let Some(bell) = shared.mesh.bell(self.core) {
            let _ = self.port.wait_with(bell, ms);
        } else {
            let _ = self.port.wait(ms);
        }
        shared.mesh.woke(self.core);
    }

    /// Frames built or handed to the kernel and not yet sent: the caller
    /// should kick again soon instead of sleeping long.
    pub fn tx_in_flight(&self) -> bool {
        self.port.pending_tx() > 0 || self.port.in_flight() > 0
    }

    /// Whether state changed since the last egress (sockets want a pass).
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    fn bind_member(
        &self,
        proto: Proto,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<(MemberId, Arc<ListenerCounters>), BindError> {
        let registry = &self.shared.registry;
        let id = registry.bind(proto, addr, port, self.core, self.queue, opts)?;
        let counters = registry.member(id).map(|m| m.counters).unwrap_or_default();
        Ok((id, counters))
    }

    /// Unbind a member and keep its final counters in the report.
    fn retire(&self, id: MemberId) -> Result<(), BindError> {
        let member = self.shared.registry.unbind(id)?;
        if let Ok(mut r) = self.shared.retired.lock() {
            let mut rep = ListenerReport::of(&member);
            rep.state = "closed".into();
            r.push(rep);
        }
        Ok(())
    }

    /// This core owns `key` through socket `handle` of `member`.
    fn own_flow(&mut self, key: FlowKey, member: MemberId, handle: SocketHandle, rx_core: usize) {
        let now_ms = self.now().total_millis() as u64;
        self.flows.insert(
            key,
            Owner::Local {
                member,
                handle,
                rx_core,
            },
            now_ms,
        );
    }

    // ---- socket API: TCP listeners ----

    /// Open a TCP listener on `addr:port`, joining the port's reuseport group
    /// when the bind rules allow it.
    pub fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, BindError> {
        let backlog = opts.backlog;
        let (id, counters) = self.bind_member(Proto::Tcp, addr, port, opts)?;
        self.listeners.insert(
            id,
            Listener {
                port,
                backlog,
                pending: VecDeque::new(),
                counters,
                draining: false,
            },
        );
        Ok(id)
    }

    /// Take an established connection off the listener's accept queue.
    pub fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        let l = self.listeners.get_mut(&id)?;
        let sockets = &self.sockets;
        let pos = l.pending.iter().position(|&h| {
            !matches!(
                sockets.get::<tcp::Socket>(h).state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent
            )
        })?;
        let h = l.pending.remove(pos)?;
        l.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.counters.accepted += 1;
        if let Some(c) = self.conns.get_mut(&h) {
            c.accepted = true;
        }
        Some(ConnId(h))
    }

    /// Connections waiting on the listener's accept queue (handshaking or
    /// established).
    pub fn pending(&self, id: ListenerId) -> usize {
        self.listeners.get(&id).map_or(0, |l| l.pending.len())
    }

    /// Stop taking new flows on this listener; its queued connections stay
    /// and can still be accepted (graceful drain).
    pub fn drain(&mut self, id: ListenerId) -> Result<(), BindError> {
        self.shared.registry.drain(id)?;
        if let Some(l) = self.listeners.get_mut(&id) {
            l.draining = true;
        }
        Ok(())
    }

    /// Close a listener. Its not-yet-accepted connections migrate to another
    /// live member of its group (on this core when there is one); with none
    /// left they are reset.
    pub fn close_listener(&mut self, id: ListenerId) -> Result<(), BindError> {
        if !self.listeners.contains_key(&id) {
            return Err(BindError::NoSuchMember);
        }
        // Out of selection first, so no new flow picks it meanwhile.
        let _ = self.shared.registry.drain(id);
        let pending: Vec<SocketHandle> = self
            .listeners
            .get_mut(&id)
            .map(|l| l.pending.drain(..).collect())
            .unwrap_or_default();
        let now = self.now();
        for h in pending {
            self.migrate_out(id, h, now);
        }
        self.retire(id)?;
        self.listeners.remove(&id);
        Ok(())
    }

    fn migrate_out(&mut self, from: MemberId, h: SocketHandle, now: SInstant) {
        let Some(key) = self.conns.get(&h).map(|c| c.key) else {
            return;
        };
        let from_counters = self.conns.get(&h).map(|c| c.counters.clone());
        let target = self.shared.registry.migration_target(from, &key, self.core);
        let Some(t) = target else {
            // Nobody left to take it: reset, as Linux resets the queue.
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            if let Some(c) = self.conns.get_mut(&h) {
                c.accepted = true;
            }
            self.mark_closing(h, now.total_millis() as u64);
            if let Some(fc) = &from_counters {
                fc.reset.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.migration_resets += 1;
            self.dirty = true;
            return;
        };
        if let Some(fc) = &from_counters {
            fc.migrated_out.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.migrated_out += 1;
        if t.core == self.core {
            if let Some(l) = self.listeners.get_mut(&t.member) {
                l.pending.push_back(h);
                l.counters.migrated_in.fetch_add(1, Ordering::Relaxed);
                let counters = l.counters.clone();
                self.counters.migrated_in += 1;
                if let Some(c) = self.conns.get_mut(&h) {
                    c.member = t.member;
                    c.counters = counters;
                    let rx_core = c.rx_core;
                    self.own_flow(key, t.member, h, rx_core);
                }
                return;
            }
        }
        let rx_core = self.conns.get(&h).map_or(self.core, |c| c.rx_core);
        let Some(Socket::Tcp(sock)) = Some(self.sockets.remove(h)) else {
            return;
        };
        self.conns.remove(&h);
        let msg = Msg::Migrate {
            socket: Box::new(sock),
            key,
            to: t.member,
            rx_core,
        };
        match self.shared.mesh.send(self.core, t.core, msg) {
            Ok(()) => {
                self.shared.directory.moved(key, t.core);
                self.flows.insert(
                    key,
                    Owner::Remote { core: t.core },
                    now.total_millis() as u64,
                );
            }
            Err(Msg::Migrate { mut socket, .. }) => {
                // Could not hand it over: reset it here.
                socket.abort();
                let h = self.sockets.add(*socket);
                self.counters.migration_resets += 1;
                let mut c = Conn::new(key, from, rx_core, from_counters.unwrap_or_default());
                c.accepted = true;
                self.conns.insert(h, c);
                self.mark_closing(h, now.total_millis() as u64);
                self.own_flow(key, from, h, rx_core);
                self.dirty = true;
            }
            Err(_) => {}
        }
    }

    // ---- socket API: TCP connections ----

    fn conn(&mut self, c: ConnId) -> Result<(&mut tcp::Socket<'static>, &Conn), ConnError> {
        let conn = self.conns.get(&c.0).ok_or(ConnError::NotFound)?;
        if !conn.accepted {
            return Err(ConnError::NotFound);
        }
        Ok((self.sockets.get_mut::<tcp::Socket>(c.0), conn))
    }

    /// Read into `buf`. `Ok(0)` means nothing to read now; `Err(Closed)` means
    /// the peer finished sending and everything was read.
    pub fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        let (s, conn) = self.conn(c)?;
        if s.can_recv() {
            let n = s.recv_slice(buf).map_err(|_| ConnError::Closed)?;
            conn.counters
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
            self.dirty = true;
            return Ok(n);
        }
        if s.may_recv() {
            Ok(0)
        } else {
            Err(ConnError::Closed)
        }
    }

    /// Queue `data`; returns how much fit in the send buffer.
    pub fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let (s, conn) = self.conn(c)?;
        if !s.may_send() {
            return Err(ConnError::Closed);
        }
        let n = s.send_slice(data).map_err(|_| ConnError::Closed)?;
        conn.counters
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
        self.dirty = true;
        Ok(n)
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queue(&mut self, c: ConnId) -> Result<usize, ConnError> {
        Ok(self.conn(c)?.0.send_queue())
    }

    /// Whether the peer may still send (not FIN'd).
    pub fn may_recv(&mut self, c: ConnId) -> Result<bool, ConnError> {
        Ok(self.conn(c)?.0.may_recv())
    }

    /// The peer's address.
    pub fn peer(&mut self, c: ConnId) -> Result<Option<IpEndpoint>, ConnError> {
        Ok(self.conn(c)?.0.remote_endpoint())
    }

    /// The listener that admitted the connection.
    pub fn listener_of(&self, c: ConnId) -> Option<ListenerId> {
        self.conns.get(&c.0).map(|x| x.member)
    }

    /// Send FIN after the queued data (no more writes); reading goes on.
    pub fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError> {
        let (s, _) = self.conn(c)?;
        s.close();
        self.dirty = true;
        Ok(())
    }

    /// Close: FIN after queued data; the socket is released once closed.
    /// A peer that never finishes the close is reset after
    /// `EngineConfig::close_timeout`.
    pub fn close(&mut self, c: ConnId) {
        if self.conns.contains_key(&c.0) {
            self.sockets.get_mut::<tcp::Socket>(c.0).close();
            let now_ms = self.now().total_millis() as u64;
            self.mark_closing(c.0, now_ms);
            self.dirty = true;
        }
    }

    /// Reset the connection and release it.
    pub fn abort(&mut self, c: ConnId) {
        if self.conns.contains_key(&c.0) {
            self.sockets.get_mut::<tcp::Socket>(c.0).abort();
            let now_ms = self.now().total_millis() as u64;
            self.mark_closing(c.0, now_ms);
            self.dirty = true;
        }
    }

    /// TCP connections this engine holds: waiting to be accepted, open, or
    /// closed by the application but not finished closing yet. Zero once
    /// every connection is gone (a graceful stop waits for this).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Record which accepted connections receive segments, for
    /// [`Engine::take_ready`]. Off by default (nothing is recorded).
    pub fn set_ready_tracking(&mut self, on: bool) {
        self.track_ready = on;
        if !on {
            for h in self.ready.drain(..) {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.ready = false;
                }
            }
        }
    }

    /// Move into `out` the accepted connections that had activity since the
    /// last call: a segment arrived for them (data, an acknowledgement that
    /// freed send buffer space, a window update, FIN or RST). Each appears
    /// once; a connection the application already closed may appear (its
    /// handle names nothing or, after reuse, a connection with nothing new).
    /// Needs [`Engine::set_ready_tracking`]; newly accepted connections are
    /// not listed (the application looks at them when it accepts them).
    pub fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        for h in self.ready.drain(..) {
            if let Some(c) = self.conns.get_mut(&h) {
                c.ready = false;
            }
            out.push(ConnId(h));
        }
    }

    fn mark_ready(&mut self, h: SocketHandle) {
        if !self.track_ready {
            return;
        }
        if let Some(c) = self.conns.get_mut(&h) {
            if c.accepted && !c.ready && !c.closing {
                c.ready = true;
                self.ready.push(h);
            }
        }
    }

    fn mark_closing(&mut self, h: SocketHandle, now_ms: u64) {
        if let Some(c) = self.conns.get_mut(&h) {
            if !c.closing {
                c.closing = true;
                c.closing_since_ms = now_ms;
            }
            if !c.listed_closing {
                c.listed_closing = true;
                self.closing.push(h);
            }
        }
    }

    /// Abort every connection and close every listener (shutdown).
    pub fn abort_all(&mut self) {
        let ids: Vec<MemberId> = self.listeners.keys().copied().collect();
        for id in ids {
            let _ = self.close_listener(id);
        }
        let handles: Vec<SocketHandle> = self.conns.keys().copied().collect();
        let now_ms = self.now().total_millis() as u64;
        for h in handles {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.mark_closing(h, now_ms);
        }
        let ids: Vec<MemberId> = self.udp.keys().copied().collect();
        for id in ids {
            let _ = self.udp_close(id);
        }
        self.dirty = true;
    }

    // ---- socket API: UDP ----

    /// Bind a UDP socket on `addr:port`, joining the port's reuseport group
    /// when the bind rules allow it. Datagrams of one 4-tuple reach the same
    /// member while the group is stable.
    pub fn udp_bind(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<UdpId, BindError> {
        let cap = opts.backlog;
        let (id, counters) = self.bind_member(Proto::Udp, addr, port, opts)?;
        self.udp.insert(
            id,
            UdpMember {
                cap,
                addr,
                port,
                queue: VecDeque::new(),
                counters,
            },
        );
        Ok(id)
    }

    /// Close a UDP socket; queued datagrams are dropped.
    pub fn udp_close(&mut self, id: UdpId) -> Result<(), BindError> {
        let u = self.udp.remove(&id).ok_or(BindError::NoSuchMember)?;
        for d in u.queue {
            self.recycle(d.data);
        }
        self.retire(id)
    }

    /// Receive one datagram into `buf`: its length (truncated to `buf`), the
    /// sender and our address it was sent to.
    pub fn recv_from(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, SocketAddr, IpAddr)>, UdpError> {
        let u = self.udp.get_mut(&id).ok_or(UdpError::NotFound)?;
        let Some(d) = u.queue.pop_front() else {
            return Ok(None);
        };
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let r = (n, d.from, d.to);
        self.recycle(d.data);
        Ok(Some(r))
    }

    /// Datagrams waiting on a UDP socket.
    pub fn udp_pending(&self, id: UdpId) -> usize {
        self.udp.get(&id).map_or(0, |u| u.queue.len())
    }

    /// Send one datagram to `to`, from `from` (default: the bound address,
    /// or our address of `to`'s family).
    pub fn send_to(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: SocketAddr,
        from: Option<IpAddr>,
    ) -> Result<(), UdpError> {
        let u = self.udp.get(&id).ok_or(UdpError::NotFound)?;
        let src = from
            .or(match u.addr {
                BindAddr::V4(a) => Some(IpAddr::V4(a)),
                BindAddr::V6(a) => Some(IpAddr::V6(a)),
                _ => None,
            })
            .or(match to {
                SocketAddr::V4(_) => self.cfg.ipv4.map(|(a, _)| IpAddr::V4(a)),
                SocketAddr::V6(_) => self.cfg.ipv6.map(|(a, _)| IpAddr::V6(a)),
            })
            .ok_or(UdpError::TooLarge)?;
        let sport = u.port;
        let counters = u.counters.clone();
        let udp_len = 8 + data.len();
        let caps = ChecksumCapabilities::default();
        let udp_repr = UdpRepr {
            src_port: sport,
            dst_port: to.port(),
        };
        let ok = match (src, to.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ip_len = 20 + udp_len;
                if ip_len > self.port.config().mtu {
                    return Err(UdpError::TooLarge);
                }
                self.port.send_ip(ip_len, |buf| {
                    let repr = Ipv4Repr {
                        src_addr: s,
                        dst_addr: d,
                        next_header: IpProtocol::Udp,
                        payload_len: udp_len,
                        hop_limit: 64,
                    };
                    let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
                    repr.emit(&mut ip, &caps);
                    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
                    udp_repr.emit(
                        &mut udp,
                        &IpAddress::Ipv4(s),
                        &IpAddress::Ipv4(d),
                        data.len(),
                        |p| p.copy_from_slice(data),
                        &caps,
                    );
                })
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ip_len = 40 + udp_len;
                if ip_len > self.port.config().mtu {
                    return Err(UdpError::TooLarge);
                }
                self.port.send_ip(ip_len, |buf| {
                    let repr = Ipv6Repr {
                        src_addr: s,
                        dst_addr: d,
                        next_header: IpProtocol::Udp,
                        payload_len: udp_len,
                        hop_limit: 64,
                    };
                    let mut ip = Ipv6Packet::new_unchecked(&mut *buf);
                    repr.emit(&mut ip);
                    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
                    udp_repr.emit(
                        &mut udp,
                        &IpAddress::Ipv6(s),
                        &IpAddress::Ipv6(d),
                        data.len(),
                        |p| p.copy_from_slice(data),
                        &caps,
                    );
                })
            }
            _ => return Err(UdpError::TooLarge),
        };
        if ok {
            counters
                .bytes_out
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            self.counters.udp_tx += 1;
            self.dirty = true;
            Ok(())
        } else {
            self.counters.udp_tx_dropped += 1;
            Err(UdpError::BufferFull)
        }
    }

    // ---- reports ----

    /// Everything counted so far on this core.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            engine: self.counters.clone(),
            l2: self.l2.counters().clone(),
            port: self.port.stats(),
            sockets: self.sockets.iter().count(),
            flows: self.flows.len(),
        }
    }

    /// Prove the frame accounting of the port.
    pub fn check_frames(&self) -> Result<(), nic::LedgerError> {
        self.port.check()
    }
}

fn rings_reserve<R: Rings>(rings: &R) -> u32 {
    use nic::FrameMem;
    // Keep a quarter of the frames for transmission.
    rings.mem().frame_count() / 4
}

fn new_listen_socket(
    sockets: &mut SocketSet<'static>,
    cfg: &EngineConfig,
    port: u16,
) -> SocketHandle {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; cfg.tcp_rx_buf]),
        tcp::SocketBuffer::new(vec![0u8; cfg.tcp_tx_buf]),
    );
    s.set_nagle_enabled(false);
    // Created for exactly one admitted SYN: the demux already chose the
    // listener (and so the address), the socket only needs the port.
    let _ = s.listen(IpListenEndpoint { addr: None, port });
    sockets.add(s)
}

/// `IpAddress` to std.
pub fn to_std(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v) => IpAddr::V4(v),
        IpAddress::Ipv6(v) => IpAddr::V6(v),
    }
}
