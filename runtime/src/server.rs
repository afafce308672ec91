//! Running a service on the stack: open one XSK per worker (one worker per
//! queue), pin each worker to a core, run the engine and the application
//! until SIGINT/SIGTERM, then report and release everything.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::duration::DurationError;
use crate::report::{LoopReport, PcapReport, PortReport, ServerReport, WorkerReport};

use nic::steer::{SteerCounters, SteerMode, L4};
use nic::xsk::XskRings;
use serde_json::Value;
use stack::engine::{CongestionControl, Engine, EngineConfig};
use stack::reuseport::{BindOptions, FlowHasher, HashSelector, QueueSelector, Selector};
use stack::shared::Shared;
use stack::worker::{self, App, LoopConfig};

use crate::xsk_opts::{open_ports, read_mac, xdp_json, OpenError, SteerArgs, SteerTo, XskArgs};

/// Options every server shares.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Interface the stack serves (shared with the kernel: the XDP program
    /// steers only the stack's traffic, see --steer). Required, except
    /// for `http --attach` (the daemon owns the interface then).
    #[arg(long, default_value = "", hide_default_value = true)]
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
    /// Ignored when --queues or --map is given.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// NIC queues to serve, one worker each: `0-3`, `0,2`, `4-7`.
    #[arg(long, value_parser = crate::xsk_opts::parse_list_arg, conflicts_with = "map")]
    pub queues: Option<crate::xsk_opts::List>,
    /// Cores for the workers, in the order of the queues: `2-5`.
    #[arg(long, value_parser = crate::xsk_opts::parse_list_arg, conflicts_with = "map")]
    pub cores: Option<crate::xsk_opts::List>,
    /// Queue-to-core map: `0:2,1:3` (queue 0 on core 2, queue 1 on core 3).
    #[arg(long, value_parser = crate::xsk_opts::parse_map_arg)]
    pub map: Option<crate::xsk_opts::QueueMap>,
    /// When the NIC can deliver to a queue that no worker serves (its RSS
    /// table or channel count says so): `refuse` to start, or `warn` and
    /// start (the stack's traffic on that queue reaches the kernel, which
    /// drops it unless it holds the address).
    #[arg(long, value_enum, default_value_t = Unserved::Refuse)]
    pub unserved: Unserved,
    /// AF_XDP socket options.
    #[command(flatten)]
    pub xsk: XskArgs,
    /// What the XDP program steers.
    #[command(flatten)]
    pub steer: SteerArgs,
    /// Write the final report (JSON) to this file on exit.
    #[arg(long, value_name = "FILE", alias = "stats-file")]
    pub report: Option<std::path::PathBuf>,
    /// Do not pin workers to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// How new flows pick a listener of a reuseport group: `hash` (keyed
    /// 4-tuple hash) or `queue` (prefer a listener on the core that owns the
    /// receiving queue, so the flow never crosses cores).
    #[arg(long, value_enum, default_value_t = SelectorArg::Hash)]
    pub selector: SelectorArg,
    /// Key of the flow hash as K0:K1 (hex), for reproducible runs; random
    /// per process by default.
    #[arg(long, value_parser = parse_key)]
    pub hash_key: Option<(u64, u64)>,
    /// Owner uid of the listeners (default: the effective uid).
    #[arg(long)]
    pub uid: Option<u32>,
    /// TCP receive and send buffers per connection: a size in bytes each
    /// way (fixed: `65536`, `64k`, `4096`), or `auto`: buffers that grow
    /// with the path as Linux's do (`tcp_rmem`, `tcp_wmem`: a 64 KiB window
    /// growing to 6 MiB with what the application reads, a send buffer of
    /// twice the congestion window up to 4 MiB), hold memory only while they
    /// hold data, and share a memory budget (a sixteenth of RAM, as
    /// `tcp_mem`). The default since the sender recovers losses from SACK
    /// (docs/ARCHITECTURE.md, "Buffers that grow").
    #[arg(long, default_value = "auto", value_parser = parse_tcp_buf)]
    pub tcp_buf: TcpBuf,
    /// TCP congestion control: `cubic` (Linux's default), `bbr`, `reno` or
    /// `none`.
    #[arg(long, value_enum, default_value_t = CcArg::Cubic)]
    pub cc: CcArg,
    /// On SIGINT/SIGTERM, give in-flight work this long to finish
    /// (services that have a graceful stop: http) before everything left is
    /// reset: `5s`, `500ms`, at most `1h` (a bare number is seconds).
    #[arg(long, default_value = "5s", value_parser = parse_grace)]
    pub grace: Duration,
    /// Busy-poll this many microseconds after the last frame before a
    /// worker sleeps. 0 when an attached process shares the worker's core
    /// (`xdpstack daemon` beside a tokio process, docs/TOKIO.md): the
    /// worker's spin only takes the CPU the process needs.
    #[arg(long, default_value_t = 50)]
    pub spin_us: u64,
}

fn parse_grace(s: &str) -> Result<Duration, DurationError> {
    crate::duration::parse_within(s, Duration::ZERO, Duration::from_secs(3600))
}

/// Why a value of a server option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `--hash-key` without a colon.
    #[error("expected K0:K1 in hex")]
    KeyFormat,
    /// A half of `--hash-key` that is not hex.
    #[error("`{0}` is not hex")]
    NotHex(String),
    /// No `/PREFIX`.
    #[error("`{0}`: expected ADDRESS/PREFIX")]
    NoPrefix(String),
    /// Not an address.
    #[error("`{0}` is not an address")]
    NotAddress(String),
    /// Not a prefix length.
    #[error("`{0}` is not a prefix length")]
    NotPrefix(String),
    /// A prefix too long for the family.
    #[error("prefix /{0} is longer than {1}")]
    PrefixTooLong(u8, u8),
    /// `--tcp-buf` neither `auto` nor a size from 1 KiB to 1 GiB.
    #[error("`{0}`: expected `auto` or a size from 1k to 1G (65536, 64k, 4M)")]
    TcpBuf(String),
}

/// `--tcp-buf`: fixed buffers of a size each way, or grown with the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpBuf {
    /// This many bytes each way, for the connection's life.
    Fixed(usize),
    /// Grown with the path within the process's budget (`BufConfig`).
    Auto,
}

/// `auto`, or a size of at least 1 KiB (`65536`, `64k`, `4M`).
fn parse_tcp_buf(s: &str) -> Result<TcpBuf, FlagError> {
    if s == "auto" {
        return Ok(TcpBuf::Auto);
    }
    match crate::xsk_opts::parse_size(s) {
        Ok(n) if (1024..=1 << 30).contains(&n) => Ok(TcpBuf::Fixed(n as usize)),
        _ => Err(FlagError::TcpBuf(s.to_string())),
    }
}

fn parse_key(s: &str) -> Result<(u64, u64), FlagError> {
    let (a, b) = s.split_once(':').ok_or(FlagError::KeyFormat)?;
    let p = |x: &str| u64::from_str_radix(x, 16).map_err(|_| FlagError::NotHex(x.to_string()));
    Ok((p(a)?, p(b)?))
}

/// `--selector`: how new flows pick a listener of a reuseport group.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectorArg {
    /// Keyed 4-tuple hash.
    #[default]
    Hash,
    /// Prefer a listener on the core that owns the receiving queue.
    Queue,
}

impl SelectorArg {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SelectorArg::Hash => "hash",
            SelectorArg::Queue => "queue",
        }
    }

    /// The selector itself.
    pub fn selector(self) -> Arc<dyn Selector> {
        match self {
            SelectorArg::Hash => Arc::new(HashSelector),
            SelectorArg::Queue => Arc::new(QueueSelector),
        }
    }
}

/// `--cc`: TCP congestion control.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcArg {
    /// CUBIC (Linux's default).
    #[default]
    Cubic,
    /// Reno.
    Reno,
    /// None: the window is the peer's.
    None,
    /// BBR (v1, as Linux's `bbr`): paced at the measured bandwidth, keeps
    /// its rate through random loss (peers with SACK).
    Bbr,
}

impl From<CcArg> for CongestionControl {
    fn from(cc: CcArg) -> Self {
        match cc {
            CcArg::Cubic => CongestionControl::Cubic,
            CcArg::Reno => CongestionControl::Reno,
            CcArg::None => CongestionControl::None,
            CcArg::Bbr => CongestionControl::Bbr,
        }
    }
}

/// `--unserved`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unserved {
    /// Refuse to start.
    Refuse,
    /// Start with a warning.
    Warn,
}

/// What every worker's application gets besides its engine.
#[derive(Clone, Debug)]
pub struct WorkerCtx {
    /// Worker index (= core index in the stack).
    pub worker: usize,
    /// Selector to attach to the groups the application creates.
    pub selector: Arc<dyn Selector>,
    /// Listener options: reuseport on, the owner uid.
    pub bind: BindOptions,
    /// Bumped on every SIGHUP: replace listeners when it changes.
    pub reload: Arc<std::sync::atomic::AtomicU64>,
}

/// Why a service did not get its port on a worker.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The TCP listener was refused.
    #[error("TCP port {port}: {reason}")]
    Listen {
        /// The port.
        port: u16,
        /// The stack's (or the daemon's) refusal.
        reason: String,
    },
    /// The UDP socket was refused.
    #[error("UDP port {port}: {reason}")]
    Bind {
        /// The port.
        port: u16,
        /// The stack's (or the daemon's) refusal.
        reason: String,
    },
}

impl WorkerCtx {
    /// Worker `worker` with the hash selector and reuseport listeners of uid 0: what an
    /// attached worker has (the daemon's selector decides, the uid is the kernel's), and
    /// what in-memory tests run with.
    pub fn hashed(worker: usize, reload: Arc<std::sync::atomic::AtomicU64>) -> Self {
        WorkerCtx {
            worker,
            selector: Arc::new(HashSelector),
            bind: BindOptions::new(0).with_reuseport(true),
            reload,
        }
    }

    /// UDP and then TCP `port` on every address (`udp_queue` datagrams queued, a listen
    /// backlog of `tcp_backlog`), both under this worker's selector: what a service of both
    /// protocols (DNS, echo) binds.
    pub fn bind_udp_tcp<A: stack::socket::TcpApi + stack::socket::UdpApi>(
        &self,
        engine: &mut A,
        port: u16,
        udp_queue: usize,
        tcp_backlog: usize,
    ) -> Result<(stack::engine::UdpId, stack::engine::ListenerId), PortError> {
        let any = stack::reuseport::BindAddr::Any6 { v6only: false };
        let udp = engine
            .udp_bind(any, port, self.bind.clone().with_backlog(udp_queue))
            .map_err(|e| PortError::Bind {
                port,
                reason: e.to_string(),
            })?;
        let listener = engine
            .tcp_listen(any, port, self.bind.clone().with_backlog(tcp_backlog))
            .map_err(|e| PortError::Listen {
                port,
                reason: e.to_string(),
            })?;
        for id in [udp.member(), listener.member()] {
            engine.set_selector(id, self.selector.clone());
        }
        Ok((udp, listener))
    }
}

/// The XDP program's counters of the server running in this process (one
/// per process), for `/stats` and `/metrics`.
static XDP_COUNTERS: std::sync::OnceLock<Arc<SteerCounters>> = std::sync::OnceLock::new();

/// The XDP program's counters, summed over the CPUs (None: no server with
/// a program runs in this process, or the map could not be read).
pub fn xdp_counters() -> Option<Vec<(&'static str, u64)>> {
    XDP_COUNTERS.get().and_then(|c| c.read().ok())
}

/// Worker i: (queue, core to pin to: None = the default, worker i mod
/// cores). From --map, else --queues (+ --cores), else --workers.
pub fn worker_plan(args: &ServerArgs) -> Result<Vec<(u32, Option<usize>)>, ServeError> {
    if let Some(map) = &args.map {
        return Ok(map.0.iter().map(|&(q, c)| (q, Some(c as usize))).collect());
    }
    let queues: Vec<u32> = match &args.queues {
        Some(q) => q.0.clone(),
        None => {
            if args.workers == 0 {
                return Err(ServeError::NoWorkers);
            }
            (0..args.workers).collect()
        }
    };
    match &args.cores {
        Some(c) if c.0.len() != queues.len() => Err(ServeError::Plan(format!(
            "--cores names {} core(s) for {} queue(s); give one core per queue",
            c.0.len(),
            queues.len()
        ))),
        Some(c) => Ok(queues
            .into_iter()
            .zip(c.0.iter().map(|&c| Some(c as usize)))
            .collect()),
        None => Ok(queues.into_iter().map(|q| (q, None)).collect()),
    }
}

/// The steered ports of the listeners bound now (ports mode).
fn listening_ports(shared: &Shared) -> Vec<(L4, u16)> {
    let mut v: Vec<(L4, u16)> = shared
        .registry
        .members()
        .iter()
        .filter_map(|m| match m.proto {
            stack::parse::Proto::Tcp => Some((L4::Tcp, m.port)),
            stack::parse::Proto::Udp => Some((L4::Udp, m.port)),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn parse_prefix<A: std::str::FromStr>(s: &str, max: u8) -> Result<(A, u8), FlagError> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| FlagError::NoPrefix(s.to_string()))?;
    let a = a
        .parse()
        .map_err(|_| FlagError::NotAddress(a.to_string()))?;
    let p: u8 = p.parse().map_err(|_| FlagError::NotPrefix(p.to_string()))?;
    if p > max {
        return Err(FlagError::PrefixTooLong(p, max));
    }
    Ok((a, p))
}

fn parse_v4(s: &str) -> Result<(Ipv4Addr, u8), FlagError> {
    parse_prefix(s, 32)
}

fn parse_v6(s: &str) -> Result<(Ipv6Addr, u8), FlagError> {
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
    /// The NIC delivers to queues no worker serves.
    #[error("{iface} delivers to rx queue(s) {unserved:?} ({why}) but workers serve only {served:?}: the stack's traffic there would reach no one; serve them (--queues/--map), steer RSS to the served queues (`ethtool -X {iface} equal N`, `ethtool -L {iface} combined N`), or start anyway with --unserved warn")]
    UnservedQueues {
        /// Interface.
        iface: String,
        /// Queues with no worker.
        unserved: Vec<u32>,
        /// Queues served.
        served: Vec<u32>,
        /// Where that came from.
        why: String,
    },
    /// A bad queue/core plan.
    #[error("{0}")]
    Plan(String),
    /// Opening the queues failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The MAC could not be read.
    #[error("cannot read the MAC address of {0}")]
    Mac(String),
    /// A port failed to open.
    #[error(transparent)]
    Nic(#[from] nic::NicError),
    /// A worker thread failed.
    #[error("worker {0} failed: {1}")]
    Worker(usize, String),
    /// The service refused to start on a worker (its bind failed, ...).
    #[error("worker {0} failed: {1}")]
    App(usize, #[source] AppError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// Writing the stats file failed.
    #[error("cannot write stats file {0}: {1}")]
    StatsFile(String, std::io::Error),
}

/// Why a service could not start on a worker: the service's own error.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// The stop flag, set by SIGINT/SIGTERM.
pub fn stop_flag() -> Result<Arc<AtomicBool>, ServeError> {
    crate::xsk_opts::stop_flag().map_err(ServeError::Signal)
}

/// Serve `make_app(worker)` on every worker until SIGINT/SIGTERM. `app_json`
/// turns the app into the `app` part of the worker's report. Returns the
/// full report.
pub fn serve<A, E, F, J>(
    args: &ServerArgs,
    name: &str,
    make_app: F,
    app_json: J,
) -> Result<ServerReport, ServeError>
where
    A: App<XskRings>,
    E: Into<AppError>,
    F: Fn(&WorkerCtx, &mut Engine<XskRings>) -> Result<A, E> + Send + Sync + 'static,
    J: Fn(&A) -> Value + Send + Sync + 'static,
{
    if args.iface.is_empty() {
        return Err(ServeError::Plan("--iface is required".into()));
    }
    if args.addr.is_none() && args.addr6.is_none() {
        return Err(ServeError::NoAddress);
    }
    let plan = worker_plan(args)?;
    let served: Vec<u32> = plan.iter().map(|&(q, _)| q).collect();
    let mut dup = served.clone();
    dup.sort_unstable();
    dup.dedup();
    if dup.len() != served.len() {
        return Err(ServeError::Plan(format!(
            "a queue is named twice in {served:?}"
        )));
    }
    let queues = nic::xsk::rx_queue_count(&args.iface)?;
    if served.len() as u32 > queues {
        return Err(ServeError::TooManyWorkers {
            iface: args.iface.clone(),
            queues,
            workers: served.len() as u32,
        });
    }
    if let Some(c) = plan.iter().filter_map(|&(_, c)| c).find(|c| {
        !core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .any(|x| x.id == *c)
    }) {
        return Err(ServeError::Plan(format!("core {c} does not exist here")));
    }
    // A queue with no worker: the XDP program passes the stack's packets
    // that arrive there to a kernel that may not hold the address.
    let spread = nic::ethtool::RxSpread::read(&args.iface)?;
    let unserved = spread.unserved(&served);
    if !unserved.is_empty() {
        let why = if spread.rss.is_empty() {
            format!(
                "{} rx queue(s), no RSS table",
                spread.receiving_queues().len()
            )
        } else {
            "its RSS indirection table".to_string()
        };
        let e = ServeError::UnservedQueues {
            iface: args.iface.clone(),
            unserved,
            served: served.clone(),
            why,
        };
        match args.unserved {
            Unserved::Refuse => return Err(e),
            Unserved::Warn => eprintln!("xdpstack {name}: warning: {e}"),
        }
    }
    let mac = read_mac(&args.iface).map_err(|_| ServeError::Mac(args.iface.clone()))?;
    let stop = stop_flag()?;
    let steer_mode: SteerMode = args.steer.steer.into();
    let to = SteerTo {
        mode: Some(steer_mode),
        addrs4: args.addr.map(|(a, _)| a).into_iter().collect(),
        addrs6: args.addr6.map(|(a, _)| a).into_iter().collect(),
        vlan: args.steer.vlan,
        tcp_ports: (steer_mode == SteerMode::Ports).then(|| shared_ephemeral_ports(name)),
    };
    // Open every port before starting any worker: a refused start fails
    // whole (and detaches the program).
    let mut xsk = args.xsk.clone();
    xsk.queues_hint.get_or_insert(served.len());
    let opened = open_ports(&args.iface, &served, &xsk, &to)?;
    let steer = opened.steer;
    let tap = opened.tap;
    let rings = opened.rings;
    if let Some((id, prog)) = &steer.info().replaced {
        eprintln!(
            "xdpstack {name}: replaced a stale XDP program on {} (id {id}, {prog})",
            args.iface
        );
    }
    let info = rings[0].info().clone();
    let _ = XDP_COUNTERS.set(steer.counters());
    let hasher = match args.hash_key {
        Some((k0, k1)) => FlowHasher::with_key(k0, k1),
        None => FlowHasher::random(),
    };
    let shared =
        Shared::new(plan.len(), hasher).map_err(|e| ServeError::Worker(0, e.to_string()))?;
    let selector = args.selector.selector();
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
        if let TcpBuf::Fixed(n) = args.tcp_buf {
            ecfg.buffers = stack::engine::BufConfig::fixed(n, n, ecfg.buffers.mem);
        }
        ecfg.congestion = args.cc.into();
        ecfg.seed = seed.wrapping_add(i as u64 * 0x9e37_79b9_7f4a_7c15);
        if let Some(range) = to.tcp_ports {
            ecfg.ephemeral_ports = range;
        }
        let stop = stop.clone();
        let shared = shared.clone();
        let ctx = WorkerCtx {
            worker: i,
            selector: selector.clone(),
            bind: BindOptions::new(uid).with_reuseport(true),
            reload: reload.clone(),
        };
        let queue = plan[i].0;
        let want_core = plan[i].1;
        let make_app = make_app.clone();
        let app_json = app_json.clone();
        let pin = !args.no_pin;
        let loop_cfg = LoopConfig {
            grace: args.grace,
            spin: Duration::from_micros(args.spin_us),
            ..LoopConfig::default()
        };
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-w{i}"))
            .spawn(move || {
                // A worker that panics takes the process down (its flows
                // would be black-holed while the others serve): the panic is
                // on stderr, and the XDP program goes with the process.
                let _fail_fast = FailFast(i);
                let core = match (pin, want_core) {
                    (false, _) => None,
                    (true, Some(c)) => pin_to(c),
                    (true, None) => worker::pin_to_core(i),
                };
                let mut engine = Engine::new(r, ecfg, shared, i, queue);
                // In ports mode ARP/NDP go to the kernel (it holds the
                // address too): learn peers from their traffic instead.
                engine.set_learn_neighbors_from_ip(steer_mode == SteerMode::Ports);
                let mut app = match make_app(&ctx, &mut engine) {
                    Ok(app) => app,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        // The others need not wait for this core to stop.
                        engine.shared().mesh.finish();
                        return Err(e.into());
                    }
                };
                inject_fault(i);
                let ls = worker::run(&mut engine, &mut app, &stop, &loop_cfg);
                let frames_ok = engine.check_frames();
                Ok(worker_report(
                    i,
                    queue,
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
        "xdpstack {name}: {} worker(s) on {} queues {:?} ({} XDP, program id {} link {}, steer {}, zero-copy {}, UMEM {} frames, rx ring {}), {}{}",
        plan.len(),
        args.iface,
        served,
        info.mode,
        steer.info().prog_id,
        steer.info().link_id,
        steer_mode.name(),
        if info.zero_copy { "on" } else { "off" },
        xsk.frames(),
        xsk.config(None, None).rx_size,
        args.addr
            .map(|(a, p)| format!("{a}/{p}"))
            .unwrap_or_default(),
        args.addr6
            .map(|(a, p)| format!(" {a}/{p}"))
            .unwrap_or_default(),
    );
    // SIGHUP -> reload generation, seen by every worker's application.
    // Ports mode: the program's port set follows the bound listeners.
    let mut synced: Option<Vec<(L4, u16)>> = None;
    let mut next_sync = Instant::now();
    while !handles.iter().all(|h| h.is_finished()) {
        if hup.swap(false, Ordering::Relaxed) {
            reload.fetch_add(1, Ordering::Relaxed);
        }
        if steer_mode == SteerMode::Ports && Instant::now() >= next_sync {
            next_sync = Instant::now() + std::time::Duration::from_millis(50);
            let now = listening_ports(&shared);
            if synced.as_ref() != Some(&now) {
                if let Err(e) = steer.set_ports(&now) {
                    eprintln!("xdpstack {name}: {e}");
                }
                synced = Some(now);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut workers = Vec::new();
    let mut failed = None;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(j)) => workers.push(j),
            Ok(Err(e)) => failed = Some(ServeError::App(i, e)),
            Err(_) => failed = Some(ServeError::Worker(i, "panicked".into())),
        }
    }
    let pcap = tap.as_ref().map(|t| {
        let _ = t.flush();
        let (frames, skipped, bytes) = t.counts();
        PcapReport {
            frames,
            skipped_past_limit: skipped,
            bytes,
        }
    });
    let report = ServerReport {
        service: name.to_string(),
        iface: args.iface.clone(),
        xdp_mode: info.mode.to_string(),
        zero_copy: info.zero_copy,
        xdp: xdp_json(&steer),
        steer: steer_mode.name().to_string(),
        pcap,
        seconds: started.elapsed().as_secs_f64(),
        selector: args.selector.name().to_string(),
        workers,
        stack: serde_json::to_value(shared.report()).unwrap_or_default(),
    };
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text)
            .map_err(|e| ServeError::StatsFile(path.display().to_string(), e))?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(report)
}

/// Pin the calling thread to core `id`.
fn pin_to(id: usize) -> Option<usize> {
    let core = core_affinity::get_core_ids()?
        .into_iter()
        .find(|c| c.id == id)?;
    core_affinity::set_for_current(core).then_some(id)
}

fn worker_report(
    i: usize,
    queue: u32,
    core: Option<usize>,
    engine: &Engine<XskRings>,
    ls: &worker::LoopStats,
    frames_ok: Result<(), nic::LedgerError>,
    app: Value,
) -> WorkerReport {
    let s = engine.stats();
    let p = &s.port;
    fn value(v: impl serde::Serialize) -> Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    WorkerReport {
        worker: i,
        queue,
        core,
        app,
        engine: value(&s.engine),
        l2: value(&s.l2),
        port: PortReport {
            rx_frames: p.counters.rx_frames,
            tx_frames: p.counters.tx_frames,
            rx_bytes: p.counters.rx_bytes,
            tx_bytes: p.counters.tx_bytes,
            tx_no_frame: p.counters.tx_no_frame,
            tx_ring_full: p.counters.tx_ring_full,
            tx_dropped: p.counters.tx_dropped,
            tx_kicks: p.counters.tx_kicks,
            rx_bad_desc: p.counters.rx_bad_desc,
            frames_by_place: value(p.frames),
            kernel: p.kernel.map(|k| {
                k.fields()
                    .iter()
                    .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                    .collect()
            }),
        },
        frame_accounting: match frames_ok {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        },
        loop_stats: LoopReport {
            iterations: ls.iterations,
            sleeps: ls.sleeps,
            drain_batches: ls.drain_batches,
            grace_used_ms: ls.grace_used.as_millis() as u64,
            grace_expired: ls.grace_expired,
            left_at_grace: ls.left_at_grace,
        },
        sockets: s.sockets,
        flows: s.flows,
        time_wait: s.time_wait,
    }
}

/// Exits the process when dropped by a panicking worker thread.
struct FailFast(usize);

impl Drop for FailFast {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "xdpstack: worker {} panicked: exiting (a partial outage is worse than none)",
                self.0
            );
            std::process::exit(101);
        }
    }
}

/// Fault injection for the tests: `XDPSTACK_FAULT_PANIC_WORKER=I` makes
/// worker I panic one second after it started (the others serve meanwhile).
fn inject_fault(worker: usize) {
    let target = std::env::var("XDPSTACK_FAULT_PANIC_WORKER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if target == Some(worker) {
        std::thread::sleep(std::time::Duration::from_secs(1));
        panic!("injected panic in worker {worker} (XDPSTACK_FAULT_PANIC_WORKER)");
    }
}

/// The local ports of outgoing connections when the stack shares its
/// address with the kernel (ports mode): above Linux's default
/// `ip_local_port_range` (32768-60999), so that the kernel's own
/// connections never take them; the XDP program steers TCP to them. A
/// kernel whose range reaches into them is warned about (its connections
/// on those ports would lose their answers to the stack).
pub const SHARED_EPHEMERAL_PORTS: (u16, u16) = (61000, 65535);

fn shared_ephemeral_ports(name: &str) -> (u16, u16) {
    let (lo, hi) = SHARED_EPHEMERAL_PORTS;
    let kernel = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        });
    if let Some((klo, khi)) = kernel {
        if klo <= hi && khi >= lo {
            eprintln!(
                "xdpstack {name}: warning: the kernel's ip_local_port_range {klo}-{khi} overlaps the stack's outgoing ports {lo}-{hi}"
            );
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_buf_is_auto_or_a_size() {
        assert_eq!(parse_tcp_buf("auto").unwrap(), TcpBuf::Auto);
        assert_eq!(parse_tcp_buf("64k").unwrap(), TcpBuf::Fixed(65536));
        assert_eq!(parse_tcp_buf("4096").unwrap(), TcpBuf::Fixed(4096));
        for bad in ["512", "2G", "big", ""] {
            let e = parse_tcp_buf(bad).unwrap_err().to_string();
            assert!(e.contains("expected `auto`"), "{bad}: {e}");
        }
    }
}
