//! Per-worker L2 / demux counters.
//!
//! The worker owns an [`L2Counters`] (plain `u64` fields, no atomics) and publishes
//! snapshots of it (it is `Clone` and `serde::Serialize`). Every dropped frame is counted
//! by [`DropReason`].

use serde::Serialize;

/// Why a received frame was dropped. Every drop is counted by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    TruncatedEthernet,
    /// Destination MAC is not ours / broadcast / our multicast, or the destination IP is not
    /// one of our addresses.
    NotForUs,
    /// EtherType other than IPv4, ARP and IPv6 (VLAN tags included).
    UnknownEtherType,
    /// ARP packet too short, not Ethernet/IPv4, or with an unknown operation or a group
    /// sender hardware address.
    MalformedArp,
    /// IPv4 header too short, inconsistent lengths, or wrong version.
    MalformedIpv4,
    /// IPv4 header checksum is wrong.
    BadIpv4Checksum,
    /// IPv6 header too short, inconsistent payload length, or wrong version.
    MalformedIpv6,
    /// IP fragments are not supported: counted and dropped.
    Fragment,
    /// An L4 protocol (or IPv6 extension header) we do not handle.
    UnsupportedProtocol,
    /// TCP header too short or with an impossible data offset.
    MalformedTcp,
    /// UDP header too short or with an impossible length field.
    MalformedUdp,
    /// ICMP/ICMPv6 message too short or of an unknown type; NDP with hop limit != 255 or a
    /// nonzero code, an NDP body that does not parse, or a solicitation whose source
    /// link-layer address is a group MAC.
    MalformedIcmp,
    /// TCP/UDP/ICMP/ICMPv6 checksum is wrong (including UDP over IPv6 with checksum 0).
    BadL4Checksum,
    /// Source address is multicast/broadcast/unspecified/loopback (or our own address, or a
    /// group source MAC).
    Martian,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 14] = [
        DropReason::TruncatedEthernet,
        DropReason::NotForUs,
        DropReason::UnknownEtherType,
        DropReason::MalformedArp,
        DropReason::MalformedIpv4,
        DropReason::BadIpv4Checksum,
        DropReason::MalformedIpv6,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::MalformedTcp,
        DropReason::MalformedUdp,
        DropReason::MalformedIcmp,
        DropReason::BadL4Checksum,
        DropReason::Martian,
    ];

    /// The snake_case name (the same as the matching [`DropCounts`] field).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "truncated_ethernet",
            DropReason::NotForUs => "not_for_us",
            DropReason::UnknownEtherType => "unknown_ether_type",
            DropReason::MalformedArp => "malformed_arp",
            DropReason::MalformedIpv4 => "malformed_ipv4",
            DropReason::BadIpv4Checksum => "bad_ipv4_checksum",
            DropReason::MalformedIpv6 => "malformed_ipv6",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::MalformedTcp => "malformed_tcp",
            DropReason::MalformedUdp => "malformed_udp",
            DropReason::MalformedIcmp => "malformed_icmp",
            DropReason::BadL4Checksum => "bad_l4_checksum",
            DropReason::Martian => "martian",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`DropReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// Frames shorter than an Ethernet header ([`DropReason::TruncatedEthernet`]).
    pub truncated_ethernet: u64,
    /// Frames for another MAC or IP address ([`DropReason::NotForUs`]).
    pub not_for_us: u64,
    /// Frames to us of an EtherType we do not handle ([`DropReason::UnknownEtherType`]).
    pub unknown_ether_type: u64,
    /// ARP packets that do not parse or are not Ethernet/IPv4 ([`DropReason::MalformedArp`]).
    pub malformed_arp: u64,
    /// IPv4 packets with a bad header or lengths ([`DropReason::MalformedIpv4`]).
    pub malformed_ipv4: u64,
    /// IPv4 packets whose header checksum is wrong ([`DropReason::BadIpv4Checksum`]).
    pub bad_ipv4_checksum: u64,
    /// IPv6 packets with a bad header or payload length ([`DropReason::MalformedIpv6`]).
    pub malformed_ipv6: u64,
    /// IPv4 or IPv6 fragments ([`DropReason::Fragment`]).
    pub fragment: u64,
    /// Packets of an L4 protocol or IPv6 extension header we do not handle
    /// ([`DropReason::UnsupportedProtocol`]).
    pub unsupported_protocol: u64,
    /// TCP segments with a short header or bad data offset ([`DropReason::MalformedTcp`]).
    pub malformed_tcp: u64,
    /// UDP datagrams with a short header or bad length ([`DropReason::MalformedUdp`]).
    pub malformed_udp: u64,
    /// ICMP/ICMPv6 and NDP messages that are short, unknown or invalid
    /// ([`DropReason::MalformedIcmp`]).
    pub malformed_icmp: u64,
    /// TCP/UDP/ICMP/ICMPv6 packets whose checksum is wrong ([`DropReason::BadL4Checksum`]).
    pub bad_l4_checksum: u64,
    /// Frames whose source cannot be a sender: a group or our own MAC, a multicast,
    /// broadcast, unspecified, loopback or own IP address ([`DropReason::Martian`]).
    pub martian: u64,
}

impl DropCounts {
    fn slot(&mut self, r: DropReason) -> &mut u64 {
        match r {
            DropReason::TruncatedEthernet => &mut self.truncated_ethernet,
            DropReason::NotForUs => &mut self.not_for_us,
            DropReason::UnknownEtherType => &mut self.unknown_ether_type,
            DropReason::MalformedArp => &mut self.malformed_arp,
            DropReason::MalformedIpv4 => &mut self.malformed_ipv4,
            DropReason::BadIpv4Checksum => &mut self.bad_ipv4_checksum,
            DropReason::MalformedIpv6 => &mut self.malformed_ipv6,
            DropReason::Fragment => &mut self.fragment,
            DropReason::UnsupportedProtocol => &mut self.unsupported_protocol,
            DropReason::MalformedTcp => &mut self.malformed_tcp,
            DropReason::MalformedUdp => &mut self.malformed_udp,
            DropReason::MalformedIcmp => &mut self.malformed_icmp,
            DropReason::BadL4Checksum => &mut self.bad_l4_checksum,
            DropReason::Martian => &mut self.martian,
        }
    }

    /// Count one drop.
    pub fn add(&mut self, r: DropReason) {
        let slot = self.slot(r);
        *slot = slot.wrapping_add(1);
    }

    /// Drops counted for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        match r {
            DropReason::TruncatedEthernet => self.truncated_ethernet,
            DropReason::NotForUs => self.not_for_us,
            DropReason::UnknownEtherType => self.unknown_ether_type,
            DropReason::MalformedArp => self.malformed_arp,
            DropReason::MalformedIpv4 => self.malformed_ipv4,
            DropReason::BadIpv4Checksum => self.bad_ipv4_checksum,
            DropReason::MalformedIpv6 => self.malformed_ipv6,
            DropReason::Fragment => self.fragment,
            DropReason::UnsupportedProtocol => self.unsupported_protocol,
            DropReason::MalformedTcp => self.malformed_tcp,
            DropReason::MalformedUdp => self.malformed_udp,
            DropReason::MalformedIcmp => self.malformed_icmp,
            DropReason::BadL4Checksum => self.bad_l4_checksum,
            DropReason::Martian => self.martian,
        }
    }

    /// All drops, every reason.
    pub fn total(&self) -> u64 {
        DropReason::ALL
            .iter()
            .fold(0u64, |acc, r| acc.wrapping_add(self.get(*r)))
    }
}

/// Per-worker L2/demux counters. Plain u64 fields; the worker owns them; it publishes
/// snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct L2Counters {
    /// Every frame handed to `L2::ingress`, dropped or not.
    pub rx_frames: u64,
    /// Frames classified as an IP packet for this host (`Ingress::Ip`).
    pub rx_ip: u64,
    /// ARP requests for our IPv4 address answered with a reply (`Ingress::Reply`).
    pub arp_requests_answered: u64,
    /// ARP replies the neighbour table took: the sender's entry now holds their MAC
    /// (created, changed or refreshed).
    pub arp_replies_learned: u64,
    /// Neighbour solicitations for our IPv6 address (DAD probes included) answered
    /// with an advertisement (`Ingress::Reply`).
    pub ndp_solicits_answered: u64,
    /// Neighbour advertisements the table took: the target's entry now holds their MAC
    /// (created, changed or refreshed).
    pub ndp_adverts_learned: u64,
    /// Neighbour entries this worker created or whose MAC it changed (ARP/NDP only).
    pub neighbors_learned: u64,
    /// Refused: an ARP/NDP message for a different MAC within the lock time of a live entry.
    pub neighbor_locked: u64,
    /// Refused: a neighbour advertisement without the override flag for a different MAC.
    pub neighbor_no_override: u64,
    /// Refused: an ARP reply or neighbour advertisement for an address we neither know nor
    /// asked for.
    pub neighbor_unsolicited: u64,
    /// Ignored: an IP packet from an on-link address whose entry has another MAC (a
    /// spoofed source, or a peer that moved and has not announced it yet).
    pub neighbor_mismatch: u64,
    /// Entries this worker's local cache evicted to stay within its bound.
    pub neighbor_cache_evicted: u64,
    /// Frames handed back for transmission: egress `Send` and `Resolve`, ingress `Reply`.
    pub tx_frames: u64,
    /// Egress packets whose next hop is unknown (a request was sent in their frame; the
    /// packet itself is held, see `held`) or that have no route (off-link destination and
    /// no gateway).
    pub tx_unresolved: u64,
    /// Packets kept while their next hop resolves (Linux's `unres_qlen`).
    pub held: u64,
    /// Held packets sent once their next hop resolved.
    pub held_sent: u64,
    /// Held packets dropped: their hop did not resolve in time, too many were held, or
    /// no frame was free when it did.
    pub held_dropped: u64,
    /// ARP requests written by `L2::egress` for an unknown IPv4 next hop (one per packet
    /// that missed).
    pub arp_requests_sent: u64,
    /// Neighbour solicitations written by `L2::egress` for an unknown IPv6 next hop (one per
    /// packet that missed).
    pub ndp_solicits_sent: u64,
    /// Received frames dropped, by reason. Each frame in `rx_frames` ends as exactly one of:
    /// `rx_ip`, a drop counted here, a reply, or consumed.
    pub dropped: DropCounts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let mut d = DropCounts::default();
        let mut names = HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                d.add(*r);
            }
            assert!(names.insert(r.name()), "duplicate name {}", r.name());
            assert!(r
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(d.get(*r), i as u64 + 1, "{r}");
        }
        let n = DropReason::ALL.len() as u64;
        assert_eq!(d.total(), n * (n + 1) / 2);
    }

    #[test]
    fn names_match_serialized_fields() {
        let mut c = L2Counters::default();
        for r in DropReason::ALL {
            c.dropped.add(r);
        }
        let v = serde_json::to_value(&c).unwrap();
        let dropped = v["dropped"].as_object().unwrap();
        assert_eq!(dropped.len(), DropReason::ALL.len());
        for r in DropReason::ALL {
            assert_eq!(dropped[r.name()], 1, "{r}");
        }
        assert_eq!(v["rx_frames"], 0);
    }
}
