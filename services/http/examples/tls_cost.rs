//! Server-side cost of one keep-alive HTTPS request with rustls's two APIs,
//! in memory (no socket, no engine): the buffered `ServerConnection` driven
//! by `read_tls`/`write_tls` over byte buffers (what `tls::Io` does), and
//! the unbuffered `UnbufferedServerConnection` decrypting in place in the
//! caller's buffer and encrypting straight into it. Both take the request's
//! records from a buffer (the engine's receive copy), hand the plaintext to
//! a scratch buffer (what the parser reads), encrypt a 171-byte response and
//! append its records to a buffer (the engine's send copy). A rustls client
//! makes the requests and reads the responses, outside the timed part.
//!
//!   cargo run --release -p xdpstack-http --example tls_cost [REQUESTS] [ROUNDS]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: xdpstack\r\nDate: Mon, 07 Dec 2026 10:40:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nhello from xdpstack\n";

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["bench.test".to_string()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let mut s = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    s.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(s), Arc::new(c))
}

fn client(cfg: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(cfg.clone(), ServerName::try_from("bench.test").unwrap()).unwrap()
}

/// Client records out.
fn client_out(c: &mut ClientConnection, wire: &mut Vec<u8>) {
    while c.wants_write() {
        c.write_tls(wire).unwrap();
    }
}

/// Records into the client; the plaintext bytes it got.
fn client_in(c: &mut ClientConnection, wire: &mut Vec<u8>) -> usize {
    let mut rd = &wire[..];
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
        while let Ok(n) = c.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
    }
    wire.clear();
    got
}

/// One turn of the buffered server: records in, plaintext out, the
/// response (if any plaintext came) encrypted and its records appended.
fn buffered_turn(
    s: &mut ServerConnection,
    wire_in: &mut Vec<u8>,
    wire_out: &mut Vec<u8>,
    scratch: &mut [u8],
) {
    let mut rd = &wire_in[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).unwrap();
        s.process_new_packets().unwrap();
    }
    wire_in.clear();
    let mut got = 0;
    while let Ok(n) = s.reader().read(&mut scratch[got..]) {
        if n == 0 {
            break;
        }
        got += n;
    }
    if got > 0 {
        s.writer().write_all(RESPONSE).unwrap();
    }
    while s.wants_write() {
        s.write_tls(wire_out).unwrap();
    }
}

/// The same with the unbuffered API: `incoming` is the connection's own
/// receive buffer (records copied in from the engine), `out` its reusable
/// record buffer.
fn unbuffered_turn(
    s: &mut UnbufferedServerConnection,
    incoming: &mut Vec<u8>,
    wire_in: &mut Vec<u8>,
    wire_out: &mut Vec<u8>,
    out: &mut Vec<u8>,
    scratch: &mut [u8],
) {
    incoming.extend_from_slice(wire_in);
    wire_in.clear();
    let mut got = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = s.process_tls_records(incoming);
        match state.unwrap() {
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(rec) = r.next_record() {
                    let rec = rec.unwrap();
                    discard += rec.discard;
                    scratch[got..got + rec.payload.len()].copy_from_slice(rec.payload);
                    got += rec.payload.len();
                }
            }
            ConnectionState::EncodeTlsData(mut e) => {
                let n = loop {
                    match e.encode(out) {
                        Ok(n) => break n,
                        Err(EncodeError::InsufficientSize(i)) => out.resize(i.required_size, 0),
                        Err(err) => panic!("{err}"),
                    }
                };
                wire_out.extend_from_slice(&out[..n]);
            }
            ConnectionState::TransmitTlsData(t) => t.done(),
            ConnectionState::WriteTraffic(mut w) => {
                if got > 0 {
                    let n = loop {
                        match w.encrypt(RESPONSE, out) {
                            Ok(n) => break n,
                            Err(EncryptError::InsufficientSize(i)) => {
                                out.resize(i.required_size, 0)
                            }
                            Err(err) => panic!("{err}"),
                        }
                    };
                    wire_out.extend_from_slice(&out[..n]);
                }
                incoming.drain(..discard);
                return;
            }
            ConnectionState::BlockedHandshake
            | ConnectionState::PeerClosed
            | ConnectionState::Closed => {
                incoming.drain(..discard);
                return;
            }
            _ => panic!("unexpected state"),
        }
        incoming.drain(..discard);
    }
}

fn run_buffered(scfg: &Arc<ServerConfig>, ccfg: &Arc<ClientConfig>, n: usize) -> Duration {
    let mut s = ServerConnection::new(scfg.clone()).unwrap();
    let mut c = client(ccfg);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut scratch = vec![0u8; 16 * 1024];
    while c.is_handshaking() || s.is_handshaking() {
        client_out(&mut c, &mut a);
        buffered_turn(&mut s, &mut a, &mut b, &mut scratch);
        client_in(&mut c, &mut b);
    }
    let mut t = Duration::ZERO;
    for _ in 0..n {
        c.writer().write_all(REQUEST).unwrap();
        client_out(&mut c, &mut a);
        let t0 = Instant::now();
        buffered_turn(&mut s, &mut a, &mut b, &mut scratch);
        t += t0.elapsed();
        assert_eq!(client_in(&mut c, &mut b), RESPONSE.len());
    }
    t
}

fn run_unbuffered(scfg: &Arc<ServerConfig>, ccfg: &Arc<ClientConfig>, n: usize) -> Duration {
    let mut s = UnbufferedServerConnection::new(scfg.clone()).unwrap();
    let mut c = client(ccfg);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut incoming = Vec::with_capacity(20 * 1024);
    let mut out = vec![0u8; 20 * 1024];
    let mut scratch = vec![0u8; 16 * 1024];
    for _ in 0..20 {
        if !c.is_handshaking() {
            break;
        }
        client_out(&mut c, &mut a);
        unbuffered_turn(
            &mut s,
            &mut incoming,
            &mut a,
            &mut b,
            &mut out,
            &mut scratch,
        );
        client_in(&mut c, &mut b);
    }
    assert!(!c.is_handshaking());
    let mut t = Duration::ZERO;
    for _ in 0..n {
        c.writer().write_all(REQUEST).unwrap();
        client_out(&mut c, &mut a);
        let t0 = Instant::now();
        unbuffered_turn(
            &mut s,
            &mut incoming,
            &mut a,
            &mut b,
            &mut out,
            &mut scratch,
        );
        t += t0.elapsed();
        assert_eq!(client_in(&mut c, &mut b), RESPONSE.len());
    }
    t
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let (scfg, ccfg) = configs();
    let (mut bu, mut un) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let b = run_buffered(&scfg, &ccfg, n).as_nanos() as f64 / n as f64;
        let u = run_unbuffered(&scfg, &ccfg, n).as_nanos() as f64 / n as f64;
        println!("round {r}: buffered {b:.0} ns/request, unbuffered {u:.0} ns/request");
        bu.push(b);
        un.push(u);
    }
    bu.sort_by(f64::total_cmp);
    un.sort_by(f64::total_cmp);
    let (b, u) = (bu[rounds / 2], un[rounds / 2]);
    println!(
        "median: buffered {b:.0} ns, unbuffered {u:.0} ns per request (unbuffered/buffered {:.2})",
        u / b
    );
}
