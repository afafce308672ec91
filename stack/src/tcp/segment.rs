//! The TCP segments the stack builds itself rather than through a socket:
//! the SYN-ACK that carries a SYN cookie, the SYN a valid cookie stands
//! for (fed to a new socket so it takes the handshake up where the cookie
//! left it), and the ACKs a TIME-WAIT record sends.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

use crate::emit::{emit_ip, ip_header_len};
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
    let ack = client_isn.wrapping_add(1);
    bare_syn(key.dport, key.sport, cookie, Some(ack), window, mss)
}

/// The SYN a cookie stands for: the client's ISN and the MSS the cookie
/// kept; no window scaling or SACK (the cookie SYN-ACK offered neither).
pub(crate) fn cookie_syn(
    key: &FlowKey,
    client_isn: u32,
    mss: u16,
    window: u16,
) -> TcpRepr<'static> {
    bare_syn(key.sport, key.dport, client_isn, None, window, mss)
}

/// An ACK-only segment from our side of `key` (TIME-WAIT records): no
/// options.
pub(crate) fn bare_ack(key: &FlowKey, seq: u32, ack: u32, window: u16) -> TcpRepr<'static> {
    TcpRepr {
        src_port: key.dport,
        dst_port: key.sport,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: Some(TcpSeqNumber(ack as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    }
}

/// A SYN (a SYN-ACK with `ack`) with only the MSS option: what a cookie can
/// stand for.
fn bare_syn(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
    window: u16,
    mss: u16,
) -> TcpRepr<'static> {
    TcpRepr {
        src_port,
        dst_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: Some(mss),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    }
}

/// Length of an IP packet (no options) carrying `tcp` from `src` to `dst`;
/// `None` for addresses of two families.
pub(crate) fn ip_tcp_len(src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> Option<usize> {
    Some(ip_header_len(src, dst)? + tcp.buffer_len())
}

/// Write an IP header and `tcp` (checksums computed) into `buf`, which is
/// `ip_tcp_len` long. Addresses of two families write nothing.
pub(crate) fn emit_ip_tcp(buf: &mut [u8], src: IpAddr, dst: IpAddr, tcp: &TcpRepr) {
    let Some((s, d, payload)) = emit_ip(buf, src, dst, IpProtocol::Tcp, tcp.buffer_len()) else {
        return;
    };
    if let Some(t) = buf.get_mut(payload..) {
        let caps = ChecksumCapabilities::default();
        tcp.emit(&mut TcpPacket::new_unchecked(t), &s, &d, &caps);
    }
}
