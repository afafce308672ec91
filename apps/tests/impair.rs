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
