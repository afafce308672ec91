//! A peer's next connection is timed by what its last one measured
//! (`stack/src/tcp/peers.rs`, RFC 9040 temporal sharing): a lost SYN-ACK
//! is resent after the peer's measured RTO, not after RFC 6298's second.

use super::time_wait::{listening, seg, sent, xchg};
use super::*;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::TcpControl;

/// Run the engine's timers `ms` later; what it sent to `port`.
fn later(net: &mut EngineNet, port: u16, ms: u64) -> Vec<super::time_wait::Seg> {
    net.clock += SDuration::from_millis(ms);
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    sent(net, port)
}

#[test]
fn a_lost_syn_ack_is_resent_after_the_rto_the_peers_last_connection_measured() {
    // One connection from the client, established: its handshake measured
    // an RTT near 0, an RTO of 200 ms (the floor).
    let (mut net, _l) = listening(|_| {});
    assert_eq!(net.server.stats().engine.handshake_rto_from_peer, 0);
    let port = 47001;
    let out = xchg(
        &mut net,
        port,
        10,
        &seg(port, TcpControl::Syn, 5000, None, &[]),
    );
    let [(isn, Some(5001), TcpControl::Syn, 0)] = out[..] else {
        panic!("no SYN-ACK: {out:?}");
    };
    assert_eq!(net.server.stats().engine.handshake_rto_from_peer, 1);
    // The SYN-ACK is lost: the client says nothing. Resent after 200 ms
    // (the engine's clock ticks in milliseconds: by 202 ms), not a second.
    assert_eq!(later(&mut net, port, 199), vec![], "resent before the RTO");
    let first = resent_within(&mut net, port, 3);
    assert_eq!(first, (isn, Some(5001), TcpControl::Syn, 0));
    // Then backed off as any retransmission: 400 ms.
    assert_eq!(later(&mut net, port, 398), vec![]);
    assert_eq!(resent_within(&mut net, port, 4), first);
}

/// The one segment the engine sends to `port` within `ms` more
/// milliseconds, looked for each millisecond.
fn resent_within(net: &mut EngineNet, port: u16, ms: u64) -> super::time_wait::Seg {
    for _ in 0..ms {
        match later(net, port, 1)[..] {
            [] => continue,
            [s] => return s,
            ref more => panic!("more than one segment: {more:?}"),
        }
    }
    panic!("nothing resent within {ms} ms");
}

#[test]
fn a_peer_never_measured_gets_the_syn_ack_timed_by_a_second() {
    let mut net = engine_net(|_| {});
    net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    // The engine learns the client's MAC from its ARP request; no
    // connection has measured anything.
    let arp = testkit::frames::arp(
        smoltcp::wire::ArpOperation::Request,
        testkit::CLIENT_MAC,
        CLIENT,
        SERVER,
    );
    let frame = testkit::frames::eth(
        testkit::SERVER_MAC,
        testkit::CLIENT_MAC,
        smoltcp::wire::EthernetProtocol::Arp,
        &arp,
    );
    xchg(&mut net, 1, 1, &frame);
    let port = 47002;
    let out = xchg(
        &mut net,
        port,
        10,
        &seg(port, TcpControl::Syn, 9000, None, &[]),
    );
    let [(isn, Some(9001), TcpControl::Syn, 0)] = out[..] else {
        panic!("no SYN-ACK: {out:?}");
    };
    assert_eq!(net.server.stats().engine.handshake_rto_from_peer, 0);
    assert_eq!(later(&mut net, port, 999), vec![], "resent before 1 s");
    assert_eq!(
        resent_within(&mut net, port, 3),
        (isn, Some(9001), TcpControl::Syn, 0)
    );
}
