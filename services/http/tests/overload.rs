//! Issue 20: after an overload burst that leaves connections half-done or
//! reset (`stack::testing::Burst`), the next clients of `HttpApp` are served
//! at once: no state outlives its connection. In memory, no root.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use httpd::{load_site, HttpApp, HttpArgs};
use runtime::server::WorkerCtx;
use stack::testing::{engine_net, with_app, Burst};

const SERVER: std::net::Ipv4Addr = testkit::SERVER_IP4;

#[test]
fn a_burst_left_half_done_does_not_lock_the_next_clients_out() {
    let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
    let args = HttpArgs {
        port: 80,
        tls: Default::default(),
        backlog: 64,
        body: "hi\n".into(),
        root: None,
        max_root_bytes: 1 << 20,
        max_file_in_memory: 1 << 20,
        access_log: None,
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(10),
        max_header: 16 * 1024,
        max_body: 1 << 20,
        max_conns: 8,
        listeners: 1,
        attached: Default::default(),
        stats: httpd::stats::parse_stats_path("off").unwrap(),
        stats_allow: vec![httpd::stats::parse_allow("local").unwrap()],
        local_addrs: (Some((SERVER, 24)), None),
    };
    let site = load_site(&args).unwrap();
    let mut net = with_app(engine_net(|_| {}), |engine| {
        HttpApp::new(&ctx, engine, &args, site).unwrap()
    });
    let mut burst = Burst::start(&mut net, 80, 40);
    let get = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    burst.then_serve(&mut net, 8, get, 20, |app| app.json().to_string());
    let c = net.server.app.json();
    assert_eq!(c["rejected_max_conns"], 0, "{c}");
    assert_eq!(c["ended"], 2, "{c}");
    assert_eq!(c["evicted_idle"], 6, "{c}");
}
