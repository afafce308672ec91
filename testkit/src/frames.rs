//! Raw frames and packets for tests that inject what a client would never
//! send, or build fuzz seeds: Ethernet, IPv4/IPv6, TCP, UDP, ICMP, ARP.
//! Checksums are computed; nothing is left unchecked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::phy::ChecksumCapabilities;

use crate::{CLIENT_MAC, SERVER_IP4, SERVER_MAC};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    UdpPacket, UdpRepr,
};

/// An Ethernet frame from `src` to `dst` carrying `payload`.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len()];
    EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[14..].copy_from_slice(payload);
    f
}

/// An IP packet (IPv4 or IPv6 as the addresses are; hop limit 64, 255 for
/// ICMPv6 as NDP needs) carrying the L4 bytes `l4`.
///
/// # Panics
///
/// When the two addresses are of different families.
pub fn ip(src: IpAddr, dst: IpAddr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut b = vec![0u8; 20 + l4.len()];
            Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4.len(),
                hop_limit: 64,
            }
            .emit(
                &mut Ipv4Packet::new_unchecked(&mut b[..]),
                &ChecksumCapabilities::default(),
            );
            b[20..].copy_from_slice(l4);
            b
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut b = vec![0u8; 40 + l4.len()];
            Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4.len(),
                hop_limit: if proto == IpProtocol::Icmpv6 { 255 } else { 64 },
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
            b[40..].copy_from_slice(l4);
            b
        }
        _ => panic!("addresses of two families: {src} {dst}"),
    }
}

/// An IP packet carrying the TCP segment `tcp` from `src` to `dst`.
pub fn tcp(src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> Vec<u8> {
    let mut l4 = vec![0u8; tcp.buffer_len()];
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut l4[..]),
        &IpAddress::from(src),
        &IpAddress::from(dst),
        &ChecksumCapabilities::default(),
    );
    ip(src, dst, IpProtocol::Tcp, &l4)
}

/// An IP packet carrying a UDP datagram.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
    };
    let mut l4 = vec![0u8; 8 + payload.len()];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        &IpAddress::from(src),
        &IpAddress::from(dst),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
    ip(src, dst, IpProtocol::Udp, &l4)
}

/// An IPv4 packet carrying an ICMP message.
pub fn icmp4(src: Ipv4Addr, dst: Ipv4Addr, repr: &Icmpv4Repr) -> Vec<u8> {
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(&mut l4[..]),
        &ChecksumCapabilities::default(),
    );
    ip(src.into(), dst.into(), IpProtocol::Icmp, &l4)
}

/// An IPv6 packet carrying an ICMPv6 message (NDP included).
pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, repr: &Icmpv6Repr) -> Vec<u8> {
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut l4[..]),
        &ChecksumCapabilities::default(),
    );
    ip(src.into(), dst.into(), IpProtocol::Icmpv6, &l4)
}

/// An ARP packet (no Ethernet header) from `sha`/`spa` about `tpa`, the
/// target hardware address unknown (zero).
pub fn arp(op: ArpOperation, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: EthernetAddress(sha),
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: tpa,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    b
}

/// The Ethernet multicast address of the IPv6 group `g` (33:33 and its
/// last four bytes).
pub fn multicast_mac6(g: Ipv6Addr) -> [u8; 6] {
    let o = g.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// An Ethernet frame from `src_mac` to `dst_mac` carrying `tcp` from `src`
/// to `dst` over IPv4 (checksums computed).
pub fn tcp_frame(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: &TcpRepr,
) -> Vec<u8> {
    eth(
        dst_mac,
        src_mac,
        EthernetProtocol::Ipv4,
        &self::tcp(src.into(), dst.into(), tcp),
    )
}

/// A frame from the client's MAC to the server (`SERVER_IP4`) carrying `tcp`
/// from `src` (any source address: the tests spoof many).
pub fn tcp_to_server(src: Ipv4Addr, tcp: &TcpRepr) -> Vec<u8> {
    tcp_frame((CLIENT_MAC, SERVER_MAC), src, SERVER_IP4, tcp)
}

/// A plain segment from `src`:`sport` to the server's `dport` (`tcp_to_server`): window
/// 64000, MSS 1460 on a SYN, no window scaling, SACK or timestamps.
pub fn segment_to_server(
    src: Ipv4Addr,
    sport: u16,
    dport: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 64000,
        window_scale: None,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn: Default::default(),
        payload,
    };
    tcp_to_server(src, &tcp)
}
