//! The XDP program's decisions, frame by frame, with BPF_PROG_TEST_RUN: the
//! program is loaded (CAP_BPF, root here) but attached nowhere and no
//! socket is in its XSKMAP, so a frame it would steer ends as
//! `passed_no_xsk` after its lookups, and every other verdict shows as the
//! counter of its reason.
//!
//! Run as root: `cargo test -p xdpstack-nic --test steer`.

use std::net::{Ipv4Addr, Ipv6Addr};

use nic::steer::{SteerConfig, SteerMode, SteerTest, L4};
use testkit::privileged;

const STEER: &str = "passed_no_xsk"; // would be steered (no socket here)
const XDP_PASS: u32 = 2;

const OURS4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OTHER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const OURS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);

fn cfg(mode: SteerMode, vlan: Option<u16>) -> SteerConfig {
    SteerConfig {
        mode,
        addrs4: vec![OURS4],
        addrs6: vec![OURS6],
        vlan,
        ..SteerConfig::default()
    }
}

fn eth(ethertype: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 + UDP (or TCP: proto 6) to `dst`:`dport`, with `opts` words of
/// options and the given flags/fragment field.
fn v4(dst: Ipv4Addr, proto: u8, dport: u16, opts: usize, frag: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut f = eth(0x0800, vlan);
    let ihl = 5 + opts;
    f.push(0x40 | ihl as u8);
    f.push(0);
    f.extend_from_slice(&((ihl * 4 + 20) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&Ipv4Addr::new(10, 0, 0, 2).octets());
    f.extend_from_slice(&dst.octets());
    f.extend(std::iter::repeat_n(1u8, opts * 4)); // NOP options
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0; 16]);
    f
}

/// IPv6 to `dst` with `hops` hop-by-hop/destination headers of 8 bytes,
/// then `nh` with `l4` bytes.
fn v6(dst: Ipv6Addr, hops: usize, nh: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x86dd, None);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((hops * 8 + l4.len()) as u16).to_be_bytes());
    f.push(if hops > 0 { 0 } else { nh });
    f.push(64);
    f.extend_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets());
    f.extend_from_slice(&dst.octets());
    for i in 0..hops {
        f.push(if i + 1 == hops { nh } else { 60 });
        f.extend_from_slice(&[0, 1, 4, 0, 0, 0, 0]);
    }
    f.extend_from_slice(l4);
    f
}

fn udp(dport: u16) -> Vec<u8> {
    let mut u = 40000u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn ns(target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn arp(target: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(0x0806, None);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&Ipv4Addr::new(10, 0, 0, 2).octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

fn check(t: &mut SteerTest, what: &str, frame: &[u8], want: &str) {
    let (verdict, moved) = t.run(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(verdict, XDP_PASS, "{what}: verdict");
    assert_eq!(moved, vec![want], "{what}");
}

#[test]
fn addr_mode_steers_the_stacks_addresses_and_neighbours_only() {
    if !privileged() {
        return;
    }
    let mut t = SteerTest::new(&cfg(SteerMode::Addr, None)).expect("load the program");
    check(
        &mut t,
        "v4 udp to ours",
        &v4(OURS4, 17, 53, 0, 0, None),
        STEER,
    );
    check(
        &mut t,
        "v4 tcp to ours, options",
        &v4(OURS4, 6, 22, 2, 0, None),
        STEER,
    );
    check(
        &mut t,
        "v4 to another",
        &v4(OTHER4, 6, 22, 0, 0, None),
        "passed_not_ours",
    );
    check(&mut t, "arp for ours", &arp(OURS4), STEER);
    check(&mut t, "arp for another", &arp(OTHER4), "passed_not_ours");
    check(&mut t, "v6 to ours", &v6(OURS6, 0, 17, &udp(53)), STEER);
    check(
        &mut t,
        "v6 to ours, 2 ext headers",
        &v6(OURS6, 2, 17, &udp(53)),
        STEER,
    );
    check(
        &mut t,
        "v6 to another",
        &v6(OTHER6, 0, 17, &udp(53)),
        "passed_not_ours",
    );
    check(
        &mut t,
        "NS for ours to its solicited-node group",
        &v6(solicited_node(OURS6), 0, 58, &ns(OURS6)),
        STEER,
    );
    check(
        &mut t,
        "NS for another (same group would not matter)",
        &v6(solicited_node(OTHER6), 0, 58, &ns(OTHER6)),
        "passed_not_ours",
    );
    check(&mut t, "LLDP", &eth(0x88cc, None), "passed_other");
    check(
        &mut t,
        "tagged, no VLAN configured",
        &v4(OURS4, 17, 53, 0, 0, Some(42)),
        "passed_vlan",
    );
    let mut cut = v4(OURS4, 17, 53, 0, 0, None);
    cut.truncate(14 + 12);
    check(&mut t, "truncated IPv4", &cut, "passed_truncated");
}

#[test]
fn ports_mode_steers_listening_ports_only() {
    if !privileged() {
        return;
    }
    let mut t = SteerTest::new(&cfg(SteerMode::Ports, None)).expect("load the program");
    t.set_ports(&[(L4::Udp, 53), (L4::Tcp, 80)]).unwrap();
    check(&mut t, "udp 53", &v4(OURS4, 17, 53, 0, 0, None), STEER);
    check(
        &mut t,
        "tcp 80, options",
        &v4(OURS4, 6, 80, 3, 0, None),
        STEER,
    );
    check(
        &mut t,
        "tcp 53 (udp only)",
        &v4(OURS4, 6, 53, 0, 0, None),
        "passed_port",
    );
    check(
        &mut t,
        "udp 54",
        &v4(OURS4, 17, 54, 0, 0, None),
        "passed_port",
    );
    check(
        &mut t,
        "first fragment",
        &v4(OURS4, 17, 53, 0, 0x2000, None),
        "passed_port",
    );
    check(&mut t, "icmp", &v4(OURS4, 1, 0, 0, 0, None), "passed_port");
    check(&mut t, "arp (the kernel's)", &arp(OURS4), "passed_not_ours");
    check(
        &mut t,
        "v6 udp 53 after ext headers",
        &v6(OURS6, 3, 17, &udp(53)),
        STEER,
    );
    check(
        &mut t,
        "v6 udp 54",
        &v6(OURS6, 1, 17, &udp(54)),
        "passed_port",
    );
    check(
        &mut t,
        "v6 to another",
        &v6(OTHER6, 0, 17, &udp(53)),
        "passed_not_ours",
    );
    // The port set follows the listeners.
    t.set_ports(&[(L4::Udp, 54)]).unwrap();
    check(
        &mut t,
        "udp 53 after removal",
        &v4(OURS4, 17, 53, 0, 0, None),
        "passed_port",
    );
    check(
        &mut t,
        "udp 54 after adding",
        &v4(OURS4, 17, 54, 0, 0, None),
        STEER,
    );
}

#[test]
fn vlan_and_all_modes() {
    if !privileged() {
        return;
    }
    let mut t = SteerTest::new(&cfg(SteerMode::Addr, Some(42))).expect("load the program");
    check(
        &mut t,
        "VLAN 42 to ours",
        &v4(OURS4, 17, 53, 0, 0, Some(42)),
        STEER,
    );
    check(
        &mut t,
        "VLAN 43",
        &v4(OURS4, 17, 53, 0, 0, Some(43)),
        "passed_vlan",
    );
    check(
        &mut t,
        "untagged",
        &v4(OURS4, 17, 53, 0, 0, None),
        "passed_vlan",
    );
    let mut all = SteerTest::new(&cfg(SteerMode::All, None)).expect("load the program");
    check(&mut all, "all: LLDP", &eth(0x88cc, None), STEER);
    check(
        &mut all,
        "all: another address",
        &v4(OTHER4, 6, 22, 0, 0, None),
        STEER,
    );
}

/// Issue 22: in ports mode, TCP to the outgoing connections' port range is
/// steered (the answers to the stack's SYNs), whatever the port set says;
/// UDP to it and TCP beside it pass.
#[test]
fn ports_mode_steers_the_outgoing_tcp_range() {
    if !privileged() {
        return;
    }
    let mut c = cfg(SteerMode::Ports, None);
    c.tcp_ports = Some((61000, 65535));
    let mut t = SteerTest::new(&c).expect("load the program");
    t.set_ports(&[(L4::Tcp, 80)]).unwrap();
    check(&mut t, "tcp 80", &v4(OURS4, 6, 80, 0, 0, None), STEER);
    for p in [61000, 61234, 65535] {
        check(
            &mut t,
            "tcp in the range",
            &v4(OURS4, 6, p, 0, 0, None),
            STEER,
        );
    }
    // The ports lead a TCP header as they lead a UDP one.
    check(
        &mut t,
        "v6 tcp in the range",
        &v6(OURS6, 0, 6, &udp(61500)),
        STEER,
    );
    check(
        &mut t,
        "tcp below the range",
        &v4(OURS4, 6, 60999, 0, 0, None),
        "passed_port",
    );
    check(
        &mut t,
        "udp in the range",
        &v4(OURS4, 17, 61500, 0, 0, None),
        "passed_port",
    );
    check(
        &mut t,
        "tcp in the range, to another address",
        &v4(OTHER4, 6, 61500, 0, 0, None),
        "passed_not_ours",
    );
    // Without a range (the default), only the port set.
    let mut t = SteerTest::new(&cfg(SteerMode::Ports, None)).expect("load the program");
    t.set_ports(&[(L4::Tcp, 80)]).unwrap();
    check(
        &mut t,
        "tcp 61500, no range",
        &v4(OURS4, 6, 61500, 0, 0, None),
        "passed_port",
    );
}
