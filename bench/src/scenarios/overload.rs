//! Scenario `overload`: goodput against offered load past saturation, on one server process.
//!
//! For each service (HTTP keep-alive, HTTP `Connection: close`, DNS over UDP, DNS over TCP)
//! and each server (xdpstack beside nginx, knotd and Knot's XDP mode on the same core), the
//! server's capacity is measured first, then an open-loop ladder offers 0.5x to 10x of it, two
//! runs per level back to back, never restarting the server; after the ladder 100 new clients
//! (curl or kdig, each with a 1 s limit) must be served. HTTP load: `pktgen --template http
//! --rate R` (keep-alive: requests/s over 1000 connections; `--close`: new connections/s);
//! capacity closed loop (`--rate 0`) on the ladder's 1000 connections: the open loop sends a
//! request only on a connection that has none in flight, so past capacity it is that closed
//! loop, and a peak taken on 50 connections (a smaller working set, more requests per wakeup)
//! is a different load that no level on 1000 could reach. DNS load: `kxdpgun -Q R` (`-T` for TCP);
//! kxdpgun has no closed loop, so capacity is the best answer rate over a few saturating
//! offered rates. Latency (p50/p99 of answered requests) where the tool reports it (pktgen).

use std::time::{Duration, Instant};

use lab::sandbox::{Sandbox, Side};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, BenchError, Proc, Result};
use crate::scenarios::dnstcp::{start_knot, DnsGen};
use crate::scenarios::udp::{QNAME, ZONE};

const STACK_HTTP: &str = "xdpstack http";
const STACK_DNS: &str = "xdpstack dns";
const NGINX: &str = "nginx";
const KNOT: &str = "knotd";
const KNOT_XDP: &str = "knotd XDP";

/// Offered load in percent of each server's capacity.
const LEVELS_FULL: [u64; 8] = [50, 100, 150, 200, 300, 500, 700, 1000];
/// `--quick`: fewer levels, 1 s each.
const LEVELS_QUICK: [u64; 3] = [50, 200, 1000];
/// Connections of the open-loop HTTP load.
const OPEN_CONNS: usize = 1000;
/// New clients after the ladder, and the limit of each.
const RECOVERY_CLIENTS: usize = 100;

/// The four loads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    HttpKeepAlive,
    HttpClose,
    DnsUdp,
    DnsTcp,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::HttpKeepAlive => "HTTP keep-alive",
            Load::HttpClose => "HTTP Connection: close",
            Load::DnsUdp => "DNS over UDP",
            Load::DnsTcp => "DNS over TCP",
        }
    }
    fn is_http(self) -> bool {
        matches!(self, Load::HttpKeepAlive | Load::HttpClose)
    }
    /// Offered rates whose best answer rate is a DNS server's capacity.
    fn probes(self) -> &'static [u64] {
        match self {
            Load::DnsUdp => &[300_000, 600_000, 1_000_000],
            _ => &[50_000, 100_000, 150_000],
        }
    }
}

/// One measurement: answered per second, what was sent, latency.
#[derive(Default)]
struct Point {
    goodput: f64,
    sent_per_s: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

/// The scenario's fixed inputs.
struct Env<'a> {
    ctx: &'a Ctx,
    client_cpu: String,
    secs: u64,
    qfile: std::path::PathBuf,
    dir: std::path::PathBuf,
    /// The DNS load's generator.
    gen: DnsGen,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[
        ("knotd", "knot"),
        ("kxdpgun", "knot-dnsutils"),
        ("kdig", "knot-dnsutils"),
        ("nginx", "nginx-light"),
        ("curl", "curl"),
    ])?;
    let mut res = ctx.result(
        "overload",
        "Overload: goodput against offered load from 0.5x to 10x capacity, one server process",
    );
    let dir = env::scratch("overload")?;
    let levels: &[u64] = if ctx.quick {
        &LEVELS_QUICK
    } else {
        &LEVELS_FULL
    };
    let mut e = Env {
        ctx,
        client_cpu: ctx.client_cpu(),
        secs: ctx.pick(5, 1),
        qfile: dir.join("queries.txt"),
        dir: dir.clone(),
        // Picked once the sandboxes are up.
        gen: DnsGen::Kxdpgun,
    };
    let server_cpu = ctx.server_cpu();
    res.cores = format!(
        "every server pinned to core {server_cpu} (xdpstack: 1 worker with its defaults; nginx: \
         1 worker; knotd: 1 UDP, 1 TCP, 1 background worker; knotd XDP: 1 XDP worker); the \
         load (pktgen http, kxdpgun) pinned to core {}.",
        e.client_cpu
    );
    let zone = dir.join("bench.test.zone");
    std::fs::write(&zone, ZONE)?;
    std::fs::write(&e.qfile, format!("{QNAME} A\n"))?;

    // Sandboxes are torn down when dropped, on error and on Ctrl-C alike.
    let ssb = env::sandbox("os", 1, ServerSide::Stack)?;
    let ksb = env::sandbox("ok", 1, ServerSide::Kernel)?;
    let xsb = env::sandbox("ox", 1, ServerSide::Kernel)?;
    for sb in [&ssb, &ksb, &xsb] {
        env::receive_on_own_cores(sb, &server_cpu, &e.client_cpu)?;
    }
    e.gen = DnsGen::pick(&ssb, &e.client_cpu, &e.qfile);
    if e.gen == DnsGen::Pktgen {
        res.notes.push(
            "kxdpgun could not load its XDP program on this kernel (it calls \
             bpf_xdp_adjust_meta, refused here to XDP programs), nor can knotd's XDP mode: the \
             DNS loads are pktgen's (--template dns, and --template dnstcp --close: an XSK on \
             the client's veth end, one query per connection, closed by the client once \
             answered, a lost SYN resent after 1 s)."
                .into(),
        );
    }

    let mut cases: Vec<Case> = [
        Load::HttpKeepAlive,
        Load::HttpClose,
        Load::DnsUdp,
        Load::DnsTcp,
    ]
    .iter()
    .map(|&l| Case {
        name: l.name().into(),
        load: load_desc(l, levels, e.secs, e.gen),
        subjects: if l.is_http() {
            vec![Subject::new(STACK_HTTP), Subject::new(NGINX)]
        } else {
            vec![
                Subject::new(STACK_DNS),
                Subject::new(KNOT),
                Subject::new(KNOT_XDP),
            ]
        },
        ratios: Vec::new(),
    })
    .collect();

    for run in 0..ctx.runs {
        // HTTP: one xdpstack process and one nginx for both HTTP loads.
        {
            let (stack, st) = common::start_http_stack(ctx, &ssb, &server_cpu, &[], &dir)?;
            let nginx = common::start_nginx(ctx, &ksb, &[0], 1, 4096, &dir)?;
            for (ci, load) in [(0, Load::HttpKeepAlive), (1, Load::HttpClose)] {
                for (si, sb, p) in [(0, &ssb, &stack), (1, &ksb, &nginx)] {
                    subject_run(&e, &mut cases[ci].subjects[si], run, sb, p, load, levels)?;
                }
            }
            if let Ok(r) = common::stop_stack(stack, &st) {
                if let Some(w) = r.workers.first() {
                    res.notes.push(format!(
                        "run {run}: {STACK_HTTP} worker 0 at exit: app {}; rx_ring_full {:?}",
                        w.app,
                        w.port.kernel_stat("rx_ring_full")
                    ));
                }
            }
            drop(nginx);
        }
        // DNS: one xdpstack process, one knotd, one knotd XDP for UDP and TCP.
        {
            let args = common::strings(&["--workers", "1", "--zone", &zone.display().to_string()]);
            let (stack, st) =
                common::start_stack(ctx, &ssb, &server_cpu, &["dns"], &args, &dir, STACK_DNS)?;
            let knot = start_knot(&ksb, &server_cpu, &zone, &dir, false, KNOT)?;
            let knot_xdp = start_knot(&xsb, &server_cpu, &zone, &dir, true, KNOT_XDP)?;
            procs::sleep(Duration::from_millis(1500))?;
            for (sb, p) in [(&ssb, &stack), (&ksb, &knot), (&xsb, &knot_xdp)] {
                if !procs::wait_until(Duration::from_secs(10), || dns_ok(sb, true))? {
                    res.notes.push(format!(
                        "run {run}: {} gave no TCP answer before the load: {}",
                        p.label,
                        p.stderr_tail()
                    ));
                }
            }
            for (ci, load) in [(2, Load::DnsUdp), (3, Load::DnsTcp)] {
                for (si, sb, p) in [(0, &ssb, &stack), (1, &ksb, &knot), (2, &xsb, &knot_xdp)] {
                    subject_run(&e, &mut cases[ci].subjects[si], run, sb, p, load, levels)?;
                }
            }
            if let Ok(r) = common::stop_stack(stack, &st) {
                if let Some(w) = r.workers.first() {
                    res.notes.push(format!(
                        "run {run}: {STACK_DNS} worker 0 at exit: app {}; engine {}; rx_ring_full {:?}",
                        w.app,
                        w.engine,
                        w.port.kernel_stat("rx_ring_full")
                    ));
                }
            }
            drop(knot);
            drop(knot_xdp);
        }
    }
    for c in &mut cases {
        for s in &mut c.subjects {
            s.finish();
        }
        let (a, b) = (c.subjects[0].name.clone(), c.subjects[1].name.clone());
        c.add_ratio("min_pct_of_peak", &a, &b);
    }

    // Targets, on the stack's medians.
    for c in &cases {
        let stack = &c.subjects[0];
        let m = |k: &str| stack.median.get(k).copied();
        res.targets.push(Target::threshold(
            &format!(
                "{}: goodput at every level up to 10x, % of what it can deliver (offered, up to the server's own peak)",
                c.name
            ),
            ">= 90%",
            m("min_pct_of_peak"),
            90.0,
            false,
        ));
        res.targets.push(Target::threshold(
            &format!(
                "{}: second run at a level against the first, largest difference %",
                c.name
            ),
            "<= 5%",
            m("max_run_diff_pct"),
            5.0,
            true,
        ));
        res.targets.push(Target::threshold(
            &format!("{}: new clients served within 1 s after the ladder", c.name),
            "100 of 100",
            m("recovery_served"),
            RECOVERY_CLIENTS as f64,
            false,
        ));
    }
    let tcp = &cases[3];
    for (peer, goal) in [(KNOT, 2.0), (KNOT_XDP, 1.0)] {
        res.targets.push(Target::threshold(
            &format!("DNS over TCP, defaults: goodput vs {peer} at every offered level (the lowest ratio)"),
            &format!(">= {goal}x {peer}"),
            min_level_ratio(tcp, STACK_DNS, peer, levels),
            goal,
            false,
        ));
    }
    res.cases = cases;
    res.notes.push(format!(
        "Levels are percent of each server's own capacity (measured first in the same run): {}. \
         Metric keys: goodput_oP_r1/_r2 (answered/s at P% offered, first and second run), \
         sent_per_s_oP_rN (what kxdpgun actually sent: above its own core's limit the offered \
         load is a ceiling, not a rate reached), answered_pct_oP_rN (goodput over what \
         kxdpgun sent, percent), p50_us/p99_us_oP_rN (pktgen http), \
         min_pct_of_peak (the lowest, over every run and level, of goodput over what the level \
         can deliver: the offered rate, or what kxdpgun sent where that was less, up to the \
         peak, the best of the capacity and every \
         level), max_run_diff_pct, recovery_served (of {RECOVERY_CLIENTS}, curl -m 1 \
         or kdig +time=1, all at once).",
        levels
            .iter()
            .map(|l| format!("{l}%"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    res.notes.push(format!(
        "Duration: per server and load, capacity ({} probe(s) of {} s) then {} levels x 2 runs x \
         {} s, plus ~1 s pauses and the recovery check: about 20 minutes per run in full \
         (estimated), --quick about 4.",
        if ctx.quick { 1 } else { 3 },
        e.secs,
        levels.len(),
        e.secs
    ));
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(ssb);
    drop(ksb);
    drop(xsb);
    Ok(res)
}

fn load_desc(l: Load, levels: &[u64], secs: u64, gen: DnsGen) -> String {
    let lv = levels
        .iter()
        .map(|l| format!("{l}%"))
        .collect::<Vec<_>>()
        .join(", ");
    match l {
        Load::HttpKeepAlive => format!(
            "capacity: pktgen http --rate 0 --conns {OPEN_CONNS}; ladder: pktgen http --rate R \
             --conns {OPEN_CONNS} -d {secs}, R = {lv} of capacity, two runs each"
        ),
        Load::HttpClose => format!(
            "capacity: pktgen http --close --rate 0 --conns {OPEN_CONNS}; ladder: pktgen http \
             --close --rate R (new connections/s) --conns {OPEN_CONNS} -d {secs}, R = {lv}, two \
             runs each"
        ),
        Load::DnsUdp | Load::DnsTcp => format!(
            "{} -Q R -t {secs}; capacity: the best answer rate over {:?}/s; ladder R = \
             {lv} of capacity, two runs each",
            match (gen, l == Load::DnsTcp) {
                (DnsGen::Kxdpgun, true) => "kxdpgun -T",
                (DnsGen::Kxdpgun, false) => "kxdpgun",
                (DnsGen::Pktgen, true) => "pktgen --template dnstcp --close",
                (DnsGen::Pktgen, false) => "pktgen --template dns",
            },
            l.probes()
        ),
    }
}

/// Capacity, the ladder and the recovery check of one server under one load; one entry of
/// `s.runs`. A failed measurement is recorded as an error and the rest goes on.
fn subject_run(
    e: &Env,
    s: &mut Subject,
    run: usize,
    sb: &Sandbox,
    server: &Proc,
    load: Load,
    levels: &[u64],
) -> Result<()> {
    let mut x = Metrics::new();
    eprintln!("   {} / {}: capacity", load.name(), s.name);
    let capacity = match capacity(e, sb, server, load) {
        Ok(c) if c > 0.0 => c,
        Ok(_) => {
            s.errors.push(format!("run {run}: no answers at capacity"));
            return Ok(());
        }
        Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
        Err(err) => {
            s.errors.push(format!("run {run}: capacity: {err}"));
            return Ok(());
        }
    };
    x.insert("capacity".into(), capacity);
    let mut peak = capacity;
    // (offered rate, goodput) of every run at every level.
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut diff = 0.0f64;
    for &pct in levels {
        let rate = ((capacity * pct as f64 / 100.0) as u64).max(1);
        let mut g = [None, None];
        // What the generator managed to send in each run (None: not reported).
        let mut sent = [None, None];
        for (ri, slot) in g.iter_mut().enumerate() {
            match one(e, sb, server, load, Some(rate)) {
                Ok(p) => {
                    let k = |m: &str| format!("{m}_o{pct}_r{}", ri + 1);
                    x.insert(k("goodput"), p.goodput);
                    x.insert(k("offered_per_s"), rate as f64);
                    // What the server answered of what the generator managed to send
                    // (the generator on one core may fall short of the offered rate).
                    let answered_pct = p
                        .sent_per_s
                        .filter(|&sent| sent > 0.0)
                        .map(|sent| 100.0 * p.goodput / sent);
                    for (m, v) in [
                        ("sent_per_s", p.sent_per_s),
                        ("answered_pct", answered_pct),
                        ("p50_us", p.p50_us),
                        ("p99_us", p.p99_us),
                    ] {
                        if let Some(v) = v {
                            x.insert(k(m), v);
                        }
                    }
                    *slot = Some(p.goodput);
                    sent[ri] = p.sent_per_s.filter(|&v| v > 0.0);
                }
                Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
                Err(err) => s.errors.push(format!("run {run}, {pct}%: {err}")),
            }
        }
        for (v, sent) in g.iter().zip(sent) {
            let Some(v) = *v else { continue };
            peak = peak.max(v);
            // Queries never sent cannot be answered: a level is judged on what reached the
            // wire, up to the offered rate.
            points.push((sent.map_or(rate as f64, |x| x.min(rate as f64)), v));
        }
        if let [Some(a), Some(b)] = g {
            if a > 0.0 {
                diff = diff.max(100.0 * (b - a).abs() / a);
            }
        }
    }
    // What a level can deliver is what was offered (and sent, where the generator says), up
    // to the peak: below capacity goodput follows the offered load, past it it must hold the
    // peak.
    let low = points
        .iter()
        .map(|&(offered, goodput)| 100.0 * goodput / offered.min(peak))
        .fold(f64::INFINITY, f64::min);
    if low.is_finite() {
        x.insert("peak".into(), peak);
        x.insert("min_pct_of_peak".into(), low);
        x.insert("max_run_diff_pct".into(), diff);
    }
    let (served, wall) = recovery(sb, load)?;
    x.insert("recovery_served".into(), served as f64);
    x.insert("recovery_wall_s".into(), wall);
    s.runs.push(x);
    Ok(())
}

/// Closed-loop capacity (HTTP), or the best answer rate over saturating probes (DNS).
fn capacity(e: &Env, sb: &Sandbox, server: &Proc, load: Load) -> Result<f64> {
    if load.is_http() {
        return one(e, sb, server, load, None).map(|p| p.goodput);
    }
    let probes = load.probes();
    let probes = if e.ctx.quick { &probes[1..2] } else { probes };
    let mut best = 0.0f64;
    for &r in probes {
        best = best.max(one(e, sb, server, load, Some(r))?.goodput);
    }
    Ok(best)
}

/// One load run: `rate` None is the closed loop (HTTP only).
fn one(e: &Env, sb: &Sandbox, server: &Proc, load: Load, rate: Option<u64>) -> Result<Point> {
    let limit = Duration::from_secs(e.secs + 30);
    let p = if load.is_http() {
        let args = httpgen_args(sb, &e.client_cpu, load == Load::HttpClose, rate, e.secs);
        let m = common::measure(
            sb,
            server,
            &e.client_cpu,
            "pktgen http",
            &e.ctx.bins.xdpstack,
            &args,
            &e.dir,
            limit,
        )?;
        let r = crate::parse::parse_pktgen_http(&m.report)?;
        Point {
            goodput: r.rps,
            sent_per_s: None,
            p50_us: Some(r.p50_us),
            p99_us: Some(r.p99_us),
        }
    } else {
        let tcp = load == Load::DnsTcp;
        let (program, args) = e.gen.command(
            e.ctx,
            sb,
            &e.client_cpu,
            tcp,
            rate.unwrap_or(100_000),
            e.secs,
            &e.qfile,
        );
        let m = common::measure(
            sb,
            server,
            &e.client_cpu,
            e.gen.name(),
            &program,
            &args,
            &e.dir,
            limit,
        )?;
        let r = e.gen.parse(&m.report, tcp)?;
        let d = r.duration_s.max(1e-9);
        Point {
            goodput: r.replies as f64 / d,
            sent_per_s: Some(r.sent as f64 / d),
            p50_us: None,
            p99_us: None,
        }
    };
    // The next run starts back to back, on the same process: only a short gap for the
    // generator's socket to be released.
    procs::sleep(Duration::from_millis(300))?;
    Ok(p)
}

/// pktgen http's command line: the fixed part of `common::run_httpgen` with an open-loop rate.
fn httpgen_args(sb: &Sandbox, cpu: &str, close: bool, rate: Option<u64>, secs: u64) -> Vec<String> {
    // The closed loop that measures capacity runs on the ladder's connections too (module doc).
    let mut a = common::httpgen_args(sb, cpu, rate.unwrap_or(0), secs, OPEN_CONNS);
    a.extend(common::strings(&["--src", "198.18.0.10"]));
    if close {
        a.push("--close".into());
    }
    a
}

/// Is a DNS answer there (kdig from the client, 1 s)?
fn dns_ok(sb: &Sandbox, tcp: bool) -> bool {
    let mut c = sb.command(Side::Client, "timeout");
    c.args(["3", "kdig", "+short", "+time=1", "+retry=0"]);
    if tcp {
        c.arg("+tcp");
    }
    c.args([&format!("@{SERVER_IP}"), QNAME, "A"])
        .output()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}

/// 100 new clients at once, each with a 1 s limit (curl -m 1, kdig +time=1 +retry=0), each
/// also under `timeout 3`: how many were served, and the wall time of the whole.
fn recovery(sb: &Sandbox, load: Load) -> Result<(usize, f64)> {
    let t = Instant::now();
    let mut kids = Vec::new();
    for _ in 0..RECOVERY_CLIENTS {
        let mut c = sb.command(Side::Client, "timeout");
        if load.is_http() {
            c.args([
                "3",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "1",
                "-w",
                "%{http_code}",
            ]);
            c.arg(format!("http://{SERVER_IP}/"));
        } else {
            c.args(["3", "kdig", "+short", "+time=1", "+retry=0"]);
            if load == Load::DnsTcp {
                c.arg("+tcp");
            }
            c.args([&format!("@{SERVER_IP}"), QNAME, "A"]);
        }
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Ok(k) = c.spawn() {
            kids.push(k);
        }
    }
    let mut served = 0;
    for k in kids {
        if let Ok(o) = k.wait_with_output() {
            let out = String::from_utf8_lossy(&o.stdout);
            let ok = if load.is_http() {
                out.trim() == "200"
            } else {
                !out.trim().is_empty()
            };
            served += usize::from(ok);
        }
    }
    if procs::interrupted() {
        return Err(BenchError::Interrupted);
    }
    Ok((served, t.elapsed().as_secs_f64()))
}

/// The lowest ratio of `num`'s goodput to `den`'s over the levels (first runs, medians).
fn min_level_ratio(c: &Case, num: &str, den: &str, levels: &[u64]) -> Option<f64> {
    let (a, b) = (c.subject(num)?, c.subject(den)?);
    levels
        .iter()
        .filter_map(|l| {
            let k = format!("goodput_o{l}_r1");
            let (x, y) = (a.median.get(&k)?, b.median.get(&k)?);
            (*y > 0.0).then(|| x / y)
        })
        .reduce(f64::min)
}

/// Points of the plot: (offered % of capacity, goodput % of the server's own peak), medians.
pub fn plot_points(s: &Subject) -> Vec<(f64, f64)> {
    let Some(&peak) = s.median.get("peak").filter(|p| **p > 0.0) else {
        return Vec::new();
    };
    let mut pts: Vec<(f64, f64)> = s
        .median
        .iter()
        .filter_map(|(k, v)| {
            let pct: f64 = k
                .strip_prefix("goodput_o")?
                .strip_suffix("_r1")?
                .parse()
                .ok()?;
            Some((pct, 100.0 * v / peak))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_points_and_level_ratios_read_the_level_keys() {
        let mut a = Subject::new("a");
        a.median.insert("peak".into(), 200.0);
        a.median.insert("goodput_o1000_r1".into(), 180.0);
        a.median.insert("goodput_o50_r1".into(), 100.0);
        a.median.insert("goodput_o50_r2".into(), 1.0);
        assert_eq!(plot_points(&a), vec![(50.0, 50.0), (1000.0, 90.0)]);
        let mut b = Subject::new("b");
        b.median.insert("goodput_o50_r1".into(), 50.0);
        b.median.insert("goodput_o1000_r1".into(), 30.0);
        let c = Case {
            name: "c".into(),
            load: String::new(),
            subjects: vec![a, b],
            ratios: Vec::new(),
        };
        assert_eq!(min_level_ratio(&c, "a", "b", &[50, 1000]), Some(2.0));
        assert_eq!(min_level_ratio(&c, "a", "zz", &[50]), None);
    }
}
