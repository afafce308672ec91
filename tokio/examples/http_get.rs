//! hyper 1.x's HTTP/1.1 client (through hyper-util's `TokioIo`) on
//! outgoing connections through the xdpstack daemon
//! (`xdpstack_tokio::Stack::connect_tcp`), or on kernel sockets
//! (`--kernel`): the stream is the only difference.
//!
//! ```text
//! http_get --attach /run/xdpstack.sock --url http://198.18.0.2:8000/file --count 4
//! ```
//!
//! Each of `--count` connections fetches the URL once (connections in turn;
//! the daemon spreads them over its cores); each answer is reported on
//! stdout as one JSON line: status, body length, the body's SHA-256, and
//! both addresses of the connection. A failure ends the program with exit
//! status 1 and `http_get: <io::ErrorKind>: <error>` on stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Parser, Debug)]
#[command(about = "hyper's HTTP/1.1 client on xdpstack (or on kernel sockets)")]
struct Args {
    /// The daemon's control socket: connect through xdpstack.
    #[arg(long, conflicts_with = "kernel", required_unless_present = "kernel")]
    attach: Option<PathBuf>,
    /// Connect with kernel sockets.
    #[arg(long)]
    kernel: bool,
    /// `http://IP:PORT/PATH` (an address, no name lookup).
    #[arg(long)]
    url: hyper::Uri,
    /// Connections, one request each.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(args)) {
        let kind = e
            .downcast_ref::<std::io::Error>()
            .map(|e| format!("{:?}", e.kind()))
            .or_else(|| {
                std::error::Error::source(&*e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .map(|e| format!("{:?}", e.kind()))
            })
            .unwrap_or_else(|| "Other".into());
        eprintln!("http_get: {kind}: {}", chain(&*e));
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let host = args.url.host().ok_or("the URL has no host")?;
    let ip: std::net::IpAddr = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| "the URL's host must be an address")?;
    let addr = SocketAddr::new(ip, args.url.port_u16().unwrap_or(80));
    let path = args
        .url
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let stack = match &args.attach {
        Some(sock) => Some(xdpstack_tokio::Stack::connect(sock).await?),
        None => None,
    };
    for _ in 0..args.count {
        let line = match &stack {
            Some(stack) => {
                let s = stack.connect_tcp(addr).await?;
                let (local, peer) = (s.local_addr()?, s.peer_addr()?);
                fetch(s, host, &path, local, peer).await?
            }
            None => {
                let s = tokio::net::TcpStream::connect(addr).await?;
                let (local, peer) = (s.local_addr()?, s.peer_addr()?);
                fetch(s, host, &path, local, peer).await?
            }
        };
        println!("{line}");
    }
    Ok(())
}

/// One GET on a fresh connection; its report as a JSON line.
async fn fetch<S>(
    s: S,
    host: &str,
    path: &str,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<String, BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(http_body_util::Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    drop(send);
    conn.await??;
    let hex: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let n = body.len();
    Ok(serde_json::json!({
        "status": status,
        "len": n,
        "sha256": hex,
        "local": local.to_string(),
        "peer": peer.to_string(),
    })
    .to_string())
}

/// An error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
