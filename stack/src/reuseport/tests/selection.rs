//! Registry tests: selection, distribution, migration, counters, concurrency, and the
//! model-based property (the helpers are the parent module's).

use super::*;

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

#[test]
fn hash_selection_is_reciprocal_scale_of_keyed_hash() {
    let r = reg();
    let ids: Vec<MemberId> = (0..5)
        .map(|c| r.bind(Proto::Tcp, DUAL, 80, c, c as u32, rp(1)).unwrap())
        .collect();
    let mut mix = Mix::new(7);
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let k = mix.tuple();
        let h = expected_hash(1, 2, &k);
        assert_eq!(r.hasher().hash(&k), h);
        let want = ((u64::from(h) * 5) >> 32) as usize;
        let s = r.select(&k, 0, 0).unwrap();
        assert_eq!(s.index, want);
        assert_eq!(s.member, ids[want]);
        assert_eq!(s.core, want);
        assert!(!s.fell_back);
        // Stable across calls, whatever queue or core received it.
        assert_eq!(r.select(&k, 3, 1), Some(s));
        seen.insert(s.index);
    }
    assert_eq!(seen.len(), 5);
}

#[test]
fn draining_member_never_selected_and_unbind_shrinks() {
    let r = reg();
    let ids: Vec<MemberId> = (0..4)
        .map(|c| r.bind(Proto::Udp, BindAddr::Any4, 53, c, 0, rp(1)).unwrap())
        .collect();
    let udp = |m: &mut Mix| FlowKey {
        proto: Proto::Udp,
        dport: 53,
        dst: IpAddr::V4(A4),
        src: IpAddr::V4(Ipv4Addr::from(m.next() as u32)),
        sport: m.next() as u16,
    };
    r.drain(ids[1]).unwrap();
    r.drain(ids[1]).unwrap(); // idempotent
    let g = r.group(ids[0]).unwrap();
    assert_eq!(g.members, ids);
    assert_eq!(g.active, vec![ids[0], ids[2], ids[3]]);
    let mut mix = Mix::new(99);
    let mut hits = HashMap::new();
    for _ in 0..3000 {
        let k = udp(&mut mix);
        let s = r.select(&k, 0, 0).unwrap();
        assert_ne!(s.member, ids[1]);
        let want = reciprocal_scale(expected_hash(1, 2, &k), 3);
        assert_eq!(s.member, [ids[0], ids[2], ids[3]][want]);
        *hits.entry(s.member).or_insert(0) += 1;
    }
    assert_eq!(hits.len(), 3);
    r.unbind(ids[0]).unwrap();
    assert_eq!(
        r.group(ids[2]).unwrap().members,
        vec![ids[1], ids[2], ids[3]]
    );
    for _ in 0..1000 {
        let k = udp(&mut mix);
        let s = r.select(&k, 0, 0).unwrap();
        let want = reciprocal_scale(expected_hash(1, 2, &k), 2);
        assert_eq!(s.member, [ids[2], ids[3]][want]);
    }
    // Flow counters count the selections.
    let total: u64 = r
        .members()
        .iter()
        .map(|m| m.counters.flows.load(Ordering::Relaxed))
        .sum();
    assert_eq!(total, 3000 + 1000 - hits[&ids[0]]);
    assert_eq!(r.member(ids[1]).unwrap().counters.snapshot().flows, 0);
}

#[test]
fn queue_selector_prefers_rx_core_and_falls_back() {
    let r = reg();
    let c0 = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let c1a = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    let c1b = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    r.set_selector(c1b, selector_by_name("queue").unwrap())
        .unwrap();
    assert_eq!(r.group(c0).unwrap().selector, "queue");
    let mut mix = Mix::new(3);
    for _ in 0..500 {
        let k = FlowKey {
            dst: IpAddr::V4(A4),
            ..mix.tuple()
        };
        let k = FlowKey {
            src: IpAddr::V4(Ipv4Addr::from(mix.next() as u32)),
            ..k
        };
        let h = expected_hash(1, 2, &k);
        let s0 = r.select(&k, 0, 0).unwrap();
        assert_eq!((s0.member, s0.fell_back), (c0, false));
        let s1 = r.select(&k, 1, 1).unwrap();
        let want = [c1a, c1b][reciprocal_scale(h, 2)];
        assert_eq!((s1.member, s1.core, s1.fell_back), (want, 1, false));
        // No member on core 5: the hash over the whole group decides.
        let s5 = r.select(&k, 5, 5).unwrap();
        assert!(s5.fell_back);
        assert_eq!(s5.member, [c0, c1a, c1b][reciprocal_scale(h, 3)]);
    }
}

#[derive(Debug)]
struct Fixed(Option<usize>);
impl Selector for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    fn select(&self, _: &SelectCtx<'_>) -> Option<usize> {
        self.0
    }
}

#[test]
fn custom_selector_out_of_range_falls_back_to_hash() {
    let r = reg();
    let ids: Vec<MemberId> = (0..3)
        .map(|c| r.bind(Proto::Tcp, BindAddr::Any4, 80, c, 0, rp(1)).unwrap())
        .collect();
    let k = tcp4(12345, 80);
    let want = reciprocal_scale(expected_hash(1, 2, &k), 3);
    let gen = r.generation();
    r.set_selector(ids[0], Arc::new(Fixed(Some(99)))).unwrap();
    assert!(r.generation() > gen);
    assert_eq!(
        r.select(&k, 0, 0).unwrap(),
        Selected {
            member: ids[want],
            core: want,
            index: want,
            fell_back: true
        }
    );
    r.set_selector(ids[1], Arc::new(Fixed(None))).unwrap();
    assert!(r.select(&k, 0, 0).unwrap().fell_back);
    // In range: obeyed.
    r.set_selector(ids[2], Arc::new(Fixed(Some(2)))).unwrap();
    let s = r.select(&k, 0, 0).unwrap();
    assert_eq!((s.member, s.fell_back), (ids[2], false));
    // Index 2 is among *active* members: drain ids[0] and index 2 is out of range.
    r.drain(ids[0]).unwrap();
    assert!(r.select(&k, 0, 0).unwrap().fell_back);
    // The selector lasts while the group has members and goes with it.
    for id in &ids {
        assert_eq!(r.group(*id).unwrap().selector, "fixed");
        r.unbind(*id).unwrap();
    }
    let again = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    assert_eq!(r.group(again).unwrap().selector, "hash");
}

#[test]
fn selector_applies_to_its_group_only() {
    let r = reg();
    let any = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let exact = r
        .bind(Proto::Tcp, BindAddr::V4(A4), 80, 0, 0, rp(1))
        .unwrap();
    r.set_selector(any, Arc::new(QueueSelector)).unwrap();
    assert_eq!(r.group(any).unwrap().selector, "queue");
    assert_eq!(r.group(exact).unwrap().selector, "hash");
    // Binding into a group keeps its selector.
    let any2 = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    assert_eq!(r.group(any2).unwrap().selector, "queue");
}

#[test]
fn distribution_within_3_percent() {
    let r = Registry::new(FlowHasher::random());
    let ids: Vec<MemberId> = (0..4)
        .map(|c| r.bind(Proto::Tcp, BindAddr::Any4, 80, c, 0, rp(1)).unwrap())
        .collect();
    let mut mix = Mix::new(FlowHasher::random().hash(&tcp4(1, 1)) as u64);
    const N: u64 = 100_000;
    for _ in 0..N {
        let mut k = mix.tuple();
        k.src = IpAddr::V4(Ipv4Addr::from(mix.next() as u32));
        k.dst = IpAddr::V4(A4);
        r.select(&k, 0, 0).unwrap();
    }
    let mean = N as f64 / 4.0;
    for id in ids {
        let n = r.member(id).unwrap().counters.snapshot().flows as f64;
        assert!(
            (n - mean).abs() <= 0.03 * mean,
            "member {id}: {n} flows, mean {mean}"
        );
    }
}

#[test]
fn different_keys_choose_differently() {
    let choose = |r: &Registry, k: &FlowKey| r.select(k, 0, 0).unwrap().index;
    let regs: Vec<Registry> = [(1, 2), (3, 4)]
        .iter()
        .map(|&(a, b)| {
            let r = Registry::new(FlowHasher::with_key(a, b));
            for c in 0..4 {
                r.bind(Proto::Tcp, BindAddr::Any4, 80, c, 0, rp(1)).unwrap();
            }
            r
        })
        .collect();
    let mut mix = Mix::new(11);
    let mut differ = 0;
    for _ in 0..10_000 {
        let k = FlowKey {
            src: IpAddr::V4(Ipv4Addr::from(mix.next() as u32)),
            dst: IpAddr::V4(A4),
            ..mix.tuple()
        };
        if choose(&regs[0], &k) != choose(&regs[1], &k) {
            differ += 1;
        }
    }
    // Independent keys: 3/4 of the tuples are expected to land elsewhere.
    assert!((7_000..8_000).contains(&differ), "{differ} of 10000 differ");
    // And a random key is not the test key.
    let rnd = FlowHasher::random();
    let differ = (0..1000u16)
        .filter(|&p| rnd.hash(&tcp4(p, 80)) != regs[0].hasher().hash(&tcp4(p, 80)))
        .count();
    assert!(differ > 990);
}

// ---------------------------------------------------------------------------------------------
// Migration, counters, generation
// ---------------------------------------------------------------------------------------------

#[test]
fn migration_target_prefers_core_then_hash() {
    let r = reg();
    let a = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let b = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    let c = r.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, rp(1)).unwrap();
    let d = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    // Another group on the same port is never a migration target.
    r.bind(Proto::Tcp, BindAddr::V4(A4), 80, 0, 0, rp(1))
        .unwrap();
    let k = tcp4(777, 80);
    let h = expected_hash(1, 2, &k);
    let t = r.migration_target(a, &k, 0).unwrap();
    assert_eq!((t.member, t.core, t.index, t.fell_back), (d, 0, 3, false));
    let t = r.migration_target(a, &k, 1).unwrap();
    assert_eq!(t.member, [b, c][reciprocal_scale(h, 2)]);
    assert!(!t.fell_back);
    // No other member on core 7: hash among the others (b, c, d).
    let t = r.migration_target(a, &k, 7).unwrap();
    assert!(t.fell_back);
    assert_eq!(t.member, [b, c, d][reciprocal_scale(h, 3)]);
    // Draining members are not targets; the draining member itself can still ask.
    r.drain(d).unwrap();
    r.drain(a).unwrap();
    let t = r.migration_target(a, &k, 0).unwrap();
    assert_eq!(t.member, [b, c][reciprocal_scale(h, 2)]);
    assert_eq!(
        t.index,
        reciprocal_scale(h, 2),
        "index among active members"
    );
    assert!(t.fell_back);
    // After unbind, with the returned member.
    let gone = r.unbind(a).unwrap();
    assert!(r.migration_target(a, &k, 0).is_none());
    assert!(r.migration_target_for(&gone, &k, 1).is_some());
    r.drain(b).unwrap();
    r.drain(c).unwrap();
    assert!(r.migration_target_for(&gone, &k, 1).is_none());
    assert!(
        r.migration_target(d, &k, 1).is_none(),
        "no live member left"
    );
}

#[test]
fn counters_snapshot_and_serialize() {
    let r = reg();
    let a = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    let m = r.member(a).unwrap();
    m.counters.accepted.fetch_add(3, Ordering::Relaxed);
    m.counters.bytes_in.fetch_add(100, Ordering::Relaxed);
    r.select(&tcp4(1, 80), 0, 0).unwrap();
    // Counters are shared: another copy of the member sees them.
    let snap = r.member(a).unwrap().counters.snapshot();
    assert_eq!(
        snap,
        ListenerSnapshot {
            accepted: 3,
            bytes_in: 100,
            flows: 1,
            ..Default::default()
        }
    );
    let json = serde_json::to_value(snap).unwrap();
    assert_eq!(json["flows"], 1);
    assert_eq!(json["migrated_in"], 0);
    let groups = serde_json::to_value(r.groups()).unwrap();
    assert_eq!(groups[0]["proto"], "tcp");
    assert_eq!(groups[0]["addr"], "0.0.0.0");
}

#[test]
fn generation_changes_on_every_change() {
    let r = reg();
    let mut last = r.generation();
    let mut bump = |r: &Registry| {
        let g = r.generation();
        assert!(g > last, "{g} after {last}");
        last = g;
    };
    let a = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    bump(&r);
    let b = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    bump(&r);
    r.set_selector(a, Arc::new(QueueSelector)).unwrap();
    bump(&r);
    r.drain(b).unwrap();
    bump(&r);
    r.unbind(a).unwrap();
    bump(&r);
    // Refused operations and lookups change nothing.
    let _ = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, plain(1));
    let _ = r.select(&tcp4(1, 80), 0, 0);
    assert_eq!(r.generation(), last);
}

#[test]
fn bind_options_defaults() {
    let d = BindOptions::default();
    assert_eq!((d.reuseport, d.uid, d.backlog), (false, 0, DEFAULT_BACKLOG));
    let o = BindOptions::new(1000).with_reuseport(true).with_backlog(7);
    assert_eq!((o.reuseport, o.uid, o.backlog), (true, 1000, 7));
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn concurrent_select_while_binding() {
    let r = Arc::new(reg());
    let bound: Arc<Mutex<HashMap<MemberId, usize>>> = Arc::default();
    // One member always stays, so selection always finds one.
    let keep = r.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, rp(1)).unwrap();
    bound.lock().unwrap().insert(keep, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (r, bound, stop) = (Arc::clone(&r), Arc::clone(&bound), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0usize;
            let mut live = Vec::new();
            while !stop.load(Ordering::Relaxed) || i < 100 {
                let core = 1 + i % 3;
                let addr = if i % 2 == 1 {
                    BindAddr::V4(A4)
                } else {
                    BindAddr::Any4
                };
                // The id is only known once bind has published it: readers check theirs
                // against `bound` after the join.
                let id = r.bind(Proto::Tcp, addr, 80, core, 0, rp(1)).unwrap();
                bound.lock().unwrap().insert(id, core);
                live.push(id);
                if live.len() > 4 {
                    let old = live.remove(i % live.len());
                    if i % 3 == 1 {
                        r.drain(old).unwrap();
                    }
                    r.unbind(old).unwrap();
                }
                i += 1;
            }
            i
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                let mut mix = Mix::new(t);
                let mut seen = HashMap::new();
                for _ in 0..100_000 {
                    let k = FlowKey {
                        src: IpAddr::V4(Ipv4Addr::from(mix.next() as u32)),
                        dst: IpAddr::V4(A4),
                        ..mix.tuple()
                    };
                    let s = r
                        .select(&k, 0, t as usize)
                        .expect("a member is always bound");
                    seen.insert(s.member, s.core);
                }
                seen
            })
        })
        .collect();
    let seen: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds >= 100);
    let bound = bound.lock().unwrap();
    for s in seen {
        for (id, core) in s {
            assert_eq!(
                bound.get(&id),
                Some(&core),
                "{id} was never bound on core {core}"
            );
        }
    }
    let total: u64 = r
        .members()
        .iter()
        .map(|m| m.counters.snapshot().flows)
        .sum();
    assert!(total <= 200_000);
}

// ---------------------------------------------------------------------------------------------
// Property: the registry against an independent model of the bind rules
// ---------------------------------------------------------------------------------------------

/// The destinations an address covers, in a universe of two IPv4 and two IPv6 addresses.
/// Overlap is "cover sets intersect": an independent definition of the rule.
fn covers(a: &BindAddr) -> u8 {
    match a {
        BindAddr::Any4 => 0b0011,
        BindAddr::V4(x) if *x == A4 => 0b0001,
        BindAddr::V4(_) => 0b0010,
        BindAddr::Any6 { v6only: false } => 0b1111,
        BindAddr::Any6 { v6only: true } => 0b1100,
        BindAddr::V6(x) if *x == A6 => 0b0100,
        BindAddr::V6(_) => 0b1000,
    }
}

fn arb_addr() -> impl Strategy<Value = BindAddr> {
    prop_oneof![
        Just(BindAddr::Any4),
        Just(BindAddr::V4(A4)),
        Just(BindAddr::V4(B4)),
        Just(DUAL),
        Just(V6ONLY),
        Just(BindAddr::V6(A6)),
        Just(BindAddr::V6(B6)),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Bind {
        udp: bool,
        addr: BindAddr,
        port: u16,
        reuseport: bool,
        uid: u32,
    },
    Unbind(usize),
    Drain(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), arb_addr(), 80u16..82, prop::bool::weighted(0.8), 0u32..2).prop_map(
            |(udp, addr, port, reuseport, uid)| Op::Bind { udp, addr, port, reuseport, uid }
        ),
        1 => (0usize..16).prop_map(Op::Unbind),
        1 => (0usize..16).prop_map(Op::Drain),
    ]
}

proptest! {
    // No regression files: they would land outside this module's directory.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn registry_matches_model(ops in prop::collection::vec(arb_op(), 1..40)) {
        let r = reg();
        // Model: (id, proto, addr, port, reuseport, uid, active)
        let mut model: Vec<(MemberId, Proto, BindAddr, u16, bool, u32, bool)> = Vec::new();
        for op in ops {
            match op {
                Op::Bind { udp, addr, port, reuseport, uid } => {
                    let proto = if udp { Proto::Udp } else { Proto::Tcp };
                    let allowed = model.iter().all(|&(_, p, a, po, rp, u, _)| {
                        p != proto || po != port || covers(&a) & covers(&addr) == 0
                            || (rp && reuseport && u == uid)
                    });
                    let res = r.bind(proto, addr, port, 0, 0, BindOptions::new(uid).with_reuseport(reuseport));
                    prop_assert_eq!(res.is_ok(), allowed, "{:?} -> {:?}", (proto, addr, port, reuseport, uid), res);
                    if let Ok(id) = res {
                        model.push((id, proto, addr, port, reuseport, uid, true));
                    }
                }
                Op::Unbind(i) if !model.is_empty() => {
                    let (id, ..) = model.remove(i % model.len());
                    prop_assert!(r.unbind(id).is_ok());
                }
                Op::Drain(i) if !model.is_empty() => {
                    let n = model.len();
                    let m = &mut model[i % n];
                    m.6 = false;
                    prop_assert!(r.drain(m.0).is_ok());
                }
                _ => {}
            }
            // Groups are exactly the members with equal (proto, addr, port), bind order.
            for &(id, p, a, po, ..) in &model {
                let g = r.group(id).unwrap();
                let want: Vec<MemberId> = model.iter()
                    .filter(|m| (m.1, m.2, m.3) == (p, a, po)).map(|m| m.0).collect();
                prop_assert_eq!(g.members, want);
            }
            // Lookup: the chosen member matches and no more specific active group exists.
            for (dst, bit) in [(IpAddr::V4(A4), 0b0001u8), (IpAddr::V4(B4), 0b0010), (IpAddr::V6(A6), 0b0100), (IpAddr::V6(B6), 0b1000)] {
                for proto in [Proto::Tcp, Proto::Udp] {
                    let k = FlowKey { proto, src: if dst.is_ipv4() { IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)) } else { IpAddr::V6(B6) }, sport: 9, dst, dport: 80 };
                    let cands: Vec<_> = model.iter()
                        .filter(|m| m.1 == proto && m.3 == 80 && m.6 && covers(&m.2) & bit != 0)
                        .collect();
                    let got = r.select(&k, 0, 0);
                    match got {
                        None => prop_assert!(cands.is_empty()),
                        Some(s) => {
                            let m = cands.iter().find(|m| m.0 == s.member).expect("a matching active member");
                            // Most specific = covers the fewest destinations, v6only before dual.
                            let width = |a: &BindAddr| covers(a).count_ones();
                            prop_assert!(cands.iter().all(|c| width(&c.2) >= width(&m.2)));
                        }
                    }
                }
            }
        }
    }
}
