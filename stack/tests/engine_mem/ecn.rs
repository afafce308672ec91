//! ECN (RFC 3168) through the engine and smoltcp's interface: the IP
//! header's ECN field reaches the socket (CE) and is written from it
//! (ECT(0) on new data), the TCP flags are negotiated and echoed. A raw
//! flow CLIENT:5556 -> :80 stands for a Linux client with `tcp_ecn = 1`.

use super::*;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::{
    EthernetFrame, IpEcn, Ipv4Packet, TcpControl, TcpEcn, TcpPacket, TcpRepr, TcpSeqNumber,
};

/// What the engine sent to the raw flow on `port`: (seq, ack, payload
/// length, SYN, ECE, CWR, the IP ECN field).
type Seg = (u32, Option<u32>, usize, bool, bool, bool, IpEcn);

fn sent(net: &mut EngineNet, port: u16) -> Vec<Seg> {
    let mut frames = Vec::new();
    net.client.port.recv(&mut frames);
    let mut out = Vec::new();
    for f in frames {
        let seg = net.client.port.read(f, |b| {
            let eth = EthernetFrame::new_checked(b).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            if t.dst_port() != port {
                return None;
            }
            let ack = t.ack().then(|| t.ack_number().0 as u32);
            Some((
                t.seq_number().0 as u32,
                ack,
                t.payload().len(),
                t.syn(),
                t.ece(),
                t.cwr(),
                IpEcn::from_bits(ip.ecn()),
            ))
        });
        net.client.port.release(f);
        out.extend(seg.flatten());
    }
    out
}

/// A segment of the raw flow from `port`, with the TCP flags `ecn.ece`,
/// `ecn.cwr` and the IP ECN field `ecn.ip`.
#[allow(clippy::too_many_arguments)]
fn seg(
    port: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    payload: &[u8],
    ecn: TcpEcn,
) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: port,
        dst_port: 80,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 64000,
        window_scale: None,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn,
        payload,
    };
    let mut frame = testkit::frames::tcp_to_server(CLIENT, &tcp);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_ecn(ecn.ip.bits());
    ip.fill_checksum();
    frame
}

fn exchange(net: &mut EngineNet, port: u16, frame: &[u8]) -> Vec<Seg> {
    net.clock += SDuration::from_millis(1);
    assert!(net
        .client
        .port
        .send_frame(frame.len(), |b| b.copy_from_slice(frame)));
    net.client.port.flush(|_, len| Some(len));
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    sent(net, port)
}

fn flags(ece: bool, cwr: bool, ip: IpEcn) -> TcpEcn {
    TcpEcn { ece, cwr, ip }
}

#[test]
fn ecn_is_negotiated_marked_echoed_and_answered_through_the_engine() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    // A real connection first: the engine learns the client's MAC.
    let _real = super::data_path::data_path_connect(&mut net, l);
    const P: u16 = 5556;
    let isn = 7000u32;
    // An ECN-setup SYN: the SYN-ACK has ECE, not CWR, and is Not-ECT.
    let setup = flags(true, true, IpEcn::NotEct);
    let out = exchange(&mut net, P, &seg(P, TcpControl::Syn, isn, None, &[], setup));
    let [(server_isn, Some(a), 0, true, true, false, IpEcn::NotEct)] = out[..] else {
        panic!("no ECN-setup SYN-ACK: {out:?}");
    };
    assert_eq!(a, isn + 1);
    let snd = server_isn.wrapping_add(1);
    let mut nxt = isn + 1;
    // Data the path marked CE: ACKed at once, with ECE; the ACK is Not-ECT.
    let ce = flags(false, false, IpEcn::Ce);
    let out = exchange(
        &mut net,
        P,
        &seg(P, TcpControl::Psh, nxt, Some(snd), b"hello", ce),
    );
    nxt += 5;
    assert_eq!(
        out,
        [(snd, Some(nxt), 0, false, true, false, IpEcn::NotEct)]
    );
    let c = net.server.accept(l).expect("established");
    let mut buf = [0u8; 64];
    assert_eq!(net.server.recv(c, &mut buf).unwrap(), 5);
    // The server's data: ECT(0) in the IP header, still echoing ECE.
    net.server.send(c, b"world").unwrap();
    net.server.egress(net.clock);
    let out = sent(&mut net, P);
    assert_eq!(out, [(snd, Some(nxt), 5, false, true, false, IpEcn::Ect0)]);
    let mut snd = snd + 5;
    // The client echoes congestion: the window is reduced, and the next
    // new data carries CWR (ECT(0) still).
    let ece = flags(true, false, IpEcn::NotEct);
    exchange(
        &mut net,
        P,
        &seg(P, TcpControl::None, nxt, Some(snd), &[], ece),
    );
    net.server.send(c, b"again").unwrap();
    net.server.egress(net.clock);
    let out = sent(&mut net, P);
    assert_eq!(out, [(snd, Some(nxt), 5, false, true, true, IpEcn::Ect0)]);
    snd += 5;
    // The client's CWR ends the echo: its ACK (delayed) has no ECE.
    let cwr = flags(false, true, IpEcn::Ect0);
    exchange(
        &mut net,
        P,
        &seg(P, TcpControl::Psh, nxt, Some(snd), b"x", cwr),
    );
    nxt += 1;
    net.clock += SDuration::from_millis(50);
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    let out = sent(&mut net, P);
    assert_eq!(
        out,
        [(snd, Some(nxt), 0, false, false, false, IpEcn::NotEct)]
    );

    // A SYN that does not ask: no ECE, and its data goes Not-ECT.
    const Q: u16 = 5557;
    let plain = TcpEcn::NONE;
    let out = exchange(&mut net, Q, &seg(Q, TcpControl::Syn, isn, None, &[], plain));
    let [(server_isn, Some(_), 0, true, false, false, IpEcn::NotEct)] = out[..] else {
        panic!("no plain SYN-ACK: {out:?}");
    };
    let snd2 = server_isn.wrapping_add(1);
    exchange(
        &mut net,
        Q,
        &seg(Q, TcpControl::Psh, isn + 1, Some(snd2), b"hi", ce),
    );
    let c2 = net.server.accept(l).expect("established");
    net.server.send(c2, b"data").unwrap();
    net.server.egress(net.clock);
    let out = sent(&mut net, Q);
    assert!(
        out.iter().all(|s| s.6 == IpEcn::NotEct && !s.4 && !s.5),
        "{out:?}"
    );
    assert!(out.iter().any(|s| s.2 == 4), "{out:?}");

    // Both end (RST at the exact sequence number); the counters are taken
    // when a connection is released.
    for (port, seq) in [(P, nxt), (Q, isn + 3)] {
        exchange(
            &mut net,
            port,
            &seg(port, TcpControl::Rst, seq, None, &[], plain),
        );
    }
    net.clock += SDuration::from_millis(10);
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    let e = net.server.stats().engine;
    assert_eq!(e.tcp_ecn_negotiated, 1, "{e:?}");
    assert_eq!(e.tcp_ecn_ce_received, 1, "{e:?}");
    assert_eq!(e.tcp_ecn_reductions, 1, "{e:?}");
    net.server.check_frames().unwrap();
}
