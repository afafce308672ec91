//! Scenario `conns`: requests/s, server memory and server CPU per request with 100, 1k, 10k
//! and 100k concurrent keep-alive connections, the stack (one worker) against nginx.
//!
//! The load is `xdpstack pktgen --template http`: an HTTP client with its own small TCP on an
//! AF_XDP socket on the client's veth end, holding every connection in one thread on one core
//! with a request in flight on each (closed loop, like wrk's keep-alive mode). No client kernel
//! takes part: on a veth pair the receive work of a packet runs on the core that sent it, so a
//! kernel client's TCP work for every response (100,000 sockets' worth of it at the top level)
//! ran on the server's core and was counted as the server's. The client sends from 198.18.0.10,
//! and past 30,000 connections from more addresses (198.18.0.11 and up; pktgen announces them to
//! the server and answers ARP for them itself, nothing is configured in any namespace).

use std::time::{Duration, Instant};

use lab::sandbox::Sandbox;

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::parse::HttpGenReport;
use crate::procs::{self, BenchError, Proc, Result};

const STACK: &str = "xdpstack";
const NGINX: &str = "nginx";
/// Connections per client source address at most (pktgen's ports 1024..65535 hold 64,512).
const CONNS_PER_ADDR: usize = 30_000;
/// Most client addresses (198.18.0.10 and the extra ones after it).
const MAX_ADDRS: usize = 8;
/// SYNs per second while the connections open (the same for both servers).
const CONNECT_RATE: u64 = 50_000;

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("nginx", "nginx-light")])?;
    let mut res = ctx.result(
        "conns",
        "Connection count: req/s and server memory vs concurrent connections",
    );
    let dir = env::scratch("conns")?;
    // (connections, seconds, steady mark): larger levels get longer runs, as the connections
    // are opened inside the run; the steady figures (req/s, CPU per request) count from the
    // mark on, when the connections should all be up.
    let levels: [(usize, u64, u64); 4] = if ctx.quick {
        [(100, 3, 1), (1_000, 3, 1), (10_000, 6, 3), (100_000, 14, 8)]
    } else {
        [
            (100, 8, 2),
            (1_000, 8, 2),
            (10_000, 12, 4),
            (100_000, 20, 8),
        ]
    };
    // XDPSTACK_BENCH_LEVELS=10000,100000: only those levels (for a quick look; the results
    // file then holds only them).
    let only: Option<Vec<usize>> = std::env::var("XDPSTACK_BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let levels: Vec<(usize, u64, u64)> = levels
        .into_iter()
        .filter(|(l, _, _)| only.as_ref().is_none_or(|o| o.contains(l)))
        .collect();
    let per_proc = common::conns_per_process();
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server pinned to core {server_cpu} (xdpstack: 1 worker); the client (pktgen http, one \
         thread) pinned to core {client_cpu}. A fresh sandbox and server for every level and run, so \
         memory is that level's. {}.",
        env::rps_note(&server_cpu, &client_cpu)
    );
    for &(level, secs, steady) in &levels {
        let procs_n = level.div_ceil(per_proc).max(1);
        let addrs = level.div_ceil(CONNS_PER_ADDR).clamp(1, MAX_ADDRS);
        let mut case = Case {
            name: format!("{level} connections"),
            load: format!(
                "pktgen --template http --conns {level} --connect-rate {CONNECT_RATE} on core {client_cpu}, from {addrs} client address(es), one request in flight per connection, {secs} s (steady phase from {steady} s to {secs} s){}",
                if procs_n > 1 {
                    format!("; nginx with {procs_n} worker processes, all on core {server_cpu}")
                } else {
                    String::new()
                }
            ),
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        // The load on server `p` in `sb`: its metrics (memory from idle), and the measurement.
        let load = |sb: &Sandbox, p: &Proc| {
            let idle = p.memory_kib();
            let m = run_load(
                ctx,
                sb,
                p,
                &client_cpu,
                (level, addrs),
                (secs, steady),
                &dir,
            )?;
            Result::Ok((metrics(&m, idle, (steady, secs)), m))
        };
        for run in 0..ctx.runs {
            for i in 0..2 {
                // A fresh sandbox for every measurement: no ports left in TIME_WAIT, no orphans.
                let r = if i == 0 {
                    env::sandbox("ns", 1, ServerSide::Stack).and_then(|sb| {
                        env::receive_on_own_cores(&sb, &server_cpu, &client_cpu)?;
                        let (p, stats) = start_stack(ctx, &sb, &server_cpu, level, &dir)?;
                        let (mut x, m) = load(&sb, &p)?;
                        let st = common::stop_stack(p, &stats)?;
                        if let Some(w) = st.workers.first() {
                            for (k, v) in [
                                ("accepted", w.engine["accepted"].as_u64()),
                                ("syn_backlog_full", w.engine["syn_backlog_full"].as_u64()),
                                ("loop_iterations", Some(w.loop_stats.iterations)),
                                ("xsk_rx_ring_full", w.port.kernel_stat("rx_ring_full")),
                                ("rejected_max_conns", w.app["rejected_max_conns"].as_u64()),
                            ] {
                                if let Some(v) = v {
                                    x.insert(k.into(), v as f64);
                                }
                            }
                        }
                        Ok((x, m.placement))
                    })
                } else {
                    env::sandbox("nk", 1, ServerSide::Kernel).and_then(|sb| {
                        env::receive_on_own_cores(&sb, &server_cpu, &client_cpu)?;
                        common::tune_server_ns(&sb)?;
                        let p = common::start_nginx(ctx, &sb, &[0], procs_n, 65535, &dir)?;
                        let (x, m) = load(&sb, &p)?;
                        Ok((x, m.placement))
                    })
                };
                match r {
                    Ok((x, pl)) => {
                        if run == 0 && level == 10_000 {
                            res.placement.extend(pl);
                        }
                        case.subjects[i].runs.push(x);
                    }
                    Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
                    Err(e) => case.subjects[i].errors.push(format!("run {run}: {e}")),
                }
            }
        }
        for s in &mut case.subjects {
            s.finish();
        }
        case.add_ratio("rps", STACK, NGINX);
        case.add_ratio("rps_steady", STACK, NGINX);
        case.add_ratio("server_cpu_ms_per_1k_steady", STACK, NGINX);
        case.add_ratio("rss_kib", STACK, NGINX);
        res.cases.push(case);
    }
    let (Some(&(bottom, _, _)), Some(&(top, _, _))) = (levels.first(), levels.last()) else {
        res.wall_seconds = started.elapsed().as_secs_f64();
        return Ok(res);
    };
    // Per-request CPU at the largest level against the smallest, per subject.
    let cpu_at = |level: &str, who: &str| {
        res.case(&format!("{level} connections"))
            .and_then(|c| c.subject(who))
            .and_then(|s| s.median.get("server_cpu_ms_per_1k_steady").copied())
    };
    let growth = |who: &str| {
        cpu_at(&top.to_string(), who)
            .zip(cpu_at(&bottom.to_string(), who))
            .and_then(|(a, b)| crate::stats::ratio(a, b))
    };
    let (gs, gn) = (growth(STACK), growth(NGINX));
    // Whether the largest level was really up when the steady phase began.
    let up_at_mark = |who: &str| {
        res.case(&format!("{} connections", top))
            .and_then(|c| c.subject(who))
            .and_then(|s| s.median.get("established_at_mark").copied())
    };
    let mut growth_why = gn.map_or(String::new(), |g| format!("nginx: {g:.2}x"));
    for who in [STACK, NGINX] {
        if let Some(u) = up_at_mark(who) {
            if u < 0.95 * top as f64 {
                growth_why.push_str(&format!(
                    "; {who} had only {u:.0} of {} connections up at the steady mark",
                    top
                ));
            }
        }
    }
    res.targets.push(
        Target::threshold(
            &format!(
                "xdpstack server CPU per request (steady phase) at {} vs {} connections",
                top, bottom
            ),
            "<= 1.3x",
            gs,
            1.3,
            true,
        )
        .why(&growth_why),
    );
    let est = res
        .case(&format!("{} connections", top))
        .and_then(|c| c.subject(STACK))
        .and_then(|s| s.median.get("established").copied());
    res.targets.push(Target::threshold(
        &format!(
            "xdpstack connections held at once at the {} level (median peak)",
            top
        ),
        &format!(">= {}", top),
        est,
        top as f64,
        false,
    ));
    let ten = res.case("10000 connections");
    let tr = ten.and_then(|c| c.ratio("rps", STACK, NGINX));
    let terr = ten
        .and_then(|c| c.subject(STACK))
        .and_then(|s| s.median.get("errors").copied());
    res.targets.push(
        Target::threshold(
            "10,000 keep-alive connections req/s vs nginx",
            ">= 1.5x nginx, 0 errors",
            tr,
            1.5,
            false,
        )
        .why(&terr.map_or(String::new(), |e| format!("xdpstack errors: {e:.0}"))),
    );
    // What the figures say about scaling, from the data.
    for name in [STACK, NGINX] {
        let mut parts = Vec::new();
        for c in &res.cases {
            let Some(s) = c.subject(name) else { continue };
            let level = c.name.split_whitespace().next().unwrap_or("?");
            let est = s.median.get("established").copied();
            let cpu = s.median.get("server_cpu_ms_per_1k_steady").copied();
            if let (Some(e), Some(cpu)) = (est, cpu) {
                parts.push(format!(
                    "{level}: {e:.0} established, {cpu:.1} ms CPU per 1k requests (steady)"
                ));
            }
        }
        if !parts.is_empty() {
            res.notes
                .push(format!("{name} by level (medians): {}.", parts.join("; ")));
        }
    }
    res.notes.push(format!(
        "xdpstack runs with its default buffers at every level (they grow with the path \
         and are given back when a connection idles: an idle connection holds none; they come \
         from the stack's own memory, so they are in its RSS; fixed 64 KiB each way, the \
         default before 2026-12-07, would need 12.5 GiB at 100,000 connections), --backlog 65535; up to {DEFAULT_MAX_CONNS} connections the defaults (--max-conns \
         {DEFAULT_MAX_CONNS}, UMEM and rings that follow it); past it (the 100k level) \
         --max-conns twice the level and --frames sized to the level (twice the connections, \
         up to 262144 frames of 2 KiB, and an rx ring of half the frames: it must hold a \
         segment from every connection at once, where a kernel server queues them per \
         socket). The client sends from 198.18.0.10, and past \
         {CONNS_PER_ADDR} connections from more addresses (198.18.0.11 and up, one per \
         {CONNS_PER_ADDR} connections). \
         nginx's socket buffers live in the kernel, not in its RSS: the kernel TCP memory \
         column (from /proc/net/sockstat; host-wide) shows them.",
    ));
    res.notes.push(format!(
        "Open files are limited to {} per process here (RLIMIT_NOFILE; the hard limit cannot be \
         raised without CAP_SYS_RESOURCE). Where a level needs more, nginx runs several worker \
         processes (each under the limit), all pinned to the server core (the same CPU budget as the stack's one worker, which needs no file \
         descriptor per connection).",
        per_proc + 1000
    ));
    res.notes.push(
        "pktgen http opens the connections at {CONNECT_RATE} SYNs/s and sends each \
         connection's next request as soon as its response is in; it retransmits after 1 s \
         (doubling, 6 tries) and counts a connection it gives up as a timeout. req/s counts the whole run, the connection phase included; `established` is the most \
         connections up at once. The steady columns count from a fixed mark (the level's \
         `steady phase from` time, the same for both servers) to the end of sending: \
         responses completed in between and the server's CPU read at both points, so that \
         per-request CPU compares serving, not connection setup nor the client's drain and \
         the reset of every connection at its end; `established at steady mark` says whether \
         every connection was up by then."
            .replace("{CONNECT_RATE}", &CONNECT_RATE.to_string()),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

fn start_stack(
    ctx: &Ctx,
    sb: &lab::sandbox::Sandbox,
    cpu: &str,
    level: usize,
    dir: &std::path::Path,
) -> Result<(Proc, std::path::PathBuf)> {
    let mut args = common::strings(&["--workers", "1", "--backlog", "65535"]);
    // Up to the HTTP app's default --max-conns (16384 per worker) the defaults hold the
    // level: the UMEM and rings follow --max-conns. Past it (the 100k level) the cap and the
    // UMEM are raised, beyond what the defaults give (an rx ring of at most 32768).
    if level > DEFAULT_MAX_CONNS {
        args.extend(common::strings(&[
            "--frames",
            &frames_for(level).to_string(),
            "--max-conns",
            &(2 * level).to_string(),
        ]));
    }
    let (p, stats) = common::start_stack(ctx, sb, cpu, &["http"], &args, dir, "xdpstack http")?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(15))? {
        return procs::err(format!(
            "xdpstack http did not come up: {}",
            p.stderr_tail()
        ));
    }
    Ok((p, stats))
}

/// UMEM frames for `level` connections: with one request in flight per connection, every
/// connection may have a segment waiting in the XSK rx ring at once (a kernel server queues
/// them in each socket's receive queue instead), so the ring (half the frames) grows with the
/// level (131072 entries for 100,000 connections). Frames are 2 KiB (the default): 512 MiB
/// at most, in the RSS only once the kernel has written into them.
/// The HTTP app's default `--max-conns` per worker.
const DEFAULT_MAX_CONNS: usize = 16384;

fn frames_for(level: usize) -> usize {
    (2 * level).next_power_of_two().clamp(4096, 262_144)
}

/// Runs pktgen http with `level` connections from `addrs` client addresses.
fn run_load(
    ctx: &Ctx,
    sb: &lab::sandbox::Sandbox,
    server: &Proc,
    cpu: &str,
    (level, addrs): (usize, usize),
    (secs, steady): (u64, u64),
    dir: &std::path::Path,
) -> Result<common::Measured<HttpGenReport>> {
    let o = common::HttpGenOpts {
        conns: level,
        inflight: 0,
        close: false,
        seconds: secs,
        addrs,
        connect_rate: CONNECT_RATE,
        // The steady phase ends where sending does: the client's drain and the reset of every
        // connection at its end (100,000 RSTs at the top level) are not serving.
        marks: Some((Duration::from_secs(steady), Duration::from_secs(secs))),
    };
    common::run_httpgen(ctx, sb, server, cpu, &o, dir)
}

fn metrics(
    m: &common::Measured<HttpGenReport>,
    idle: (u64, u64),
    (steady, secs): (u64, u64),
) -> Metrics {
    let r = &m.report;
    let mut x = common::httpgen_base_metrics(m);
    x.insert("established".into(), r.peak_open as f64);
    if let Some(s) = r.all_open_s {
        x.insert("connect_s".into(), s);
    }
    x.insert("errors".into(), r.errors as f64);
    x.insert("timeouts".into(), r.timeouts as f64);
    let (n, span, open) = r.between(steady as f64, secs as f64);
    x.insert("established_at_mark".into(), open as f64);
    x.insert("rps_steady".into(), n as f64 / span.max(1e-9));
    if let Some(c) = m.server_cpu_after_mark_s {
        x.insert("server_cpu_steady_s".into(), c);
        if let Some(v) = crate::stats::cpu_per_1k(c, n as f64) {
            x.insert("server_cpu_ms_per_1k_steady".into(), v * 1000.0);
        }
    }
    x.insert("rss_idle_kib".into(), idle.0 as f64);
    x.insert("rss_kib".into(), m.server_mem_kib.0 as f64);
    x.insert("pss_kib".into(), m.server_mem_kib.1 as f64);
    x.insert("kernel_tcp_mem_kib".into(), m.kernel_tcp_mem_kib as f64);
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn umem_grows_with_the_level() {
        assert_eq!(super::frames_for(100), 4096);
        assert_eq!(super::frames_for(1_000), 4096);
        assert_eq!(super::frames_for(10_000), 32_768);
        assert_eq!(super::frames_for(100_000), 262_144);
    }
}
