//! Running a service on the stack: open one XSK per worker (one worker per
//! queue), pin each worker to a core, run the engine and the application
//! until SIGINT/SIGTERM, then report and release everything.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nic::xsk::{rx_queue_count, XskConfig, XskRings};
use serde_json::{json, Value};
use stack::engine::{Engine, EngineConfig};
use stack::reuseport::{selector_by_name, BindOptions, FlowHasher, Selector};
use stack::shared::Shared;
use stack::worker::{self, App, LoopConfig};

/// Options every server shares.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Interface the stack owns (its kernel side should hold no address).
    #[arg(long)]
    pub iface: String,
    /// IPv4 address with prefix, e.g. 198.18.0.1/24.
    #[arg(long, value_parser = parse_v4)]
    pub addr: Option<(Ipv4Addr, u8)>,
    /// IPv6 address with prefix, e.g. 2001:db8:18::1/64.
    #[arg(long, value_parser = parse_v6)]
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// IPv4 gateway for off-link clients.
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 gateway for off-link clients.
    #[arg(long)]
    pub gateway6: Option<Ipv6Addr>,
    /// Workers: one per NIC queue (queues 0..N), each pinned to a core.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub xdp_mode: ModeArg,
    /// UMEM frames per worker.
    #[arg(long, default_value_t = 4096)]
    pub frames: u32,
    /// Write final statistics (JSON) here on exit.
    #[arg(long)]
    pub stats_file: Option<std::path::PathBuf>,
    /// Do not pin workers to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// How new flows pick a listener of a reuseport group: `hash` (keyed
    /// 4-tuple hash) or `queue` (prefer a listener on the core that owns the
    /// receiving queue, so the flow never crosses cores).
    #[arg(long, default_value = "hash", value_parser = parse_selector)]
    pub selector: String,
    /// Key of the flow hash as K0:K1 (hex), for reproducible runs; random
    /// per process by default.
    #[arg(long, value_parser = parse_key)]
    pub hash_key: Option<(u64, u64)>,
    /// Owner uid of the listeners (default: the effective uid).
    #[arg(long)]
    pub uid: Option<u32>,
    /// TCP receive and send buffer per connection, in bytes each (smaller
    /// buffers hold more concurrent connections in less memory).
    #[arg(long, default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub tcp_buf: u32,
    /// On SIGINT/SIGTERM, give in-flight work this many seconds to finish
    /// (services that have a graceful stop: http) before everything left is
    /// reset.
    #[arg(long, default_value_t = 5.0, value_parser = parse_grace)]
    pub grace: f64,
}

fn parse_grace(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&v) {
        return Err(format!("{v} is not between 0 and 3600 seconds"));
    }
    Ok(v)
}

fn parse_selector(s: &str) -> Result<String, String> {
    selector_by_name(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("unknown selector `{s}` (hash, queue)"))
}

fn parse_key(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once(':').ok_or("expected K0:K1 in hex")?;
    let p = |x: &str| u64::from_str_radix(x, 16).map_err(|_| format!("`{x}` is not hex"));
    Ok((p(a)?, p(b)?))
}

/// What every worker's application gets besides its engine.
#[derive(Clone, Debug)]
pub struct WorkerCtx {
    /// Worker index (= queue = core index in the stack).
    pub worker: usize,
    /// Selector to attach to the groups the application creates.
    pub selector: Arc<dyn Selector>,
    /// Listener options: reuseport on, the owner uid.
    pub bind: BindOptions,
    /// Bumped on every SIGHUP: replace listeners when it changes.
    pub reload: Arc<std::sync::atomic::AtomicU64>,
}

/// XDP attach mode on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    /// Native if the driver has it, else generic.
    Auto,
    /// Driver mode.
    Native,
    /// SKB mode.
    Generic,
}

fn parse_prefix<A: std::str::FromStr>(s: &str, max: u8) -> Result<(A, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected ADDRESS/PREFIX"))?;
    let a = a.parse().map_err(|_| format!("`{a}` is not an address"))?;
    let p: u8 = p
        .parse()
        .map_err(|_| format!("`{p}` is not a prefix length"))?;
    if p > max {
        return Err(format!("prefix /{p} is longer than {max}"));
    }
    Ok((a, p))
}

fn parse_v4(s: &str) -> Result<(Ipv4Addr, u8), String> {
    parse_prefix(s, 32)
}

fn parse_v6(s: &str) -> Result<(Ipv6Addr, u8), String> {
    parse_prefix(s, 128)
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No address given.
    #[error("give at least one of --addr or --addr6")]
    NoAddress,
    /// Zero workers.
    #[error("--workers must be at least 1")]
    NoWorkers,
    /// More workers than queues.
    #[error("{iface} has {queues} rx queue(s); cannot run {workers} workers (one per queue)")]
    TooManyWorkers {
        /// Interface.
        iface: String,
        /// Its queues.
        queues: u32,
        /// Workers asked for.
        workers: u32,
    },
    /// Fewer workers than queues.
    #[error("{iface} has {queues} rx queues but only {workers} worker(s): traffic on the other queues would reach no one; run --workers {queues}, or reduce the queues (`ethtool -L {iface} combined {workers}`)")]
    UnservedQueues {
        /// Interface.
        iface: String,
        /// Its queues.
        queues: u32,
        /// Workers asked for.
        workers: u32,
    },
    /// The MAC could not be read.
    #[error("cannot read the MAC address of {0}")]
    Mac(String),
    /// A port failed to open.
    #[error(transparent)]
    Nic(#[from] nic::NicError),
    /// A worker thread failed.
    #[error("worker {0} failed: {1}")]
    Worker(usize, String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// Writing the stats file failed.
    #[error("cannot write stats file {0}: {1}")]
    StatsFile(String, std::io::Error),
}

/// The stop flag, set by SIGINT/SIGTERM.
pub fn stop_flag() -> Result<Arc<AtomicBool>, ServeError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(ServeError::Signal)?;
    }
    Ok(stop)
}

/// Serve `make_app(worker)` on every worker until SIGINT/SIGTERM. `app_json`
/// turns the app into the `app` part of the worker's report. Returns the
/// full report.
pub fn serve<A, F, J>(
    args: &ServerArgs,
    name: &str,
    make_app: F,
    app_json: J,
) -> Result<Value, ServeError>
where
    A: App<XskRings>,
    F: Fn(&WorkerCtx, &mut Engine<XskRings>) -> Result<A, String> + Send + Sync + 'static,
    J: Fn(&A) -> Value + Send + Sync + 'static,
{
    if args.addr.is_none() && args.addr6.is_none() {
        return Err(ServeError::NoAddress);
    }
    if args.workers == 0 {
        return Err(ServeError::NoWorkers);
    }
    let queues = rx_queue_count(&args.iface)?;
    if args.workers > queues {
        return Err(ServeError::TooManyWorkers {
            iface: args.iface.clone(),
            queues,
            workers: args.workers,
        });
    }
    if args.workers < queues {
        // The XDP program redirects each queue to its socket; a queue with
        // no worker would pass its packets to a kernel that has no address
        // there: they would be lost without a word.
        return Err(ServeError::UnservedQueues {
            iface: args.iface.clone(),
            queues,
            workers: args.workers,
        });
    }
    let mac =
        crate::pktgen::read_mac(&args.iface).map_err(|_| ServeError::Mac(args.iface.clone()))?;
    let stop = stop_flag()?;
    let ring = (args.frames / 2).next_power_of_two().clamp(2048, 1 << 16);
    let xcfg = XskConfig {
        frames: args.frames,
        fill_size: ring,
        rx_size: ring,
        comp_size: ring,
        tx_size: ring,
        mode: crate::pktgen::xdp_mode(args.xdp_mode),
        ..XskConfig::default()
    };
    // Open every port before starting any worker: a refused start fails whole.
    let mut rings = Vec::new();
    for q in 0..args.workers {
        // Retries while a just-closed socket still holds the queue.
        let mut r = crate::pktgen::open_xsk(&args.iface, q, &xcfg)?;
        // Let the kernel send more than 32 frames per kick where it can
        // (Linux 6.17+); the default stays otherwise.
        let _ = r.set_tx_budget(crate::pktgen::DEFAULT_TX_BUDGET);
        rings.push(r);
    }
    let info = rings[0].info().clone();
    let hasher = match args.hash_key {
        Some((k0, k1)) => FlowHasher::with_key(k0, k1),
        None => FlowHasher::random(),
    };
    let shared = Shared::new(args.workers as usize, hasher)
        .map_err(|e| ServeError::Worker(0, e.to_string()))?;
    let selector = selector_by_name(&args.selector)
        .unwrap_or_else(|| Arc::new(stack::reuseport::HashSelector));
    let uid = args.uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let reload = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(ServeError::Signal)?;
    let seed = stack::engine::random_seed();
    let make_app = Arc::new(make_app);
    let app_json = Arc::new(app_json);
    let started = Instant::now();
    let mut handles = Vec::new();
    for (i, r) in rings.into_iter().enumerate() {
        let mut ecfg = EngineConfig::new(mac, args.addr, args.addr6);
        ecfg.gateway4 = args.gateway;
        ecfg.gateway6 = args.gateway6;
        ecfg.tcp_rx_buf = args.tcp_buf as usize;
        ecfg.tcp_tx_buf = args.tcp_buf as usize;
        ecfg.seed = seed.wrapping_add(i as u64 * 0x9e37_79b9_7f4a_7c15);
        let stop = stop.clone();
        let shared = shared.clone();
        let ctx = WorkerCtx {
            worker: i,
            selector: selector.clone(),
            bind: BindOptions::new(uid).with_reuseport(true),
            reload: reload.clone(),
        };
        let make_app = make_app.clone();
        let app_json = app_json.clone();
        let pin = !args.no_pin;
        let loop_cfg = LoopConfig {
            grace: std::time::Duration::from_secs_f64(args.grace),
            ..LoopConfig::default()
        };
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-w{i}"))
            .spawn(move || {
                let core = if pin { worker::pin_to_core(i) } else { None };
                let mut engine = Engine::new(r, ecfg, shared, i, i as u32);
                let mut app = match make_app(&ctx, &mut engine) {
                    Ok(app) => app,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                let ls = worker::run(&mut engine, &mut app, &stop, &loop_cfg);
                let frames_ok = engine.check_frames();
                Ok(worker_json(
                    i,
                    core,
                    &engine,
                    &ls,
                    frames_ok,
                    app_json(&app),
                ))
            })
            .map_err(|e| ServeError::Worker(i, e.to_string()))?;
        handles.push(h);
    }
    eprintln!(
        "xdpstack {name}: {} worker(s) on {} queues 0..{} ({} XDP, zero-copy {}), {}{}",
        args.workers,
        args.iface,
        args.workers,
        info.mode,
        if info.zero_copy { "on" } else { "off" },
        args.addr
            .map(|(a, p)| format!("{a}/{p}"))
            .unwrap_or_default(),
        args.addr6
            .map(|(a, p)| format!(" {a}/{p}"))
            .unwrap_or_default(),
    );
    // SIGHUP -> reload generation, seen by every worker's application.
    while !handles.iter().all(|h| h.is_finished()) {
        if hup.swap(false, Ordering::Relaxed) {
            reload.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut workers = Vec::new();
    let mut failed = None;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(j)) => workers.push(j),
            Ok(Err(e)) => failed = Some(ServeError::Worker(i, e)),
            Err(_) => failed = Some(ServeError::Worker(i, "panicked".into())),
        }
    }
    let report = json!({
        "service": name,
        "iface": args.iface,
        "xdp_mode": info.mode.to_string(),
        "zero_copy": info.zero_copy,
        "seconds": started.elapsed().as_secs_f64(),
        "selector": args.selector,
        "workers": workers,
        "stack": shared.report(),
    });
    if let Some(path) = &args.stats_file {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text)
            .map_err(|e| ServeError::StatsFile(path.display().to_string(), e))?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(report)
}

fn worker_json(
    i: usize,
    core: Option<usize>,
    engine: &Engine<XskRings>,
    ls: &worker::LoopStats,
    frames_ok: Result<(), nic::LedgerError>,
    app: Value,
) -> Value {
    let s = engine.stats();
    let p = &s.port;
    json!({
        "worker": i,
        "queue": i,
        "core": core,
        "app": app,
        "engine": s.engine,
        "l2": s.l2,
        "port": {
            "rx_frames": p.counters.rx_frames,
            "tx_frames": p.counters.tx_frames,
            "rx_bytes": p.counters.rx_bytes,
            "tx_bytes": p.counters.tx_bytes,
            "tx_no_frame": p.counters.tx_no_frame,
            "tx_ring_full": p.counters.tx_ring_full,
            "tx_dropped": p.counters.tx_dropped,
            "tx_kicks": p.counters.tx_kicks,
            "rx_bad_desc": p.counters.rx_bad_desc,
            "frames_by_place": p.frames,
            "kernel": p.kernel.map(|k| k.fields().iter().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()),
        },
        "frame_accounting": match frames_ok { Ok(()) => "ok".to_string(), Err(e) => e.to_string() },
        "loop": {
            "iterations": ls.iterations,
            "sleeps": ls.sleeps,
            "grace_used_ms": ls.grace_used.as_millis() as u64,
            "grace_expired": ls.grace_expired,
        },
        "sockets": s.sockets,
        "flows": s.flows,
    })
}
