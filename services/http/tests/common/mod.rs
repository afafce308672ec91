//! What the in-memory service tests share: the arguments of a small server,
//! and a client on the far end of the engine's wire.

// Each test crate uses what it needs of this module.
#![allow(dead_code)]

use httpd::{HttpApp, HttpArgs};
use smoltcp::iface::SocketHandle;
use stack::testing::EngineNet;
use testkit::MemClient;

/// The defaults with a small server's limits: port 80, a backlog of 64, the
/// fixed body `OK\n` (or `root`), bodies of at most 10,000 bytes, `max_conns`
/// connections, no `/stats`, the test subnet as the server's own.
pub fn small_args(root: Option<std::path::PathBuf>, max_conns: usize) -> HttpArgs {
    let mut a = HttpArgs::defaults();
    a.port = 80;
    a.backlog = 64;
    a.body = "OK\n".into();
    a.root = root;
    a.max_root_bytes = 1 << 20;
    a.max_body = 10_000;
    a.max_conns = max_conns;
    a.stats = httpd::stats::parse_stats_path("off").unwrap();
    a.local_addrs = (Some((testkit::SERVER_IP4, 24)), None);
    a
}

/// A TCP client of the server at `testkit::SERVER_IP4:80`, keeping what it
/// received in `got`.
pub struct Client {
    pub h: SocketHandle,
    pub got: Vec<u8>,
}

impl Client {
    /// Connected from `port`, with the client's default buffers.
    pub fn connect(net: &mut EngineNet<HttpApp>, port: u16) -> Client {
        let h = net.client.connect(port, (testkit::SERVER_IP4, 80));
        Self::established(net, h)
    }

    /// Connected from `port`, with buffers of `buf` bytes.
    pub fn connect_buf(net: &mut EngineNet<HttpApp>, port: u16, buf: usize) -> Client {
        let s = MemClient::tcp_socket(buf);
        let h = net.client.connect_with(s, port, (testkit::SERVER_IP4, 80));
        Self::established(net, h)
    }

    fn established(net: &mut EngineNet<HttpApp>, h: SocketHandle) -> Client {
        net.run_until(200, "connected", |n| n.client.tcp(h).may_send());
        Client { h, got: Vec::new() }
    }

    /// Sends all of `data` and waits until the server acknowledged it.
    pub fn send(&mut self, net: &mut EngineNet<HttpApp>, data: &[u8]) {
        let mut at = 0;
        net.run_until(2000, "sent", |n| {
            let s = n.client.tcp(self.h);
            if s.can_send() && at < data.len() {
                at += s.send_slice(&data[at..]).unwrap();
            }
            at == data.len() && s.send_queue() == 0
        });
    }

    /// Keeps what arrived.
    pub fn pump(&mut self, net: &mut EngineNet<HttpApp>) {
        let s = net.client.tcp(self.h);
        while s.can_recv() {
            s.recv(|b| {
                self.got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
    }

    /// Runs `rounds` rounds, keeping what arrives.
    pub fn read(&mut self, net: &mut EngineNet<HttpApp>, rounds: usize) -> &[u8] {
        for _ in 0..rounds {
            net.run(1);
            self.pump(net);
        }
        &self.got
    }
}
