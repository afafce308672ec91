//! Issue 20: after an overload burst that leaves connections half-done or
//! reset (`stack::testing::Burst`), the next clients of `HttpApp` are served
//! at once: no state outlives its connection. In memory, no root.

mod common;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use httpd::{load_site, HttpApp};
use runtime::server::WorkerCtx;
use stack::testing::{engine_net, with_app, Burst};

#[test]
fn a_burst_left_half_done_does_not_lock_the_next_clients_out() {
    let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
    let mut args = common::small_args(None, 8);
    args.body = "hi\n".into();
    args.max_body = 1 << 20;
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
