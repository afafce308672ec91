//! `xdpstack pktgen`: an AF_XDP packet generator.
//!
//! One thread per queue of an interface, each with its own XSK, pinned to a
//! core. Each kind of packet (`--template udp|syn|dns|echo|ns`) is built once
//! ([`template`]) into a transmit pool of UMEM frames and patched per packet
//! (source address and port, sequence numbers, DNS ids, timestamps) with
//! incremental checksum updates; frames go out at a paced rate (a token
//! bucket per thread) or as fast as the rings take them. Everything that
//! comes back is parsed (checksums verified) and matched: echo replies by
//! the header they carry, DNS replies by id against a send-time table,
//! SYN-ACKs by the acknowledged ISN (answered with a RST so the server frees
//! the half-open connection). The destination MAC comes from `--dst-mac` or
//! from ARP/NDP sent on the XSK itself (`ns` sends to the target's
//! solicited-node group and resolves nothing). With `--send-only` the
//! interface's receive side stays the kernel's, so a kernel client on the
//! same link keeps working while pktgen floods it.
//!
//! While it runs, a progress line goes to stderr once a second; at the end a
//! JSON summary (totals, a per-second series, per-thread counters and cores,
//! latency percentiles, the frame accounting check) goes to stdout or
//! `--json FILE`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod args;
pub mod csum;
pub mod echo;
pub mod gen;
pub mod httpc;
pub mod neigh;
pub mod pacer;
pub mod reflect;
pub mod reply;
pub mod sys;
pub mod template;

#[cfg(test)]
mod httpc_tests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nic::xsk::rx_queue_count;
use nic::{NicError, Port, PortConfig, Rings};
use serde_json::{json, Value};

use gen::{AddrRange, DnsTable, Gen, GenConfig, GenReport, Generator, Live, PortRange};
use nic::steer::SteerMode;
use runtime::xsk_opts::{open_ports, stop_flag, SteerTo};
pub use runtime::xsk_opts::{parse_mac, read_mac};
use template::{Kind, Spec, Template};

pub use args::{
    check_cores, parse_addr_range, parse_port_range, NoSuchCore, PktgenArgs, RangeError,
    MAX_DURATION,
};
pub use sys::{cpu_times, latency_json, pin_thread, port_json, CpuTimes};

/// Transmit-pool frames per queue.
const POOL: usize = 1024;

/// Why pktgen did not run.
#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    /// A bad option value.
    #[error("{0}")]
    Usage(String),
    /// A port failed to open.
    #[error(transparent)]
    Nic(#[from] NicError),
    /// A template could not be built.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// Nobody answered ARP/NDP.
    #[error("no {proto} reply for {dst} on {iface} within {secs:.1} s (is anything answering for it on that link?); give --dst-mac to skip resolution")]
    Unresolved {
        /// ARP or NDP.
        proto: &'static str,
        /// Destination.
        dst: IpAddr,
        /// Interface.
        iface: String,
        /// Timeout.
        secs: f64,
    },
    /// The interface's MAC address could not be read.
    #[error(transparent)]
    Mac(#[from] runtime::xsk_opts::MacError),
    /// A core that does not exist.
    #[error(transparent)]
    Cores(#[from] NoSuchCore),
    /// Anything else, already worded.
    #[error("{0}")]
    Other(String),
}

/// Format a MAC.
pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The first address of `iface` in the family of `like` (IPv6: a global one
/// unless `like` is link-local).
fn iface_addr(iface: &str, like: IpAddr) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs.filter(|a| a.interface_name == iface) {
        let Some(sa) = a.address else { continue };
        match like {
            IpAddr::V4(_) => {
                if let Some(v4) = sa.as_sockaddr_in() {
                    return Some(IpAddr::V4(v4.ip()));
                }
            }
            IpAddr::V6(d) => {
                if let Some(v6) = sa.as_sockaddr_in6() {
                    let ip = v6.ip();
                    let link_local = |x: std::net::Ipv6Addr| x.segments()[0] & 0xffc0 == 0xfe80;
                    if link_local(ip) == link_local(d) {
                        return Some(IpAddr::V6(ip));
                    }
                }
            }
        }
    }
    None
}

/// A run id that differs from run to run (echo replies from an earlier run
/// are not counted).
fn run_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (t as u32) ^ ((t >> 32) as u32) ^ std::process::id().rotate_left(16)
}

/// Resolve `dst` to a MAC by ARP (IPv4) or NDP (IPv6) from `src` at `mac`,
/// sending from the first port and listening on all of them.
pub fn resolve<R: Rings>(
    ports: &mut [Port<R>],
    mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    timeout: Duration,
    stop: &AtomicBool,
) -> Option<[u8; 6]> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut next_send = start;
    let mut frames = Vec::new();
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_send {
            if let Some(p) = ports.first_mut() {
                let _ = p.send_frame(128, |b| {
                    b.fill(0);
                    let _ = match (src, dst) {
                        (IpAddr::V4(s), IpAddr::V4(d)) => neigh::arp_request(b, mac, s, d),
                        (IpAddr::V6(s), IpAddr::V6(d)) => neigh::ndp_solicit(b, mac, s, d),
                        _ => None,
                    };
                });
                // The request is shorter than 128 bytes; the padding is zero.
                p.flush(|_, len| Some(len));
            }
            next_send += Duration::from_millis(250);
        }
        for p in ports.iter_mut() {
            p.recv(&mut frames);
            let mut found = None;
            for f in frames.drain(..) {
                let got = p.read(f, |b| match dst {
                    IpAddr::V4(d) => neigh::arp_reply_from(b, d),
                    IpAddr::V6(d) => neigh::ndp_advert_for(b, d),
                });
                found = found.or(got.flatten());
                p.release(f);
            }
            if found.is_some() {
                return found;
            }
        }
        if let Some(p) = ports.first_mut() {
            let _ = p.wait(10);
        }
    }
    None
}

fn usage(msg: impl Into<String>) -> PktgenError {
    PktgenError::Usage(msg.into())
}

/// Everything decided before the threads start.
struct Plan {
    src_ips: AddrRange,
    src_ports: PortRange,
    flows: u64,
    dst_port: u16,
}

fn plan(args: &PktgenArgs) -> Result<Plan, PktgenError> {
    if args.queues == 0 {
        return Err(usage("--queues must be at least 1"));
    }
    if !(1..=256).contains(&args.batch) {
        return Err(usage("--batch must be between 1 and 256"));
    }
    if args.xsk.frames() < 2048 {
        return Err(usage("--frames must be at least 2048"));
    }
    if args.rate != 0 && args.rate < u64::from(args.queues) {
        return Err(usage(format!(
            "--rate {} is below one packet per second per queue ({} queues); use --rate 0 for no limit",
            args.rate, args.queues
        )));
    }
    if args.count == Some(0) {
        return Err(usage("--count must be at least 1"));
    }
    check_cores(args.cores.as_deref())?;
    let src_ips = match args.src {
        Some(r) => r,
        None => AddrRange {
            first: iface_addr(&args.iface, args.dst).ok_or_else(|| {
                usage(format!(
                    "{} has no {} address to send from; give --src",
                    args.iface,
                    if args.dst.is_ipv4() { "IPv4" } else { "IPv6" }
                ))
            })?,
            len: 1,
        },
    };
    if src_ips.first.is_ipv4() != args.dst.is_ipv4() {
        return Err(usage(format!(
            "--src {} and --dst {} are not of the same address family",
            src_ips.first, args.dst
        )));
    }
    let src_ports = args.src_port.unwrap_or(match args.template {
        Kind::Udp | Kind::Echo => PortRange {
            first: 10000,
            last: 10000,
        },
        Kind::Syn | Kind::Dns => PortRange {
            first: 10000,
            last: 19999,
        },
        // No ports: one flow per source address.
        Kind::Ns => PortRange { first: 1, last: 1 },
        Kind::Http | Kind::Dnstcp => PortRange {
            first: 1024,
            last: 65535,
        },
    });
    let all = src_ips.len.saturating_mul(src_ports.len());
    let flows = args.flows.unwrap_or(all);
    if flows == 0 || flows > all {
        return Err(usage(format!(
            "--flows must be between 1 and {all} (source addresses x source ports)"
        )));
    }
    if args.template == Kind::Syn && flows > gen::MAX_SYN_FLOWS {
        return Err(usage(format!(
            "syn tracks at most {} flows; narrow --src/--src-port or give --flows",
            gen::MAX_SYN_FLOWS
        )));
    }
    if matches!(args.template, Kind::Http | Kind::Dnstcp) {
        if args.queues != 1 {
            return Err(usage(
                "http and dnstcp run on one queue (--queues 1): a connection's segments must all reach the thread that holds it",
            ));
        }
        if args.count.is_some() {
            return Err(usage(
                "http and dnstcp do not take --count; bound them with --duration",
            ));
        }
        let conns = u64::from(args.conns.unwrap_or(50));
        if conns == 0 || conns > all.min(httpc::MAX_CONNS) {
            return Err(usage(format!(
                "--conns must be between 1 and {} (source addresses x source ports, at most {})",
                all.min(httpc::MAX_CONNS),
                httpc::MAX_CONNS
            )));
        }
        if args.path.is_empty()
            || !args.path.starts_with('/')
            || args.path.contains(char::is_whitespace)
        {
            return Err(usage(format!(
                "--path `{}` must start with / and hold no spaces",
                args.path
            )));
        }
    } else if args.conns.is_some() || args.close || args.connect_rate != 0 {
        return Err(usage(
            "--conns, --close and --connect-rate are for --template http and dnstcp",
        ));
    }
    Ok(Plan {
        src_ips,
        src_ports,
        flows,
        dst_port: args.dst_port.unwrap_or(args.template.default_port()),
    })
}

fn spec(args: &PktgenArgs, plan: &Plan, src_mac: [u8; 6], dst_mac: [u8; 6], run: u32) -> Spec {
    Spec {
        kind: args.template,
        src_mac,
        dst_mac,
        src: plan.src_ips.first,
        dst: args.dst,
        src_port: plan.src_ports.first,
        dst_port: plan.dst_port,
        payload: args.payload,
        qname: args.qname.clone(),
        run,
    }
}

/// Generate traffic.
pub fn run(args: &PktgenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The interface first: every other complaint is moot without it.
    let mac = read_mac(&args.iface)?;
    let plan = plan(args)?;
    let run = run_id();
    // Build the template once with a placeholder MAC: refuse bad sizes and
    // names before any socket is opened.
    Template::build(&spec(args, &plan, [0; 6], [0; 6], run))?;
    let have = rx_queue_count(&args.iface)?;
    if args.queues > have {
        return Err(PktgenError::Nic(NicError::QueueOutOfRange {
            ifname: args.iface.clone(),
            queue: args.queues - 1,
            queues: have,
        })
        .into());
    }
    let stop = stop_flag()?;
    // The pool's frames must still be free after the fill ring is stocked:
    // keep them (and 64 for ARP/NDP and copy mode) off it from the start.
    let pool = POOL.min(args.xsk.frames() as usize / 4);
    let pcfg = PortConfig {
        batch: 64,
        tx_reserve: pool as u32 + 64,
        tx_backlog: pool + 64,
        ..PortConfig::default()
    };
    // The whole interface: the program steers every frame to the sockets;
    // send-only: none (address mode with no addresses passes everything).
    let queues: Vec<u32> = (0..args.queues).collect();
    let to = SteerTo {
        mode: Some(if args.send_only {
            SteerMode::Addr
        } else {
            SteerMode::All
        }),
        ..SteerTo::default()
    };
    let opened = open_ports(&args.iface, &queues, &args.xsk, &to)?;
    // Detached when this goes out of scope at the end of the run.
    let _steer = opened.steer;
    let tx_budget = opened.tx_budget;
    let mut ports = Vec::new();
    let mut info = None;
    for r in opened.rings {
        info.get_or_insert_with(|| r.info().clone());
        ports.push(Port::new(r, pcfg.clone()));
    }
    let info = info.ok_or_else(|| usage("no queue opened"))?;
    let (dst_mac, mac_from) = match (args.dst_mac, args.template, args.dst) {
        (Some(m), _, _) => (m, "option"),
        (None, Kind::Ns, IpAddr::V6(d)) => (neigh::solicited(d).1, "solicited-node group"),
        (None, _, _) if args.send_only => {
            return Err(usage("--send-only receives nothing: give --dst-mac").into())
        }
        _ => {
            let timeout = args.resolve_timeout;
            let proto = if args.dst.is_ipv4() { "ARP" } else { "NDP" };
            match resolve(
                &mut ports,
                mac,
                plan.src_ips.first,
                args.dst,
                timeout,
                &stop,
            ) {
                Some(m) => (m, proto),
                None if stop.load(Ordering::Relaxed) => {
                    return Err(PktgenError::Other(format!(
                        "interrupted while resolving {} with {proto}",
                        args.dst
                    ))
                    .into())
                }
                None => {
                    return Err(PktgenError::Unresolved {
                        proto,
                        dst: args.dst,
                        iface: args.iface.clone(),
                        secs: args.resolve_timeout.as_secs_f64(),
                    }
                    .into())
                }
            }
        }
    };
    if matches!(args.template, Kind::Http | Kind::Dnstcp) {
        return run_http(
            args,
            &plan,
            ports,
            (mac, dst_mac, mac_from),
            &info,
            &stop,
            tx_budget,
        );
    }
    let template = Arc::new(Template::build(&spec(args, &plan, mac, dst_mac, run))?);
    let threads = args.queues;
    let dns = Arc::new(DnsTable::default());
    let syns = Arc::new(gen::SynTable::new(if args.template == Kind::Syn {
        plan.flows
    } else {
        0
    }));
    let epoch = Instant::now();
    let send_until = epoch + args.duration;
    let lives: Vec<Arc<Live>> = (0..threads).map(|_| Arc::new(Live::default())).collect();
    if !args.quiet {
        eprintln!(
            "xdpstack pktgen: {} on {} queues 0..{} ({} XDP, zero-copy {}), {} -> {} ({} via {}), {} byte frames, {} flow(s), {}, {} s",
            args.template.name(),
            args.iface,
            threads,
            info.mode,
            if info.zero_copy { "on" } else { "off" },
            plan.src_ips.first,
            args.dst,
            format_mac(dst_mac),
            mac_from,
            template.len(),
            plan.flows,
            if args.rate == 0 {
                "as fast as possible".to_string()
            } else {
                format!("{} pps", args.rate)
            },
            args.duration.as_secs(),
        );
    }
    let mut handles = Vec::new();
    for (t, port) in ports.into_iter().enumerate() {
        let t32 = t as u32;
        let share = |total: u64| {
            total / u64::from(threads) + u64::from(u64::from(t32) < total % u64::from(threads))
        };
        let cfg = GenConfig {
            thread: t32,
            threads,
            template: template.clone(),
            our_mac: mac,
            dst: args.dst,
            dst_port: plan.dst_port,
            src_ips: plan.src_ips,
            src_ports: plan.src_ports,
            flows: plan.flows,
            rate: share(args.rate),
            count: args.count.map(share),
            batch: args.batch,
            epoch,
            send_until,
            drain: args.drain_time(),
            run,
            reset_synacks: !args.keep_half_open,
            tx_mode: args.tx_mode,
            pool,
            dns: dns.clone(),
            syns: syns.clone(),
            live: lives[t].clone(),
        };
        let stop = stop.clone();
        let pin = !args.no_pin;
        let cores = args.cores.clone();
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-pktgen{t}"))
            .spawn(move || {
                let core = if pin {
                    pin_thread(t, cores.as_deref(), true)
                } else {
                    None
                };
                let cpu0 = cpu_times();
                let mut g = Gen::new(port, cfg);
                g.run(&stop);
                let cpu = cpu_times().since(cpu0);
                let ran_on = nix::sched::sched_getcpu().ok();
                (g.finish(), core, ran_on, cpu)
            })
            .map_err(|e| PktgenError::Other(format!("cannot start thread {t}: {e}")))?;
        handles.push(h);
    }

    let series = monitor(args, epoch, &lives, || {
        handles.iter().all(|h| h.is_finished())
    });

    let mut reports: Vec<(GenReport, Option<usize>, Option<i32>, CpuTimes)> = Vec::new();
    for (t, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(r) => reports.push((r.0, r.1, r.2.map(|c| c as i32), r.3)),
            Err(_) => return Err(PktgenError::Other(format!("thread {t} panicked")).into()),
        }
    }
    let elapsed = epoch.elapsed().as_secs_f64();
    let mut summary = summarize(
        args, &plan, &info, &template, dst_mac, mac_from, mac, elapsed, series, &reports,
    );
    summary["tx_budget"] = json!(tx_budget);
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    match &args.report {
        Some(path) => std::fs::write(path, text + "\n")
            .map_err(|e| PktgenError::Other(format!("cannot write {}: {e}", path.display())))?,
        None => println!("{text}"),
    }
    let t = &summary["totals"];
    if !args.quiet {
        for th in summary["threads"].as_array().into_iter().flatten() {
            eprintln!(
                "thread {} (queue {}, core {}): sent {} received {} answered {} invalid {} | cpu {:.2} s user {:.2} s sys | frames {}",
                th["thread"],
                th["queue"],
                th["core"],
                th["counters"]["sent"],
                th["counters"]["received"],
                th["counters"]["answered"],
                th["counters"]["rx_invalid"],
                th["cpu_user_s"].as_f64().unwrap_or(0.0),
                th["cpu_sys_s"].as_f64().unwrap_or(0.0),
                th["frame_accounting"],
            );
        }
        let lat = &summary["latency_us"];
        eprintln!(
            "pktgen: sent {} received {} answered {} ({:.2}%) in {:.2} s, tx {:.0} pps{} | frames {}",
            t["sent"],
            t["received"],
            t["answered"],
            100.0 * t["answered_ratio"].as_f64().unwrap_or(0.0),
            t["send_seconds"].as_f64().unwrap_or(0.0),
            t["tx_pps"].as_f64().unwrap_or(0.0),
            if lat.is_null() {
                String::new()
            } else {
                format!(
                    " | rtt us p50 {} p99 {} p999 {} max {}",
                    lat["p50"], lat["p99"], lat["p999"], lat["max"]
                )
            },
            summary["frame_accounting"],
        );
    }
    if summary["frame_accounting"] != "ok" {
        return Err(PktgenError::Other(format!(
            "frame accounting failed: {}",
            summary["frame_accounting"]
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary's source ranges.
fn src_json(plan: &Plan) -> Value {
    json!({
        "first": plan.src_ips.first.to_string(),
        "addresses": plan.src_ips.len,
        "first_port": plan.src_ports.first,
        "last_port": plan.src_ports.last,
    })
}

/// `--template http`: one client thread on the one queue.
fn run_http<R: Rings + Send + 'static>(
    args: &PktgenArgs,
    plan: &Plan,
    ports: Vec<Port<R>>,
    (mac, dst_mac, mac_from): ([u8; 6], [u8; 6], &str),
    info: &nic::xsk::XskInfo,
    stop: &Arc<AtomicBool>,
    tx_budget: Option<u32>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let port = ports
        .into_iter()
        .next()
        .ok_or_else(|| usage("no queue opened"))?;
    let epoch = Instant::now();
    let live = Arc::new(Live::default());
    let conns = args.conns.unwrap_or(50);
    let cfg = httpc::HttpConfig {
        our_mac: mac,
        dst_mac,
        dst: args.dst,
        dst_port: plan.dst_port,
        src_ips: plan.src_ips,
        src_ports: plan.src_ports,
        conns,
        close: args.close,
        rate: args.rate,
        connect_rate: args.connect_rate,
        inflight: args.inflight,
        proto: if args.template == Kind::Dnstcp {
            httpc::Proto::Dns
        } else {
            httpc::Proto::Http
        },
        request: if args.template == Kind::Dnstcp {
            httpc::dns_request_bytes(&args.qname)?
        } else {
            // An IPv6 literal in Host is bracketed (RFC 3986 3.2.2): the
            // server refuses `Host: 2001:db8::1` with 400.
            httpc::request_bytes(
                &match args.dst {
                    std::net::IpAddr::V6(a) => format!("[{a}]"),
                    a => a.to_string(),
                },
                &args.path,
                args.close,
            )
        },
        epoch,
        send_until: epoch + args.duration,
        drain: args.drain_time(),
        batch: args.batch,
        live: live.clone(),
    };
    if !args.quiet {
        eprintln!(
            "xdpstack pktgen: {} on {} queue 0 ({} XDP, zero-copy {}), {} -> {}:{} ({} via {}), {} connection(s){}, {}, {} s",
            args.template.name(),
            args.iface,
            info.mode,
            if info.zero_copy { "on" } else { "off" },
            plan.src_ips.first,
            args.dst,
            plan.dst_port,
            format_mac(dst_mac),
            mac_from,
            conns,
            match (args.close, args.template) {
                (true, Kind::Dnstcp) => ", one query each (closed by us once answered)",
                (true, _) => ", one request each (Connection: close)",
                (false, _) => " kept alive",
            },
            match (args.rate, args.close) {
                (0, false) => "closed loop (next request on each response)".to_string(),
                (0, true) => "each slot reconnects when its connection closes".to_string(),
                (r, false) => format!("{r} requests/s"),
                (r, true) => format!("{r} connections/s"),
            },
            args.duration.as_secs(),
        );
    }
    let (pin, cores) = (!args.no_pin, args.cores.clone());
    let stop2 = stop.clone();
    let h = std::thread::Builder::new()
        .name("xdpstack-pktgen0".into())
        .spawn(move || {
            let core = if pin {
                pin_thread(0, cores.as_deref(), true)
            } else {
                None
            };
            let cpu0 = cpu_times();
            let mut c = httpc::HttpClient::new(port, cfg);
            c.run(&stop2);
            let cpu = cpu_times().since(cpu0);
            let ran_on = nix::sched::sched_getcpu().ok();
            (c.finish(), core, ran_on, cpu)
        })
        .map_err(|e| PktgenError::Other(format!("cannot start the client thread: {e}")))?;
    let series = monitor(args, epoch, std::slice::from_ref(&live), || h.is_finished());
    let (r, core, ran_on, cpu) = h
        .join()
        .map_err(|_| PktgenError::Other("the client thread panicked".into()))?;
    let elapsed = epoch.elapsed().as_secs_f64();
    let c = &r.counters;
    let secs = r.send_secs.max(1e-9);
    let check = match &r.frames {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let summary = json!({
        "tool": "xdpstack pktgen",
        "template": args.template,
        "iface": args.iface,
        "queues": 1,
        "xdp_mode": info.mode.to_string(),
        "zero_copy": info.zero_copy,
        "src_mac": format_mac(mac),
        "dst_mac": format_mac(dst_mac),
        "dst_mac_from": mac_from,
        "src": src_json(plan),
        "dst": args.dst.to_string(),
        "dst_port": plan.dst_port,
        "conns": conns,
        "close": args.close,
        "rate": args.rate,
        "connect_rate": args.connect_rate,
        "inflight": args.inflight,
        "duration_s": args.duration.as_secs(),
        "elapsed_s": elapsed,
        "totals": {
            "sent": c.requests,
            "received": c.received,
            "answered": c.responses,
            "answered_ratio": if c.requests > 0 { c.responses as f64 / c.requests as f64 } else { 0.0 },
            "send_seconds": r.send_secs,
            "requests_per_s": c.requests as f64 / secs,
            "responses_per_s": c.responses as f64 / secs,
            "connects_per_s": c.connects as f64 / secs,
            "peak_open": r.peak_open,
            "all_open_s": r.all_open_s,
            "counters": c,
        },
        "per_second": series,
        "threads": [{
            "thread": 0,
            "queue": 0,
            "core": core,
            "cpu_ran_on": ran_on,
            "cpu_user_s": cpu.user,
            "cpu_sys_s": cpu.sys,
            "port": port_json(&r.port),
            "frame_accounting": check,
        }],
        "latency_us": latency_json(&r.hist),
        "connect_latency_us": latency_json(&r.connect_hist),
        "frame_accounting": check,
        "tx_budget": tx_budget,
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    match &args.report {
        Some(path) => std::fs::write(path, text + "\n")
            .map_err(|e| PktgenError::Other(format!("cannot write {}: {e}", path.display())))?,
        None => println!("{text}"),
    }
    if !args.quiet {
        let lat = &summary["latency_us"];
        eprintln!(
            "pktgen http: {} connects, {} requests, {} responses ({} 2xx) in {:.2} s: {:.0} responses/s, peak {} open | timeouts {} rst in {} bad {} | latency us p50 {} p99 {} | cpu {:.2} s user {:.2} s sys on core {:?} | frames {}",
            c.connects, c.requests, c.responses, c.status_2xx, r.send_secs,
            c.responses as f64 / secs, r.peak_open, c.timeouts, c.rst_received, c.bad_responses,
            lat["p50"], lat["p99"], cpu.user, cpu.sys, ran_on, check,
        );
    }
    if check != "ok" {
        return Err(PktgenError::Other(format!("frame accounting failed: {check}")).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Once a second until `finished`: a sample of the counters and a progress
/// line. Returns the per-second series.
fn monitor(
    args: &PktgenArgs,
    epoch: Instant,
    lives: &[Arc<Live>],
    finished: impl Fn() -> bool,
) -> Vec<Value> {
    let mut series = Vec::new();
    let mut last = (0u64, 0u64, 0u64);
    let mut last_t = epoch;
    let mut next = epoch + Duration::from_secs(1);
    let sample = |lives: &[Arc<Live>]| {
        lives.iter().fold((0, 0, 0), |(s, r, a), l| {
            (
                s + l.sent.load(Ordering::Relaxed),
                r + l.received.load(Ordering::Relaxed),
                a + l.answered.load(Ordering::Relaxed),
            )
        })
    };
    let open =
        |lives: &[Arc<Live>]| -> u64 { lives.iter().map(|l| l.open.load(Ordering::Relaxed)).sum() };
    // Bounded: the threads end by send_until + drain (both bounded), and a
    // signal only shortens that.
    loop {
        let finished = finished();
        let now = Instant::now();
        if now >= next || finished {
            let cur = sample(lives);
            let dt = now.duration_since(last_t).as_secs_f64().max(1e-9);
            let (ds, dr, da) = (cur.0 - last.0, cur.1 - last.1, cur.2 - last.2);
            if ds + dr + da > 0 || !finished {
                series.push(json!({
                    "t": now.duration_since(epoch).as_secs_f64(),
                    "seconds": dt,
                    "sent": ds,
                    "received": dr,
                    "answered": da,
                    "open": open(lives),
                }));
                // The last sample may be a sliver of a second (the drain):
                // it is in the series, not worth a line.
                if !args.quiet && (dt >= 0.5 || !finished) {
                    let loss = if ds > 0 && args.template != Kind::Udp && !args.send_only {
                        format!("{:.2}%", 100.0 * (1.0 - da as f64 / ds as f64).max(0.0))
                    } else {
                        "-".to_string()
                    };
                    eprintln!(
                        "pktgen {:>5.1}s: tx {:.0} pps  rx {:.0} pps  answered {:.0}/s  loss {loss}  | sent {} received {} answered {}",
                        now.duration_since(epoch).as_secs_f64(),
                        ds as f64 / dt,
                        dr as f64 / dt,
                        da as f64 / dt,
                        cur.0,
                        cur.1,
                        cur.2,
                    );
                }
            }
            last = cur;
            last_t = now;
            next += Duration::from_secs(1);
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    series
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &PktgenArgs,
    plan: &Plan,
    info: &nic::xsk::XskInfo,
    template: &Template,
    dst_mac: [u8; 6],
    mac_from: &str,
    mac: [u8; 6],
    elapsed: f64,
    series: Vec<Value>,
    reports: &[(GenReport, Option<usize>, Option<i32>, CpuTimes)],
) -> Value {
    let mut hist = gen::new_histogram();
    let mut threads = Vec::new();
    let mut frames_bad = Vec::new();
    let mut send_secs: f64 = 0.0;
    let mut tot = gen::GenCounters::default();
    for (r, core, ran_on, cpu) in reports {
        let _ = hist.add(&r.hist);
        send_secs = send_secs.max(r.send_secs);
        let c = &r.counters;
        tot.sent += c.sent;
        tot.received += c.received;
        tot.answered += c.answered;
        tot.tx_blocked += c.tx_blocked;
        tot.rx_invalid += c.rx_invalid;
        tot.rx_not_ip += c.rx_not_ip;
        tot.neighbor_answered += c.neighbor_answered;
        tot.rx_other += c.rx_other;
        tot.rx_unmatched += c.rx_unmatched;
        tot.rst_received += c.rst_received;
        tot.rst_sent += c.rst_sent;
        tot.dns_rcode_errors += c.dns_rcode_errors;
        let check = match &r.frames {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                frames_bad.push(format!("thread {}: {e}", r.thread));
                e.to_string()
            }
        };
        threads.push(json!({
            "thread": r.thread,
            "queue": r.thread,
            "core": core,
            "cpu_ran_on": ran_on,
            "cpu_user_s": cpu.user,
            "cpu_sys_s": cpu.sys,
            "counters": c,
            "tx_pps": c.sent as f64 / r.send_secs.max(1e-9),
            "tx_pool_frames": r.pool,
            "latency_us": latency_json(&r.hist),
            "port": port_json(&r.port),
            "frame_accounting": check,
        }));
    }
    let expects_answers = args.template != Kind::Udp && !args.send_only;
    let ratio = if tot.sent > 0 {
        tot.answered as f64 / tot.sent as f64
    } else {
        0.0
    };
    json!({
        "tool": "xdpstack pktgen",
        "template": args.template,
        "iface": args.iface,
        "queues": args.queues,
        "xdp_mode": info.mode.to_string(),
        "zero_copy": info.zero_copy,
        "tx_mode": args.tx_mode,
        "send_only": args.send_only,
        "src_mac": format_mac(mac),
        "dst_mac": format_mac(dst_mac),
        "dst_mac_from": mac_from,
        "src": src_json(plan),
        "flows": plan.flows,
        "dst": args.dst.to_string(),
        "dst_port": plan.dst_port,
        "frame_len": template.len(),
        "rate_pps": args.rate,
        "duration_s": args.duration.as_secs(),
        "count": args.count,
        "elapsed_s": elapsed,
        "totals": {
            "sent": tot.sent,
            "received": tot.received,
            "answered": tot.answered,
            "lost": if expects_answers { Some(tot.sent.saturating_sub(tot.answered)) } else { None },
            "answered_ratio": ratio,
            "send_seconds": send_secs,
            "tx_pps": tot.sent as f64 / send_secs.max(1e-9),
            "rx_pps": tot.received as f64 / send_secs.max(1e-9),
            "answered_pps": tot.answered as f64 / send_secs.max(1e-9),
            "counters": tot,
        },
        "per_second": series,
        "threads": threads,
        "latency_us": latency_json(&hist),
        "frame_accounting": if frames_bad.is_empty() { "ok".to_string() } else { frames_bad.join("; ") },
    })
}
