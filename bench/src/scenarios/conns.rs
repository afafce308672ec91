//! Scenario `conns`: requests/s, server memory and server CPU per request with 100, 1k, 10k
//! and 100k concurrent keep-alive connections, the stack (one worker) against nginx.
//!
//! The load is this crate's `kaload` (one request at a time on every connection, like wrk's
//! keep-alive mode) rather than wrk: every connection binds its own source port. One client
//! address cannot open 50k connections to one server port through connect()'s port search in
//! reasonable time (Linux scans one parity of the ephemeral range first, so once half of it is
//! taken every connect() walks ~32k ports); wrk spent the whole run connecting.
//!
//! Past one process's open-file limit the client is several kaload processes; past what one
//! source address's ports can hold comfortably, the client namespace's `peer0` gets more
//! addresses (198.18.0.3, .4, ...: in the sandbox the scenario builds, nothing in the root
//! namespace) and the processes are spread over them.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::load::KaLoadReport;
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, BenchError, Proc, Result};

const STACK: &str = "xdpstack";
const NGINX: &str = "nginx";
/// Per-connection TCP buffer (each way) the stack runs with in this scenario (issue 8: 100k
/// idle connections on one core with `--tcp-buf 4096`).
pub const TCP_BUF: u32 = 4096;
/// Connections per client source address at most (the port range 1024..65535 holds 64,511;
/// the rest is room for redials).
const CONNS_PER_ADDR: usize = 30_000;
/// Most client addresses (198.18.0.2 and the extra ones after it).
const MAX_ADDRS: usize = 8;
/// Client source ports: 1024..65535.
const PORT_FIRST: u32 = 1024;
const PORT_END: u32 = 65535;

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
        [
            (100, 3, 1),
            (1_000, 3, 1),
            (10_000, 6, 3),
            (100_000, 20, 14),
        ]
    } else {
        [
            (100, 8, 2),
            (1_000, 8, 2),
            (10_000, 12, 4),
            (100_000, 30, 15),
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
        "server pinned to core {server_cpu} (xdpstack: 1 worker); the client (kaload processes) \
         pinned to core {client_cpu}. A fresh sandbox and server for every level and run, so \
         memory is that level's. {}.",
        env::rps_note(&server_cpu, &client_cpu)
    );
    for &(level, secs, steady) in &levels {
        let procs_n = level.div_ceil(per_proc).max(1);
        let addrs = level.div_ceil(CONNS_PER_ADDR).clamp(1, MAX_ADDRS);
        let mut case = Case {
            name: format!("{level} connections"),
            load: format!(
                "{procs_n} kaload process(es) on core {client_cpu}, {} keep-alive connections each, from {addrs} client address(es), one request in flight per connection, {secs} s (steady phase from {steady} s on), 10 s timeout{}",
                level / procs_n,
                if procs_n > 1 {
                    format!("; nginx with {procs_n} worker processes, all on core {server_cpu}")
                } else {
                    String::new()
                }
            ),
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        for run in 0..ctx.runs {
            for i in 0..2 {
                // A fresh sandbox for every measurement: no ports left in TIME_WAIT, no orphans.
                let r = if i == 0 {
                    env::sandbox("ns", 1, ServerSide::Stack).and_then(|sb| {
                        env::receive_on_own_cores(&sb, &server_cpu, &client_cpu)?;
                        let (p, stats) = start_stack(ctx, &sb, &server_cpu, level, &dir)?;
                        let idle = p.memory_kib();
                        let m = run_load(
                            ctx,
                            &sb,
                            &p,
                            &client_cpu,
                            (level, procs_n, addrs),
                            (secs, steady),
                            &dir,
                        )?;
                        let mut x = metrics(&m, idle);
                        let st = common::stop_stack(p, &stats)?;
                        let w = &st["workers"][0];
                        for (k, v) in [
                            ("accepted", &w["engine"]["accepted"]),
                            ("syn_backlog_full", &w["engine"]["syn_backlog_full"]),
                            ("loop_iterations", &w["loop"]["iterations"]),
                            ("xsk_rx_ring_full", &w["port"]["kernel"]["rx_ring_full"]),
                            ("rejected_max_conns", &w["app"]["rejected_max_conns"]),
                        ] {
                            if let Some(v) = v.as_f64() {
                                x.insert(k.into(), v);
                            }
                        }
                        Ok((x, m.placement))
                    })
                } else {
                    env::sandbox("nk", 1, ServerSide::Kernel).and_then(|sb| {
                        env::receive_on_own_cores(&sb, &server_cpu, &client_cpu)?;
                        common::tune_server_ns(&sb)?;
                        let p = common::start_nginx(ctx, &sb, &[0], procs_n, 65535, &dir)?;
                        let idle = p.memory_kib();
                        let m = run_load(
                            ctx,
                            &sb,
                            &p,
                            &client_cpu,
                            (level, procs_n, addrs),
                            (secs, steady),
                            &dir,
                        )?;
                        Ok((metrics(&m, idle), m.placement))
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
        "xdpstack runs with --tcp-buf {TCP_BUF} at every level (a {} KiB receive and a {} KiB \
         send buffer per connection, allocated by the stack in its own memory: they are in its \
         RSS), --backlog 65535, --max-conns twice the level (the HTTP app resets \
         connections past it, 1024 by default) and --frames sized to the level (twice the \
         connections, 4096 to 131072 frames of 2 KiB: the XSK rx ring, half the frames, must \
         hold a segment from every connection at once, where a kernel server queues them per \
         socket); the default buffer is 64 KiB each way. Past {CONNS_PER_ADDR} connections the client namespace's peer0 \
         gets more addresses (198.18.0.3 and up, one per {CONNS_PER_ADDR} connections) and the \
         kaload processes are spread over them. nginx's socket buffers live in the kernel, not in its RSS: the kernel \
         TCP memory column (from /proc/net/sockstat; host-wide, so the client's sockets and \
         other processes' count too) shows them.",
        TCP_BUF / 1024,
        TCP_BUF / 1024
    ));
    res.notes.push(format!(
        "Open files are limited to {} per process here (RLIMIT_NOFILE; the hard limit cannot be \
         raised without CAP_SYS_RESOURCE). Where a level needs more, the client runs several \
         kaload processes on its core, and nginx runs as many worker processes, all pinned to \
         the server core (the same CPU budget as the stack's one worker, which needs no file \
         descriptor per connection).",
        per_proc + 1000
    ));
    res.notes.push(
        "kaload, not wrk: each connection binds its own source port (see the module docs: \
         connect()'s port search crawls past ~32k connections from one address to one port). \
         req/s counts the whole run, the connection phase included; `established` is the most \
         connections up at once. The steady columns count from a fixed mark (the level's \
         `steady phase from` time, the same for both servers) to the end: responses completed \
         after it and the server's CPU read at it, so that per-request CPU compares serving, \
         not connection setup; `established at steady mark` says whether every connection \
         was up by then."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

fn start_stack(
    ctx: &Ctx,
    sb: &xdpstack::sandbox::Sandbox,
    cpu: &str,
    level: usize,
    dir: &std::path::Path,
) -> Result<(Proc, std::path::PathBuf)> {
    let frames = frames_for(level).to_string();
    let (p, stats) = common::start_stack(
        ctx,
        sb,
        cpu,
        &["http"],
        &common::strings(&[
            "--workers",
            "1",
            "--tcp-buf",
            &TCP_BUF.to_string(),
            "--backlog",
            "65535",
            "--frames",
            &frames,
            // The HTTP app resets connections past --max-conns per worker (1024 by default).
            "--max-conns",
            &(2 * level).max(1024).to_string(),
        ]),
        dir,
        "xdpstack http",
    )?;
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
/// level up to its 65536 cap. Frames are 2 KiB (the default): 256 MiB at most.
fn frames_for(level: usize) -> usize {
    (2 * level).next_power_of_two().clamp(4096, 131_072)
}

/// Client address `i` (0 = the sandbox's own, 198.18.0.2): 198.18.0.(2 + i).
fn client_addr(sb: &xdpstack::sandbox::Sandbox, i: usize) -> String {
    let base = sb
        .info()
        .client_ip4
        .split('/')
        .next()
        .unwrap_or("198.18.0.2")
        .to_string();
    let mut o: Vec<u32> = base.split('.').filter_map(|x| x.parse().ok()).collect();
    if o.len() != 4 {
        o = vec![198, 18, 0, 2];
    }
    format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3] + i as u32)
}

/// Where kaload process `k` of `procs_n` sends from, over `addrs` addresses: (address index,
/// first port, port count). Processes go round-robin over the addresses; the processes that
/// share an address split its port range.
pub fn assign(k: usize, procs_n: usize, addrs: usize) -> (usize, u32, u32) {
    let addrs = addrs.clamp(1, procs_n.max(1));
    let a = k % addrs;
    let sharing = (0..procs_n).filter(|j| j % addrs == a).count().max(1) as u32;
    let slot = (k / addrs) as u32;
    let span = (PORT_END - PORT_FIRST) / sharing;
    (a, PORT_FIRST + slot * span, span)
}

/// Runs kaload processes for `level` connections: `procs_n` processes (disjoint source-port
/// ranges) over `addrs` client addresses (`shape` = (level, procs_n, addrs)).
fn run_load(
    ctx: &Ctx,
    sb: &xdpstack::sandbox::Sandbox,
    server: &Proc,
    cpu: &str,
    shape: (usize, usize, usize),
    (secs, steady): (u64, u64),
    dir: &std::path::Path,
) -> Result<common::Measured<KaLoadReport>> {
    let (level, procs_n, addrs) = shape;
    let addrs = addrs.clamp(1, procs_n.max(1));
    // Extra client addresses on peer0, in the client namespace of this run's sandbox.
    for i in 1..addrs {
        env::run_in(
            sb,
            xdpstack::sandbox::Side::Client,
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", client_addr(sb, i)),
                "dev",
                &sb.info().client_if,
            ],
        )?;
    }
    let lists: Vec<Vec<String>> = (0..procs_n)
        .map(|k| {
            let conns = level / procs_n + usize::from(k < level % procs_n);
            let (a, first, span) = assign(k, procs_n, addrs);
            common::strings(&[
                "helper",
                "kaload",
                "--dst",
                &format!("{SERVER_IP}:80"),
                "--src",
                &client_addr(sb, a),
                "--port-first",
                &first.to_string(),
                "--port-count",
                &span.to_string(),
                "--conns",
                &conns.to_string(),
                "--seconds",
                &secs.to_string(),
                "--timeout-ms",
                "10000",
                "--steady-after",
                &steady.to_string(),
            ])
        })
        .collect();
    let m = common::measure_many_marked(
        sb,
        server,
        cpu,
        "kaload",
        &ctx.bins.bench,
        &lists,
        dir,
        Duration::from_secs(secs + 30),
        Some(Duration::from_secs(steady)),
    )?;
    let mut t = KaLoadReport::default();
    for out in &m.report {
        let r: KaLoadReport = serde_json::from_str(out.trim())?;
        t.conns += r.conns;
        t.established += r.established;
        t.peak_established += r.peak_established;
        t.connect_seconds = t.connect_seconds.max(r.connect_seconds);
        t.requests += r.requests;
        t.non_200 += r.non_200;
        t.errors += r.errors;
        t.timeouts += r.timeouts;
        t.seconds = t.seconds.max(r.seconds);
        t.rps += r.rps;
        t.p50_us = t.p50_us.max(r.p50_us);
        t.p99_us = t.p99_us.max(r.p99_us);
        t.steady_requests += r.steady_requests;
        t.steady_seconds = t.steady_seconds.max(r.steady_seconds);
        t.established_at_mark += r.established_at_mark;
    }
    Ok(common::Measured {
        report: t,
        server_cpu_s: m.server_cpu_s,
        client_cpu_s: m.client_cpu_s,
        placement: m.placement,
        server_mem_kib: m.server_mem_kib,
        kernel_tcp_mem_kib: m.kernel_tcp_mem_kib,
        wall_s: m.wall_s,
        cores: m.cores,
        loadavg1: m.loadavg1,
        server_cpu_after_mark_s: m.server_cpu_after_mark_s,
    })
}

fn metrics(m: &common::Measured<KaLoadReport>, idle: (u64, u64)) -> Metrics {
    let r = &m.report;
    let mut x = Metrics::new();
    x.insert("rps".into(), r.rps);
    x.insert("requests".into(), r.requests as f64);
    x.insert("p50_us".into(), r.p50_us);
    x.insert("p99_us".into(), r.p99_us);
    x.insert("established".into(), r.peak_established as f64);
    x.insert("connect_s".into(), r.connect_seconds);
    x.insert("errors".into(), (r.errors + r.non_200) as f64);
    x.insert("timeouts".into(), r.timeouts as f64);
    x.insert("server_cpu_s".into(), m.server_cpu_s);
    x.insert("client_cpu_s".into(), m.client_cpu_s);
    if let Some(v) = crate::stats::cpu_per_1k(m.server_cpu_s, r.requests as f64) {
        x.insert("server_cpu_ms_per_1k".into(), v * 1000.0);
    }
    x.insert("established_at_mark".into(), r.established_at_mark as f64);
    x.insert(
        "rps_steady".into(),
        r.steady_requests as f64 / r.steady_seconds.max(1e-9),
    );
    if let Some(c) = m.server_cpu_after_mark_s {
        x.insert("server_cpu_steady_s".into(), c);
        if let Some(v) = crate::stats::cpu_per_1k(c, r.steady_requests as f64) {
            x.insert("server_cpu_ms_per_1k_steady".into(), v * 1000.0);
        }
    }
    x.insert("rss_idle_kib".into(), idle.0 as f64);
    x.insert("rss_kib".into(), m.server_mem_kib.0 as f64);
    x.insert("pss_kib".into(), m.server_mem_kib.1 as f64);
    x.insert("kernel_tcp_mem_kib".into(), m.kernel_tcp_mem_kib as f64);
    common::add_core_metrics(&mut x, m);
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn umem_grows_with_the_level() {
        assert_eq!(super::frames_for(100), 4096);
        assert_eq!(super::frames_for(1_000), 4096);
        assert_eq!(super::frames_for(10_000), 32_768);
        assert_eq!(super::frames_for(100_000), 131_072);
    }

    use super::*;

    #[test]
    fn processes_spread_over_addresses_and_ports() {
        // One process, one address: the whole range.
        assert_eq!(assign(0, 1, 1), (0, 1024, 64511));
        // Six processes over four addresses: two share address 0 and 1, ports split.
        let a: Vec<_> = (0..6).map(|k| assign(k, 6, 4)).collect();
        assert_eq!(a[0], (0, 1024, 32255));
        assert_eq!(a[4], (0, 1024 + 32255, 32255));
        assert_eq!(a[2], (2, 1024, 64511));
        assert_eq!(a[5].0, 1);
        // Never more addresses than processes; no range past 65535.
        assert_eq!(assign(0, 1, 4), (0, 1024, 64511));
        for k in 0..7 {
            let (_, first, span) = assign(k, 7, 3);
            assert!(first + span <= 65535);
        }
    }
}
