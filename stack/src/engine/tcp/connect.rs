//! Outgoing connections (active open): a local port, a SYN with the options
//! the passive side offers, and the connection in the same table, timers
//! and flow entries as accepted ones.
//!
//! **Ports.** A connection's 4-tuple must be free in the whole process: the
//! flow directory (`Shared::directory`) is claimed for it before the SYN
//! leaves, so a port is taken per destination, as Linux's
//! `__inet_hash_connect` does, and any core that receives the SYN-ACK finds
//! the owner. The search starts at a keyed hash of (our address, the
//! destination) plus a turn that moves on at every connect, over
//! `EngineConfig::ephemeral_ports`, and skips ports a listener is bound to
//! and 4-tuples in TIME-WAIT.
//!
//! **Cores.** The connection lives on the core that opened it. The NIC's
//! RSS hash decides which queue the peer's segments arrive on, and without
//! the RSS key (veth has none; NICs hide theirs behind the driver) a port
//! cannot be chosen for its return queue: a segment that lands on another
//! core's queue finds the owner in the flow directory and is handed over
//! (the `rehashed` path: one handoff per segment for such a connection, and
//! the receiving core learns the owner so it skips the directory next
//! time). With one queue, or a queue per process core, nothing moves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use nic::Rings;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::super::{Engine, Pkt, ETH_HDR};
use crate::flow::Owner;
use crate::parse::{parse_unreachable, FlowKey, ParsedIp, Proto};
use crate::reuseport::MemberId;
use crate::socket::{ConnEnd, ConnId, ConnectError};

/// The member id of outgoing connections: no listener has it.
pub const OUTGOING: MemberId = MemberId(u64::MAX);

impl<R: Rings> Engine<R> {
    /// Open a TCP connection to `remote` from `local` (our address of
    /// `remote`'s family by default; port 0 or `None`: an ephemeral port).
    /// The SYN goes out with the next egress pass (after neighbour
    /// resolution of the next hop), offering MSS, window scale, SACK and,
    /// when `EngineConfig::timestamps` is on, timestamps; it is retransmitted
    /// with exponential backoff until `EngineConfig::connect_timeout`.
    ///
    /// The connection is established when [`Engine::is_connecting`] turns
    /// false while it is still live (it is then reported by
    /// [`Engine::take_ready`] too, with ready tracking on); it is used
    /// from then on exactly as an accepted one. A refusal (an RST, an ICMP
    /// port unreachable), an ICMP host or net unreachable, or the timeout
    /// ends it: it is reported by [`Engine::take_ended`] as
    /// [`ConnEnd::Refused`], [`ConnEnd::Unreachable`] or
    /// [`ConnEnd::TimedOut`] and released. Closing or aborting it before
    /// then gives it up.
    pub fn tcp_connect(
        &mut self,
        remote: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Result<ConnId, ConnectError> {
        let rip = remote.ip();
        if remote.port() == 0 || rip.is_unspecified() {
            return Err(ConnectError::Unaddressable(remote));
        }
        let ours = match rip {
            IpAddr::V4(_) => self.cfg.ipv4.map(|(a, _)| IpAddr::V4(a)),
            IpAddr::V6(_) => self.cfg.ipv6.map(|(a, _)| IpAddr::V6(a)),
        };
        let lip = match local.map(|l| l.ip()) {
            Some(ip) if !ip.is_unspecified() && Some(ip) != ours => {
                return Err(ConnectError::NotLocal(ip))
            }
            _ => ours.ok_or(ConnectError::Unaddressable(remote))?,
        };
        if self.conns.live() >= self.cfg.max_conns {
            return Err(ConnectError::ConnLimit);
        }
        let key0 = FlowKey {
            proto: Proto::Tcp,
            src: rip,
            sport: remote.port(),
            dst: lip,
            dport: 0,
        };
        let port = match local.map(|l| l.port()).filter(|&p| p != 0) {
            Some(p) => {
                if !self.claim_port(FlowKey { dport: p, ..key0 }) {
                    return Err(ConnectError::InUse(SocketAddr::new(lip, p)));
                }
                p
            }
            None => match self.ephemeral_port(key0) {
                Some(p) => p,
                None => {
                    self.counters.connects_no_port += 1;
                    return Err(ConnectError::NoPort(remote));
                }
            },
        };
        let key = FlowKey {
            dport: port,
            ..key0
        };
        let Some(c) = self.conns.alloc_closed() else {
            self.shared.directory.release(&key, self.core);
            return Err(ConnectError::ConnLimit);
        };
        let timeout = SDuration::from_micros(self.cfg.connect_timeout.as_micros() as u64);
        self.conns.set_connecting(c, self.now + timeout);
        self.conns
            .setup(c, key, OUTGOING, self.core, Arc::default(), None);
        let ts = self.ts_offset(&key);
        // The SYN is timed by the peer's last connection, as a SYN-ACK is.
        let rto = self.peer_rtos.get(key.src, self.now);
        if rto.is_some() {
            self.counters.handshake_rto_from_peer += 1;
        }
        let Engine { iface, conns, .. } = self;
        let opened = conns.socket(c).map(|s| {
            s.set_timestamps(ts);
            let r = s.connect(
                iface.context(),
                IpEndpoint::new(rip.into(), remote.port()),
                IpListenEndpoint {
                    addr: Some(lip.into()),
                    port,
                },
            );
            if let Some(rto) = rto {
                s.set_initial_rto(rto);
            }
            r
        });
        if !matches!(opened, Some(Ok(()))) {
            self.release(c);
            return Err(ConnectError::Unaddressable(remote));
        }
        self.own_flow(key, c, self.core);
        self.conns.mark_dirty(c);
        self.counters.connects += 1;
        Ok(c)
    }

    /// Whether `c` is an outgoing connection still handshaking (false once
    /// established, and for any other connection or a stale id).
    pub fn is_connecting(&self, c: ConnId) -> bool {
        self.conns.phase(c) == Some(crate::tcp::Phase::Connecting)
    }

    /// A free local port for the 4-tuple `key` (its `dport` ignored) in the
    /// ephemeral range, claimed in the flow directory.
    fn ephemeral_port(&mut self, key: FlowKey) -> Option<u16> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let n = u32::from(hi.checked_sub(lo)?) + 1;
        let start = self
            .shared
            .registry
            .hasher()
            .hash(&key)
            .wrapping_add(self.port_turn);
        self.port_turn = self.port_turn.wrapping_add(1);
        (0..n)
            .map(|i| lo + (start.wrapping_add(i) % n) as u16)
            .find(|&p| self.claim_port(FlowKey { dport: p, ..key }))
    }

    /// Claim 4-tuple `key` for a new outgoing connection of this core:
    /// false if a connection or TIME-WAIT record of any core holds it, or a
    /// listener is bound to its local port.
    fn claim_port(&mut self, key: FlowKey) -> bool {
        self.flows.lookup(&key).is_none()
            && self.time_wait.find(&key).is_none()
            && !self
                .shared
                .registry
                .is_bound(Proto::Tcp, &key.dst, key.dport)
            && self.shared.directory.claim(key, self.core) == self.core
    }

    /// An ICMP destination unreachable (`parsed.l4` is `L4::Unreachable`):
    /// it ends an outgoing connection in SYN-SENT whose SYN it quotes
    /// (refused, or unreachable, as it says); handed to the core that owns
    /// the quoted flow; anything else is ignored and counted.
    pub(in crate::engine) fn unreachable(
        &mut self,
        pkt: Pkt,
        parsed: ParsedIp,
        rx_core: usize,
        hops: u8,
    ) {
        let quote = match &pkt {
            Pkt::Bytes(b) => parse_unreachable(b).ok(),
            Pkt::Frame(f, len) => self
                .port
                .read(*f, |b| {
                    b.get(ETH_HDR..ETH_HDR + len)
                        .and_then(|p| parse_unreachable(p).ok())
                })
                .flatten(),
        };
        let owner = quote.and_then(|u| Some((u, self.quoted_owner(&u.key)?)));
        match owner {
            Some((u, Owner::Local(c))) if self.quotes_the_syn(c, u.seq) => {
                if let Some(s) = self.conns.socket(c) {
                    // Silently: the peer never answered.
                    s.abort();
                }
                let why = match u.refused {
                    true => ConnEnd::Refused,
                    false => ConnEnd::Unreachable,
                };
                self.end_connect(c, why);
                self.release_pkt(pkt);
            }
            Some((_, Owner::Remote { core })) => {
                self.forward(core, pkt, parsed, None, rx_core, hops);
            }
            _ => {
                self.counters.icmp_unreachable_ignored += 1;
                self.release_pkt(pkt);
            }
        }
    }

    /// Whether `c` is connecting and `seq` is its SYN's (RFC 5927: a blind
    /// attacker does not know it).
    fn quotes_the_syn(&mut self, c: ConnId, seq: u32) -> bool {
        self.is_connecting(c)
            && self.conns.socket(c).is_some_and(|s| {
                s.state() == smoltcp::socket::tcp::State::SynSent
                    && s.seq_state().snd_nxt.0 as u32 == seq
            })
    }

    /// An outgoing connection ended before it was established (`why`):
    /// reported to the application (`take_ended`) and released.
    pub(super) fn end_connect(&mut self, c: ConnId, why: ConnEnd) {
        let n = &mut self.counters;
        match why {
            ConnEnd::Unreachable => n.connects_unreachable += 1,
            ConnEnd::TimedOut => n.connects_timed_out += 1,
            _ => n.connects_refused += 1,
        }
        self.conns.push_ended(c, why);
        self.release(c);
    }
}
