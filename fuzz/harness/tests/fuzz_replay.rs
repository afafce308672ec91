//! Replays every committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the
//! function its fuzz target calls (`fuzz_harness`), on stable, without
//! cargo-fuzz: a crash found once stays fixed.
//!
//! The seeds were written by `write_seeds` (ignored; run it with
//! `cargo test -p xdpstack-fuzz-harness --test fuzz_replay -- --ignored write_seeds` to
//! add missing ones: existing files are kept).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use fuzz_harness::{self as fuzz, OURS4, OURS6, OUR_MAC, TARGETS};
use smoltcp::wire::{
    ArpOperation, EthernetProtocol, Icmpv4Repr, Icmpv6Repr, NdiscNeighborFlags, NdiscRepr,
    RawHardwareAddress, TcpControl, TcpRepr, TcpSeqNumber,
};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

#[test]
fn every_corpus_replays() {
    let root = corpus_root();
    for (name, entry) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for f in &files {
            let data = fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| entry(&data));
            assert!(r.is_ok(), "{name}: {} panicked", f.display());
            // Fuzz builds skip checksum checks: replay what the fuzzer saw.
            if let Some(fixed) = fuzz::with_fixed_checksums(name, &data) {
                let r = std::panic::catch_unwind(|| entry(&fixed));
                assert!(
                    r.is_ok(),
                    "{name}: {} (checksums fixed) panicked",
                    f.display()
                );
            }
        }
        eprintln!("{name}: {} inputs replayed", files.len());
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz_targets");
    for (name, _) in TARGETS {
        let src = fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
        assert!(
            src.contains(&format!("fuzz_harness::{name}(data)")),
            "{name}"
        );
    }
}

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

use testkit::frames::{eth, icmp6, udp};

fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, ctl: TcpControl, ack: bool) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control: ctl,
        seq_number: TcpSeqNumber(1000),
        ack_number: ack.then_some(TcpSeqNumber(5000)),
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn: Default::default(),
        payload: b"",
    };
    testkit::frames::tcp(src, dst, &repr)
}

fn icmp4_echo() -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: b"ping",
    };
    testkit::frames::icmp4(PEER4, OURS4, &repr)
}

fn arp(op: ArpOperation, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let dst = if op == ArpOperation::Request {
        [0xff; 6]
    } else {
        OUR_MAC
    };
    let b = testkit::frames::arp(op, sha, spa, tpa);
    eth(dst, sha, EthernetProtocol::Arp, &b)
}

fn solicited(a: Ipv6Addr) -> Ipv6Addr {
    stack::l2::solicited_node(a)
}

fn ns(src: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let g = solicited(target);
    let p = icmp6(
        src,
        g,
        &Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
        }),
    );
    eth(
        testkit::frames::multicast_mac6(g),
        mac,
        EthernetProtocol::Ipv6,
        &p,
    )
}

fn na(src: Ipv6Addr, mac: [u8; 6], flags: NdiscNeighborFlags) -> Vec<u8> {
    let p = icmp6(
        src,
        OURS6,
        &Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr: src,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
        }),
    );
    eth(OUR_MAC, mac, EthernetProtocol::Ipv6, &p)
}

/// One record of the `l2_ingress` input format (see `fuzz::records`).
fn rec(op: u8, bytes: &[u8]) -> Vec<u8> {
    let mut r = vec![op];
    r.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    r.extend_from_slice(bytes);
    r
}

fn dns_query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    m.extend_from_slice(&dnsd::wire::wire_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
    m
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (p4, o4, p6, o6): (IpAddr, IpAddr, IpAddr, IpAddr) =
        (PEER4.into(), OURS4.into(), PEER6.into(), OURS6.into());
    let to_us = |p: &[u8], v6: bool| {
        let et = if v6 {
            EthernetProtocol::Ipv6
        } else {
            EthernetProtocol::Ipv4
        };
        eth(OUR_MAC, PEER_MAC, et, p)
    };
    let syn4 = tcp(p4, o4, 40000, 80, TcpControl::Syn, false);
    let syn6 = tcp(p6, o6, 40000, 80, TcpControl::Syn, false);
    let synack4 = tcp(o4, p4, 80, 40000, TcpControl::Syn, true);
    let synack6 = tcp(o6, p6, 80, 40000, TcpControl::Syn, true);
    let echo6 = icmp6(
        PEER6,
        OURS6,
        &Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"ping",
        },
    );
    let mut s = vec![
        ("parse_ip", "syn4", syn4.clone()),
        ("parse_ip", "syn6", syn6.clone()),
        ("parse_ip", "udp4", udp(p4, o4, 5353, 53, b"query")),
        ("parse_ip", "udp6", udp(p6, o6, 5353, 53, b"query")),
        ("parse_ip", "icmp4", icmp4_echo()),
        ("parse_ip", "icmp6", echo6),
        (
            "parse_ip",
            "ack4",
            tcp(p4, o4, 40000, 80, TcpControl::Psh, true),
        ),
    ];
    // L2: a peer resolves us by ARP, then we answer it (two cores).
    let arp_req = arp(ArpOperation::Request, PEER_MAC, PEER4, OURS4);
    let ns_us = ns(PEER6, OURS6, PEER_MAC);
    let mut l2_v4 = rec(0, &arp_req);
    l2_v4.extend(rec(0, &to_us(&syn4, false)));
    l2_v4.extend(rec(3, &synack4));
    let mut l2_v6 = rec(0, &ns_us);
    l2_v6.extend(rec(0, &to_us(&syn6, true)));
    l2_v6.extend(rec(3, &synack6));
    // We resolve the peer: miss, NS, solicited NA, send; then an NA
    // without override and one with it, after the lock time.
    let mut l2_na = rec(2, &synack6);
    l2_na.extend(rec(
        0,
        &na(
            PEER6,
            PEER_MAC,
            NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        ),
    ));
    l2_na.extend(rec(3, &synack6));
    l2_na.extend(rec(
        4,
        &na(PEER6, [0x02, 0, 0, 0, 0, 0x33], NdiscNeighborFlags::empty()),
    ));
    l2_na.extend(rec(
        4 * 20,
        &na(
            PEER6,
            [0x02, 0, 0, 0, 0, 0x33],
            NdiscNeighborFlags::OVERRIDE,
        ),
    ));
    l2_na.extend(rec(2, &synack6));
    let mut l2_arp_reply = rec(2, &synack4);
    l2_arp_reply.extend(rec(1, &arp(ArpOperation::Reply, PEER_MAC, PEER4, OURS4)));
    l2_arp_reply.extend(rec(2, &synack4));
    s.extend([
        ("l2_ingress", "arp_then_reply", l2_v4),
        ("l2_ingress", "ns_then_reply", l2_v6),
        ("l2_ingress", "na_override", l2_na),
        ("l2_ingress", "arp_reply", l2_arp_reply),
        ("l2_ingress", "icmp4", rec(0, &to_us(&icmp4_echo(), false))),
    ]);
    // DNS: first byte picks the transport (odd: TCP).
    for (file, t, q) in [
        ("www_a_udp", 0u8, dns_query("www.example.com", 1, false)),
        ("www_aaaa_edns", 0, dns_query("www.example.com", 28, true)),
        ("mx_tcp", 1, dns_query("example.com", 15, true)),
        ("alias_cname", 0, dns_query("alias.example.com", 1, false)),
        ("wild", 1, dns_query("x.wild.example.com", 1, false)),
        ("referral", 0, dns_query("a.sub.example.com", 1, true)),
        ("nxdomain", 0, dns_query("nope.example.com", 1, true)),
        ("any_tcp", 1, dns_query("example.com", 255, true)),
    ] {
        let mut d = vec![t];
        d.extend(q);
        s.push(("dns_message", file, d));
    }
    // A compressed additional record owner (a pointer to the question).
    let mut d = vec![1u8];
    let mut q = dns_query("www.example.com", 1, false);
    q[11] = 2;
    q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    d.extend(q);
    s.push(("dns_message", "pointer_additional", d));
    // Three additional records (refused unread), over TCP.
    let mut d = vec![1u8];
    let mut q = dns_query("www.example.com", 1, true);
    q[11] = 3;
    q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    d.extend(q);
    s.push(("dns_message", "three_additional", d));
    // An OPT owner reached through a chain of 17 pointers (refused).
    let mut d = vec![0u8];
    let mut q = dns_query("www.example.com", 1, false);
    q[11] = 1;
    let chain_start = q.len();
    q.push(0);
    for i in 0..17u16 {
        let target = if i == 0 { chain_start } else { q.len() - 2 };
        q.extend_from_slice(&[0xc0 | (target >> 8) as u8, target as u8]);
    }
    q.extend_from_slice(&[0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    d.extend(q);
    s.push(("dns_message", "pointer_chain", d));
    s.push((
        "zone_file",
        "fuzz_zone",
        fuzz::FUZZ_ZONE.as_bytes().to_vec(),
    ));
    s.push((
        "zone_file",
        "records",
        b"$TTL 1h\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n AAAA 2001:db8::1\n\
          t TXT \"a b\" c\nm MX 10 ns\nc CNAME ns\ns._tcp SRV 1 2 3 ns\nd DNAME x.\n\
          p PTR ns\nq CAA 0 issue \"ca.example\"\n"
            .to_vec(),
    ));
    for (file, seed, text) in [
        ("get", 7u8, &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]),
        (
            "pipelined",
            3,
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ),
        (
            "post_body",
            9,
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
        ),
        (
            "chunked",
            1,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("bad_version", 2, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("bare_lf", 5, b"GET / HTTP/1.1\nHost: a\n\n"),
        (
            "expect",
            4,
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "chunked_trailer",
            6,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"x\"\r\nhello\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "cl_te",
            8,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ] {
        let mut d = vec![seed];
        d.extend_from_slice(text);
        s.push(("http_framer", file, d));
    }
    s.extend([
        (
            "pktgen_reply",
            "synack4",
            eth(
                OUR_MAC,
                PEER_MAC,
                EthernetProtocol::Ipv4,
                &tcp(p4, o4, 80, 40000, TcpControl::Syn, true),
            ),
        ),
        (
            "pktgen_reply",
            "synack6",
            eth(
                OUR_MAC,
                PEER_MAC,
                EthernetProtocol::Ipv6,
                &tcp(
                    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
                    o6,
                    53,
                    40000,
                    TcpControl::Syn,
                    true,
                ),
            ),
        ),
        (
            "pktgen_reply",
            "udp6",
            eth(
                OUR_MAC,
                PEER_MAC,
                EthernetProtocol::Ipv6,
                &udp(p6, o6, 53, 40000, b"answer"),
            ),
        ),
        ("pktgen_reply", "arp", arp_req),
    ]);
    s
}

/// Writes the seeds that are missing (run by hand, see the module doc).
#[test]
#[ignore]
fn write_seeds() {
    let root = corpus_root();
    for (target, file, data) in seeds() {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("seed-{file}"));
        if !path.exists() {
            fs::write(&path, data).unwrap();
        }
    }
}

/// The seeds are committed, and each is a valid input of its kind that
/// reaches past the first check of its target: a packet the parser
/// accepts, frames L2 takes, a query the responder answers, a zone that
/// indexes, a stream that frames, a reply pktgen recognizes, segments the
/// model runs.
#[test]
fn seeds_are_valid() {
    use dnsd::respond::{Reply as DnsReply, Responder, Transport, MAX_TCP};
    use httpd::parse::{Event, Framer, Limits};
    use pktgen::reply::{classify, rst_for_synack, Reply};
    use stack::l2::{Egress, Ingress, SharedNeighbors, ETH_HDR, L2};

    let root = corpus_root();
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    for (target, file, data) in seeds() {
        let path = root.join(target).join(format!("seed-{file}"));
        let committed = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            committed, data,
            "{target}/{file}: the committed seed differs"
        );
        match target {
            "parse_ip" => assert!(stack::parse::parse_ip(&data).is_ok(), "{file}"),
            "l2_ingress" => {
                let shared = std::sync::Arc::new(SharedNeighbors::new());
                let mut cores = [
                    L2::new(fuzz::l2_config(), shared.clone()),
                    L2::new(fuzz::l2_config(), shared),
                ];
                let (mut reply, mut frame) = ([0u8; 128], vec![0u8; 2048]);
                let mut now = 1_000_000u64;
                for (i, (op, rec)) in fuzz::records(&data).enumerate() {
                    now += u64::from(op >> 2) * 100;
                    let l2 = &mut cores[usize::from(op & 1)];
                    if op & 2 == 0 {
                        let r = l2.ingress(rec, &mut reply, now);
                        assert!(!matches!(r, Ingress::Drop(_)), "{file} #{i}: {r:?}");
                    } else {
                        frame[ETH_HDR..ETH_HDR + rec.len()].copy_from_slice(rec);
                        let r = l2.egress(&mut frame, rec.len(), now);
                        assert!(!matches!(r, Egress::Invalid), "{file} #{i}");
                    }
                }
            }
            "dns_message" => {
                let (t, msg) = data.split_first().unwrap();
                let transport = if t & 1 == 1 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let mut r = Responder::new(dns_index(), 1232);
                let mut out = vec![0u8; MAX_TCP];
                let DnsReply::Send(o) = r.respond(msg, transport, &mut out) else {
                    panic!("{file}: not answered");
                };
                assert!(o.len > 12 && out[..2] == msg[..2], "{file}");
            }
            "zone_file" => {
                let text = std::str::from_utf8(&data).unwrap();
                let origin = hickory_proto::rr::Name::from_ascii("example.com.").ok();
                // Valid records, or valid up to a type the server does not
                // serve ("records" ends its list with DNAME: the refusal).
                match dnsd::zone::parse_str(text, "seed.zone", origin) {
                    Ok(z) => assert!(dnsd::index::Index::build(&z).is_ok(), "{file}"),
                    Err(e) => assert!(
                        e.to_string().contains("unsupported RecordType"),
                        "{file}: {e}"
                    ),
                }
            }
            "http_framer" => {
                let mut framer = Framer::new(Limits {
                    max_header: 1024,
                    max_body: 4096,
                });
                let mut buf = &data[1..];
                let (mut requests, mut rejected) = (0, false);
                loop {
                    let (used, ev) = framer.advance(buf);
                    buf = &buf[used..];
                    match ev {
                        Event::Request(_) => requests += 1,
                        Event::Reject(_) => {
                            rejected = true;
                            break;
                        }
                        Event::Partial => break,
                        Event::Body(_) | Event::End => {}
                    }
                }
                // The valid seeds frame whole requests (two when pipelined or
                // followed by another); the others (HTTP/2.0, bare LF line
                // ends, Content-Length with Transfer-Encoding) are rejected,
                // not left waiting for more bytes.
                let want = match file {
                    "get" | "expect" | "chunked" => 1,
                    "pipelined" | "post_body" | "chunked_trailer" => 2,
                    _ => 0,
                };
                assert!(requests >= want, "{file}: {requests} requests framed");
                assert!(want > 0 || rejected, "{file}: not rejected");
            }
            "pktgen_reply" => {
                // From the target the fuzz entry classifies against.
                let (dst, dport) = if file.ends_with('6') {
                    (IpAddr::from(PEER6), 53)
                } else {
                    (IpAddr::from(PEER4), 80)
                };
                let c = classify(&data, OUR_MAC, dst, dport);
                match file {
                    "arp" => assert_eq!(c, Reply::NotIp),
                    "udp6" => assert!(matches!(c, Reply::Udp { .. }), "{c:?}"),
                    _ => {
                        assert!(
                            matches!(
                                c,
                                Reply::Tcp {
                                    syn: true,
                                    ack: true,
                                    ..
                                }
                            ),
                            "{c:?}"
                        );
                        let mut f = data.clone();
                        assert!(rst_for_synack(&mut f, data.len()).is_some(), "{file}");
                    }
                }
            }
            other => panic!("a seed of an unknown target {other}"),
        }
        *checked.entry(target).or_default() += 1;
    }
    // The model's seeds are committed files (not built here): whole
    // segments, run on two cores (the entry checks the invariants).
    let dir = root.join("engine_segments");
    for f in ["handshake-move-close", "syn-flood"] {
        let data = fs::read(dir.join(f)).unwrap();
        assert!(!data.is_empty() && data.len().is_multiple_of(12), "{f}");
        fuzz::engine_segments(&data);
        *checked.entry("engine_segments").or_default() += 1;
    }
    for (name, _) in TARGETS {
        assert!(
            checked.get(name).copied().unwrap_or(0) > 0,
            "{name}: no seed checked"
        );
    }
}

fn dns_index() -> std::sync::Arc<dnsd::index::Index> {
    let z = dnsd::zone::parse_str(fuzz::FUZZ_ZONE, "fuzz.zone", None).unwrap();
    std::sync::Arc::new(dnsd::index::Index::build(&z).unwrap())
}
