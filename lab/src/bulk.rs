//! Bulk transfers for the lossy-network test and benchmark: a kernel TCP client that pushes N
//! bytes through an echo server on each of C parallel connections and checks every byte that
//! comes back (so N bytes go each way), and a kernel TCP echo server to compare the stack with
//! on the same path.
//!
//! Both are bounded: the client by `--timeout` (whole run) and per-operation socket timeouts,
//! the server by `--max-time`, `--max-conns` and SIGINT/SIGTERM.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::impair::SplitMix64;

/// Bytes per write and read.
const CHUNK: usize = 64 * 1024;
/// Longest a single read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Stack of each client thread.
const THREAD_STACK: usize = 256 * 1024;

/// `xdpstack bench bulk` options.
#[derive(clap::Args, Clone, Debug)]
pub struct BulkArgs {
    /// Echo server address.
    #[arg(long)]
    pub addr: IpAddr,
    /// Echo server port.
    #[arg(long, default_value_t = 7)]
    pub port: u16,
    /// Parallel connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub conns: u32,
    /// Bytes each connection sends (and must get back).
    #[arg(long, default_value_t = 10 << 20)]
    pub bytes: u64,
    /// The whole run may take this long (`600s`, `10m`; a bare number is
    /// seconds); connections not done by then fail.
    #[arg(long, default_value = "600s", value_parser = runtime::duration::parse)]
    pub timeout: Duration,
    /// Seed of the payload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `xdpstack bench kernel-echo` options.
#[derive(clap::Args, Clone, Debug)]
pub struct KernelEchoArgs {
    /// Address to listen on.
    #[arg(long)]
    pub addr: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 7)]
    pub port: u16,
    /// Connections served at once at most; more are closed at once.
    #[arg(long, default_value_t = 1024)]
    pub max_conns: usize,
    /// Exit after this long whatever happens (`900s`, `15m`; a bare number
    /// is seconds).
    #[arg(long, default_value = "900s", alias = "max-secs", value_parser = runtime::duration::parse)]
    pub max_time: Duration,
}

/// The payload of connection `conn` from byte `offset` on, into `buf`.
fn fill(seed: u64, conn: u32, offset: u64, buf: &mut [u8]) {
    // One SplitMix64 stream per 8-byte block: any offset is computed directly.
    let base = seed ^ (u64::from(conn) << 40);
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let block = SplitMix64::new(base.wrapping_add(pos / 8))
            .next_u64()
            .to_le_bytes();
        let from = (pos % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&block[from..from + n]);
        i += n;
        pos += n as u64;
    }
}

/// Why one connection of a bulk run failed.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Socket(io::Error),
    #[error("deadline after sending {sent} bytes")]
    DeadlineSending { sent: u64 },
    #[error("write after {sent} bytes: {source}")]
    Write { sent: u64, source: io::Error },
    #[error("shutdown: {0}")]
    Shutdown(io::Error),
    #[error("deadline after receiving {got} bytes")]
    DeadlineReceiving { got: u64 },
    #[error("byte {at} differs")]
    Differs { at: u64 },
    #[error("{got} bytes back, more than the {bytes} sent")]
    TooMuch { got: u64, bytes: u64 },
    #[error("read after {got} bytes: {source}")]
    Read { got: u64, source: io::Error },
    #[error("sender panicked")]
    SenderPanicked,
    #[error("{got} bytes back of {bytes}")]
    Short { got: u64, bytes: u64 },
}

struct ConnResult {
    ok: bool,
    error: Option<String>,
    received: u64,
    secs: f64,
}

fn one_conn(args: &BulkArgs, conn: u32, deadline: Instant) -> ConnResult {
    let started = Instant::now();
    let result = (|| -> Result<u64, ConnError> {
        let to = SocketAddr::new(args.addr, args.port);
        let stream = loop {
            match TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
                Ok(s) => break s,
                Err(e) if Instant::now() + Duration::from_secs(1) < deadline => {
                    log::debug!("conn {conn}: connect: {e}; retrying");
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(ConnError::Connect(e)),
            }
        };
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(ConnError::Socket)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(ConnError::Socket)?;
        let mut writer = stream.try_clone().map_err(ConnError::Socket)?;
        let (seed, bytes) = (args.seed, args.bytes);
        let sender = thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || -> Result<(), ConnError> {
                let mut buf = vec![0u8; CHUNK];
                let mut sent = 0u64;
                while sent < bytes {
                    if Instant::now() > deadline {
                        return Err(ConnError::DeadlineSending { sent });
                    }
                    let n = (bytes - sent).min(CHUNK as u64) as usize;
                    fill(seed, conn, sent, &mut buf[..n]);
                    writer
                        .write_all(&buf[..n])
                        .map_err(|source| ConnError::Write { sent, source })?;
                    sent += n as u64;
                }
                writer
                    .shutdown(Shutdown::Write)
                    .map_err(ConnError::Shutdown)
            })
            .map_err(ConnError::Socket)?;
        let mut reader = stream;
        let mut buf = vec![0u8; CHUNK];
        let mut want = vec![0u8; CHUNK];
        let mut got = 0u64;
        let read_result = loop {
            if Instant::now() > deadline {
                break Err(ConnError::DeadlineReceiving { got });
            }
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    fill(seed, conn, got, &mut want[..n]);
                    if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                        break Err(ConnError::Differs { at: got + i as u64 });
                    }
                    got += n as u64;
                    if got > bytes {
                        break Err(ConnError::TooMuch { got, bytes });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => break Err(ConnError::Read { got, source }),
            }
        };
        if read_result.is_err() {
            // Unblock the sender.
            let _ = reader.shutdown(Shutdown::Both);
        }
        let sent = sender.join().unwrap_or(Err(ConnError::SenderPanicked));
        read_result?;
        sent?;
        if got != bytes {
            return Err(ConnError::Short { got, bytes });
        }
        Ok(got)
    })();
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(received) => ConnResult {
            ok: true,
            error: None,
            received,
            secs,
        },
        Err(e) => ConnResult {
            ok: false,
            error: Some(format!("conn {conn}: {e}")),
            received: 0,
            secs,
        },
    }
}

/// Runs the client; the report as JSON (`failed` = 0 when every byte came back).
pub fn run_bulk(args: &BulkArgs) -> BulkReport {
    let started = Instant::now();
    let deadline = started + args.timeout;
    let handles: Vec<_> = (0..args.conns)
        .map(|conn| {
            let args = args.clone();
            thread::Builder::new()
                .stack_size(THREAD_STACK)
                .spawn(move || one_conn(&args, conn, deadline))
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(match h {
            Ok(h) => h.join().unwrap_or_else(|_| ConnResult {
                ok: false,
                error: Some("thread panicked".into()),
                received: 0,
                secs: 0.0,
            }),
            Err(e) => ConnResult {
                ok: false,
                error: Some(format!("spawn: {e}")),
                received: 0,
                secs: 0.0,
            },
        });
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut secs: Vec<f64> = results.iter().filter(|r| r.ok).map(|r| r.secs).collect();
    secs.sort_by(f64::total_cmp);
    let pick =
        |q: f64| (!secs.is_empty()).then(|| secs[((secs.len() - 1) as f64 * q).round() as usize]);
    let ok = results.iter().filter(|r| r.ok).count();
    let received: u64 = results.iter().map(|r| r.received).sum();
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.error.as_ref().map(ToString::to_string))
        .take(10)
        .collect();
    BulkReport {
        conns: args.conns,
        bytes_each_way: args.bytes,
        ok,
        failed: results.len() - ok,
        errors,
        received,
        elapsed_s: elapsed,
        conn_s: ConnTimes {
            min: pick(0.0),
            median: pick(0.5),
            p90: pick(0.9),
            max: pick(1.0),
        },
        goodput_mib_s_each_way: received as f64 / elapsed / (1 << 20) as f64,
    }
}

/// What `xdpstack bench bulk` prints (JSON, one line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BulkReport {
    /// Connections run.
    pub conns: u32,
    /// Bytes each connection sent (and should have got back).
    pub bytes_each_way: u64,
    /// Connections that got every byte back, checked.
    pub ok: usize,
    /// The others.
    pub failed: usize,
    /// The first ten errors.
    pub errors: Vec<String>,
    /// Bytes received back in all.
    pub received: u64,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
    /// Seconds per successful connection.
    pub conn_s: ConnTimes,
    /// Received MiB/s (each way).
    pub goodput_mib_s_each_way: f64,
}

/// Seconds per successful connection (None: none succeeded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnTimes {
    /// Fastest.
    pub min: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

/// What `xdpstack bench kernel-echo` prints on exit (JSON, one line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelEchoReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Of which closed at once (past --max-conns, or no thread).
    pub refused: u64,
    /// Bytes echoed.
    pub tcp_bytes: u64,
}

/// Runs a kernel TCP echo server until `stop` is set (the command sets it on SIGINT/SIGTERM)
/// or `--max-time` have passed.
pub fn run_kernel_echo(args: &KernelEchoArgs, stop: &AtomicBool) -> io::Result<KernelEchoReport> {
    let listener = TcpListener::bind(SocketAddr::new(args.addr, args.port))?;
    serve_kernel_echo(listener, args, stop)
}

/// [`run_kernel_echo`] on a listener already bound (`args.addr` and `args.port` unused).
fn serve_kernel_echo(
    listener: TcpListener,
    args: &KernelEchoArgs,
    stop: &AtomicBool,
) -> io::Result<KernelEchoReport> {
    listener.set_nonblocking(true)?;
    eprintln!("kernel echo listening on {}", listener.local_addr()?);
    let live = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (mut accepted, mut refused) = (0u64, 0u64);
    let end = Instant::now() + args.max_time;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        match listener.accept() {
            Ok((mut s, _)) => {
                accepted += 1;
                if live.load(Ordering::Relaxed) >= args.max_conns {
                    refused += 1;
                    continue;
                }
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                live.fetch_add(1, Ordering::Relaxed);
                let (live2, bytes) = (live.clone(), bytes.clone());
                let spawned = thread::Builder::new()
                    .stack_size(THREAD_STACK)
                    .spawn(move || {
                        let mut buf = vec![0u8; CHUNK];
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                                }
                            }
                        }
                        let _ = s.shutdown(Shutdown::Write);
                        live2.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    refused += 1;
                    live.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(KernelEchoReport {
        accepted,
        refused,
        tcp_bytes: bytes.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_same_whatever_the_chunking() {
        let mut whole = vec![0u8; 1000];
        fill(5, 3, 0, &mut whole);
        let mut parts = vec![0u8; 1000];
        for (a, b) in [(0, 7), (7, 13), (13, 512), (512, 1000)] {
            fill(5, 3, a as u64, &mut parts[a..b]);
        }
        assert_eq!(whole, parts);
        let mut other = vec![0u8; 1000];
        fill(5, 4, 0, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn a_kernel_echo_serves_a_bulk_client_on_loopback() {
        // Bound here and handed over: a port picked by a listener closed
        // before the server binds it again was refused (or taken by another
        // test's socket) when the client came first, once in a full suite.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = KernelEchoArgs {
            addr: "127.0.0.1".parse().expect("addr"),
            port,
            max_conns: 16,
            max_time: Duration::from_secs(20),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let server = thread::spawn(move || serve_kernel_echo(listener, &server, &stop2));
        let report = run_bulk(&BulkArgs {
            addr: "127.0.0.1".parse().expect("addr"),
            port,
            conns: 4,
            bytes: 300_000,
            timeout: Duration::from_secs(20),
            seed: 9,
        });
        assert_eq!(report.failed, 0, "{report:#?}");
        assert_eq!(report.received, 1_200_000, "{report:#?}");
        stop.store(true, Ordering::Relaxed);
        let served = server.join().expect("join").expect("served");
        assert_eq!(served.tcp_bytes, 1_200_000, "{served:#?}");
    }
}
