//! Registry tests: bind rules, lookup, selection, distribution, concurrency. All in memory.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use siphasher::sip::SipHasher13;

use super::*;
use crate::parse::{FlowKey, Proto};

const A4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const DUAL: BindAddr = BindAddr::Any6 { v6only: false };
const V6ONLY: BindAddr = BindAddr::Any6 { v6only: true };

fn reg() -> Registry {
    Registry::new(FlowHasher::with_key(1, 2))
}

fn rp(uid: u32) -> BindOptions {
    BindOptions::new(uid).with_reuseport(true)
}

fn plain(uid: u32) -> BindOptions {
    BindOptions::new(uid)
}

fn key(proto: Proto, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowKey {
    FlowKey {
        proto,
        src,
        sport,
        dst,
        dport,
    }
}

fn tcp4(sport: u16, dport: u16) -> FlowKey {
    key(
        Proto::Tcp,
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        sport,
        IpAddr::V4(A4),
        dport,
    )
}

fn tcp6(sport: u16, dport: u16) -> FlowKey {
    key(
        Proto::Tcp,
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 7)),
        sport,
        IpAddr::V6(A6),
        dport,
    )
}

/// The documented hash, recomputed without `FlowHasher`.
fn expected_hash(k0: u64, k1: u64, k: &FlowKey) -> u32 {
    let mut msg = Vec::new();
    for (addr, port) in [(k.src, k.sport), (k.dst, k.dport)] {
        match addr {
            IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
        }
        msg.extend_from_slice(&port.to_be_bytes());
    }
    let mut h = SipHasher13::new_with_keys(k0, k1);
    h.write(&msg);
    let h = h.finish();
    ((h >> 32) ^ h) as u32
}

/// Reproducible pseudo-random tuples from the test kit's generator.
struct Mix(testkit::Rng);
impl Mix {
    fn new(seed: u64) -> Mix {
        Mix(testkit::Rng::new(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn tuple(&mut self) -> FlowKey {
        let r = self.next();
        let src = if r & 1 == 0 {
            IpAddr::V4(Ipv4Addr::from((r >> 8) as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(self.next()) << 64) | u128::from(r),
            ))
        };
        let dst = if src.is_ipv4() {
            IpAddr::V4(A4)
        } else {
            IpAddr::V6(A6)
        };
        key(Proto::Tcp, src, (r >> 40) as u16, dst, 80)
    }
}

/// Every address flavour, for the protocol × family loops.
fn families() -> [(BindAddr, FlowKey); 4] {
    [
        (BindAddr::Any4, tcp4(1000, 80)),
        (BindAddr::V4(A4), tcp4(1000, 80)),
        (DUAL, tcp6(1000, 80)),
        (BindAddr::V6(A6), tcp6(1000, 80)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Bind rules
// ---------------------------------------------------------------------------------------------

#[test]
fn reuseport_same_uid_joins_one_group() {
    for proto in [Proto::Tcp, Proto::Udp] {
        for (addr, _) in families().into_iter().chain([(V6ONLY, tcp6(1, 1))]) {
            let r = reg();
            let a = r.bind(proto, addr, 80, 0, 0, rp(1000)).unwrap();
            let b = r.bind(proto, addr, 80, 1, 1, rp(1000)).unwrap();
            let c = r.bind(proto, addr, 80, 1, 1, rp(1000)).unwrap();
            let g = r.group(a).unwrap();
            assert_eq!(g.members, vec![a, b, c], "{proto:?} {addr}");
            assert_eq!(g.active, vec![a, b, c]);
            assert_eq!(
                (g.proto, g.addr, g.port, g.selector),
                (proto, addr, 80, "hash")
            );
            assert_eq!(r.group(c), Some(g));
            assert_eq!(r.groups().len(), 1);
        }
    }
}

#[test]
fn without_reuseport_is_addr_in_use_and_says_who() {
    let cases = [
        (
            false,
            true,
            MissingReuseport::ThisBind,
            "this bind did not set reuseport",
        ),
        (
            true,
            false,
            MissingReuseport::Holder,
            "the holder did not set reuseport",
        ),
        (
            false,
            false,
            MissingReuseport::Both,
            "neither this bind nor the holder set reuseport",
        ),
    ];
    for proto in [Proto::Tcp, Proto::Udp] {
        for (addr, _) in families() {
            for (new_rp, old_rp, who, text) in cases {
                let r = reg();
                let held = r
                    .bind(proto, addr, 53, 0, 0, plain(7).with_reuseport(old_rp))
                    .unwrap();
                let err = r
                    .bind(proto, addr, 53, 1, 1, plain(7).with_reuseport(new_rp))
                    .unwrap_err();
                assert_eq!(
                    err,
                    BindError::AddrInUseNoReuseport {
                        proto,
                        addr,
                        port: 53,
                        holder: held,
                        who
                    }
                );
                let msg = err.to_string();
                assert!(msg.starts_with("address in use: "), "{msg}");
                assert!(msg.contains(text), "{msg}");
                assert!(msg.contains(":53"), "{msg}");
                assert!(msg.contains(if proto == Proto::Tcp { "tcp" } else { "udp" }));
                // The refused bind left nothing behind.
                assert_eq!(r.members().len(), 1);
            }
        }
    }
}

#[test]
fn uid_mismatch_is_port_hijack() {
    for proto in [Proto::Tcp, Proto::Udp] {
        for (addr, _) in families() {
            let r = reg();
            let held = r.bind(proto, addr, 443, 0, 0, rp(1000)).unwrap();
            let gen = r.generation();
            let err = r.bind(proto, addr, 443, 0, 0, rp(1001)).unwrap_err();
            assert_eq!(
                err,
                BindError::PortHijack {
                    proto,
                    addr,
                    port: 443,
                    holder: held,
                    owner: 1000,
                    uid: 1001
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("refused port hijack"), "{msg}");
            assert!(msg.contains("uid 1000, not uid 1001"), "{msg}");
            // Root is no exception, as in Linux.
            assert!(matches!(
                r.bind(proto, addr, 443, 0, 0, rp(0)),
                Err(BindError::PortHijack { .. })
            ));
            assert_eq!(r.generation(), gen);
        }
    }
}

#[test]
fn error_messages_render_addresses() {
    let r = reg();
    r.bind(Proto::Tcp, BindAddr::V6(A6), 80, 0, 0, plain(0))
        .unwrap();
    let msg = r
        .bind(Proto::Tcp, BindAddr::V6(A6), 80, 0, 0, plain(0))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tcp [2001:db8::1]:80 is held by member #1"),
        "{msg}"
    );
    r.bind(Proto::Udp, V6ONLY, 53, 0, 0, rp(5)).unwrap();
    let msg = r
        .bind(Proto::Udp, BindAddr::V6(A6), 53, 0, 0, rp(6))
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "address in use: refused port hijack: udp [::]:53 (v6only) is held by uid 5, not uid 6"
    );
    r.bind(Proto::Udp, BindAddr::Any4, 53, 0, 0, plain(5))
        .unwrap();
    let msg = r
        .bind(Proto::Udp, BindAddr::V4(A4), 53, 0, 0, rp(5))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("udp 0.0.0.0:53 is held"), "{msg}");
    assert!(msg.contains("the holder did not set reuseport"), "{msg}");
}

#[test]
fn missing_reuseport_reported_before_uid_mismatch() {
    // Two overlapping holders: one of another uid (with reuseport), one without reuseport.
    let r = reg();
    r.bind(Proto::Tcp, BindAddr::V4(A4), 80, 0, 0, rp(1))
        .unwrap();
    let plain_holder = r
        .bind(Proto::Tcp, BindAddr::V4(B4), 80, 0, 0, plain(2))
        .unwrap();
    let err = r
        .bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(2))
        .unwrap_err();
    assert!(
        matches!(err, BindError::AddrInUseNoReuseport { holder, who: MissingReuseport::Holder, .. } if holder == plain_holder),
        "{err}"
    );
}

#[test]
fn tcp_and_udp_are_independent() {
    for (addr, _) in families() {
        let r = reg();
        let t = r.bind(Proto::Tcp, addr, 53, 0, 0, plain(1)).unwrap();
        let u = r.bind(Proto::Udp, addr, 53, 0, 0, plain(2)).unwrap();
        assert_ne!(r.group(t), r.group(u));
        assert!(r.bind(Proto::Tcp, addr, 53, 0, 0, plain(1)).is_err());
        assert!(r.bind(Proto::Udp, addr, 53, 0, 0, plain(2)).is_err());
        // Different ports never conflict.
        r.bind(Proto::Tcp, addr, 54, 0, 0, plain(3)).unwrap();
    }
}

/// Which addresses overlap, and so conflict without reuseport.
#[test]
fn wildcard_specific_overlap_matrix() {
    use BindAddr::*;
    let yes = [
        (Any4, Any4),
        (Any4, V4(A4)),
        (DUAL, V4(A4)),
        (DUAL, Any4),
        (DUAL, DUAL),
        (DUAL, V6ONLY),
        (DUAL, V6(A6)),
        (V6ONLY, V6ONLY),
        (V6ONLY, V6(A6)),
        (V4(A4), V4(A4)),
        (V6(A6), V6(A6)),
    ];
    let no = [
        (V6ONLY, V4(A4)),
        (V6ONLY, Any4),
        (Any4, V6(A6)),
        (V4(A4), V4(B4)),
        (V6(A6), V6(B6)),
        (V4(A4), V6(A6)),
    ];
    for proto in [Proto::Tcp, Proto::Udp] {
        for (a, b) in yes {
            for (first, second) in [(a, b), (b, a)] {
                assert!(first.overlaps(&second) && second.overlaps(&first));
                let r = reg();
                r.bind(proto, first, 8080, 0, 0, plain(0)).unwrap();
                let err = r.bind(proto, second, 8080, 0, 0, plain(0)).unwrap_err();
                assert!(
                    matches!(err, BindError::AddrInUseNoReuseport { addr, .. } if addr == first),
                    "{proto:?} {first} then {second}: {err}"
                );
            }
        }
        for (a, b) in no {
            for (first, second) in [(a, b), (b, a)] {
                assert!(!first.overlaps(&second) && !second.overlaps(&first));
                let r = reg();
                let x = r.bind(proto, first, 8080, 0, 0, plain(0)).unwrap();
                let y = r.bind(proto, second, 8080, 0, 0, plain(9)).unwrap();
                assert_ne!(r.group(x), r.group(y));
            }
        }
    }
}

#[test]
fn specific_and_wildcard_coexist_as_separate_groups() {
    let r = reg();
    let any = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let exact = r
        .bind(Proto::Tcp, BindAddr::V4(A4), 80, 1, 1, rp(1))
        .unwrap();
    let dual = r.bind(Proto::Tcp, DUAL, 80, 0, 0, rp(1)).unwrap();
    let only6 = r.bind(Proto::Tcp, V6ONLY, 80, 1, 1, rp(1)).unwrap();
    let exact6 = r
        .bind(Proto::Tcp, BindAddr::V6(A6), 80, 1, 1, rp(1))
        .unwrap();
    let any2 = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    assert_eq!(r.groups().len(), 5);
    assert_eq!(r.group(any).unwrap().members, vec![any, any2]);
    for id in [exact, dual, only6, exact6] {
        assert_eq!(r.group(id).unwrap().members, vec![id]);
    }
    // Without reuseport on the newcomer, any of them refuses it.
    assert!(r
        .bind(Proto::Tcp, BindAddr::V4(B4), 80, 0, 0, plain(1))
        .is_err());
}

#[test]
fn port_zero_backlog_zero_and_icmp_refused() {
    let r = reg();
    assert_eq!(
        r.bind(Proto::Tcp, BindAddr::Any4, 0, 0, 0, rp(0)),
        Err(BindError::PortZero)
    );
    assert_eq!(
        r.bind(Proto::Udp, DUAL, 0, 0, 0, rp(0)),
        Err(BindError::PortZero)
    );
    assert_eq!(
        r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(0).with_backlog(0)),
        Err(BindError::ZeroBacklog)
    );
    assert_eq!(
        r.bind(
            Proto::Udp,
            BindAddr::V6(A6),
            53,
            0,
            0,
            plain(0).with_backlog(0)
        ),
        Err(BindError::ZeroBacklog)
    );
    assert_eq!(
        r.bind(Proto::Icmp, BindAddr::Any4, 1, 0, 0, rp(0)),
        Err(BindError::UnsupportedProto(Proto::Icmp))
    );
    assert!(BindError::PortZero.to_string().contains("port 0"));
    assert!(BindError::ZeroBacklog.to_string().contains("backlog 0"));
    assert!(r.members().is_empty());
    assert_eq!(r.generation(), 0);
}

#[test]
fn rebind_after_unbind() {
    for proto in [Proto::Tcp, Proto::Udp] {
        for (addr, _) in families() {
            let r = reg();
            let a = r.bind(proto, addr, 80, 0, 0, plain(1)).unwrap();
            assert!(r.bind(proto, addr, 80, 0, 0, plain(1)).is_err());
            let m = r.unbind(a).unwrap();
            assert_eq!((m.id, m.addr, m.port, m.proto), (a, addr, 80, proto));
            assert!(r.groups().is_empty());
            // Even another user, without reuseport, can now bind it.
            let b = r.bind(proto, addr, 80, 0, 0, plain(2)).unwrap();
            assert!(b > a, "ids are never reused");
            assert_eq!(r.unbind(a).unwrap_err(), BindError::NoSuchMember);
        }
    }
}

#[test]
fn draining_member_still_holds_the_address() {
    let r = reg();
    let a = r
        .bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, plain(1))
        .unwrap();
    r.drain(a).unwrap();
    assert!(r
        .bind(Proto::Tcp, BindAddr::V4(A4), 80, 0, 0, plain(1))
        .is_err());
    assert_eq!(r.member(a).unwrap().state, MemberState::Draining);
}

#[test]
fn unknown_member_errors() {
    let r = reg();
    let ghost = MemberId(42);
    assert_eq!(r.unbind(ghost).unwrap_err(), BindError::NoSuchMember);
    assert_eq!(r.drain(ghost).unwrap_err(), BindError::NoSuchMember);
    assert_eq!(
        r.set_selector(ghost, Arc::new(HashSelector)).unwrap_err(),
        BindError::NoSuchMember
    );
    assert!(r.member(ghost).is_none() && r.group(ghost).is_none());
    assert!(r.migration_target(ghost, &tcp4(1, 80), 0).is_none());
}

#[test]
fn bind_addr_from_std() {
    let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped();
    assert_eq!(BindAddr::from_std(None, false), DUAL);
    assert_eq!(BindAddr::from_std(None, true), V6ONLY);
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), true),
        BindAddr::Any4
    );
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), false),
        DUAL
    );
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), true),
        V6ONLY
    );
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V4(A4)), false),
        BindAddr::V4(A4)
    );
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V6(A6)), true),
        BindAddr::V6(A6)
    );
    assert_eq!(
        BindAddr::from_std(Some(IpAddr::V6(mapped)), false),
        BindAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
    );
    assert_eq!(
        BindAddr::from_std(
            Some(IpAddr::V6(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped())),
            false
        ),
        BindAddr::Any4
    );
    assert_eq!(
        BindAddr::try_from_std(Some(IpAddr::V6(mapped)), true),
        Err(BindError::FamilyMismatch)
    );
    assert_eq!(
        BindAddr::try_from_std(Some(IpAddr::V6(A6)), true),
        Ok(BindAddr::V6(A6))
    );
    assert!(BindAddr::Any4.is_wildcard() && DUAL.is_wildcard() && V6ONLY.is_wildcard());
    assert!(!BindAddr::V4(A4).is_wildcard() && !BindAddr::V6(A6).is_wildcard());
    let v4 = IpAddr::V4(A4);
    let v6 = IpAddr::V6(A6);
    assert!(DUAL.matches(&v4) && DUAL.matches(&v6));
    assert!(!V6ONLY.matches(&v4) && V6ONLY.matches(&v6));
    assert!(BindAddr::Any4.matches(&v4) && !BindAddr::Any4.matches(&v6));
    assert!(BindAddr::V4(A4).matches(&v4) && !BindAddr::V4(B4).matches(&v4));
    assert!(BindAddr::V6(A6).matches(&v6) && !BindAddr::V6(B6).matches(&v6));
}

// ---------------------------------------------------------------------------------------------
// Lookup
// ---------------------------------------------------------------------------------------------

#[test]
fn exact_address_beats_wildcard_v4() {
    for proto in [Proto::Tcp, Proto::Udp] {
        let r = reg();
        let k = FlowKey {
            proto,
            ..tcp4(5000, 80)
        };
        let dual = r.bind(proto, DUAL, 80, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, dual);
        let any = r.bind(proto, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, any);
        let other = r.bind(proto, BindAddr::V4(B4), 80, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, any);
        let exact = r.bind(proto, BindAddr::V4(A4), 80, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, exact);
        // Traffic to B4 reaches B4's group.
        let kb = FlowKey {
            dst: IpAddr::V4(B4),
            ..k
        };
        assert_eq!(r.select(&kb, 0, 0).unwrap().member, other);
        // Unbinding the specific ones falls back through the wildcards.
        r.unbind(exact).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, any);
        r.unbind(any).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, dual);
    }
}

#[test]
fn exact_address_beats_wildcard_v6() {
    for proto in [Proto::Udp, Proto::Tcp] {
        let r = reg();
        let k = FlowKey {
            proto,
            ..tcp6(5000, 53)
        };
        let dual = r.bind(proto, DUAL, 53, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, dual);
        let only6 = r.bind(proto, V6ONLY, 53, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, only6);
        // An IPv4 group never takes IPv6 traffic.
        r.bind(proto, BindAddr::Any4, 53, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, only6);
        let exact = r.bind(proto, BindAddr::V6(A6), 53, 0, 0, rp(1)).unwrap();
        assert_eq!(r.select(&k, 0, 0).unwrap().member, exact);
    }
}

#[test]
fn v4_reaches_dual_stack_but_not_v6only() {
    let r = reg();
    let only6 = r.bind(Proto::Tcp, V6ONLY, 80, 0, 0, plain(1)).unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0), None);
    assert_eq!(r.select(&tcp6(1, 80), 0, 0).unwrap().member, only6);
    r.unbind(only6).unwrap();
    let dual = r.bind(Proto::Tcp, DUAL, 80, 0, 0, plain(1)).unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0).unwrap().member, dual);
    assert_eq!(r.select(&tcp6(1, 80), 0, 0).unwrap().member, dual);
}

#[test]
fn lookup_misses() {
    let r = reg();
    r.bind(Proto::Tcp, BindAddr::V4(B4), 80, 0, 0, plain(1))
        .unwrap();
    r.bind(Proto::Udp, BindAddr::Any4, 81, 0, 0, plain(1))
        .unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0), None, "other address");
    assert_eq!(r.select(&tcp4(1, 81), 0, 0), None, "other protocol");
    assert_eq!(r.select(&tcp4(1, 82), 0, 0), None, "other port");
    let icmp = FlowKey {
        proto: Proto::Icmp,
        ..tcp4(1, 81)
    };
    assert_eq!(r.select(&icmp, 0, 0), None);
}

#[test]
fn fully_draining_group_is_passed_over() {
    let r = reg();
    let any = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let exact = r
        .bind(Proto::Tcp, BindAddr::V4(A4), 80, 0, 0, rp(1))
        .unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0).unwrap().member, exact);
    r.drain(exact).unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0).unwrap().member, any);
    r.drain(any).unwrap();
    assert_eq!(r.select(&tcp4(1, 80), 0, 0), None);
}

mod selection;
