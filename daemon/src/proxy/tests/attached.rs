//! The `attach` crate against the daemon's control thread and proxy, in
//! memory and without root: a control socket in a temporary directory
//! served by `serve_client`, the engine with its proxy in the harness
//! (`stack::testing`), a `MemClient` on the wire, and the attached process
//! played by `attach::Client` over the memfd channels the daemon hands it.
//! Blocking control calls (listen, bind) run on a scoped thread while the
//! test turns the engine, as a worker would.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use attach::{AttachError, Client, Core, DaemonWatch};
use smoltcp::iface::SocketHandle;
use smoltcp::wire::IpAddress;
use stack::reuseport::{BindAddr, BindOptions, HashSelector};
use stack::socket::{ConnId, ListenerId, TcpApi, UdpApi};
use stack::testing::{engine_net, with_app, EngineNet};
use testkit::MemClient;

use crate::proxy::ProxyApp;
use crate::{serve_client, Hub};

const SERVER: std::net::Ipv4Addr = testkit::SERVER_IP4;
const RING: usize = 1 << 20;
const PORT: u16 = 8080;

/// The daemon with one core, a process attached to it, and the wire.
struct Attached {
    net: EngineNet<ProxyApp>,
    core: Core,
    watch: DaemonWatch,
    /// The daemon's end of the control connection.
    control: UnixStream,
    dir: PathBuf,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn attached() -> Attached {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xs-attach-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("control.sock");
    let hub = Arc::new(Hub::new(1, Arc::new(HashSelector), 4));
    // What `run` does for each worker.
    let net = with_app(engine_net(|_| {}), |engine| {
        let _ = hub.shared.set(engine.shared().clone());
        let app = ProxyApp::new(0, hub.clone(), engine);
        hub.registered.fetch_add(1, Ordering::SeqCst);
        app
    });
    // The control thread, serving one process until it goes.
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        tx.send(s.try_clone().unwrap()).unwrap();
        serve_client(s, hub, RING);
    });
    let client = Client::connect(&path).unwrap();
    let control = rx.recv().unwrap();
    let watch = client.watch();
    let mut cores = client.into_cores();
    assert_eq!(cores.len(), 1);
    let core = cores.pop().unwrap();
    assert_eq!(core.index(), 0);
    let mut a = Attached {
        net,
        core,
        watch,
        control,
        dir,
    };
    // The proxy takes the channel on its next turn.
    a.turn();
    a
}

impl Attached {
    /// A worker turn, then the process takes what came and sends what it
    /// queued.
    fn turn(&mut self) {
        self.net.run(1);
        self.core.poll_events();
        self.core.flush();
    }

    /// `f` (a blocking control call) on its own thread while the engine
    /// turns.
    fn blocking<T: Send>(&mut self, f: impl FnOnce(&mut Core) -> T + Send) -> T {
        let (net, core) = (&mut self.net, &mut self.core);
        std::thread::scope(|s| {
            let h = s.spawn(move || f(core));
            let mut turns = 0;
            while !h.is_finished() {
                net.run(1);
                std::thread::yield_now();
                turns += 1;
                assert!(turns < 1_000_000, "the control call never returned");
            }
            h.join().unwrap()
        })
    }

    fn listen(&mut self) -> ListenerId {
        self.blocking(|c| {
            c.tcp_listen(BindAddr::Any4, PORT, opts())
                .expect("listen through the daemon")
        })
    }

    /// A wire connection, accepted by the process.
    fn connection(&mut self, l: ListenerId, sport: u16) -> (SocketHandle, ConnId) {
        let h = self.net.client.connect(sport, (SERVER, PORT));
        for _ in 0..2000 {
            self.turn();
            if let Some(c) = self.core.accept(l) {
                return (h, c);
            }
        }
        panic!("no connection accepted");
    }

    /// Turn until `done` (at most `max` turns).
    fn until(&mut self, max: usize, what: &str, mut done: impl FnMut(&mut Attached) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.turn();
        }
        panic!("not done after {max} turns: {what}");
    }
}

fn opts() -> BindOptions {
    // The daemon takes the uid from the kernel, not from here.
    BindOptions::new(0).with_reuseport(true).with_backlog(16)
}

fn read_all(s: &mut smoltcp::socket::tcp::Socket<'static>, into: &mut Vec<u8>) {
    while s.can_recv() {
        s.recv(|b| {
            into.extend_from_slice(b);
            (b.len(), ())
        })
        .unwrap();
    }
}

#[test]
fn tcp_listen_accept_recv_send_close() {
    let mut a = attached();
    let l = a.listen();
    let (h, c) = a.connection(l, 40000);
    assert_eq!(
        a.core.peer_addr(c),
        Some(SocketAddr::new(testkit::CLIENT_IP4.into(), 40000))
    );
    // The wire to the process.
    a.net.client.tcp(h).send_slice(b"hello").unwrap();
    let mut got = Vec::new();
    a.until(2000, "the process reads the request", |a| {
        let mut buf = [0u8; 64];
        if let Ok(n) = a.core.recv(c, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got == b"hello"
    });
    // The process to the wire.
    assert_eq!(a.core.send(c, b"world"), Ok(5));
    let mut back = Vec::new();
    a.until(2000, "the client reads the answer", |a| {
        read_all(a.net.client.tcp(h), &mut back);
        back == b"world"
    });
    // Closed by the process: the client sees the FIN, then closes too.
    a.core.close(c);
    a.until(2000, "FIN to the client", |a| {
        !a.net.client.tcp(h).may_recv()
    });
    a.net.client.tcp(h).close();
    a.until(2000, "both closed", |a| {
        !a.net.client.tcp(h).is_open() && a.core.connections() == 0
    });
    assert_eq!(
        a.core.send(c, b"late"),
        Err(stack::socket::ConnError::NotFound)
    );
    // The listener closes through the daemon.
    a.blocking(|core| core.close_listener(l)).unwrap();
    a.net.server.engine.check_frames().unwrap();
}

#[test]
fn udp_bind_recv_from_send_to() {
    let mut a = attached();
    let id = a.blocking(|c| c.udp_bind(BindAddr::Any4, 5353, opts()).unwrap());
    let mut s = MemClient::udp_socket(8, 8192);
    s.bind(6000).unwrap();
    let h = a.net.client.sockets.add(s);
    a.net
        .client
        .udp(h)
        .send_slice(b"question", (IpAddress::Ipv4(SERVER), 5353))
        .unwrap();
    let mut from = None;
    a.until(2000, "the datagram reaches the process", |a| {
        let mut buf = [0u8; 64];
        if let Ok(Some((n, peer, to))) = a.core.recv_from(id, &mut buf) {
            assert_eq!(&buf[..n], b"question");
            assert_eq!(to, IpAddr::from(SERVER));
            from = Some(peer);
        }
        from.is_some()
    });
    let peer = from.unwrap();
    assert_eq!(peer, SocketAddr::new(testkit::CLIENT_IP4.into(), 6000));
    a.core.send_to(id, b"answer", peer, None).unwrap();
    let mut answer = None;
    a.until(2000, "the answer reaches the client", |a| {
        if let Ok((data, meta)) = a.net.client.udp(h).recv() {
            answer = Some((data.to_vec(), meta.endpoint.port));
        }
        answer.is_some()
    });
    assert_eq!(answer, Some((b"answer".to_vec(), 5353)));
    a.blocking(|c| c.udp_close(id)).unwrap();
}

/// A peer that does not read: the process's sends are taken only up to its
/// credit, then return at once having taken less (never block); once the
/// peer reads, everything arrives, in order.
#[test]
fn a_slow_reader_pushes_back_without_blocking() {
    let mut a = attached();
    let l = a.listen();
    let (h, c) = a.connection(l, 40001);
    let data = testkit::Rng::new(5).bytes(1 << 20);
    // No turns: the daemon takes nothing meanwhile.
    let mut sent = 0;
    for _ in 0..64 {
        sent += a.core.send(c, &data[sent..]).unwrap();
    }
    assert!(sent > 0 && sent < data.len(), "{sent} taken at once");
    assert_eq!(a.core.send(c, &data[sent..]), Ok(0), "over the credit");
    let mut got = Vec::new();
    a.until(200_000, "everything arrives", |a| {
        if sent < data.len() {
            sent += a.core.send(c, &data[sent..]).unwrap();
        }
        read_all(a.net.client.tcp(h), &mut got);
        got.len() == data.len()
    });
    assert!(got == data, "the bytes arrived changed or out of order");
}

/// The daemon goes away (its end of the control connection closes): the
/// process is told, and control calls fail at once instead of waiting.
#[test]
fn the_daemon_gone_is_an_error_not_a_hang() {
    let mut a = attached();
    let l = a.listen();
    assert!(!a.watch.gone());
    a.control.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(a.watch.gone());
    let err = a.blocking(|c| c.tcp_listen(BindAddr::Any4, PORT + 1, opts()).unwrap_err());
    assert!(
        matches!(err, AttachError::Io(_) | AttachError::Protocol(_)),
        "{err:?}"
    );
    let err = a.blocking(|c| c.drain(l).unwrap_err());
    assert!(
        matches!(err, AttachError::Io(_) | AttachError::Protocol(_)),
        "{err:?}"
    );
    // The daemon's side detaches the process on every core.
    a.until(2000, "detached", |a| {
        a.net.server.app.counters.detached == 1
    });
}
