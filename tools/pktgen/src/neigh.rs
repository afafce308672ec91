//! Neighbour resolution on a raw port: ARP and NDP requests and replies,
//! built and parsed with smoltcp's `wire` views. pktgen resolves the
//! destination MAC with them and answers requests for its source addresses
//! (a server learns neighbours from ARP/NDP only, as Linux does); the
//! reflector answers them in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags,
    NdiscRepr, RawHardwareAddress, ETHERNET_HEADER_LEN, IPV6_HEADER_LEN,
};

/// Shortest Ethernet frame without FCS; shorter frames are padded.
pub const MIN_FRAME: usize = 60;
/// Bytes of an ARP frame before padding.
const ARP_LEN: usize = ETHERNET_HEADER_LEN + 28;
/// Bytes of an NS/NA frame with a link-layer address option.
const NDISC_LEN: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 32;
/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

fn write_eth(buf: &mut [u8], src: [u8; 6], dst: [u8; 6], ethertype: EthernetProtocol) {
    EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(buf));
}

fn write_arp(
    buf: &mut [u8],
    op: ArpOperation,
    (sha, spa): ([u8; 6], Ipv4Addr),
    (tha, tpa): ([u8; 6], Ipv4Addr),
    eth_dst: [u8; 6],
) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME)?;
    frame.fill(0);
    write_eth(frame, sha, eth_dst, EthernetProtocol::Arp);
    ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: EthernetAddress(sha),
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress(tha),
        target_protocol_addr: tpa,
    }
    .emit(&mut ArpPacket::new_unchecked(
        &mut frame[ETHERNET_HEADER_LEN..ARP_LEN],
    ));
    Some(MIN_FRAME)
}

/// Write a broadcast ARP request "who has `target`? tell `ip` at `mac`" into
/// `buf`; returns the frame length (padded to 60), `None` if `buf` is short.
pub fn arp_request(buf: &mut [u8], mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Option<usize> {
    write_arp(
        buf,
        ArpOperation::Request,
        (mac, ip),
        ([0; 6], target),
        BROADCAST,
    )
}

/// Parse an ARP frame: `(operation, sender MAC, sender IP, target IP)`.
fn parse_arp(frame: &[u8]) -> Option<(ArpOperation, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let pkt = ArpPacket::new_checked(eth.payload()).ok()?;
    match ArpRepr::parse(&pkt).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } if source_hardware_addr.is_unicast() => Some((
            operation,
            source_hardware_addr.0,
            source_protocol_addr,
            target_protocol_addr,
        )),
        _ => None,
    }
}

/// The MAC in an ARP reply from `target`, if `frame` is one.
pub fn arp_reply_from(frame: &[u8], target: Ipv4Addr) -> Option<[u8; 6]> {
    match parse_arp(frame)? {
        (ArpOperation::Reply, sha, spa, _) if spa == target => Some(sha),
        _ => None,
    }
}

/// If `frame` (its first `len` bytes) is an ARP request for one of `ours`,
/// rewrite it in place into the reply from `mac` and return the new length.
pub fn answer_arp(frame: &mut [u8], len: usize, mac: [u8; 6], ours: &[Ipv4Addr]) -> Option<usize> {
    answer_arp_if(frame, len, mac, |a| ours.contains(&a))
}

/// Answers, in place of the received frame `f`, an ARP request or an NDP
/// solicitation for one of `ours`; whether it did (otherwise the frame is
/// given back).
#[inline]
pub fn reflect_answer<R: nic::Rings>(
    port: &mut nic::Port<R>,
    f: nic::Frame,
    mac: [u8; 6],
    ours: crate::gen::AddrRange,
) -> bool {
    let len = f.len as usize;
    let mut ok = false;
    port.reflect(f, |b| {
        let r = answer_arp_if(b, len, mac, |a| ours.contains(a.into()))
            .or_else(|| answer_ndp_if(b, len, mac, |a| ours.contains(a.into())));
        ok = r.is_some();
        r
    });
    ok
}

/// [`answer_arp`] for the addresses `is_ours` accepts.
pub fn answer_arp_if(
    frame: &mut [u8],
    len: usize,
    mac: [u8; 6],
    is_ours: impl Fn(Ipv4Addr) -> bool,
) -> Option<usize> {
    let (op, sha, spa, tpa) = parse_arp(frame.get(..len)?)?;
    if op != ArpOperation::Request || !is_ours(tpa) {
        return None;
    }
    write_arp(frame, ArpOperation::Reply, (mac, tpa), (sha, spa), sha)
}

/// Whether `frame` is an ARP request or a neighbour solicitation (from a
/// unicast source) for an address `is_ours` accepts.
pub fn is_request_for(frame: &[u8], is_ours: impl Fn(IpAddr) -> bool) -> bool {
    if let Some((op, _, _, tpa)) = parse_arp(frame) {
        return op == ArpOperation::Request && is_ours(IpAddr::V4(tpa));
    }
    match parse_ndisc(frame) {
        Some((_, src, NdiscRepr::NeighborSolicit { target_addr, .. })) => {
            !src.is_unspecified() && !src.is_multicast() && is_ours(IpAddr::V6(target_addr))
        }
        _ => false,
    }
}

/// The solicited-node group of `a` and its MAC.
pub fn solicited(a: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let group = stack::l2::solicited_node(a);
    let o = group.octets();
    (group, [0x33, 0x33, o[12], o[13], o[14], o[15]])
}

fn write_ndisc(
    buf: &mut [u8],
    (src_mac, src_ip): ([u8; 6], Ipv6Addr),
    (dst_mac, dst_ip): ([u8; 6], Ipv6Addr),
    ndisc: NdiscRepr,
) -> Option<usize> {
    let frame = buf.get_mut(..NDISC_LEN)?;
    frame.fill(0);
    write_eth(frame, src_mac, dst_mac, EthernetProtocol::Ipv6);
    let icmp = Icmpv6Repr::Ndisc(ndisc);
    let ip = Ipv6Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    if ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + icmp.buffer_len() != NDISC_LEN {
        return None;
    }
    let l3 = &mut frame[ETHERNET_HEADER_LEN..];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut *l3));
    icmp.emit(
        &src_ip,
        &dst_ip,
        &mut Icmpv6Packet::new_unchecked(&mut l3[IPV6_HEADER_LEN..]),
        &ChecksumCapabilities::default(),
    );
    Some(NDISC_LEN)
}

/// Write a neighbour solicitation for `target` from `ip` at `mac` (to the
/// target's solicited-node group, with our link-layer address).
pub fn ndp_solicit(buf: &mut [u8], mac: [u8; 6], ip: Ipv6Addr, target: Ipv6Addr) -> Option<usize> {
    let (group, group_mac) = solicited(target);
    write_ndisc(
        buf,
        (mac, ip),
        (group_mac, group),
        NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
        },
    )
}

/// Parse an NDP frame with a valid checksum and hop limit 255:
/// `(Ethernet source, IPv6 source, NDP message)`.
fn parse_ndisc(frame: &[u8]) -> Option<([u8; 6], Ipv6Addr, NdiscRepr<'_>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 || ip.hop_limit() != 255 {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    if !icmp.verify_checksum(&src, &dst) || icmp.msg_code() != 0 {
        return None;
    }
    let ndisc = NdiscRepr::parse(&icmp).ok()?;
    Some((eth.src_addr().0, src, ndisc))
}

fn mac_of(l: RawHardwareAddress) -> Option<[u8; 6]> {
    l.as_bytes().try_into().ok()
}

/// The MAC in a neighbour advertisement for `target`, if `frame` is one.
pub fn ndp_advert_for(frame: &[u8], target: Ipv6Addr) -> Option<[u8; 6]> {
    match parse_ndisc(frame)? {
        (
            eth_src,
            _,
            NdiscRepr::NeighborAdvert {
                target_addr,
                lladdr,
                ..
            },
        ) if target_addr == target => Some(lladdr.and_then(mac_of).unwrap_or(eth_src)),
        _ => None,
    }
}

/// If `frame` (its first `len` bytes) is a neighbour solicitation for one
/// of `ours` from a unicast source, rewrite it in place into the solicited
/// advertisement from `mac` and return the new length. DAD probes
/// (unspecified source) are not answered: we do not defend addresses.
pub fn answer_ndp(frame: &mut [u8], len: usize, mac: [u8; 6], ours: &[Ipv6Addr]) -> Option<usize> {
    answer_ndp_if(frame, len, mac, |a| ours.contains(&a))
}

/// [`answer_ndp`] for the addresses `is_ours` accepts.
pub fn answer_ndp_if(
    frame: &mut [u8],
    len: usize,
    mac: [u8; 6],
    is_ours: impl Fn(Ipv6Addr) -> bool,
) -> Option<usize> {
    let (eth_src, src, ndisc) = parse_ndisc(frame.get(..len)?)?;
    let NdiscRepr::NeighborSolicit {
        target_addr,
        lladdr,
    } = ndisc
    else {
        return None;
    };
    if src.is_unspecified() || src.is_multicast() || !is_ours(target_addr) {
        return None;
    }
    let peer_mac = lladdr.and_then(mac_of).unwrap_or(eth_src);
    write_ndisc(
        frame,
        (mac, target_addr),
        (peer_mac, src),
        NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
            target_addr,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
        },
    )
}

/// The stack's own L2 at `mac` with these addresses, and its neighbour
/// table: the peer pktgen's tests send to.
#[cfg(test)]
pub(crate) fn stack_l2(
    mac: [u8; 6],
    ipv4: Option<(Ipv4Addr, u8)>,
    ipv6: Option<(Ipv6Addr, u8)>,
) -> (stack::l2::L2, std::sync::Arc<stack::l2::SharedNeighbors>) {
    use stack::l2::{L2Config, SharedNeighbors, L2};
    let shared = std::sync::Arc::new(SharedNeighbors::new());
    let cfg = L2Config {
        mac,
        ipv4,
        ipv6,
        gateway4: None,
        gateway6: None,
    };
    (L2::new(cfg, shared.clone()), shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
    const B_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];
    const A4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const B4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 2);
    const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 1);

    #[test]
    fn arp_request_is_well_formed() {
        let mut buf = [0xeeu8; 128];
        let len = arp_request(&mut buf, A_MAC, A4, B4).unwrap();
        assert_eq!(len, 60);
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr().0, BROADCAST);
        assert_eq!(eth.src_addr().0, A_MAC);
        let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(
            repr,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(A_MAC),
                source_protocol_addr: A4,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: B4,
            }
        );
        assert!(buf[42..60].iter().all(|&b| b == 0), "padding is zero");
        assert!(arp_request(&mut buf[..59], A_MAC, A4, B4).is_none());
    }

    #[test]
    fn arp_answered_in_place_and_parsed_back() {
        let mut buf = [0u8; 128];
        let len = arp_request(&mut buf, A_MAC, A4, B4).unwrap();
        // Not ours: untouched.
        let before = buf;
        assert_eq!(
            answer_arp(&mut buf, len, B_MAC, &[Ipv4Addr::new(10, 0, 0, 1)]),
            None
        );
        assert_eq!(buf, before);
        // A request is not a reply.
        assert_eq!(arp_reply_from(&buf[..len], B4), None);
        let len = answer_arp(&mut buf, len, B_MAC, &[B4]).unwrap();
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr().0, A_MAC);
        assert_eq!(eth.src_addr().0, B_MAC);
        assert_eq!(arp_reply_from(&buf[..len], B4), Some(B_MAC));
        assert_eq!(arp_reply_from(&buf[..len], A4), None, "reply from B, not A");
        // A reply is not answered again.
        assert_eq!(answer_arp(&mut buf, len, B_MAC, &[B4]), None);
    }

    /// The stack's own L2 answers our request, and we understand its reply.
    #[test]
    fn the_stack_answers_our_arp_and_ndp() {
        use stack::l2::Ingress;
        let (mut l2, _) = stack_l2(B_MAC, Some((B4, 24)), Some((B6, 64)));
        let mut req = [0u8; 128];
        let mut reply = [0u8; 256];
        let len = arp_request(&mut req, A_MAC, A4, B4).unwrap();
        let Ingress::Reply { len: rl } = l2.ingress(&req[..len], &mut reply, 0) else {
            panic!("no ARP reply");
        };
        assert_eq!(arp_reply_from(&reply[..rl], B4), Some(B_MAC));

        let len = ndp_solicit(&mut req, A_MAC, A6, B6).unwrap();
        let Ingress::Reply { len: rl } = l2.ingress(&req[..len], &mut reply, 0) else {
            panic!("no NA");
        };
        assert_eq!(ndp_advert_for(&reply[..rl], B6), Some(B_MAC));
        assert_eq!(ndp_advert_for(&reply[..rl], A6), None);
    }

    #[test]
    fn ndp_answered_in_place() {
        let mut buf = [0u8; 256];
        let len = ndp_solicit(&mut buf, A_MAC, A6, B6).unwrap();
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr().0, [0x33, 0x33, 0xff, 0, 0, 1]);
        assert_eq!(ndp_advert_for(&buf[..len], B6), None, "an NS is no NA");
        assert_eq!(answer_ndp(&mut buf, len, B_MAC, &[A6]), None, "not ours");
        let len = answer_ndp(&mut buf, len, B_MAC, &[B6]).unwrap();
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr().0, A_MAC);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (B6, A6));
        assert_eq!(ndp_advert_for(&buf[..len], B6), Some(B_MAC));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = testkit::Rng::new(7);
        let mut buf = [0u8; 256];
        for i in 0..20_000usize {
            let len = rng.below(120);
            rng.fill(&mut buf[..len]);
            // Make some of them look like ARP / IPv6.
            if len >= 14 && i % 3 == 0 {
                buf[12..14].copy_from_slice(&[0x08, 0x06]);
            } else if len >= 14 && i % 3 == 1 {
                buf[12..14].copy_from_slice(&[0x86, 0xdd]);
            }
            // A frame too short for ARP or NDP is never taken for an answer.
            if len < 42 {
                assert_eq!(arp_reply_from(&buf[..len], B4), None);
                assert_eq!(ndp_advert_for(&buf[..len], B6), None);
            }
            // An answer is built in the buffer and fits it.
            if let Some(n) = answer_arp(&mut buf, len, B_MAC, &[B4]) {
                assert!(n <= buf.len(), "{n}");
            }
            if let Some(n) = answer_ndp(&mut buf, len, B_MAC, &[B6]) {
                assert!(n <= buf.len(), "{n}");
            }
            // A length past the buffer is refused.
            assert_eq!(answer_arp(&mut buf[..len], len + 10, B_MAC, &[B4]), None);
        }
    }
}
