//! The engine end to end in memory (no root): our `Engine` on one end of a
//! `MemRings` pair, a plain smoltcp Ethernet stack as the client on the
//! other. Covers the reuseport semantics that need real TCP handshakes:
//! uid-checked sharing, keyed distribution, backlog, migration, drain, UDP.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::mem::{MemConfig, MemRings};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::engine::{Engine, EngineConfig, ListenerId, UdpId};
use stack::parse::{FlowKey, Proto};
use stack::reuseport::{reciprocal_scale, BindAddr, BindError, BindOptions, FlowHasher};
use stack::shared::Shared;
use stack::testing::{engine_net, EngineNet, KEY};
use testkit::{MemClient, Rng};

const SERVER: Ipv4Addr = testkit::SERVER_IP4;
const CLIENT: Ipv4Addr = testkit::CLIENT_IP4;

fn opts(uid: u32) -> BindOptions {
    BindOptions::new(uid).with_reuseport(true).with_backlog(64)
}

fn key_for(sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        proto: Proto::Tcp,
        src: IpAddr::V4(CLIENT),
        sport,
        dst: IpAddr::V4(SERVER),
        dport,
    }
}

fn established(net: &mut EngineNet, hs: &[SocketHandle]) -> bool {
    hs.iter()
        .all(|&h| net.client.tcp(h).state() == tcp::State::Established)
}

#[test]
fn hijack_is_refused_and_no_flow_reaches_it() {
    let mut net = engine_net(|_| {});
    let a = net
        .server
        .tcp_listen(BindAddr::Any4, 80, opts(1000))
        .unwrap();
    let err = net
        .server
        .tcp_listen(BindAddr::Any4, 80, opts(1001))
        .unwrap_err();
    assert!(matches!(err, BindError::PortHijack { .. }), "{err:?}");
    assert!(err.to_string().contains("refused port hijack"), "{err}");
    let err = net
        .server
        .tcp_listen(BindAddr::V4(SERVER), 80, BindOptions::new(1000))
        .unwrap_err();
    assert!(
        matches!(err, BindError::AddrInUseNoReuseport { .. }),
        "{err}"
    );
    let hs: Vec<_> = (0..20)
        .map(|i| net.client.connect(40000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    let mut got = 0;
    net.run_until(200, "all accepted", |n| {
        while n.server.accept(a).is_some() {
            got += 1;
        }
        got == 20
    });
    let members = net.server.shared.registry.members();
    assert_eq!(members.len(), 1, "only the owner is bound");
    assert_eq!(members[0].counters.accepted.load(Ordering::Relaxed), 20);
    net.server.check_frames().unwrap();
}

#[test]
fn group_spreads_flows_by_the_keyed_hash() {
    let mut net = engine_net(|_| {});
    let ids: Vec<ListenerId> = (0..3)
        .map(|_| net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap())
        .collect();
    let hasher = FlowHasher::with_key(KEY.0, KEY.1);
    let mut expected: HashMap<ListenerId, usize> = HashMap::new();
    let ports: Vec<u16> = (0..60).map(|i| 41000 + i * 7).collect();
    for &p in &ports {
        let idx = reciprocal_scale(hasher.hash(&key_for(p, 80)), ids.len());
        *expected.entry(ids[idx]).or_default() += 1;
    }
    let hs: Vec<_> = ports
        .iter()
        .map(|&p| net.client.connect(p, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    let mut got: HashMap<ListenerId, usize> = HashMap::new();
    net.run_until(200, "all accepted", |n| {
        for &id in &ids {
            while n.server.accept(id).is_some() {
                *got.entry(id).or_default() += 1;
            }
        }
        got.values().sum::<usize>() == ports.len()
    });
    assert_eq!(got, expected, "each flow lands where reciprocal_scale says");
    assert!(got.len() == 3, "every member got flows: {got:?}");
}

#[test]
fn closed_listener_queue_migrates_to_a_live_member() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..30)
        .map(|i| net.client.connect(42000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    let on_a = net.server.pending(a);
    let on_b = net.server.pending(b);
    assert_eq!(on_a + on_b, 30);
    assert!(on_a > 0 && on_b > 0, "hash spread both ways: {on_a} {on_b}");
    net.server.close_listener(a).unwrap();
    assert_eq!(net.server.pending(b), 30);
    let mut conns = Vec::new();
    while let Some(c) = net.server.accept(b) {
        conns.push(c);
    }
    assert_eq!(conns.len(), 30);
    // Every migrated connection still carries data both ways.
    for &h in &hs {
        net.client.tcp(h).send_slice(b"ping").unwrap();
    }
    let mut echoed = 0;
    let mut buf = [0u8; 64];
    net.run_until(2000, "echo through migrated connections", |n| {
        for &c in &conns {
            if let Ok(k) = n.server.recv(c, &mut buf) {
                if k > 0 {
                    n.server.send(c, &buf[..k]).unwrap();
                }
            }
        }
        echoed = 0;
        for &h in &hs {
            if n.client.tcp(h).recv_queue() >= 4 {
                echoed += 1;
            }
        }
        echoed == 30
    });
    let rep = net.server.shared.report();
    let a_rep = rep.listeners.iter().find(|l| l.id == a.0 .0).unwrap();
    let b_rep = rep.listeners.iter().find(|l| l.id == b.0 .0).unwrap();
    assert_eq!(a_rep.state, "closed");
    assert_eq!(a_rep.counters.migrated_out as usize, on_a);
    assert_eq!(b_rep.counters.migrated_in as usize, on_a);
    assert_eq!(b_rep.counters.accepted, 30);
    net.server.check_frames().unwrap();
}

#[test]
fn requeued_connections_migrate_intact_and_the_last_member_resets_them() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..20)
        .map(|i| net.client.connect(45000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    // The clients send before anyone reads: the bytes wait in the sockets.
    for &h in &hs {
        net.client.tcp(h).send_slice(b"hello").unwrap();
    }
    net.run(50);
    // `a`'s relay accepted its share, then its consumer went away without
    // taking them: they go back to the group, intact.
    let mut offered = Vec::new();
    while let Some(c) = net.server.accept(a) {
        offered.push(c);
    }
    assert!(!offered.is_empty());
    net.server.drain(a).unwrap();
    for &c in &offered {
        net.server.requeue(c).unwrap();
        assert!(net.server.requeue(c).is_err(), "only an accepted one");
    }
    let mut on_b = Vec::new();
    while let Some(c) = net.server.accept(b) {
        on_b.push(c);
    }
    assert_eq!(on_b.len(), 20, "b has its own and a's");
    let mut buf = [0u8; 16];
    for &c in &on_b {
        assert_eq!(net.server.recv(c, &mut buf), Ok(5), "no byte was read");
        assert_eq!(&buf[..5], b"hello");
    }
    // Given back with no member left: reset, as a closing last listener's
    // queue is.
    net.server.close_listener(a).unwrap();
    net.server.drain(b).unwrap();
    for &c in &on_b {
        net.server.requeue(c).unwrap();
    }
    net.run_until(2000, "clients see the reset", |n| {
        hs.iter()
            .all(|&h| n.client.tcp(h).state() == tcp::State::Closed)
    });
    net.server.check_frames().unwrap();
}

#[test]
fn last_listener_closing_resets_its_queue() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..5)
        .map(|i| net.client.connect(43000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    net.server.close_listener(a).unwrap();
    net.run_until(2000, "clients see the reset", |n| {
        hs.iter()
            .all(|&h| n.client.tcp(h).state() == tcp::State::Closed)
    });
    let rep = net.server.shared.report();
    assert_eq!(rep.listeners[0].counters.reset, 5);
    // The port is free again and a new listener serves new clients.
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(43100, (SERVER, 80));
    net.run_until(2000, "new connection", |n| established(n, &[h]));
    net.run_until(100, "accept", |n| n.server.accept(b).is_some());
}

#[test]
fn drained_listener_takes_no_new_flows_but_keeps_its_own() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let first: Vec<_> = (0..20)
        .map(|i| net.client.connect(44000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "first batch", |n| established(n, &first));
    let a_before = net.server.pending(a);
    assert!(a_before > 0);
    net.server.drain(a).unwrap();
    let second: Vec<_> = (0..40)
        .map(|i| net.client.connect(45000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "second batch", |n| established(n, &second));
    assert_eq!(
        net.server.pending(a),
        a_before,
        "no new flow reached the drained listener"
    );
    let mut n_a = 0;
    while net.server.accept(a).is_some() {
        n_a += 1;
    }
    assert_eq!(n_a, a_before, "its own queue is still accepted");
    assert_eq!(net.server.pending(b), 60 - a_before);
}

#[test]
fn full_backlog_drops_syns_and_counts_them() {
    // Without SYN cookies a SYN beyond the backlog is dropped (with them it
    // is answered with a cookie: see `syn_cookies_*`).
    let mut net = engine_net(|c| c.syncookies = false);
    let a = net
        .server
        .tcp_listen(BindAddr::Any4, 80, BindOptions::new(0).with_backlog(2))
        .unwrap();
    let hs: Vec<_> = (0..5)
        .map(|i| net.client.connect(46000 + i, (SERVER, 80)))
        .collect();
    net.run(200);
    assert_eq!(net.server.pending(a), 2);
    let dropped = net.server.shared.report().listeners[0].counters.dropped;
    assert!(dropped >= 3, "dropped {dropped}");
    // Accepting makes room; the clients' SYN retransmissions get in.
    let mut accepted = 0;
    net.run_until(20_000, "all five accepted after retries", |n| {
        while n.server.accept(a).is_some() {
            accepted += 1;
        }
        accepted == 5
    });
    assert!(established(&mut net, &hs));
}

#[test]
fn udp_group_keeps_each_four_tuple_on_one_member() {
    let mut net = engine_net(|_| {});
    let ids: Vec<UdpId> = (0..2)
        .map(|_| net.server.udp_bind(BindAddr::Any4, 53, opts(0)).unwrap())
        .collect();
    let mut socks = Vec::new();
    for i in 0..16u16 {
        let mut s = MemClient::udp_socket(8, 4096);
        s.bind(47000 + i).unwrap();
        socks.push(net.client.sockets.add(s));
    }
    let server = IpEndpoint::new(IpAddress::Ipv4(SERVER), 53);
    let mut seen: HashMap<u16, UdpId> = HashMap::new();
    let mut buf = [0u8; 64];
    for round in 0..3 {
        for &h in &socks {
            let s = net.client.udp(h);
            s.send_slice(format!("q{round}").as_bytes(), server)
                .unwrap();
        }
        let mut got = 0;
        net.run_until(2000, "datagrams delivered", |n| {
            for &id in &ids {
                while let Ok(Some((k, from, to))) = n.server.recv_from(id, &mut buf) {
                    assert_eq!(&buf[..k], format!("q{round}").as_bytes());
                    assert_eq!(to, IpAddr::V4(SERVER));
                    let prev = seen.insert(from.port(), id);
                    assert!(prev.is_none() || prev == Some(id), "4-tuple moved");
                    // Answer, to check the native send path.
                    n.server.send_to(id, b"answer", from, None).unwrap();
                    got += 1;
                }
            }
            got == socks.len()
        });
    }
    let hasher = FlowHasher::with_key(KEY.0, KEY.1);
    for (&sport, &id) in &seen {
        let k = FlowKey {
            proto: Proto::Udp,
            ..key_for(sport, 53)
        };
        assert_eq!(ids[reciprocal_scale(hasher.hash(&k), 2)], id);
    }
    assert!(seen.values().any(|&m| m == ids[0]) && seen.values().any(|&m| m == ids[1]));
    // The answers arrived with valid checksums (the client verifies them).
    net.run(50);
    for &h in &socks {
        let s = net.client.udp(h);
        let mut n = 0;
        while let Ok((k, meta)) = s.recv_slice(&mut buf) {
            assert_eq!(&buf[..k], b"answer");
            assert_eq!(meta.endpoint, server);
            n += 1;
        }
        assert_eq!(n, 3);
    }
    let _ = SocketAddr::new(IpAddr::V4(CLIENT), 0);
    net.server.check_frames().unwrap();
}

// ---- readiness, connection counts, close timeout, the graceful stop ----

fn accept_all(net: &mut EngineNet, l: ListenerId, n: usize) -> Vec<stack::socket::ConnId> {
    let mut conns = Vec::new();
    net.run_until(500, "all accepted", |net| {
        while let Some(c) = net.server.accept(l) {
            conns.push(c);
        }
        conns.len() == n
    });
    conns
}

#[test]
fn take_ready_lists_only_connections_with_segments() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    net.server.set_ready_tracking(true);
    let hs: Vec<_> = (0..3)
        .map(|i| net.client.connect(46000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    let conns = accept_all(&mut net, l, 3);
    let peer_port = |net: &mut EngineNet, c| net.server.peer(c).unwrap().unwrap().port;
    let mut ready = Vec::new();
    net.run(5);
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "nothing arrived after accept: {ready:?}");

    // Data on the second connection only, in several segments.
    net.client.tcp(hs[1]).set_nagle_enabled(false);
    for _ in 0..3 {
        net.client.tcp(hs[1]).send_slice(b"data").unwrap();
        net.run(3);
    }
    net.server.take_ready(&mut ready);
    assert_eq!(
        ready.len(),
        1,
        "listed once however many segments: {ready:?}"
    );
    assert_eq!(peer_port(&mut net, ready[0]), 46001);
    let mut buf = [0u8; 64];
    assert_eq!(net.server.recv(ready[0], &mut buf), Ok(12));
    ready.clear();
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "taken means gone: {ready:?}");

    // A FIN is activity too.
    net.client.tcp(hs[2]).close();
    net.run(5);
    net.server.take_ready(&mut ready);
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(peer_port(&mut net, ready[0]), 46002);
    assert_eq!(
        net.server.recv(ready[0], &mut buf),
        Err(stack::socket::ConnError::Closed)
    );

    // Tracking off: nothing is recorded.
    net.server.set_ready_tracking(false);
    net.client.tcp(hs[0]).send_slice(b"x").unwrap();
    net.run(5);
    ready.clear();
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "{ready:?}");
    assert!(conns.len() == 3);
}

#[test]
fn connections_counts_until_the_close_finishes() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..2)
        .map(|i| net.client.connect(46100 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    assert_eq!(net.server.connections(), 2, "pending ones count");
    let conns = accept_all(&mut net, l, 2);
    for &c in &conns {
        net.server.close(c);
    }
    net.run(5);
    assert_eq!(
        net.server.connections(),
        2,
        "FIN sent, the peers have not closed"
    );
    for &h in &hs {
        net.client.tcp(h).close();
    }
    net.run_until(2000, "both released", |n| n.server.connections() == 0);
    assert_eq!(net.server.stats().engine.close_timeouts, 0);
}

#[test]
fn close_timeout_resets_a_peer_that_never_closes() {
    let mut net = engine_net(|c| c.close_timeout = std::time::Duration::from_millis(300));
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(46200, (SERVER, 80));
    net.run_until(2000, "connection established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    let closed_at = net.clock;
    net.server.close(c);
    // The client never closes its side: our socket sits in FIN_WAIT_2.
    net.run_until(2000, "peer saw our FIN", |n| {
        n.client.tcp(h).state() == tcp::State::CloseWait
    });
    assert_eq!(net.server.connections(), 1);
    net.run_until(5000, "reset after the close timeout", |n| {
        n.client.tcp(h).state() == tcp::State::Closed && n.server.connections() == 0
    });
    assert!(net.clock - closed_at >= smoltcp::time::Duration::from_millis(300));
    assert_eq!(net.server.stats().engine.close_timeouts, 1);
    net.server.check_frames().unwrap();
}

#[test]
fn a_handshake_reset_in_syn_received_is_dropped_not_reused() {
    // smoltcp turns a SYN-RECEIVED socket that gets a RST back into a
    // listening one; left in the queue it would take the next SYN in place
    // of the socket made for it, and that flow would have no entry of its own.
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    net.server.set_ready_tracking(true);
    let gone = net.client.connect(47000, (SERVER, 80));
    // Until the SYN is admitted (SYN-RECEIVED) and the SYN-ACK sent, before
    // the client sees it.
    net.run_until(200, "SYN admitted", |n| n.server.pending(l) == 1);
    // The client forgets the connection: its stack answers the SYN-ACK with RST.
    net.client.sockets.remove(gone);
    net.step();
    assert_eq!(
        net.server.pending(l),
        0,
        "the reset handshake left the queue"
    );
    assert_eq!(net.server.connections(), 0);
    assert_eq!(net.server.stats().engine.pending_lost, 1);

    // The next client gets its own socket and flow entry: its data is seen.
    let h = net.client.connect(47001, (SERVER, 80));
    net.run_until(2000, "connection established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    assert_eq!(net.server.peer(c).unwrap().unwrap().port, 47001);
    net.client.tcp(h).send_slice(b"hello").unwrap();
    let mut ready = Vec::new();
    net.run_until(500, "data reported ready", |n| {
        n.server.take_ready(&mut ready);
        !ready.is_empty()
    });
    assert_eq!(ready, vec![c]);
    assert_eq!(net.server.stats().flows, 1);
}

mod graceful;

// ---- the data path at scale: work only where there is work, bounded
// state under a SYN flood, SYN cookies, recycled sockets ----

mod data_path;

mod ecn;

// ---- TIME-WAIT kept as records ----

mod time_wait;

// ---- SYN cookies that keep window scale and SACK (timestamps) ----

mod cookies;

// ---- what a core remembers of a peer between connections ----

mod peer_rto;

// ---- outgoing connections (active open) ----

mod connect;

#[test]
fn a_reset_in_last_ack_releases_the_connection() {
    // Our data and FIN after the peer's FIN, answered by a peer that forgot
    // the connection (RST): released at once, not after the close timeout.
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(41900, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    net.client.tcp(h).close();
    let mut buf = [0u8; 8];
    net.run_until(200, "peer FIN seen", |n| {
        n.server.recv(c, &mut buf).is_err()
    });
    net.server.send(c, b"late").unwrap();
    net.server.close(c);
    // The client forgets the connection: its stack answers what comes with RST.
    net.client.sockets.remove(h);
    net.run_until(300, "released", |n| n.server.connections() == 0);
}
