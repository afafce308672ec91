//! `xdpstack bench reflect`: the raw AF_XDP ceiling. Every received frame
//! goes straight back out of the queue it came in on, with its MAC and IP
//! addresses and L4 ports swapped, rewritten in place in the UMEM
//! ([`Port::reflect`]: the rx frame becomes the tx frame, nothing is copied
//! in userspace) and with no stack in between. ARP requests and neighbour
//! solicitations for `--addr` are answered (in place too), so that pktgen
//! can resolve the reflector like any host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nic::xsk::rx_queue_count;
use nic::{Frame, Port, PortConfig, Rings};
use serde_json::json;

use crate::neigh::{answer_arp, answer_ndp};
use crate::{cpu_times, pin_thread, port_json};
use runtime::xsk_opts::{open_ports, read_mac, stop_flag, SteerArg, SteerTo, XskArgs};

/// `xdpstack bench reflect` options.
#[derive(clap::Args, Clone, Debug)]
pub struct ReflectArgs {
    /// Interface to reflect on.
    #[arg(long)]
    pub iface: String,
    /// Queues 0..N, one thread each.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Stop after this long (`30s`, `2m`; a bare number is seconds;
    /// default: at SIGINT/SIGTERM).
    #[arg(long, value_parser = runtime::duration::parse)]
    pub duration: Option<Duration>,
    /// Answer ARP (IPv4) or neighbour solicitations (IPv6) for this address;
    /// may be given more than once.
    #[arg(long)]
    pub addr: Vec<IpAddr>,
    /// Write the report (JSON: per-queue statistics) to this file on exit.
    #[arg(long, value_name = "FILE", alias = "stats-file")]
    pub report: Option<std::path::PathBuf>,
    /// Cores to pin queue threads to, e.g. `0,1` (thread i -> i-th entry,
    /// cycling); default: thread i -> core i.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub cores: Option<Vec<usize>>,
    /// Do not pin threads.
    #[arg(long)]
    pub no_pin: bool,
    /// AF_XDP socket options.
    #[command(flatten)]
    pub xsk: XskArgs,
    /// What the XDP program steers (default here: everything; `addr` takes
    /// only what is addressed to --addr).
    #[arg(long, value_enum, default_value_t = SteerArg::All)]
    pub steer: SteerArg,
}

/// Why a frame was not reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// Shorter than the headers it claims.
    Truncated,
    /// Neither IPv4 nor IPv6 (or a bad version nibble).
    NotIp,
}

/// Swap the Ethernet source and destination, the IP source and
/// destination, and (for TCP and UDP) the ports of the frame's first `len`
/// bytes, in place. Returns the length to send back (unchanged).
///
/// No checksum changes, and every checksum stays valid: the IPv4 header
/// checksum and the TCP/UDP checksums are one's-complement sums of 16-bit
/// words (RFC 1071), over the IPv4 header, or over the pseudo-header (source
/// and destination address, protocol, length) plus the L4 header and
/// payload. One's-complement addition is commutative, and each swap only
/// exchanges whole, 16-bit-aligned words *within* the summed set: the two
/// addresses (4 or 16 bytes each, at even offsets) trade places, as do the
/// two ports (the first two words of the TCP/UDP header). The sums, and so
/// the checksums, are the same before and after. (The Ethernet header is
/// not checksummed by software; the FCS is the NIC's.) A UDP checksum of 0
/// (none, IPv4) stays 0.
///
/// Ports are swapped only where there is an L4 header: not in IPv4
/// fragments past the first, not behind IPv6 extension headers.
pub fn swap_in_place(frame: &mut [u8], len: usize) -> Result<usize, SwapError> {
    let f = frame.get_mut(..len).ok_or(SwapError::Truncated)?;
    if f.len() < 14 {
        return Err(SwapError::Truncated);
    }
    let (l4, proto) = match [f[12], f[13]] {
        [0x08, 0x00] => {
            let ip = f.get(14..34).ok_or(SwapError::Truncated)?;
            if ip[0] >> 4 != 4 {
                return Err(SwapError::NotIp);
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || f.len() < 14 + ihl {
                return Err(SwapError::Truncated);
            }
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let proto = if first_fragment { ip[9] } else { 0 };
            swap_ranges(f, 26, 30, 4);
            (14 + ihl, proto)
        }
        [0x86, 0xdd] => {
            let ip = f.get(14..54).ok_or(SwapError::Truncated)?;
            if ip[0] >> 4 != 6 {
                return Err(SwapError::NotIp);
            }
            let proto = ip[6];
            swap_ranges(f, 22, 38, 16);
            (54, proto)
        }
        _ => return Err(SwapError::NotIp),
    };
    swap_ranges(f, 0, 6, 6);
    // TCP (6) and UDP (17): source and destination port.
    if matches!(proto, 6 | 17) && f.len() >= l4 + 4 {
        swap_ranges(f, l4, l4 + 2, 2);
    }
    Ok(len)
}

/// Swap `f[a..a+n]` with `f[b..b+n]` (`a + n <= b`, both in bounds).
fn swap_ranges(f: &mut [u8], a: usize, b: usize, n: usize) {
    let (x, y) = f.split_at_mut(b);
    x[a..a + n].swap_with_slice(&mut y[..n]);
}

/// What a reflector thread counted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReflectCounters {
    /// Frames received.
    pub received: u64,
    /// Frames sent back with addresses swapped.
    pub reflected: u64,
    /// ARP requests answered.
    pub arp_answered: u64,
    /// Neighbour solicitations answered.
    pub ndp_answered: u64,
    /// Dropped: to a group (broadcast or multicast) MAC.
    pub dropped_multicast: u64,
    /// Dropped: neither IP nor an ARP request for us.
    pub dropped_not_ip: u64,
    /// Dropped: shorter than its headers.
    pub dropped_truncated: u64,
}

impl ReflectCounters {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.dropped_multicast + self.dropped_not_ip + self.dropped_truncated
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Reflected,
    Arp,
    Ndp,
    Multicast,
    NotIp,
    Truncated,
}

/// One queue's reflector.
pub struct Reflector<R: Rings> {
    port: Port<R>,
    mac: [u8; 6],
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    frames: Vec<Frame>,
    counters: ReflectCounters,
}

/// What a frame is, and its rewrite: the new length to send, or why not.
fn rewrite(
    b: &mut [u8],
    len: usize,
    mac: [u8; 6],
    v4: &[Ipv4Addr],
    v6: &[Ipv6Addr],
) -> (Outcome, Option<usize>) {
    if let Some(n) = answer_arp(b, len, mac, v4) {
        return (Outcome::Arp, Some(n));
    }
    if let Some(n) = answer_ndp(b, len, mac, v6) {
        return (Outcome::Ndp, Some(n));
    }
    if len < 14 || b.len() < len {
        return (Outcome::Truncated, None);
    }
    if b.first().is_some_and(|m| m & 1 != 0) {
        // Broadcast/multicast: swapping would send from a group MAC.
        return (Outcome::Multicast, None);
    }
    match swap_in_place(b, len) {
        Ok(n) => (Outcome::Reflected, Some(n)),
        Err(SwapError::NotIp) => (Outcome::NotIp, None),
        Err(SwapError::Truncated) => (Outcome::Truncated, None),
    }
}

impl<R: Rings> Reflector<R> {
    /// A reflector on `port` with MAC `mac`, answering ARP/NDP for `addrs`.
    pub fn new(port: Port<R>, mac: [u8; 6], addrs: &[IpAddr]) -> Reflector<R> {
        let v4 = addrs
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6 = addrs
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
            .collect();
        let batch = port.config().batch;
        Reflector {
            port,
            mac,
            v4,
            v6,
            frames: Vec::with_capacity(batch),
            counters: ReflectCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &ReflectCounters {
        &self.counters
    }

    /// Reflect one batch; returns the frames received.
    pub fn step(&mut self) -> usize {
        let n = self.port.recv(&mut self.frames);
        for i in 0..n {
            let f = self.frames[i];
            let len = f.len as usize;
            let (mac, v4, v6) = (self.mac, &self.v4, &self.v6);
            let mut outcome = Outcome::Truncated;
            self.port.reflect(f, |b| {
                let (o, r) = rewrite(b, len, mac, v4, v6);
                outcome = o;
                r
            });
            let c = &mut self.counters;
            c.received += 1;
            match outcome {
                Outcome::Reflected => c.reflected += 1,
                Outcome::Arp => c.arp_answered += 1,
                Outcome::Ndp => c.ndp_answered += 1,
                Outcome::Multicast => c.dropped_multicast += 1,
                Outcome::NotIp => c.dropped_not_ip += 1,
                Outcome::Truncated => c.dropped_truncated += 1,
            }
        }
        self.port.flush(|_, len| Some(len));
        n
    }

    /// Reflect until `stop` is set or `deadline` passes; spin 50 µs after
    /// the last frame, then sleep in poll() (at most 100 ms at a time).
    pub fn run(&mut self, stop: &AtomicBool, deadline: Option<Instant>) {
        let spin = Duration::from_micros(50);
        let mut last_work = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let n = self.step();
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            if n > 0 || self.port.pending_tx() > 0 {
                last_work = now;
                continue;
            }
            if now.duration_since(last_work) < spin {
                continue;
            }
            // Frames in flight may still sit on the tx ring (copy mode sends
            // a bounded number per kick; a kick can fail when the peer's
            // queue is full): sleep 1 ms at most then, so that the next
            // flush kicks again soon, else until a frame arrives (100 ms at
            // most, to see the stop flag).
            let mut ms = if self.port.in_flight() > 0 { 1 } else { 100 };
            if let Some(d) = deadline {
                ms = ms.min(d.saturating_duration_since(now).as_millis().max(1) as i32);
            }
            self.port.flush(|_, len| Some(len));
            let _ = self.port.wait(ms);
            last_work = Instant::now();
        }
        // Let what is on the tx ring go.
        self.port.flush(|_, len| Some(len));
    }

    /// The port (for statistics and the frame check).
    pub fn port(&self) -> &Port<R> {
        &self.port
    }
}

/// Why the reflector did not start.
#[derive(Debug, thiserror::Error)]
pub enum ReflectError {
    /// Zero queues.
    #[error("--queues must be at least 1")]
    NoQueues,
    /// Zero duration.
    #[error("--duration must be at least 1 second")]
    NoDuration,
    /// More queues than the interface has.
    #[error("{iface} has {have} rx queue(s); cannot reflect on {want} (queues 0..{want})")]
    TooManyQueues {
        /// Interface.
        iface: String,
        /// Its queues.
        have: u32,
        /// Asked for.
        want: u32,
    },
    /// Anything else, already worded.
    #[error("{0}")]
    Other(String),
    /// The interface's MAC address could not be read.
    #[error(transparent)]
    Mac(#[from] runtime::xsk_opts::MacError),
    /// A port failed to open.
    #[error(transparent)]
    Nic(#[from] nic::NicError),
}

/// Run the reflector until SIGINT/SIGTERM or `--duration`.
pub fn run(args: &ReflectArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if args.queues == 0 {
        return Err(ReflectError::NoQueues.into());
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        return Err(ReflectError::NoDuration.into());
    }
    let have = rx_queue_count(&args.iface)?;
    if args.queues > have {
        return Err(ReflectError::TooManyQueues {
            iface: args.iface.clone(),
            have,
            want: args.queues,
        }
        .into());
    }
    let mac = read_mac(&args.iface)?;
    let stop = stop_flag()?;
    let queues: Vec<u32> = (0..args.queues).collect();
    let to = SteerTo {
        mode: Some(args.steer.into()),
        addrs4: args
            .addr
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(*v),
                IpAddr::V6(_) => None,
            })
            .collect(),
        addrs6: args
            .addr
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v) => Some(*v),
                IpAddr::V4(_) => None,
            })
            .collect(),
        vlan: None,
        tcp_ports: None,
    };
    let opened = open_ports(&args.iface, &queues, &args.xsk, &to)?;
    // Detached when this goes out of scope at the end of the run.
    let steer = opened.steer;
    let tx_budget = opened.tx_budget;
    let rings = opened.rings;
    let info = rings[0].info().clone();
    let cores = args.cores.clone();
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut handles = Vec::new();
    for (q, r) in rings.into_iter().enumerate() {
        let stop = stop.clone();
        let addrs = args.addr.clone();
        let pin = !args.no_pin;
        let cores = cores.clone();
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-reflect{q}"))
            .spawn(move || {
                let core = if pin {
                    pin_thread(q, cores.as_deref(), false)
                } else {
                    None
                };
                let cpu0 = cpu_times();
                let port = Port::new(
                    r,
                    PortConfig {
                        tx_reserve: 0,
                        ..PortConfig::default()
                    },
                );
                let mut refl = Reflector::new(port, mac, &addrs);
                refl.run(&stop, deadline);
                let cpu = cpu_times().since(cpu0);
                let frames = refl.port().check();
                let c = refl.counters().clone();
                json!({
                    "queue": q,
                    "core": core,
                    "cpu_ran_on": nix::sched::sched_getcpu().ok(),
                    "cpu_user_s": cpu.user,
                    "cpu_sys_s": cpu.sys,
                    "counters": c,
                    "dropped": c.dropped(),
                    "port": port_json(&refl.port().stats()),
                    "frame_accounting": match frames { Ok(()) => "ok".to_string(), Err(e) => e.to_string() },
                })
            })
            .map_err(|e| ReflectError::Other(format!("cannot start queue thread {q}: {e}")))?;
        handles.push(h);
    }
    eprintln!(
        "xdpstack bench reflect: {} queue(s) on {} ({} XDP, zero-copy {}), answering ARP/NDP for {}",
        args.queues,
        args.iface,
        info.mode,
        if info.zero_copy { "on" } else { "off" },
        if args.addr.is_empty() {
            "nothing".to_string()
        } else {
            args.addr
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    let mut queues = Vec::new();
    let mut failed = None;
    for (q, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(v) => queues.push(v),
            Err(_) => failed = Some(format!("queue thread {q} panicked")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let total = |k: &str| -> u64 {
        queues
            .iter()
            .filter_map(|q| q["counters"][k].as_u64())
            .sum()
    };
    let reflected = total("reflected");
    let report = json!({
        "tool": "xdpstack bench reflect",
        "iface": args.iface,
        "xdp_mode": info.mode.to_string(),
        "zero_copy": info.zero_copy,
        "tx_budget": tx_budget,
        "xdp": runtime::xsk_opts::xdp_json(&steer),
        "seconds": secs,
        "reflected": reflected,
        "received": total("received"),
        "reflected_pps": reflected as f64 / secs.max(1e-9),
        "queues": queues,
    });
    let mut bad_frames = Vec::new();
    for q in &queues {
        eprintln!(
            "queue {} (core {}): received {} reflected {} dropped {} (multicast {}, not ip {}, truncated {}) | arp {} ndp {} | frames {}",
            q["queue"],
            q["core"],
            q["counters"]["received"],
            q["counters"]["reflected"],
            q["dropped"],
            q["counters"]["dropped_multicast"],
            q["counters"]["dropped_not_ip"],
            q["counters"]["dropped_truncated"],
            q["counters"]["arp_answered"],
            q["counters"]["ndp_answered"],
            q["frame_accounting"],
        );
        if q["frame_accounting"] != "ok" {
            bad_frames.push(format!("queue {}: {}", q["queue"], q["frame_accounting"]));
        }
    }
    eprintln!(
        "reflected {reflected} frames in {secs:.2} s ({:.0} pps)",
        reflected as f64 / secs.max(1e-9)
    );
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text)
            .map_err(|e| ReflectError::Other(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(e) = failed {
        return Err(ReflectError::Other(e).into());
    }
    if !bad_frames.is_empty() {
        return Err(ReflectError::Other(format!(
            "frame accounting failed: {}",
            bad_frames.join("; ")
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csum;
    use crate::neigh::arp_request;
    use crate::template::{Fields, Kind, Spec, Template};
    use nic::mem::{MemConfig, MemRings};
    use stack::parse::parse_ip;

    const A_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
    const B_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];

    fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (
                "2001:db8:18::2".parse().unwrap(),
                "2001:db8:18::1".parse().unwrap(),
            )
        } else {
            ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap())
        }
    }

    fn frame(kind: Kind, v6: bool, i: u64) -> Vec<u8> {
        let (a, b) = addrs(v6);
        let t = Template::build(&Spec {
            kind,
            src_mac: A_MAC,
            dst_mac: B_MAC,
            src: a,
            dst: b,
            src_port: 40000,
            dst_port: 7,
            payload: 100,
            qname: "x.example".into(),
            run: 1,
        })
        .unwrap();
        let mut f = vec![0u8; t.len()];
        t.write(&mut f).unwrap();
        t.patch(
            &mut f,
            &Fields {
                src: a,
                src_port: 40000 + i as u16,
                seq: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ts_ns: i << 20,
                thread: 0,
                dns_id: i as u16,
                flow: 0,
            },
        )
        .unwrap();
        f
    }

    fn parsed(f: &[u8]) -> stack::parse::ParsedIp {
        parse_ip(&f[14..]).expect("valid checksums")
    }

    /// UDP and TCP over IPv4 and IPv6: after the swap, addresses, ports and
    /// MACs are exchanged and every checksum still verifies, without any
    /// checksum having been touched.
    #[test]
    fn swap_keeps_checksums_valid() {
        for kind in [Kind::Udp, Kind::Echo, Kind::Dns, Kind::Syn] {
            for v6 in [false, true] {
                for i in 0..50 {
                    let mut f = frame(kind, v6, i);
                    let before = parsed(&f);
                    let len = f.len();
                    assert_eq!(swap_in_place(&mut f, len), Ok(len));
                    let after = parsed(&f);
                    assert_eq!(after.key.src, before.key.dst, "{kind:?} v6={v6}");
                    assert_eq!(after.key.dst, before.key.src);
                    assert_eq!(after.key.sport, before.key.dport);
                    assert_eq!(after.key.dport, before.key.sport);
                    assert_eq!(after.l4, before.l4);
                    assert_eq!(&f[0..6], &A_MAC);
                    assert_eq!(&f[6..12], &B_MAC);
                    // Swapping twice gives the original frame back.
                    let mut g = f.clone();
                    swap_in_place(&mut g, len).unwrap();
                    assert_eq!(g, frame(kind, v6, i));
                }
            }
        }
    }

    /// IPv4 options move the L4 header; the swap follows the IHL.
    #[test]
    fn swap_with_ipv4_options() {
        let f = frame(Kind::Udp, false, 3);
        // Insert 4 bytes of options (NOPs) after the 20-byte header.
        let mut g = Vec::new();
        g.extend_from_slice(&f[..34]);
        g.extend_from_slice(&[1, 1, 1, 1]);
        g.extend_from_slice(&f[34..]);
        g[14] = 0x46;
        let total = u16::from_be_bytes([g[16], g[17]]) + 4;
        g[16..18].copy_from_slice(&total.to_be_bytes());
        g[24..26].fill(0);
        let c = csum::checksum(&g[14..38]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        let before = parsed(&g);
        let len = g.len();
        swap_in_place(&mut g, len).unwrap();
        let after = parsed(&g);
        assert_eq!(
            (after.key.sport, after.key.dport),
            (before.key.dport, before.key.sport)
        );
    }

    /// A fragment past the first has no L4 header: its bytes are left alone.
    #[test]
    fn later_fragments_keep_their_bytes() {
        let mut f = frame(Kind::Udp, false, 1);
        f[20..22].copy_from_slice(&100u16.to_be_bytes());
        let payload = f[34..].to_vec();
        let len = f.len();
        swap_in_place(&mut f, len).unwrap();
        assert_eq!(f[34..], payload[..]);
        assert_eq!(&f[26..30], &[198, 18, 0, 1]);
    }

    #[test]
    fn refuses_what_it_cannot_swap() {
        let mut f = frame(Kind::Udp, false, 1);
        assert_eq!(swap_in_place(&mut f, 13), Err(SwapError::Truncated));
        assert_eq!(swap_in_place(&mut f, 30), Err(SwapError::Truncated));
        assert_eq!(swap_in_place(&mut f, 4096), Err(SwapError::Truncated));
        let mut g = f.clone();
        g[14] = 0x65;
        let len = g.len();
        assert_eq!(swap_in_place(&mut g, len), Err(SwapError::NotIp));
        g[12..14].copy_from_slice(&[0x88, 0xb5]);
        assert_eq!(swap_in_place(&mut g, len), Err(SwapError::NotIp));
        let mut v6 = frame(Kind::Udp, true, 1);
        assert_eq!(swap_in_place(&mut v6, 50), Err(SwapError::Truncated));
        // Headers present but the L4 header cut: addresses swapped, ports not there.
        let mut short = frame(Kind::Syn, false, 1);
        assert_eq!(swap_in_place(&mut short, 36), Ok(36));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = testkit::Rng::new(3);
        let mut buf = vec![0u8; 300];
        for i in 0..50_000usize {
            let len = i % 120;
            rng.fill(&mut buf[..len]);
            if len > 14 {
                buf[12..14].copy_from_slice(if i % 2 == 0 { &[8, 0] } else { &[0x86, 0xdd] });
            }
            // A swap keeps the frame's length; under an Ethernet header, none.
            if let Ok(n) = swap_in_place(&mut buf, len) {
                assert_eq!(n, len);
            }
            if len < 14 {
                assert!(swap_in_place(&mut buf, len).is_err());
            }
            // Whatever is sent fits the buffer.
            if let (_, Some(n)) = rewrite(&mut buf, len, B_MAC, &[], &[]) {
                assert!(n <= buf.len(), "{n}");
            }
            // A length past the buffer is refused.
            assert!(swap_in_place(&mut buf[..len], len + 1).is_err());
        }
    }

    /// The reflector over an in-memory pipe: reflects IP, answers ARP for
    /// its address, drops group-addressed and non-IP frames, counts it all.
    #[test]
    fn reflector_step_over_memory() {
        let (ra, rb) = MemRings::pair(MemConfig::default());
        let mut a = Port::new(ra, PortConfig::default());
        let b = Port::new(rb, PortConfig::default());
        let (ip_a, ip_b) = addrs(false);
        let mut r = Reflector::new(b, B_MAC, &[ip_b]);
        let (IpAddr::V4(a4), IpAddr::V4(b4)) = (ip_a, ip_b) else {
            unreachable!()
        };
        for i in 0..10 {
            let f = frame(Kind::Echo, i % 2 == 1, i);
            assert!(a.send_frame(f.len(), |b| b.copy_from_slice(&f)));
        }
        assert!(a.send_frame(60, |b| {
            arp_request(b, A_MAC, a4, b4).unwrap();
        }));
        // To a multicast MAC, and not IP.
        let mut m = frame(Kind::Udp, false, 0);
        m[0] = 0x01;
        assert!(a.send_frame(m.len(), |b| b.copy_from_slice(&m)));
        let mut n = frame(Kind::Udp, false, 0);
        n[12..14].copy_from_slice(&[0x88, 0xb5]);
        assert!(a.send_frame(n.len(), |b| b.copy_from_slice(&n)));
        a.flush(|_, len| Some(len));
        assert_eq!(r.step(), 13);
        let c = r.counters().clone();
        assert_eq!(
            (
                c.received,
                c.reflected,
                c.arp_answered,
                c.dropped_multicast,
                c.dropped_not_ip
            ),
            (13, 10, 1, 1, 1)
        );
        let mut frames = Vec::new();
        a.recv(&mut frames);
        assert_eq!(frames.len(), 11);
        let mut arp = 0;
        for f in frames.drain(..) {
            a.read(f, |x| {
                if crate::neigh::arp_reply_from(x, b4) == Some(B_MAC) {
                    arp += 1;
                } else {
                    let p = parsed(x);
                    assert!((40000..40010).contains(&p.key.dport), "{p:?}");
                    assert_eq!(p.key.sport, 7);
                    assert_eq!(&x[..6], &A_MAC);
                }
            });
            a.release(f);
        }
        assert_eq!(arp, 1);
        r.port().check().unwrap();
        a.check().unwrap();
    }
}
