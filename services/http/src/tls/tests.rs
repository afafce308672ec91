//! The TLS glue over byte buffers: a rustls client on one side, [`Io`] over
//! a fake socket API on the other; no engine, no wire. The turn's budget,
//! the handshake's one flight per turn, back-pressure from a full send
//! buffer, and close_notify held back until the socket takes it.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use stack::engine::ListenerId;
use stack::reuseport::{BindAddr, BindOptions, MemberId};
use stack::socket::{ConnEnd, ConnError, ConnId, TcpApi};

use super::{Layer, TlsShared, READS_PER_TURN};

/// One connection's two byte streams, and a send buffer of `room` bytes.
#[derive(Default)]
struct Pipe {
    /// Client to server, not read yet.
    rx: Vec<u8>,
    /// Server to client, not taken by the client yet.
    tx: Vec<u8>,
    room: usize,
    recv_calls: usize,
    closed: bool,
    aborted: bool,
}

impl TcpApi for Pipe {
    type Error = String;
    fn tcp_listen(&mut self, _: BindAddr, _: u16, _: BindOptions) -> Result<ListenerId, String> {
        Err("no listeners".into())
    }
    fn set_selector(&mut self, _: MemberId, _: Arc<dyn stack::reuseport::Selector>) {}
    fn accept(&mut self, _: ListenerId) -> Option<ConnId> {
        None
    }
    fn pending(&self, _: ListenerId) -> usize {
        0
    }
    fn drain(&mut self, _: ListenerId) -> Result<(), String> {
        Ok(())
    }
    fn close_listener(&mut self, _: ListenerId) -> Result<(), String> {
        Ok(())
    }
    fn recv(&mut self, _: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        self.recv_calls += 1;
        let n = buf.len().min(self.rx.len());
        buf[..n].copy_from_slice(&self.rx[..n]);
        self.rx.drain(..n);
        Ok(n)
    }
    fn send(&mut self, _: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let n = data.len().min(self.room.saturating_sub(self.tx.len()));
        self.tx.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn peer_addr(&mut self, _: ConnId) -> Option<std::net::SocketAddr> {
        None
    }
    fn shutdown(&mut self, _: ConnId) -> Result<(), ConnError> {
        Ok(())
    }
    fn close(&mut self, _: ConnId) {
        self.closed = true;
    }
    fn abort(&mut self, _: ConnId) {
        self.aborted = true;
    }
    fn set_ready_tracking(&mut self, _: bool) {}
    fn take_ready(&mut self, _: &mut Vec<ConnId>) {}
    fn take_ended(&mut self, _: &mut Vec<(ConnId, ConnEnd)>) {}
    fn connections(&self) -> usize {
        1
    }
    fn abort_all(&mut self) {}
    fn report(&self) -> Option<stack::shared::StackReport> {
        None
    }
}

fn id() -> ConnId {
    ConnId::new(3, 1)
}

fn layer_and_client() -> (Layer, ClientConnection) {
    let ck = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xdpstack-tls-unit-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("a.pem"), dir.join("a.key"));
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.key_pair.serialize_pem()).unwrap();
    let shared = TlsShared::load(&[c], &[k], 16).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ck.cert.der().to_vec()))
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut client =
        ClientConnection::new(Arc::new(cfg), ServerName::try_from("a.test").unwrap()).unwrap();
    client.set_buffer_limit(None);
    let mut layer = Layer::new(shared);
    assert!(layer.accept(id()));
    (layer, client)
}

/// Client records into the pipe.
fn to_server(client: &mut ClientConnection, pipe: &mut Pipe) {
    while client.wants_write() {
        client.write_tls(&mut pipe.rx).unwrap();
    }
}

/// Server records into the client; its plaintext.
fn to_client(client: &mut ClientConnection, pipe: &mut Pipe) -> Vec<u8> {
    let data = std::mem::take(&mut pipe.tx);
    let mut rd = &data[..];
    let mut out = Vec::new();
    while !rd.is_empty() {
        client.read_tls(&mut rd).unwrap();
        client.process_new_packets().unwrap();
        let _ = client.reader().read_to_end(&mut out);
    }
    out
}

/// One service turn that only reads: the plaintext it got.
fn turn(layer: &mut Layer, pipe: &mut Pipe) -> (Vec<u8>, Result<usize, ConnError>) {
    let mut io = layer.io(pipe, id()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        match io.recv(id(), &mut buf) {
            Ok(0) => break Ok(0),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            e => break e,
        }
    };
    layer.after(id(), true, Instant::now());
    (got, end)
}

fn handshake(layer: &mut Layer, client: &mut ClientConnection, pipe: &mut Pipe) {
    for _ in 0..10 {
        to_server(client, pipe);
        let _ = turn(layer, pipe);
        to_client(client, pipe);
        if !client.is_handshaking() && layer.conn(id()).unwrap().established() {
            return;
        }
    }
    panic!("no handshake");
}

#[test]
fn handshake_then_one_flight_per_turn_and_a_bounded_read() {
    let (mut layer, mut client) = layer_and_client();
    let mut pipe = Pipe {
        room: 1 << 20,
        ..Pipe::default()
    };
    // The ClientHello: one flight answered, then the turn ends (visited
    // again next poll in case more of a split flight waits).
    to_server(&mut client, &mut pipe);
    let (got, end) = turn(&mut layer, &mut pipe);
    assert!(got.is_empty() && end == Ok(0));
    assert!(!pipe.tx.is_empty(), "no server flight");
    let mut again = Vec::new();
    layer.take_again(&mut again);
    assert_eq!(again, [id()]);
    handshake(&mut layer, &mut client, &mut pipe);
    assert_eq!(layer.counters.handshakes, 1);
    assert_eq!(layer.counters.tls13, 1);

    // 300 KiB of records at once: one turn reads at most its budget.
    let req = [b'x'; 1000];
    for _ in 0..300 {
        client.writer().write_all(&req).unwrap();
    }
    to_server(&mut client, &mut pipe);
    let total = pipe.rx.len();
    let (got, end) = turn(&mut layer, &mut pipe);
    assert_eq!(end, Ok(0));
    assert!(
        total - pipe.rx.len() <= READS_PER_TURN * 4096,
        "read {} of {total}",
        total - pipe.rx.len()
    );
    assert!(!got.is_empty());
    let mut again = Vec::new();
    layer.take_again(&mut again);
    assert_eq!(again, [id()]);
    assert_eq!(layer.counters.budget_exhausted, 1);
    // Further turns take the rest, every byte in order.
    let mut all = got;
    for _ in 0..20 {
        all.extend(turn(&mut layer, &mut pipe).0);
    }
    assert_eq!(all.len(), 300 * 1000);
    assert!(pipe.rx.is_empty());
}

#[test]
fn a_full_send_buffer_holds_records_then_close_notify_lingers() {
    let (mut layer, mut client) = layer_and_client();
    let mut pipe = Pipe {
        room: 1 << 20,
        ..Pipe::default()
    };
    handshake(&mut layer, &mut client, &mut pipe);
    // Room for 10 KB only: a 100 KB response goes out as it is taken.
    pipe.room = 10_000;
    let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..1000 {
        let mut io = layer.io(&mut pipe, id()).unwrap();
        while sent < body.len() {
            match io.send(id(), &body[sent..]).unwrap() {
                0 => break,
                n => sent += n,
            }
        }
        let done = sent == body.len();
        if done {
            io.close(id());
        }
        layer.after(id(), !done, Instant::now());
        got.extend(to_client(&mut client, &mut pipe));
        if done {
            break;
        }
    }
    assert_eq!(sent, body.len());
    // Closed by the service, records left: the engine is not closed yet.
    assert!(layer.lingering());
    assert!(!pipe.closed);
    for _ in 0..100 {
        layer.flush_lingering(&mut pipe, Instant::now(), Duration::from_secs(30));
        got.extend(to_client(&mut client, &mut pipe));
        if pipe.closed {
            break;
        }
    }
    assert!(pipe.closed && !layer.lingering());
    assert_eq!(got, body);
    // The client saw close_notify: a clean end of stream.
    assert_eq!(client.reader().read(&mut [0u8; 8]).unwrap(), 0);
    assert!(!layer.has(id()));
}

#[test]
fn a_lingering_close_that_never_drains_is_reset() {
    let (mut layer, mut client) = layer_and_client();
    let mut pipe = Pipe {
        room: 1 << 20,
        ..Pipe::default()
    };
    handshake(&mut layer, &mut client, &mut pipe);
    pipe.room = pipe.tx.len();
    let mut io = layer.io(&mut pipe, id()).unwrap();
    assert_eq!(io.send(id(), b"HTTP/1.1 200 OK\r\n\r\n"), Ok(19));
    io.close(id());
    let t0 = Instant::now();
    layer.after(id(), false, t0);
    layer.forget(id());
    assert!(layer.lingering());
    layer.flush_lingering(
        &mut pipe,
        t0 + Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert!(layer.lingering() && !pipe.aborted);
    layer.flush_lingering(
        &mut pipe,
        t0 + Duration::from_secs(31),
        Duration::from_secs(30),
    );
    assert!(!layer.lingering() && pipe.aborted && !pipe.closed);
}

#[test]
fn garbage_is_an_alert_and_no_plaintext() {
    let (mut layer, _) = layer_and_client();
    let mut pipe = Pipe {
        room: 1 << 20,
        rx: b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ..Pipe::default()
    };
    let (got, end) = turn(&mut layer, &mut pipe);
    assert!(got.is_empty());
    assert_eq!(end, Err(ConnError::Closed));
    assert_eq!(pipe.tx.first(), Some(&21), "an alert record");
    assert_eq!(layer.counters.alerts_sent, 1);
    let mut io = layer.io(&mut pipe, id()).unwrap();
    assert_eq!(io.send(id(), b"x"), Err(ConnError::Closed));
    io.close(id());
    layer.after(id(), false, Instant::now());
    assert!(pipe.closed);
    assert_eq!(layer.counters.handshakes_failed, 1);
}

#[test]
fn handshake_flights_past_the_poll_limit_wait_for_the_next_poll() {
    let (mut layer, mut client) = layer_and_client();
    let mut pipe = Pipe {
        room: 1 << 20,
        ..Pipe::default()
    };
    to_server(&mut client, &mut pipe);
    // The poll's flights are used up by others.
    layer.flights = super::HANDSHAKES_PER_POLL;
    let _ = turn(&mut layer, &mut pipe);
    assert!(pipe.tx.is_empty(), "a flight past the limit");
    assert_eq!(layer.counters.handshakes_deferred, 1);
    assert!(!pipe.rx.is_empty());
    // Visited again at the next poll, where it goes ahead.
    let next = layer.end_poll(
        &mut pipe,
        Instant::now(),
        Duration::from_secs(1),
        Instant::now(),
    );
    assert!(next.is_some());
    let mut again = Vec::new();
    layer.take_again(&mut again);
    assert_eq!(again, [id()]);
    let _ = turn(&mut layer, &mut pipe);
    assert!(!pipe.tx.is_empty());
    assert_eq!(layer.flights, 1);
    handshake(&mut layer, &mut client, &mut pipe);
}
