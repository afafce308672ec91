//! A smaller MTU on the way towards the client (`--mtu N`): the forwarder stands for a router
//! whose next link carries IP packets of at most N bytes. A larger IPv4 packet with DF set, or
//! any larger IPv6 packet (IPv6 routers never fragment), is dropped and answered towards its
//! sender with an ICMP "fragmentation needed" carrying the next-hop MTU (RFC 1191) or an ICMPv6
//! "packet too big" (RFC 8201), from the forwarder's own address on that side. A larger IPv4
//! packet without DF is dropped too (this router does not fragment), counted apart.
//!
//! The middle namespace's kernel holds no address and must send nothing (the sandbox turns its
//! IPv6 off): the forwarder writes the ICMP frames itself, from the MAC of its interface
//! towards the server and the addresses it is given (by default [`ROUTER_IP4`] and
//! [`ROUTER_IP6`], on the sandbox's link and used by neither end). Pure: frames in, frames
//! out, tested without root.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The forwarder's IPv4 address on the sandbox's link (the ICMP messages' source).
pub const ROUTER_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The forwarder's IPv6 address on the sandbox's link.
pub const ROUTER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 0xfe);

/// Smallest `--mtu` accepted (RFC 791's 576; IPv6 needs 1280 to pass at all).
pub const MIN_MTU: u16 = 576;

/// What an IPv4 ICMP error quotes at most, the whole message included (RFC 1812 §4.3.2.3).
const V4_ERROR_MAX: usize = 576;
/// What an ICMPv6 error is at most, the whole packet included (RFC 4443 §2.4 (c)).
const V6_ERROR_MAX: usize = 1280;

/// The MTU check of one direction, and who answers for it.
#[derive(Clone, Debug)]
pub struct MtuGate {
    /// The largest IP packet forwarded.
    pub mtu: u16,
    /// The MAC the ICMP messages come from (the forwarder's interface towards the sender).
    pub mac: [u8; 6],
    /// The ICMP messages' IPv4 source.
    pub ip4: Ipv4Addr,
    /// The ICMPv6 messages' source.
    pub ip6: Ipv6Addr,
}

/// What the gate does with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// It fits (or is not IP): forward it.
    Pass,
    /// Too big: dropped, and this frame goes back to the sender.
    TooBig(Vec<u8>),
    /// Too big: dropped with no answer (IPv4 without DF, or an ICMP error itself: no error
    /// answers an error, RFC 1122 §3.2.2).
    Drop,
}

/// The forwarder's counters of the gate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MtuCounters {
    /// IPv4 packets too big, answered with "fragmentation needed".
    pub frag_needed_sent: u64,
    /// IPv6 packets too big, answered with "packet too big".
    pub packet_too_big_sent: u64,
    /// Packets too big dropped without an answer.
    pub dropped_silently: u64,
}

impl MtuGate {
    /// Check one Ethernet frame (untagged; anything else passes); count into `c`.
    pub fn check(&self, frame: &[u8], c: &mut MtuCounters) -> Gate {
        let Some(ip) = frame.get(14..) else {
            return Gate::Pass;
        };
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let mtu = usize::from(self.mtu);
        let gate = match ethertype {
            0x0800 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
                let len = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
                if len <= mtu {
                    return Gate::Pass;
                }
                let df = ip[6] & 0x40 != 0;
                let ihl = usize::from(ip[0] & 0xf) * 4;
                if !df || is_icmp_error(ip[9] == 1, ip.get(ihl).copied(), 1) {
                    Gate::Drop
                } else {
                    Gate::TooBig(self.frag_needed(frame, &ip[..len]))
                }
            }
            0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
                let len = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
                if len <= mtu {
                    return Gate::Pass;
                }
                if is_icmp_error(ip[6] == 58, ip.get(40).copied(), 6) {
                    Gate::Drop
                } else {
                    Gate::TooBig(self.packet_too_big(frame, &ip[..len]))
                }
            }
            _ => return Gate::Pass,
        };
        match (&gate, ethertype) {
            (Gate::TooBig(_), 0x0800) => c.frag_needed_sent += 1,
            (Gate::TooBig(_), _) => c.packet_too_big_sent += 1,
            _ => c.dropped_silently += 1,
        }
        gate
    }

    /// ICMP type 3 code 4 with the next-hop MTU, quoting `ip` (its first bytes).
    fn frag_needed(&self, frame: &[u8], ip: &[u8]) -> Vec<u8> {
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let quote = &ip[..ip.len().min(V4_ERROR_MAX - 28)];
        let mut icmp = vec![3, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&self.mtu.to_be_bytes());
        icmp.extend_from_slice(quote);
        let sum = checksum(&[&icmp]);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut out = self.eth(frame, 0x0800);
        let mut hdr = [0u8; 20];
        hdr[0] = 0x45;
        hdr[1] = 0xc0; // internetwork control, as Linux sends its ICMP errors
        hdr[2..4].copy_from_slice(&total.to_be_bytes());
        hdr[8] = 64;
        hdr[9] = 1;
        hdr[12..16].copy_from_slice(&self.ip4.octets());
        hdr[16..20].copy_from_slice(&src.octets());
        let sum = checksum(&[&hdr]);
        hdr[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&icmp);
        out
    }

    /// ICMPv6 type 2 with the MTU, quoting as much of `ip` as fits in 1280 bytes.
    fn packet_too_big(&self, frame: &[u8], ip: &[u8]) -> Vec<u8> {
        let mut src = [0u8; 16];
        src.copy_from_slice(&ip[8..24]);
        let quote = &ip[..ip.len().min(V6_ERROR_MAX - 48)];
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&u32::from(self.mtu).to_be_bytes());
        icmp.extend_from_slice(quote);
        let len = icmp.len() as u32;
        let pseudo_tail = [len.to_be_bytes(), [0, 0, 0, 58]].concat();
        let sum = checksum(&[&self.ip6.octets(), &src, &pseudo_tail, &icmp]);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut out = self.eth(frame, 0x86dd);
        let mut hdr = [0u8; 40];
        hdr[0] = 0x60;
        hdr[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
        hdr[6] = 58;
        hdr[7] = 64;
        hdr[8..24].copy_from_slice(&self.ip6.octets());
        hdr[24..40].copy_from_slice(&src);
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&icmp);
        out
    }

    /// An Ethernet header back to `frame`'s sender.
    fn eth(&self, frame: &[u8], ethertype: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + 600);
        out.extend_from_slice(&frame[6..12]);
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&ethertype.to_be_bytes());
        out
    }
}

/// Whether an ICMP (`version` 1) or ICMPv6 (6) message of type `ty` is an error.
fn is_icmp_error(is_icmp: bool, ty: Option<u8>, version: u8) -> bool {
    match (is_icmp, ty) {
        (false, _) => false,
        // ICMPv6: errors are types 0-127; ICMP: all but echo (0, 8) and the old queries.
        (true, Some(t)) if version == 6 => t < 128,
        (true, Some(t)) => !matches!(t, 0 | 8 | 13 | 14),
        (true, None) => true,
    }
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts` (each but the last of
/// even length).
pub(super) fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for p in parts {
        let mut chunks = p.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [b] = chunks.remainder() {
            sum += u32::from(*b) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The MAC of interface `name` (from sysfs of the current network namespace).
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRV_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];
    const CLI_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
    const FWD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

    fn gate(mtu: u16) -> MtuGate {
        MtuGate {
            mtu,
            mac: FWD_MAC,
            ip4: ROUTER_IP4,
            ip6: ROUTER_IP6,
        }
    }

    /// An Ethernet frame from the server to the client with an IPv4 TCP packet of `len` bytes.
    fn v4(len: usize, df: bool, proto: u8) -> Vec<u8> {
        let mut f = [CLI_MAC, SRV_MAC].concat();
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; len];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip[6] = if df { 0x40 } else { 0 };
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let sum = checksum(&[&ip[..20]]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        for (i, b) in ip[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f.extend_from_slice(&ip);
        f
    }

    fn v6(len: usize, nh: u8) -> Vec<u8> {
        let mut f = [CLI_MAC, SRV_MAC].concat();
        f.extend_from_slice(&[0x86, 0xdd]);
        let mut ip = vec![0u8; len];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        ip[6] = nh;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&"2001:db8:18::1".parse::<Ipv6Addr>().unwrap().octets());
        ip[24..40].copy_from_slice(&"2001:db8:18::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn what_fits_passes() {
        let mut c = MtuCounters::default();
        let g = gate(1280);
        assert_eq!(g.check(&v4(1280, true, 6), &mut c), Gate::Pass);
        assert_eq!(g.check(&v6(1280, 6), &mut c), Gate::Pass);
        assert_eq!(g.check(&[0u8; 10], &mut c), Gate::Pass);
        let mut arp = v4(1500, true, 6);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(g.check(&arp, &mut c), Gate::Pass);
        assert_eq!(c, MtuCounters::default());
    }

    #[test]
    fn ipv4_frag_needed_with_the_next_hop_mtu() {
        let mut c = MtuCounters::default();
        let big = v4(1500, true, 6);
        let Gate::TooBig(reply) = gate(1280).check(&big, &mut c) else {
            panic!("not answered");
        };
        assert_eq!(c.frag_needed_sent, 1);
        // Back to the sender, from the forwarder.
        assert_eq!((&reply[..6], &reply[6..12]), (&SRV_MAC[..], &FWD_MAC[..]));
        let ip = &reply[14..];
        assert_eq!(ip.len(), 576, "quotes up to 576 bytes in all");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 576);
        assert_eq!(checksum(&[&ip[..20]]), 0, "IPv4 header checksum");
        assert_eq!(
            (&ip[12..16], &ip[16..20]),
            (&[198, 18, 0, 254][..], &[198, 18, 0, 1][..])
        );
        let icmp = &ip[20..];
        assert_eq!(checksum(&[icmp]), 0, "ICMP checksum");
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1280);
        assert_eq!(&icmp[8..], &big[14..14 + 548]);
        // Without DF: dropped, no answer; an ICMP error too big: no error about it.
        assert_eq!(gate(1280).check(&v4(1500, false, 6), &mut c), Gate::Drop);
        let mut err = v4(1500, true, 1);
        err[14 + 20] = 3;
        assert_eq!(gate(1280).check(&err, &mut c), Gate::Drop);
        assert_eq!(c.dropped_silently, 2);
        // An echo request is answered.
        let mut echo = v4(1500, true, 1);
        echo[14 + 20] = 8;
        assert!(matches!(gate(1280).check(&echo, &mut c), Gate::TooBig(_)));
    }

    #[test]
    fn ipv6_packet_too_big() {
        let mut c = MtuCounters::default();
        let big = v6(1500, 6);
        let Gate::TooBig(reply) = gate(1280).check(&big, &mut c) else {
            panic!("not answered");
        };
        assert_eq!(c.packet_too_big_sent, 1);
        let ip = &reply[14..];
        assert_eq!(ip.len(), 1280, "as much as fits in 1280 bytes");
        assert_eq!(&ip[8..24], &ROUTER_IP6.octets());
        assert_eq!(&ip[24..40], &big[14 + 8..14 + 24]);
        let icmp = &ip[40..];
        let pseudo = [(icmp.len() as u32).to_be_bytes(), [0, 0, 0, 58]].concat();
        assert_eq!(checksum(&[&ip[8..24], &ip[24..40], &pseudo, icmp]), 0);
        assert_eq!((icmp[0], icmp[1]), (2, 0));
        assert_eq!(
            u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
            1280
        );
        assert_eq!(&icmp[8..], &big[14..14 + 1232]);
        // An ICMPv6 error is not answered; an echo request is.
        let mut err = v6(1500, 58);
        err[14 + 40] = 1;
        assert_eq!(gate(1280).check(&err, &mut c), Gate::Drop);
        err[14 + 40] = 128;
        assert!(matches!(gate(1280).check(&err, &mut c), Gate::TooBig(_)));
    }

    #[test]
    fn cut_frames_never_panic() {
        let mut c = MtuCounters::default();
        for f in [v4(1500, true, 6), v6(1500, 6), v6(1500, 58)] {
            for n in 0..f.len() {
                let _ = gate(1280).check(&f[..n], &mut c);
            }
        }
    }
}
