//! One stack per core: the demux (L2, header parse, flow table, reuseport
//! selection, handoff to other cores), smoltcp in `Medium::Ip` for TCP and
//! ICMP, native UDP datagram queues, the listeners with the backlog the
//! stack owns, and the socket API applications on the same core use.
//!
//! The files by responsibility:
//! - `route.rs`: the demux as a decision: [`Route`] says where a packet
//!   goes; `Engine::dispatch` is the one place that acts on it.
//! - `tcp/`: the TCP half acting on what the connection table and the
//!   listeners (`crate::tcp`) decide: a connection's life, timers and
//!   egress passes (`mod.rs`), admission and SYN cookies (`admit.rs`),
//!   migration (`migrate.rs`), the TCP socket API (`api.rs`).
//! - `udp.rs`: datagram queues and `send_to`.
//! - `mesh.rs`: handoff to other cores and packet buffers.
//!
//! Time is passed in: `ingress(now)`, `egress(now)`, `poll_delay(now)`; the
//! engine never reads a clock itself ([`Engine::clock`] is for callers), so
//! tests run it on a virtual clock.
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
//! // One turn of the worker loop, at the time the caller says.
//! let now = engine.clock();
//! engine.ingress(now);
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
//! engine.egress(now);
//!
//! // Stop taking new flows on `a`, then close it: what it had not accepted
//! // yet migrates to `b`.
//! engine.drain(a).unwrap();
//! engine.close_listener(a).unwrap();
//! assert_eq!(shared.report().listeners.len(), 3); // b, dns, and a (closed)
//! ```

mod mesh;
mod pmtu;
mod route;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nic::{Frame, Port, PortConfig, PortStats, Rings, RxPacket};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::time::{Duration as SDuration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::counters::L2Counters;
use crate::flow::FlowTable;
use crate::l2::{Egress, Ingress, L2Config, ETH_HDR, L2};
use crate::parse::ParsedIp;
use crate::reuseport::{BindError, BindOptions, ListenerCounters, MemberId};
use crate::shared::{ListenerReport, Shared};
use crate::tcp::{Conns, Listeners, PeerRtos, SocketParams, TimeWait};

pub use crate::socket::{ConnectError, ListenerId, UdpId};
pub use crate::tcp::buffers::{BufConfig, Limits};
pub use crate::tcp::TIME_WAIT_LEN;
pub use route::Route;
pub use tcp::OUTGOING;
pub use udp::Datagram;

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
    /// TCP buffers: sizes that grow per connection (the default: Linux's
    /// `tcp_rmem`, `tcp_wmem`) within a process-wide memory budget
    /// (`tcp_mem`), or fixed sizes ([`BufConfig::fixed`], `--tcp-buf`).
    pub buffers: BufConfig,
    /// Seed for TCP initial sequence numbers.
    pub seed: u64,
    /// A connection the application closed that has not finished closing
    /// after this long (a peer that never acknowledges our FIN or never
    /// sends its own: FIN_WAIT, LAST_ACK, CLOSING) is reset, as Linux's
    /// `tcp_fin_timeout` bounds FIN_WAIT_2.
    pub close_timeout: std::time::Duration,
    /// Half-open connections (SYN-RECEIVED) a listener holds at most, apart
    /// from its accept queue (Linux's SYN queue). 0: the listener's backlog.
    pub syn_backlog: usize,
    /// A half-open connection whose handshake has not finished after this
    /// long is dropped silently (Linux: `tcp_synack_retries` = 5, about
    /// 63 s; smoltcp alone would retry the SYN-ACK forever).
    pub syn_timeout: std::time::Duration,
    /// Answer SYNs with SYN cookies once the SYN queue is full (Linux
    /// `tcp_syncookies=1`); off: such SYNs are dropped and counted.
    pub syncookies: bool,
    /// TCP timestamps (RFC 7323: PAWS, an RTT sample from every ACK) for
    /// clients that offer them, in the SYN-ACK of the SYN queue and of a
    /// SYN cookie (which then keeps window scale and SACK), as Linux's
    /// `tcp_timestamps=1`; a client that does not offer them sees none.
    /// The TSval clock is milliseconds plus an offset keyed by the address
    /// pair (`CookieJar::ts_offset`).
    pub timestamps: bool,
    /// Connections this engine holds at most (all states); a SYN beyond it
    /// is dropped and counted.
    pub max_conns: usize,
    /// Released connections whose sockets (and buffers) are kept for reuse.
    pub pool: usize,
    /// Connections the application closed that are still finishing their
    /// close, at most (Linux `tcp_max_orphans`); a close beyond it resets
    /// the connection at once (counted as `orphans_reset`).
    pub max_orphans: usize,
    /// Entries for flows other cores own, at most.
    pub max_remote_flows: usize,
    /// Connections in TIME-WAIT this engine keeps a record of, at most
    /// (Linux's `tcp_max_tw_buckets`); when full, the oldest record is
    /// dropped and counted. 0: TIME-WAIT is not kept (a late segment of the
    /// flow gets RST). 64 bytes a record, 16 more in its index.
    pub time_wait_max: usize,
    /// Congestion control of every TCP connection (Linux's default is
    /// cubic; `None` sends as fast as the peer's window allows).
    pub congestion: CongestionControl,
    /// The local ports outgoing connections take (inclusive; Linux's
    /// `ip_local_port_range`, 32768-60999 by default). A port is taken
    /// per destination (the 4-tuple must be free in the whole process),
    /// never one a listener is bound to.
    pub ephemeral_ports: (u16, u16),
    /// An outgoing connection whose handshake has not finished after this
    /// long is given up (the SYN is retransmitted meanwhile with
    /// exponential backoff from a 1 s RTO, as Linux's `tcp_syn_retries`
    /// = 6 gives up after about 127 s).
    pub connect_timeout: std::time::Duration,
}

/// TCP congestion control algorithm of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionControl {
    /// CUBIC (RFC 9438), Linux's default.
    #[default]
    Cubic,
    /// NewReno-style AIMD.
    Reno,
    /// No congestion window: only the peer's receive window limits sending.
    None,
    /// BBR (v1, Linux's `bbr`): paced at the path's measured bandwidth,
    /// a window of two bandwidth-delay products; random loss does not slow
    /// it down. Rate samples need a peer that negotiated SACK.
    Bbr,
}

impl CongestionControl {
    /// smoltcp's value.
    pub fn to_smoltcp(self) -> smoltcp::socket::tcp::CongestionControl {
        use smoltcp::socket::tcp::CongestionControl as C;
        match self {
            CongestionControl::Cubic => C::Cubic,
            CongestionControl::Reno => C::Reno,
            CongestionControl::None => C::None,
            CongestionControl::Bbr => C::Bbr,
        }
    }
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
            buffers: BufConfig::default(),
            seed: random_seed(),
            close_timeout: std::time::Duration::from_secs(60),
            syn_backlog: 0,
            syn_timeout: std::time::Duration::from_secs(63),
            syncookies: true,
            timestamps: true,
            max_conns: 1 << 20,
            pool: 4096,
            max_orphans: 65536,
            max_remote_flows: 1 << 20,
            time_wait_max: 1 << 16,
            congestion: CongestionControl::Cubic,
            ephemeral_ports: (32768, 60999),
            connect_timeout: std::time::Duration::from_secs(127),
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

/// How often a worker holding packets for an unresolved next hop looks
/// whether it has resolved (see `L2::send_resolved`).
const HELD_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Engine counters, beyond L2's and the port's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineCounters {
    /// IP packets handed to smoltcp.
    pub ip_packets: u64,
    /// TCP connections accepted by applications.
    pub accepted: u64,
    /// SYNs dropped because the chosen listener's accept queue was full.
    pub syn_backlog_full: u64,
    /// SYNs dropped because the SYN queue was full and cookies are off.
    pub syn_queue_full: u64,
    /// SYNs dropped because the engine holds `max_conns` connections.
    pub conn_limit: u64,
    /// SYN-ACKs (and SYNs of outgoing connections) timed by the RTO the
    /// peer's last connection measured instead of 1 s
    /// (`crate::tcp::PeerRtos`).
    pub handshake_rto_from_peer: u64,
    /// SYN-ACKs sent with a cookie (SYN queue full).
    pub syncookies_sent: u64,
    /// Cookie SYN-ACKs that found no free frame.
    pub syncookies_unsent: u64,
    /// Connections built from a valid cookie.
    pub syncookies_ok: u64,
    /// ACKs whose cookie did not check (answered with RST).
    pub syncookies_bad: u64,
    /// Half-open connections dropped after `syn_timeout`.
    pub syn_timeouts: u64,
    /// Connections reset or closed by the peer before the application
    /// accepted them.
    pub pending_lost: u64,
    /// Connections that reached TIME-WAIT while TIME-WAIT is not kept
    /// (`time_wait_max` 0, or no socket to read): released at once, a late
    /// segment of the flow is answered with RST.
    pub time_wait_reaped: u64,
    /// Connections that reached TIME-WAIT and left a record (their slot
    /// released at once).
    pub time_wait: u64,
    /// Retransmitted FINs a TIME-WAIT record answered with an ACK (our
    /// last ACK was lost).
    pub time_wait_fin_acked: u64,
    /// Other segments a TIME-WAIT record answered with an ACK (data, out
    /// of the window, a SYN at or below RCV.NXT).
    pub time_wait_acked: u64,
    /// ACKs a TIME-WAIT record did not send: pure ACKs or SYNs within
    /// 500 ms of its last ACK.
    pub time_wait_ack_limited: u64,
    /// SYNs above a TIME-WAIT record's RCV.NXT (or with a newer timestamp)
    /// taken as a new connection.
    pub time_wait_syn_reuse: u64,
    /// TIME-WAIT records ended by an RST at RCV.NXT.
    pub time_wait_rst: u64,
    /// TIME-WAIT records dropped early because `time_wait_max` were held.
    pub time_wait_dropped: u64,
    /// TIME-WAIT records that lived their 60 s.
    pub time_wait_expired: u64,
    /// SYNs (without ACK) of a flow that still has a connection here: the
    /// connection answers them (a challenge ACK, RFC 5961), no new one is
    /// made.
    pub syn_on_conn: u64,
    /// SYNs that found their 4-tuple held by a connection the peer has
    /// forgotten (closing with the peer's FIN in, or half-open with another
    /// initial sequence number): that connection was released and the SYN
    /// taken as a new one.
    pub syn_restarts: u64,
    /// SYNs of that kind that found the connection held by the
    /// application in CLOSE-WAIT (counted in `syn_restarts` too; reported
    /// ended, see `take_ended`).
    pub accepted_restarted: u64,
    /// Accepted connections the peer reset while the application held
    /// them: reported ended and released at once.
    pub accepted_reset: u64,
    /// Accepted connections that finished closing (the application had
    /// shut its side down, the peer closed too) while it held them:
    /// reported ended and released at once.
    pub accepted_finished: u64,
    /// Accepted connections whose socket closed on its own in an egress
    /// pass (a timeout): reported ended and released at once. With the
    /// three above, `accepted = closed by the application + ended + held`.
    pub accepted_timed_out: u64,
    /// Segments on accepted connections that changed nothing the
    /// application sees (answered by a challenge ACK, a refused RST, a
    /// duplicate): not reported as activity (`take_ready`).
    pub segments_no_progress: u64,
    /// Connections released after closing.
    pub closed: u64,
    /// Closed connections reset because they did not finish closing within
    /// `close_timeout`.
    pub close_timeouts: u64,
    /// Closes turned into resets because `max_orphans` connections were
    /// still finishing their close.
    pub orphans_reset: u64,
    /// Outgoing connections opened (SYN sent).
    pub connects: u64,
    /// Outgoing connections established.
    pub connects_established: u64,
    /// Outgoing connections refused (RST, ICMP port unreachable).
    pub connects_refused: u64,
    /// Outgoing connections whose SYN met ICMP host or net unreachable.
    pub connects_unreachable: u64,
    /// Outgoing connections given up after `connect_timeout`.
    pub connects_timed_out: u64,
    /// ICMP destination unreachable messages quoting no connection in
    /// SYN-SENT, or a sequence number other than its SYN's: ignored (an
    /// established connection rides out what may be a transient error, as
    /// Linux does for host and net unreachable).
    pub icmp_unreachable_ignored: u64,
    /// Connects refused because no ephemeral port was free towards the
    /// destination.
    pub connects_no_port: u64,
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
    /// Remote flow entries refused (bound reached).
    pub flow_remote_refused: u64,
    /// UDP datagrams delivered to application queues.
    pub udp_rx: u64,
    /// UDP datagrams dropped because the queue was full.
    pub udp_queue_full: u64,
    /// UDP datagrams sent.
    pub udp_tx: u64,
    /// UDP datagrams that could not be sent (no free frame).
    pub udp_tx_dropped: u64,
    /// Connection passes of egress (each visits one connection with work).
    pub egress_visits: u64,
    /// Timer wake-ups that found their connection due.
    pub timer_fires: u64,
    /// Timer wake-ups that came up before their connection's deadline (it
    /// moved later since) and were filed again without touching it.
    pub timer_early: u64,
    /// Connections due for egress that sent nothing though frames were
    /// free (retried 1 ms later).
    pub egress_stalls: u64,
    /// Egress passes cut short because no frame could be built (the tx
    /// ring is full); the rest waited for the next pass.
    pub egress_tx_full: u64,
    /// Segments whose data a connection could not keep: its receive
    /// storage could not grow (memory budget past its hard limit); the
    /// peer sends it again. Counted when the connection is released.
    pub rx_storage_cut: u64,
    /// Segments retransmitted by the SACK-based loss recovery (peers with
    /// SACK; counted when a connection is released).
    pub tcp_retransmits: u64,
    /// Fast recoveries entered (SACK peers).
    pub tcp_recoveries: u64,
    /// Retransmission timeouts (SACK peers).
    pub tcp_rto_timeouts: u64,
    /// Tail loss probes sent (SACK peers).
    pub tcp_loss_probes: u64,
    /// Slow starts ended by HyStart's delay test (SACK peers).
    pub tcp_hystart_exits: u64,
    /// Window reductions undone because the loss was spurious: every
    /// retransmission of the episode D-SACKed, or a timeout F-RTO found
    /// spurious (SACK peers).
    pub tcp_spurious_undos: u64,
    /// Connections that negotiated ECN (RFC 3168: the client's SYN asked;
    /// counted when a connection is released, as all below).
    pub tcp_ecn_negotiated: u64,
    /// Segments received marked Congestion Experienced on ECN connections
    /// (each echoed to the sender with ECE until it answers with CWR).
    pub tcp_ecn_ce_received: u64,
    /// Congestion-window reductions for an ECN-Echo from the peer (at most
    /// one a window of data; none with BBR).
    pub tcp_ecn_reductions: u64,
    /// Segments dropped by PAWS (RFC 7323 §5: a TSval older than the
    /// connection's TS.Recent, an old duplicate or a forgery; answered
    /// with an ACK).
    pub tcp_paws_rejected: u64,
    /// Path MTU discovery: ICMP "fragmentation needed" (RFC 1191) and
    /// ICMPv6 "packet too big" (RFC 8201) messages that lowered a
    /// connection's send MSS (what it had in flight went again at the new
    /// size).
    pub icmp_frag_needed: u64,
    /// Such messages quoting a TCP flow that has no connection here or on
    /// another core of this process: ignored.
    pub icmp_frag_needed_no_conn: u64,
    /// Such messages whose quoted sequence number is not in the
    /// connection's SND.UNA..=SND.MAX (RFC 5927 §4.1: a blind attack, or
    /// data long acknowledged): ignored.
    pub icmp_frag_needed_out_of_window: u64,
    /// Such messages whose MTU (after the floor: 552 for IPv4 as Linux's
    /// `min_pmtu`, 1280 for IPv6) would not lower the connection's send
    /// MSS: ignored.
    pub icmp_frag_needed_bad_mtu: u64,
    /// Such messages whose quote is cut short or malformed, or quotes a
    /// packet that is not TCP: ignored.
    pub icmp_frag_needed_malformed: u64,
    /// Buffers that grow: bytes of storage in connections now.
    pub buf_held: u64,
    /// Bytes of free storage this core's pool keeps for reuse now.
    pub buf_cached: u64,
    /// Bytes all cores charged to the process's memory budget now (in
    /// 1 MiB steps per core; the budget's levels apply to it).
    pub buf_charged: u64,
    /// Storage handed out from the pool's free lists.
    pub buf_reused: u64,
    /// Storage allocated because no free list had one.
    pub buf_allocated: u64,
    /// Requests for storage the memory budget refused.
    pub buf_refused: u64,
    /// Free storage returned to the allocator (cache full or pressure).
    pub buf_released: u64,
    /// Memory pressure seen last: 0 none, 1 soft (nothing grows), 2 hard
    /// (only the minimum is granted).
    pub buf_pressure: u64,
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
    /// Connections held now (every state).
    pub sockets: usize,
    /// Flows in the flow table now.
    pub flows: usize,
    /// Released connections whose sockets wait for reuse.
    pub pooled: usize,
    /// Connections closed by the application, still finishing the close.
    pub closing: usize,
    /// Timer entries held (stale ones included).
    pub timers: usize,
    /// TIME-WAIT records held (dead slots not yet passed included).
    pub time_wait: usize,
    /// Bytes the TIME-WAIT table holds (records and index).
    pub time_wait_bytes: usize,
}

/// Times one packet may be handed between cores (a bound against loops
/// while groups change under it).
const MAX_HOPS: u8 = 4;

/// How much of each received frame `ingress` prefetches: the headers and a
/// small request (an HTTP GET, a DNS query).
const FRAME_PREFETCH: usize = 192;

enum Pkt {
    /// A held rx frame of this port; the IP packet is at ETH_HDR.
    Frame(Frame, usize),
    /// A packet from another core (or built here).
    Bytes(Vec<u8>),
}

/// One core's stack over one port.
pub struct Engine<R: Rings> {
    port: Port<R>,
    iface: Interface,
    /// The socket set of packets no connection takes: smoltcp answers them
    /// (RST, ICMP echo, port unreachable).
    empty: SocketSet<'static>,
    l2: L2,
    cfg: EngineConfig,
    shared: Arc<Shared>,
    core: usize,
    queue: u32,
    flows: FlowTable,
    listeners: Listeners,
    udp: HashMap<MemberId, udp::UdpMember>,
    conns: Conns,
    /// Connections in TIME-WAIT, as records (`crate::tcp::TimeWait`).
    time_wait: TimeWait,
    /// The RTO each recent peer's last connection measured.
    peer_rtos: PeerRtos,
    /// The ISN the next admitted SYN's connection takes: a SYN that reopens
    /// a 4-tuple in TIME-WAIT starts above the old sequence space.
    next_isn: Option<u32>,
    counters: EngineCounters,
    frames: Vec<Frame>,
    /// The IP packets of the batch being received (reused).
    batch: Vec<(Frame, usize, ParsedIp)>,
    /// The batch's connections, for the prefetch passes of `ingress`.
    touched: Vec<crate::socket::ConnId>,
    reply: [u8; 256],
    pool: Vec<Vec<u8>>,
    /// The time of the last `ingress`/`egress` call.
    now: Instant,
    /// The last receive took a full batch.
    rx_full: bool,
    /// Moves the ephemeral port search's start on at every connect (Linux's
    /// per-destination offset plus a perturbation).
    port_turn: u32,
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
        let now = shared.now();
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
            empty: SocketSet::new(Vec::new()),
            l2,
            flows: FlowTable::new(cfg.max_remote_flows),
            conns: Conns::new(
                SocketParams {
                    buffers: cfg.buffers,
                    congestion: cfg.congestion.to_smoltcp(),
                    pool: cfg.pool,
                },
                shared.budget.clone(),
            ),
            time_wait: TimeWait::new(cfg.time_wait_max),
            peer_rtos: PeerRtos::new(),
            next_isn: None,
            cfg,
            shared,
            core,
            queue,
            listeners: Listeners::default(),
            udp: HashMap::new(),
            counters: EngineCounters::default(),
            frames: Vec::with_capacity(64),
            batch: Vec::with_capacity(64),
            touched: Vec::with_capacity(64),
            reply: [0; 256],
            pool: Vec::new(),
            now,
            rx_full: false,
            port_turn: core as u32 * 7919,
        }
    }

    /// The process's engine clock now (all cores count from one origin:
    /// connections migrate between cores with their timers). For callers:
    /// the engine itself only uses the times it is given.
    pub fn clock(&self) -> Instant {
        self.shared.now()
    }

    /// Learn neighbours from IP packets when no ARP/NDP reaches the stack
    /// (see [`L2::set_learn_from_ip`]).
    pub fn set_learn_neighbors_from_ip(&mut self, on: bool) {
        self.l2.set_learn_from_ip(on);
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
    /// it through the stack at time `now`. Returns the number of packets
    /// processed. A worker's turn is one batch, the application, an egress
    /// pass; when the rx ring holds a backlog ([`Engine::rx_backlog_deep`])
    /// it takes more batches before the application runs, each after an
    /// [`Engine::egress_setup`] pass (`worker.rs`, docs/ARCHITECTURE.md).
    pub fn ingress(&mut self, now: Instant) -> usize {
        self.now = now;
        let now_ms = now.total_millis() as u64;
        let work = self.drain_mesh();
        let n = self.port.recv(&mut self.frames);
        self.rx_full = n > 0 && n >= self.port.batch();
        let frames = std::mem::take(&mut self.frames);
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        // The frames were written by the kernel a ring's depth ago and are
        // out of the caches when the ring runs deep: ask for each one's
        // first lines before parsing any, so those misses overlap too.
        if frames.len() > 1 {
            for &f in &frames {
                self.port.read(f, |b| {
                    nic::prefetch::range(b.as_ptr(), b.len().min(FRAME_PREFETCH))
                });
            }
        }
        // Parse the whole batch first, then look its flows up in one tight
        // loop, then deliver: the lookups do not depend on one another, so
        // their cache misses overlap (at 100,000 connections the flow table
        // is far bigger than the caches, and looked up one packet at a time
        // each miss was waited out alone). Delivery looks each flow up
        // again, a cache hit by then, rather than trusting the first answer:
        // an earlier packet of the same batch may have admitted, moved or
        // released a flow.
        for &f in &frames {
            let l2 = &mut self.l2;
            let reply = &mut self.reply;
            let verdict = self
                .port
                .read(f, |b| l2.ingress(b, reply, now_ms))
                .unwrap_or(Ingress::Consumed);
            match verdict {
                Ingress::Ip { len, parsed } => {
                    batch.push((f, len, parsed));
                    continue;
                }
                Ingress::Reply { len } => {
                    let reply = &self.reply[..len];
                    self.port.send_frame(len, |b| b.copy_from_slice(reply));
                }
                Ingress::Consumed | Ingress::Drop(_) => {}
            }
            self.port.release(f);
        }
        if batch.len() > 1 {
            // Prefetch in stages, each over the whole batch, so that no
            // stage waits on the miss of the one before for the same packet:
            // the flows (loads: the table gives no address to prefetch),
            // then the slots, then the sockets (whose address is in the slot).
            let mut conns = std::mem::take(&mut self.touched);
            conns.clear();
            for (_, _, parsed) in &batch {
                if let Some(crate::flow::Owner::Local(c)) = self.flows.lookup(&parsed.key) {
                    conns.push(c);
                }
            }
            for &c in &conns {
                self.conns.prefetch_slot(c);
            }
            for &c in &conns {
                self.conns.prefetch_socket(c);
            }
            self.touched = conns;
        }
        for &(f, len, parsed) in &batch {
            self.dispatch(Pkt::Frame(f, len), parsed, None, self.core, 0);
            self.port.release(f);
        }
        self.batch = batch;
        self.frames = frames;
        work + n
    }

    /// Act on the demux's decision for one packet.
    fn dispatch(
        &mut self,
        pkt: Pkt,
        parsed: ParsedIp,
        hint: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) {
        if parsed.l4 == crate::parse::L4::TooBig {
            return self.too_big(pkt, parsed, rx_core, hops);
        }
        if parsed.l4 == crate::parse::L4::Unreachable {
            return self.unreachable(pkt, parsed, rx_core, hops);
        }
        match self.route(&parsed, hint, hops) {
            Route::Conn(c) => {
                if rx_core != self.core {
                    self.conns.learn_rx_core(c, rx_core);
                }
                if parsed.is_syn() {
                    if self.syn_restarts(c, &parsed) {
                        // The flow has no connection now: a new one.
                        self.restart(c);
                        return self.dispatch(pkt, parsed, hint, rx_core, hops);
                    }
                    self.counters.syn_on_conn += 1;
                }
                // Buffers that grow: storage for the data first.
                self.conns.ensure_rx(c, parsed.tcp.seq, parsed.payload_len);
                self.deliver(c, pkt)
            }
            Route::TimeWait(pos) => self.time_wait_segment(pkt, parsed, pos, hint, rx_core, hops),
            Route::Admit(m) => self.admit(pkt, &parsed, m, rx_core),
            Route::Cookie(m) => self.cookie_ack(pkt, &parsed, m, rx_core),
            Route::Forward {
                core,
                member,
                remember,
                forget,
            } => {
                if remember {
                    self.counters.rehashed += 1;
                    self.remember_remote(parsed.key, core);
                }
                self.forward(core, pkt, parsed, member, rx_core, hops);
                if forget {
                    self.flows.remove(&parsed.key);
                }
            }
            Route::Udp(m) => self.deliver_udp(m, pkt, &parsed),
            Route::Stack => {
                self.feed(None, pkt);
                if hops > 0 {
                    self.stale_remote(&parsed, rx_core);
                }
            }
        }
    }

    /// Run one packet through smoltcp: into connection slot `slot`'s socket
    /// set, or (`None`) into the empty set, where smoltcp answers what no
    /// connection takes.
    fn feed(&mut self, slot: Option<u32>, pkt: Pkt) {
        self.counters.ip_packets += 1;
        let now = self.now;
        let Engine {
            iface,
            port,
            empty,
            conns,
            ..
        } = self;
        let set = match slot.and_then(|i| conns.set_mut(i)) {
            Some(s) => s,
            None => empty,
        };
        match pkt {
            Pkt::Frame(f, len) => {
                let rx = RxPacket {
                    frame: f,
                    offset: ETH_HDR,
                    len,
                };
                iface.poll_ingress_single(now, &mut port.device(Some(rx)), set);
            }
            Pkt::Bytes(b) => {
                if let Some(f) = port.inject(ETH_HDR, &b) {
                    let rx = RxPacket {
                        frame: f,
                        offset: ETH_HDR,
                        len: b.len(),
                    };
                    iface.poll_ingress_single(now, &mut port.device(Some(rx)), set);
                    port.release(f);
                }
                self.recycle(b);
            }
        }
    }

    /// Send what the connections with work have queued (only those: data
    /// written, an ACK or window update owed, a timer due) and finish the
    /// frames (link-layer headers, tx ring, kick).
    pub fn egress(&mut self, now: Instant) {
        self.egress_pass(now, true);
    }

    /// An egress pass between the batches of a backlog drain (see
    /// `worker.rs`): what the connections being set up or closed owe
    /// (SYN-ACKs, FINs, their ACKs) and what the timers say. Connections the
    /// application holds stay dirty for the pass after it runs: a segment
    /// just delivered to one owes at most a delayed ACK, which that pass
    /// sends with the answer, and a second visit per request cost 5% of the
    /// core at 100,000 connections (docs/BENCH-HISTORY.md, "The worker loop").
    pub fn egress_setup(&mut self, now: Instant) {
        self.egress_pass(now, false);
    }

    fn egress_pass(&mut self, now: Instant, accepted_too: bool) {
        self.now = now;
        let now_ms = now.total_millis() as u64;
        self.fire_timers(now);
        self.expire_time_wait(now);
        self.egress_conns(now, accepted_too);
        // Packets held for a next hop that has resolved since (on this core
        // or another: the neighbour table is shared) go out with this pass.
        let port = &mut self.port;
        self.l2
            .send_resolved(now_ms, |p| port.send_ip(p.len(), |b| b.copy_from_slice(p)));
        self.flush_tx(now_ms);
    }

    /// Finish the built frames (link-layer headers) and hand them to the tx
    /// ring (kick when it asks).
    fn flush_tx(&mut self, now_ms: u64) {
        let l2 = &mut self.l2;
        self.port
            .flush(|frame, ip_len| match l2.egress(frame, ip_len, now_ms) {
                Egress::Send => Some(ETH_HDR + ip_len),
                Egress::Resolve { len } => Some(len),
                Egress::Invalid => None,
            });
    }

    /// How long the engine may sleep from `now` before a connection's timer
    /// is due (zero when connections wait for an egress pass).
    pub fn poll_delay(&mut self, now: Instant) -> Option<std::time::Duration> {
        if self.conns.has_dirty() {
            // Connections wait for a pass (more to send): no sleep, whatever
            // the next timer says.
            return Some(std::time::Duration::ZERO);
        }
        let timer = self
            .next_timer(now)
            .into_iter()
            .chain(self.time_wait_due(now))
            .min()
            .map(|at: Instant| at - now)
            .map(|d: SDuration| std::time::Duration::from_micros(d.total_micros()));
        if self.l2.has_held() {
            // The answer that resolves a held packet's next hop may reach
            // another core: look again soon.
            return Some(timer.map_or(HELD_POLL, |t| t.min(HELD_POLL)));
        }
        timer
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

    /// Whether the rx ring holds a backlog: the last [`Engine::ingress`]
    /// took a full batch and at least a quarter of the ring (and two
    /// batches) still wait.
    pub fn rx_backlog_deep(&mut self) -> bool {
        if !self.rx_full {
            return false;
        }
        let batch = self.port.batch();
        self.port
            .rx_backlog()
            .is_some_and(|(waiting, size)| waiting >= 2 * batch && 4 * waiting >= size)
    }

    /// Whether connections wait for an egress pass.
    pub fn dirty(&self) -> bool {
        self.conns.has_dirty()
    }

    fn bind_member(
        &self,
        proto: crate::parse::Proto,
        addr: crate::reuseport::BindAddr,
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
        let mut rep = ListenerReport::of(&member);
        rep.state = "closed".into();
        self.shared.push_retired(rep);
        Ok(())
    }

    // ---- reports ----

    /// Everything counted so far on this core.
    pub fn stats(&self) -> EngineStats {
        let mut engine = self.counters.clone();
        engine.flow_remote_refused = self.flows.remote_refused;
        let table = self.conns.counters();
        engine.timer_fires = table.timer_fires;
        engine.timer_early = table.timer_early;
        engine.egress_stalls = table.egress_stalls;
        engine.rx_storage_cut = table.rx_storage_cut;
        engine.tcp_retransmits = table.retransmits;
        engine.tcp_recoveries = table.recoveries;
        engine.tcp_rto_timeouts = table.rto_timeouts;
        engine.tcp_loss_probes = table.loss_probes;
        engine.tcp_hystart_exits = table.hystart_exits;
        engine.tcp_spurious_undos = table.spurious_undos;
        engine.tcp_ecn_negotiated = table.ecn_negotiated;
        engine.tcp_ecn_ce_received = table.ecn_ce_received;
        engine.tcp_ecn_reductions = table.ecn_reductions;
        engine.tcp_paws_rejected = table.paws_rejected;
        let tw = self.time_wait.counters;
        engine.time_wait = tw.entered;
        engine.time_wait_fin_acked = tw.fin_acked;
        engine.time_wait_acked = tw.acked;
        engine.time_wait_ack_limited = tw.ack_limited;
        engine.time_wait_syn_reuse = tw.syn_reuse;
        engine.time_wait_rst = tw.rst_killed;
        engine.time_wait_dropped = tw.dropped;
        engine.time_wait_expired = tw.expired;
        let b = self.conns.buffer_stats();
        engine.buf_held = b.held as u64;
        engine.buf_cached = b.cached as u64;
        engine.buf_charged = b.charged as u64;
        engine.buf_reused = b.pool.reused;
        engine.buf_allocated = b.pool.allocated;
        engine.buf_refused = b.pool.refused;
        engine.buf_released = b.pool.released;
        engine.buf_pressure = b.pressure as u64;
        EngineStats {
            engine,
            l2: self.l2.counters().clone(),
            port: self.port.stats(),
            sockets: self.conns.live(),
            flows: self.flows.len(),
            pooled: self.conns.pooled(),
            closing: self.conns.closing(),
            timers: self.conns.timers_len(),
            time_wait: self.time_wait.len(),
            time_wait_bytes: self.time_wait.bytes(),
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

/// `IpAddress` to std.
pub fn to_std(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v) => IpAddr::V4(v),
        IpAddress::Ipv6(v) => IpAddr::V6(v),
    }
}
