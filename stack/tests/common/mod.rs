//! What the stack's in-memory tests share: raw client frames.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};

/// The server's address and MAC in these tests.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const SMAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The client's MAC.
pub const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// An Ethernet frame from the client's MAC to the server carrying `tcp`
/// from `src` (checksums computed).
pub fn tcp_frame(src: Ipv4Addr, tcp: &TcpRepr) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: SERVER,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(CMAC),
        dst_addr: EthernetAddress(SMAC),
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
        &IpAddress::Ipv4(SERVER),
        &caps,
    );
    buf
}
