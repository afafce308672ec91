//! ECN (RFC 3168) against the kernel: a client namespace with `net.ipv4.tcp_ecn = 1` (the
//! sysctl is per network namespace) downloads from `xdpstack http` through the impaired
//! sandbox's forwarder, whose bottleneck marks ECN-capable packets CE when more than 5 ms of
//! sending time is queued ahead of them (`--ecn-mark 5ms`) rather than letting its queue fill.
//! The stack must accept ECN, send its data ECT(0) (else nothing is marked), reduce its window
//! when the kernel echoes the marks (ECE), and deliver every byte.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, Service, BIN, SERVER_IP4};
use lab::impair::ImpairSpec;
use lab::sandbox::{self, Sandbox, SandboxSpec};

/// The file downloaded: 6 MiB, about 2.5 s at the bottleneck's rate.
const BYTES: usize = 6 << 20;

#[test]
fn a_kernel_client_with_ecn_downloads_through_a_marking_bottleneck() {
    let Some(_guard) = common::begin() else {
        return;
    };
    let started = Instant::now();
    let name = format!("t{}-ecn", std::process::id());
    let spec = ImpairSpec {
        delay: Duration::from_millis(10),
        rate_bps: 20_000_000,
        ecn_mark: Some(Duration::from_millis(5)),
        seed: 3,
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

    // The kernel client asks for ECN in its SYNs (the namespace's own sysctl).
    common::run_ok(&mut common::client(
        &sb,
        5,
        "sysctl",
        ["-w", "net.ipv4.tcp_ecn=1"],
    ));

    let root = common::temp_path(&format!("{name}-root"), "d");
    std::fs::create_dir_all(&root).expect("root dir");
    let body: Vec<u8> = (0..BYTES)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect();
    std::fs::write(root.join("blob"), &body).expect("write blob");
    let got_path = common::temp_path(&format!("{name}-got"), "bin");

    let server = Server::start(
        &sb,
        Service::Http,
        &["--root", &root.display().to_string(), "--cc", "cubic"],
    );
    let url = format!("http://{SERVER_IP4}/blob");
    let mut curl = common::client(&sb, 60, "curl", ["-sS", "-m", "50", "--http1.1", "-o"]);
    curl.arg(&got_path).arg(&url);
    common::run_ok(&mut curl);
    // The forwarder rewrites its counters every second.
    std::thread::sleep(Duration::from_millis(1500));
    let impaired = sandbox::impair_stats(&name).expect("forwarder counters");
    let stats = server.stop();

    let got = std::fs::read(&got_path).expect("downloaded file");
    let _ = std::fs::remove_file(&got_path);
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(got.len(), BYTES, "downloaded length");
    assert!(got == body, "the download differs from the file");

    common::assert_frames_ok(&stats);
    eprintln!("forwarder: {impaired}");
    let engine = |k: &str| common::total(&stats, &format!("/engine/{k}"));
    eprintln!(
        "stack: ECN negotiated {}, CE received {}, ECE reductions {}, retransmits {}, \
         recoveries {}",
        engine("tcp_ecn_negotiated"),
        engine("tcp_ecn_ce_received"),
        engine("tcp_ecn_reductions"),
        engine("tcp_retransmits"),
        engine("tcp_recoveries"),
    );
    // The download's connection (and the readiness probe's) negotiated ECN.
    assert!(engine("tcp_ecn_negotiated") >= 1, "{stats:#}");
    // The stack's data was ECN-capable and the bottleneck marked it.
    let marked = common::num(&impaired, "/to_client/ce_marked");
    assert!(marked > 0, "nothing marked toward the client: {impaired:#}");
    // The kernel echoed the marks and the stack reduced its window for them.
    assert!(engine("tcp_ecn_reductions") > 0, "{stats:#}");
    // Marking kept the queue short of its 100 ms tail drop.
    assert_eq!(
        common::num(&impaired, "/to_client/queue_dropped"),
        0,
        "{impaired:#}"
    );

    drop(sb);
    let left = common::netns_list();
    assert!(
        !left.iter().any(|ns| ns.contains(&name)),
        "left behind: {left:?}"
    );
    eprintln!("ECN download test took {:.1?}", started.elapsed());
}
