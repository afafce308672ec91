//! The forwarder process: two AF_PACKET sockets in the sandbox's middle namespace and an
//! [`Impairer`] for each direction between them.
//!
//! It runs until SIGINT/SIGTERM (the sandbox's teardown sends SIGTERM) or until one of its
//! interfaces goes away (deleting either end's namespace deletes that veth pair), so it never
//! outlives the sandbox. Its counters are written as JSON to a file every second and on exit.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nic::packet::{PacketSocket, Recv};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use super::{ImpairCounters, Impairer};

/// Frames read from one socket per wakeup at most (the other side gets its turn).
const RX_BATCH: usize = 256;
/// Longest sleep: the stop flag is looked at this often.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// How often the counters file is rewritten.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Largest frame handled (a jumbo frame plus a VLAN tag); larger ones are dropped.
const MAX_FRAME: usize = 9216 + 18;

/// `xdpstack sandbox impair` options (run inside the middle namespace by `sandbox up`).
#[derive(clap::Args, Clone, Debug)]
pub struct ForwardArgs {
    /// Interface towards the client.
    #[arg(long)]
    pub client_if: String,
    /// Interface towards the server.
    #[arg(long)]
    pub server_if: String,
    /// Write the report (JSON counters) to this file every second and on
    /// exit.
    #[arg(long, value_name = "FILE", alias = "stats-file")]
    pub report: Option<PathBuf>,
    /// With `--mtu`: the source of the ICMP "fragmentation needed" messages (the
    /// forwarder's own address on the server's side).
    #[arg(long, default_value_t = super::mtu::ROUTER_IP4)]
    pub router_ip4: std::net::Ipv4Addr,
    /// With `--mtu`: the source of the ICMPv6 "packet too big" messages.
    #[arg(long, default_value_t = super::mtu::ROUTER_IP6)]
    pub router_ip6: std::net::Ipv6Addr,
    /// The impairment.
    #[command(flatten)]
    pub impair: super::ImpairArgs,
}

/// The forwarder's counters.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ForwardStats {
    /// The impairment applied.
    pub spec: String,
    /// True once both sockets are open (frames are forwarded from then on).
    pub ready: bool,
    /// Client to server.
    pub to_server: ImpairCounters,
    /// Server to client.
    pub to_client: ImpairCounters,
    /// `--mtu`: packets towards the client too big for it.
    pub mtu: super::mtu::MtuCounters,
    /// Frames longer than the receive buffer, dropped.
    pub oversize: u64,
    /// Frames the kernel had no room for, dropped.
    pub tx_busy: u64,
    /// Frames the kernel refused to send, dropped.
    pub tx_errors: u64,
    /// Why the forwarder stopped.
    pub stopped: Option<String>,
}

/// Whether an error means the interface is gone (its namespace was deleted).
fn is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(nix::libc::ENETDOWN | nix::libc::ENODEV | nix::libc::ENXIO | nix::libc::EBADF)
    )
}

fn write_stats(path: Option<&Path>, stats: &ForwardStats) {
    let Some(path) = path else { return };
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(stats).unwrap_or_default();
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Why the forwarder did not run.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A bad impairment.
    #[error(transparent)]
    Impair(#[from] super::ImpairError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// An AF_PACKET socket could not be opened.
    #[error("AF_PACKET on {iface}: {source}")]
    Socket {
        /// The interface.
        iface: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the forwarder until a signal or an interface disappears. Returns the final counters.
pub fn run(args: &ForwardArgs) -> Result<ForwardStats, ForwardError> {
    let spec = args.impair.spec();
    spec.validate()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(ForwardError::Signal)?;
    }
    let open = |name: &str| {
        PacketSocket::open(name).map_err(|source| ForwardError::Socket {
            iface: name.to_string(),
            source,
        })
    };
    let client = open(&args.client_if)?;
    let server = open(&args.server_if)?;
    let stats_path = args.report.as_deref();
    let mut stats = ForwardStats {
        spec: spec.to_string(),
        ready: true,
        ..ForwardStats::default()
    };
    // The MTU towards the client: its ICMP errors go back out of the server's side, from
    // the forwarder's interface there.
    let gate = (spec.mtu > 0).then(|| super::mtu::MtuGate {
        mtu: spec.mtu,
        mac: super::mtu::interface_mac(&args.server_if).unwrap_or([0x02, 0, 0, 0, 0, 0xfe]),
        ip4: args.router_ip4,
        ip6: args.router_ip6,
    });
    let mut to_server = Impairer::new(spec, 0);
    let mut to_client = Impairer::new(spec, 1);
    write_stats(stats_path, &stats);
    let mut buf = vec![0u8; MAX_FRAME];
    let mut next_stats = Instant::now() + STATS_EVERY;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok("signal".to_string());
        }
        let now = Instant::now();
        let mut failed = None;
        for (sock, imp, towards_client) in [
            (&client, &mut to_server, false),
            (&server, &mut to_client, true),
        ] {
            for _ in 0..RX_BATCH {
                match sock.recv(&mut buf) {
                    Ok(Recv::Frame(n)) => match gate.as_ref().filter(|_| towards_client) {
                        Some(g) => match g.check(&buf[..n], &mut stats.mtu) {
                            super::mtu::Gate::Pass => imp.push(now, &buf[..n]),
                            // The answer comes from the router before the link: not
                            // impaired.
                            super::mtu::Gate::TooBig(reply) => match server.send(&reply) {
                                Ok(true) => {}
                                Ok(false) => stats.tx_busy += 1,
                                Err(_) => stats.tx_errors += 1,
                            },
                            super::mtu::Gate::Drop => {}
                        },
                        None => imp.push(now, &buf[..n]),
                    },
                    Ok(Recv::Truncated(_)) => stats.oversize += 1,
                    Ok(Recv::Empty) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        for (sock, imp) in [(&server, &mut to_server), (&client, &mut to_client)] {
            while let Some(frame) = imp.pop(now) {
                match sock.send(&frame) {
                    Ok(true) => {}
                    Ok(false) => stats.tx_busy += 1,
                    Err(e) if is_gone(&e) => failed = Some(e),
                    Err(_) => stats.tx_errors += 1,
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if now >= next_stats {
            next_stats = now + STATS_EVERY;
            stats.to_server = to_server.counters();
            stats.to_client = to_client.counters();
            write_stats(stats_path, &stats);
        }
        let wake = [to_server.next_due(now), to_client.next_due(now)]
            .into_iter()
            .flatten()
            .min()
            .map_or(MAX_SLEEP, |at| at.saturating_duration_since(now))
            .min(MAX_SLEEP);
        // Sleep until the next frame is due (or one arrives), to the microsecond: poll(2)'s
        // whole milliseconds would release a bottleneck's frames in 1 ms bursts. Nothing due
        // now means a real sleep (never a spin): `wake` is zero only when a frame is ready,
        // and then the loop sends it.
        let mut fds = [
            PollFd::new(client.as_fd(), PollFlags::POLLIN),
            PollFd::new(server.as_fd(), PollFlags::POLLIN),
        ];
        match ppoll(&mut fds, Some(TimeSpec::from_duration(wake)), None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => break Err(io::Error::from(e)),
        }
        let bad = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
        if fds
            .iter()
            .any(|fd| fd.revents().is_some_and(|r| r.intersects(bad)))
        {
            // The error itself is read (and reported) by the next recv.
            continue;
        }
    };
    stats.to_server = to_server.counters();
    stats.to_client = to_client.counters();
    stats.stopped = Some(match &result {
        Ok(why) => why.clone(),
        Err(e) => format!("interface error: {e}"),
    });
    write_stats(stats_path, &stats);
    Ok(stats)
}
