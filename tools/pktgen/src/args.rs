//! The command line of `xdpstack pktgen` and its value parsers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use runtime::duration::DurationError;
use runtime::xsk_opts::{parse_mac, XskArgs};

use crate::gen::{AddrRange, PortRange, TxMode};
use crate::template::Kind;

/// Why an address or port range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not `ADDR` or `FIRST-LAST`.
    #[error("`{0}` is not an address or FIRST-LAST range")]
    NotAddresses(String),
    /// An IPv4 and an IPv6 end.
    #[error("`{0}`: both ends must be of one family")]
    Families(String),
    /// LAST before FIRST.
    #[error("`{0}`: the range is empty (LAST < FIRST)")]
    Empty(String),
    /// Too many addresses.
    #[error("`{0}`: more than 2^32 addresses")]
    TooLarge(String),
    /// Not `PORT` or `FIRST-LAST` within 1-65535.
    #[error("`{0}` is not a port or FIRST-LAST range of ports 1-65535")]
    NotPorts(String),
}

/// `--cores` names a core this machine does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("core {core} does not exist here (cores: {have:?})")]
pub struct NoSuchCore {
    /// The core named.
    pub core: usize,
    /// The cores there are.
    pub have: Vec<usize>,
}

/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// Longest wait for late replies.
const MAX_DRAIN: Duration = Duration::from_secs(10);

fn parse_send_time(s: &str) -> Result<Duration, DurationError> {
    runtime::duration::parse_whole_secs_within(s, Duration::from_secs(1), MAX_DURATION)
}

fn parse_drain(s: &str) -> Result<Duration, DurationError> {
    runtime::duration::parse_within(s, Duration::ZERO, MAX_DRAIN)
}

/// `--drain-ms N`: N milliseconds, within --drain's bounds.
fn parse_drain_ms(s: &str) -> Result<Duration, DurationError> {
    parse_drain(&format!("{}ms", s.trim()))
}

fn parse_resolve_timeout(s: &str) -> Result<Duration, DurationError> {
    runtime::duration::parse_within(s, Duration::from_millis(100), Duration::from_secs(60))
}
/// `xdpstack pktgen` options.
#[derive(clap::Args, Clone, Debug)]
pub struct PktgenArgs {
    /// Interface to send on (an XSK per queue; its kernel stack no longer
    /// sees packets on those queues while pktgen runs).
    #[arg(long)]
    pub iface: String,
    /// Queues 0..N, one thread each.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Packet template.
    #[arg(long, value_enum)]
    pub template: Kind,
    /// Destination address.
    #[arg(long)]
    pub dst: IpAddr,
    /// Destination port (default: udp 9, syn 80, dns 53, echo 7; ns has none).
    #[arg(long)]
    pub dst_port: Option<u16>,
    /// Destination MAC (default: resolved with ARP or NDP from the XSK).
    #[arg(long, value_parser = parse_mac)]
    pub dst_mac: Option<[u8; 6]>,
    /// Give up resolving the destination MAC after this long (`3s`,
    /// `500ms`; 100 ms to 60 s; a bare number is seconds).
    #[arg(long, default_value = "3s", value_parser = parse_resolve_timeout)]
    pub resolve_timeout: Duration,
    /// Source address or range FIRST-LAST (default: the interface's first
    /// address of the destination's family).
    #[arg(long, value_parser = parse_addr_range)]
    pub src: Option<AddrRange>,
    /// Source port or range FIRST-LAST (default: 10000 for udp and echo,
    /// 10000-19999 for syn and dns).
    #[arg(long, value_parser = parse_port_range)]
    pub src_port: Option<PortRange>,
    /// Flows (source address x port combinations) to cycle through
    /// (default: all of the ranges).
    #[arg(long)]
    pub flows: Option<u64>,
    /// UDP payload bytes (udp, echo; echo needs at least 28).
    #[arg(long, default_value_t = 32)]
    pub payload: usize,
    /// Name to ask for (dns, dnstcp).
    #[arg(long, default_value = "www.example.com")]
    pub qname: String,
    /// Packets per second in all (shared out over the threads); 0: as fast
    /// as possible.
    #[arg(long)]
    pub rate: u64,
    /// How long to send: whole seconds, `1s` to `5m` (a bare number is
    /// seconds).
    #[arg(long, value_parser = parse_send_time)]
    pub duration: Duration,
    /// Stop after this many packets in all (still bounded by --duration).
    #[arg(long)]
    pub count: Option<u64>,
    /// Frames per send batch (1 to 256).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// After sending, wait this long for late replies (`500ms`, `3s`; at
    /// most 10 s; a bare number is seconds).
    #[arg(long, default_value = "500ms", value_parser = parse_drain)]
    pub drain: Duration,
    /// The old spelling of --drain, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "drain", value_parser = parse_drain_ms)]
    pub drain_ms: Option<Duration>,
    /// Write the report (JSON summary) to this file instead of stdout.
    #[arg(long, value_name = "FILE", alias = "json")]
    pub report: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// How frames are written: `pool` (template in dedicated frames, patched
    /// per packet) or `copy` (template copied per packet).
    #[arg(long, value_enum, default_value_t = TxMode::Pool)]
    pub tx_mode: TxMode,
    /// Receive nothing: the XDP program passes every frame to the kernel
    /// (its addresses are steered to nobody), so a kernel client on the same
    /// interface keeps its traffic; replies are not counted. For a flood
    /// sent next to real clients (e.g. `ns` from many sources).
    #[arg(long)]
    pub send_only: bool,
    /// Connections at once (http; default 50).
    #[arg(long)]
    pub conns: Option<u32>,
    /// One request per connection, `Connection: close` (http); --rate is
    /// then new connections per second (0: each slot reconnects as soon as
    /// its connection closed).
    #[arg(long)]
    pub close: bool,
    /// SYNs per second while keep-alive connections open (http; 0: no
    /// limit).
    #[arg(long, default_value_t = 0)]
    pub connect_rate: u64,
    /// Requests outstanding at most (http keep-alive, --rate 0; 0: one per
    /// connection). Below --conns each response sends the next request on
    /// the connection idle longest: every connection takes its turn and the
    /// server sees this many requests at once.
    #[arg(long, default_value_t = 0)]
    pub inflight: u32,
    /// Path to GET (http).
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Do not answer SYN-ACKs with RST (syn): leave connections half open.
    #[arg(long)]
    pub keep_half_open: bool,
    /// Cores to pin threads to, e.g. `1,0` (thread i -> i-th entry,
    /// cycling); default: thread i -> core N-1-i, off the cores a server's
    /// workers take first.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub cores: Option<Vec<usize>>,
    /// Do not pin threads.
    #[arg(long)]
    pub no_pin: bool,
    /// AF_XDP socket options (--frames: at least 2048; a quarter, at most
    /// 1024, hold the template for transmission).
    #[command(flatten)]
    pub xsk: XskArgs,
}

impl PktgenArgs {
    /// How long to wait for late replies: --drain, or the old --drain-ms.
    pub fn drain_time(&self) -> Duration {
        self.drain_ms.unwrap_or(self.drain)
    }
}

/// Parse `ADDR` or `FIRST-LAST` (same family, at most 2^32 addresses).
pub fn parse_addr_range(s: &str) -> Result<AddrRange, RangeError> {
    let bad = || RangeError::NotAddresses(s.to_string());
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let first: IpAddr = a.parse().map_err(|_| bad())?;
    let last: IpAddr = b.parse().map_err(|_| bad())?;
    let (x, y) = match (first, last) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (u128::from(u32::from(x)), u128::from(u32::from(y))),
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x), u128::from(y)),
        _ => return Err(RangeError::Families(s.to_string())),
    };
    if y < x {
        return Err(RangeError::Empty(s.to_string()));
    }
    let len = y - x + 1;
    if len > 1 << 32 {
        return Err(RangeError::TooLarge(s.to_string()));
    }
    Ok(AddrRange {
        first,
        len: len as u64,
    })
}

/// Parse `PORT` or `FIRST-LAST` (ports 1..65535).
pub fn parse_port_range(s: &str) -> Result<PortRange, RangeError> {
    let bad = || RangeError::NotPorts(s.to_string());
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let first: u16 = a.parse().map_err(|_| bad())?;
    let last: u16 = b.parse().map_err(|_| bad())?;
    if first == 0 || last < first {
        return Err(bad());
    }
    Ok(PortRange { first, last })
}

/// Check that every core in `cores` exists here.
pub fn check_cores(cores: Option<&[usize]>) -> Result<(), NoSuchCore> {
    let Some(cores) = cores else {
        return Ok(());
    };
    let have: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    match cores.iter().find(|c| !have.contains(c)) {
        Some(&core) => Err(NoSuchCore { core, have }),
        None => Ok(()),
    }
}
