//! What came back: received frames classified against the target, with
//! every IP and L4 checksum verified by the stack's parser (a reflector or
//! server that broke a checksum shows up as `Invalid`), and the RST that
//! pktgen answers a SYN-ACK with.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, TcpControl, TcpPacket, TcpRepr, UdpPacket, ETHERNET_HEADER_LEN,
};
use stack::counters::DropReason;
use stack::parse::{is_martian_v4, is_martian_v6, parse_ip, L4};

use super::neigh::MIN_FRAME;

/// A received frame, as far as pktgen cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// UDP from the target address and port.
    Udp {
        /// Our port it was sent to.
        dport: u16,
        /// The UDP payload.
        payload: &'a [u8],
    },
    /// TCP from the target address and port.
    Tcp {
        /// Our address it was sent to.
        to: IpAddr,
        /// Our port it was sent to.
        dport: u16,
        /// SYN set.
        syn: bool,
        /// ACK set.
        ack: bool,
        /// RST set.
        rst: bool,
        /// The acknowledgment number.
        ack_number: u32,
    },
    /// A valid IP packet that is none of the above (ICMP errors, other
    /// sources, other ports).
    OtherIp,
    /// Not IPv4/IPv6 (ARP, ...), or not addressed to our MAC.
    NotIp,
    /// An IP packet the stack's parser refuses: bad checksum, bad lengths...
    Invalid(DropReason),
}

/// Classify `frame` (sent to `our_mac`) against the target `dst`:`dport`.
pub fn classify(frame: &[u8], our_mac: [u8; 6], dst: IpAddr, dport: u16) -> Reply<'_> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Reply::NotIp;
    };
    if eth.dst_addr().0 != our_mac {
        return Reply::NotIp;
    }
    if !matches!(
        eth.ethertype(),
        EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
    ) {
        return Reply::NotIp;
    }
    let ip = eth.payload();
    let p = match parse_ip(ip) {
        Ok(p) => p,
        Err(r) => return Reply::Invalid(r),
    };
    if p.key.src != dst || p.key.sport != dport {
        return Reply::OtherIp;
    }
    // parse_ip checked the lengths; these views cannot fail now, but stay checked.
    let l4 = match ip.first().map(|b| b >> 4) {
        Some(4) => Ipv4Packet::new_checked(ip).ok().map(|v| v.payload()),
        Some(6) => Ipv6Packet::new_checked(ip).ok().map(|v| v.payload()),
        _ => None,
    };
    let Some(l4) = l4 else {
        return Reply::OtherIp;
    };
    match p.l4 {
        L4::Udp => match UdpPacket::new_checked(l4) {
            Ok(u) => Reply::Udp {
                dport: p.key.dport,
                payload: u.payload(),
            },
            Err(_) => Reply::OtherIp,
        },
        L4::Tcp {
            flags_syn,
            flags_ack,
            flags_rst,
            ..
        } => match TcpPacket::new_checked(l4) {
            Ok(t) => Reply::Tcp {
                to: p.key.dst,
                dport: p.key.dport,
                syn: flags_syn,
                ack: flags_ack,
                rst: flags_rst,
                ack_number: t.ack_number().0 as u32,
            },
            Err(_) => Reply::OtherIp,
        },
        _ => Reply::OtherIp,
    }
}

/// Rewrite a SYN-ACK (first `len` bytes of `frame`) in place into the RST
/// that refuses it (RFC 793: `<SEQ=SEG.ACK><CTL=RST>`), from us back to its
/// sender, and return the new frame length. This is what the client kernel
/// would have sent had it seen the SYN-ACK: it frees the server's half-open
/// connection. `None` if the frame is not a valid SYN-ACK.
pub fn rst_for_synack(frame: &mut [u8], len: usize) -> Option<usize> {
    let f = frame.get(..len)?;
    let eth = EthernetFrame::new_checked(f).ok()?;
    let (src_mac, dst_mac) = (eth.src_addr(), eth.dst_addr());
    let ip = eth.payload();
    let p = parse_ip(ip).ok()?;
    if !matches!(
        p.l4,
        L4::Tcp {
            flags_syn: true,
            flags_ack: true,
            flags_rst: false,
            ..
        }
    ) {
        return None;
    }
    // The RST goes out from the address the SYN-ACK was sent to: never from an address
    // that cannot be a source (a SYN-ACK to 0.0.0.0 or a group; found by fuzzing).
    let martian = match p.key.dst {
        IpAddr::V4(a) => is_martian_v4(&a),
        IpAddr::V6(a) => is_martian_v6(&a),
    };
    if martian {
        return None;
    }
    let ip_payload = match ip.first().map(|b| b >> 4) {
        Some(4) => Ipv4Packet::new_checked(ip).ok()?.payload(),
        _ => Ipv6Packet::new_checked(ip).ok()?.payload(),
    };
    let seq = TcpPacket::new_checked(ip_payload).ok()?.ack_number();
    let tcp = TcpRepr {
        src_port: p.key.dport,
        dst_port: p.key.sport,
        control: TcpControl::Rst,
        seq_number: seq,
        ack_number: None,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    };
    let caps = ChecksumCapabilities::default();
    let (us, them) = (p.key.dst, p.key.src);
    let l3 = ETHERNET_HEADER_LEN;
    let l4 = l3 + if us.is_ipv4() { 20 } else { 40 };
    let end = l4 + tcp.buffer_len();
    let out = frame.get_mut(..end.max(MIN_FRAME))?;
    out.fill(0);
    out[0..6].copy_from_slice(&src_mac.0);
    out[6..12].copy_from_slice(&dst_mac.0);
    match (us, them) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out[12..14].copy_from_slice(&[0x08, 0x00]);
            Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len: tcp.buffer_len(),
                hop_limit: 64,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut out[l3..l4]), &caps);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out[12..14].copy_from_slice(&[0x86, 0xdd]);
            Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len: tcp.buffer_len(),
                hop_limit: 64,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut out[l3..l4]));
        }
        _ => return None,
    }
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut out[l4..end]),
        &IpAddress::from(us),
        &IpAddress::from(them),
        &caps,
    );
    Some(end.max(MIN_FRAME))
}

/// The ISN pktgen puts in a SYN sent at `ts_ns`: microseconds, so that the
/// SYN-ACK's acknowledgment number gives the round trip.
pub fn syn_isn(ts_ns: u64) -> u32 {
    (ts_ns / 1000) as u32
}

/// Round trip in ns of a SYN-ACK acknowledging `ack_number`, received at
/// `now_ns`; `None` when implausible (more than a minute, or from another
/// run).
pub fn syn_rtt_ns(ack_number: u32, now_ns: u64) -> Option<u64> {
    let isn = ack_number.wrapping_sub(1);
    let us = syn_isn(now_ns).wrapping_sub(isn);
    (us < 60_000_000).then_some(u64::from(us) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Fields, Kind, Spec, Template};
    use smoltcp::wire::TcpSeqNumber;

    fn seq(x: u32) -> TcpSeqNumber {
        TcpSeqNumber(x as i32)
    }
    use std::net::{Ipv4Addr, Ipv6Addr};

    const US: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
    const THEM: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];

    fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 2)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 1)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            )
        }
    }

    /// A SYN-ACK from THEM:80 to US:port acknowledging `isn`.
    fn synack(v6: bool, port: u16, isn: u32) -> Vec<u8> {
        let (us, them) = addrs(v6);
        synack_to(us, them, port, isn)
    }

    /// A SYN-ACK from `them`:80 to `us`:port acknowledging `isn`.
    fn synack_to(us: IpAddr, them: IpAddr, port: u16, isn: u32) -> Vec<u8> {
        let v6 = us.is_ipv6();
        let t = Template::build(&Spec {
            kind: Kind::Syn,
            src_mac: THEM,
            dst_mac: US,
            src: them,
            dst: us,
            src_port: 80,
            dst_port: port,
            payload: 0,
            qname: String::new(),
            run: 0,
        })
        .unwrap();
        let mut f = t.frame().to_vec();
        // Turn the SYN into a SYN-ACK and fix the checksum from scratch.
        let l4 = 14 + if v6 { 40 } else { 20 };
        let mut repr_buf = f.clone();
        {
            let ip = &f[14..];
            let tcp_bytes = if v6 {
                Ipv6Packet::new_checked(ip).unwrap().payload().to_vec()
            } else {
                Ipv4Packet::new_checked(ip).unwrap().payload().to_vec()
            };
            let mut tcp = TcpPacket::new_unchecked(tcp_bytes);
            tcp.set_ack(true);
            tcp.set_ack_number(seq(isn.wrapping_add(1)));
            tcp.set_seq_number(seq(777));
            tcp.fill_checksum(&IpAddress::from(them), &IpAddress::from(us));
            let b = tcp.into_inner();
            repr_buf[l4..l4 + b.len()].copy_from_slice(&b);
        }
        f = repr_buf;
        f
    }

    #[test]
    fn synack_classified_and_answered_with_rst() {
        for v6 in [false, true] {
            let (us, them) = addrs(v6);
            let mut f = synack(v6, 12345, 0xdead_beef);
            match classify(&f, US, them, 80) {
                Reply::Tcp {
                    to,
                    dport,
                    syn: true,
                    ack: true,
                    rst: false,
                    ack_number,
                } => {
                    assert_eq!(dport, 12345);
                    assert_eq!(to, us);
                    assert_eq!(ack_number, 0xdead_bef0);
                }
                other => panic!("v6={v6}: {other:?}"),
            }
            // Another target port: not ours to count.
            assert_eq!(classify(&f, US, them, 81), Reply::OtherIp);
            // Another MAC: not for us.
            assert_eq!(classify(&f, THEM, them, 80), Reply::NotIp);
            let len = f.len();
            let mut buf = vec![0u8; 2048];
            buf[..len].copy_from_slice(&f);
            let n = rst_for_synack(&mut buf, len).unwrap();
            let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
            assert_eq!((eth.src_addr().0, eth.dst_addr().0), (US, THEM));
            let p = parse_ip(eth.payload()).expect("valid RST");
            assert_eq!((p.key.src, p.key.dst), (us, them));
            assert_eq!((p.key.sport, p.key.dport), (12345, 80));
            assert!(matches!(
                p.l4,
                L4::Tcp {
                    flags_rst: true,
                    flags_syn: false,
                    flags_ack: false,
                    ..
                }
            ));
            let ip = eth.payload();
            let tcp = if v6 {
                TcpPacket::new_checked(Ipv6Packet::new_checked(ip).unwrap().payload().to_vec())
            } else {
                TcpPacket::new_checked(Ipv4Packet::new_checked(ip).unwrap().payload().to_vec())
            }
            .unwrap();
            assert_eq!(tcp.seq_number(), seq(0xdead_bef0), "RST seq = their ack");
            // A RST is not a SYN-ACK.
            assert_eq!(rst_for_synack(&mut buf, n), None);
            f.truncate(30);
            assert_eq!(rst_for_synack(&mut f, 30), None);
        }
    }

    /// Found by fuzzing (fuzz/corpus/pktgen_reply/crash-e93a3a36...): a SYN-ACK sent to
    /// 0.0.0.0 was answered with a RST from 0.0.0.0, a packet the stack's own parser
    /// refuses. Such SYN-ACKs (and ones to a group) are not answered.
    #[test]
    fn synack_to_a_martian_address_is_not_answered() {
        for (us, them) in [
            (
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V4(Ipv4Addr::new(111, 0, 0, 0)),
            ),
            (
                IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            ),
            (
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 1)),
            ),
        ] {
            let mut f = synack_to(us, them, 40000, 7);
            assert!(parse_ip(&f[14..]).is_ok(), "{us}");
            let len = f.len();
            f.resize(len.max(128), 0);
            assert_eq!(rst_for_synack(&mut f, len), None, "{us}");
        }
        // The same SYN-ACK to a unicast address is answered with a valid RST.
        let (us, them) = addrs(false);
        let mut f = synack_to(us, them, 40000, 7);
        let len = f.len();
        f.resize(128, 0);
        let n = rst_for_synack(&mut f, len).unwrap();
        assert!(parse_ip(&f[14..n]).is_ok());
    }

    #[test]
    fn corrupt_reply_is_invalid() {
        let (_, them) = addrs(false);
        let mut f = synack(false, 1000, 1);
        let last = f.len() - 1;
        // Flip a byte inside the TCP header (the frame is 60 bytes with padding; TCP ends at 58).
        f[14 + 20 + 14] ^= 0x40;
        let _ = last;
        assert_eq!(
            classify(&f, US, them, 80),
            Reply::Invalid(DropReason::BadL4Checksum)
        );
    }

    #[test]
    fn echo_reply_payload_found() {
        for v6 in [false, true] {
            let (us, them) = addrs(v6);
            let t = Template::build(&Spec {
                kind: Kind::Echo,
                src_mac: THEM,
                dst_mac: US,
                src: them,
                dst: us,
                src_port: 7,
                dst_port: 10001,
                payload: 40,
                qname: String::new(),
                run: 99,
            })
            .unwrap();
            let mut f = t.frame().to_vec();
            t.patch(
                &mut f,
                &Fields {
                    src: them,
                    src_port: 7,
                    seq: 5,
                    ts_ns: 6,
                    thread: 1,
                    dns_id: 0,
                    flow: 0,
                },
            )
            .unwrap();
            match classify(&f, US, them, 7) {
                Reply::Udp { dport, payload } => {
                    assert_eq!(dport, 10001);
                    assert_eq!(payload.len(), 40);
                    let h = crate::echo::EchoHeader::decode(payload).unwrap();
                    assert_eq!((h.run, h.seq, h.ts_ns, h.thread), (99, 5, 6, 1));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn syn_rtt_from_isn() {
        let sent = 5_000_000_123u64;
        let isn = syn_isn(sent);
        assert_eq!(
            syn_rtt_ns(isn.wrapping_add(1), sent + 250_000),
            Some(250_000)
        );
        // Across the 32-bit wrap of the microsecond clock.
        let sent = (u64::from(u32::MAX) - 10) * 1000;
        let isn = syn_isn(sent);
        assert_eq!(syn_rtt_ns(isn.wrapping_add(1), sent + 20_000), Some(20_000));
        assert_eq!(
            syn_rtt_ns(isn.wrapping_add(1), sent + 120_000_000_000),
            None
        );
    }

    #[test]
    fn garbage_never_panics() {
        let (_, them) = addrs(false);
        let mut rng = testkit::Rng::new(1);
        let mut buf = vec![0u8; 256];
        for i in 0..20_000usize {
            let len = i % 200;
            rng.fill(&mut buf[..len]);
            if len > 14 {
                buf[..6].copy_from_slice(&US);
                buf[12..14].copy_from_slice(if i % 2 == 0 { &[8, 0] } else { &[0x86, 0xdd] });
                buf[14] = if i % 2 == 0 { 0x45 } else { 0x60 };
            }
            // Under an Ethernet header, a frame is not IP.
            let class = classify(&buf[..len], US, them, 80);
            if len < 14 {
                assert!(matches!(class, Reply::NotIp), "{len}");
            }
            if let Some(n) = rst_for_synack(&mut buf, len) {
                assert!(n <= buf.len(), "{n}");
            }
            // A length past the buffer is refused.
            assert_eq!(rst_for_synack(&mut buf[..len], len + 3), None);
        }
    }
}
