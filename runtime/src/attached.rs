//! Running a service as a process attached to `xdpstack daemon` (`http
//! --attach`, `echo --attach`): one thread per daemon core, each running
//! the service on that core's shared-memory channel (`attach::Core`), until
//! SIGINT/SIGTERM (graceful, within the grace) or the daemon goes away.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::report::{AttachedCore, AttachedReport};
use crate::server::{AppError, WorkerCtx};

/// Why an attached service stopped or did not start.
#[derive(Debug, thiserror::Error)]
pub enum AttachedError {
    /// No `--attach PATH`.
    #[error("--attach PATH is required")]
    NoPath,
    /// The daemon's control socket refused us.
    #[error("attach to {}: {source}", path.display())]
    Connect {
        /// The control socket.
        path: PathBuf,
        /// Why.
        source: attach::AttachError,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// The service refused to start on a daemon core (a bind failed, ...).
    #[error("core {0}: {1}")]
    App(usize, #[source] AppError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The daemon closed the control connection while we served.
    #[error("the daemon at {} went away", .0.display())]
    DaemonGone(PathBuf),
}

/// The options of [`ServerArgs`](crate::server::ServerArgs) (and the XSK
/// and steering options it holds) that only a server owning the interface
/// uses: the daemon decides them for an attached process.
pub const SERVER_ONLY: [&str; 33] = [
    "iface",
    "addr",
    "addr6",
    "gateway",
    "gateway6",
    "workers",
    "queues",
    "cores",
    "map",
    "unserved",
    "no_pin",
    "selector",
    "hash_key",
    "uid",
    "tcp_buf",
    "cc",
    "xdp_mode",
    "zero_copy",
    "frames",
    "frame_size",
    "rx_ring",
    "tx_ring",
    "fill_ring",
    "comp_ring",
    "no_need_wakeup",
    "busy_poll",
    "busy_poll_budget",
    "tx_budget",
    "pcap",
    "pcap_limit",
    "xdp_run_stats",
    "steer",
    "vlan",
];

/// Options of attached mode.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AttachArgs {
    /// Attach to the `xdpstack daemon` at this control socket instead of
    /// opening an interface: run unprivileged, one thread per daemon core.
    /// The daemon owns the interface, its queues, cores, addresses and
    /// stack options: the options that set those are refused with it.
    #[arg(long, value_name = "PATH", conflicts_with_all = SERVER_ONLY)]
    pub attach: Option<PathBuf>,
    /// With --attach: pin the thread of daemon core i to core i (beside
    /// the daemon's worker).
    #[arg(long)]
    pub pin: bool,
}

/// Attach to the daemon at `args.attach`, make the service for every core
/// (all binds done before any thread serves: a refused bind fails the
/// start whole), serve until stopped. Returns the per-core counters.
pub fn run<S, E, F, J>(
    name: &str,
    args: &AttachArgs,
    grace: Duration,
    make: F,
    json_of: J,
) -> Result<AttachedReport, AttachedError>
where
    S: attach::Service + Send + 'static,
    E: Into<AppError>,
    F: Fn(&WorkerCtx, &mut attach::Core) -> Result<S, E>,
    J: Fn(&S) -> Value + Send + Sync + 'static,
{
    let path = args.attach.clone().ok_or(AttachedError::NoPath)?;
    let client = attach::Client::connect(&path).map_err(|e| AttachedError::Connect {
        path: path.clone(),
        source: e,
    })?;
    let stop = crate::xsk_opts::stop_flag().map_err(AttachedError::Signal)?;
    let reload = Arc::new(AtomicU64::new(0));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(AttachedError::Signal)?;
    let watch = client.watch();
    let mut cores = client.into_cores();
    let mut services = Vec::new();
    for core in cores.iter_mut() {
        // The daemon's selector decides; the uid is the kernel's.
        let ctx = WorkerCtx::hashed(core.index(), reload.clone());
        let index = core.index();
        services.push(make(&ctx, core).map_err(|e| AttachedError::App(index, e.into()))?);
    }
    eprintln!(
        "xdpstack {name}: attached to {} ({} core(s))",
        path.display(),
        cores.len()
    );
    let json_of = Arc::new(json_of);
    let mut handles = Vec::new();
    for (mut core, mut svc) in cores.into_iter().zip(services) {
        let stop = stop.clone();
        let pin = args.pin;
        let json_of = json_of.clone();
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-a{}", core.index()))
            .spawn(move || {
                if pin {
                    stack::worker::pin_to_core(core.index());
                }
                attach::run(&mut core, &mut svc, &stop, grace);
                AttachedCore {
                    core: core.index(),
                    app: json_of(&svc),
                }
            })
            .map_err(AttachedError::Thread)?;
        handles.push(h);
    }
    while !handles.iter().all(|h| h.is_finished()) {
        if hup.swap(false, Ordering::Relaxed) {
            reload.fetch_add(1, Ordering::Relaxed);
        }
        if watch.gone() {
            return Err(AttachedError::DaemonGone(path));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cores = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    Ok(AttachedReport {
        service: name.to_string(),
        attached: path.display().to_string(),
        cores,
    })
}
