//! Parse IP headers once, verify checksums, and extract the flow key.
//!
//! [`parse_ip`] takes an IP packet (no Ethernet header) and either returns a [`ParsedIp`]
//! or the [`DropReason`] it must be dropped for. It never panics on any input: every
//! buffer goes through smoltcp's `new_checked` before any accessor is used, and every
//! checksum is verified over exactly the bytes the length fields describe (trailing
//! Ethernet padding is ignored).
//!
//! Limits, on purpose:
//! - IP fragments (IPv4 MF/offset, IPv6 Fragment header) are dropped as
//!   [`DropReason::Fragment`].
//! - IPv6 extension headers are not walked: if the IPv6 next header is not TCP, UDP or
//!   ICMPv6 the packet is [`DropReason::UnsupportedProtocol`] (Hop-by-Hop, Routing and
//!   Destination Options headers are rare on unicast traffic to a server; MLD, which carries
//!   Hop-by-Hop, is multicast and handled by L2 before this function).
//! - IPv4 options are accepted and skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{
    Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket, UDP_HEADER_LEN,
};

use crate::counters::DropReason;

/// Transport protocol of a flow. ICMPv4 and ICMPv6 are both `Icmp` (the address family tells
/// them apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// ICMP (IPv4, protocol 1) or ICMPv6 (protocol 58).
    Icmp,
}

/// What the L4 header said, beyond the flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// A TCP segment and its control flags.
    Tcp {
        /// SYN: opens a connection (with `flags_ack`: the server's answer).
        flags_syn: bool,
        /// ACK: the acknowledgement number is valid.
        flags_ack: bool,
        /// RST: aborts the connection.
        flags_rst: bool,
        /// FIN: the sender has no more data.
        flags_fin: bool,
    },
    /// A UDP datagram.
    Udp,
    /// An ICMP (IPv4) message.
    Icmp,
    /// An ICMPv6 message (over Ethernet never NDP: [`L2`](crate::l2::L2) takes those first).
    Icmpv6,
    /// An ICMP "destination unreachable, fragmentation needed" (RFC 1191)
    /// or ICMPv6 "packet too big" (RFC 8201): path MTU discovery. The key
    /// is the ICMP packet's own (the router's address); what it quotes is
    /// read by [`parse_too_big`].
    TooBig,
    /// Any other ICMP "destination unreachable" (IPv4 type 3, ICMPv6 type
    /// 1): it ends an outgoing connection still in SYN-SENT (RFC 1122
    /// 4.2.3.9, as Linux's `tcp_v4_err`). The key is the ICMP packet's own;
    /// what it quotes is read by [`parse_unreachable`].
    Unreachable,
}

impl L4 {
    /// A TCP segment with SYN alone: a connection's first segment.
    pub const SYN: L4 = L4::Tcp {
        flags_syn: true,
        flags_ack: false,
        flags_rst: false,
        flags_fin: false,
    };
}

/// The flow a packet belongs to, as seen by the receiver (`src` is the remote peer).
///
/// ICMP: `sport` is the echo identifier for echo request/reply, else 0; `dport` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Transport protocol.
    pub proto: Proto,
    /// The remote peer's address (the packet's source).
    pub src: IpAddr,
    /// The remote peer's port (ICMP: the echo identifier or 0).
    pub sport: u16,
    /// The packet's destination, of the same family as `src` (one of ours once L2 took it).
    pub dst: IpAddr,
    /// The destination port, ours (ICMP: 0).
    pub dport: u16,
}

#[cfg(test)]
impl FlowKey {
    /// A TCP flow from 198.18.0.2:`sport` to 198.18.0.1:80 (unit tests).
    pub(crate) fn test_tcp4(sport: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            dport: 80,
        }
    }
}

/// Result of [`parse_ip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedIp {
    /// The flow the packet belongs to.
    pub key: FlowKey,
    /// The L4 protocol and, for TCP, its flags.
    pub l4: L4,
    /// L4 payload bytes after the L4 header (TCP header with options, 8-byte UDP header,
    /// 8-byte ICMP/ICMPv6 header).
    pub payload_len: usize,
    /// TCP sequence numbers, window and MSS option (zero for other protocols).
    pub tcp: TcpFields,
}

impl ParsedIp {
    /// A TCP SYN without ACK: the first segment of a connection.
    pub fn is_syn(&self) -> bool {
        matches!(
            self.l4,
            L4::Tcp {
                flags_syn: true,
                flags_ack: false,
                ..
            }
        )
    }
}

/// The TCP header fields SYN cookies need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFields {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Window (unscaled, as on the wire).
    pub window: u16,
    /// The MSS option of a SYN; 0 when absent.
    pub mss: u16,
}

/// Parse an IP packet (starting at the IP header, no Ethernet), validate lengths,
/// verify the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum (UDP over IPv4 with
/// checksum 0 is valid; over IPv6 it is not), reject fragments and martian sources, and
/// return the flow key.
///
/// The IP version is taken from the first nibble; anything but 4 or 6 is
/// [`DropReason::MalformedIpv4`] (an empty buffer too).
pub fn parse_ip(packet: &[u8]) -> Result<ParsedIp, DropReason> {
    match packet.first().map(|b| b >> 4) {
        Some(6) => parse_ipv6(packet),
        Some(4) => parse_ipv4(packet),
        _ => Err(DropReason::MalformedIpv4),
    }
}

/// Whether an IPv4 address may never be the source of a packet from the wire.
pub fn is_martian_v4(a: &Ipv4Addr) -> bool {
    a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.is_loopback()
}

/// Whether an IPv6 address may never be the source of a (non-NDP) packet from the wire.
/// IPv4-mapped addresses are martian too (RFC 4291 §2.5.5.2 forbids them on the wire).
pub fn is_martian_v6(a: &Ipv6Addr) -> bool {
    a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.to_ipv4_mapped().is_some()
}

/// Parse an IPv4 packet; see [`parse_ip`].
pub fn parse_ipv4(packet: &[u8]) -> Result<ParsedIp, DropReason> {
    let ip = Ipv4Packet::new_checked(packet).map_err(|_| DropReason::MalformedIpv4)?;
    if ip.version() != 4 {
        return Err(DropReason::MalformedIpv4);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpv4Checksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::Fragment);
    }
    // `payload()` is header_len..total_len: Ethernet padding is excluded.
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    parse_l4(src, dst, ip.next_header(), ip.payload())
}

/// Parse an IPv6 packet; see [`parse_ip`].
pub fn parse_ipv6(packet: &[u8]) -> Result<ParsedIp, DropReason> {
    let ip = Ipv6Packet::new_checked(packet).map_err(|_| DropReason::MalformedIpv6)?;
    if ip.version() != 6 {
        return Err(DropReason::MalformedIpv6);
    }
    // `payload()` is 40..40+payload_len: Ethernet padding is excluded.
    let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
    parse_l4(src, dst, ip.next_header(), ip.payload())
}

/// The part of [`parse_ipv4`] and [`parse_ipv6`] after the IP header: a
/// martian `src` is dropped, then the `proto` payload is parsed (ICMP only
/// of its own family, the IPv6 Fragment header dropped as a fragment).
#[inline]
fn parse_l4(
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    payload: &[u8],
) -> Result<ParsedIp, DropReason> {
    let martian = match src {
        IpAddr::V4(a) => is_martian_v4(&a),
        IpAddr::V6(a) => is_martian_v6(&a),
    };
    if martian {
        return Err(DropReason::Martian);
    }
    let (s, d) = (IpAddress::from(src), IpAddress::from(dst));
    match (proto, src, dst) {
        (IpProtocol::Tcp, ..) => parse_tcp(payload, &s, &d, src, dst),
        (IpProtocol::Udp, ..) => parse_udp(payload, &s, &d, src, dst, src.is_ipv6()),
        (IpProtocol::Icmp, IpAddr::V4(_), _) => {
            let icmp = Icmpv4Packet::new_checked(payload).map_err(|_| DropReason::MalformedIcmp)?;
            let echo = matches!(
                icmp.msg_type(),
                Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply
            );
            let ident = echo.then(|| icmp.echo_ident());
            let l4 = match (icmp.msg_type(), icmp.msg_code()) {
                (Icmpv4Message::DstUnreachable, ICMP4_FRAG_NEEDED) => L4::TooBig,
                (Icmpv4Message::DstUnreachable, _) => L4::Unreachable,
                _ => L4::Icmp,
            };
            icmp_parsed(icmp.verify_checksum(), ident, src, dst, l4, payload.len())
        }
        (IpProtocol::Icmpv6, IpAddr::V6(s6), IpAddr::V6(d6)) => {
            let icmp = Icmpv6Packet::new_checked(payload).map_err(|_| DropReason::MalformedIcmp)?;
            let echo = matches!(
                icmp.msg_type(),
                Icmpv6Message::EchoRequest | Icmpv6Message::EchoReply
            );
            let ident = echo.then(|| icmp.echo_ident());
            let ok = icmp.verify_checksum(&s6, &d6);
            let l4 = match icmp.msg_type() {
                Icmpv6Message::PktTooBig => L4::TooBig,
                Icmpv6Message::DstUnreachable => L4::Unreachable,
                _ => L4::Icmpv6,
            };
            icmp_parsed(ok, ident, src, dst, l4, payload.len())
        }
        (IpProtocol::Ipv6Frag, IpAddr::V6(_), _) => Err(DropReason::Fragment),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

/// An ICMP or ICMPv6 message of `len` bytes: dropped unless `checksum_ok`;
/// the flow's source port is the echo identifier (`ident`), else 0.
fn icmp_parsed(
    checksum_ok: bool,
    ident: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
    len: usize,
) -> Result<ParsedIp, DropReason> {
    if !checksum_ok {
        return Err(DropReason::BadL4Checksum);
    }
    Ok(ParsedIp {
        key: FlowKey {
            proto: Proto::Icmp,
            src,
            sport: ident.unwrap_or(0),
            dst,
            dport: 0,
        },
        l4,
        payload_len: len.saturating_sub(8),
        tcp: TcpFields::default(),
    })
}

/// ICMP destination unreachable code 4: fragmentation needed and DF set.
const ICMP4_FRAG_NEEDED: u8 = 4;

/// What an ICMP "fragmentation needed" or ICMPv6 "packet too big" says
/// ([`parse_too_big`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig {
    /// The TCP flow of the quoted segment as this host receives it: `src`
    /// is the peer (the quoted packet's destination), `dst` ours.
    pub key: FlowKey,
    /// The quoted segment's sequence number.
    pub seq: u32,
    /// The MTU the message reports (IPv4: the next-hop MTU, 0 from routers
    /// older than RFC 1191).
    pub mtu: u32,
    /// The quoted packet's IP total length (IPv6: 40 + payload length).
    pub quoted_len: u32,
}

/// Why [`parse_too_big`] found nothing to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooBigError {
    /// Not an ICMP "fragmentation needed" / "packet too big", or the quoted
    /// packet is cut short (less than its IP header and 8 bytes of TCP), of
    /// another IP version, or a fragment that is not the first.
    Malformed,
    /// The quoted packet is not TCP (a UDP answer, say): nothing to do.
    NotTcp,
}

/// Read what an ICMP "fragmentation needed" (RFC 1191) or ICMPv6 "packet
/// too big" (RFC 8201) quotes: `packet` is the whole IP packet, which
/// [`parse_ip`] accepted as [`L4::TooBig`] (lengths and checksums checked).
/// The quote holds the IP header and at least 8 bytes of what followed
/// (RFC 792; ICMPv6 quotes as much as fits in 1280 bytes): the TCP ports and
/// sequence number. IPv6 extension headers in the quote are not walked (a
/// quote whose next header is not TCP is [`TooBigError::NotTcp`]). Never
/// panics, whatever the bytes.
pub fn parse_too_big(packet: &[u8]) -> Result<TooBig, TooBigError> {
    let q = parse_quote(packet)?;
    let mtu = match q.family {
        4 if q.ty == 3 && q.code == ICMP4_FRAG_NEEDED => q.word & 0xffff,
        6 if q.ty == 2 => q.word,
        _ => return Err(TooBigError::Malformed),
    };
    Ok(TooBig {
        key: q.key,
        seq: q.seq,
        mtu,
        quoted_len: q.quoted_len,
    })
}

/// What an ICMP "destination unreachable" says of one of our TCP segments
/// ([`parse_unreachable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The TCP flow of the quoted segment as this host receives it.
    pub key: FlowKey,
    /// The quoted segment's sequence number.
    pub seq: u32,
    /// A port or protocol unreachable, or communication administratively
    /// prohibited: something at the destination (or a filter) refused
    /// (Linux: ECONNREFUSED, EACCES); otherwise the host or network could
    /// not be reached (EHOSTUNREACH, ENETUNREACH).
    pub refused: bool,
}

/// Read what an ICMP "destination unreachable" (IPv4 type 3 but
/// fragmentation needed, ICMPv6 type 1) quotes, as [`parse_too_big`] does.
/// Never panics, whatever the bytes.
pub fn parse_unreachable(packet: &[u8]) -> Result<Unreachable, TooBigError> {
    let q = parse_quote(packet)?;
    let refused = match q.family {
        // Protocol and port unreachable; network, host and communication
        // administratively prohibited.
        4 if q.ty == 3 && q.code != ICMP4_FRAG_NEEDED => matches!(q.code, 2 | 3 | 9 | 10 | 13),
        // Administratively prohibited, port unreachable, ingress/egress
        // policy, reject route.
        6 if q.ty == 1 => matches!(q.code, 1 | 4 | 5 | 6),
        _ => return Err(TooBigError::Malformed),
    };
    Ok(Unreachable {
        key: q.key,
        seq: q.seq,
        refused,
    })
}

/// An ICMP error message quoting a TCP segment, read but not judged.
struct Quote {
    family: u8,
    ty: u8,
    code: u8,
    /// The 4 bytes after the checksum (IPv4: unused but the next-hop MTU in
    /// the last 2; ICMPv6 packet too big: the MTU).
    word: u32,
    key: FlowKey,
    seq: u32,
    quoted_len: u32,
}

fn parse_quote(packet: &[u8]) -> Result<Quote, TooBigError> {
    use TooBigError::Malformed;
    let (family, body) = match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(packet).map_err(|_| Malformed)?;
            if ip.next_header() != IpProtocol::Icmp {
                return Err(Malformed);
            }
            (4, ip.payload())
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(packet).map_err(|_| Malformed)?;
            if ip.next_header() != IpProtocol::Icmpv6 {
                return Err(Malformed);
            }
            (6, ip.payload())
        }
        _ => return Err(Malformed),
    };
    // ICMP header: type, code, checksum, then 4 bytes, then the quote.
    let word = |b: &[u8], at: usize| -> Option<u32> {
        b.get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let half = |b: &[u8], at: usize| -> Option<u16> {
        b.get(at..at + 2).map(|w| u16::from_be_bytes([w[0], w[1]]))
    };
    let (ty, code) = match body {
        [ty, code, ..] => (*ty, *code),
        _ => return Err(Malformed),
    };
    let quote = body.get(8..).ok_or(Malformed)?;
    let quoted = match family {
        4 => quote_v4(quote)?,
        _ => quote_v6(quote)?,
    };
    let (ours, peer, tcp, quoted_len) = quoted;
    let sport = half(tcp, 0).ok_or(Malformed)?;
    let dport = half(tcp, 2).ok_or(Malformed)?;
    let seq = word(tcp, 4).ok_or(Malformed)?;
    Ok(Quote {
        family,
        ty,
        code,
        word: word(body, 4).ok_or(Malformed)?,
        key: FlowKey {
            proto: Proto::Tcp,
            src: peer,
            sport: dport,
            dst: ours,
            dport: sport,
        },
        seq,
        quoted_len,
    })
}

/// The quoted packet's (source, destination, TCP bytes, total length).
type Quoted<'a> = (IpAddr, IpAddr, &'a [u8], u32);

/// An IPv4 packet quoted by ICMP: its header, whole, then its TCP header's
/// first bytes (the quote is cut: no total-length check against it).
fn quote_v4(q: &[u8]) -> Result<Quoted<'_>, TooBigError> {
    use TooBigError::Malformed;
    let first = *q.first().ok_or(Malformed)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || q.len() < ihl + 8 {
        return Err(Malformed);
    }
    // A fragment other than the first carries no TCP header.
    let frag_off = u16::from_be_bytes([q[6], q[7]]) & 0x1fff;
    if frag_off != 0 {
        return Err(Malformed);
    }
    if q[9] != 6 {
        return Err(TooBigError::NotTcp);
    }
    let addr = |at: usize| IpAddr::V4(Ipv4Addr::new(q[at], q[at + 1], q[at + 2], q[at + 3]));
    let total = u32::from(u16::from_be_bytes([q[2], q[3]]));
    Ok((addr(12), addr(16), &q[ihl..], total))
}

/// An IPv6 packet quoted by ICMPv6: its fixed header, then (no extension
/// headers walked) its TCP header's first bytes.
fn quote_v6(q: &[u8]) -> Result<Quoted<'_>, TooBigError> {
    use TooBigError::Malformed;
    if q.len() < 48 || q[0] >> 4 != 6 {
        return Err(Malformed);
    }
    if q[6] != 6 {
        return Err(TooBigError::NotTcp);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&q[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let total = 40 + u32::from(u16::from_be_bytes([q[4], q[5]]));
    Ok((addr(8), addr(24), &q[40..], total))
}

/// The MSS option among a SYN's options (0 when absent or malformed).
fn syn_mss(mut opts: &[u8]) -> u16 {
    use smoltcp::wire::TcpOption;
    while !opts.is_empty() {
        match TcpOption::parse(opts) {
            Ok((rest, TcpOption::MaxSegmentSize(m))) => {
                let _ = rest;
                return m;
            }
            Ok((_, TcpOption::EndOfList)) | Err(_) => return 0,
            Ok((rest, _)) => opts = rest,
        }
    }
    0
}

/// The TSval of a TCP segment's timestamp option (RFC 7323), in an IP
/// packet [`parse_ip`] took already; `None` without one. Read apart from
/// [`parse_ip`], only where a TIME-WAIT record with timestamps needs it.
pub fn tcp_tsval(packet: &[u8]) -> Option<u32> {
    tcp_options(packet).timestamp.map(|(tsval, _)| tsval)
}

/// The options of a TCP segment SYN cookies use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOpts {
    /// MSS; 0 when absent.
    pub mss: u16,
    /// Window scale.
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

/// The TCP options of `packet`, an IP packet [`parse_ip`] accepted as TCP
/// (an IPv4 header with its options, or an IPv6 header without extension
/// headers); parsing stops at the first malformed option. Read apart from
/// `parse_ip`, which does not walk the options of every segment: only SYN
/// cookies need them, on a SYN answered with one and on the ACK that
/// returns one.
pub fn tcp_options(packet: &[u8]) -> TcpOpts {
    use smoltcp::wire::TcpOption;
    let mut o = TcpOpts::default();
    let ip_len = match packet.first().map(|b| b >> 4) {
        Some(4) => usize::from(packet[0] & 0xf) * 4,
        Some(6) => 40,
        _ => return o,
    };
    let Some(Ok(tcp)) = packet.get(ip_len..).map(TcpPacket::new_checked) else {
        return o;
    };
    let mut opts = tcp.options();
    while !opts.is_empty() {
        match TcpOption::parse(opts) {
            Ok((_, TcpOption::EndOfList)) | Err(_) => break,
            Ok((rest, opt)) => {
                match opt {
                    TcpOption::MaxSegmentSize(m) => o.mss = m,
                    TcpOption::WindowScale(w) => o.wscale = Some(w),
                    TcpOption::SackPermitted => o.sack_permitted = true,
                    TcpOption::TimeStamp { tsval, tsecr } => o.timestamp = Some((tsval, tsecr)),
                    _ => {}
                }
                opts = rest;
            }
        }
    }
    o
}

fn parse_tcp(
    payload: &[u8],
    s: &IpAddress,
    d: &IpAddress,
    src: IpAddr,
    dst: IpAddr,
) -> Result<ParsedIp, DropReason> {
    let tcp = TcpPacket::new_checked(payload).map_err(|_| DropReason::MalformedTcp)?;
    // verify_checksum covers the whole buffer, which is exactly the IP payload.
    if !tcp.verify_checksum(s, d) {
        return Err(DropReason::BadL4Checksum);
    }
    Ok(ParsedIp {
        key: FlowKey {
            proto: Proto::Tcp,
            src,
            sport: tcp.src_port(),
            dst,
            dport: tcp.dst_port(),
        },
        l4: L4::Tcp {
            flags_syn: tcp.syn(),
            flags_ack: tcp.ack(),
            flags_rst: tcp.rst(),
            flags_fin: tcp.fin(),
        },
        payload_len: payload.len().saturating_sub(usize::from(tcp.header_len())),
        tcp: TcpFields {
            seq: tcp.seq_number().0 as u32,
            ack: tcp.ack_number().0 as u32,
            window: tcp.window_len(),
            mss: if tcp.syn() { syn_mss(tcp.options()) } else { 0 },
        },
    })
}

fn parse_udp(
    payload: &[u8],
    s: &IpAddress,
    d: &IpAddress,
    src: IpAddr,
    dst: IpAddr,
    v6: bool,
) -> Result<ParsedIp, DropReason> {
    // check_len: UDP length field >= 8 and <= the IP payload. A UDP length shorter than the
    // IP payload is accepted (the rest is ignored), as Linux does.
    let udp = UdpPacket::new_checked(payload).map_err(|_| DropReason::MalformedUdp)?;
    // smoltcp's verify_checksum accepts checksum 0 for both families; over IPv6 a zero
    // checksum is invalid (RFC 8200 §8.1).
    if (v6 && udp.checksum() == 0) || !udp.verify_checksum(s, d) {
        return Err(DropReason::BadL4Checksum);
    }
    Ok(ParsedIp {
        key: FlowKey {
            proto: Proto::Udp,
            src,
            sport: udp.src_port(),
            dst,
            dport: udp.dst_port(),
        },
        l4: L4::Udp,
        payload_len: usize::from(udp.len()).saturating_sub(UDP_HEADER_LEN),
        tcp: TcpFields::default(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use smoltcp::wire::{
        Icmpv4Repr, Icmpv6Repr, TcpControl, TcpRepr, TcpSeqNumber, TcpTimestampRepr,
    };

    #[test]
    fn the_tsval_is_read_from_the_options_of_either_family() {
        for (src, dst) in [
            (IpAddr::V4(PEER4), IpAddr::V4(OURS4)),
            (IpAddr::V6(PEER6), IpAddr::V6(OURS6)),
        ] {
            let mut tcp = TcpRepr {
                src_port: 4000,
                dst_port: 80,
                control: TcpControl::Syn,
                seq_number: TcpSeqNumber(1000),
                ack_number: None,
                window_len: 1024,
                window_scale: Some(7),
                max_seg_size: Some(1460),
                sack_permitted: true,
                sack_ranges: [None; 3],
                timestamp: Some(TcpTimestampRepr::new(0xdead_beef, 7)),
                ecn: Default::default(),
                payload: &[],
            };
            let p = testkit::frames::tcp(src, dst, &tcp);
            assert!(parse_ip(&p).is_ok());
            assert_eq!(tcp_tsval(&p), Some(0xdead_beef));
            tcp.timestamp = None;
            assert_eq!(tcp_tsval(&testkit::frames::tcp(src, dst, &tcp)), None);
        }
        assert_eq!(tcp_tsval(&[]), None);
        assert_eq!(tcp_tsval(&[0x45, 0, 0]), None);
    }

    pub(crate) const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    pub(crate) const OURS4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    pub(crate) const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    pub(crate) const OURS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

    /// A TCP segment inside an IP packet, built with smoltcp's Repr types.
    pub(crate) fn tcp_packet(
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        control: TcpControl,
        payload: &[u8],
    ) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: dport,
            control,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 1024,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None; 3],
            timestamp: None,
            ecn: Default::default(),
            payload,
        };
        testkit::frames::tcp(src, dst, &tcp)
    }

    pub(crate) fn udp_packet(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
        testkit::frames::udp(src, dst, 5353, 53, payload)
    }

    /// Overwrite 1 to `most` random bytes of `p` (not empty) with random values.
    pub(crate) fn scramble(rng: &mut testkit::Rng, p: &mut [u8], most: usize) {
        for _ in 0..=rng.below(most) {
            let i = rng.below(p.len());
            p[i] = rng.next_u64() as u8;
        }
    }

    fn syn4() -> Vec<u8> {
        tcp_packet(PEER4.into(), OURS4.into(), 40000, 80, TcpControl::Syn, &[])
    }

    #[test]
    fn tcp_syn_v4_and_v6() {
        let p = parse_ip(&syn4()).unwrap();
        assert_eq!(
            p.key,
            FlowKey {
                proto: Proto::Tcp,
                src: PEER4.into(),
                sport: 40000,
                dst: OURS4.into(),
                dport: 80
            }
        );
        assert_eq!(p.l4, L4::SYN);
        assert_eq!(p.payload_len, 0);

        let pkt = tcp_packet(
            PEER6.into(),
            OURS6.into(),
            1,
            443,
            TcpControl::Fin,
            b"hello",
        );
        let p = parse_ip(&pkt).unwrap();
        assert_eq!(p.key.src, IpAddr::V6(PEER6));
        assert_eq!(p.key.dport, 443);
        assert!(matches!(
            p.l4,
            L4::Tcp {
                flags_fin: true,
                flags_syn: false,
                ..
            }
        ));
        assert_eq!(p.payload_len, 5);
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut pkt = tcp_packet(PEER4.into(), OURS4.into(), 1, 2, TcpControl::Psh, b"abc");
        pkt.extend_from_slice(&[0xAA; 11]);
        assert_eq!(parse_ip(&pkt).unwrap().payload_len, 3);
        let mut pkt = udp_packet(PEER6.into(), OURS6.into(), b"xyz");
        pkt.extend_from_slice(&[0x55; 7]);
        assert_eq!(parse_ip(&pkt).unwrap().payload_len, 3);
    }

    #[test]
    fn bad_checksums() {
        let mut pkt = syn4();
        let last = pkt.len() - 1;
        pkt[last] ^= 0x01; // inside the TCP header (options)
        assert_eq!(parse_ip(&pkt), Err(DropReason::BadL4Checksum));

        let mut pkt = syn4();
        pkt[8] ^= 0x10; // TTL: IPv4 header checksum now wrong
        assert_eq!(parse_ip(&pkt), Err(DropReason::BadIpv4Checksum));

        let mut pkt = udp_packet(PEER6.into(), OURS6.into(), b"q");
        *pkt.last_mut().unwrap() ^= 0xff;
        assert_eq!(parse_ip(&pkt), Err(DropReason::BadL4Checksum));
    }

    #[test]
    fn udp_zero_checksum_v4_ok_v6_rejected() {
        let mut pkt = udp_packet(PEER4.into(), OURS4.into(), b"dns?");
        pkt[20 + 6] = 0;
        pkt[20 + 7] = 0;
        let p = parse_ip(&pkt).unwrap();
        assert_eq!(p.key.proto, Proto::Udp);
        assert_eq!((p.key.sport, p.key.dport, p.payload_len), (5353, 53, 4));

        let mut pkt = udp_packet(PEER6.into(), OURS6.into(), b"dns?");
        pkt[40 + 6] = 0;
        pkt[40 + 7] = 0;
        assert_eq!(parse_ip(&pkt), Err(DropReason::BadL4Checksum));
    }

    #[test]
    fn fragments_dropped() {
        let mut pkt = syn4();
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
        assert_eq!(parse_ip(&pkt), Err(DropReason::Fragment));

        let mut pkt = syn4();
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
        ip.set_frag_offset(8);
        ip.fill_checksum();
        assert_eq!(parse_ip(&pkt), Err(DropReason::Fragment));

        let mut pkt = udp_packet(PEER6.into(), OURS6.into(), b"12345678");
        Ipv6Packet::new_unchecked(&mut pkt[..]).set_next_header(IpProtocol::Ipv6Frag);
        assert_eq!(parse_ip(&pkt), Err(DropReason::Fragment));
    }

    #[test]
    fn martians_and_unsupported() {
        for src in [
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(224, 0, 0, 1),
        ] {
            let pkt = tcp_packet(src.into(), OURS4.into(), 1, 2, TcpControl::Syn, &[]);
            assert_eq!(parse_ip(&pkt), Err(DropReason::Martian), "{src}");
        }
        for src in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "ff02::1".parse().unwrap(),
            "::ffff:10.0.0.2".parse().unwrap(),
        ] {
            let pkt = tcp_packet(src.into(), OURS6.into(), 1, 2, TcpControl::Syn, &[]);
            assert_eq!(parse_ip(&pkt), Err(DropReason::Martian), "{src}");
        }
        let mut pkt = syn4();
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
        ip.set_next_header(IpProtocol::Unknown(132)); // SCTP
        ip.fill_checksum();
        assert_eq!(parse_ip(&pkt), Err(DropReason::UnsupportedProtocol));

        let mut pkt = udp_packet(PEER6.into(), OURS6.into(), b"12345678");
        Ipv6Packet::new_unchecked(&mut pkt[..]).set_next_header(IpProtocol::HopByHop);
        assert_eq!(parse_ip(&pkt), Err(DropReason::UnsupportedProtocol));

        assert_eq!(parse_ip(&[]), Err(DropReason::MalformedIpv4));
        assert_eq!(parse_ip(&[0x50; 40]), Err(DropReason::MalformedIpv4));
    }

    #[test]
    fn icmp_echo_key_and_checksum() {
        let echo = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: b"ping",
        };
        let mut buf = testkit::frames::icmp4(PEER4, OURS4, &echo);
        let p = parse_ip(&buf).unwrap();
        assert_eq!(p.key.proto, Proto::Icmp);
        assert_eq!((p.key.sport, p.key.dport), (0x1234, 0));
        assert_eq!(p.l4, L4::Icmp);
        assert_eq!(p.payload_len, 4);
        buf[30] ^= 1;
        assert_eq!(parse_ip(&buf), Err(DropReason::BadL4Checksum));

        let echo6 = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 9,
            data: b"ping6",
        };
        let mut buf = testkit::frames::icmp6(PEER6, OURS6, &echo6);
        let p = parse_ip(&buf).unwrap();
        assert_eq!(
            (p.key.proto, p.key.sport, p.l4),
            (Proto::Icmp, 7, L4::Icmpv6)
        );
        buf[50] ^= 1;
        assert_eq!(parse_ip(&buf), Err(DropReason::BadL4Checksum));
    }

    /// An ICMP error from `router` to us quoting `quoted` (its first bytes
    /// `quote_len`) with `mtu`.
    fn too_big_packet(router: IpAddr, quoted: &[u8], quote_len: usize, mtu: u32) -> Vec<u8> {
        let q = &quoted[..quote_len.min(quoted.len())];
        match router {
            IpAddr::V4(r) => {
                let mut icmp = vec![3, 4, 0, 0, 0, 0];
                icmp.extend_from_slice(&(mtu as u16).to_be_bytes());
                icmp.extend_from_slice(q);
                Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
                testkit::frames::ip(r.into(), OURS4.into(), IpProtocol::Icmp, &icmp)
            }
            IpAddr::V6(r) => {
                let mut icmp = vec![2, 0, 0, 0];
                icmp.extend_from_slice(&mtu.to_be_bytes());
                icmp.extend_from_slice(q);
                Icmpv6Packet::new_unchecked(&mut icmp[..]).fill_checksum(&r, &OURS6);
                testkit::frames::ip(r.into(), OURS6.into(), IpProtocol::Icmpv6, &icmp)
            }
        }
    }

    #[test]
    fn too_big_quotes_the_flow_sequence_and_mtu() {
        let router4 = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        let router6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 9));
        for (ours, peer, router, hdr) in [
            (IpAddr::V4(OURS4), IpAddr::V4(PEER4), router4, 20),
            (IpAddr::V6(OURS6), IpAddr::V6(PEER6), router6, 40),
        ] {
            let seg = tcp_packet(ours, peer, 80, 40000, TcpControl::Psh, &[7; 1400]);
            let pkt = too_big_packet(router, &seg, hdr + 8, 1280);
            let p = parse_ip(&pkt).unwrap();
            assert_eq!((p.l4, p.key.src), (L4::TooBig, router));
            let tb = parse_too_big(&pkt).unwrap();
            assert_eq!(
                tb.key,
                FlowKey {
                    proto: Proto::Tcp,
                    src: peer,
                    sport: 40000,
                    dst: ours,
                    dport: 80
                }
            );
            assert_eq!((tb.seq, tb.mtu), (1000, 1280));
            assert_eq!(tb.quoted_len as usize, seg.len());
            // A longer quote (ICMPv6 quotes up to 1280 bytes) reads the same.
            assert_eq!(
                parse_too_big(&too_big_packet(router, &seg, 600, 1280)),
                Ok(tb)
            );
            // Every quote shorter than the header and 8 bytes is malformed.
            for n in 0..hdr + 8 {
                let pkt = too_big_packet(router, &seg, n, 1280);
                assert_eq!(parse_ip(&pkt).map(|p| p.l4), Ok(L4::TooBig));
                assert_eq!(parse_too_big(&pkt), Err(TooBigError::Malformed), "{n}");
            }
            // Every cut of the whole packet: an error, never a panic.
            for n in 0..pkt.len() {
                assert!(parse_too_big(&pkt[..n]).is_err());
            }
            // A quote of UDP is not ours to act on.
            let dgram = udp_packet(ours, peer, b"answer");
            let pkt = too_big_packet(router, &dgram, hdr + 8, 1280);
            assert_eq!(parse_too_big(&pkt), Err(TooBigError::NotTcp));
        }
        // Other ICMP errors are not path MTU messages.
        let seg = tcp_packet(OURS4.into(), PEER4.into(), 80, 1, TcpControl::Psh, b"x");
        let mut pkt = too_big_packet(router4, &seg, 28, 1280);
        pkt[21] = 1; // host unreachable
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
        let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
        icmp.fill_checksum();
        assert_eq!(parse_ip(&pkt).map(|p| p.l4), Ok(L4::Unreachable));
        assert_eq!(parse_too_big(&pkt), Err(TooBigError::Malformed));
        // ... they are destination unreachables: host (not a refusal) and
        // port unreachable (one).
        let u = parse_unreachable(&pkt).unwrap();
        assert_eq!(
            (u.key.dport, u.key.sport, u.seq, u.refused),
            (80, 1, 1000, false)
        );
        pkt[21] = 3;
        let mut ip = Ipv4Packet::new_unchecked(&mut pkt[..]);
        Icmpv4Packet::new_unchecked(ip.payload_mut()).fill_checksum();
        assert!(parse_unreachable(&pkt).unwrap().refused);
        // Fragmentation needed is not one.
        let pkt = too_big_packet(router4, &seg, 28, 1280);
        assert_eq!(parse_unreachable(&pkt), Err(TooBigError::Malformed));
        // A non-first fragment quoted carries no TCP header.
        let mut frag = seg.clone();
        frag[7] = 10;
        let pkt = too_big_packet(router4, &frag, 28, 1280);
        assert_eq!(parse_too_big(&pkt), Err(TooBigError::Malformed));
    }

    #[test]
    fn too_big_random_quotes_never_panic() {
        let mut rng = testkit::Rng::new(11);
        let router = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        let seg = tcp_packet(OURS4.into(), PEER4.into(), 80, 1, TcpControl::Psh, b"xy");
        for _ in 0..5000 {
            let mut q = seg.clone();
            scramble(&mut rng, &mut q, 8);
            let n = rng.below(q.len() + 1);
            let pkt = too_big_packet(router, &q, n, rng.next_u32());
            if let Ok(tb) = parse_too_big(&pkt) {
                assert_eq!(tb.key.proto, Proto::Tcp);
                assert!(n >= 28);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let pkts = [
            syn4(),
            tcp_packet(PEER6.into(), OURS6.into(), 1, 2, TcpControl::Syn, b"data"),
            udp_packet(PEER4.into(), OURS4.into(), b"abc"),
            udp_packet(PEER6.into(), OURS6.into(), b"abc"),
        ];
        for pkt in pkts {
            assert!(parse_ip(&pkt).is_ok());
            for n in 0..pkt.len() {
                assert!(parse_ip(&pkt[..n]).is_err(), "prefix {n} accepted");
            }
        }
    }

    #[test]
    fn random_bytes_and_mutations_never_panic() {
        // What is accepted is consistent with the bytes it came from: the
        // family of the version nibble, the addresses of the header, a
        // payload inside the packet.
        fn check(p: &[u8]) -> Result<(), DropReason> {
            let ip = parse_ip(p)?;
            let (src, dst) = if p[0] >> 4 == 6 {
                let a = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&p[o..o + 16]).unwrap());
                (a(8), a(24))
            } else {
                let a = |o: usize| IpAddr::from(<[u8; 4]>::try_from(&p[o..o + 4]).unwrap());
                (a(12), a(16))
            };
            assert_eq!((ip.key.src, ip.key.dst), (src, dst), "{p:02x?}");
            assert!(ip.payload_len < p.len(), "{ip:?} from {} bytes", p.len());
            Ok(())
        }
        let mut rng = testkit::Rng::new(0x9E37_79B9_7F4A_7C15);
        let mut buf = [0u8; 256];
        let mut random_accepted = 0;
        for _ in 0..20_000 {
            let n = rng.below(buf.len());
            rng.fill(&mut buf[..n]);
            // Bias towards plausible version nibbles so the deeper code is reached.
            if n > 0 {
                buf[0] = match rng.below(3) {
                    0 => 0x45,
                    1 => 0x60,
                    _ => buf[0],
                };
            }
            random_accepted += usize::from(check(&buf[..n]).is_ok());
        }
        // Random bytes almost never carry a right checksum.
        assert!(
            random_accepted < 20,
            "{random_accepted} random packets accepted"
        );
        // Mutate valid packets byte by byte (reaches L4 parsing with consistent lengths).
        // IPv4 has every byte under a checksum; IPv6 leaves its traffic
        // class, flow label and hop limit out (5 bytes of 54).
        let base = [
            (syn4(), 5),
            (udp_packet(PEER6.into(), OURS6.into(), b"abcdef"), 300),
        ];
        for (pkt, unchecked) in base {
            let (mut changed_accepted, mut l4_checked) = (0, 0);
            for _ in 0..5_000 {
                let mut p = pkt.clone();
                scramble(&mut rng, &mut p, 4);
                let r = check(&p);
                changed_accepted += usize::from(r.is_ok() && p != pkt);
                l4_checked += usize::from(r == Err(DropReason::BadL4Checksum));
            }
            // The checksums catch the changes they cover, many of them in
            // L4 (the mutations reach it).
            assert!(
                changed_accepted <= unchecked,
                "{changed_accepted} changed packets accepted"
            );
            assert!(l4_checked > 500, "{l4_checked} L4 checksums failed");
        }
    }
}
