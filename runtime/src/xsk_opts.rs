//! One home for the AF_XDP options every command shares (the server, pktgen,
//! the reflector): one flattened clap struct ([`XskArgs`]), the steering
//! options ([`SteerArgs`]), and one way to open a set of queues
//! ([`open_ports`]: the stack's XDP program attached as a bpf_link, one XSK
//! per queue in its XSKMAP).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nic::pcap::PcapTap;
use nic::steer::{Steer, SteerConfig, SteerMode};
use nic::xsk::{BusyPoll, XdpMode, XskConfig, XskRings, ZeroCopy};
use nic::NicError;

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

impl From<ModeArg> for XdpMode {
    fn from(m: ModeArg) -> XdpMode {
        match m {
            ModeArg::Auto => XdpMode::Auto,
            ModeArg::Native => XdpMode::Native,
            ModeArg::Generic => XdpMode::Generic,
        }
    }
}

/// `--zero-copy`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ZeroCopyArg {
    /// Zero-copy when the driver has it, else copy mode.
    Auto,
    /// Zero-copy or refuse to start.
    On,
    /// Copy mode.
    Off,
}

/// `--steer`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerArg {
    /// IP to the stack's addresses, ARP/NDP for them; the rest to the kernel.
    Addr,
    /// Only TCP/UDP to the stack's addresses on its listening ports.
    Ports,
    /// Every frame (the interface is the stack's alone).
    All,
}

impl From<SteerArg> for SteerMode {
    fn from(s: SteerArg) -> SteerMode {
        match s {
            SteerArg::Addr => SteerMode::Addr,
            SteerArg::Ports => SteerMode::Ports,
            SteerArg::All => SteerMode::All,
        }
    }
}

/// AF_XDP socket options (flattened into every command that opens queues).
#[derive(clap::Args, Clone, Debug)]
pub struct XskArgs {
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub xdp_mode: ModeArg,
    /// Zero-copy: `auto` (when the driver has it), `on` (or refuse), `off`.
    #[arg(long, value_enum, default_value_t = ZeroCopyArg::Auto)]
    pub zero_copy: ZeroCopyArg,
    /// UMEM frames per queue. Default for a server: twice a receive ring
    /// that holds one packet per connection it may keep (its `--max-conns`
    /// or `--tcp-max-conns`, or its UDP queue), at least 8192 and at most
    /// 32768 entries, so 16384 to 65536 frames (32 to 128 MiB of 2 KiB
    /// frames), with every queue's UMEM together at most a sixteenth of RAM
    /// (see [`default_frames`]); 4096 for pktgen and the reflector.
    #[arg(long)]
    pub frames: Option<u32>,
    /// Packets a server expects queued per worker (one per connection in
    /// flight): what sizes the default rings and UMEM. Set by the service
    /// from its own limits, not on the command line.
    #[arg(skip)]
    pub expect_depth: Option<usize>,
    /// Queues opened together (their UMEMs share the memory bound of the
    /// default). Set by the server, not on the command line.
    #[arg(skip)]
    pub queues_hint: Option<usize>,
    /// Bytes per UMEM frame (2048 or 4096).
    #[arg(long, default_value_t = 2048)]
    pub frame_size: u32,
    /// Rx ring entries (power of two; default: half of --frames, at
    /// least 2048, at most 131072).
    #[arg(long)]
    pub rx_ring: Option<u32>,
    /// Tx ring entries (power of two; default: half of --frames, at
    /// least 2048, at most 131072).
    #[arg(long)]
    pub tx_ring: Option<u32>,
    /// Fill ring entries (power of two; default: half of --frames, at
    /// least 2048, at most 131072).
    #[arg(long)]
    pub fill_ring: Option<u32>,
    /// Completion ring entries (power of two; default: half of --frames, at
    /// least 2048, at most 131072).
    #[arg(long)]
    pub comp_ring: Option<u32>,
    /// Bind without XDP_USE_NEED_WAKEUP (the kernel is kicked on every
    /// transmit; only for drivers that mishandle the flag).
    #[arg(long)]
    pub no_need_wakeup: bool,
    /// Busy-poll the NIC queue for this many microseconds in blocking calls
    /// (SO_PREFER_BUSY_POLL + SO_BUSY_POLL; pair with the interface's
    /// napi_defer_hard_irqs and gro_flush_timeout, see docs/DEPLOY.md).
    #[arg(long)]
    pub busy_poll: Option<u32>,
    /// Packets per busy-poll round (SO_BUSY_POLL_BUDGET).
    #[arg(long, default_value_t = 64)]
    pub busy_poll_budget: u32,
    /// Frames the kernel may send per kick in copy mode (32 to 1024; Linux
    /// 6.17+). Default: 256 when the kernel takes it, else its own (32).
    #[arg(long)]
    pub tx_budget: Option<u32>,
    /// Write every frame the sockets receive and send to this pcap file
    /// (tcpdump does not see what XDP redirects).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Stop writing --pcap past this size (bytes; K, M, G suffixes).
    #[arg(long, default_value = "100M", value_parser = parse_size)]
    pub pcap_limit: u64,
    /// Have the kernel time the XDP program (BPF_ENABLE_STATS, while this
    /// process runs) and report its ns per packet in the statistics: for
    /// measuring the filter's cost (two clock reads per packet). Needs
    /// CAP_SYS_ADMIN.
    #[arg(long)]
    pub xdp_run_stats: bool,
}

impl Default for XskArgs {
    fn default() -> Self {
        XskArgs {
            xdp_mode: ModeArg::Auto,
            zero_copy: ZeroCopyArg::Auto,
            frames: None,
            expect_depth: None,
            queues_hint: None,
            frame_size: 2048,
            rx_ring: None,
            tx_ring: None,
            fill_ring: None,
            comp_ring: None,
            no_need_wakeup: false,
            busy_poll: None,
            busy_poll_budget: 64,
            tx_budget: None,
            pcap: None,
            pcap_limit: 100 << 20,
            xdp_run_stats: false,
        }
    }
}

/// What the XDP program steers (server and reflector).
#[derive(clap::Args, Clone, Debug)]
pub struct SteerArgs {
    /// What the XDP program sends to the stack: `addr` (its addresses,
    /// ARP/NDP for them), `ports` (TCP/UDP to its addresses on its
    /// listening ports only: the kernel keeps the rest), `all`.
    #[arg(long, value_enum, default_value_t = SteerArg::Addr)]
    pub steer: SteerArg,
    /// Serve 802.1Q VLAN ID (tagged frames of that VLAN only; the tag is
    /// popped by the XDP program and pushed back on transmit).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..4095))]
    pub vlan: Option<u16>,
}

/// Why a value of an AF_XDP or queue option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a size.
    #[error("`{0}` is not a size of at least 1024 bytes (e.g. 64K, 100M)")]
    Size(String),
    /// Not a MAC address.
    #[error("`{0}` is not a MAC address (aa:bb:cc:dd:ee:ff)")]
    Mac(String),
    /// A bad entry of a list.
    #[error("`{0}` is not a number or FIRST-LAST range")]
    ListEntry(String),
    /// Nothing listed.
    #[error("`{0}` is empty")]
    Empty(String),
    /// An entry listed twice.
    #[error("`{0}` names an entry twice")]
    Twice(String),
    /// A bad entry of a map.
    #[error("`{0}`: expected QUEUE:CORE")]
    MapEntry(String),
    /// Not a queue number.
    #[error("`{0}` is not a queue number")]
    Queue(String),
    /// Not a core number.
    #[error("`{0}` is not a core number")]
    Core(String),
    /// A queue mapped twice.
    #[error("queue {0} is mapped twice")]
    MappedTwice(u32),
}

/// Why an interface's MAC address could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// No such interface here.
    #[error("interface {0} does not exist in this network namespace")]
    NoInterface(String),
    /// Its address file does not hold a MAC.
    #[error("cannot read the MAC address of {0}")]
    Unreadable(String),
}

/// Parse `123`, `64K`, `100M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n >= 1024)
        .ok_or_else(|| ValueError::Size(s.to_string()))
}

/// Why queues could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The NIC refused.
    #[error(transparent)]
    Nic(#[from] NicError),
    /// The pcap file could not be created.
    #[error("cannot create --pcap file {0}: {1}")]
    Pcap(String, std::io::Error),
    /// The tx budget was refused.
    #[error("cannot set --tx-budget {frames} on {iface} queue {queue}: {err} (needs Linux 6.17+, 32 to half the tx ring)")]
    TxBudget {
        /// Budget.
        frames: u32,
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// Error.
        err: std::io::Error,
    },
}

/// UMEM frames without an expected depth (pktgen, the reflector).
pub const PLAIN_FRAMES: u32 = 4096;
/// The smallest default receive ring of a server: at 100,000 TCP
/// connections/s (about 600,000 segments/s) a ring of 2048 overflowed in
/// stalls of a few milliseconds and lost SYNs an open-loop client never
/// sends again; 8192 holds about 13 ms of that load.
pub const MIN_SERVER_RING: u32 = 8192;
/// The largest default receive ring (65536 frames, 128 MiB of 2 KiB frames
/// per queue): past it, ask with `--frames`.
pub const MAX_SERVER_RING: u32 = 32768;

/// Default UMEM frames per queue for a server expecting `depth` packets
/// queued (one per connection it may keep, or its UDP queue) on each of
/// `queues` queues of `frame_size` bytes, on a machine with `mem_total`
/// bytes of RAM (None: unknown): twice a receive ring of `depth` rounded up
/// to a power of two within [`MIN_SERVER_RING`]..=[`MAX_SERVER_RING`] (the
/// rx ring and the fill ring each hold up to a ring of frames), then halved
/// while every queue's UMEM together is above a sixteenth of RAM (as the
/// kernel's `tcp_mem` takes a sixteenth), never below [`PLAIN_FRAMES`].
pub fn default_frames(depth: usize, queues: usize, frame_size: u32, mem_total: Option<u64>) -> u32 {
    let ring = u32::try_from(depth)
        .unwrap_or(u32::MAX)
        .min(MAX_SERVER_RING)
        .next_power_of_two()
        .clamp(MIN_SERVER_RING, MAX_SERVER_RING);
    let mut frames = 2 * ring;
    if let Some(mem) = mem_total {
        let per = u64::from(frame_size.max(1)) * queues.max(1) as u64;
        while frames > PLAIN_FRAMES && u64::from(frames) * per > mem / 16 {
            frames /= 2;
        }
    }
    frames
}

/// MemTotal of /proc/meminfo, bytes.
pub fn mem_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl XskArgs {
    /// UMEM frames per queue: `--frames`, else for a server (an expected
    /// depth set) [`default_frames`], else [`PLAIN_FRAMES`].
    pub fn frames(&self) -> u32 {
        match (self.frames, self.expect_depth) {
            (Some(f), _) => f,
            (None, Some(d)) => default_frames(
                d,
                self.queues_hint.unwrap_or(1),
                self.frame_size,
                mem_total(),
            ),
            (None, None) => PLAIN_FRAMES,
        }
    }

    /// Ring size when none is given: half the frames (a ring of 2048
    /// overflowed with 10,000 connections each with a request in flight),
    /// at least 2048, at most 131072 (100,000 connections with a request
    /// in flight each need a ring that holds them: `--frames 262144`).
    pub fn default_ring(&self) -> u32 {
        ring_for(self.frames())
    }

    /// The socket configuration (with `vlan` pushed on transmit and `tap`
    /// recording).
    pub fn config(&self, vlan: Option<u16>, tap: Option<Arc<PcapTap>>) -> XskConfig {
        // `frames` may read /proc/meminfo: once.
        let frames = self.frames();
        let ring = ring_for(frames);
        XskConfig {
            frames,
            frame_size: self.frame_size,
            fill_size: self.fill_ring.unwrap_or(ring),
            comp_size: self.comp_ring.unwrap_or(ring),
            rx_size: self.rx_ring.unwrap_or(ring),
            tx_size: self.tx_ring.unwrap_or(ring),
            zero_copy: match self.zero_copy {
                ZeroCopyArg::Auto => ZeroCopy::Auto,
                ZeroCopyArg::On => ZeroCopy::On,
                ZeroCopyArg::Off => ZeroCopy::Off,
            },
            need_wakeup: !self.no_need_wakeup,
            busy_poll: self.busy_poll.map(|usecs| BusyPoll {
                usecs,
                budget: self.busy_poll_budget,
            }),
            vlan,
            tap,
        }
    }
}

/// Default copy-mode tx budget, when the kernel takes it.
pub const DEFAULT_TX_BUDGET: u32 = 256;

/// Apply `--tx-budget`: the value given (an error if refused), or
/// [`DEFAULT_TX_BUDGET`] if the kernel takes it. Returns the budget set
/// (`None`: the kernel's default).
pub fn apply_tx_budget(r: &mut XskRings, asked: Option<u32>) -> Result<Option<u32>, OpenError> {
    match asked {
        Some(b) => r
            .set_tx_budget(b)
            .map(|()| Some(b))
            .map_err(|err| OpenError::TxBudget {
                frames: b,
                iface: r.info().ifname.clone(),
                queue: r.info().queue,
                err,
            }),
        None => Ok(r
            .set_tx_budget(DEFAULT_TX_BUDGET)
            .ok()
            .map(|()| DEFAULT_TX_BUDGET)),
    }
}

/// Open an XSK, retrying for up to a second while the queue is busy: the
/// kernel releases a closed socket's hold on its queue from a work queue,
/// so a run started right after another one may find it still taken.
pub fn open_xsk(iface: &str, queue: u32, cfg: &XskConfig) -> Result<XskRings, NicError> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match XskRings::open(iface, queue, cfg) {
            Err(NicError::QueueBusy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The queues of one interface, opened: the XDP program (detached when this
/// is dropped or the process dies) and one socket per queue.
pub struct Opened {
    /// The attached program.
    pub steer: Steer,
    /// One socket per queue, in the order asked.
    pub rings: Vec<XskRings>,
    /// The pcap tap, if any.
    pub tap: Option<Arc<PcapTap>>,
    /// The tx budget set (None: the kernel's).
    pub tx_budget: Option<u32>,
}

/// What to steer to the sockets.
#[derive(Clone, Debug, Default)]
pub struct SteerTo {
    /// Mode.
    pub mode: Option<SteerMode>,
    /// The stack's IPv4 addresses.
    pub addrs4: Vec<Ipv4Addr>,
    /// The stack's IPv6 addresses.
    pub addrs6: Vec<Ipv6Addr>,
    /// VLAN.
    pub vlan: Option<u16>,
    /// Ports mode: the TCP port range of outgoing connections, steered.
    pub tcp_ports: Option<(u16, u16)>,
}

/// Attach the stack's XDP program to `iface` and open one socket per queue
/// in `queues`, each put in the program's XSKMAP. A refused start fails
/// whole: what was opened is closed (and the program detached) on return.
pub fn open_ports(
    iface: &str,
    queues: &[u32],
    x: &XskArgs,
    to: &SteerTo,
) -> Result<Opened, OpenError> {
    let tap = match &x.pcap {
        Some(p) => Some(Arc::new(
            PcapTap::create(p, x.pcap_limit)
                .map_err(|e| OpenError::Pcap(p.display().to_string(), e))?,
        )),
        None => None,
    };
    // The interface and queues first: these are the clearest complaints.
    let have = nic::xsk::rx_queue_count(iface)?;
    if let Some(&q) = queues.iter().find(|&&q| q >= have) {
        return Err(NicError::QueueOutOfRange {
            ifname: iface.into(),
            queue: q,
            queues: have,
        }
        .into());
    }
    let mut steer = Steer::attach(
        iface,
        &SteerConfig {
            mode: to.mode.unwrap_or(SteerMode::All),
            addrs4: to.addrs4.clone(),
            addrs6: to.addrs6.clone(),
            vlan: to.vlan,
            xdp_mode: x.xdp_mode.into(),
            tcp_ports: to.tcp_ports,
        },
    )?;
    if x.xdp_run_stats {
        steer.enable_run_stats()?;
    }
    let cfg = x.config(to.vlan, tap.clone());
    let mut rings = Vec::new();
    let mut tx_budget = None;
    for &q in queues {
        let mut r = open_xsk(iface, q, &cfg)?;
        tx_budget = apply_tx_budget(&mut r, x.tx_budget)?;
        steer.add_socket(q, r.fd())?;
        rings.push(r);
    }
    Ok(Opened {
        steer,
        rings,
        tap,
        tx_budget,
    })
}

/// The program's identity and counters as JSON.
pub fn xdp_json(steer: &Steer) -> serde_json::Value {
    let i = steer.info();
    serde_json::json!({
        "program": nic::steer::PROG_NAME,
        "prog_id": i.prog_id,
        "link_id": i.link_id,
        "attach_mode": i.mode.to_string(),
        "replaced": i.replaced.as_ref().map(|(id, name)| serde_json::json!({"id": id, "name": name})),
        "counters": counters_json(&steer.counters()),
        "run_stats": steer.run_stats().filter(|&(_, n)| n > 0).map(|(ns, n)| serde_json::json!({
            "run_time_ns": ns,
            "runs": n,
            "ns_per_packet": ns as f64 / n as f64,
        })),
    })
}

/// Counters as a JSON object (name -> value); null if unreadable.
pub fn counters_json(c: &nic::steer::SteerCounters) -> serde_json::Value {
    match c.read() {
        Ok(v) => serde_json::Value::Object(
            v.into_iter()
                .map(|(n, x)| (n.to_string(), serde_json::json!(x)))
                .collect(),
        ),
        Err(_) => serde_json::Value::Null,
    }
}

/// The stop flag, set by SIGINT/SIGTERM.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], ValueError> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(ValueError::Mac(s.to_string()));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(ValueError::Mac(s.to_string()));
        }
        *m = u8::from_str_radix(p, 16).map_err(|_| ValueError::Mac(s.to_string()))?;
    }
    Ok(mac)
}

/// The MAC address of `iface` (from sysfs).
pub fn read_mac(iface: &str) -> Result<[u8; 6], MacError> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .map_err(|_| MacError::NoInterface(iface.to_string()))?;
    parse_mac(&s).map_err(|_| MacError::Unreadable(iface.to_string()))
}

/// A list of queues or cores (`--queues`, `--cores`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List(pub Vec<u32>);

/// A queue-to-core map (`--map`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMap(pub Vec<(u32, u32)>);

/// `--queues` / `--cores` for clap (a newtype: clap takes a `Vec` value
/// for a list of arguments).
pub fn parse_list_arg(s: &str) -> Result<List, ValueError> {
    parse_list(s).map(List)
}

/// `--map` for clap.
pub fn parse_map_arg(s: &str) -> Result<QueueMap, ValueError> {
    parse_map(s).map(QueueMap)
}

/// Parse a list of numbers and ranges: `0-3`, `0,2,5`, `1-2,6`.
pub fn parse_list(s: &str) -> Result<Vec<u32>, ValueError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ValueError::ListEntry(part.to_string());
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.trim().parse().map_err(|_| bad())?;
                let b: u32 = b.trim().parse().map_err(|_| bad())?;
                if b < a || b - a > 1024 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(ValueError::Empty(s.to_string()));
    }
    let mut seen = out.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != out.len() {
        return Err(ValueError::Twice(s.to_string()));
    }
    Ok(out)
}

/// Parse `Q:C,Q:C,...` (queue to core).
pub fn parse_map(s: &str) -> Result<Vec<(u32, u32)>, ValueError> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (q, c) = part
            .split_once(':')
            .ok_or_else(|| ValueError::MapEntry(part.to_string()))?;
        let q: u32 = q
            .trim()
            .parse()
            .map_err(|_| ValueError::Queue(q.to_string()))?;
        let c: u32 = c
            .trim()
            .parse()
            .map_err(|_| ValueError::Core(c.to_string()))?;
        if out.iter().any(|&(oq, _)| oq == q) {
            return Err(ValueError::MappedTwice(q));
        }
        out.push((q, c));
    }
    if out.is_empty() {
        return Err(ValueError::Empty(s.to_string()));
    }
    Ok(out)
}

/// The ring size for `frames` UMEM frames: see [`XskArgs::default_ring`].
fn ring_for(frames: u32) -> u32 {
    (frames / 2).next_power_of_two().clamp(2048, 1 << 17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ranges_and_maps() {
        assert_eq!(parse_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_list("2,0,5-6").unwrap(), vec![2, 0, 5, 6]);
        assert!(parse_list("1,1").is_err());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
        assert_eq!(parse_map("0:2,1:3").unwrap(), vec![(0, 2), (1, 3)]);
        assert!(parse_map("0:2,0:3").is_err());
        assert!(parse_map("0").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("10").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn flattened_options_build_the_socket_config() {
        let x = XskArgs {
            zero_copy: ZeroCopyArg::Off,
            busy_poll: Some(50),
            rx_ring: Some(4096),
            no_need_wakeup: true,
            ..XskArgs::default()
        };
        let c = x.config(Some(7), None);
        // Rings not given follow the frames: half of them, at least 2048.
        assert_eq!(c.fill_size, 2048);
        let big = XskArgs {
            frames: Some(131072),
            ..XskArgs::default()
        };
        assert_eq!(big.config(None, None).rx_size, 65536);
        let bigger = XskArgs {
            frames: Some(1 << 20),
            ..XskArgs::default()
        };
        assert_eq!(bigger.config(None, None).rx_size, 131072, "capped");
        assert_eq!(c.zero_copy, ZeroCopy::Off);
        assert_eq!(
            c.busy_poll,
            Some(BusyPoll {
                usecs: 50,
                budget: 64
            })
        );
        assert_eq!(c.rx_size, 4096);
        assert!(!c.need_wakeup);
        assert_eq!(c.vlan, Some(7));
    }

    #[test]
    fn server_defaults_follow_the_expected_depth_within_memory() {
        const GIB: u64 = 1 << 30;
        // Small limits still get the ring the 100k connections/s load needed.
        assert_eq!(default_frames(512, 1, 2048, Some(24 * GIB)), 16384);
        assert_eq!(default_frames(1024, 1, 2048, Some(24 * GIB)), 16384);
        // One packet per connection up to the cap: 65536 connections, 32768 ring.
        assert_eq!(default_frames(20_000, 1, 2048, Some(24 * GIB)), 65536);
        assert_eq!(default_frames(65536, 1, 2048, Some(24 * GIB)), 65536);
        assert_eq!(default_frames(usize::MAX, 1, 2048, None), 65536);
        // A sixteenth of RAM for all queues together: 1 GiB, 8 queues -> 8 MiB each.
        assert_eq!(default_frames(65536, 8, 2048, Some(GIB)), 4096);
        assert_eq!(default_frames(65536, 1, 2048, Some(GIB)), 32768);
        // Never below the plain default.
        assert_eq!(default_frames(65536, 64, 4096, Some(GIB)), PLAIN_FRAMES);
        // What a server opens: the rx ring is half the frames.
        let x = XskArgs {
            expect_depth: Some(512),
            ..XskArgs::default()
        };
        assert!(x.config(None, None).rx_size >= MIN_SERVER_RING);
        // Given frames win; no depth (pktgen, reflector) keeps the plain default.
        assert_eq!(XskArgs::default().frames(), PLAIN_FRAMES);
        let given = XskArgs {
            frames: Some(2048),
            expect_depth: Some(65536),
            ..XskArgs::default()
        };
        assert_eq!(given.frames(), 2048);
    }
}
