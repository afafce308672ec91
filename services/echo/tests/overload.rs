//! Issue 20: after an overload burst that leaves connections half-done or
//! reset (`stack::testing::Burst`), the next TCP clients of `EchoApp` are
//! served at once: no state outlives its connection. In memory, no root.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use echod::{EchoApp, EchoArgs};
use runtime::server::WorkerCtx;
use stack::testing::{engine_net, with_app, Burst};

#[test]
fn a_burst_left_half_done_does_not_lock_the_next_clients_out() {
    let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
    let args = EchoArgs {
        port: 7,
        max_conns: 8,
        idle_timeout: std::time::Duration::from_secs(60),
        attached: Default::default(),
    };
    let mut net = with_app(engine_net(|_| {}), |engine| {
        EchoApp::new(&ctx, engine, &args).unwrap()
    });
    let mut burst = Burst::start(&mut net, 7, 4);
    burst.then_serve(&mut net, 8, b"ping", 4, |app| app.json().to_string());
    let c = net.server.app.json();
    assert_eq!(c["rejected_max_conns"], 0, "{c}");
    assert_eq!(c["ended"], 2, "{c}");
    assert_eq!(c["evicted"], 6, "{c}");
}
