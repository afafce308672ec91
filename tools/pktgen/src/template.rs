//! Packet templates: each kind of packet is built once, complete and with
//! valid checksums, by smoltcp's `wire` emitters; per packet only a few
//! fields change (source address and port, sequence numbers, DNS id, the
//! echo header), and each change updates the checksums that cover it
//! incrementally (RFC 1624), starting from whatever the frame holds. So a
//! frame written once from the template can be patched again and again.
//! `ns` (IPv6 neighbour solicitations) is built by [`super::neigh`] and
//! patched in its source address only: one solicitation per source.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    UdpPacket, UdpRepr, ETHERNET_HEADER_LEN,
};

use super::csum::{set16, set32, set64, set_bytes};
use super::echo::{EchoHeader, HEADER_LEN as ECHO_HEADER_LEN, SEQ_OFF, THREAD_OFF, TS_OFF};
use super::neigh::{self, MIN_FRAME};

/// Largest IP packet we build (the usual Ethernet MTU).
pub const MTU: usize = 1500;
const ETH: usize = ETHERNET_HEADER_LEN;

/// Which packet a template builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// UDP datagrams of a given payload size.
    Udp,
    /// TCP SYNs (with an MSS option), a new connection attempt each.
    Syn,
    /// DNS queries (A, recursion desired) for one name.
    Dns,
    /// UDP carrying a timestamp and a sequence number, expected back.
    Echo,
    /// IPv6 neighbour solicitations for the destination address, to its
    /// solicited-node group, with our MAC as the source link-layer address:
    /// a neighbour flood when the source cycles over many addresses (each
    /// is a new neighbour to the target); answered by advertisements.
    Ns,
    /// HTTP/1.1 GETs over TCP connections this generator opens itself
    /// (its own small TCP on the XSK, no client kernel; see
    /// [`super::httpc`]). Its template is the SYN.
    Http,
    /// DNS queries over TCP (RFC 7766), each length-prefixed, on connections
    /// opened the same way as `http`'s; with `--close` one query per
    /// connection, closed by the client once answered (as `kxdpgun -T`).
    #[value(name = "dnstcp")]
    Dnstcp,
}

impl Kind {
    /// Default destination port.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::Udp => 9,
            Kind::Syn | Kind::Http => 80,
            Kind::Dns | Kind::Dnstcp => 53,
            Kind::Echo => 7,
            // No ports: NDP is ICMPv6.
            Kind::Ns => 0,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Udp => "udp",
            Kind::Syn => "syn",
            Kind::Dns => "dns",
            Kind::Echo => "echo",
            Kind::Ns => "ns",
            Kind::Http => "http",
            Kind::Dnstcp => "dnstcp",
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Kind of packet.
    pub kind: Kind,
    /// Source MAC (the interface's).
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address of the first flow.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port of the first flow.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// UDP payload bytes (udp, echo); ignored for syn and dns.
    pub payload: usize,
    /// Name asked for (dns).
    pub qname: String,
    /// Run id written into echo payloads.
    pub run: u32,
}

/// Why a template cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Source and destination families differ.
    #[error("source {src} and destination {dst} are not of the same address family")]
    Family {
        /// Source.
        src: IpAddr,
        /// Destination.
        dst: IpAddr,
    },
    /// The packet would not fit the MTU.
    #[error(
        "a {payload}-byte payload makes a {ip_len}-byte IP packet, more than the MTU of {MTU}"
    )]
    TooBig {
        /// Payload asked for.
        payload: usize,
        /// Resulting IP length.
        ip_len: usize,
    },
    /// Echo payloads carry a header.
    #[error("echo payloads need at least {ECHO_HEADER_LEN} bytes (got --payload {0})")]
    EchoTooSmall(usize),
    /// Neighbour solicitations are IPv6 (IPv4 has ARP).
    #[error("ns sends IPv6 neighbour solicitations: the destination {0} is not IPv6")]
    NeedsIpv6(IpAddr),
    /// The solicitation did not fit its buffer (never, with the MTU's).
    #[error("cannot build the neighbour solicitation")]
    Ndp,
    /// The DNS name is not valid.
    #[error("bad DNS name {name:?}: {detail}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// The per-packet values a template is patched with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    /// Source address (same family as the template).
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Echo: sequence number; syn: the initial sequence number (low 32 bits).
    pub seq: u64,
    /// Echo: send time in ns since the run's start.
    pub ts_ns: u64,
    /// Echo: the sending thread.
    pub thread: u32,
    /// DNS: the query id.
    pub dns_id: u16,
    /// The flow's index (not written into the packet; the sender keeps
    /// per-flow state by it).
    pub flow: u64,
}

/// A built template and where its variable fields are.
#[derive(Clone, Debug)]
pub struct Template {
    kind: Kind,
    frame: Vec<u8>,
    v6: bool,
    /// Offset of the L4 header.
    l4: usize,
    /// Offset of the L4 payload.
    payload: usize,
    /// Checksums covering the source address: IPv4 header (v4 only) and L4.
    addr_csums: Vec<usize>,
    /// The L4 checksum.
    l4_csum: usize,
    /// Offset of the source address.
    src_off: usize,
}

/// Emit `kind`'s L4 header and payload into `buf` (exactly its length);
/// not for `ns` (built whole by [`Template::build_ns`]).
fn emit_l4(spec: &Spec, payload: &[u8], buf: &mut [u8]) {
    let caps = ChecksumCapabilities::default();
    let (s, d) = (IpAddress::from(spec.src), IpAddress::from(spec.dst));
    match spec.kind {
        Kind::Ns => {}
        Kind::Syn | Kind::Http | Kind::Dnstcp => syn_repr(spec.src_port, spec.dst_port).emit(
            &mut TcpPacket::new_unchecked(buf),
            &s,
            &d,
            &caps,
        ),
        Kind::Udp | Kind::Dns | Kind::Echo => UdpRepr {
            src_port: spec.src_port,
            dst_port: spec.dst_port,
        }
        .emit(
            &mut UdpPacket::new_unchecked(buf),
            &s,
            &d,
            payload.len(),
            |p| p.copy_from_slice(payload),
            &caps,
        ),
    }
}

fn syn_repr(src_port: u16, dst_port: u16) -> TcpRepr<'static> {
    TcpRepr {
        src_port,
        dst_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(0),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    }
}

/// A DNS query for `name` (A, IN, RD) with id 0.
pub fn dns_query(name: &str) -> Result<Vec<u8>, TemplateError> {
    let bad = |detail: String| TemplateError::BadName {
        name: name.to_string(),
        detail,
    };
    let qname = Name::from_ascii(name).map_err(|e| bad(e.to_string()))?;
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, RecordType::A));
    m.to_vec().map_err(|e| bad(e.to_string()))
}

impl Template {
    /// Build the template for `spec`.
    pub fn build(spec: &Spec) -> Result<Template, TemplateError> {
        let v6 = match (spec.src, spec.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (src, dst) => return Err(TemplateError::Family { src, dst }),
        };
        if spec.kind == Kind::Ns {
            return Self::build_ns(spec);
        }
        let payload: Vec<u8> = match spec.kind {
            Kind::Syn | Kind::Ns | Kind::Http | Kind::Dnstcp => Vec::new(),
            Kind::Dns => dns_query(&spec.qname)?,
            Kind::Udp => (0..spec.payload).map(|i| b'a' + (i % 26) as u8).collect(),
            Kind::Echo => {
                if spec.payload < ECHO_HEADER_LEN {
                    return Err(TemplateError::EchoTooSmall(spec.payload));
                }
                let mut p: Vec<u8> = (0..spec.payload).map(|i| (i % 251) as u8).collect();
                EchoHeader {
                    run: spec.run,
                    thread: 0,
                    seq: 0,
                    ts_ns: 0,
                }
                .encode(&mut p)
                .ok_or(TemplateError::EchoTooSmall(spec.payload))?;
                p
            }
        };
        let (l4_len, l4_csum_at) = match spec.kind {
            Kind::Syn | Kind::Http | Kind::Dnstcp => {
                (syn_repr(spec.src_port, spec.dst_port).buffer_len(), 16)
            }
            _ => (8 + payload.len(), 6),
        };
        let ip_hdr = if v6 { 40 } else { 20 };
        let ip_len = ip_hdr + l4_len;
        if ip_len > MTU {
            return Err(TemplateError::TooBig {
                payload: payload.len(),
                ip_len,
            });
        }
        let len = (ETH + ip_len).max(MIN_FRAME);
        let mut frame = vec![0u8; len];
        EthernetRepr {
            src_addr: EthernetAddress(spec.src_mac),
            dst_addr: EthernetAddress(spec.dst_mac),
            ethertype: if v6 {
                EthernetProtocol::Ipv6
            } else {
                EthernetProtocol::Ipv4
            },
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        let next_header = if matches!(spec.kind, Kind::Syn | Kind::Http | Kind::Dnstcp) {
            IpProtocol::Tcp
        } else {
            IpProtocol::Udp
        };
        let l4 = ETH + ip_hdr;
        match (spec.src, spec.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len: l4_len,
                hop_limit: 64,
            }
            .emit(
                &mut Ipv4Packet::new_unchecked(&mut frame[ETH..l4]),
                &ChecksumCapabilities::default(),
            ),
            (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len: l4_len,
                hop_limit: 64,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut frame[ETH..l4])),
            _ => unreachable!("families checked above"),
        }
        emit_l4(spec, &payload, &mut frame[l4..l4 + l4_len]);
        let l4_csum = l4 + l4_csum_at;
        let (addr_csums, src_off) = if v6 {
            (vec![l4_csum], ETH + 8)
        } else {
            (vec![ETH + 10, l4_csum], ETH + 12)
        };
        Ok(Template {
            kind: spec.kind,
            frame,
            v6,
            l4,
            payload: l4
                + if matches!(spec.kind, Kind::Syn | Kind::Http | Kind::Dnstcp) {
                    l4_len
                } else {
                    8
                },
            addr_csums,
            l4_csum,
            src_off,
        })
    }

    /// A neighbour solicitation from `spec.src` for `spec.dst` (IPv6 both;
    /// `spec.dst_mac` is not used: the frame goes to the target's
    /// solicited-node group). Only the source address is patched, and with
    /// it the ICMPv6 checksum (its pseudo-header covers the address).
    fn build_ns(spec: &Spec) -> Result<Template, TemplateError> {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (spec.src, spec.dst) else {
            return Err(TemplateError::NeedsIpv6(spec.dst));
        };
        let mut frame = vec![0u8; MTU];
        let len =
            neigh::ndp_solicit(&mut frame, spec.src_mac, src, dst).ok_or(TemplateError::Ndp)?;
        frame.truncate(len.max(MIN_FRAME));
        let l4 = ETH + 40;
        Ok(Template {
            kind: Kind::Ns,
            frame,
            v6: true,
            l4,
            payload: l4 + 24,
            addr_csums: vec![l4 + 2],
            l4_csum: l4 + 2,
            src_off: ETH + 8,
        })
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The frame as built.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Frame length (padded to 60 bytes).
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// IPv6 template.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Write the template into `frame` (at least [`Template::len`] bytes).
    pub fn write(&self, frame: &mut [u8]) -> Option<usize> {
        frame
            .get_mut(..self.frame.len())?
            .copy_from_slice(&self.frame);
        Some(self.frame.len())
    }

    /// Patch `frame`, which holds this template as written by
    /// [`Template::write`] or as patched before, with `f`; returns the frame
    /// length. Checksums stay valid. `None` (frame untouched or partly
    /// patched, never invalid) if `frame` is too short or `f.src` is of the
    /// other family.
    pub fn patch(&self, frame: &mut [u8], f: &Fields) -> Option<usize> {
        let frame = frame.get_mut(..self.frame.len())?;
        match f.src {
            IpAddr::V4(a) if !self.v6 => {
                set_bytes(frame, self.src_off, &a.octets(), &self.addr_csums)?
            }
            IpAddr::V6(a) if self.v6 => {
                set_bytes(frame, self.src_off, &a.octets(), &self.addr_csums)?
            }
            _ => return None,
        }
        if self.kind == Kind::Ns {
            return Some(self.frame.len());
        }
        let c = [self.l4_csum];
        set16(frame, self.l4, f.src_port, &c)?;
        match self.kind {
            Kind::Udp | Kind::Ns => {}
            Kind::Syn | Kind::Http | Kind::Dnstcp => set32(frame, self.l4 + 4, f.seq as u32, &c)?,
            Kind::Dns => set16(frame, self.payload, f.dns_id, &c)?,
            Kind::Echo => {
                set32(frame, self.payload + THREAD_OFF, f.thread, &c)?;
                set64(frame, self.payload + SEQ_OFF, f.seq, &c)?;
                set64(frame, self.payload + TS_OFF, f.ts_ns, &c)?;
            }
        }
        Some(self.frame.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{TcpPacket, UdpPacket};
    use stack::parse::{parse_ip, L4};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
    const DST_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];

    pub(crate) fn spec(kind: Kind, v6: bool) -> Spec {
        let (src, dst) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 2)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 1)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            )
        };
        Spec {
            kind,
            src_mac: SRC_MAC,
            dst_mac: DST_MAC,
            src,
            dst,
            src_port: 10000,
            dst_port: kind.default_port(),
            payload: 64,
            qname: "www.example.com".into(),
            run: 0x1234_5678,
        }
    }

    /// Parse a frame back with the stack's parser (which verifies the IPv4
    /// header and L4 checksums) and return the parsed packet and the L4
    /// payload.
    fn parse(frame: &[u8]) -> (stack::parse::ParsedIp, Vec<u8>) {
        let eth = EthernetFrame::new_checked(frame).expect("ethernet");
        assert_eq!(eth.dst_addr().0, DST_MAC);
        assert_eq!(eth.src_addr().0, SRC_MAC);
        let p = parse_ip(eth.payload()).expect("valid IP packet with valid checksums");
        let ip = eth.payload();
        let l4 = if ip[0] >> 4 == 4 {
            let v = Ipv4Packet::new_checked(ip).unwrap();
            assert!(v.dont_frag());
            v.payload().to_vec()
        } else {
            Ipv6Packet::new_checked(ip).unwrap().payload().to_vec()
        };
        let payload = match p.l4 {
            L4::Udp => UdpPacket::new_checked(&l4[..]).unwrap().payload().to_vec(),
            L4::Tcp { .. } => TcpPacket::new_checked(&l4[..]).unwrap().payload().to_vec(),
            other => panic!("unexpected {other:?}"),
        };
        (p, payload)
    }

    #[test]
    fn every_template_parses_back_with_valid_checksums() {
        for kind in [Kind::Udp, Kind::Syn, Kind::Dns, Kind::Echo] {
            for v6 in [false, true] {
                let s = spec(kind, v6);
                let t = Template::build(&s).unwrap();
                assert!(t.len() >= 60);
                let (p, payload) = parse(t.frame());
                assert_eq!(p.key.src, s.src, "{kind:?} v6={v6}");
                assert_eq!(p.key.dst, s.dst);
                assert_eq!(p.key.sport, 10000);
                assert_eq!(p.key.dport, kind.default_port());
                match kind {
                    Kind::Syn | Kind::Http | Kind::Dnstcp => {
                        assert_eq!(p.l4, L4::SYN);
                        assert!(payload.is_empty());
                    }
                    Kind::Udp => assert_eq!(payload.len(), 64),
                    Kind::Echo => {
                        assert_eq!(payload.len(), 64);
                        let h = EchoHeader::decode(&payload).unwrap();
                        assert_eq!(h.run, 0x1234_5678);
                    }
                    Kind::Dns => {
                        let m = Message::from_vec(&payload).expect("a DNS message");
                        assert_eq!(m.metadata.id, 0);
                        assert!(m.metadata.recursion_desired);
                        assert_eq!(m.queries.len(), 1);
                        assert_eq!(m.queries[0].query_type(), RecordType::A);
                        assert_eq!(m.queries[0].name().to_ascii(), "www.example.com.");
                    }
                    Kind::Ns => unreachable!("not in the list: no IP/L4 header to parse"),
                }
            }
        }
    }

    /// Patching any field any number of times keeps every checksum valid
    /// and the fields readable, starting from the previous patch.
    #[test]
    fn patched_frames_stay_valid() {
        for kind in [Kind::Udp, Kind::Syn, Kind::Dns, Kind::Echo] {
            for v6 in [false, true] {
                let t = Template::build(&spec(kind, v6)).unwrap();
                let mut frame = vec![0xeeu8; 2048];
                t.write(&mut frame).unwrap();
                let mut rng = testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
                for i in 0..300u64 {
                    let x = rng.next_u64();
                    let src = if v6 {
                        IpAddr::V6(Ipv6Addr::from(
                            0x2001_0db8_0018_0000_0000_0000_0000_0000u128 | u128::from(x >> 40),
                        ))
                    } else {
                        IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (x >> 48) as u32))
                    };
                    let f = Fields {
                        src,
                        src_port: (x >> 16) as u16 | 1,
                        seq: x,
                        ts_ns: x.rotate_left(17),
                        thread: (i % 7) as u32,
                        dns_id: (x >> 32) as u16,
                        flow: 0,
                    };
                    let len = t.patch(&mut frame, &f).unwrap();
                    let (p, payload) = parse(&frame[..len]);
                    assert_eq!(p.key.src, src, "{kind:?} v6={v6} round {i}");
                    assert_eq!(p.key.sport, f.src_port);
                    match kind {
                        Kind::Echo => {
                            let h = EchoHeader::decode(&payload).unwrap();
                            assert_eq!((h.seq, h.ts_ns, h.thread), (f.seq, f.ts_ns, f.thread));
                            assert_eq!(h.run, 0x1234_5678);
                        }
                        Kind::Dns => {
                            assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), f.dns_id)
                        }
                        Kind::Syn | Kind::Http | Kind::Dnstcp => {
                            let eth = EthernetFrame::new_checked(&frame[..len]).unwrap();
                            let l4 = if v6 {
                                Ipv6Packet::new_checked(eth.payload())
                                    .unwrap()
                                    .payload()
                                    .to_vec()
                            } else {
                                Ipv4Packet::new_checked(eth.payload())
                                    .unwrap()
                                    .payload()
                                    .to_vec()
                            };
                            let tcp = TcpPacket::new_checked(&l4[..]).unwrap();
                            assert_eq!(tcp.seq_number(), TcpSeqNumber(f.seq as u32 as i32));
                            let repr = TcpRepr::parse(
                                &tcp,
                                &IpAddress::from(src),
                                &IpAddress::from(spec(kind, v6).dst),
                                &ChecksumCapabilities::default(),
                            )
                            .unwrap();
                            assert_eq!(repr.max_seg_size, Some(1460));
                        }
                        Kind::Udp => {}
                        Kind::Ns => unreachable!("tested on its own below"),
                    }
                }
                // The other family is refused.
                let other = if v6 {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                };
                let f = Fields {
                    src: other,
                    src_port: 1,
                    seq: 0,
                    ts_ns: 0,
                    thread: 0,
                    dns_id: 0,
                    flow: 0,
                };
                assert!(t.patch(&mut frame, &f).is_none());
                assert!(t.patch(&mut frame[..t.len() - 1], &f).is_none());
            }
        }
    }

    /// An `ns` frame patched with any source is a valid solicitation: the
    /// stack's own L2 answers each one to that source and creates an entry
    /// for it (a new neighbour per source, the point of the flood).
    #[test]
    fn ns_patched_per_source_is_answered_by_the_stack() {
        use stack::l2::Ingress;
        assert!(matches!(
            Template::build(&spec(Kind::Ns, false)),
            Err(TemplateError::NeedsIpv6(_))
        ));
        let s = spec(Kind::Ns, true);
        let IpAddr::V6(target) = s.dst else {
            unreachable!()
        };
        let t = Template::build(&s).unwrap();
        assert!(t.is_v6() && t.len() >= 60);
        let (mut l2, shared) = super::neigh::stack_l2(DST_MAC, None, Some((target, 64)));
        let mut frame = vec![0u8; 2048];
        t.write(&mut frame).unwrap();
        let group = super::neigh::solicited(target).1;
        let mut rng = testkit::Rng::new(7);
        let mut reply = [0u8; 256];
        for i in 0..300u64 {
            let src = Ipv6Addr::from(
                0x2001_0db8_0018_0000_0000_0000_0000_0000u128 | u128::from(rng.next_u64()),
            );
            let f = Fields {
                src: IpAddr::V6(src),
                src_port: 1,
                seq: i,
                ts_ns: 0,
                thread: 0,
                dns_id: 0,
                flow: i,
            };
            let len = t.patch(&mut frame, &f).unwrap();
            assert_eq!(&frame[..6], &group, "to the solicited-node group");
            let Ingress::Reply { len: rl } = l2.ingress(&frame[..len], &mut reply, 0) else {
                panic!("round {i}: not answered");
            };
            assert_eq!(
                super::neigh::ndp_advert_for(&reply[..rl], target),
                Some(DST_MAC)
            );
            let na = Ipv6Packet::new_checked(&reply[ETH..rl]).unwrap();
            assert_eq!(na.dst_addr(), src, "answered to the solicitation's source");
            assert!(shared.contains(&IpAddr::V6(src)));
        }
        assert_eq!(l2.counters().ndp_solicits_answered, 300);
        assert_eq!(shared.len(), 300);
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec(Kind::Echo, false);
        s.payload = ECHO_HEADER_LEN - 1;
        assert!(matches!(
            Template::build(&s),
            Err(TemplateError::EchoTooSmall(_))
        ));
        s.payload = ECHO_HEADER_LEN;
        assert!(Template::build(&s).is_ok());
        let mut s = spec(Kind::Udp, false);
        s.payload = 1472;
        assert_eq!(Template::build(&s).unwrap().len(), 1514);
        s.payload = 1473;
        assert!(matches!(
            Template::build(&s),
            Err(TemplateError::TooBig { .. })
        ));
        let mut s = spec(Kind::Udp, true);
        s.dst = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(matches!(
            Template::build(&s),
            Err(TemplateError::Family { .. })
        ));
        let mut s = spec(Kind::Dns, false);
        s.qname = "a..b".into();
        assert!(matches!(
            Template::build(&s),
            Err(TemplateError::BadName { .. })
        ));
    }
}
