//! xdpstack-tokio against a fake daemon, in memory and without root: a
//! control socket in a temporary directory answered by a thread (hello with
//! one channel and its doorbells, binds with ids, refusals below port
//! 1024), and the daemon's end of the channel played by the test's script
//! (connections offered, bytes, ends, send credit; the process's records
//! read back). The tokio side is the crate as an application uses it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use attach::proto::{self, Reply, Request};
use nic::shm::{send_with_fds, Channel, RingRx, RingTx, Side};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xdpstack_tokio::{Error, Stack};

const PEER: &str = "192.0.2.9:4000";

/// The daemon's side of one attached process.
struct Fake {
    dir: PathBuf,
    path: PathBuf,
    chan: Channel,
    tx: RingTx,
    rx: RingRx,
    bell: Arc<EventFd>,
    /// Listener ids the control thread handed out.
    binds: mpsc::Receiver<u64>,
    /// The daemon's end of the control connection, once accepted.
    control: mpsc::Receiver<UnixStream>,
    ctl: Option<UnixStream>,
    rec: Vec<u8>,
}

/// What the process sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    kind: u8,
    id: u64,
    data: Vec<u8>,
}

impl Fake {
    /// A control socket served by a thread, a channel with rings of `ring`
    /// bytes.
    fn new(ring: usize) -> Fake {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xs-tokio-fake-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let chan = Channel::create("xdpstack-tokio-fake", ring).unwrap();
        let (tx, rx) = chan.split(Side::Daemon);
        let bell =
            Arc::new(EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap());
        let core_bell =
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap();
        let (bind_tx, binds) = mpsc::channel();
        let (ctl_tx, control) = mpsc::channel();
        let (c2, b2) = (chan.clone(), bell.clone());
        std::thread::spawn(move || {
            let Ok((s, _)) = listener.accept() else {
                return;
            };
            let _ = ctl_tx.send(s.try_clone().unwrap());
            let mut w = s.try_clone().unwrap();
            let mut next = 7u64;
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { return };
                let req: Request = serde_json::from_str(&line).unwrap();
                let (reply, fds) = match req {
                    Request::Hello => (
                        Reply {
                            ok: true,
                            cores: Some(1),
                            ..Reply::default()
                        },
                        true,
                    ),
                    Request::Listen(b) | Request::UdpBind(b) if b.port < 1024 => (
                        Reply::err(format!(
                            "port {}: binding below 1024 needs CAP_NET_BIND_SERVICE",
                            b.port
                        )),
                        false,
                    ),
                    Request::Listen(_) | Request::UdpBind(_) => {
                        next += 1;
                        let _ = bind_tx.send(next);
                        (
                            Reply {
                                ok: true,
                                listener: Some(next),
                                ..Reply::default()
                            },
                            false,
                        )
                    }
                    Request::Drain { .. } => (
                        Reply {
                            ok: true,
                            ..Reply::default()
                        },
                        false,
                    ),
                };
                let mut out = serde_json::to_vec(&reply).unwrap();
                out.push(b'\n');
                if fds {
                    send_with_fds(w.as_fd(), &out, &[c2.fd(), b2.as_fd(), core_bell.as_fd()])
                        .unwrap();
                } else if w.write_all(&out).is_err() {
                    return;
                }
            }
        });
        Fake {
            dir,
            path,
            chan,
            tx,
            rx,
            bell,
            binds,
            control,
            ctl: None,
            rec: Vec::new(),
        }
    }

    /// The next listener id bound (waits for the bind).
    fn bound(&self) -> u64 {
        self.binds
            .recv_timeout(Duration::from_secs(10))
            .expect("a bind")
    }

    /// Push a record, publish it and ring the process if it sleeps.
    fn push(&mut self, kind: u8, id: u64, parts: &[&[u8]]) -> bool {
        if !self.tx.push(kind, id, parts) {
            return false;
        }
        self.tx.publish();
        if self.chan.peer_sleeping(Side::Daemon) {
            let _ = self.bell.write(1);
        }
        true
    }

    /// Offer connection `id` on listener `lid`.
    fn offer(&mut self, lid: u64, id: u64) {
        let peer = proto::encode_peer(Some(PEER.parse().unwrap()));
        assert!(self.push(proto::ACCEPTED, id, &[&lid.to_le_bytes(), &peer]));
    }

    /// The records the process published so far.
    fn take(&mut self, out: &mut Vec<Rec>) {
        while let Some(r) = self.rx.pop(&mut self.rec).expect("a sound ring") {
            out.push(Rec {
                kind: r.kind,
                id: r.id,
                data: self.rec.clone(),
            });
        }
        self.rx.release();
    }

    /// Take records until `done` holds for them (10 s at most).
    fn until(&mut self, out: &mut Vec<Rec>, what: &str, done: impl Fn(&[Rec]) -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !done(out) {
            assert!(Instant::now() < end, "{what}: {out:?}");
            self.take(out);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The daemon goes away: its end of the control socket closes.
    fn die(&mut self) {
        let s = self
            .ctl
            .take()
            .or_else(|| self.control.recv_timeout(Duration::from_secs(10)).ok())
            .expect("attached");
        s.shutdown(Shutdown::Both).unwrap();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `script` (the daemon's side) on a thread; the fake comes back with
/// what it returned.
fn script<T: Send + 'static>(
    mut fake: Fake,
    f: impl FnOnce(&mut Fake) -> T + Send + 'static,
) -> std::thread::JoinHandle<(Fake, T)> {
    std::thread::spawn(move || {
        let t = f(&mut fake);
        (fake, t)
    })
}

fn sent(recs: &[Rec], id: u64) -> Vec<u8> {
    recs.iter()
        .filter(|r| r.kind == proto::SEND && r.id == id)
        .flat_map(|r| r.data.iter().copied())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn accept_read_to_the_end_write_and_half_close() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let conn = 3u64 << 32 | 1;
    let daemon = script(fake, move |f| {
        let lid = f.bound();
        f.offer(lid, conn);
        let mut recs = Vec::new();
        f.until(&mut recs, "TAKEN", |r| {
            r.iter().any(|r| r.kind == proto::TAKEN)
        });
        assert!(f.push(proto::DATA, conn, &[b"ping "]));
        assert!(f.push(proto::DATA, conn, &[b"and more"]));
        assert!(f.push(proto::EOF, conn, &[]));
        f.until(&mut recs, "the answer and its FIN", |r| {
            r.iter().any(|r| r.kind == proto::SHUTDOWN)
        });
        // The stream dropped: CLOSE.
        f.until(&mut recs, "CLOSE", |r| {
            r.iter().any(|r| r.kind == proto::CLOSE)
        });
        recs
    });
    let stack = Stack::connect(&path).await.unwrap();
    assert_eq!(stack.cores(), 1);
    let l = stack.bind("0.0.0.0:8080".parse().unwrap()).await.unwrap();
    assert_eq!(l.local_addr().unwrap(), "0.0.0.0:8080".parse().unwrap());
    let (mut s, peer) = l.accept().await.unwrap();
    assert_eq!(peer, PEER.parse::<SocketAddr>().unwrap());
    assert_eq!(s.peer_addr().unwrap(), peer);
    s.set_nodelay(true).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"ping and more");
    // After the peer's FIN we still write (half-close), then ours.
    s.write_all(b"pong").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0);
    let e = s.write_all(b"late").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    drop(s);
    let (_f, recs) = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert_eq!(sent(&recs, conn), b"pong");
    let order: Vec<u8> = recs
        .iter()
        .filter(|r| r.id == conn)
        .map(|r| r.kind)
        .filter(|k| *k != proto::SEND)
        .collect();
    assert_eq!(
        order,
        [proto::TAKEN, proto::SHUTDOWN, proto::CLOSE],
        "{recs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_waits_for_credit_and_ring_room_and_loses_nothing() {
    // 16 KiB rings: a record carries at most 4 KiB, the ring fills at once.
    let fake = Fake::new(16 << 10);
    let path = fake.path.clone();
    let conn = 5u64 << 32 | 2;
    const LEN: usize = (1 << 20) + 17;
    let daemon = script(fake, move |f| {
        let lid = f.bound();
        f.offer(lid, conn);
        let mut recs = Vec::new();
        let mut got = 0usize;
        let mut credited = 0usize;
        let mut most_outstanding = 0usize;
        let mut bytes = Vec::with_capacity(LEN);
        let end = Instant::now() + Duration::from_secs(30);
        let mut turn = 0u64;
        while got < LEN {
            assert!(Instant::now() < end, "stalled at {got} of {LEN}");
            turn += 1;
            // Now and then the daemon is slow: the ring stays full.
            if turn.is_multiple_of(50) {
                std::thread::sleep(Duration::from_millis(5));
            }
            recs.clear();
            f.take(&mut recs);
            for r in &recs {
                if r.kind == proto::SEND && r.id == conn {
                    got += r.data.len();
                    bytes.extend_from_slice(&r.data);
                }
            }
            most_outstanding = most_outstanding.max(got - credited);
            // Credit back in 8 KiB steps, only for what arrived.
            while got - credited >= 8 << 10 || (got == LEN && credited < got) {
                let n = (got - credited).min(8 << 10);
                if !f.push(proto::SENT, conn, &[&(n as u32).to_le_bytes()]) {
                    break;
                }
                credited += n;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        (bytes, most_outstanding)
    });
    let stack = Stack::connect(&path).await.unwrap();
    let l = stack.bind("[::]:9000".parse().unwrap()).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let (r, mut w) = s.into_split();
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&d2).await.unwrap();
        w
    });
    let w = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the write finished")
        .unwrap();
    let (_f, (bytes, most)) = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert!(bytes == data, "the bytes arrived in order, none lost");
    assert!(
        most <= proto::SEND_CREDIT,
        "never more than the credit outstanding: {most}"
    );
    // The halves reunite.
    let s = r.reunite(w).unwrap();
    assert_eq!(s.peer_addr().unwrap(), PEER.parse().unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn the_daemon_gone_fails_a_pending_accept_and_read() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let conn = 9u64 << 32 | 1;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let daemon = script(fake, move |f| {
        let lid = f.bound();
        f.offer(lid, conn);
        let _ = f.bound(); // the UDP socket
        go_rx.recv().unwrap();
        f.die();
    });
    let stack = Stack::connect(&path).await.unwrap();
    let l = stack.bind("0.0.0.0:8080".parse().unwrap()).await.unwrap();
    let (mut s, _) = l.accept().await.unwrap();
    let u = stack
        .bind_udp("0.0.0.0:53000".parse().unwrap())
        .await
        .unwrap();
    let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
    let read = tokio::spawn(async move {
        let mut b = [0u8; 16];
        s.read(&mut b).await.map(|_| ())
    });
    let recv = tokio::spawn(async move {
        let mut b = [0u8; 16];
        u.recv_from(&mut b).await.map(|_| ())
    });
    tokio::task::yield_now().await;
    go_tx.send(()).unwrap();
    for (what, h) in [("accept", accept), ("read", read), ("recv_from", recv)] {
        let e = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap_or_else(|_| panic!("{what} hangs"))
            .unwrap()
            .expect_err(what);
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionAborted,
            "{what}: {e}"
        );
        assert!(
            matches!(
                e.get_ref().and_then(|i| i.downcast_ref::<Error>()),
                Some(Error::DaemonGone)
            ),
            "{what}: {e}"
        );
        assert!(e.to_string().contains("daemon is gone"), "{e}");
    }
    daemon.join().unwrap();
    // Later calls fail the same way, at once.
    let e = stack
        .bind("0.0.0.0:8081".parse().unwrap())
        .await
        .expect_err("bind after the end");
    assert!(!e.to_string().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_bind_says_why() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let stack = Stack::connect(&path).await.unwrap();
    let e = stack
        .bind("0.0.0.0:80".parse().unwrap())
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("CAP_NET_BIND_SERVICE"), "{e}");
    drop(fake);
}

#[tokio::test(flavor = "current_thread")]
async fn udp_datagrams_both_ways() {
    let fake = Fake::new(1 << 17);
    let path = fake.path.clone();
    let daemon = script(fake, move |f| {
        let id = f.bound();
        let from = proto::encode_peer(Some(PEER.parse().unwrap()));
        let to = proto::encode_ip(Some("198.18.0.1".parse().unwrap()));
        for i in 0..20u8 {
            assert!(f.push(proto::DGRAM, id, &[&from, &to, &[i; 100]]));
        }
        let mut recs = Vec::new();
        f.until(&mut recs, "20 datagrams back", |r| {
            r.iter().filter(|r| r.kind == proto::SENDTO).count() == 20
        });
        (id, recs)
    });
    let stack = Stack::connect(&path).await.unwrap();
    let u = stack
        .bind_udp("0.0.0.0:5353".parse().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..20u8 {
        let (n, from) = u.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (100, PEER.parse().unwrap()));
        assert!(buf[..n].iter().all(|b| *b == i));
        u.send_to(&buf[..n], from).await.unwrap();
    }
    let (_f, (id, recs)) = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    for (i, r) in recs.iter().filter(|r| r.kind == proto::SENDTO).enumerate() {
        assert_eq!(r.id, id);
        assert_eq!(proto::decode_peer(&r.data), Some(PEER.parse().unwrap()));
        let payload = &r.data[proto::PEER_LEN + proto::IP_LEN..];
        assert_eq!(payload, &[i as u8; 100][..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tasks_accept_on_one_listener() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let daemon = script(fake, move |f| {
        let lid = f.bound();
        go_rx.recv().unwrap();
        for i in 1..=4u64 {
            f.offer(lid, 11u64 << 32 | i);
        }
        let mut recs = Vec::new();
        f.until(&mut recs, "4 taken", |r| {
            r.iter().filter(|r| r.kind == proto::TAKEN).count() == 4
        });
    });
    let stack = Stack::connect(&path).await.unwrap();
    let l = Arc::new(stack.bind("0.0.0.0:8080".parse().unwrap()).await.unwrap());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move { l.accept().await.map(|(s, _)| s) })
        })
        .collect();
    // Every task waits in accept before the connections come.
    tokio::time::sleep(Duration::from_millis(50)).await;
    go_tx.send(()).unwrap();
    let mut streams = Vec::new();
    for t in tasks {
        let s = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("every acceptor gets one")
            .unwrap()
            .unwrap();
        streams.push(s);
    }
    tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
}

/// The receive window: the process announces it with TAKEN, returns it
/// (READ) only as the application reads, so the daemon (which never has
/// more than the window delivered and unread) stops feeding a connection
/// the application does not read; the daemon's address of the connection
/// is its `local_addr`; port 0 takes an ephemeral port.
#[tokio::test(flavor = "current_thread")]
async fn the_receive_window_goes_back_only_as_the_application_reads() {
    let fake = Fake::new(1 << 20);
    let path = fake.path.clone();
    let conn = 9u64 << 32 | 4;
    const LEN: usize = 4 << 20;
    let local: SocketAddr = "198.18.0.1:8080".parse().unwrap();
    let (go_tx, go) = mpsc::channel::<()>();
    let daemon = script(fake, move |f| {
        let lid = f.bound();
        let peer = proto::encode_peer(Some(PEER.parse().unwrap()));
        assert!(f.push(
            proto::ACCEPTED,
            conn,
            &[&lid.to_le_bytes(), &peer, &proto::encode_peer(Some(local))]
        ));
        let mut recs = Vec::new();
        f.until(&mut recs, "TAKEN", |r| {
            r.iter().any(|r| r.kind == proto::TAKEN)
        });
        let taken = recs.iter().find(|r| r.kind == proto::TAKEN).unwrap();
        let window = u32::from_le_bytes(taken.data[..4].try_into().unwrap()) as usize;
        assert_eq!(window, proto::RECV_WINDOW);
        // The daemon's rule: never more than the window delivered and not
        // read back.
        let (mut delivered, mut returned) = (0usize, 0usize);
        let mut stalled_without_read = false;
        let end = Instant::now() + Duration::from_secs(30);
        while delivered < LEN {
            assert!(Instant::now() < end, "stalled at {delivered} of {LEN}");
            recs.clear();
            f.take(&mut recs);
            for r in recs
                .iter()
                .filter(|r| r.kind == proto::READ && r.id == conn)
            {
                returned += u32::from_le_bytes(r.data[..4].try_into().unwrap()) as usize;
            }
            assert!(returned <= delivered, "{returned} returned of {delivered}");
            let room = window - (delivered - returned);
            if room == 0 && !stalled_without_read {
                // The application reads nothing yet: the window stays
                // used up, nothing comes back.
                std::thread::sleep(Duration::from_millis(50));
                recs.clear();
                f.take(&mut recs);
                assert!(
                    !recs.iter().any(|r| r.kind == proto::READ),
                    "READ before the application read: {recs:?}"
                );
                stalled_without_read = true;
                go_tx.send(()).unwrap();
            }
            let n = room.min(LEN - delivered).min(4000);
            if n > 0 {
                let b: Vec<u8> = (delivered..delivered + n).map(|i| i as u8).collect();
                if f.push(proto::DATA, conn, &[&b]) {
                    delivered += n;
                }
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        assert!(f.push(proto::EOF, conn, &[]));
        assert!(stalled_without_read);
    });
    let stack = Stack::connect(&path).await.unwrap();
    let l = stack.bind("0.0.0.0:8080".parse().unwrap()).await.unwrap();
    let (mut s, _) = l.accept().await.unwrap();
    assert_eq!(s.local_addr().unwrap(), local);
    // Not reading until the daemon saw the window used up.
    tokio::task::spawn_blocking(move || go.recv_timeout(Duration::from_secs(30)).unwrap())
        .await
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got.iter().enumerate().all(|(i, b)| *b == i as u8));
    tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    // Port 0: a port of the ephemeral range, told by local_addr.
    let e = stack.bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    let port = e.local_addr().unwrap().port();
    assert!(port >= 49152, "{port}");
}

/// The CONNECT records the process sent: (token, destination, local).
fn connects(recs: &[Rec]) -> Vec<(u64, Option<SocketAddr>, Option<SocketAddr>)> {
    recs.iter()
        .filter(|r| r.kind == proto::CONNECT)
        .map(|r| {
            (
                r.id,
                proto::decode_peer(&r.data),
                r.data.get(proto::PEER_LEN..).and_then(proto::decode_peer),
            )
        })
        .collect()
}

/// Take records until `n` CONNECT records came; their tokens.
fn await_connects(f: &mut Fake, recs: &mut Vec<Rec>, n: usize) -> Vec<u64> {
    f.until(recs, "CONNECT", |r| connects(r).len() >= n);
    connects(recs).into_iter().map(|c| c.0).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn connect_out_then_a_stream_like_an_accepted_one() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let conn = 4u64 << 32 | 3;
    let local: SocketAddr = "198.18.0.1:40001".parse().unwrap();
    let daemon = script(fake, move |f| {
        let mut recs = Vec::new();
        let token = await_connects(f, &mut recs, 1)[0];
        let peer = proto::encode_peer(Some(PEER.parse().unwrap()));
        let ours = proto::encode_peer(Some(local));
        assert!(f.push(
            proto::CONNECTED,
            conn,
            &[&token.to_le_bytes(), &peer, &ours]
        ));
        f.until(&mut recs, "TAKEN", |r| {
            r.iter().any(|r| r.kind == proto::TAKEN && r.id == conn)
        });
        f.until(&mut recs, "the request", |r| sent(r, conn) == b"GET");
        assert!(f.push(proto::DATA, conn, &[b"200"]));
        assert!(f.push(proto::EOF, conn, &[]));
        f.until(&mut recs, "CLOSE", |r| {
            r.iter().any(|r| r.kind == proto::CLOSE && r.id == conn)
        });
        recs
    });
    let stack = Stack::connect(&path).await.unwrap();
    let mut s = stack.connect_tcp(PEER.parse().unwrap()).await.unwrap();
    assert_eq!(s.peer_addr().unwrap(), PEER.parse::<SocketAddr>().unwrap());
    assert_eq!(s.local_addr().unwrap(), local);
    s.write_all(b"GET").await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"200");
    drop(s);
    let (_f, recs) = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    let c = connects(&recs);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, Some(PEER.parse().unwrap()));
    assert_eq!(c[0].2, None, "no local address asked for");
}

#[tokio::test(flavor = "current_thread")]
async fn connect_failures_have_their_error_kinds() {
    use proto::ConnectFailure as F;
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let cases = [
        (F::Refused, std::io::ErrorKind::ConnectionRefused),
        (F::TimedOut, std::io::ErrorKind::TimedOut),
        (F::Unreachable, std::io::ErrorKind::HostUnreachable),
        (F::AddrInUse, std::io::ErrorKind::AddrNotAvailable),
        (F::Invalid, std::io::ErrorKind::InvalidInput),
    ];
    let daemon = script(fake, move |f| {
        let mut recs = Vec::new();
        for (i, (why, _)) in cases.iter().enumerate() {
            let token = await_connects(f, &mut recs, i + 1)[i];
            let msg = format!("{why:?} for the test");
            assert!(f.push(
                proto::CONNECT_FAILED,
                token,
                &[&[why.code()], msg.as_bytes()]
            ));
        }
    });
    let stack = Stack::connect(&path).await.unwrap();
    for (why, kind) in cases {
        let e = stack
            .connect_tcp(PEER.parse().unwrap())
            .await
            .expect_err("a failure");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(
            e.to_string().contains(&format!("{why:?} for the test")),
            "{e}"
        );
        assert!(
            matches!(
                e.get_ref().and_then(|i| i.downcast_ref::<Error>()),
                Some(Error::Connect { why: w, .. }) if *w == why
            ),
            "{e}"
        );
    }
    daemon.join().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_connect_given_up_is_aborted_and_the_daemon_gone_fails_one_waiting() {
    let fake = Fake::new(1 << 16);
    let path = fake.path.clone();
    let conn = 6u64 << 32 | 1;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let daemon = script(fake, move |f| {
        let mut recs = Vec::new();
        let first = await_connects(f, &mut recs, 1)[0];
        go_rx.recv().unwrap();
        // Given up: the process tells the daemon to stop opening it.
        f.until(&mut recs, "CANCEL_CONNECT", |r| {
            r.iter()
                .any(|r| r.kind == proto::CANCEL_CONNECT && r.id == first)
        });
        // Answered anyway (on its way before the cancel): the process
        // aborts the connection.
        let peer = proto::encode_peer(Some(PEER.parse().unwrap()));
        assert!(f.push(
            proto::CONNECTED,
            conn,
            &[&first.to_le_bytes(), &peer, &peer]
        ));
        f.until(&mut recs, "ABORT", |r| {
            r.iter().any(|r| r.kind == proto::ABORT && r.id == conn)
        });
        // A second connect waits; the daemon goes away under it.
        await_connects(f, &mut recs, 2);
        f.die();
        recs
    });
    let stack = Stack::connect(&path).await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        stack.connect_tcp(PEER.parse().unwrap()),
    )
    .await;
    assert!(gave_up.is_err(), "no answer yet");
    go_tx.send(()).unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        stack.connect_tcp(PEER.parse().unwrap()),
    )
    .await
    .expect("the connect hangs")
    .expect_err("the daemon went away");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted, "{e}");
    assert!(e.to_string().contains("daemon is gone"), "{e}");
    let (_f, recs) = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert!(!recs.iter().any(|r| r.kind == proto::TAKEN), "{recs:?}");
}
