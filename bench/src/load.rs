//! Load helpers run by the runner inside the client namespace
//! (`xdpstack-bench helper udpload|shortconn ...`).
//!
//! * `udpload`: a closed-loop UDP load generator on kernel sockets: S connected sockets (S
//!   source ports), at most W datagrams in flight on each, sendmmsg/recvmmsg batches; echo
//!   datagrams carry their send time, DNS queries are A queries whose id indexes the send time.
//!   Latency into an HDR histogram. Bounded by time and by a packet count.
//! * `shortconn`: short HTTP connections (connect, one `Connection: close` request, read to
//!   EOF) from C threads, bounded by count and time; every failure classified.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Why a load generator stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A socket call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An epoll call failed.
    #[error("{0}")]
    Sys(#[from] nix::errno::Errno),
    /// The destination refused the UDP "connection".
    #[error("connect {dst}: {source}")]
    Connect {
        /// The destination.
        dst: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Every source port of the range is taken.
    #[error("out of source ports")]
    OutOfPorts,
    /// Opening one connection failed.
    #[error("connection {conn}: {source}")]
    Conn {
        /// Its index.
        conn: usize,
        /// Why.
        source: Box<LoadError>,
    },
    /// The report could not be written.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// What the UDP generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum UdpMode {
    /// Datagrams to echo back.
    Echo,
    /// DNS A queries.
    Dns,
}

/// Result of one `udpload` run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UdpLoadReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Answers received (valid).
    pub received: u64,
    /// Given up as lost (no answer within 20 ms of the last progress on that socket).
    pub lost: u64,
    /// Answers that did not match (bad id, not a response, rcode, no answer).
    pub bad: u64,
    /// Seconds from first send to the end of the drain.
    pub seconds: f64,
    /// Answers per second.
    pub pps: f64,
    /// Round-trip latency percentiles, microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// A DNS query for `qname` type A class IN with id `id` and RD set.
pub fn dns_query(id: u16, qname: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + qname.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in qname.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// Checks a DNS answer: returns its id if it is a response with rcode 0 and at least one
/// answer record.
pub fn dns_answer_id(msg: &[u8]) -> Option<u16> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let qr = msg[2] & 0x80 != 0;
    let rcode = msg[3] & 0x0f;
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    (qr && rcode == 0 && ancount >= 1).then_some(id)
}

struct Flow {
    sock: Socket,
    inflight: u64,
    last_progress: Instant,
    /// DNS: send time (ns since start, +1) by query id; 0 = none outstanding.
    sent_at: Vec<u64>,
    next_id: u16,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
    })
}

/// Runs the UDP generator. `window` datagrams in flight per socket at most.
#[allow(clippy::too_many_arguments)]
pub fn udpload(
    dst: SocketAddr,
    mode: UdpMode,
    sockets: usize,
    window: u64,
    seconds: f64,
    max_packets: u64,
    payload: usize,
    qname: &str,
) -> Result<UdpLoadReport, LoadError> {
    const BATCH: usize = 32;
    let mut flows = Vec::new();
    for _ in 0..sockets.max(1) {
        let s = Socket::new(Domain::for_address(dst), Type::DGRAM, Some(Protocol::UDP))?;
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.connect(&SockAddr::from(dst))
            .map_err(|source| LoadError::Connect { dst, source })?;
        s.set_nonblocking(true)?;
        flows.push(Flow {
            sock: s,
            inflight: 0,
            last_progress: Instant::now(),
            sent_at: if mode == UdpMode::Dns {
                vec![0; 65536]
            } else {
                Vec::new()
            },
            next_id: 0,
        });
    }
    let payload = payload.max(16);
    let mut hist = histogram();
    let mut r = UdpLoadReport::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sh = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut rh = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut out: Vec<Vec<u8>> = vec![vec![0u8; payload.max(64)]; BATCH];
    let mut inb = vec![[0u8; 2048]; BATCH];
    let mut draining = false;
    let mut drain_end = end;
    loop {
        let now = Instant::now();
        if !draining && (now >= end || r.sent >= max_packets) {
            draining = true;
            drain_end = now + Duration::from_millis(50);
        }
        if draining && (now >= drain_end || flows.iter().all(|f| f.inflight == 0)) {
            break;
        }
        let mut progress = false;
        for f in flows.iter_mut() {
            // Send up to the window.
            let room = window.saturating_sub(f.inflight);
            let n = if draining {
                0
            } else {
                (room as usize)
                    .min(BATCH)
                    .min((max_packets - r.sent) as usize)
            };
            if n > 0 {
                let t = start.elapsed().as_nanos() as u64 + 1;
                let mut lens = Vec::with_capacity(n);
                for (k, buf) in out.iter_mut().take(n).enumerate() {
                    match mode {
                        UdpMode::Echo => {
                            buf[..8].copy_from_slice(&(r.sent + k as u64).to_be_bytes());
                            buf[8..16].copy_from_slice(&t.to_be_bytes());
                            lens.push(payload);
                        }
                        UdpMode::Dns => {
                            let id = f.next_id;
                            f.next_id = f.next_id.wrapping_add(1);
                            let q = dns_query(id, qname);
                            buf[..q.len()].copy_from_slice(&q);
                            lens.push(q.len());
                        }
                    }
                }
                let iovs: Vec<[IoSlice; 1]> = out
                    .iter()
                    .zip(&lens)
                    .map(|(b, l)| [IoSlice::new(&b[..*l])])
                    .collect();
                let addrs: Vec<Option<SockaddrStorage>> = vec![None; n];
                if let Ok(res) = sendmmsg(
                    f.sock.as_raw_fd(),
                    &mut sh,
                    &iovs,
                    &addrs,
                    [] as [nix::sys::socket::ControlMessage; 0],
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    let done = res.count();
                    if mode == UdpMode::Dns {
                        // Record the send time of the ids that went out; the rest are re-used.
                        let first = f.next_id.wrapping_sub(n as u16);
                        for k in 0..done {
                            f.sent_at[first.wrapping_add(k as u16) as usize] = t;
                        }
                        f.next_id = first.wrapping_add(done as u16);
                    }
                    f.inflight += done as u64;
                    r.sent += done as u64;
                    if f.inflight == done as u64 {
                        f.last_progress = Instant::now();
                    }
                }
            }
            // Receive what is there.
            loop {
                let mut got: Vec<usize> = Vec::with_capacity(BATCH);
                {
                    let mut iovs: Vec<[IoSliceMut; 1]> = inb
                        .iter_mut()
                        .map(|b| [IoSliceMut::new(&mut b[..])])
                        .collect();
                    match recvmmsg(
                        f.sock.as_raw_fd(),
                        &mut rh,
                        iovs.iter_mut(),
                        MsgFlags::MSG_DONTWAIT,
                        None,
                    ) {
                        Ok(res) => got.extend(res.map(|m| m.bytes)),
                        Err(_) => break,
                    }
                }
                if got.is_empty() {
                    break;
                }
                let now_ns = start.elapsed().as_nanos() as u64 + 1;
                for (len, b) in got.iter().zip(inb.iter()) {
                    let sent_t = match mode {
                        UdpMode::Echo if *len >= 16 => {
                            let mut t = [0u8; 8];
                            t.copy_from_slice(&b[8..16]);
                            Some(u64::from_be_bytes(t))
                        }
                        UdpMode::Echo => None,
                        UdpMode::Dns => dns_answer_id(&b[..*len]).and_then(|id| {
                            let t = std::mem::take(&mut f.sent_at[id as usize]);
                            (t != 0).then_some(t)
                        }),
                    };
                    match sent_t {
                        Some(t) if t <= now_ns => {
                            let _ = hist.record((now_ns - t).max(1));
                            r.received += 1;
                        }
                        _ => r.bad += 1,
                    }
                    f.inflight = f.inflight.saturating_sub(1);
                }
                f.last_progress = Instant::now();
                progress = true;
                if got.len() < BATCH {
                    break;
                }
            }
            if f.inflight > 0 && f.last_progress.elapsed() > Duration::from_millis(20) {
                r.lost += f.inflight;
                f.inflight = 0;
                if mode == UdpMode::Dns {
                    f.sent_at.iter_mut().for_each(|t| *t = 0);
                }
                f.last_progress = Instant::now();
            }
        }
        if !progress {
            let mut fds: Vec<nix::poll::PollFd> = flows
                .iter()
                .map(|f| nix::poll::PollFd::new(f.sock.as_fd(), nix::poll::PollFlags::POLLIN))
                .collect();
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1u8));
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    r.pps = r.received as f64 / r.seconds.max(1e-9);
    if !hist.is_empty() {
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        r.p50_us = us(0.5);
        r.p90_us = us(0.9);
        r.p99_us = us(0.99);
        r.p999_us = us(0.999);
        r.mean_us = hist.mean() / 1000.0;
    }
    Ok(r)
}

/// Result of one `shortconn` run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShortConnReport {
    /// Connections attempted.
    pub attempted: u64,
    /// Answered with 200 and closed cleanly.
    pub ok: u64,
    /// connect() refused (RST to the SYN).
    pub refused: u64,
    /// connect() timed out.
    pub connect_timeout: u64,
    /// Reset after connecting (ECONNRESET/EPIPE while writing or reading).
    pub reset: u64,
    /// No complete answer within the read timeout.
    pub timeout: u64,
    /// Answered, but not with 200.
    pub bad_response: u64,
    /// Seconds.
    pub seconds: f64,
    /// Successful connections per second.
    pub cps: f64,
    /// Latency of successful connections (connect to EOF), microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

impl ShortConnReport {
    /// Every attempt that did not end in a 200.
    pub fn failed(&self) -> u64 {
        self.attempted - self.ok
    }
}

enum Outcome {
    Ok,
    Refused,
    ConnectTimeout,
    Reset,
    Timeout,
    Bad,
}

fn one_conn(dst: SocketAddr, timeout: Duration) -> Outcome {
    let mut s = match TcpStream::connect_timeout(&dst, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Outcome::ConnectTimeout,
        Err(_) => return Outcome::Reset,
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host(&dst)
    );
    if s.write_all(req.as_bytes()).is_err() {
        return Outcome::Reset;
    }
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Outcome::Timeout
            }
            Err(_) => return Outcome::Reset,
        }
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    if buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200") {
        Outcome::Ok
    } else if buf.is_empty() {
        Outcome::Reset
    } else {
        Outcome::Bad
    }
}

/// Runs `conns` short connections from `concurrency` threads, stopping at `max_seconds`.
/// `on_progress` is not used across processes: the caller reads the report.
pub fn shortconn(
    dst: SocketAddr,
    conns: u64,
    concurrency: usize,
    max_seconds: f64,
    timeout: Duration,
) -> ShortConnReport {
    let next = Arc::new(AtomicU64::new(0));
    let counts: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let hist = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(max_seconds);
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let counts = counts.clone();
        let hist = hist.clone();
        handles.push(std::thread::spawn(move || {
            let mut local = histogram();
            while Instant::now() < end && next.fetch_add(1, Ordering::Relaxed) < conns {
                let t0 = Instant::now();
                let k = match one_conn(dst, timeout) {
                    Outcome::Ok => {
                        let _ = local.record(t0.elapsed().as_nanos().max(1) as u64);
                        0
                    }
                    Outcome::Refused => 1,
                    Outcome::ConnectTimeout => 2,
                    Outcome::Reset => 3,
                    Outcome::Timeout => 4,
                    Outcome::Bad => 5,
                };
                counts[k].fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut h) = hist.lock() {
                let _ = h.add(&local);
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let c = |k: usize| counts[k].load(Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    let mut r = ShortConnReport {
        attempted: (0..6).map(c).sum(),
        ok: c(0),
        refused: c(1),
        connect_timeout: c(2),
        reset: c(3),
        timeout: c(4),
        bad_response: c(5),
        seconds,
        cps: c(0) as f64 / seconds.max(1e-9),
        ..Default::default()
    };
    if let Ok(h) = hist.lock() {
        if !h.is_empty() {
            r.p50_us = h.value_at_quantile(0.5) as f64 / 1000.0;
            r.p99_us = h.value_at_quantile(0.99) as f64 / 1000.0;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_query_and_answer() {
        let q = dns_query(0xbeef, "www.bench.test.");
        assert_eq!(&q[..2], &[0xbe, 0xef]);
        assert_eq!(&q[2..4], &[0x01, 0x00]);
        assert_eq!(&q[12..16], &[3, b'w', b'w', b'w']);
        assert_eq!(&q[q.len() - 5..], &[0, 0, 1, 0, 1]);
        // A query is not an answer.
        assert_eq!(dns_answer_id(&q), None);
        let mut a = q.clone();
        a[2] |= 0x80; // QR
        a[7] = 1; // ANCOUNT
        assert_eq!(dns_answer_id(&a), Some(0xbeef));
        a[3] |= 3; // NXDOMAIN
        assert_eq!(dns_answer_id(&a), None);
        assert_eq!(dns_answer_id(&[0; 5]), None);
    }

    #[test]
    fn udp_report_roundtrips_as_json() {
        let r = UdpLoadReport {
            sent: 10,
            received: 9,
            lost: 1,
            pps: 9.0,
            p99_us: 12.5,
            ..Default::default()
        };
        let s = serde_json::to_string(&r).expect("json");
        let back: UdpLoadReport = serde_json::from_str(&s).expect("parse");
        assert_eq!(back, r);
    }
}

/// Result of one `kaload` run (keep-alive load over many connections).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KaLoadReport {
    /// Connections asked for.
    pub conns: u64,
    /// Connections that completed the handshake.
    pub established: u64,
    /// Most connections established at the same time.
    pub peak_established: u64,
    /// Seconds until every connection was up (or the run ended).
    pub connect_seconds: f64,
    /// Responses received (complete, status 200).
    pub requests: u64,
    /// Responses that were not 200.
    pub non_200: u64,
    /// Connection errors (refused, reset, failed bind/connect).
    pub errors: u64,
    /// Requests without an answer within the timeout (the connection is dropped and redialled).
    pub timeouts: u64,
    /// Seconds the run lasted.
    pub seconds: f64,
    /// Responses per second over the whole run.
    pub rps: f64,
    /// Latency percentiles (request written to response complete), microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Responses completed after the steady mark (`steady_after` seconds into the run).
    #[serde(default)]
    pub steady_requests: u64,
    /// Seconds from the steady mark to the end of the run.
    #[serde(default)]
    pub steady_seconds: f64,
    /// Connections established at the steady mark.
    #[serde(default)]
    pub established_at_mark: u64,
}

#[derive(PartialEq)]
enum KaState {
    Connecting,
    Waiting,
}

struct KaConn {
    sock: Socket,
    state: KaState,
    sent_at: Instant,
    buf: Vec<u8>,
}

/// Position just past `\r\n\r\n` and the Content-Length of a response head, if complete.
pub fn response_len(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    let mut len = 0;
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    Some((end, len, ok))
}

/// Keeps `conns` keep-alive connections busy with one request at a time each for `seconds`.
/// Every connection binds its own source port from `ports` (explicit binds are O(1), where
/// connect()'s port search crawls once half the ephemeral range is taken). Responses after
/// `steady_after` seconds are also counted apart (the steady phase after the connections
/// are up).
pub fn kaload(
    dst: SocketAddr,
    src: std::net::IpAddr,
    ports: std::ops::Range<u16>,
    conns: u64,
    seconds: f64,
    timeout: Duration,
    steady_after: f64,
) -> Result<KaLoadReport, LoadError> {
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    let ep = Epoll::new(EpollCreateFlags::empty())?;
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", host(&dst));
    let mut slots: Vec<Option<KaConn>> = Vec::new();
    let mut next_port = ports.start;
    let mut r = KaLoadReport {
        conns,
        ..Default::default()
    };
    let mut hist = histogram();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut established_now = 0u64;
    let mut all_up_at: Option<Instant> = None;
    let mark = start + Duration::from_secs_f64(steady_after.clamp(0.0, seconds));
    let mut marked = false;

    // Opens connection `i` on the next free source port.
    let dial = |i: usize,
                next_port: &mut u16,
                ep: &Epoll,
                slots: &mut Vec<Option<KaConn>>|
     -> Result<(), LoadError> {
        loop {
            if *next_port >= ports.end {
                return Err(LoadError::OutOfPorts);
            }
            let port = *next_port;
            *next_port += 1;
            let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
            s.set_nonblocking(true)?;
            let _ = s.set_nodelay(true);
            if s.bind(&SockAddr::from(SocketAddr::new(src, port))).is_err() {
                continue;
            }
            match s.connect(&SockAddr::from(dst)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) => {}
                Err(_) => continue,
            }
            ep.add(
                s.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLIN, i as u64),
            )?;
            slots[i] = Some(KaConn {
                sock: s,
                state: KaState::Connecting,
                sent_at: Instant::now(),
                buf: Vec::with_capacity(256),
            });
            return Ok(());
        }
    };

    slots.resize_with(conns as usize, || None);
    for i in 0..conns as usize {
        if Instant::now() >= end {
            break;
        }
        if let Err(e) = dial(i, &mut next_port, &ep, &mut slots) {
            return Err(LoadError::Conn {
                conn: i,
                source: Box::new(e),
            });
        }
    }
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut chunk = [0u8; 4096];
    let mut last_sweep = Instant::now();
    while Instant::now() < end {
        if !marked && Instant::now() >= mark {
            marked = true;
            r.established_at_mark = established_now;
        }
        let n = ep.wait(&mut events, EpollTimeout::from(10u8))?;
        for ev in &events[..n] {
            let i = ev.data() as usize;
            let mut redial = false;
            let Some(c) = slots.get_mut(i).and_then(|s| s.as_mut()) else {
                continue;
            };
            if c.state == KaState::Connecting {
                if !ev.events().contains(EpollFlags::EPOLLOUT)
                    && !ev.events().contains(EpollFlags::EPOLLERR)
                {
                    continue;
                }
                match c.sock.take_error() {
                    Ok(None) => {
                        r.established += 1;
                        established_now += 1;
                        r.peak_established = r.peak_established.max(established_now);
                        if established_now == conns && all_up_at.is_none() {
                            all_up_at = Some(Instant::now());
                        }
                        let _ = ep.modify(
                            c.sock.as_fd(),
                            &mut EpollEvent::new(EpollFlags::EPOLLIN, i as u64),
                        );
                        c.state = KaState::Waiting;
                        c.sent_at = Instant::now();
                        if c.sock.send(req.as_bytes()).is_err() {
                            r.errors += 1;
                            redial = true;
                        }
                    }
                    _ => {
                        r.errors += 1;
                        redial = true;
                    }
                }
            } else {
                loop {
                    match std::io::Read::read(&mut c.sock, &mut chunk) {
                        Ok(0) => {
                            r.errors += 1;
                            redial = true;
                            break;
                        }
                        Ok(k) => c.buf.extend_from_slice(&chunk[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            r.errors += 1;
                            redial = true;
                            break;
                        }
                    }
                }
                if !redial {
                    if let Some((head, len, ok)) = response_len(&c.buf) {
                        if c.buf.len() >= head + len {
                            c.buf.drain(..head + len);
                            if ok {
                                r.requests += 1;
                                if marked {
                                    r.steady_requests += 1;
                                }
                                let _ = hist.record(c.sent_at.elapsed().as_nanos().max(1) as u64);
                            } else {
                                r.non_200 += 1;
                            }
                            c.sent_at = Instant::now();
                            if c.sock.send(req.as_bytes()).is_err() {
                                r.errors += 1;
                                redial = true;
                            }
                        }
                    }
                }
            }
            if redial {
                if let Some(old) = slots[i].take() {
                    if old.state == KaState::Waiting {
                        established_now = established_now.saturating_sub(1);
                    }
                    let _ = ep.delete(old.sock.as_fd());
                }
                if dial(i, &mut next_port, &ep, &mut slots).is_err() {
                    // Out of ports: this connection stays closed.
                }
            }
        }
        // Requests or handshakes past the timeout: drop and redial.
        if last_sweep.elapsed() >= Duration::from_millis(200) {
            last_sweep = Instant::now();
            for i in 0..slots.len() {
                let stale = slots[i]
                    .as_ref()
                    .is_some_and(|c| c.sent_at.elapsed() > timeout);
                if stale {
                    if let Some(old) = slots[i].take() {
                        if old.state == KaState::Waiting {
                            established_now = established_now.saturating_sub(1);
                        }
                        let _ = ep.delete(old.sock.as_fd());
                    }
                    r.timeouts += 1;
                    let _ = dial(i, &mut next_port, &ep, &mut slots);
                }
            }
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    r.steady_seconds = (Instant::now() - mark.min(Instant::now())).as_secs_f64();
    r.connect_seconds = all_up_at.map_or(r.seconds, |t| (t - start).as_secs_f64());
    r.rps = r.requests as f64 / r.seconds.max(1e-9);
    if !hist.is_empty() {
        r.p50_us = hist.value_at_quantile(0.5) as f64 / 1000.0;
        r.p99_us = hist.value_at_quantile(0.99) as f64 / 1000.0;
    }
    Ok(r)
}

#[cfg(test)]
mod ka_tests {
    use super::*;

    #[test]
    fn response_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        let (head, len, ok) = response_len(r).expect("complete head");
        assert_eq!((len, ok), (5, true));
        assert_eq!(&r[head..head + len], b"hello");
        assert_eq!(response_len(b"HTTP/1.1 200 OK\r\nContent-Le"), None);
        let (_, len, ok) =
            response_len(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").expect("head");
        assert_eq!((len, ok), (0, false));
    }
}

/// The Host field for `dst`: an IPv6 address in brackets (RFC 9110 §7.2 with RFC 3986's
/// IP-literal; the server refuses it bare).
fn host(dst: &std::net::SocketAddr) -> String {
    match dst.ip() {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}
