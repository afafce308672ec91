//! Raw frames for tests that inject segments the client would never send.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;

use crate::{CLIENT_MAC, SERVER_IP4, SERVER_MAC};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};

/// An Ethernet frame from `src_mac` to `dst_mac` carrying `tcp` from `src`
/// to `dst` over IPv4 (checksums computed).
pub fn tcp_frame(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: &TcpRepr,
) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let caps = ChecksumCapabilities::default();
    let mut buf = vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// A frame from the client's MAC to the server (`SERVER_IP4`) carrying `tcp`
/// from `src` (any source address: the tests spoof many).
pub fn tcp_to_server(src: Ipv4Addr, tcp: &TcpRepr) -> Vec<u8> {
    tcp_frame((CLIENT_MAC, SERVER_MAC), src, SERVER_IP4, tcp)
}
