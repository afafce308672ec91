//! The TCP segments on the wire: their payload, their frame size, and
//! writing them.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr, ETHERNET_HEADER_LEN,
};
use stack::parse::ParsedIp;

use crate::neigh::MIN_FRAME;

/// The TCP payload of `ip`, a packet [`parse_ip`](stack::parse::parse_ip) accepted as `p`: its last
/// `p.payload_len` bytes before where the IP header says the packet ends (a
/// short frame's Ethernet padding is not payload). Taken from the lengths
/// `parse_ip` checked, not parsed again.
pub(crate) fn tcp_payload<'a>(ip: &'a [u8], p: &ParsedIp) -> Option<&'a [u8]> {
    let be16 = |at: usize| {
        ip.get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let end = match p.key.dst {
        // Total length.
        IpAddr::V4(_) => be16(2)?,
        // Payload length after the fixed header (parse_ip takes no
        // extension headers).
        IpAddr::V6(_) => 40 + be16(4)?,
    };
    ip.get(end.checked_sub(p.payload_len)?..end)
}

/// Bytes of the frame carrying `tcp` from `src` (Ethernet padding included).
pub(crate) fn frame_len(src: IpAddr, tcp: &TcpRepr) -> usize {
    let ip = if src.is_ipv4() { 20 } else { 40 };
    (ETHERNET_HEADER_LEN + ip + tcp.buffer_len()).max(MIN_FRAME)
}

/// Write the Ethernet frame carrying `tcp` into `b` (exactly
/// [`frame_len`] bytes).
pub(crate) fn write_segment(
    b: &mut [u8],
    our_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr,
) {
    let caps = ChecksumCapabilities::default();
    let l3 = ETHERNET_HEADER_LEN;
    let l4 = l3 + if src.is_ipv4() { 20 } else { 40 };
    let end = l4 + tcp.buffer_len();
    if b.len() < end {
        return;
    }
    b[end..].fill(0);
    EthernetRepr {
        src_addr: EthernetAddress(our_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: if src.is_ipv4() {
            EthernetProtocol::Ipv4
        } else {
            EthernetProtocol::Ipv6
        },
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut b[..l3]));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut b[l3..l4]), &caps),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut b[l3..l4])),
        _ => return,
    }
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut b[l4..end]),
        &IpAddress::from(src),
        &IpAddress::from(dst),
        &caps,
    );
}
