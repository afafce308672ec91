//! Bulk transfers through an impaired sandbox: 1% loss, 20 ms ± 5 ms, 0.5% reordering and
//! 0.1% duplication each way, made by the sandbox's forwarder in a middle namespace. Real
//! AF_XDP on the server side, the kernel's TCP (cubic) on the client side, and the stack with
//! congestion control on (`--cc cubic`, the default).
//!
//! The full size of issue 11 (100 parallel 10 MiB transfers each way) runs in the `lossy`
//! benchmark; here 100 parallel 1 MiB transfers each way over IPv4 and 8 over IPv6, every byte
//! checked, keep the test under half a minute.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{Server, Service, BIN, SERVER_IP4, SERVER_IP6};
use lab::impair::ImpairSpec;
use lab::sandbox::{self, Sandbox, SandboxSpec};
use serde_json::Value;

const CONNS4: u64 = 100;
const CONNS6: u64 = 8;
const BYTES: u64 = 1 << 20;

fn bulk(sb: &Sandbox, addr: &str, conns: u64) -> Value {
    let mut cmd = common::client(
        sb,
        200,
        BIN,
        [
            "bench",
            "bulk",
            "--addr",
            addr,
            "--conns",
            &conns.to_string(),
            "--bytes",
            &BYTES.to_string(),
            "--timeout",
            "180",
            "--seed",
            "7",
        ],
    );
    let out = common::output(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "bulk client printed no JSON ({e}), {}:\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("bulk {addr}: {report}");
    report
}

#[test]
fn bulk_transfers_cross_a_lossy_slow_reordering_link_byte_exact() {
    let Some(_guard) = common::begin() else {
        return;
    };
    let started = Instant::now();
    let name = format!("t{}-imp", std::process::id());
    let spec = ImpairSpec::lossy_wan(11);
    let sb = Sandbox::up_impaired(
        &SandboxSpec {
            name: name.clone(),
            queues: 1,
        },
        &spec,
        Path::new(BIN),
    )
    .expect("impaired sandbox up");
    let mid = sandbox::middle_ns(&name);
    let forwarder = Command::new("ip")
        .args(["netns", "pids", &mid])
        .output()
        .expect("ip netns pids");
    let forwarder = String::from_utf8_lossy(&forwarder.stdout)
        .trim()
        .to_string();
    assert!(!forwarder.is_empty(), "no forwarder runs in {mid}");

    let server = Server::start(&sb, Service::Echo, &["--cc", "cubic"]);
    let (r4, r6) = std::thread::scope(|s| {
        let v6 = s.spawn(|| bulk(&sb, SERVER_IP6, CONNS6));
        let v4 = bulk(&sb, SERVER_IP4, CONNS4);
        (v4, v6.join().expect("v6 client"))
    });
    let impaired = sandbox::impair_stats(&name).expect("forwarder counters");
    let stats = server.stop();

    for (r, conns) in [(&r4, CONNS4), (&r6, CONNS6)] {
        assert_eq!(r["failed"], 0, "{r:#}");
        assert_eq!(r["ok"], conns, "{r:#}");
        assert_eq!(r["received"], conns * BYTES, "{r:#}");
    }
    // The server counted what the clients saw: every connection, every byte echoed once.
    common::assert_frames_ok(&stats);
    let conns = common::total(&stats, "/app/connections");
    let probes = conns - CONNS4 - CONNS6;
    assert!(
        probes <= 20,
        "{conns} connections for {CONNS4}+{CONNS6} transfers"
    );
    assert_eq!(
        common::total(&stats, "/app/tcp_bytes"),
        (CONNS4 + CONNS6) * BYTES
    );
    assert_eq!(common::total(&stats, "/app/rejected_max_conns"), 0);
    assert_eq!(common::total(&stats, "/app/idle_closed"), 0);
    assert_eq!(common::total(&stats, "/engine/accepted"), conns);

    // The link was really impaired, each way, at about the rates asked for.
    eprintln!("forwarder: {impaired}");
    for dir in ["to_server", "to_client"] {
        let n = |k: &str| common::num(&impaired, &format!("/{dir}/{k}"));
        let received = n("received");
        assert!(received > 20_000, "{dir}: {impaired:#}");
        let loss = n("dropped") as f64 / received as f64;
        assert!(
            (0.005..0.02).contains(&loss),
            "{dir} loss {loss}: {impaired:#}"
        );
        assert!(n("reordered") > 0, "{dir}: {impaired:#}");
        assert!(n("duplicated") > 0, "{dir}: {impaired:#}");
        assert_eq!(n("queue_full"), 0, "{dir}: {impaired:#}");
    }

    // Teardown stops the forwarder and removes all three namespaces.
    drop(sb);
    let left = common::netns_list();
    assert!(
        !left.iter().any(|ns| ns.contains(&name)),
        "left behind: {left:?}"
    );
    for pid in forwarder.split_whitespace() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "forwarder {pid} survived the teardown"
        );
    }
    assert!(sandbox::impair_stats(&name).is_none(), "counters file left");
    eprintln!("impaired bulk test took {:.1?}", started.elapsed());
}

/// Path MTU discovery through a router with a small MTU: the forwarder carries at most 1280
/// bytes towards the client and answers a larger packet (DF is set on everything the stack
/// sends) with an ICMP "fragmentation needed" / ICMPv6 "packet too big". A kernel curl
/// downloads a 4 MiB file from `xdpstack http` over IPv4 and IPv6, byte-exact: without path
/// MTU discovery every full-size segment is dropped and the download stalls (curl times out).
#[test]
fn downloads_cross_a_smaller_mtu_by_path_mtu_discovery() {
    let Some(_guard) = common::begin() else {
        return;
    };
    let name = format!("t{}-mtu", std::process::id());
    let spec = ImpairSpec {
        mtu: 1280,
        ..ImpairSpec::default()
    };
    let sb = Sandbox::up_impaired(
        &SandboxSpec {
            name: name.clone(),
            queues: 1,
        },
        &spec,
        Path::new(BIN),
    )
    .expect("impaired sandbox up");
    let root = common::temp_path("mtu-root", "d");
    std::fs::create_dir_all(&root).expect("site directory");
    let mut body = vec![0u8; 4 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in body.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(root.join("big.bin"), &body).expect("write the file");
    let server = Server::start(
        &sb,
        Service::Http,
        &["--root", root.to_str().expect("utf-8 path")],
    );
    for (family, url) in [
        ("IPv4", format!("http://{SERVER_IP4}/big.bin")),
        ("IPv6", format!("http://[{SERVER_IP6}]/big.bin")),
    ] {
        let out = common::temp_path(&format!("mtu-{family}"), "bin");
        let mut cmd = common::client(
            &sb,
            40,
            "curl",
            [
                "-sS",
                "-g",
                "-m",
                "30",
                "-o",
                out.to_str().expect("utf-8 path"),
                &url,
            ],
        );
        let res = common::output(&mut cmd);
        let got = std::fs::read(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        assert!(
            res.status.success(),
            "{family}: curl {url} failed ({}) after {} bytes: {}",
            res.status,
            got.len(),
            String::from_utf8_lossy(&res.stderr)
        );
        assert_eq!(got.len(), body.len(), "{family}: length");
        assert!(got == body, "{family}: bytes differ");
    }
    // The forwarder writes its counters once a second: two downloads at no delay can be over
    // before the first write after them, so wait (a few seconds at most) for one that has
    // seen the traffic.
    let waited = Instant::now();
    let impaired = loop {
        let c = sandbox::impair_stats(&name).expect("forwarder counters");
        let seen = c
            .pointer("/to_client/received")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if seen > 0 || waited.elapsed() > std::time::Duration::from_secs(5) {
            break c;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stats = server.stop();
    let _ = std::fs::remove_dir_all(&root);
    eprintln!("forwarder: {impaired}");
    common::assert_frames_ok(&stats);
    // The forwarder refused full-size packets of both families and said so; the stack took
    // the messages (one per connection at least: the first of a flight lowers the MSS, the
    // rest report the MTU already in use) and ignored none for another reason.
    assert!(
        common::num(&impaired, "/mtu/frag_needed_sent") >= 1,
        "{impaired:#}"
    );
    assert!(
        common::num(&impaired, "/mtu/packet_too_big_sent") >= 1,
        "{impaired:#}"
    );
    assert!(
        common::total(&stats, "/engine/icmp_frag_needed") >= 2,
        "{stats:#}"
    );
    for ignored in ["no_conn", "out_of_window", "malformed"] {
        assert_eq!(
            common::total(&stats, &format!("/engine/icmp_frag_needed_{ignored}")),
            0,
            "{stats:#}"
        );
    }
    drop(sb);
    let left = common::netns_list();
    assert!(
        !left.iter().any(|ns| ns.contains(&name)),
        "left behind: {left:?}"
    );
}
