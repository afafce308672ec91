//! HTTPS through the whole service, in memory: a rustls client on the far
//! end of the engine's wire (its records carried by a smoltcp socket) talks
//! to `HttpApp` with `--tls-cert`: TLS 1.3 and 1.2, ALPN, SNI, resumption
//! by ticket and by session id, a large response through a small send
//! buffer, 2000 pipelined requests, errors and alerts,
//! `--redirect-https`, the certificates reloaded on SIGHUP, refused files.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use httpd::{load_site, HttpApp, HttpArgs};
use runtime::server::WorkerCtx;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use stack::testing::{engine_net, with_app, EngineNet};

const SERVER: std::net::Ipv4Addr = testkit::SERVER_IP4;

/// A temporary directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("xdpstack-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `names`: (cert PEM, key PEM, cert DER).
fn cert(names: &[&str]) -> (String, String, CertificateDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    (
        ck.cert.pem(),
        ck.key_pair.serialize_pem(),
        ck.cert.der().clone(),
    )
}

struct Setup {
    _dir: Dir,
    certs: Vec<CertificateDer<'static>>,
    args: HttpArgs,
    reload: Arc<AtomicU64>,
}

/// Two certificates: `a.test` (and `*.wild.test`) first, `b.test` second.
fn setup(tag: &str, root: bool) -> Setup {
    let dir = Dir::new(tag);
    let (ca, ka, da) = cert(&["a.test", "*.wild.test"]);
    let (cb, kb, db) = cert(&["b.test"]);
    let args_tls = httpd::tls::TlsArgs {
        certs: vec![
            dir.file("a.pem", ca.as_bytes()),
            dir.file("b.pem", cb.as_bytes()),
        ],
        keys: vec![
            dir.file("a.key", ka.as_bytes()),
            dir.file("b.key", kb.as_bytes()),
        ],
        tls_port: 443,
        tls_session_cache: 100,
        redirect_https: false,
        hsts: 0,
        shared: None,
    };
    let root = root.then(|| {
        let www = dir.0.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(www.join("big.bin"), big).unwrap();
        std::fs::write(www.join("index.html"), b"<h1>hello</h1>\n").unwrap();
        www
    });
    let mut args = common::small_args(root, 64);
    args.tls = args_tls;
    args.max_root_bytes = 4 << 20;
    httpd::tls::load(&mut args.tls).unwrap();
    Setup {
        _dir: dir,
        certs: vec![da, db],
        args,
        reload: Arc::new(AtomicU64::new(0)),
    }
}

fn net(s: &Setup) -> EngineNet<HttpApp> {
    let ctx = WorkerCtx::hashed(0, s.reload.clone());
    let site = load_site(&s.args).unwrap();
    with_app(engine_net(|_| {}), |engine| {
        HttpApp::new(&ctx, engine, &s.args, site).unwrap()
    })
}

fn client_config(
    certs: &[CertificateDer<'static>],
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c.clone()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A TLS client over one of the wire's TCP sockets.
struct Client {
    h: SocketHandle,
    tls: ClientConnection,
    out: Vec<u8>,
    got: Vec<u8>,
    error: Option<rustls::Error>,
    close_notify: bool,
}

impl Client {
    fn connect(
        net: &mut EngineNet<HttpApp>,
        port: u16,
        cfg: Arc<ClientConfig>,
        sni: &str,
    ) -> Client {
        let s = testkit::MemClient::tcp_socket(512 * 1024);
        let h = net.client.connect_with(s, port, (SERVER, 443));
        net.run_until(200, "connected", |n| n.client.tcp(h).may_send());
        let name = ServerName::try_from(sni.to_string()).unwrap();
        Client {
            h,
            tls: ClientConnection::new(cfg, name).unwrap(),
            out: Vec::new(),
            got: Vec::new(),
            error: None,
            close_notify: false,
        }
    }

    /// Moves records both ways once.
    fn pump(&mut self, net: &mut EngineNet<HttpApp>) {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.out).unwrap();
        }
        let s = net.client.tcp(self.h);
        if !self.out.is_empty() && s.can_send() {
            let n = s.send_slice(&self.out).unwrap();
            self.out.drain(..n);
        }
        while s.can_recv() {
            let mut data = Vec::new();
            s.recv(|b| {
                data.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
            let mut rd = &data[..];
            while !rd.is_empty() && self.error.is_none() {
                self.tls.read_tls(&mut rd).unwrap();
                if let Err(e) = self.tls.process_new_packets() {
                    self.error = Some(e);
                }
                self.read_plaintext();
            }
        }
        self.read_plaintext();
    }

    fn read_plaintext(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.close_notify = true;
                    break;
                }
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
    }

    fn run(&mut self, net: &mut EngineNet<HttpApp>, rounds: usize) {
        for _ in 0..rounds {
            self.pump(net);
            net.run(1);
        }
        self.pump(net);
    }

    fn handshake(&mut self, net: &mut EngineNet<HttpApp>) {
        for _ in 0..500 {
            if !self.tls.is_handshaking() || self.error.is_some() {
                break;
            }
            self.run(net, 1);
        }
        assert!(self.error.is_none(), "{:?}", self.error);
        assert!(!self.tls.is_handshaking(), "handshake not done");
    }

    fn send(&mut self, net: &mut EngineNet<HttpApp>, data: &[u8]) {
        self.tls.writer().write_all(data).unwrap();
        self.run(net, 1);
    }

    /// Runs until `n` bytes (or more) arrived, or `rounds`.
    fn take(&mut self, net: &mut EngineNet<HttpApp>, rounds: usize) -> String {
        self.run(net, rounds);
        String::from_utf8_lossy(&std::mem::take(&mut self.got)).into_owned()
    }

    fn peer_cert(&self) -> CertificateDer<'static> {
        self.tls.peer_certificates().unwrap()[0].clone()
    }

    fn tcp_closed(&self, net: &mut EngineNet<HttpApp>) -> bool {
        !matches!(
            net.client.tcp(self.h).state(),
            tcp::State::Established | tcp::State::FinWait1 | tcp::State::FinWait2
        )
    }

    /// Plaintext until close_notify and the TCP close (at most 5000 rounds).
    fn read_to_close(&mut self, net: &mut EngineNet<HttpApp>) -> Vec<u8> {
        let mut got = Vec::new();
        for _ in 0..5000 {
            self.run(net, 1);
            got.append(&mut self.got);
            if self.close_notify && self.tcp_closed(net) {
                break;
            }
        }
        got
    }
}

/// A request on plain HTTP (port 80) from client port `port`, and what came
/// back within `steps` steps, as text.
fn plain_exchange(net: &mut EngineNet<HttpApp>, port: u16, req: &[u8], steps: usize) -> String {
    let h = net.client.connect(port, (SERVER, 80));
    net.run_until(200, "connected", |n| n.client.tcp(h).may_send());
    net.client.tcp(h).send_slice(req).unwrap();
    net.run(steps);
    let mut got = Vec::new();
    let sock = net.client.tcp(h);
    while sock.can_recv() {
        sock.recv(|b| {
            got.extend_from_slice(b);
            (b.len(), ())
        })
        .unwrap();
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn tls_counters(net: &EngineNet<HttpApp>) -> serde_json::Value {
    net.server.app.json()["tls"].clone()
}

fn get_once(version: &'static rustls::SupportedProtocolVersion, want: ProtocolVersion) {
    let s = setup(&format!("get-{want:?}"), false);
    let mut net = net(&s);
    let cfg = client_config(&s.certs, version, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42000, cfg, "a.test");
    c.handshake(&mut net);
    assert_eq!(c.tls.protocol_version(), Some(want));
    assert_eq!(c.tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    c.send(&mut net, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let text = c.take(&mut net, 20);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nOK\n"), "{text}");
    // Keep-alive: a second request on the same session.
    c.send(
        &mut net,
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    let text = c.take(&mut net, 50);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    // close_notify, then FIN.
    assert!(c.close_notify, "no close_notify");
    assert!(c.tcp_closed(&mut net));
    let t = tls_counters(&net);
    assert_eq!(t["handshakes"], 1, "{t}");
    assert_eq!(t["handshakes_failed"], 0, "{t}");
    let key = if want == ProtocolVersion::TLSv1_3 {
        "tls13"
    } else {
        "tls12"
    };
    assert_eq!(t[key], 1, "{t}");
    assert_eq!(net.server.app.json()["requests"], 2);
}

#[test]
fn tls13_get_keep_alive_and_close() {
    get_once(&rustls::version::TLS13, ProtocolVersion::TLSv1_3);
}

#[test]
fn tls12_get_keep_alive_and_close() {
    get_once(&rustls::version::TLS12, ProtocolVersion::TLSv1_2);
}

#[test]
fn sni_chooses_the_certificate() {
    let s = setup("sni", false);
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    for (port, name, want) in [
        (42010, "a.test", 0),
        (42011, "b.test", 1),
        (42012, "x.wild.test", 0),
        (42013, "B.TEST", 1),
    ] {
        let mut c = Client::connect(&mut net, port, cfg.clone(), name);
        c.handshake(&mut net);
        assert_eq!(c.peer_cert(), s.certs[want], "{name}");
    }
    // A name no certificate has: the first one (the client refuses it).
    let mut c = Client::connect(&mut net, 42014, cfg, "c.test");
    c.run(&mut net, 20);
    assert!(c.error.is_some(), "accepted a certificate for another name");
}

fn resumes(version: &'static rustls::SupportedProtocolVersion, session_id_only: bool) {
    let s = setup(&format!("resume-{session_id_only}"), false);
    let mut net = net(&s);
    let mut cfg = (*client_config(&s.certs, version, &[b"http/1.1"])).clone();
    if session_id_only {
        cfg.resumption = rustls::client::Resumption::in_memory_sessions(16)
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    }
    let cfg = Arc::new(cfg);
    let mut kinds = Vec::new();
    for port in [42020, 42021, 42022] {
        let mut c = Client::connect(&mut net, port, cfg.clone(), "b.test");
        c.handshake(&mut net);
        // TLS 1.3 tickets come after the handshake: read them.
        c.send(&mut net, b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
        assert!(c.take(&mut net, 20).starts_with("HTTP/1.1 200"));
        kinds.push(c.tls.handshake_kind());
    }
    assert_eq!(
        kinds,
        [
            Some(HandshakeKind::Full),
            Some(HandshakeKind::Resumed),
            Some(HandshakeKind::Resumed)
        ]
    );
    let t = tls_counters(&net);
    assert_eq!(t["handshakes"], 3, "{t}");
    assert_eq!(t["resumed"], 2, "{t}");
}

#[test]
fn tls13_resumes_with_a_ticket() {
    resumes(&rustls::version::TLS13, false);
}

#[test]
fn tls12_resumes_with_a_ticket() {
    resumes(&rustls::version::TLS12, false);
}

#[test]
fn tls12_resumes_from_the_session_cache() {
    resumes(&rustls::version::TLS12, true);
}

#[test]
fn alpn_without_http11_is_refused_with_an_alert() {
    let s = setup("alpn", false);
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"h2"]);
    let mut c = Client::connect(&mut net, 42030, cfg, "a.test");
    c.run(&mut net, 30);
    assert!(
        matches!(
            c.error,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        ),
        "{:?}",
        c.error
    );
    assert!(c.tcp_closed(&mut net));
    let t = tls_counters(&net);
    assert_eq!(t["handshakes"], 0, "{t}");
    assert_eq!(t["handshakes_failed"], 1, "{t}");
    assert_eq!(t["alerts_sent"], 1, "{t}");
    // No ALPN at all is fine.
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[]);
    let mut c = Client::connect(&mut net, 42031, cfg, "a.test");
    c.handshake(&mut net);
}

#[test]
fn plain_http_on_the_tls_port_gets_an_alert_and_a_close() {
    let s = setup("plain", false);
    let mut net = net(&s);
    let h = net.client.connect(42040, (SERVER, 443));
    net.run_until(200, "connected", |n| n.client.tcp(h).may_send());
    net.client
        .tcp(h)
        .send_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    net.run(50);
    let mut got = Vec::new();
    let sock = net.client.tcp(h);
    while sock.can_recv() {
        sock.recv(|b| {
            got.extend_from_slice(b);
            (b.len(), ())
        })
        .unwrap();
    }
    // A TLS alert record (content type 21), nothing in plaintext.
    assert_eq!(got.first(), Some(&21), "{got:?}");
    assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1"));
    assert!(!matches!(
        net.client.tcp(h).state(),
        tcp::State::Established
    ));
    let t = tls_counters(&net);
    assert_eq!(t["handshakes_failed"], 1, "{t}");
    assert_eq!(t["alerts_sent"], 1, "{t}");
    // Plain HTTP on the plain port still works.
    let h = net.client.connect(42041, (SERVER, 80));
    net.run_until(200, "connected", |n| n.client.tcp(h).may_send());
}

#[test]
fn large_response_through_a_small_window_then_close_notify() {
    let s = setup("large", true);
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42050, cfg, "a.test");
    c.handshake(&mut net);
    c.send(
        &mut net,
        b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    let got = c.read_to_close(&mut net);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &got[head_end..];
    assert_eq!(body.len(), 1_000_000);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert!(c.close_notify, "no close_notify");
    assert!(c.tcp_closed(&mut net));
}

#[test]
fn a_range_of_a_file_read_from_disk_over_tls() {
    let mut s = setup("range", true);
    // big.bin (1,000,000 bytes) stays on disk and is read in chunks.
    s.args.max_file_in_memory = 64 << 10;
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42055, cfg, "a.test");
    c.handshake(&mut net);
    c.send(
        &mut net,
        b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\nRange: bytes=100000-299999\r\n\
          Connection: close\r\n\r\n",
    );
    let got = c.read_to_close(&mut net);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert!(
        head.contains("Content-Range: bytes 100000-299999/1000000"),
        "{head}"
    );
    let body = &got[head_end..];
    assert_eq!(body.len(), 200_000);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == ((i + 100_000) % 251) as u8));
    let j = net.server.app.json();
    assert_eq!(j["disk_bytes"], 200_000, "only the range was read: {j}");
    assert_eq!(j["partial"], 1, "{j}");
}

#[test]
fn two_thousand_pipelined_requests_are_all_answered() {
    let s = setup("pipe", false);
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42060, cfg, "a.test");
    c.handshake(&mut net);
    // 2000 requests of 250 bytes, a record each, sent at once (the turn's
    // budget itself is tested on byte buffers: src/tls/tests.rs).
    c.tls.set_buffer_limit(None);
    let pad = "p".repeat(200);
    let req = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Pad: {pad}\r\n\r\n");
    for _ in 0..2000 {
        c.tls.writer().write_all(req.as_bytes()).unwrap();
    }
    let mut n = 0;
    for _ in 0..5000 {
        n += c.take(&mut net, 1).matches("HTTP/1.1 200").count();
        if n == 2000 {
            break;
        }
    }
    assert_eq!(n, 2000);
}

#[test]
fn redirect_https_answers_plain_requests_with_301() {
    let mut s = setup("redirect", false);
    s.args.tls.redirect_https = true;
    let mut net = net(&s);
    let text = plain_exchange(
        &mut net,
        42070,
        b"GET /a/b?c=d HTTP/1.1\r\nHost: www.example:80\r\n\r\nPOST /f HTTP/1.1\r\nHost: www.example\r\nContent-Length: 2\r\n\r\nhi",
        50,
    );
    assert!(text.starts_with("HTTP/1.1 301 "), "{text}");
    assert!(
        text.contains("Location: https://www.example/a/b?c=d\r\n"),
        "{text}"
    );
    assert!(text.contains("HTTP/1.1 308 "), "{text}");
    assert!(
        text.contains("Location: https://www.example/f\r\n"),
        "{text}"
    );
    // HTTPS serves as usual.
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42071, cfg, "a.test");
    c.handshake(&mut net);
    c.send(&mut net, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert!(c.take(&mut net, 20).starts_with("HTTP/1.1 200"));
}

#[test]
fn sighup_reloads_the_certificates() {
    let s = setup("reload", false);
    let mut net = net(&s);
    let (ca, ka, da) = cert(&["a.test"]);
    std::fs::write(&s.args.tls.certs[0], ca).unwrap();
    std::fs::write(&s.args.tls.keys[0], ka).unwrap();
    let roots = [s.certs.clone(), vec![da.clone()]].concat();
    let cfg = client_config(&roots, &rustls::version::TLS13, &[b"http/1.1"]);
    // Before the signal: the old one.
    let mut c = Client::connect(&mut net, 42080, cfg.clone(), "a.test");
    c.handshake(&mut net);
    assert_eq!(c.peer_cert(), s.certs[0]);
    s.reload.fetch_add(1, Ordering::Relaxed);
    net.run(5);
    let mut c = Client::connect(&mut net, 42081, cfg.clone(), "a.test");
    c.handshake(&mut net);
    assert_eq!(c.peer_cert(), da);
    // A broken file at the next signal: the loaded ones stay.
    std::fs::write(&s.args.tls.keys[0], "not a key").unwrap();
    s.reload.fetch_add(1, Ordering::Relaxed);
    net.run(5);
    let mut c = Client::connect(&mut net, 42082, cfg, "a.test");
    c.handshake(&mut net);
    assert_eq!(c.peer_cert(), da);
    let t = tls_counters(&net);
    assert_eq!(t["reloads"], 1, "{t}");
    assert_eq!(t["reload_failures"], 1, "{t}");
}

fn refused(certs: &[&Path], keys: &[&Path]) -> String {
    let mut a = httpd::tls::TlsArgs {
        certs: certs.iter().map(|p| p.to_path_buf()).collect(),
        keys: keys.iter().map(|p| p.to_path_buf()).collect(),
        tls_session_cache: 10,
        ..Default::default()
    };
    let e = httpd::tls::load(&mut a).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn refused_certificates_are_one_line_errors() {
    let d = Dir::new("refused");
    let (ca, ka, _) = cert(&["a.test"]);
    let (_, kb, _) = cert(&["b.test"]);
    let c = d.file("a.pem", ca.as_bytes());
    let k = d.file("a.key", ka.as_bytes());
    let other = d.file("b.key", kb.as_bytes());
    let junk = d.file("junk.pem", b"hello\n");
    let missing = d.0.join("missing.pem");
    assert!(refused(&[&c], &[&other]).contains("does not match"));
    assert!(refused(&[&missing], &[&k]).starts_with("cannot read certificate"));
    assert!(refused(&[&c], &[&missing]).starts_with("cannot read key"));
    assert!(refused(&[&junk], &[&k]).contains("no PEM certificate"));
    assert!(refused(&[&c], &[&junk]).starts_with("key "));
    assert!(refused(&[&c, &c], &[&k]).contains("in pairs"));
    let mut a = httpd::tls::TlsArgs {
        redirect_https: true,
        ..Default::default()
    };
    assert!(httpd::tls::load(&mut a).is_err());
}

#[test]
fn hsts_on_https_responses_only() {
    let mut s = setup("hsts", true);
    s.args.tls.hsts = 31_536_000;
    let mut net = net(&s);
    let cfg = client_config(&s.certs, &rustls::version::TLS13, &[b"http/1.1"]);
    let mut c = Client::connect(&mut net, 42090, cfg, "a.test");
    c.handshake(&mut net);
    // A long body sent from the shared copy (queued behind the head), then
    // a short one behind its head, pipelined.
    c.send(
        &mut net,
        b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    let mut got = Vec::new();
    for _ in 0..3000 {
        c.run(&mut net, 1);
        got.append(&mut c.got);
        if got.ends_with(b"<h1>hello</h1>\n") {
            break;
        }
    }
    let line = b"\r\nStrict-Transport-Security: max-age=31536000\r\n";
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got[..head_end].windows(line.len()).any(|w| w == line));
    let body = &got[head_end..head_end + 1_000_000];
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let second = String::from_utf8_lossy(&got[head_end + 1_000_000..]);
    assert!(
        second.starts_with("HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=31536000\r\n"),
        "{second}"
    );
    assert!(second.ends_with("\r\n\r\n<h1>hello</h1>\n"), "{second}");
    // Not on plain HTTP.
    let plain = plain_exchange(&mut net, 42091, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 30);
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(!plain.contains("Strict-Transport-Security"), "{plain}");
}
