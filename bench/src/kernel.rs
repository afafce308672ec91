//! Kernel baseline servers, run by the runner inside the server namespace
//! (`xdpstack-bench helper kudp|khttp ...`).
//!
//! * `kudp`: N threads, each with its own SO_REUSEPORT UDP socket (socket2), echoing datagrams in
//!   batches with recvmmsg/sendmmsg (nix).
//! * `khttp`: a minimal HTTP/1.1 server for short connections, N threads, either one listening
//!   socket shared by all threads (blocking accept) or one SO_REUSEPORT listener per thread;
//!   with `--churn-ms` every thread replaces its listener that often (open the new one, accept
//!   what the old one holds, close it): the best a kernel application can do.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Why a kernel baseline server did not start.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// The UDP socket could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TCP listener could not be opened.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The body every HTTP server in the suite returns (the stack's default body).
pub const BODY: &str = "hello from xdpstack\n";

/// Pins the calling thread to `cpu` (nix's safe `sched_setaffinity`).
pub fn pin(cpu: usize) -> bool {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_err() {
        return false;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok()
}

/// Parses "0,1" or "0-1" into CPU numbers.
pub fn parse_cpus(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                out.extend(a..=b);
            }
        } else if let Ok(c) = part.trim().parse() {
            out.push(c);
        }
    }
    out
}

fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_recv_buffer_size(4 << 20)?;
    s.set_send_buffer_size(4 << 20)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

const BATCH: usize = 64;

/// The UDP echo server: returns when SIGINT/SIGTERM arrives; prints per-thread counts (JSON).
pub fn kudp(bind: SocketAddr, threads: usize, cpus: &[usize]) -> Result<(), KernelError> {
    let stop = stop_on_signals().map_err(KernelError::Signal)?;
    let mut sockets = Vec::new();
    for _ in 0..threads.max(1) {
        sockets.push(udp_socket(bind).map_err(|source| KernelError::Bind { addr: bind, source })?);
    }
    let mut handles = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let stop = stop.clone();
        let cpu = cpus.get(i % cpus.len().max(1)).copied();
        handles.push(std::thread::spawn(move || {
            if let Some(c) = cpu {
                pin(c);
            }
            let fd = sock.as_raw_fd();
            let mut bufs = vec![[0u8; 2048]; BATCH];
            let mut rh = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut sh = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut echoed = 0u64;
            let mut send_errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut got: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
                {
                    let mut iovs: Vec<[IoSliceMut; 1]> = bufs
                        .iter_mut()
                        .map(|b| [IoSliceMut::new(&mut b[..])])
                        .collect();
                    match recvmmsg(
                        fd,
                        &mut rh,
                        iovs.iter_mut(),
                        MsgFlags::MSG_WAITFORONE,
                        None,
                    ) {
                        Ok(res) => {
                            for m in res {
                                got.push((m.bytes, m.address));
                            }
                        }
                        Err(_) => continue,
                    }
                }
                if got.is_empty() {
                    continue;
                }
                let iovs: Vec<[IoSlice; 1]> = got
                    .iter()
                    .zip(bufs.iter())
                    .map(|((n, _), b)| [IoSlice::new(&b[..*n])])
                    .collect();
                let addrs: Vec<Option<SockaddrStorage>> = got.iter().map(|(_, a)| *a).collect();
                let mut off = 0;
                while off < iovs.len() {
                    match sendmmsg(
                        fd,
                        &mut sh,
                        &iovs[off..],
                        &addrs[off..],
                        [] as [nix::sys::socket::ControlMessage; 0],
                        MsgFlags::empty(),
                    ) {
                        Ok(res) => {
                            let n = res.count();
                            if n == 0 {
                                break;
                            }
                            off += n;
                            echoed += n as u64;
                        }
                        Err(_) => {
                            send_errors += (iovs.len() - off) as u64;
                            break;
                        }
                    }
                }
            }
            serde_json::json!({"thread": i, "cpu": cpu, "echoed": echoed, "send_errors": send_errors})
        }));
    }
    let per: Vec<serde_json::Value> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    println!("{}", serde_json::json!({"server": "kudp", "threads": per}));
    Ok(())
}

/// How the HTTP server's threads share the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListenMode {
    /// One listening socket, every thread blocks in accept() on it.
    Shared,
    /// One SO_REUSEPORT listener per thread.
    Reuseport,
}

fn tcp_listener(addr: SocketAddr, reuseport: bool, nonblocking: bool) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuseport {
        s.set_reuse_port(true)?;
    }
    s.bind(&SockAddr::from(addr))?;
    s.listen(4096)?;
    if nonblocking {
        s.set_nonblocking(true)?;
    } else {
        // accept() returns EAGAIN every 100 ms so that the thread sees the stop flag.
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
    }
    Ok(s)
}

/// Answers one short HTTP connection: read the head, write the response, close.
fn serve_conn(sock: Socket) -> bool {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = sock.set_nodelay(true);
    let mut s: TcpStream = sock.into();
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                have += n;
                if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
                if have == buf.len() {
                    return false;
                }
            }
        }
    }
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    s.write_all(resp.as_bytes()).is_ok()
}

/// The HTTP server for the fairness and churn scenarios. Prints per-thread counts (JSON) when
/// SIGINT/SIGTERM arrives.
pub fn khttp(
    bind: SocketAddr,
    threads: usize,
    cpus: &[usize],
    mode: ListenMode,
    churn: Option<Duration>,
) -> Result<(), KernelError> {
    let stop = stop_on_signals().map_err(KernelError::Signal)?;
    let threads = threads.max(1);
    let shared = match mode {
        ListenMode::Shared => Some(Arc::new(
            tcp_listener(bind, false, false)
                .map_err(|source| KernelError::Listen { addr: bind, source })?,
        )),
        ListenMode::Reuseport => None,
    };
    // Open every reuseport listener before serving, so the group is complete from the start.
    let mut own: Vec<Option<Socket>> = Vec::new();
    for _ in 0..threads {
        own.push(match mode {
            ListenMode::Shared => None,
            ListenMode::Reuseport => Some(
                tcp_listener(bind, true, churn.is_some())
                    .map_err(|source| KernelError::Listen { addr: bind, source })?,
            ),
        });
    }
    let mut handles = Vec::new();
    for (i, mine) in own.into_iter().enumerate() {
        let stop = stop.clone();
        let shared = shared.clone();
        let cpu = cpus.get(i % cpus.len().max(1)).copied();
        handles.push(std::thread::spawn(move || {
            if let Some(c) = cpu {
                pin(c);
            }
            let mut accepted = 0u64;
            let mut served = 0u64;
            let mut replaced = 0u64;
            let mut reopen_errors = 0u64;
            match (shared, mine, churn) {
                (Some(l), _, _) => {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((c, _)) = l.accept() {
                            accepted += 1;
                            served += u64::from(serve_conn(c));
                        }
                    }
                }
                (None, Some(l), None) => {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((c, _)) = l.accept() {
                            accepted += 1;
                            served += u64::from(serve_conn(c));
                        }
                    }
                }
                (None, Some(mut l), Some(every)) => {
                    let mut next = Instant::now() + every;
                    while !stop.load(Ordering::Relaxed) {
                        if Instant::now() >= next {
                            next += every;
                            match tcp_listener(bind, true, true) {
                                Ok(new) => {
                                    // Take what the old one holds, then close it.
                                    while let Ok((c, _)) = l.accept() {
                                        accepted += 1;
                                        served += u64::from(serve_conn(c));
                                    }
                                    l = new;
                                    replaced += 1;
                                }
                                Err(_) => reopen_errors += 1,
                            }
                        }
                        let mut fds = [nix::poll::PollFd::new(
                            l.as_fd(),
                            nix::poll::PollFlags::POLLIN,
                        )];
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
                        while let Ok((c, _)) = l.accept() {
                            accepted += 1;
                            served += u64::from(serve_conn(c));
                        }
                    }
                }
                (None, None, _) => {}
            }
            serde_json::json!({"thread": i, "cpu": cpu, "accepted": accepted, "served": served,
                               "replaced": replaced, "reopen_errors": reopen_errors})
        }));
    }
    let per: Vec<serde_json::Value> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    println!(
        "{}",
        serde_json::json!({"server": "khttp", "mode": format!("{mode:?}"), "threads": per})
    );
    Ok(())
}
