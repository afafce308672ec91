//! Layer 2: Ethernet framing, ARP, NDP and a neighbour table shared by all workers.
//!
//! smoltcp runs in `Medium::Ip` on every core; its neighbour cache would be private per
//! `Interface` and only filled from ARP, so cores could not share it. Here each worker owns
//! an [`L2`] that
//! - classifies received Ethernet frames ([`L2::ingress`]): answers ARP requests and NDP
//!   neighbour solicitations for our addresses, learns neighbours, and hands IP packets for
//!   this host (already parsed by [`parse_ip`](crate::parse::parse_ip)) to the caller;
//! - fills the Ethernet header of outgoing IP packets ([`L2::egress`]), or, when the next
//!   hop is unknown, holds the packet and turns the frame into an ARP request / neighbour
//!   solicitation; held packets go out once the hop answers ([`L2::send_resolved`]).
//!
//! Neighbours are learned from ARP and NDP only, as Linux learns them (see [`crate::neigh`]:
//! creation by a request addressed to us, replies only for what we asked, a lock time and the
//! NA override flag before a MAC changes, O(1) eviction), into the [`SharedNeighbors`] table
//! that every worker reads, so any core can transmit to a peer that another core heard from,
//! and a bounded per-worker cache of it. An IP packet only confirms an entry whose MAC it
//! carries: a spoofed source address from another MAC redirects nothing.
//!
//! Never panics on packet bytes: every buffer goes through smoltcp's `new_checked` first,
//! and every slice of our own buffers is taken with `get`/`get_mut`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use crate::counters::{DropReason, L2Counters};
use crate::neigh::{Hint, LocalCache, LocalEntry, Update};
use crate::parse::{is_martian_v4, is_martian_v6, parse_ipv4, parse_ipv6, ParsedIp};

/// Length of an Ethernet II header (no VLAN tag).
pub const ETH_HDR: usize = 14;
pub use crate::neigh::{
    SharedNeighbors, LOCAL_NEIGHBORS, MAX_NEIGHBORS, NEIGHBOR_LOCKTIME_MS, NEIGHBOR_TTL_MS,
};
/// A worker tells the shared table that traffic confirmed an entry at most this often.
const SHARED_REFRESH_MS: u64 = 1_000;
/// Minimum Ethernet frame without FCS; ARP frames are zero-padded to it.
const ETH_MIN_FRAME: usize = 60;
/// ARP over Ethernet/IPv4, unpadded.
const ARP_LEN: usize = 28;
/// Length of the ARP frames this module writes (zero-padded to the Ethernet minimum).
pub const ARP_FRAME_LEN: usize = ETH_MIN_FRAME;
/// Length of the NS/NA frames this module writes (one link-layer address option):
/// 14 + 40 + 24 + 8. Egress frames must be at least this long for `Resolve` to fit.
pub const NDP_FRAME_LEN: usize = ETH_HDR + 40 + 24 + 8;
/// Packets held per unresolved next hop (Linux's `unres_qlen` is counted in bytes,
/// 212,992 by default; a few packets cover a handshake's first answer).
pub const HOLD_PER_HOP: usize = 4;
/// Packets held per worker in all.
pub const HOLD_MAX: usize = 64;
/// How long a packet waits for its next hop (Linux: three probes a second apart).
pub const HOLD_MS: u64 = 3_000;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// This host's link: its MAC, addresses with prefix lengths, and default gateways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Config {
    /// Our MAC: the source of every frame we write, the destination we accept unicast on.
    pub mac: [u8; 6],
    /// Our IPv4 address and prefix length (which peers are on-link); `None`: no IPv4
    /// (IPv4 and ARP to us are `NotForUs`).
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Our IPv6 address and prefix length; link-local peers are on-link too. `None`: no
    /// IPv6.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// The IPv4 next hop for off-link destinations; `None`: they are unreachable.
    pub gateway4: Option<Ipv4Addr>,
    /// The IPv6 next hop for off-link destinations (usually link-local); `None`: they are
    /// unreachable.
    pub gateway6: Option<Ipv6Addr>,
}

/// What to do with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress {
    /// An IP packet for this host: `frame[ETH_HDR..ETH_HDR+len]` (`len` excludes Ethernet
    /// padding: it is taken from the IP header), already parsed.
    Ip {
        /// Bytes of the IP packet, header included (its total length field).
        len: usize,
        /// What [`parse_ip`](crate::parse::parse_ip) found in it.
        parsed: ParsedIp,
    },
    /// ARP/NDP was answered: the reply frame (complete Ethernet frame) was written to
    /// `reply[..len]`; send it.
    Reply {
        /// Bytes of the reply frame, Ethernet header included.
        len: usize,
    },
    /// Consumed (an ARP reply or NA that we learned from, an NDP RS/RA/redirect, MLD, or an
    /// IPv6 packet to a multicast group) — nothing to send.
    Consumed,
    /// Dropped, and counted under this reason in [`L2Counters::dropped`].
    Drop(DropReason),
}

/// What to do with an outgoing frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Ethernet header written into `frame[..14]`; send `frame[..14+ip_len]`.
    Send,
    /// Next hop unknown: the frame was overwritten with an ARP request / neighbour
    /// solicitation for it, of `len` bytes; send it instead. A copy of the original IP
    /// packet is held (`HOLD_PER_HOP` a hop, `HOLD_MAX` in all, for `HOLD_MS`) and handed
    /// out by [`L2::send_resolved`] once the hop answers; past those bounds it is dropped
    /// and counted (`held_dropped`).
    Resolve {
        /// Bytes of the request frame, Ethernet header included.
        len: usize,
    },
    /// `frame[14..14+ip_len]` is not a valid IP packet of a configured family, or there is
    /// no route (off-link destination without gateway: also counted in `tx_unresolved`).
    Invalid,
}

/// One worker's L2: configuration, its neighbour cache, the shared table, and counters.
#[derive(Debug)]
pub struct L2 {
    cfg: L2Config,
    shared: Arc<SharedNeighbors>,
    cache: LocalCache,
    counters: L2Counters,
    caps: ChecksumCapabilities,
    /// Create (never change) an entry from an IP packet's source MAC.
    learn_from_ip: bool,
    /// Packets waiting for their next hop's address, oldest first.
    held: std::collections::VecDeque<Held>,
    /// When `send_resolved` last looked the held packets' hops up (ms).
    held_looked_ms: u64,
}

/// A packet kept while its next hop resolves.
#[derive(Debug)]
struct Held {
    hop: IpAddr,
    at_ms: u64,
    packet: Vec<u8>,
}

impl L2 {
    /// A worker's L2 for the link `cfg`, reading and teaching the neighbour table `shared`
    /// (one per interface, shared by every worker). Starts with an empty local cache,
    /// nothing held, zero counters, and learning from IP packets off.
    pub fn new(cfg: L2Config, shared: Arc<SharedNeighbors>) -> Self {
        Self {
            cfg,
            shared,
            cache: LocalCache::new(LOCAL_NEIGHBORS),
            counters: L2Counters::default(),
            caps: ChecksumCapabilities::default(),
            learn_from_ip: false,
            held: std::collections::VecDeque::new(),
            held_looked_ms: 0,
        }
    }

    /// Whether packets wait for a next hop to resolve.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Keep a copy of the IP packet in `frame` (about to become a request for
    /// `hop`), within `HOLD_PER_HOP` and `HOLD_MAX`; counted either way.
    fn hold(&mut self, hop: IpAddr, frame: &[u8], ip_len: usize, now: u64) {
        let Some(packet) = frame.get(ETH_HDR..ETH_HDR + ip_len) else {
            return;
        };
        let for_hop = self.held.iter().filter(|h| h.hop == hop).count();
        if for_hop >= HOLD_PER_HOP || self.held.len() >= HOLD_MAX {
            self.counters.held_dropped += 1;
            return;
        }
        self.counters.held += 1;
        self.held.push_back(Held {
            hop,
            at_ms: now,
            packet: packet.to_vec(),
        });
    }

    /// Hand the held IP packets whose next hop is known now to `send`
    /// (oldest first; it returns whether a frame took the packet) and drop
    /// those held longer than `HOLD_MS`, each counted. Looks the hops up at
    /// most once a millisecond: egress passes come far more often, and each
    /// look at a hop not yet known reads the shared table.
    pub fn send_resolved(&mut self, now: u64, mut send: impl FnMut(&[u8]) -> bool) {
        if self.held.is_empty() || now == self.held_looked_ms {
            return;
        }
        self.held_looked_ms = now;
        let mut i = 0;
        while i < self.held.len() {
            let hop = self.held[i].hop;
            if self.resolve(hop, now).is_some() {
                if let Some(h) = self.held.remove(i) {
                    if send(&h.packet) {
                        self.counters.held_sent += 1;
                    } else {
                        self.counters.held_dropped += 1;
                    }
                }
            } else if now.saturating_sub(self.held[i].at_ms) > HOLD_MS {
                self.held.remove(i);
                self.counters.held_dropped += 1;
            } else {
                i += 1;
            }
        }
    }

    /// When ARP and NDP go to the kernel and not to us (the XDP program
    /// steers only the listening ports, the kernel holding the same
    /// address answers them), the stack never sees who is where. Then an IP
    /// packet from an on-link source with no entry creates one; an entry
    /// that exists is still never changed by an IP packet (a spoofed source
    /// cannot redirect a known peer's or the gateway's replies).
    pub fn set_learn_from_ip(&mut self, on: bool) {
        self.learn_from_ip = on;
    }

    /// What this worker's L2 has counted since [`L2::new`].
    pub fn counters(&self) -> &L2Counters {
        &self.counters
    }

    /// Our MAC ([`L2Config::mac`]).
    pub fn mac(&self) -> [u8; 6] {
        self.cfg.mac
    }

    /// The link this L2 was built for.
    pub fn config(&self) -> &L2Config {
        &self.cfg
    }

    /// Classify one received Ethernet frame. `reply` must be at least 128 bytes (if it is
    /// too small for an answer, the request is `Consumed` unanswered).
    ///
    /// Learns neighbours from ARP and NDP only (see [`crate::neigh`]); a valid IPv4/IPv6
    /// frame from an on-link source (in our prefix, or IPv6 link-local) only confirms the
    /// entry of its source if it carries that entry's MAC (a different MAC is counted in
    /// `neighbor_mismatch` and changes nothing).
    ///
    /// Accepts dst MAC == ours, broadcast (ARP only), and IPv6 multicast 33:33:* (IPv6
    /// only); anything else is `Drop(NotForUs)`. ARP request for our IPv4 -> `Reply`. NDP
    /// neighbour solicitation whose target is our IPv6 -> neighbour advertisement `Reply`;
    /// NDP with hop limit != 255 -> `Drop(MalformedIcmp)`. NA -> learn, `Consumed`; other
    /// NDP and MLD -> `Consumed`. IP packets to an address that is not ours ->
    /// `Drop(NotForUs)`; IPv6 multicast other than our solicited-node group and all-nodes
    /// -> `Consumed` (all-nodes non-NDP too). IP packets go through `parse_ip`; its errors
    /// are `Drop(reason)`.
    pub fn ingress(&mut self, frame: &[u8], reply: &mut [u8], now_ms: u64) -> Ingress {
        self.counters.rx_frames += 1;
        let r = self.classify(frame, reply, now_ms);
        match r {
            Ingress::Ip { .. } => self.counters.rx_ip += 1,
            Ingress::Reply { .. } => self.counters.tx_frames += 1,
            Ingress::Consumed => {}
            Ingress::Drop(reason) => self.counters.dropped.add(reason),
        }
        r
    }

    fn classify(&mut self, frame: &[u8], reply: &mut [u8], now: u64) -> Ingress {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Ingress::Drop(DropReason::TruncatedEthernet);
        };
        let dst = eth.dst_addr();
        let src = eth.src_addr();
        if !src.is_unicast() || src.0 == self.cfg.mac {
            return Ingress::Drop(DropReason::Martian);
        }
        let to_us = dst.0 == self.cfg.mac;
        let v6_multicast = dst.0[0] == 0x33 && dst.0[1] == 0x33;
        match eth.ethertype() {
            EthernetProtocol::Arp if to_us || dst.is_broadcast() => {
                // The ARP sender hardware address, not the Ethernet source, is learned.
                self.arp(eth.payload(), reply, now)
            }
            EthernetProtocol::Ipv4 if to_us => self.ipv4(src.0, eth.payload(), now),
            EthernetProtocol::Ipv6 if to_us || v6_multicast => {
                self.ipv6(src.0, eth.payload(), reply, now)
            }
            EthernetProtocol::Arp | EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => {
                Ingress::Drop(DropReason::NotForUs)
            }
            EthernetProtocol::Unknown(_) => {
                if to_us || dst.is_broadcast() || v6_multicast {
                    Ingress::Drop(DropReason::UnknownEtherType)
                } else {
                    Ingress::Drop(DropReason::NotForUs)
                }
            }
        }
    }

    fn arp(&mut self, payload: &[u8], reply: &mut [u8], now: u64) -> Ingress {
        let Ok(pkt) = ArpPacket::new_checked(payload) else {
            return Ingress::Drop(DropReason::MalformedArp);
        };
        // Repr::parse accepts only Ethernet/IPv4 (hardware len 6, protocol len 4).
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            return Ingress::Drop(DropReason::MalformedArp);
        };
        if !sha.is_unicast() {
            return Ingress::Drop(DropReason::MalformedArp);
        }
        let Some((ours, _)) = self.cfg.ipv4 else {
            return Ingress::Drop(DropReason::NotForUs);
        };
        let for_us = tpa == ours;
        // A request for us creates the sender's entry (we are about to talk to it); other
        // requests only update an entry we have (broadcast ARP noise does not fill the
        // table); a reply is taken for an entry we have or asked for (Linux arp_accept=0).
        let hint = match operation {
            ArpOperation::Request => Hint::Request { create: for_us },
            ArpOperation::Reply => Hint::Reply { override_: true },
            ArpOperation::Unknown(_) => return Ingress::Drop(DropReason::MalformedArp),
        };
        let learnable = spa != ours && !is_martian_v4(&spa) && self.on_link_v4(spa);
        let learned = learnable && self.learn(IpAddr::V4(spa), sha.0, hint, now);
        match operation {
            ArpOperation::Request if for_us => {
                // Probes (spa 0.0.0.0, RFC 5227) are answered too, to sha.
                let Some(len) = self.write_arp(reply, ArpOperation::Reply, sha.0, sha.0, spa)
                else {
                    return Ingress::Consumed;
                };
                self.counters.arp_requests_answered += 1;
                Ingress::Reply { len }
            }
            ArpOperation::Request => Ingress::Drop(DropReason::NotForUs),
            ArpOperation::Reply => {
                if learned {
                    self.counters.arp_replies_learned += 1;
                    Ingress::Consumed
                } else if for_us {
                    Ingress::Consumed
                } else {
                    Ingress::Drop(DropReason::NotForUs)
                }
            }
            ArpOperation::Unknown(_) => Ingress::Drop(DropReason::MalformedArp),
        }
    }

    fn ipv4(&mut self, eth_src: [u8; 6], payload: &[u8], now: u64) -> Ingress {
        let Some((ours, prefix)) = self.cfg.ipv4 else {
            return Ingress::Drop(DropReason::NotForUs);
        };
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return Ingress::Drop(DropReason::MalformedIpv4);
        };
        if ip.version() != 4 {
            return Ingress::Drop(DropReason::MalformedIpv4);
        }
        // Destination first: a packet for someone else is NotForUs whatever its checksums.
        if ip.dst_addr() != ours {
            return Ingress::Drop(DropReason::NotForUs);
        }
        let src = ip.src_addr();
        let own = src == ours || subnet_broadcast(ours, prefix) == Some(src);
        let len = usize::from(ip.total_len());
        self.take_ip(parse_ipv4(payload), own, eth_src, len, now)
    }

    fn ipv6(&mut self, eth_src: [u8; 6], payload: &[u8], reply: &mut [u8], now: u64) -> Ingress {
        let Ok(ip) = Ipv6Packet::new_checked(payload) else {
            return Ingress::Drop(DropReason::MalformedIpv6);
        };
        if ip.version() != 6 {
            return Ingress::Drop(DropReason::MalformedIpv6);
        }
        let dst = ip.dst_addr();
        let Some((ours, _)) = self.cfg.ipv6 else {
            return if dst.is_multicast() {
                Ingress::Consumed
            } else {
                Ingress::Drop(DropReason::NotForUs)
            };
        };
        if dst.is_multicast() {
            if dst != solicited_node(ours) && dst != ALL_NODES {
                return Ingress::Consumed;
            }
        } else if dst != ours {
            return Ingress::Drop(DropReason::NotForUs);
        }
        if ip.next_header() == IpProtocol::Icmpv6 {
            let body = ip.payload();
            if matches!(body.first(), Some(133..=137)) {
                return self.ndp(eth_src, &ip, body, reply, now);
            }
        }
        if dst.is_multicast() {
            // MLD queries, echo to all-nodes, ...: not for a server.
            return Ingress::Consumed;
        }
        let own = ip.src_addr() == ours;
        self.take_ip(parse_ipv6(payload), own, eth_src, ip.total_len(), now)
    }

    /// The end of [`L2::ipv4`] and [`L2::ipv6`] for a packet to us of `len`
    /// bytes: dropped if `parse` refused it or its source is one of our own
    /// addresses (`own_src`); else taken, and the neighbor it came through
    /// (the sender on-link, the gateway for anyone else) is confirmed.
    #[inline]
    fn take_ip(
        &mut self,
        parse: Result<ParsedIp, DropReason>,
        own_src: bool,
        eth_src: [u8; 6],
        len: usize,
        now: u64,
    ) -> Ingress {
        let parsed = match parse {
            Ok(p) => p,
            Err(r) => return Ingress::Drop(r),
        };
        if own_src {
            return Ingress::Drop(DropReason::Martian);
        }
        let src = parsed.key.src;
        match self.next_hops(src) {
            (true, _) => self.confirm(src, eth_src, now, true),
            // Traffic from off-link clients through the gateway confirms the gateway
            // (Linux's dst_confirm), so its entry does not expire while in use.
            (false, Some(gw)) => self.confirm(gw, eth_src, now, false),
            (false, None) => {}
        }
        Ingress::Ip { len, parsed }
    }

    fn ndp(
        &mut self,
        eth_src: [u8; 6],
        ip: &Ipv6Packet<&[u8]>,
        body: &[u8],
        reply: &mut [u8],
        now: u64,
    ) -> Ingress {
        // RFC 4861 §7.1: hop limit 255 proves the sender is on-link; ICMP code must be 0.
        if ip.hop_limit() != 255 {
            return Ingress::Drop(DropReason::MalformedIcmp);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_multicast() || src.is_loopback() {
            return Ingress::Drop(DropReason::Martian);
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(body) else {
            return Ingress::Drop(DropReason::MalformedIcmp);
        };
        if icmp.msg_code() != 0 {
            return Ingress::Drop(DropReason::MalformedIcmp);
        }
        if !icmp.verify_checksum(&src, &dst) {
            return Ingress::Drop(DropReason::BadL4Checksum);
        }
        let Ok(ndisc) = NdiscRepr::parse(&icmp) else {
            return Ingress::Drop(DropReason::MalformedIcmp);
        };
        let Some((ours, _)) = self.cfg.ipv6 else {
            return Ingress::Drop(DropReason::NotForUs);
        };
        match ndisc {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                // A group address cannot be the sender's (as ARP's sender hardware
                // address): answering to it would send our unicast NA to the whole group.
                let group_slla = lladdr
                    .and_then(mac_of)
                    .is_some_and(|m| !EthernetAddress(m).is_unicast());
                if target_addr.is_multicast() || group_slla {
                    return Ingress::Drop(DropReason::MalformedIcmp);
                }
                let dad = src.is_unspecified();
                // RFC 4861 §7.1.1: DAD probes go to a solicited-node group, without SLLA.
                if dad && (!is_solicited_node(&dst) || lladdr.is_some()) {
                    return Ingress::Drop(DropReason::MalformedIcmp);
                }
                if target_addr != ours {
                    return if dst.is_multicast() {
                        Ingress::Consumed
                    } else {
                        Ingress::Drop(DropReason::NotForUs)
                    };
                }
                // Only a source link-layer address option teaches a MAC (RFC 4861 §7.2.3);
                // without one the answer goes back to the frame's sender.
                let slla = lladdr.and_then(mac_of);
                let peer_mac = slla.unwrap_or(eth_src);
                if let Some(mac) = slla {
                    if !dad && src != ours && !is_martian_v6(&src) && self.on_link_v6(src) {
                        let hint = Hint::Request { create: true };
                        self.learn(IpAddr::V6(src), mac, hint, now);
                    }
                }
                // RFC 4861 §7.2.4: answer DAD to all-nodes, unsolicited.
                let (to_ip, to_mac, flags) = if dad {
                    (
                        ALL_NODES,
                        multicast_mac_v6(&ALL_NODES),
                        NdiscNeighborFlags::OVERRIDE,
                    )
                } else {
                    (
                        src,
                        peer_mac,
                        NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                    )
                };
                let na = NdiscRepr::NeighborAdvert {
                    flags,
                    target_addr: ours,
                    lladdr: Some(RawHardwareAddress::from_bytes(&self.cfg.mac)),
                };
                match self.write_ndp(reply, na, ours, to_ip, to_mac) {
                    Some(len) => {
                        self.counters.ndp_solicits_answered += 1;
                        Ingress::Reply { len }
                    }
                    None => Ingress::Consumed,
                }
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                let solicited = flags.contains(NdiscNeighborFlags::SOLICITED);
                // RFC 4861 §7.1.2.
                if target_addr.is_multicast() || (dst.is_multicast() && solicited) {
                    return Ingress::Drop(DropReason::MalformedIcmp);
                }
                let t = IpAddr::V6(target_addr);
                // Taken for an entry we have or asked for; a different MAC only with the
                // override flag, after the lock time (RFC 4861 §7.2.5). Without a target
                // link-layer address option it teaches nothing.
                let override_ = flags.contains(NdiscNeighborFlags::OVERRIDE);
                if let Some(mac) = lladdr.and_then(mac_of) {
                    if target_addr != ours
                        && !is_martian_v6(&target_addr)
                        && self.on_link_v6(target_addr)
                        && self.learn(t, mac, Hint::Reply { override_ }, now)
                    {
                        self.counters.ndp_adverts_learned += 1;
                    }
                }
                Ingress::Consumed
            }
            // Router solicitation/advertisement, redirect: not acted upon.
            _ => Ingress::Consumed,
        }
    }

    /// Fill the Ethernet header of an outgoing frame whose IP packet (from smoltcp) sits at
    /// `frame[14..14+ip_len]`.
    ///
    /// Next hop: the destination if on-link (in our prefix, or IPv6 link-local), else the
    /// configured gateway (none: `tx_unresolved` is counted and `Invalid` returned).
    /// Broadcast and multicast destinations map to their group MACs. Looks up the local
    /// cache, then the shared table (copying a hit into the local cache); on a miss holds a
    /// copy of the packet, writes an ARP request (IPv4) or NS (IPv6, to the solicited-node
    /// group) into `frame` and returns `Resolve`. One request is written per missed packet
    /// (no rate limit).
    pub fn egress(&mut self, frame: &mut [u8], ip_len: usize, now_ms: u64) -> Egress {
        let r = self.egress_inner(frame, ip_len, now_ms);
        match r {
            Egress::Send | Egress::Resolve { .. } => self.counters.tx_frames += 1,
            Egress::Invalid => {}
        }
        r
    }

    fn egress_inner(&mut self, frame: &mut [u8], ip_len: usize, now: u64) -> Egress {
        let Some(ip) = ETH_HDR
            .checked_add(ip_len)
            .and_then(|end| frame.get(ETH_HDR..end))
        else {
            return Egress::Invalid;
        };
        let (dst, ethertype) = match ip.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(ip) {
                Ok(p) => (IpAddr::V4(p.dst_addr()), EthernetProtocol::Ipv4),
                Err(_) => return Egress::Invalid,
            },
            Some(6) => match Ipv6Packet::new_checked(ip) {
                Ok(p) => (IpAddr::V6(p.dst_addr()), EthernetProtocol::Ipv6),
                Err(_) => return Egress::Invalid,
            },
            _ => return Egress::Invalid,
        };
        // Broadcast and multicast have their MAC; a unicast hop is resolved.
        let group_mac = match dst {
            IpAddr::V4(d) => {
                let Some((ours, prefix)) = self.cfg.ipv4 else {
                    return Egress::Invalid;
                };
                if d.is_broadcast() || subnet_broadcast(ours, prefix) == Some(d) {
                    Some(BROADCAST_MAC)
                } else if d.is_multicast() {
                    let o = d.octets();
                    Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
                } else if d.is_unspecified() {
                    return Egress::Invalid;
                } else {
                    None
                }
            }
            IpAddr::V6(d) => {
                if self.cfg.ipv6.is_none() || d.is_unspecified() {
                    return Egress::Invalid;
                }
                d.is_multicast().then(|| multicast_mac_v6(&d))
            }
        };
        let dst_mac = match group_mac {
            Some(mac) => mac,
            None => match self.unicast_mac(dst, frame, ip_len, now) {
                Ok(mac) => mac,
                Err(e) => return e,
            },
        };
        write_eth(frame, self.cfg.mac, dst_mac, ethertype);
        Egress::Send
    }

    /// The MAC to send a unicast packet for `dst` to: its own when on-link,
    /// else the gateway's. `Err` is what to do instead: drop
    /// (no gateway), or send the ARP request or neighbor solicitation that
    /// `frame` now holds while the packet waits for the answer.
    #[inline]
    fn unicast_mac(
        &mut self,
        dst: IpAddr,
        frame: &mut [u8],
        ip_len: usize,
        now: u64,
    ) -> Result<[u8; 6], Egress> {
        let (on_link, gateway) = self.next_hops(dst);
        let hop = if on_link {
            dst
        } else if let Some(gw) = gateway {
            gw
        } else {
            self.counters.tx_unresolved += 1;
            return Err(Egress::Invalid);
        };
        match self.resolve(hop, now) {
            Some(mac) => Ok(mac),
            None => {
                self.hold(hop, frame, ip_len, now);
                Err(self.request(frame, hop, now))
            }
        }
    }

    /// Ask for `hop`'s MAC: an ARP request or a neighbor solicitation
    /// written into `frame`.
    fn request(&mut self, frame: &mut [u8], hop: IpAddr, now: u64) -> Egress {
        self.counters.tx_unresolved += 1;
        // The reply will be taken (and confirm the entry).
        self.shared.pending(hop, now);
        let len = match hop {
            IpAddr::V4(hop) => {
                let len = self.write_arp(frame, ArpOperation::Request, BROADCAST_MAC, [0; 6], hop);
                self.counters.arp_requests_sent += u64::from(len.is_some());
                len
            }
            IpAddr::V6(hop) => {
                let Some((ours, _)) = self.cfg.ipv6 else {
                    return Egress::Invalid;
                };
                let group = solicited_node(hop);
                let ns = NdiscRepr::NeighborSolicit {
                    target_addr: hop,
                    lladdr: Some(RawHardwareAddress::from_bytes(&self.cfg.mac)),
                };
                let len = self.write_ndp(frame, ns, ours, group, multicast_mac_v6(&group));
                self.counters.ndp_solicits_sent += u64::from(len.is_some());
                len
            }
        };
        match len {
            Some(len) => Egress::Resolve { len },
            None => Egress::Invalid,
        }
    }

    /// Write an ARP frame from us into `buf`, zero-padded to 60 bytes. `None` if `buf` is
    /// too small or we have no IPv4 address.
    fn write_arp(
        &self,
        buf: &mut [u8],
        operation: ArpOperation,
        eth_dst: [u8; 6],
        tha: [u8; 6],
        tpa: Ipv4Addr,
    ) -> Option<usize> {
        let (ours, _) = self.cfg.ipv4?;
        let buf = buf.get_mut(..ETH_MIN_FRAME)?;
        write_eth(buf, self.cfg.mac, eth_dst, EthernetProtocol::Arp);
        let arp = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: EthernetAddress(self.cfg.mac),
            source_protocol_addr: ours,
            target_hardware_addr: EthernetAddress(tha),
            target_protocol_addr: tpa,
        };
        let body = buf.get_mut(ETH_HDR..ETH_HDR + ARP_LEN)?;
        arp.emit(&mut ArpPacket::new_unchecked(body));
        buf.get_mut(ETH_HDR + ARP_LEN..)?.fill(0);
        Some(ETH_MIN_FRAME)
    }

    /// Write an NDP message (hop limit 255, checksum filled) from `src` into `buf`.
    fn write_ndp(
        &self,
        buf: &mut [u8],
        msg: NdiscRepr<'_>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        eth_dst: [u8; 6],
    ) -> Option<usize> {
        let icmp = Icmpv6Repr::Ndisc(msg);
        let icmp_len = icmp.buffer_len();
        let total = ETH_HDR + 40 + icmp_len;
        let buf = buf.get_mut(..total)?;
        write_eth(buf, self.cfg.mac, eth_dst, EthernetProtocol::Ipv6);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: icmp_len,
            hop_limit: 255,
        };
        ip.emit(&mut Ipv6Packet::new_unchecked(buf.get_mut(ETH_HDR..)?));
        let body = buf.get_mut(ETH_HDR + 40..)?;
        body.fill(0);
        icmp.emit(
            &src,
            &dst,
            &mut Icmpv6Packet::new_unchecked(body),
            &self.caps,
        );
        Some(total)
    }

    /// Whether `ip` is on-link, and the gateway of its family (the hop to it
    /// when it is not).
    #[inline]
    fn next_hops(&self, ip: IpAddr) -> (bool, Option<IpAddr>) {
        match ip {
            IpAddr::V4(a) => (self.on_link_v4(a), self.cfg.gateway4.map(IpAddr::V4)),
            IpAddr::V6(a) => (self.on_link_v6(a), self.cfg.gateway6.map(IpAddr::V6)),
        }
    }

    fn on_link_v4(&self, a: Ipv4Addr) -> bool {
        self.cfg
            .ipv4
            .is_some_and(|(ours, prefix)| same_prefix_v4(ours, a, prefix))
    }

    fn on_link_v6(&self, a: Ipv6Addr) -> bool {
        a.is_unicast_link_local()
            || self
                .cfg
                .ipv6
                .is_some_and(|(ours, prefix)| same_prefix_v6(ours, a, prefix))
    }

    /// Apply what an ARP/NDP message says about `ip -> mac` to the shared table and, for a
    /// reply (the answer to our request, or news of an entry we have) that left the entry
    /// holding `mac`, to the local cache. Refusals are counted. Returns whether the entry
    /// holds `mac`.
    ///
    /// A request does not fill the local cache: the answer goes to the asker's MAC without
    /// a lookup, and an asker we then talk to enters the cache on its first packet
    /// ([`L2::confirm`]) or our first one to it ([`L2::resolve`]). So a flood of
    /// solicitations from new sources costs each one no cache insert and eviction, and
    /// leaves the cache to the peers the core talks to.
    fn learn(&mut self, ip: IpAddr, mac: [u8; 6], hint: Hint, now: u64) -> bool {
        if !EthernetAddress(mac).is_unicast() {
            return false;
        }
        let r = self.shared.update(ip, mac, hint, now);
        self.count(r);
        if r.learned() && matches!(hint, Hint::Reply { .. }) {
            // Not a confirmation: the first packet from that MAC still tells the table.
            self.cache_insert(ip, mac, now, 0);
        }
        r.learned()
    }

    /// An IP packet from on-link `ip` came from `mac`: confirm a matching entry (at most
    /// once a second per entry through the shared table); never learn or change one.
    /// `count_mismatch`: a different MAC is counted (for the packet's own source; not for
    /// the gateway, since another router may forward too).
    fn confirm(&mut self, ip: IpAddr, mac: [u8; 6], now: u64, count_mismatch: bool) {
        if let Some(e) = self.cache.get_mut(&ip) {
            if e.mac == mac && e.expires_ms > now && now < e.confirmed_ms + SHARED_REFRESH_MS {
                return;
            }
        }
        let r = self.shared.update(ip, mac, Hint::Confirm, now);
        if r == Update::Unknown && count_mismatch && self.learn_from_ip {
            self.learn(ip, mac, Hint::Request { create: true }, now);
            return;
        }
        if count_mismatch || r != Update::Mismatch {
            self.count(r);
        }
        if r == Update::Refreshed {
            self.cache_insert(ip, mac, now, now);
        }
    }

    fn count(&mut self, r: Update) {
        let c = &mut self.counters;
        match r {
            Update::Created | Update::Changed => c.neighbors_learned += 1,
            Update::Locked => c.neighbor_locked += 1,
            Update::NoOverride => c.neighbor_no_override += 1,
            Update::Unsolicited => c.neighbor_unsolicited += 1,
            Update::Mismatch => c.neighbor_mismatch += 1,
            Update::Refreshed | Update::Unknown => {}
        }
    }

    fn cache_insert(&mut self, ip: IpAddr, mac: [u8; 6], now: u64, confirmed_ms: u64) {
        let e = LocalEntry {
            mac,
            expires_ms: now.saturating_add(NEIGHBOR_TTL_MS),
            generation: self.shared.generation(),
            confirmed_ms,
        };
        self.cache.insert(ip, e);
        self.counters.neighbor_cache_evicted = self.cache.evicted();
    }

    /// Next-hop MAC from the local cache, else the shared table. A cached entry copied
    /// before some MAC changed somewhere (the shared generation moved) is read again.
    fn resolve(&mut self, ip: IpAddr, now: u64) -> Option<[u8; 6]> {
        let generation = self.shared.generation();
        let confirmed_ms = match self.cache.get_mut(&ip) {
            Some(e) if e.expires_ms > now && e.generation == generation => return Some(e.mac),
            Some(e) => e.confirmed_ms,
            None => 0,
        };
        let (mac, expires_ms) = self.shared.entry(&ip, now)?;
        self.cache.insert(
            ip,
            LocalEntry {
                mac,
                expires_ms,
                generation,
                confirmed_ms,
            },
        );
        self.counters.neighbor_cache_evicted = self.cache.evicted();
        Some(mac)
    }
}

/// Write an Ethernet header into `buf[..14]` (no-op if `buf` is shorter).
fn write_eth(buf: &mut [u8], src: [u8; 6], dst: [u8; 6], ethertype: EthernetProtocol) {
    if let Some(hdr) = buf.get_mut(..ETH_HDR) {
        EthernetRepr {
            src_addr: EthernetAddress(src),
            dst_addr: EthernetAddress(dst),
            ethertype,
        }
        .emit(&mut EthernetFrame::new_unchecked(hdr));
    }
}

fn mac_of(l: RawHardwareAddress) -> Option<[u8; 6]> {
    l.as_bytes().try_into().ok()
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn same_prefix_v4(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let m = mask_v4(prefix);
    u32::from(a) & m == u32::from(b) & m
}

fn same_prefix_v6(a: Ipv6Addr, b: Ipv6Addr, prefix: u8) -> bool {
    let m = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    u128::from(a) & m == u128::from(b) & m
}

/// The directed broadcast address of our subnet (none for /31 and /32).
fn subnet_broadcast(ours: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    (prefix <= 30).then(|| Ipv4Addr::from(u32::from(ours) | !mask_v4(prefix)))
}

/// ff02::1:ffXX:XXXX for a unicast address (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

fn is_solicited_node(a: &Ipv6Addr) -> bool {
    a.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// 33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464 §7).
fn multicast_mac_v6(a: &Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tests::{tcp_packet, udp_packet, OURS4, OURS6, PEER4, PEER6};
    use crate::parse::{FlowKey, Proto, L4};
    use smoltcp::wire::{Icmpv6Message, Ipv4Repr, TcpControl, UdpPacket, UDP_HEADER_LEN};
    use testkit::Rng;

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
    const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
    const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const T0: u64 = 1_000_000;

    fn cfg() -> L2Config {
        L2Config {
            mac: OUR_MAC,
            ipv4: Some((OURS4, 24)),
            ipv6: Some((OURS6, 64)),
            gateway4: Some(GW4),
            gateway6: Some(GW6),
        }
    }

    fn l2() -> L2 {
        L2::new(cfg(), Arc::new(SharedNeighbors::new()))
    }

    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HDR + payload.len()];
        write_eth(&mut f, src, dst, ethertype);
        f[ETH_HDR..].copy_from_slice(payload);
        f
    }

    fn arp_frame(op: ArpOperation, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let body = testkit::frames::arp(op, sha, spa, tpa);
        let dst = if op == ArpOperation::Request {
            BROADCAST_MAC
        } else {
            OUR_MAC
        };
        eth(dst, sha, EthernetProtocol::Arp, &body)
    }

    fn ndp_frame(
        msg: NdiscRepr<'_>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        eth_dst: [u8; 6],
        hop_limit: u8,
    ) -> Vec<u8> {
        let icmp = Icmpv6Repr::Ndisc(msg);
        let mut f = vec![0u8; ETH_HDR + 40 + icmp.buffer_len()];
        write_eth(&mut f, PEER_MAC, eth_dst, EthernetProtocol::Ipv6);
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: icmp.buffer_len(),
            hop_limit,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[ETH_HDR..]));
        icmp.emit(
            &src,
            &dst,
            &mut Icmpv6Packet::new_unchecked(&mut f[ETH_HDR + 40..]),
            &ChecksumCapabilities::default(),
        );
        f
    }

    fn ns_for(target: Ipv6Addr, src: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
        let group = solicited_node(target);
        ndp_frame(
            NdiscRepr::NeighborSolicit {
                target_addr: target,
                lladdr: Some(RawHardwareAddress::from_bytes(&PEER_MAC)),
            },
            src,
            group,
            multicast_mac_v6(&group),
            hop_limit,
        )
    }

    fn syn_frame(src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let ip = tcp_packet(src, dst, 40000, 80, TcpControl::Syn, &[]);
        let et = if src.is_ipv4() {
            EthernetProtocol::Ipv4
        } else {
            EthernetProtocol::Ipv6
        };
        eth(OUR_MAC, PEER_MAC, et, &ip)
    }

    /// An outgoing frame as the worker hands it over: 14 bytes of headroom, then the packet.
    fn out_frame(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; (ETH_HDR + ip.len()).max(128)];
        f[ETH_HDR..ETH_HDR + ip.len()].copy_from_slice(ip);
        f
    }

    /// The ARP message in `frame`, which we sent to `eth_dst`.
    fn sent_arp(frame: &[u8], eth_dst: [u8; 6]) -> ArpRepr {
        let e = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(e.dst_addr().0, eth_dst);
        assert_eq!(e.src_addr().0, OUR_MAC);
        assert_eq!(e.ethertype(), EthernetProtocol::Arp);
        ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap()
    }

    #[test]
    fn arp_request_for_us_is_answered() {
        let mut l = l2();
        let mut reply = [0u8; 128];
        let f = arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4);
        let Ingress::Reply { len } = l.ingress(&f, &mut reply, T0) else {
            panic!("no reply")
        };
        assert_eq!(len, ARP_FRAME_LEN);
        let arp = sent_arp(&reply[..len], PEER_MAC);
        assert_eq!(
            arp,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(OUR_MAC),
                source_protocol_addr: OURS4,
                target_hardware_addr: EthernetAddress(PEER_MAC),
                target_protocol_addr: PEER4,
            }
        );
        assert_eq!(l.counters().arp_requests_answered, 1);
        assert_eq!(l.counters().tx_frames, 1);
        // The requester was learned.
        let mut out = out_frame(&tcp_packet(
            OURS4.into(),
            PEER4.into(),
            80,
            40000,
            TcpControl::Syn,
            &[],
        ));
        let ip_len = out.len() - ETH_HDR;
        assert_eq!(l.egress(&mut out, ip_len, T0 + 1), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);
    }

    #[test]
    fn arp_for_other_ip_not_answered() {
        let mut l = l2();
        let mut reply = [0u8; 128];
        let f = arp_frame(
            ArpOperation::Request,
            PEER_MAC,
            PEER4,
            Ipv4Addr::new(10, 0, 0, 77),
        );
        assert_eq!(
            l.ingress(&f, &mut reply, T0),
            Ingress::Drop(DropReason::NotForUs)
        );
        // Not for us and unknown sender: not learned.
        assert_eq!(l.shared.len(), 0);
        assert_eq!(l.counters().dropped.not_for_us, 1);
        // Reply too small: consumed, no panic.
        let f = arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4);
        assert_eq!(l.ingress(&f, &mut [0u8; 20], T0), Ingress::Consumed);
    }

    /// A packet for a next hop not yet known is kept (its frame carries the
    /// ARP request) and handed back once the reply is in; the queue is
    /// bounded per hop and in all, and a hop that never answers has its
    /// packets dropped after `HOLD_MS`, each counted.
    #[test]
    fn packets_for_an_unresolved_hop_are_held_until_it_answers() {
        let mut l = l2();
        let syn = |port| tcp_packet(OURS4.into(), PEER4.into(), port, 1, TcpControl::Syn, &[]);
        for port in 80..86 {
            let pkt = syn(port);
            let mut out = out_frame(&pkt);
            assert!(matches!(
                l.egress(&mut out, pkt.len(), T0),
                Egress::Resolve { .. }
            ));
        }
        let c = l.counters();
        assert_eq!(
            (c.held, c.held_dropped, c.held_sent),
            (HOLD_PER_HOP as u64, 2, 0)
        );
        // What `send_resolved` hands out at `now`.
        let take = |l: &mut L2, now| {
            let mut out = Vec::new();
            l.send_resolved(now, |p| {
                out.push(p.to_vec());
                true
            });
            out
        };
        let ready = take(&mut l, T0 + 1);
        assert!(ready.is_empty(), "nothing resolved yet");
        assert!(l.has_held());
        let reply = arp_frame(ArpOperation::Reply, PEER_MAC, PEER4, OURS4);
        assert_eq!(
            l.ingress(&reply, &mut [0u8; 128], T0 + 2),
            Ingress::Consumed
        );
        let ready = take(&mut l, T0 + 3);
        assert_eq!(
            ready,
            (80..84).map(syn).collect::<Vec<_>>(),
            "oldest first, intact"
        );
        assert!(!l.has_held());
        assert_eq!(l.counters().held_sent, HOLD_PER_HOP as u64);
        // Now known: sent at once, nothing held.
        let pkt = syn(90);
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), T0 + 4), Egress::Send);
        assert!(!l.has_held());

        // A hop that never answers: its packets go after HOLD_MS.
        let silent = Ipv4Addr::new(10, 0, 0, 77);
        let pkt = tcp_packet(OURS4.into(), silent.into(), 80, 1, TcpControl::Syn, &[]);
        let mut out = out_frame(&pkt);
        assert!(matches!(
            l.egress(&mut out, pkt.len(), T0),
            Egress::Resolve { .. }
        ));
        take(&mut l, T0 + HOLD_MS);
        assert!(l.has_held(), "still within HOLD_MS");
        take(&mut l, T0 + HOLD_MS + 1);
        assert!(!l.has_held());
        assert_eq!(l.counters().held_dropped, 3);
        // The bound in all: HOLD_MAX packets over many hops.
        for i in 0..(HOLD_MAX as u8 + 5) {
            let dst = Ipv4Addr::new(10, 0, 0, 100 + i % 100);
            let pkt = tcp_packet(OURS4.into(), dst.into(), 80, 1, TcpControl::Syn, &[]);
            let mut out = out_frame(&pkt);
            l.egress(&mut out, pkt.len(), T0 + 10);
        }
        assert_eq!(l.held.len(), HOLD_MAX);
    }

    #[test]
    fn arp_reply_learned() {
        let mut l = l2();
        let f = arp_frame(ArpOperation::Reply, PEER_MAC, PEER4, OURS4);
        // Unsolicited: refused, counted (Linux arp_accept=0).
        assert_eq!(l.ingress(&f, &mut [0u8; 128], T0), Ingress::Consumed);
        assert_eq!(l.counters().arp_replies_learned, 0);
        assert_eq!(l.counters().neighbor_unsolicited, 1);
        assert_eq!(l.shared.lookup(&PEER4.into(), T0), None);
        // After our request it is the answer.
        let pkt = tcp_packet(OURS4.into(), PEER4.into(), 80, 1, TcpControl::Syn, &[]);
        let mut out = out_frame(&pkt);
        assert!(matches!(
            l.egress(&mut out, pkt.len(), T0),
            Egress::Resolve { .. }
        ));
        assert_eq!(l.ingress(&f, &mut [0u8; 128], T0), Ingress::Consumed);
        assert_eq!(l.counters().arp_replies_learned, 1);
        assert_eq!(l.shared.lookup(&PEER4.into(), T0), Some(PEER_MAC));
        assert_eq!(
            l.shared.lookup(&PEER4.into(), T0 + NEIGHBOR_TTL_MS + 1),
            None
        );
    }

    #[test]
    fn ns_for_us_answered_with_valid_na() {
        let mut l = l2();
        let mut reply = [0u8; 128];
        let f = ns_for(OURS6, PEER6, 255);
        let Ingress::Reply { len } = l.ingress(&f, &mut reply, T0) else {
            panic!("no reply")
        };
        assert_eq!(len, NDP_FRAME_LEN);
        let e = EthernetFrame::new_checked(&reply[..len]).unwrap();
        assert_eq!(e.dst_addr().0, PEER_MAC);
        assert_eq!(e.src_addr().0, OUR_MAC);
        assert_eq!(e.ethertype(), EthernetProtocol::Ipv6);
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.src_addr(), OURS6);
        assert_eq!(ip.dst_addr(), PEER6);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&OURS6, &PEER6));
        assert_eq!(icmp.msg_type(), Icmpv6Message::NeighborAdvert);
        let NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        } = NdiscRepr::parse(&icmp).unwrap()
        else {
            panic!("not an NA")
        };
        assert_eq!(target_addr, OURS6);
        assert_eq!(
            flags,
            NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE
        );
        assert_eq!(lladdr.unwrap().as_bytes(), &OUR_MAC);
        assert_eq!(l.counters().ndp_solicits_answered, 1);
        // The solicitor was learned.
        assert_eq!(l.shared.lookup(&PEER6.into(), T0), Some(PEER_MAC));

        // Unicast NS works too.
        let f = ndp_frame(
            NdiscRepr::NeighborSolicit {
                target_addr: OURS6,
                lladdr: None,
            },
            PEER6,
            OURS6,
            OUR_MAC,
            255,
        );
        assert!(matches!(
            l.ingress(&f, &mut reply, T0),
            Ingress::Reply { len: NDP_FRAME_LEN }
        ));
    }

    #[test]
    fn dad_ns_answered_to_all_nodes() {
        let mut l = l2();
        let mut reply = [0u8; 128];
        let group = solicited_node(OURS6);
        let f = ndp_frame(
            NdiscRepr::NeighborSolicit {
                target_addr: OURS6,
                lladdr: None,
            },
            Ipv6Addr::UNSPECIFIED,
            group,
            multicast_mac_v6(&group),
            255,
        );
        let Ingress::Reply { len } = l.ingress(&f, &mut reply, T0) else {
            panic!("no reply")
        };
        let e = EthernetFrame::new_checked(&reply[..len]).unwrap();
        assert_eq!(e.dst_addr().0, [0x33, 0x33, 0, 0, 0, 1]);
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.dst_addr(), ALL_NODES);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&OURS6, &ALL_NODES));
        assert!(l.shared.is_empty());
    }

    #[test]
    fn ndp_checks() {
        let mut l = l2();
        let mut reply = [0u8; 128];
        assert_eq!(
            l.ingress(&ns_for(OURS6, PEER6, 64), &mut reply, T0),
            Ingress::Drop(DropReason::MalformedIcmp)
        );
        let mut f = ns_for(OURS6, PEER6, 255);
        let n = f.len();
        f[n - 1] ^= 0x40; // inside the SLLA option
        assert_eq!(
            l.ingress(&f, &mut reply, T0),
            Ingress::Drop(DropReason::BadL4Checksum)
        );
        // NS for someone else on their solicited-node group: not ours, consumed.
        let other: Ipv6Addr = "fd00::99".parse().unwrap();
        assert_eq!(
            l.ingress(&ns_for(other, PEER6, 255), &mut reply, T0),
            Ingress::Consumed
        );
        // Router solicitation to all-routers: not our group -> Consumed.
        let rs = ndp_frame(
            NdiscRepr::RouterSolicit { lladdr: None },
            PEER6,
            "ff02::2".parse().unwrap(),
            [0x33, 0x33, 0, 0, 0, 2],
            255,
        );
        assert_eq!(l.ingress(&rs, &mut reply, T0), Ingress::Consumed);
        // NS for us whose source link-layer address is a group MAC: no answer to the group.
        for group_mac in [BROADCAST_MAC, multicast_mac_v6(&ALL_NODES)] {
            let ns = ndp_frame(
                NdiscRepr::NeighborSolicit {
                    target_addr: OURS6,
                    lladdr: Some(RawHardwareAddress::from_bytes(&group_mac)),
                },
                PEER6,
                solicited_node(OURS6),
                multicast_mac_v6(&solicited_node(OURS6)),
                255,
            );
            assert_eq!(
                l.ingress(&ns, &mut reply, T0),
                Ingress::Drop(DropReason::MalformedIcmp)
            );
        }
        assert_eq!(l.counters().ndp_solicits_answered, 0);
        assert!(l.shared.is_empty());
    }

    #[test]
    fn na_learned_after_our_ns() {
        let mut l = l2();
        let shared = l.shared.clone();
        let syn = || {
            out_frame(&tcp_packet(
                OURS6.into(),
                PEER6.into(),
                80,
                1,
                TcpControl::Syn,
                &[],
            ))
        };
        let mut out = syn();
        let ip_len = out.len() - ETH_HDR;
        let Egress::Resolve { len } = l.egress(&mut out, ip_len, T0) else {
            panic!("expected NS")
        };
        // A valid NS for the peer, to its solicited-node group.
        let e = EthernetFrame::new_checked(&out[..len]).unwrap();
        let group = solicited_node(PEER6);
        assert_eq!(e.dst_addr().0, multicast_mac_v6(&group));
        assert_eq!(e.src_addr().0, OUR_MAC);
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
            (OURS6, group, 255)
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&OURS6, &group));
        assert_eq!(
            NdiscRepr::parse(&icmp).unwrap(),
            NdiscRepr::NeighborSolicit {
                target_addr: PEER6,
                lladdr: Some(RawHardwareAddress::from_bytes(&OUR_MAC)),
            }
        );
        assert_eq!(l.counters().ndp_solicits_sent, 1);
        assert_eq!(l.counters().tx_unresolved, 1);

        // The peer answers.
        let na = ndp_frame(
            NdiscRepr::NeighborAdvert {
                flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                target_addr: PEER6,
                lladdr: Some(RawHardwareAddress::from_bytes(&PEER_MAC)),
            },
            PEER6,
            OURS6,
            OUR_MAC,
            255,
        );
        assert_eq!(l.ingress(&na, &mut [0u8; 128], T0), Ingress::Consumed);
        assert_eq!(l.counters().ndp_adverts_learned, 1);
        assert_eq!(shared.lookup(&PEER6.into(), T0), Some(PEER_MAC));
        let mut out = syn();
        assert_eq!(l.egress(&mut out, ip_len, T0), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);
        assert_eq!(out[6..12], OUR_MAC);
        assert_eq!(out[12..14], [0x86, 0xdd]);
    }

    #[test]
    fn tcp_syn_gives_flow_key() {
        for (src, dst) in [
            (IpAddr::V4(PEER4), IpAddr::V4(OURS4)),
            (IpAddr::V6(PEER6), IpAddr::V6(OURS6)),
        ] {
            let mut l = l2();
            let f = syn_frame(src, dst);
            let Ingress::Ip { len, parsed } = l.ingress(&f, &mut [0u8; 128], T0) else {
                panic!("not Ip")
            };
            assert_eq!(len, f.len() - ETH_HDR);
            assert_eq!(
                parsed.key,
                FlowKey {
                    proto: Proto::Tcp,
                    src,
                    sport: 40000,
                    dst,
                    dport: 80
                }
            );
            assert!(matches!(
                parsed.l4,
                L4::Tcp {
                    flags_syn: true,
                    flags_ack: false,
                    ..
                }
            ));
            assert_eq!(l.counters().rx_ip, 1);
        }
    }

    #[test]
    fn checksum_errors_are_dropped() {
        let mut l = l2();
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        let n = f.len();
        f[n - 2] ^= 0x01; // TCP options
        assert_eq!(
            l.ingress(&f, &mut [0u8; 128], T0),
            Ingress::Drop(DropReason::BadL4Checksum)
        );
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        f[ETH_HDR + 8] = 3; // TTL
        assert_eq!(
            l.ingress(&f, &mut [0u8; 128], T0),
            Ingress::Drop(DropReason::BadIpv4Checksum)
        );
        assert_eq!(l.counters().dropped.total(), 2);
        // Nothing learned from invalid packets.
        assert!(l.shared.is_empty());
    }

    #[test]
    fn not_for_us() {
        let mut l = l2();
        let mut r = [0u8; 128];
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        f[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::NotForUs)
        );
        let f = syn_frame(PEER4.into(), Ipv4Addr::new(10, 0, 0, 9).into());
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::NotForUs)
        );
        let f = syn_frame(PEER6.into(), "fd00::9".parse::<Ipv6Addr>().unwrap().into());
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::NotForUs)
        );
        // IPv4 to the broadcast MAC.
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        f[..6].copy_from_slice(&BROADCAST_MAC);
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::NotForUs)
        );
        // Multicast group we do not care about.
        let g: Ipv6Addr = "ff02::fb".parse().unwrap();
        let mut f = eth(
            multicast_mac_v6(&g),
            PEER_MAC,
            EthernetProtocol::Ipv6,
            &udp_packet(PEER6.into(), g.into(), b"mdns"),
        );
        assert_eq!(l.ingress(&f, &mut r, T0), Ingress::Consumed);
        // Unknown EtherType (VLAN).
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::UnknownEtherType)
        );
        // Group source MAC, or our own.
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        f[6] = 0x01;
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::Martian)
        );
        let f = syn_frame(OURS4.into(), OURS4.into());
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::Martian)
        );
        let f = syn_frame(Ipv4Addr::new(10, 0, 0, 255).into(), OURS4.into());
        assert_eq!(
            l.ingress(&f, &mut r, T0),
            Ingress::Drop(DropReason::Martian)
        );
    }

    #[test]
    fn ethernet_padding_is_excluded() {
        let mut l = l2();
        let ip = udp_packet(PEER4.into(), OURS4.into(), b"hi");
        assert_eq!(ip.len(), 30);
        let mut f = eth(OUR_MAC, PEER_MAC, EthernetProtocol::Ipv4, &ip);
        f.resize(60, 0xEE);
        let Ingress::Ip { len, parsed } = l.ingress(&f, &mut [0u8; 128], T0) else {
            panic!("not Ip")
        };
        assert_eq!(len, 30);
        assert_eq!(parsed.payload_len, 2);
        assert_eq!(parsed.l4, L4::Udp);
        // Same with IPv6 (padding never needed in practice, but trailing bytes ignored).
        let ip = udp_packet(PEER6.into(), OURS6.into(), b"");
        let mut f = eth(OUR_MAC, PEER_MAC, EthernetProtocol::Ipv6, &ip);
        f.extend_from_slice(&[1, 2, 3, 4]);
        let Ingress::Ip { len, .. } = l.ingress(&f, &mut [0u8; 128], T0) else {
            panic!("not Ip")
        };
        assert_eq!(len, 48);
        let udp = UdpPacket::new_checked(&f[ETH_HDR + 40..ETH_HDR + len]).unwrap();
        assert_eq!(usize::from(udp.len()), UDP_HEADER_LEN);
    }

    #[test]
    fn fragment_dropped() {
        let mut l = l2();
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HDR..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
        assert_eq!(
            l.ingress(&f, &mut [0u8; 128], T0),
            Ingress::Drop(DropReason::Fragment)
        );
        assert_eq!(l.counters().dropped.fragment, 1);
    }

    #[test]
    fn truncated_frames_never_panic() {
        let frames = [
            arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4),
            ns_for(OURS6, PEER6, 255),
            syn_frame(PEER4.into(), OURS4.into()),
            syn_frame(PEER6.into(), OURS6.into()),
        ];
        for f in frames {
            let mut l = l2();
            let mut reply = [0u8; 128];
            assert!(!matches!(l.ingress(&f, &mut reply, T0), Ingress::Drop(_)));
            for n in 0..f.len() {
                let r = l.ingress(&f[..n], &mut reply, T0);
                assert!(matches!(r, Ingress::Drop(_)), "prefix {n}: {r:?}");
            }
            assert_eq!(l.counters().dropped.total(), f.len() as u64);
        }
    }

    /// Asserts that `frame` is an ARP or NDP message we wrote: from our MAC and address,
    /// lengths and checksum valid; an answer (`answer`: an ARP reply to the asker's MAC, a
    /// neighbour advertisement of our address) or a request (an ARP request to broadcast,
    /// a solicitation to the target's solicited-node group), with our MAC in it.
    fn assert_sent_by_us(frame: &[u8], answer: bool) {
        let e = EthernetFrame::new_checked(frame).expect("an Ethernet frame");
        assert_eq!(e.src_addr().0, OUR_MAC);
        match e.ethertype() {
            EthernetProtocol::Arp => {
                let pkt = ArpPacket::new_checked(e.payload()).expect("an ARP packet");
                let Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_hardware_addr,
                    source_protocol_addr,
                    target_hardware_addr,
                    ..
                }) = ArpRepr::parse(&pkt)
                else {
                    panic!("not Ethernet/IPv4 ARP: {frame:02x?}")
                };
                assert_eq!(
                    (source_hardware_addr.0, source_protocol_addr),
                    (OUR_MAC, OURS4)
                );
                if answer {
                    assert_eq!(operation, ArpOperation::Reply);
                    assert_eq!(e.dst_addr(), target_hardware_addr);
                    assert!(e.dst_addr().is_unicast());
                } else {
                    assert_eq!(operation, ArpOperation::Request);
                    assert!(e.dst_addr().is_broadcast());
                }
            }
            EthernetProtocol::Ipv6 => {
                let ip = Ipv6Packet::new_checked(e.payload()).expect("an IPv6 packet");
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                assert_eq!((src, ip.hop_limit()), (OURS6, 255));
                let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("an ICMPv6 message");
                assert!(icmp.verify_checksum(&src, &dst));
                let our_lladdr = Some(RawHardwareAddress::from_bytes(&OUR_MAC));
                match NdiscRepr::parse(&icmp).expect("an NDP message") {
                    NdiscRepr::NeighborAdvert {
                        target_addr,
                        lladdr,
                        ..
                    } if answer => {
                        assert_eq!((target_addr, lladdr), (OURS6, our_lladdr));
                        if dst.is_multicast() {
                            assert_eq!(e.dst_addr().0, multicast_mac_v6(&dst));
                        } else {
                            assert!(e.dst_addr().is_unicast());
                        }
                    }
                    NdiscRepr::NeighborSolicit {
                        target_addr,
                        lladdr,
                    } if !answer => {
                        assert_eq!((dst, lladdr), (solicited_node(target_addr), our_lladdr));
                        assert_eq!(e.dst_addr().0, multicast_mac_v6(&dst));
                    }
                    m => panic!("answer {answer}: {m:?}"),
                }
            }
            t => panic!("we sent {t}"),
        }
    }

    /// `l.ingress` with what it must do for any input checked: a drop is counted under its
    /// reason and nowhere else; an IP packet is taken only if it came to our MAC and one of
    /// our addresses, lies within the frame, and parses on its own to what L2 reported; a
    /// reply is an ARP reply or neighbour advertisement of ours, counted as answered and
    /// sent.
    fn ingress_checked(l: &mut L2, frame: &[u8], reply: &mut [u8], now: u64) -> Ingress {
        let before = l.counters().clone();
        let r = l.ingress(frame, reply, now);
        let c = l.counters();
        let answered = |c: &L2Counters| c.arp_requests_answered + c.ndp_solicits_answered;
        let mut dropped = before.dropped.clone();
        let (mut rx_ip, mut tx, mut answers) = (before.rx_ip, before.tx_frames, answered(&before));
        match r {
            Ingress::Drop(reason) => dropped.add(reason),
            Ingress::Ip { len, parsed } => {
                rx_ip += 1;
                assert_eq!(frame[..6], OUR_MAC);
                let ip = frame
                    .get(ETH_HDR..ETH_HDR + len)
                    .expect("the packet lies within the frame");
                assert_eq!(crate::parse::parse_ip(ip), Ok(parsed));
                let (ethertype, ours, own_src) = match parsed.key.dst {
                    IpAddr::V4(d) => ([0x08, 0x00], d == OURS4, parsed.key.src == OURS4),
                    IpAddr::V6(d) => ([0x86, 0xdd], d == OURS6, parsed.key.src == OURS6),
                };
                assert_eq!(frame[12..14], ethertype);
                assert!(ours && !own_src, "{parsed:?}");
            }
            Ingress::Reply { len } => {
                tx += 1;
                answers += 1;
                assert_sent_by_us(&reply[..len], true);
            }
            Ingress::Consumed => {}
        }
        assert_eq!(c.rx_frames, before.rx_frames + 1);
        assert_eq!(
            (c.rx_ip, c.tx_frames, answered(c), &c.dropped),
            (rx_ip, tx, answers, &dropped),
            "{r:?} for {frame:02x?}"
        );
        r
    }

    /// `l.egress` with what it must do for any input checked: `Send` leaves an Ethernet
    /// header from our MAC of the packet's family; `Resolve` leaves our ARP request or
    /// neighbour solicitation and holds or drops the packet (counted either way);
    /// `Invalid` sends nothing. Receive counters never move.
    fn egress_checked(l: &mut L2, frame: &mut [u8], ip_len: usize, now: u64) -> Egress {
        let before = l.counters().clone();
        let version = frame.get(ETH_HDR).map(|b| b >> 4);
        let r = l.egress(frame, ip_len, now);
        let c = l.counters();
        match r {
            Egress::Send => {
                let e = EthernetFrame::new_checked(&frame[..ETH_HDR + ip_len]).unwrap();
                assert_eq!(e.src_addr().0, OUR_MAC);
                let ethertype = match version {
                    Some(4) => EthernetProtocol::Ipv4,
                    Some(6) => EthernetProtocol::Ipv6,
                    v => panic!("sent IP version {v:?}"),
                };
                assert_eq!(e.ethertype(), ethertype);
            }
            Egress::Resolve { len } => {
                assert_sent_by_us(&frame[..len], false);
                assert_eq!(c.tx_unresolved, before.tx_unresolved + 1);
                assert_eq!(
                    c.held + c.held_dropped,
                    before.held + before.held_dropped + 1
                );
            }
            Egress::Invalid => {}
        }
        let sent = u64::from(r != Egress::Invalid);
        assert_eq!(c.tx_frames, before.tx_frames + sent, "{r:?}");
        assert_eq!(
            (c.rx_frames, c.rx_ip, &c.dropped),
            (before.rx_frames, before.rx_ip, &before.dropped)
        );
        r
    }

    /// Random frames and mutations of valid ones: each is dropped under a counted reason,
    /// consumed, answered with a well-formed reply of ours, or taken as a well-formed IP
    /// packet for us (see [`ingress_checked`]); random outgoing packets are sent, resolved
    /// or refused as [`egress_checked`] says; the counters add up to the frames fed, and
    /// the neighbour table, the local cache and the held packets stay bounded.
    #[test]
    fn random_frames_never_panic() {
        let mut rng = Rng::new(0x1234_5678_9ABC_DEF1);
        let mut l = l2();
        let mut reply = [0u8; 128];
        let mut buf = [0u8; 200];
        let templates = [
            arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4),
            ns_for(OURS6, PEER6, 255),
            syn_frame(PEER4.into(), OURS4.into()),
            syn_frame(PEER6.into(), OURS6.into()),
        ];
        let (mut fed, mut ip, mut replies, mut consumed, mut resolved_sent) = (0, 0, 0, 0, 0);
        let mut tally = |r: Ingress| {
            fed += 1;
            match r {
                Ingress::Ip { .. } => ip += 1,
                Ingress::Reply { .. } => replies += 1,
                Ingress::Consumed => consumed += 1,
                Ingress::Drop(_) => {}
            }
        };
        for i in 0..40_000u64 {
            let n = rng.below(buf.len());
            rng.fill(&mut buf[..n]);
            // Often keep a plausible header so deeper layers are reached.
            if n >= 14 && rng.below(2) == 0 {
                buf[..6].copy_from_slice(&OUR_MAC);
                let et: [u8; 2] = match rng.below(3) {
                    0 => [0x08, 0x00],
                    1 => [0x08, 0x06],
                    _ => [0x86, 0xdd],
                };
                buf[12..14].copy_from_slice(&et);
            }
            tally(ingress_checked(&mut l, &buf[..n], &mut reply, T0 + i));
            // Random "IP packets" going out.
            let ip_len = rng.below(buf.len());
            egress_checked(&mut l, &mut buf, ip_len, T0 + i);
            l.send_resolved(T0 + i, |p| {
                resolved_sent += 1;
                matches!(p.first().map(|b| b >> 4), Some(4 | 6))
            });
        }
        // Mutations of valid frames.
        for t in templates {
            for i in 0..5_000 {
                let mut f = t.clone();
                crate::parse::tests::scramble(&mut rng, &mut f, 3);
                let cut = f.len() - rng.below(8).min(f.len());
                tally(ingress_checked(&mut l, &f[..cut], &mut reply, T0 + i));
            }
        }
        let c = l.counters();
        assert_eq!(fed, 40_000 + 4 * 5_000);
        assert_eq!(c.rx_frames, fed);
        assert_eq!(
            c.rx_frames,
            c.rx_ip + c.dropped.total() + replies + consumed
        );
        assert_eq!(c.rx_ip, ip);
        // The input reached every layer: some frames of each kind were taken, answered,
        // and dropped at the Ethernet, ARP, IP and L4 checks.
        assert!(ip > 0 && replies > 0 && consumed > 0, "{c:?}");
        for r in [
            DropReason::TruncatedEthernet,
            DropReason::NotForUs,
            DropReason::MalformedArp,
            DropReason::MalformedIpv4,
            DropReason::MalformedIpv6,
            DropReason::BadL4Checksum,
        ] {
            assert!(c.dropped.get(r) > 0, "no {r} drop: {c:?}");
        }
        // Every entry of the table was created by a counted ARP/NDP message or by a
        // request of ours; the cache and the held packets stay within their bounds.
        let entries = l.shared.len() as u64;
        assert!(
            entries <= c.neighbors_learned + c.tx_unresolved,
            "{entries} {c:?}"
        );
        assert!(l.shared.len() <= MAX_NEIGHBORS);
        assert!(l.cache.len() <= LOCAL_NEIGHBORS);
        assert!(l.held.len() <= HOLD_MAX);
        assert!(c.held + c.held_dropped > 0, "no packet was held: {c:?}");
        assert_eq!(c.held_sent, resolved_sent);
        assert!(l.held.len() as u64 <= c.held - c.held_sent);
    }

    /// What L2 must do with an NDP message that reached it with a valid checksum and
    /// hop limit, as RFC 4861 says.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    enum NdpOutcome {
        /// A solicitation for our address: a neighbour advertisement back.
        Answer,
        /// Another solicitation, an advertisement, a router message: nothing to send.
        Consumed,
        /// It does not parse, or breaks RFC 4861 §7.1 (multicast target, solicited
        /// advertisement to a group), or solicits from a group MAC: `Drop(MalformedIcmp)`.
        Malformed,
    }

    /// Random NDP bodies with a correct checksum and hop limit reach NdiscRepr::parse.
    /// Each gets the outcome RFC 4861 gives it ([`NdpOutcome`], with the checks of
    /// [`ingress_checked`]); the table learns nothing but the one sender, PEER6.
    #[test]
    fn random_ndp_bodies_never_panic() {
        let mut rng = Rng::new(42);
        let mut l = l2();
        let mut reply = [0u8; 128];
        let mut seen = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let body_len = 4 + rng.below(120);
            let mut body = vec![0u8; body_len];
            rng.fill(&mut body);
            body[0] = 133 + rng.below(5) as u8;
            body[1] = 0;
            if body_len > 24 && rng.below(2) == 0 {
                body[8..24].copy_from_slice(&OURS6.octets());
            }
            // Plausible option headers (types 1..=5, short lengths) at the first option.
            for off in [24usize, 40] {
                if body_len > off + 1 && rng.below(2) == 0 {
                    body[off] = 1 + rng.below(5) as u8;
                    body[off + 1] = rng.below(7) as u8;
                }
            }
            let group = solicited_node(OURS6);
            let mut f = vec![0u8; ETH_HDR + 40 + body_len];
            write_eth(
                &mut f,
                PEER_MAC,
                multicast_mac_v6(&group),
                EthernetProtocol::Ipv6,
            );
            Ipv6Repr {
                src_addr: PEER6,
                dst_addr: group,
                next_header: IpProtocol::Icmpv6,
                payload_len: body_len,
                hop_limit: 255,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut f[ETH_HDR..]));
            f[ETH_HDR + 40..].copy_from_slice(&body);
            Icmpv6Packet::new_unchecked(&mut f[ETH_HDR + 40..]).fill_checksum(&PEER6, &group);
            let icmp = Icmpv6Packet::new_checked(&f[ETH_HDR + 40..]);
            let want = match icmp.as_ref().ok().map(NdiscRepr::parse) {
                None | Some(Err(_)) => NdpOutcome::Malformed,
                Some(Ok(NdiscRepr::NeighborSolicit {
                    target_addr,
                    lladdr,
                })) => {
                    let group_slla = lladdr
                        .and_then(mac_of)
                        .is_some_and(|m| !EthernetAddress(m).is_unicast());
                    if target_addr.is_multicast() || group_slla {
                        NdpOutcome::Malformed
                    } else if target_addr == OURS6 {
                        NdpOutcome::Answer
                    } else {
                        NdpOutcome::Consumed
                    }
                }
                Some(Ok(NdiscRepr::NeighborAdvert {
                    flags, target_addr, ..
                })) if target_addr.is_multicast()
                    || flags.contains(NdiscNeighborFlags::SOLICITED) =>
                {
                    NdpOutcome::Malformed
                }
                Some(Ok(_)) => NdpOutcome::Consumed,
            };
            let got = match ingress_checked(&mut l, &f, &mut reply, T0) {
                Ingress::Reply { .. } => NdpOutcome::Answer,
                Ingress::Consumed => NdpOutcome::Consumed,
                Ingress::Drop(DropReason::MalformedIcmp) => NdpOutcome::Malformed,
                r => panic!("{r:?} for {body:02x?}"),
            };
            assert_eq!(got, want, "type {} body {body:02x?}", body[0]);
            *seen.entry(want).or_insert(0u64) += 1;
        }
        // Every outcome was reached, and the counters agree with them.
        let c = l.counters();
        let count = |o| seen.get(&o).copied().unwrap_or(0);
        assert!(seen.len() == 3, "{seen:?}");
        assert_eq!(c.ndp_solicits_answered, count(NdpOutcome::Answer));
        assert_eq!(c.dropped.total(), c.dropped.malformed_icmp);
        assert_eq!(c.dropped.malformed_icmp, count(NdpOutcome::Malformed));
        assert_eq!(c.rx_frames, 20_000);
        // Advertisements were unsolicited: only the soliciting sender can be in the table.
        assert!(l.shared.len() <= 1);
        assert_eq!(l.shared.is_empty(), !l.shared.contains(&IpAddr::V6(PEER6)));
    }

    #[test]
    fn learning_and_cross_core_sharing() {
        let shared = Arc::new(SharedNeighbors::new());
        let mut a = L2::new(cfg(), shared.clone());
        let mut b = L2::new(cfg(), shared.clone());
        let pkt = tcp_packet(OURS4.into(), PEER4.into(), 80, 40000, TcpControl::Syn, &[]);
        let ip_len = pkt.len();

        // Before learning: both miss.
        let mut out = out_frame(&pkt);
        assert!(matches!(
            b.egress(&mut out, ip_len, T0),
            Egress::Resolve { .. }
        ));

        // An IP packet alone teaches nothing.
        let f = syn_frame(PEER4.into(), OURS4.into());
        assert!(matches!(
            a.ingress(&f, &mut [0u8; 128], T0),
            Ingress::Ip { .. }
        ));
        assert_eq!(a.counters().neighbors_learned, 0);
        assert_eq!(shared.lookup(&PEER4.into(), T0), None);

        // Core A hears the peer's ARP request for us, then its SYN.
        let req = arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4);
        assert!(matches!(
            a.ingress(&req, &mut [0u8; 128], T0),
            Ingress::Reply { .. }
        ));
        assert_eq!(a.counters().neighbors_learned, 1);
        assert!(matches!(
            a.ingress(&f, &mut [0u8; 128], T0),
            Ingress::Ip { .. }
        ));
        let mut out = out_frame(&pkt);
        assert_eq!(a.egress(&mut out, ip_len, T0), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);
        assert_eq!(out[6..12], OUR_MAC);
        assert_eq!(out[12..14], [0x08, 0x00]);
        assert_eq!(out[ETH_HDR..ETH_HDR + ip_len], pkt[..]);

        // Core B never heard from the peer but resolves it through the shared table.
        let mut out = out_frame(&pkt);
        assert_eq!(b.egress(&mut out, ip_len, T0 + 5), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);

        // The peer moves to a new MAC and says so (gratuitous ARP) once the lock time has
        // passed, seen by core A: core B follows at once.
        let new_mac = [0x02, 0, 0, 0, 0, 0x22];
        let t = T0 + NEIGHBOR_LOCKTIME_MS + 10;
        let garp = arp_frame(ArpOperation::Request, new_mac, PEER4, PEER4);
        assert_eq!(
            a.ingress(&garp, &mut [0u8; 128], t),
            Ingress::Drop(DropReason::NotForUs)
        );
        let mut out = out_frame(&pkt);
        assert_eq!(b.egress(&mut out, ip_len, t + 1), Egress::Send);
        assert_eq!(out[..6], new_mac);

        // Traffic from the peer's MAC keeps the entry alive (at most one shared update a
        // second per entry); without it, entries expire.
        let mut f = syn_frame(PEER4.into(), OURS4.into());
        f[6..12].copy_from_slice(&new_mac);
        let mut now = t;
        for _ in 0..3 {
            now += NEIGHBOR_TTL_MS / 2;
            assert!(matches!(
                a.ingress(&f, &mut [0u8; 128], now),
                Ingress::Ip { .. }
            ));
        }
        let mut out = out_frame(&pkt);
        assert_eq!(b.egress(&mut out, ip_len, now + 1), Egress::Send);
        let later = now + NEIGHBOR_TTL_MS + 1;
        let mut out = out_frame(&pkt);
        assert!(matches!(
            b.egress(&mut out, ip_len, later),
            Egress::Resolve { .. }
        ));

        // Off-link senders are not learned.
        let far = Ipv4Addr::new(192, 0, 2, 7);
        let f = arp_frame(ArpOperation::Request, PEER_MAC, far, OURS4);
        let _ = a.ingress(&f, &mut [0u8; 128], T0);
        assert_eq!(shared.lookup(&far.into(), T0), None);
    }

    /// A sender spoofing a peer's (or the gateway's) address from another MAC redirects
    /// nothing: IP packets never teach a MAC, and the attempt is counted.
    #[test]
    fn spoofed_ip_from_another_mac_redirects_no_reply() {
        let shared = Arc::new(SharedNeighbors::new());
        let mut l = L2::new(cfg(), shared.clone());
        let evil = [0x02, 0, 0, 0, 0, 0x66];
        for (peer, pkt, learn) in [
            (
                IpAddr::V4(PEER4),
                tcp_packet(OURS4.into(), PEER4.into(), 80, 1, TcpControl::Psh, &[]),
                arp_frame(ArpOperation::Request, PEER_MAC, PEER4, OURS4),
            ),
            (
                IpAddr::V6(PEER6),
                tcp_packet(OURS6.into(), PEER6.into(), 80, 1, TcpControl::Psh, &[]),
                ns_for(OURS6, PEER6, 255),
            ),
            (
                IpAddr::V4(GW4),
                tcp_packet(
                    OURS4.into(),
                    "192.0.2.9".parse().unwrap(),
                    80,
                    1,
                    TcpControl::Psh,
                    &[],
                ),
                arp_frame(ArpOperation::Request, GW_MAC, GW4, OURS4),
            ),
        ] {
            let learn_mac = if peer == IpAddr::V4(GW4) {
                GW_MAC
            } else {
                PEER_MAC
            };
            assert!(matches!(
                l.ingress(&learn, &mut [0u8; 128], T0),
                Ingress::Reply { .. }
            ));
            // Long after the lock time, spoofed packets from another MAC arrive.
            let before = l.counters().neighbor_mismatch;
            let mut f = syn_frame(
                peer,
                if peer.is_ipv4() {
                    OURS4.into()
                } else {
                    OURS6.into()
                },
            );
            f[6..12].copy_from_slice(&evil);
            for k in 0..5 {
                assert!(matches!(
                    l.ingress(&f, &mut [0u8; 128], T0 + 10_000 + k),
                    Ingress::Ip { .. }
                ));
            }
            assert_eq!(l.counters().neighbor_mismatch, before + 5);
            let mut out = out_frame(&pkt);
            assert_eq!(l.egress(&mut out, pkt.len(), T0 + 10_010), Egress::Send);
            assert_eq!(out[..6], learn_mac, "{peer}");
            assert_eq!(shared.lookup(&peer, T0 + 10_010), Some(learn_mac));
        }
        // Spoofing an address we never heard from creates nothing either.
        let stranger: Ipv4Addr = "10.0.0.77".parse().unwrap();
        let f = syn_frame(stranger.into(), OURS4.into());
        let _ = l.ingress(&f, &mut [0u8; 128], T0);
        assert!(!shared.contains(&stranger.into()));
    }

    fn na_frame(target: Ipv6Addr, mac: [u8; 6], flags: NdiscNeighborFlags) -> Vec<u8> {
        ndp_frame(
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr: target,
                lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
            },
            target,
            OURS6,
            OUR_MAC,
            255,
        )
    }

    #[test]
    fn na_override_flag_and_lock_time() {
        let mut l = l2();
        let other = [0x02, 0, 0, 0, 0, 0x33];
        let pkt = tcp_packet(OURS6.into(), PEER6.into(), 80, 1, TcpControl::Psh, &[]);
        // We ask; the solicited answer without override still fills the pending entry.
        let mut out = out_frame(&pkt);
        assert!(matches!(
            l.egress(&mut out, pkt.len(), T0),
            Egress::Resolve { .. }
        ));
        let na = na_frame(PEER6, PEER_MAC, NdiscNeighborFlags::SOLICITED);
        assert_eq!(l.ingress(&na, &mut [0u8; 128], T0 + 1), Ingress::Consumed);
        assert_eq!(l.shared.lookup(&PEER6.into(), T0 + 1), Some(PEER_MAC));
        // Another MAC without the override flag: refused, even long after.
        let t = T0 + 30_000;
        let na = na_frame(PEER6, other, NdiscNeighborFlags::empty());
        assert_eq!(l.ingress(&na, &mut [0u8; 128], t), Ingress::Consumed);
        assert_eq!(l.counters().neighbor_no_override, 1);
        assert_eq!(l.shared.lookup(&PEER6.into(), t), Some(PEER_MAC));
        // With override, but within the lock time of a confirmation: refused.
        let mut f = syn_frame(PEER6.into(), OURS6.into());
        f[6..12].copy_from_slice(&PEER_MAC);
        let _ = l.ingress(&f, &mut [0u8; 128], t);
        let na = na_frame(PEER6, other, NdiscNeighborFlags::OVERRIDE);
        let locked = t + NEIGHBOR_LOCKTIME_MS - 1;
        assert_eq!(l.ingress(&na, &mut [0u8; 128], locked), Ingress::Consumed);
        assert_eq!(l.counters().neighbor_locked, 1);
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), locked), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);
        // After it: replaced, and the next packet goes to the new MAC.
        let free = t + NEIGHBOR_LOCKTIME_MS;
        assert_eq!(l.ingress(&na, &mut [0u8; 128], free), Ingress::Consumed);
        assert_eq!(l.counters().ndp_adverts_learned, 2);
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), free), Egress::Send);
        assert_eq!(out[..6], other);
        // An advertisement for an address nobody asked about: refused.
        let stranger: Ipv6Addr = "fd00::99".parse().unwrap();
        let na = na_frame(stranger, other, NdiscNeighborFlags::OVERRIDE);
        assert_eq!(l.ingress(&na, &mut [0u8; 128], free), Ingress::Consumed);
        assert_eq!(l.counters().neighbor_unsolicited, 1);
        assert!(!l.shared.contains(&stranger.into()));
    }

    /// A million on-link IPv6 sources solicit us (each creating an entry, as Linux
    /// does): the table stays bounded, eviction takes constant work, and the peers we
    /// talk to keep their entries.
    #[test]
    fn ipv6_neighbor_flood_keeps_real_peers() {
        let shared = Arc::new(SharedNeighbors::new());
        let mut l = L2::new(cfg(), shared.clone());
        // Real peers: solicit us, then talk (traffic confirms them).
        let peers: Vec<Ipv6Addr> = (0..200u16)
            .map(|i| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, i))
            .collect();
        for (i, p) in peers.iter().enumerate() {
            let t = T0 + i as u64;
            let _ = l.ingress(&ns_for(OURS6, *p, 255), &mut [0u8; 128], t);
            let _ = l.ingress(&syn_frame((*p).into(), OURS6.into()), &mut [0u8; 128], t);
        }
        assert_eq!(shared.stats().protected, peers.len());
        // The flood: one NS template, source address and checksum patched per frame.
        let mut f = ns_for(OURS6, PEER6, 255);
        let mut reply = [0u8; 128];
        let n = 1_000_000u32;
        for i in 0..n {
            let src = Ipv6Addr::new(0xfd00, 0, 0, 0, 0x8000, 0, (i >> 16) as u16, i as u16);
            f[ETH_HDR + 8..ETH_HDR + 24].copy_from_slice(&src.octets());
            let dst = Ipv6Packet::new_checked(&f[ETH_HDR..]).unwrap().dst_addr();
            Icmpv6Packet::new_unchecked(&mut f[ETH_HDR + 40..]).fill_checksum(&src, &dst);
            assert!(matches!(
                l.ingress(&f, &mut reply, T0 + 1_000),
                Ingress::Reply { .. }
            ));
        }
        let s = shared.stats();
        assert!(s.entries <= MAX_NEIGHBORS);
        // Every new entry past the table's size evicted exactly one (no scan, no purge).
        let created = u64::from(n) + peers.len() as u64;
        assert_eq!(s.evicted, created - s.entries as u64);
        // The core's cache holds the peers it talked to, untouched by the flood.
        assert_eq!(l.cache.len(), peers.len());
        assert_eq!(l.counters().neighbor_cache_evicted, 0);
        assert!(peers
            .iter()
            .all(|p| l.cache.get_mut(&(*p).into()).is_some()));
        // The real peers are all still resolved, from the shared table too.
        let mut other = L2::new(cfg(), shared.clone());
        for p in &peers {
            let pkt = tcp_packet(OURS6.into(), (*p).into(), 80, 1, TcpControl::Psh, &[]);
            let mut out = out_frame(&pkt);
            assert_eq!(other.egress(&mut out, pkt.len(), T0 + 2_000), Egress::Send);
            assert_eq!(out[..6], PEER_MAC);
        }
    }

    #[test]
    fn egress_miss_writes_arp_request() {
        let mut l = l2();
        let pkt = tcp_packet(OURS4.into(), PEER4.into(), 80, 1, TcpControl::Syn, &[]);
        let mut out = vec![0u8; 86];
        out[ETH_HDR..ETH_HDR + pkt.len()].copy_from_slice(&pkt);
        let Egress::Resolve { len } = l.egress(&mut out, pkt.len(), T0) else {
            panic!("expected ARP")
        };
        assert_eq!(len, 60);
        let arp = sent_arp(&out[..len], BROADCAST_MAC);
        assert_eq!(
            arp,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(OUR_MAC),
                source_protocol_addr: OURS4,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: PEER4,
            }
        );
        assert_eq!(out[ETH_HDR + ARP_LEN..60], [0u8; 60 - ETH_HDR - ARP_LEN]);
        let c = l.counters();
        assert_eq!(
            (c.arp_requests_sent, c.tx_unresolved, c.tx_frames),
            (1, 1, 1)
        );

        // The peer answers the request; the next packet goes out.
        let f = arp_frame(ArpOperation::Reply, PEER_MAC, PEER4, OURS4);
        assert_eq!(l.ingress(&f, &mut [0u8; 128], T0), Ingress::Consumed);
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), T0), Egress::Send);
        assert_eq!(out[..6], PEER_MAC);
    }

    #[test]
    fn off_link_goes_to_gateway() {
        let mut l = l2();
        let far4 = Ipv4Addr::new(192, 0, 2, 1);
        let far6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        // Miss: the request is for the gateway, not the destination.
        let pkt = tcp_packet(OURS4.into(), far4.into(), 80, 1, TcpControl::Syn, &[]);
        let mut out = out_frame(&pkt);
        let Egress::Resolve { len } = l.egress(&mut out, pkt.len(), T0) else {
            panic!("expected ARP")
        };
        let ArpRepr::EthernetIpv4 {
            target_protocol_addr,
            ..
        } = sent_arp(&out[..len], BROADCAST_MAC)
        else {
            panic!()
        };
        assert_eq!(target_protocol_addr, GW4);

        let pkt6 = tcp_packet(OURS6.into(), far6.into(), 80, 1, TcpControl::Syn, &[]);
        let mut out = out_frame(&pkt6);
        let Egress::Resolve { len } = l.egress(&mut out, pkt6.len(), T0) else {
            panic!("expected NS")
        };
        let e = EthernetFrame::new_checked(&out[..len]).unwrap();
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.dst_addr(), solicited_node(GW6));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let NdiscRepr::NeighborSolicit { target_addr, .. } = NdiscRepr::parse(&icmp).unwrap()
        else {
            panic!()
        };
        assert_eq!(target_addr, GW6);

        // Once the gateways are known, off-link packets go to their MACs.
        l.shared.insert(GW4.into(), GW_MAC, T0);
        l.shared.insert(GW6.into(), GW_MAC, T0);
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), T0), Egress::Send);
        assert_eq!(out[..6], GW_MAC);
        let mut out = out_frame(&pkt6);
        assert_eq!(l.egress(&mut out, pkt6.len(), T0), Egress::Send);
        assert_eq!(out[..6], GW_MAC);

        // Traffic from off-link clients through the gateway keeps its entry alive; from
        // another MAC it does not.
        let mut now = T0;
        for _ in 0..4 {
            now += NEIGHBOR_TTL_MS / 2;
            let mut f = syn_frame(far4.into(), OURS4.into());
            f[6..12].copy_from_slice(&GW_MAC);
            let _ = l.ingress(&f, &mut [0u8; 128], now);
        }
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), now + 1), Egress::Send);
        assert_eq!(out[..6], GW_MAC);
        let mut f = syn_frame(far4.into(), OURS4.into());
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
        let _ = l.ingress(&f, &mut [0u8; 128], now + 10);
        assert_eq!(l.counters().neighbor_mismatch, 0);
        let mut out = out_frame(&pkt6);
        let t6 = T0 + NEIGHBOR_TTL_MS + 1;
        assert!(matches!(
            l.egress(&mut out, pkt6.len(), t6),
            Egress::Resolve { .. }
        ));

        // No gateway: Invalid, counted as unresolved.
        let mut c = cfg();
        c.gateway4 = None;
        let mut l = L2::new(c, Arc::new(SharedNeighbors::new()));
        let mut out = out_frame(&pkt);
        assert_eq!(l.egress(&mut out, pkt.len(), T0), Egress::Invalid);
        assert_eq!(l.counters().tx_unresolved, 1);
    }

    #[test]
    fn egress_broadcast_multicast_and_invalid() {
        let mut l = l2();
        let caps = ChecksumCapabilities::default();
        let mk4 = |dst: Ipv4Addr| {
            let r = Ipv4Repr {
                src_addr: OURS4,
                dst_addr: dst,
                next_header: IpProtocol::Udp,
                payload_len: 0,
                hop_limit: 1,
            };
            let mut b = vec![0u8; 20];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]), &caps);
            b
        };
        for (dst, mac) in [
            (Ipv4Addr::BROADCAST, BROADCAST_MAC),
            (Ipv4Addr::new(10, 0, 0, 255), BROADCAST_MAC),
            (
                Ipv4Addr::new(239, 129, 2, 3),
                [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03],
            ),
        ] {
            let mut out = out_frame(&mk4(dst));
            assert_eq!(l.egress(&mut out, 20, T0), Egress::Send, "{dst}");
            assert_eq!(out[..6], mac);
        }
        let g: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let mut out = out_frame(&udp_packet(OURS6.into(), g.into(), b""));
        assert_eq!(l.egress(&mut out, 48, T0), Egress::Send);
        assert_eq!(out[..6], [0x33, 0x33, 0xff, 0, 0, 2]);

        let mut out = vec![0u8; 100];
        assert_eq!(l.egress(&mut out, 40, T0), Egress::Invalid); // version 0
        assert_eq!(l.egress(&mut out, 1000, T0), Egress::Invalid); // beyond the frame
        assert_eq!(l.egress(&mut out, usize::MAX, T0), Egress::Invalid);
        let mut tiny = vec![0u8; 4];
        assert_eq!(l.egress(&mut tiny, 0, T0), Egress::Invalid);
        assert_eq!(l.counters().tx_frames, 4);
        // IPv6 packet on a v4-only host.
        let mut c = cfg();
        c.ipv6 = None;
        let mut l = L2::new(c, Arc::new(SharedNeighbors::new()));
        let mut out = out_frame(&udp_packet(OURS6.into(), PEER6.into(), b""));
        assert_eq!(l.egress(&mut out, 48, T0), Egress::Invalid);
    }

    #[test]
    fn shared_table_is_bounded() {
        let s = SharedNeighbors::new();
        for i in 0..(MAX_NEIGHBORS as u32 + 10) {
            s.insert(IpAddr::V4(Ipv4Addr::from(i)), PEER_MAC, T0);
        }
        // Shards fill unevenly (keyed hash): each is bounded on its own.
        let n = s.len();
        assert!(n <= MAX_NEIGHBORS && n > MAX_NEIGHBORS * 9 / 10, "{n}");
        let ip = IpAddr::V4(Ipv4Addr::from(u32::MAX));
        s.insert(ip, PEER_MAC, T0);
        assert!(s.len() <= MAX_NEIGHBORS);
        assert_eq!(s.lookup(&ip, T0), Some(PEER_MAC));
    }

    #[test]
    fn helpers() {
        assert!(same_prefix_v4(OURS4, PEER4, 24));
        assert!(!same_prefix_v4(OURS4, Ipv4Addr::new(10, 0, 1, 1), 24));
        assert!(same_prefix_v4(OURS4, Ipv4Addr::new(1, 2, 3, 4), 0));
        assert!(!same_prefix_v4(OURS4, PEER4, 32));
        assert!(!same_prefix_v4(OURS4, PEER4, 200)); // clamped to /32
        assert!(same_prefix_v6(OURS6, PEER6, 64));
        assert!(!same_prefix_v6(OURS6, "fd01::1".parse().unwrap(), 64));
        assert!(same_prefix_v6(OURS6, "::1".parse().unwrap(), 0));
        assert_eq!(
            subnet_broadcast(OURS4, 24),
            Some(Ipv4Addr::new(10, 0, 0, 255))
        );
        assert_eq!(subnet_broadcast(OURS4, 31), None);
        assert_eq!(
            solicited_node("fd00::12:3456".parse().unwrap()),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}
