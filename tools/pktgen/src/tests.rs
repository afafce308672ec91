//! The generator end to end over an in-memory pipe (no root): against the
//! reflector, a DNS responder and a SYN-ACK responder written here, with
//! wire faults, both transmit modes and several threads' flow shares.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nic::mem::{Faults, MemConfig, MemRings};
use nic::{Port, PortConfig};

use super::csum;
use super::gen::{
    AddrRange, DnsTable, Gen, GenConfig, GenReport, Live, PortRange, Step, SynTable, TxMode,
};
use super::template::{Kind, Spec, Template};
use crate::reflect::{swap_in_place, Reflector};

const GEN_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];

fn mem_cfg() -> MemConfig {
    MemConfig {
        frames: 1024,
        frame_size: 2048,
        headroom: 256,
        ring: 256,
    }
}

fn ports(faults: Option<Faults>) -> (Port<MemRings>, Port<MemRings>) {
    let (ra, mut rb) = MemRings::pair(mem_cfg());
    if let Some(f) = faults {
        rb.set_faults(f);
    }
    let cfg = PortConfig {
        tx_reserve: 64,
        tx_backlog: 256 + 64,
        ..PortConfig::default()
    };
    (Port::new(ra, cfg.clone()), Port::new(rb, cfg))
}

fn config(kind: Kind, v6: bool, count: u64, rate: u64, mode: TxMode) -> GenConfig {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8:18::10".parse().unwrap(),
            "2001:db8:18::1".parse().unwrap(),
        )
    } else {
        (
            "198.18.0.10".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
        )
    };
    let template = Template::build(&Spec {
        kind,
        src_mac: GEN_MAC,
        dst_mac: PEER_MAC,
        src,
        dst,
        src_port: 20000,
        dst_port: kind.default_port(),
        payload: 48,
        qname: "www.example.com".into(),
        run: 42,
    })
    .unwrap();
    let now = Instant::now();
    GenConfig {
        thread: 0,
        threads: 1,
        template: Arc::new(template),
        our_mac: GEN_MAC,
        dst,
        dst_port: kind.default_port(),
        src_ips: AddrRange { first: src, len: 4 },
        src_ports: PortRange {
            first: 20000,
            last: 20099,
        },
        flows: 400,
        rate,
        count: Some(count),
        batch: 32,
        epoch: now,
        send_until: now + Duration::from_secs(20),
        drain: Duration::from_millis(300),
        run: 42,
        reset_synacks: true,
        tx_mode: mode,
        pool: 256,
        dns: Arc::new(DnsTable::default()),
        syns: Arc::new(SynTable::new(400)),
        live: Arc::new(Live::default()),
    }
}

/// Step the generator and `peer` in turn until the generator is done
/// (bounded: at most 30 s of wall time).
fn drive(g: &mut Gen<MemRings>, mut peer: impl FnMut()) {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < limit, "the generator did not finish");
        match g.step(Instant::now()) {
            Step::Done => break,
            Step::Idle(d) => std::thread::sleep(d.min(Duration::from_micros(200))),
            Step::Busy => {}
        }
        peer();
    }
}

fn check(r: &GenReport) {
    r.frames.as_ref().expect("generator frame accounting");
    assert_eq!(r.counters.rx_invalid, 0, "{:?}", r.counters);
}

#[test]
fn echo_through_the_reflector_is_all_answered() {
    for mode in [TxMode::Pool, TxMode::Copy] {
        for v6 in [false, true] {
            let cfg = config(Kind::Echo, v6, 3000, 0, mode);
            let live = cfg.live.clone();
            let (rep, r) = through_reflector(None, cfg);
            check(&rep);
            r.port().check().unwrap();
            let c = &rep.counters;
            assert_eq!(c.sent, 3000, "{mode:?} v6={v6}: {c:?}");
            assert_eq!(c.answered, 3000, "{mode:?} v6={v6}: {c:?}");
            assert_eq!(c.received, 3000);
            assert_eq!(rep.hist.len(), 3000, "a round trip per answer");
            assert_eq!(r.counters().reflected, 3000);
            assert_eq!(
                live.answered.load(std::sync::atomic::Ordering::Relaxed),
                3000
            );
            assert_eq!(rep.pool, if mode == TxMode::Pool { 256 } else { 0 });
        }
    }
}

/// A generator run of `cfg` against the reflector over a pipe (with `faults` on the
/// reflector's side): the generator's report, and the reflector.
fn through_reflector(faults: Option<Faults>, cfg: GenConfig) -> (GenReport, Reflector<MemRings>) {
    let (a, b) = ports(faults);
    let mut g = Gen::new(a, cfg);
    let mut r = Reflector::new(b, PEER_MAC, &[]);
    drive(&mut g, || {
        r.step();
    });
    (g.finish(), r)
}

/// 2000 IPv4 echo datagrams through the reflector over a pipe with `faults`.
fn echo_through(faults: Faults) -> GenReport {
    let cfg = config(Kind::Echo, false, 2000, 0, TxMode::Pool);
    through_reflector(Some(faults), cfg).0
}

/// Frames lost on the way back are not answered; corrupted ones are caught
/// by the checksum check and counted as invalid, not as answers.
#[test]
fn losses_and_corruption_are_counted() {
    let rep = echo_through(Faults {
        drop_every: 10,
        corrupt_every: 0,
        delay_us: 0,
        ..Faults::default()
    });
    check(&rep);
    assert_eq!(rep.counters.sent, 2000);
    assert_eq!(rep.counters.answered, 1800, "{:?}", rep.counters);

    let rep = echo_through(Faults {
        drop_every: 0,
        corrupt_every: 7,
        delay_us: 0,
        ..Faults::default()
    });
    rep.frames.as_ref().unwrap();
    let c = &rep.counters;
    assert_eq!(c.sent, 2000);
    // The pipe flips byte `n % len` of every 7th frame it carries back. Only
    // a flip in the source MAC (bytes 6..12) goes unnoticed: the rest is
    // covered by the destination MAC and EtherType checks or a checksum, so
    // each such frame is refused, never counted as answered.
    let len = 14 + 20 + 8 + 48;
    let refused = (7..=2000u64)
        .step_by(7)
        .filter(|n| !(6..12).contains(&(n % len)))
        .count() as u64;
    assert_eq!(c.answered, 2000 - refused, "{c:?}");
    assert!(c.rx_invalid > 0, "{c:?}");
    assert_eq!(
        c.received,
        c.answered + c.rx_invalid + c.rx_not_ip + c.rx_other + c.rx_unmatched,
        "{c:?}"
    );
}

/// Sends `f` back with its addresses swapped and then `edit` applied; if
/// `twice()` (asked once the answer is made), a copy goes out as well.
fn answer(
    b: &mut Port<MemRings>,
    f: nic::Frame,
    edit: impl FnOnce(&mut [u8]) -> Option<()>,
    twice: impl FnOnce() -> bool,
) {
    let len = f.len as usize;
    let mut copy = None;
    b.reflect(f, |x| {
        swap_in_place(x, len).ok()?;
        edit(x)?;
        if twice() {
            copy = Some(x[..len].to_vec());
        }
        Some(len)
    });
    if let Some(c) = copy {
        assert!(b.send_frame(c.len(), |x| x.copy_from_slice(&c)));
    }
}

/// A DNS responder: the query comes back with QR set (and every tenth
/// twice, which must not count twice).
#[test]
fn dns_replies_matched_by_id_once() {
    for v6 in [false, true] {
        let (a, mut b) = ports(None);
        let cfg = config(Kind::Dns, v6, 1000, 0, TxMode::Pool);
        let mut g = Gen::new(a, cfg);
        let mut frames = Vec::new();
        let mut n = 0u64;
        let l4 = 14 + if v6 { 40 } else { 20 };
        drive(&mut g, || {
            b.recv(&mut frames);
            for f in frames.drain(..) {
                answer(
                    &mut b,
                    f,
                    |x| {
                        // QR: the high bit of the flags word (payload bytes 2..4).
                        let flags = u16::from_be_bytes([x[l4 + 10], x[l4 + 11]]) | 0x8000;
                        csum::set16(x, l4 + 10, flags, &[l4 + 6])
                    },
                    || {
                        n += 1;
                        n.is_multiple_of(10)
                    },
                );
            }
            b.flush(|_, len| Some(len));
        });
        let rep = g.finish();
        check(&rep);
        let c = &rep.counters;
        assert_eq!((c.sent, c.answered), (1000, 1000), "v6={v6}: {c:?}");
        assert_eq!(c.rx_unmatched, 100, "duplicates: {c:?}");
        assert_eq!(rep.hist.len(), 1000);
        b.check().unwrap();
    }
}

/// A SYN-ACK responder: every SYN is answered, every SYN-ACK gets a RST
/// carrying its acknowledgment number as sequence number.
#[test]
fn synacks_answered_and_reset() {
    for v6 in [false, true] {
        let (a, mut b) = ports(None);
        let mut g = Gen::new(a, config(Kind::Syn, v6, 1000, 0, TxMode::Pool));
        let mut frames = Vec::new();
        let mut rsts = 0u64;
        let mut syns = 0u64;
        // (our port, the ack number we sent): a RST must carry that ack as its seq.
        let mut acked = std::collections::HashMap::<(u16, u32), u32>::new();
        let l4 = 14 + if v6 { 40 } else { 20 };
        let be32 = |x: &[u8], o: usize| u32::from_be_bytes([x[o], x[o + 1], x[o + 2], x[o + 3]]);
        drive(&mut g, || {
            b.recv(&mut frames);
            for f in frames.drain(..) {
                let (flags, sport, seq) = b
                    .read(f, |x| {
                        (
                            x[l4 + 13],
                            u16::from_be_bytes([x[l4], x[l4 + 1]]),
                            be32(x, l4 + 4),
                        )
                    })
                    .unwrap();
                if flags == 0x04 {
                    let n = acked.entry((sport, seq)).or_default();
                    assert!(
                        *n > 0,
                        "RST seq {seq:#x} from port {sport} acks nothing we sent"
                    );
                    *n -= 1;
                    rsts += 1;
                    b.release(f);
                    continue;
                }
                assert_eq!(flags, 0x02, "a SYN");
                syns += 1;
                // Every tenth SYN-ACK is sent twice (a retransmission): it
                // is refused again but answers nothing new.
                let twice = syns.is_multiple_of(10);
                *acked.entry((sport, seq.wrapping_add(1))).or_default() += 1 + u32::from(twice);
                answer(
                    &mut b,
                    f,
                    |x| {
                        let c = [l4 + 16];
                        csum::set32(x, l4 + 8, seq.wrapping_add(1), &c)?;
                        csum::set32(x, l4 + 4, 0x5000_0000, &c)?;
                        // SYN|ACK
                        let word = u16::from_be_bytes([x[l4 + 12], x[l4 + 13]]) | 0x10;
                        csum::set16(x, l4 + 12, word, &c)
                    },
                    || twice,
                );
            }
            b.flush(|_, len| Some(len));
        });
        let rep = g.finish();
        check(&rep);
        let c = &rep.counters;
        assert_eq!(
            (c.sent, c.answered, c.rx_unmatched, c.rst_sent),
            (1000, 1000, 100, 1100),
            "v6={v6}: {c:?}"
        );
        assert_eq!(rep.hist.len(), 1000, "round trips from the ISN");
        // The last RSTs may still be on the wire when the generator stops.
        b.recv(&mut frames);
        for f in frames.drain(..) {
            let (sport, seq) = b
                .read(f, |x| {
                    (u16::from_be_bytes([x[l4], x[l4 + 1]]), be32(x, l4 + 4))
                })
                .unwrap();
            let n = acked.entry((sport, seq)).or_default();
            assert!(*n > 0);
            *n -= 1;
            rsts += 1;
            b.release(f);
        }
        assert_eq!(rsts, 1100);
        assert!(acked.values().all(|&n| n == 0));
        b.check().unwrap();
    }
}

/// A paced run sends at the rate (bounded by the bucket), never faster.
#[test]
fn paced_run_keeps_to_the_rate() {
    let mut cfg = config(Kind::Echo, false, u64::MAX, 5000, TxMode::Pool);
    cfg.send_until = cfg.epoch + Duration::from_millis(400);
    let (rep, _) = through_reflector(None, cfg);
    check(&rep);
    let c = &rep.counters;
    let most = (5000.0 * rep.send_secs) as u64 + 32 + 1;
    assert!(
        c.sent <= most,
        "sent {} in {:.3} s at 5000 pps",
        c.sent,
        rep.send_secs
    );
    assert!(
        c.sent >= 1000,
        "sent only {} in {:.3} s at 5000 pps",
        c.sent,
        rep.send_secs
    );
    assert_eq!(c.answered, c.sent);
}

/// Flows are shared out round-robin: two threads use disjoint flows and
/// disjoint DNS ids, and together cover all flows.
#[test]
fn threads_share_flows_and_ids() {
    let mut seen = std::collections::HashSet::new();
    let mut ids = [Vec::new(), Vec::new()];
    let cfg = config(Kind::Dns, false, 400, 0, TxMode::Pool);
    for t in 0..2u32 {
        let mut c = cfg.clone();
        c.thread = t;
        c.threads = 2;
        for k in 0..200u64 {
            let f = super::gen::packet_fields(&c, k, 0);
            assert!(seen.insert((f.src, f.src_port)), "flow used twice");
            ids[t as usize].push(f.dns_id);
        }
    }
    assert_eq!(seen.len(), 400, "4 addresses x 100 ports");
    assert!(ids[0].iter().all(|&i| i < 32768));
    assert!(ids[1].iter().all(|&i| i >= 32768));
    // The next round repeats the first flow.
    let mut c = cfg.clone();
    c.threads = 2;
    assert_eq!(
        super::gen::packet_fields(&c, 200, 0).src_port,
        super::gen::packet_fields(&c, 0, 0).src_port
    );
}

#[test]
fn command_line_values_parse() {
    use super::{format_mac, parse_addr_range, parse_mac, parse_port_range};
    let r = parse_addr_range("198.18.0.10-198.18.0.19").unwrap();
    assert_eq!((r.first, r.len), ("198.18.0.10".parse().unwrap(), 10));
    assert_eq!(r.nth(10), r.first);
    assert_eq!(r.nth(9), "198.18.0.19".parse::<IpAddr>().unwrap());
    assert_eq!(parse_addr_range("198.18.0.1").unwrap().len, 1);
    let r6 = parse_addr_range("2001:db8::ff-2001:db8::100").unwrap();
    assert_eq!(r6.len, 2);
    assert_eq!(r6.nth(1), "2001:db8::100".parse::<IpAddr>().unwrap());
    for bad in [
        "198.18.0.9-198.18.0.1",
        "198.18.0.1-2001:db8::1",
        "x",
        "::-ffff::",
        "",
    ] {
        assert!(parse_addr_range(bad).is_err(), "{bad}");
    }
    let p = parse_port_range("10000-10999").unwrap();
    assert_eq!((p.first, p.last, p.len()), (10000, 10999, 1000));
    assert!(p.contains(10999) && !p.contains(11000));
    assert_eq!(p.nth(1000), 10000);
    assert_eq!(parse_port_range("7").unwrap().len(), 1);
    for bad in ["0", "10-9", "1-65536", "a", "5-"] {
        assert!(parse_port_range(bad).is_err(), "{bad}");
    }
    let m = parse_mac("02:78:73:00:00:0a").unwrap();
    assert_eq!(m, [2, 0x78, 0x73, 0, 0, 10]);
    assert_eq!(format_mac(m), "02:78:73:00:00:0a");
    for bad in [
        "02:78:73:00:00",
        "02:78:73:00:00:0g",
        "02:78:73:00:00:100",
        "::::::",
    ] {
        assert!(parse_mac(bad).is_err(), "{bad}");
    }
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::PktgenArgs,
    }
    let with = |extra: &[&str]| {
        let mut argv = vec![
            "pktgen",
            "--iface",
            "peer0",
            "--template",
            "udp",
            "--dst",
            "198.18.0.1",
            "--rate",
            "0",
        ];
        argv.extend_from_slice(extra);
        <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.args)
    };
    let parse = |cores: &str| with(&["--duration", "1", "--cores", cores]);
    assert_eq!(parse("1,0").unwrap().cores, Some(vec![1, 0]));
    assert!(parse("a").is_err());
    // Durations: one syntax; the old --drain-ms still counts milliseconds.
    let a = with(&["--duration", "2m", "--drain", "1.5s"]).unwrap();
    assert_eq!(a.duration, Duration::from_secs(120));
    assert_eq!(a.drain_time(), Duration::from_millis(1500));
    let a = with(&["--duration", "30", "--drain-ms", "3000"]).unwrap();
    assert_eq!(a.duration, Duration::from_secs(30));
    assert_eq!(a.drain_time(), Duration::from_secs(3));
    assert_eq!(
        with(&["--duration", "1"]).unwrap().drain_time(),
        Duration::from_millis(500)
    );
    assert!(with(&["--duration", "1.5s"]).is_err());
    assert!(with(&["--duration", "6m"]).is_err());
    assert!(with(&["--duration", "1", "--drain", "11s"]).is_err());
    assert!(with(&["--duration", "1", "--drain-ms", "20000"]).is_err());
    assert!(with(&["--duration", "1", "--drain", "1s", "--drain-ms", "1"]).is_err());
}

/// A server that learns neighbours from ARP/NDP only (the stack, Linux)
/// asks for each source address it answers: pktgen answers requests for
/// every address of its source range, and only those.
#[test]
fn requests_for_our_source_addresses_are_answered() {
    use super::neigh;
    use std::net::{Ipv4Addr, Ipv6Addr};
    for v6 in [false, true] {
        let (a, mut b) = ports(None);
        let cfg = config(Kind::Udp, v6, 200, 0, TxMode::Pool);
        let range = cfg.src_ips;
        let mut g = Gen::new(a, cfg);
        let server4 = Ipv4Addr::new(198, 18, 0, 1);
        let server6: Ipv6Addr = "2001:db8:18::1".parse().unwrap();
        // Four ours, one not.
        let other: IpAddr = if v6 {
            "2001:db8:18::99".parse().unwrap()
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 99))
        };
        let targets: Vec<IpAddr> = (0..4).map(|i| range.nth(i)).chain([other]).collect();
        for t in &targets {
            assert!(b.send_frame(128, |buf| {
                buf.fill(0);
                let _ = match t {
                    IpAddr::V4(t) => neigh::arp_request(buf, PEER_MAC, server4, *t),
                    IpAddr::V6(t) => neigh::ndp_solicit(buf, PEER_MAC, server6, *t),
                };
            }));
        }
        b.flush(|_, len| Some(len));
        let mut answers: Vec<IpAddr> = Vec::new();
        let mut frames = Vec::new();
        drive(&mut g, || {
            b.recv(&mut frames);
            for f in frames.drain(..) {
                let got = b.read(f, |buf| {
                    targets.iter().copied().find(|t| match t {
                        IpAddr::V4(t) => neigh::arp_reply_from(buf, *t) == Some(GEN_MAC),
                        IpAddr::V6(t) => neigh::ndp_advert_for(buf, *t) == Some(GEN_MAC),
                    })
                });
                answers.extend(got.flatten());
                b.release(f);
            }
        });
        let rep = g.finish();
        check(&rep);
        assert_eq!(
            rep.counters.neighbor_answered, 4,
            "v6={v6}: {:?}",
            rep.counters
        );
        answers.sort();
        let mut want = targets[..4].to_vec();
        want.sort();
        assert_eq!(answers, want, "v6={v6}");
        assert!(range.contains(range.nth(3)) && !range.contains(targets[4]));
    }
}

/// `ns` from 1,000 sources against the stack's own L2: every solicitation
/// is answered (the advertisements count as answers), each source became a
/// neighbour of the server, and a source is reused only after all others.
#[test]
fn ns_flood_cycles_sources_and_the_stack_answers_each() {
    use stack::l2::Ingress;
    let (a, mut b) = ports(None);
    let mut cfg = config(Kind::Ns, true, 3000, 0, TxMode::Pool);
    cfg.src_ips.len = 1000;
    cfg.src_ports = PortRange { first: 1, last: 1 };
    cfg.flows = 1000;
    let (range, target) = match (cfg.src_ips, cfg.dst) {
        (r, IpAddr::V6(t)) => (r, t),
        _ => unreachable!(),
    };
    let mut g = Gen::new(a, cfg);
    let (mut l2, shared) = super::neigh::stack_l2(PEER_MAC, None, Some((target, 64)));
    let mut frames = Vec::new();
    let mut reply = [0u8; 256];
    drive(&mut g, || {
        b.recv(&mut frames);
        for f in frames.drain(..) {
            let len = b.read(f, |buf| match l2.ingress(buf, &mut reply, 0) {
                Ingress::Reply { len } => Some(len),
                other => panic!("a solicitation not answered: {other:?}"),
            });
            b.release(f);
            if let Some(Some(len)) = len {
                assert!(b.send_frame(len, |out| out[..len].copy_from_slice(&reply[..len])));
            }
        }
        b.flush(|_, len| Some(len));
    });
    let rep = g.finish();
    check(&rep);
    b.check().unwrap();
    let c = &rep.counters;
    assert_eq!((c.sent, c.answered), (3000, 3000), "{c:?}");
    assert_eq!(l2.counters().ndp_solicits_answered, 3000);
    assert_eq!(shared.len(), 1000, "one neighbour per source");
    assert!((0..1000).all(|i| shared.contains(&range.nth(i))));
}
