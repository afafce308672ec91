//! An axum service, served by hyper 1.x (through hyper-util's `TokioIo`;
//! HTTP/1.1, or HTTP/2 when the client starts with its preface),
//! either through the xdpstack daemon (`--attach SOCK`) or on the kernel's
//! sockets (`--kernel ADDR`). The listener is the only difference: the
//! router, the connection code and the handlers are the same.
//!
//! ```text
//! axum_hello --attach /run/xdpstack.sock --port 8080 --body hello
//! axum_hello --kernel 0.0.0.0 --port 8080 --body hello
//! ```
//!
//! `--tls` serves HTTPS (tokio-rustls over the same stream, a self-signed
//! certificate made at start, ALPN h2 and http/1.1).
//!
//! Routes: `GET /` the body; `GET /bytes/N` N pseudo-random bytes (the
//! xorshift stream the tests compare with); `POST /sha256` the length and
//! SHA-256 of the request body, read as it streams in; `POST /hold/MS` the
//! same after MS milliseconds of not reading the body (back-pressure).
//!
//! `--raw-port P` also serves a plain TCP port (no HTTP server) for what
//! hyper's server does not show: a first line `HALF x` is answered with
//! `bye x` and a shutdown of the write half (the peer sees the end), then
//! everything the peer still sends is read to its end and reported on
//! stderr (`raw: N bytes after our shutdown, sha256 H`); a first line
//! `CLIENT` makes this side hyper's HTTP/1.1 *client* on the accepted
//! stream (through `TokioIo`): `GET /reverse`, the answer reported on
//! stderr (`raw: client got STATUS, N bytes, sha256 H`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

#[derive(Parser, Debug)]
#[command(about = "axum on xdpstack (or on kernel sockets)")]
struct Args {
    /// The daemon's control socket: serve through xdpstack.
    #[arg(long, conflicts_with = "kernel", required_unless_present = "kernel")]
    attach: Option<PathBuf>,
    /// An address of this host: serve on kernel sockets.
    #[arg(long)]
    kernel: Option<IpAddr>,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// What `GET /` answers.
    #[arg(long, default_value = "hello\n")]
    body: String,
    /// HTTPS (tokio-rustls) with a self-signed certificate made at start.
    #[arg(long)]
    tls: bool,
    /// tokio worker threads (0: the current-thread runtime).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also serve the plain TCP port of half-close and hyper's client.
    #[arg(long)]
    raw_port: Option<u16>,
}

/// The listener: the only part that differs.
enum Listener {
    Xdp(xdpstack_tokio::TcpListener),
    Kernel(tokio::net::TcpListener),
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let code = rt.expect("tokio runtime").block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let listener = match (&args.attach, args.kernel) {
        (Some(sock), _) => {
            let addr = SocketAddr::from(([0, 0, 0, 0], args.port));
            let bound = async {
                let stack = xdpstack_tokio::Stack::connect(sock).await?;
                if let Some(p) = args.raw_port {
                    let raw = stack.bind(SocketAddr::from(([0, 0, 0, 0], p))).await?;
                    tokio::spawn(async move {
                        loop {
                            match raw.accept().await {
                                Ok((s, _)) => {
                                    tokio::spawn(raw_conn(s));
                                }
                                Err(e) => {
                                    eprintln!("raw: accept: {}", chain(&e));
                                    return;
                                }
                            }
                        }
                    });
                }
                stack.bind(addr).await
            };
            match bound.await {
                Ok(l) => {
                    eprintln!(
                        "axum_hello: listening on {addr} through the xdpstack daemon at {} ({} core(s))",
                        sock.display(),
                        l.stack().cores()
                    );
                    Listener::Xdp(l)
                }
                Err(e) => {
                    eprintln!("axum_hello: {}", chain(&e));
                    return 1;
                }
            }
        }
        (None, Some(ip)) => match tokio::net::TcpListener::bind((ip, args.port)).await {
            Ok(l) => {
                eprintln!(
                    "axum_hello: listening on {ip}:{} (kernel sockets)",
                    args.port
                );
                Listener::Kernel(l)
            }
            Err(e) => {
                eprintln!("axum_hello: {e}");
                return 1;
            }
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let tls = match args.tls.then(tls_acceptor).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("axum_hello: TLS: {e}");
            return 1;
        }
    };
    let app = Router::new()
        .route("/", get(|State(body): State<String>| async move { body }))
        .route("/bytes/{n}", get(bytes))
        .route("/sha256", post(sha256))
        .route("/hold/{ms}", post(hold))
        .with_state(args.body.clone());
    loop {
        let accepted = match &listener {
            Listener::Xdp(l) => l.accept().await.map(|(s, p)| {
                serve(s, p, app.clone(), tls.clone());
            }),
            Listener::Kernel(l) => l.accept().await.map(|(s, p)| {
                serve(s, p, app.clone(), tls.clone());
            }),
        };
        if let Err(e) = accepted {
            eprintln!("axum_hello: accept: {}", chain(&e));
            let gone = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<xdpstack_tokio::Error>())
                .is_some();
            if gone {
                // The connections' tasks fail too: let them say so.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                return 1;
            }
        }
    }
}

/// One connection: TLS first if asked, then hyper over whatever stream was
/// accepted.
fn serve<S>(stream: S, peer: SocketAddr, app: Router, tls: Option<TlsAcceptor>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let r = match tls {
            Some(t) => match t.accept(stream).await {
                Ok(s) => http(s, app).await,
                Err(e) => Err(e.into()),
            },
            None => http(stream, app).await,
        };
        if let Err(e) = r {
            eprintln!("axum_hello: connection from {peer}: {}", chain(&*e));
        }
    });
}

/// hyper on one stream: HTTP/1.1, or HTTP/2 (h2c with prior knowledge, or
/// negotiated by ALPN under TLS), as the client starts.
async fn http<S>(stream: S, app: Router) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut b = auto::Builder::new(TokioExecutor::new());
    // A client that sends its request and then its FIN still gets the
    // answer.
    b.http1().half_close(true);
    b.http2().max_concurrent_streams(256);
    b.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .await
}

/// A TLS acceptor with a self-signed certificate for `localhost`.
///
/// rustls 0.23.48 deprecated its *ring* provider (no post-quantum key
/// exchange); the example keeps it because aws-lc-rs, the other, needs
/// cmake to build: what is shown is TLS over this crate's streams.
#[allow(deprecated)]
fn tls_acceptor() -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::{crypto::ring, ServerConfig};
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// An error with its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The tests' pseudo-random stream (xorshift64, one byte per step).
struct Xorshift(u64);

impl Xorshift {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

async fn bytes(Path(n): Path<u64>) -> Body {
    let chunks = futures_util::stream::unfold(
        (Xorshift(0x9e37_79b9_7f4a_7c15), n),
        |(mut x, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; left.min(256 << 10) as usize];
            x.fill(&mut buf);
            let rest = left - buf.len() as u64;
            Some((Ok::<_, Infallible>(Bytes::from(buf)), (x, rest)))
        },
    );
    Body::from_stream(chunks)
}

/// `/sha256` after `ms` milliseconds of leaving the body unread.
async fn hold(Path(ms): Path<u64>, body: Body) -> Result<String, String> {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    sha256(body).await
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One connection of `--raw-port` (see the module's doc).
async fn raw_conn(s: xdpstack_tokio::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peer = s.peer_addr().ok();
    let local = s.local_addr().ok();
    let (mut r, mut w) = s.into_split();
    // The first line, a byte at a time (nothing read past it).
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b).await {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            Ok(_) => return,
            Err(e) => return eprintln!("raw: read: {e}"),
        }
    }
    let line = String::from_utf8_lossy(&line).to_string();
    eprintln!("raw: {line:?} from {peer:?} to {local:?}");
    if let Some(x) = line.strip_prefix("HALF ") {
        let r2 = async {
            w.write_all(format!("bye {x}\n").as_bytes()).await?;
            w.shutdown().await?;
            let (mut n, mut h, mut buf) = (0u64, Sha256::new(), vec![0u8; 64 << 10]);
            loop {
                let k = r.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                n += k as u64;
                h.update(&buf[..k]);
            }
            Ok::<_, std::io::Error>((n, hex(&h.finalize())))
        };
        match r2.await {
            Ok((n, h)) => eprintln!("raw: {n} bytes after our shutdown, sha256 {h}"),
            Err(e) => eprintln!("raw: half-close: {e}"),
        }
    } else if line == "CLIENT" {
        let s = match r.reunite(w) {
            Ok(s) => s,
            Err(e) => return eprintln!("raw: {e}"),
        };
        match reverse_client(s).await {
            Ok((status, n, h)) => {
                eprintln!("raw: client got {status}, {n} bytes, sha256 {h}")
            }
            Err(e) => eprintln!("raw: client: {}", chain(&*e)),
        }
    }
}

/// hyper 1.x's HTTP/1.1 client over an accepted stream: `GET /reverse`.
async fn reverse_client(
    s: xdpstack_tokio::TcpStream,
) -> Result<(u16, u64, String), Box<dyn std::error::Error + Send + Sync>> {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("raw: client connection: {e}");
        }
    });
    let req = hyper::Request::get("/reverse")
        .header("host", "peer")
        .body(http_body_util::Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let (mut n, mut h) = (0u64, Sha256::new());
    while let Some(f) = body.frame().await {
        if let Some(d) = f?.data_ref() {
            n += d.len() as u64;
            h.update(d);
        }
    }
    Ok((status, n, hex(&h.finalize())))
}

async fn sha256(body: Body) -> Result<String, String> {
    let mut body = body;
    let mut h = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(d) = frame.data_ref() {
            len += d.len() as u64;
            h.update(d);
        }
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{len} {hex}\n"))
}
