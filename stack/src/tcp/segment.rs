//! The TCP segments the stack builds itself rather than through a socket:
//! the SYN-ACK that carries a SYN cookie, the SYN a valid cookie stands
//! for (fed to a new socket so it takes the handshake up where the cookie
//! left it), and the ACKs a TIME-WAIT record sends.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, TcpTimestampRepr};

use crate::emit::{emit_ip, ip_header_len};
use crate::parse::FlowKey;

/// The options of a SYN or SYN-ACK a cookie stands for, besides the MSS:
/// none without the client's timestamp option (the cookie cannot keep
/// them); with it, the client's window scale and SACK-permitted ride in
/// the low bits of our TSval ([`crate::cookie::CookieOpts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SynOpts {
    /// The window scale option (a SYN-ACK's: ours; a SYN's: the client's).
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack: bool,
    /// The timestamp option.
    pub ts: Option<TcpTimestampRepr>,
}

/// The SYN-ACK answering the SYN of `key` (client ISN `client_isn`) whose
/// sequence number is `cookie`: receive window `window`, MSS `mss`, and
/// `opts` (see [`SynOpts`]).
pub(crate) fn cookie_syn_ack(
    key: &FlowKey,
    cookie: u32,
    client_isn: u32,
    window: u16,
    mss: u16,
    opts: SynOpts,
) -> TcpRepr<'static> {
    let ack = client_isn.wrapping_add(1);
    syn(key.dport, key.sport, cookie, Some(ack), window, mss, opts)
}

/// The SYN a cookie stands for: the client's ISN, the MSS the cookie kept
/// and the options its timestamp echo brought back (none without it).
pub(crate) fn cookie_syn(
    key: &FlowKey,
    client_isn: u32,
    mss: u16,
    window: u16,
    opts: SynOpts,
) -> TcpRepr<'static> {
    syn(key.sport, key.dport, client_isn, None, window, mss, opts)
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

/// A SYN (a SYN-ACK with `ack`) with the MSS option and `opts`: what a
/// cookie can stand for.
fn syn(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
    window: u16,
    mss: u16,
    opts: SynOpts,
) -> TcpRepr<'static> {
    TcpRepr {
        src_port,
        dst_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: opts.wscale,
        max_seg_size: Some(mss),
        sack_permitted: opts.sack,
        sack_ranges: [None, None, None],
        timestamp: opts.ts,
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::parse::{tcp_options, TcpOpts};

    fn packet(key: &FlowKey, tcp: &TcpRepr) -> Vec<u8> {
        let len = ip_tcp_len(key.dst, key.src, tcp).unwrap();
        let mut buf = vec![0; len];
        emit_ip_tcp(&mut buf, key.dst, key.src, tcp);
        buf
    }

    #[test]
    fn cookie_syn_acks_carry_the_options_and_parse_back() {
        let key = FlowKey::test_tcp4(4000);
        let opts = SynOpts {
            wscale: Some(7),
            sack: true,
            ts: Some(TcpTimestampRepr::new(0xdead_be57, 99)),
        };
        let p = packet(&key, &cookie_syn_ack(&key, 1, 2, 3, 1460, opts));
        assert_eq!(
            tcp_options(&p),
            TcpOpts {
                mss: 1460,
                wscale: Some(7),
                sack_permitted: true,
                timestamp: Some((0xdead_be57, 99)),
            }
        );
        let p = packet(
            &key,
            &cookie_syn_ack(&key, 1, 2, 3, 1200, SynOpts::default()),
        );
        assert_eq!(
            tcp_options(&p),
            TcpOpts {
                mss: 1200,
                ..TcpOpts::default()
            }
        );
    }

    #[test]
    fn options_of_malformed_packets_are_none() {
        let key = FlowKey::test_tcp4(4000);
        let opts = SynOpts {
            wscale: Some(7),
            sack: true,
            ts: Some(TcpTimestampRepr::new(5, 6)),
        };
        let p = packet(&key, &cookie_syn(&key, 1, 1460, 3, opts));
        for cut in 0..p.len() {
            // Never a panic; a header cut short has no options.
            let o = tcp_options(&p[..cut]);
            if cut < 20 + 20 {
                assert_eq!(o, TcpOpts::default(), "cut at {cut}");
            }
        }
        let mut bad = p.clone();
        bad[0] = 0x42; // IHL 2
        let _ = tcp_options(&bad);
        assert_eq!(tcp_options(&[]), TcpOpts::default());
        assert_eq!(tcp_options(&[0x60]), TcpOpts::default());
    }
}
