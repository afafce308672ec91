//! The functions the fuzz targets call (`fuzz/fuzz_targets/*.rs`), one per
//! target, kept here so that the test suite replays the committed corpora
//! through exactly the same code without nightly or cargo-fuzz
//! (`fuzz/harness/tests/fuzz_replay.rs`). Each takes arbitrary bytes, must never
//! panic, and checks a few invariants of what it got back (a failed check
//! panics: that is a finding).
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use stack::l2::{Egress, Ingress, L2Config, SharedNeighbors, ETH_HDR, L2};

use dnsd::index::Index;
use dnsd::respond::{Reply, Responder, Transport, CLASSIC_UDP, MAX_TCP};
use dnsd::wire::{parse_query, Query};
use dnsd::zone;
use httpd::parse::{Event, Framer, Limits};
use pktgen::reply::{classify, rst_for_synack};

/// A fuzz entry: arbitrary bytes in, a panic only for a finding.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and entry.
pub const TARGETS: &[(&str, Entry)] = &[
    ("parse_ip", parse_ip),
    ("l2_ingress", l2_ingress),
    ("dns_message", dns_message),
    ("zone_file", zone_file),
    ("http_framer", http_framer),
    ("pktgen_reply", pktgen_reply),
    ("engine_segments", engine_segments),
];

/// Our MAC in the fuzzed L2 and the pktgen classifier.
pub const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Our IPv4 address (10.0.0.1/24) in the fuzzed L2.
pub const OURS4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Our IPv6 address (fd00::1/64) in the fuzzed L2.
pub const OURS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// IPv4 gateway of the fuzzed L2.
pub const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
/// IPv6 gateway of the fuzzed L2.
pub const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// `stack::parse::parse_ip` (IPv4/IPv6 + TCP/UDP/ICMP headers, checksums).
pub fn parse_ip(data: &[u8]) {
    if let Ok(p) = stack::parse::parse_ip(data) {
        // An accepted packet's addresses are of one family.
        assert_eq!(p.key.src.is_ipv4(), p.key.dst.is_ipv4());
        // A path MTU message's quote: a TCP flow of the message's family.
        if p.l4 == stack::parse::L4::TooBig {
            if let Ok(tb) = stack::parse::parse_too_big(data) {
                assert_eq!(tb.key.proto, stack::parse::Proto::Tcp);
                assert_eq!(tb.key.src.is_ipv4(), p.key.src.is_ipv4());
                assert_eq!(tb.key.src.is_ipv4(), tb.key.dst.is_ipv4());
            }
        }
        // A destination unreachable's quote: the same.
        if p.l4 == stack::parse::L4::Unreachable {
            if let Ok(u) = stack::parse::parse_unreachable(data) {
                assert_eq!(u.key.proto, stack::parse::Proto::Tcp);
                assert_eq!(u.key.src.is_ipv4(), p.key.src.is_ipv4());
                assert_eq!(u.key.src.is_ipv4(), u.key.dst.is_ipv4());
            }
        }
    }
}

/// The L2 configuration of the `l2_ingress` target.
pub fn l2_config() -> L2Config {
    L2Config {
        mac: OUR_MAC,
        ipv4: Some((OURS4, 24)),
        ipv6: Some((OURS6, 64)),
        gateway4: Some(GW4),
        gateway6: Some(GW6),
    }
}

/// Split `data` into records `[op][len: u16 BE][len bytes]` (the last one
/// may be short).
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&op, rest) = data.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => rest.len(),
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (rec, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        Some((op, rec))
    })
}

/// `L2::ingress` (Ethernet, ARP, NDP, neighbour learning) and `L2::egress`
/// on two cores sharing one neighbour table. `data` is a list of
/// [`records`]: op bit 0 picks the core, bit 1 ingress (0) or egress (1) of
/// the record as an IP packet, bits 2..8 advance the clock by that many
/// 100 ms steps.
pub fn l2_ingress(data: &[u8]) {
    let shared = Arc::new(SharedNeighbors::new());
    let mut cores = [
        L2::new(l2_config(), shared.clone()),
        L2::new(l2_config(), shared.clone()),
    ];
    let mut reply = [0u8; 128];
    let mut frame = vec![0u8; 2048];
    let mut now = 1_000_000u64;
    for (op, rec) in records(data) {
        now += u64::from(op >> 2) * 100;
        let l2 = &mut cores[usize::from(op & 1)];
        if op & 2 == 0 {
            match l2.ingress(rec, &mut reply, now) {
                Ingress::Ip { len, .. } => assert!(ETH_HDR + len <= rec.len()),
                Ingress::Reply { len } => assert!(len <= reply.len()),
                Ingress::Consumed | Ingress::Drop(_) => {}
            }
        } else {
            let n = rec.len().min(frame.len() - ETH_HDR);
            frame[ETH_HDR..ETH_HDR + n].copy_from_slice(&rec[..n]);
            match l2.egress(&mut frame, n, now) {
                Egress::Send => assert_eq!(frame[6..12], OUR_MAC),
                Egress::Resolve { len } => assert!(len <= frame.len()),
                Egress::Invalid => {}
            }
        }
    }
    for l2 in &cores {
        let c = l2.counters();
        assert!(c.rx_ip + c.dropped.total() <= c.rx_frames);
    }
}

/// The zone of the `dns_message` target.
pub const FUZZ_ZONE: &str = r#"
$ORIGIN example.com.
$TTL 3600
@       IN SOA ns1 hostmaster ( 1 7200 3600 1209600 300 )
        IN NS   ns1
        IN NS   ns2.example.net.
        IN MX   10 mail
        IN TXT  "apex"
ns1     IN A    192.0.2.53
mail    IN A    192.0.2.25
        IN AAAA 2001:db8::25
www     IN A    192.0.2.1
        IN AAAA 2001:db8::1
alias   IN CNAME www
loop1   IN CNAME loop2
loop2   IN CNAME loop1
*.wild  IN A    192.0.2.99
sub     IN NS   ns.sub
ns.sub  IN A    192.0.2.54
_sip._tcp IN SRV 10 20 5060 www
"#;

fn fuzz_index() -> Arc<Index> {
    static INDEX: OnceLock<Arc<Index>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let z = zone::parse_str(FUZZ_ZONE, "fuzz.zone", None).expect("fuzz zone parses");
            Arc::new(Index::build(&z).expect("fuzz zone indexes"))
        })
        .clone()
}

/// The DNS query parser and the responder. The first byte picks the
/// transport (odd: TCP), the rest is the message.
pub fn dns_message(data: &[u8]) {
    let Some((&t, msg)) = data.split_first() else {
        return;
    };
    let mut q = Query::default();
    let _ = parse_query(msg, &mut q);
    let mut r = Responder::new(fuzz_index(), 1232);
    let transport = if t & 1 == 1 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let mut out = vec![0u8; MAX_TCP];
    if let Reply::Send(o) = r.respond(msg, transport, &mut out) {
        assert!(o.len >= 12 && o.len <= out.len());
        if transport == Transport::Udp {
            assert!(o.len <= 1232.max(CLASSIC_UDP));
        }
        // The response carries the query's id and the QR bit.
        assert_eq!(out[..2], msg[..2]);
        assert_ne!(out[2] & 0x80, 0);
    }
}

/// The zone-file parser and the index built from it. `$INCLUDE` is left
/// out: it reads files named by the input.
pub fn zone_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.to_ascii_uppercase().contains("$INCLUDE") {
        return;
    }
    let origin = hickory_proto::rr::Name::from_ascii("example.com.").ok();
    let Ok(z) = zone::parse_str(text, "fuzz.zone", origin) else {
        return;
    };
    let _ = Index::build(&z);
}

/// What a framer made of a byte stream: each request, body end and
/// rejection, in order, and the body bytes (how body pieces are split
/// depends on the reads; their bytes do not).
fn frame_all(data: &[u8], chunks: &mut dyn Iterator<Item = usize>, limits: Limits) -> Vec<String> {
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut events = Vec::new();
    let mut body = Vec::new();
    while fed < data.len() {
        let n = chunks.next().unwrap_or(data.len()).max(1);
        let end = (fed + n).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            let (used, ev) = framer.advance(&buf);
            assert!(used <= buf.len());
            match ev {
                Event::Partial => {
                    buf.drain(..used);
                    break;
                }
                Event::Body(b) => {
                    assert!(!b.is_empty());
                    body.extend_from_slice(b);
                }
                Event::End => events.push(format!("end {:?}", std::mem::take(&mut body))),
                Event::Request(r) => {
                    static_fields(&r);
                    events.push(format!("{r:?}"));
                }
                Event::Reject(s) => events.push(format!("reject {s}")),
            }
            buf.drain(..used);
            if used == 0 && !framer.in_head() && !framer.in_body() {
                break;
            }
        }
    }
    events
}

/// What the static-file service reads from a request's fields (ranges,
/// preconditions, Accept-Encoding): never a panic, ranges inside the
/// representation and adding up to no more than it.
fn static_fields(r: &httpd::parse::Request) {
    use httpd::conditional::{evaluate, Validators};
    use httpd::parse::Hdr;
    use httpd::range::{parse, RangeSet};
    if let Some(v) = r.fields.one(Hdr::Range) {
        for len in [0u64, 1, 100, u64::MAX / 2] {
            if let RangeSet::Ranges(rs) = parse(v, len) {
                let mut total: u64 = 0;
                for &(a, b) in rs.as_slice() {
                    assert!(a <= b && b < len, "{a}-{b} of {len}");
                    total += b - a + 1;
                }
                assert!(total <= len);
            }
        }
    }
    let v = Validators {
        etag: b"\"5f5e1000-2a\"",
        mtime: 784_111_777,
    };
    let _ = evaluate(&r.fields, true, &v);
    let _ = httpd::encoding::choose(&r.fields, true, true);
}

/// The HTTP request framer, fed the whole input at once and then in the
/// chunk sizes the first byte seeds: both must frame the same requests.
pub fn http_framer(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_header: 1024,
        max_body: 4096,
    };
    let whole = frame_all(stream, &mut std::iter::empty(), limits);
    let mut x = u32::from(seed) | 1;
    let mut sizes = std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        Some((x % 17) as usize + 1)
    });
    let chunked = frame_all(stream, &mut sizes, limits);
    assert_eq!(whole, chunked);
}

/// pktgen's reply classifier and its SYN-ACK to RST rewrite.
pub fn pktgen_reply(data: &[u8]) {
    for (dst, dport) in [
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80),
        (IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)), 53),
    ] {
        let _ = classify(data, OUR_MAC, dst, dport);
    }
    let mut frame = data.to_vec();
    frame.resize(data.len().max(128), 0);
    if let Some(n) = rst_for_synack(&mut frame, data.len()) {
        assert!(n <= frame.len());
        // What we send back is a valid packet for the stack's parser.
        assert!(stack::parse::parse_ip(&frame[ETH_HDR..n]).is_ok());
    }
}

/// Recompute the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum
/// of the IP packet `ip` in place, where the lengths allow (anything else is
/// left alone). Fuzz builds of smoltcp skip checksum verification
/// (`cfg(fuzzing)`), so the inputs a fuzzer keeps mostly carry wrong
/// checksums; the replay test feeds them again with checksums fixed so
/// that a normal build reaches the same code.
pub fn fix_checksums(ip: &mut [u8]) {
    use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
    let (src, dst, proto, start, end) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else {
                return;
            };
            p.fill_checksum();
            let hl = usize::from(p.header_len());
            let tl = usize::from(p.total_len());
            (
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                p.next_header(),
                hl,
                tl,
            )
        }
        Some(6) => {
            let Ok(p) = Ipv6Packet::new_checked(&*ip) else {
                return;
            };
            (
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                p.next_header(),
                40,
                40 + usize::from(p.payload_len()),
            )
        }
        _ => return,
    };
    let Some(l4) = ip.get_mut(start..end) else {
        return;
    };
    match (proto, src, dst) {
        (IpProtocol::Tcp, s, d) => {
            if let Ok(mut t) = TcpPacket::new_checked(l4) {
                t.fill_checksum(&s, &d);
            }
        }
        (IpProtocol::Udp, s, d) => {
            if let Ok(mut u) = UdpPacket::new_checked(l4) {
                u.fill_checksum(&s, &d);
            }
        }
        (IpProtocol::Icmp, _, _) => {
            if let Ok(mut i) = smoltcp::wire::Icmpv4Packet::new_checked(l4) {
                i.fill_checksum();
            }
        }
        (IpProtocol::Icmpv6, IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
            if let Ok(mut i) = smoltcp::wire::Icmpv6Packet::new_checked(l4) {
                i.fill_checksum(&s, &d);
            }
        }
        _ => {}
    }
}

/// `data` with the checksums of the packets in it fixed (see
/// [`fix_checksums`]), for the targets whose inputs carry packets; `None`
/// for the others or when nothing changed.
pub fn with_fixed_checksums(target: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    match target {
        "parse_ip" => fix_checksums(&mut out),
        "pktgen_reply" => fix_checksums(out.get_mut(ETH_HDR..)?),
        "l2_ingress" => {
            // Same walk as `records`, over the copy.
            let mut at = 0;
            while at < out.len() {
                let op = out[at];
                let len = match out.get(at + 1..at + 3) {
                    Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                    None => break,
                };
                let start = at + 3;
                let end = (start + len).min(out.len());
                let rec = &mut out[start..end];
                if op & 2 == 0 {
                    if let Some(ip) = rec.get_mut(ETH_HDR..) {
                        fix_checksums(ip);
                    }
                } else {
                    fix_checksums(rec);
                }
                at = end;
            }
        }
        _ => return None,
    }
    (out != data).then_some(out)
}

/// Two engines (two cores of one process) fed a sequence of TCP segments on
/// both queues (`stack::model`), decoded from `data` 12 bytes a segment:
/// byte 0 bit 0 the queue, bits 1.. the client; byte 1 the kind (SYN, ACK,
/// data, FIN, RST, SYN+ACK); bytes 2..6 the sequence number, 6..10 the
/// acknowledgment; byte 10 the payload length (< 40); byte 11 the time to
/// the next segment (0, 1 ms, 200 ms or 70 s). Checks: nothing panics, both
/// frame ledgers balance, and no flow is owned by both cores.
pub fn engine_segments(data: &[u8]) {
    use stack::model::{rings, run_two_cores, Seg};
    let word = |s: &[u8], i: usize| u32::from_be_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let segs: Vec<Seg> = data
        .chunks_exact(12)
        .take(200)
        .map(|s| Seg {
            core: usize::from(s[0] & 1),
            client: s[0] >> 1,
            kind: s[1],
            seq: word(s, 2),
            ack: word(s, 6),
            len: usize::from(s[10] % 40),
            wait_ms: [0, 1, 200, 70_000][usize::from(s[11] % 4)],
        })
        .collect();
    if let Err(e) = run_two_cores(&segs, rings()) {
        panic!("{e}");
    }
}
