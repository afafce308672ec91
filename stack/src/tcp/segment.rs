//! The TCP segments the stack builds itself rather than through a socket:
//! the SYN-ACK that carries a SYN cookie, and the SYN a valid cookie stands
//! for (fed to a new socket so it takes the handshake up where the cookie
//! left it).

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

use crate::parse::FlowKey;

/// The SYN-ACK answering the SYN of `key` (client ISN `client_isn`) whose
/// sequence number is `cookie`: receive window `window`, MSS `mss`, no
/// window scaling or SACK (the cookie cannot keep them).
pub(crate) fn cookie_syn_ack(
    key: &FlowKey,
    cookie: u32,
    client_isn: u32,
    window: u16,
    mss: u16,
) -> TcpRepr<'static> {
    TcpRepr {
        src_port: key.dport,
        dst_port: key.sport,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(cookie as i32),
        ack_number: Some(TcpSeqNumber(client_isn.wrapping_add(1) as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: Some(mss),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    }
}

/// The SYN a cookie stands for: the client's ISN and the MSS the cookie
/// kept; no window scaling or SACK (the cookie SYN-ACK offered neither).
pub(crate) fn cookie_syn(
    key: &FlowKey,
    client_isn: u32,
    mss: u16,
    window: u16,
) -> TcpRepr<'static> {
    TcpRepr {
        src_port: key.sport,
        dst_port: key.dport,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(client_isn as i32),
        ack_number: None,
        window_len: window,
        window_scale: None,
        max_seg_size: Some(mss),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    }
}

/// Length of an IP packet (no options) carrying `tcp` from `src` to `dst`;
/// `None` for addresses of two families.
pub(crate) fn ip_tcp_len(src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> Option<usize> {
    let ip = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => 20,
        (IpAddr::V6(_), IpAddr::V6(_)) => 40,
        _ => return None,
    };
    Some(ip + tcp.buffer_len())
}

/// Write an IP header and `tcp` (checksums computed) into `buf`, which is
/// `ip_tcp_len` long. Addresses of two families write nothing.
pub(crate) fn emit_ip_tcp(buf: &mut [u8], src: IpAddr, dst: IpAddr, tcp: &TcpRepr) {
    let caps = ChecksumCapabilities::default();
    let payload_len = tcp.buffer_len();
    let (s, d, payload) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len,
                hop_limit: 64,
            };
            let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
            repr.emit(&mut ip, &caps);
            (IpAddress::Ipv4(s), IpAddress::Ipv4(d), 20)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len,
                hop_limit: 64,
            };
            let mut ip = Ipv6Packet::new_unchecked(&mut *buf);
            repr.emit(&mut ip);
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d), 40)
        }
        _ => return,
    };
    if let Some(t) = buf.get_mut(payload..) {
        tcp.emit(&mut TcpPacket::new_unchecked(t), &s, &d, &caps);
    }
}
