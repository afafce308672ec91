//! Scenario `conns`: requests/s and server memory with 100, 1k, 10k and 50k concurrent
//! keep-alive connections (wrk -c N), the stack against nginx.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, WrkOpts, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, ScenarioResult, Subject};
use crate::procs::{self, BenchError, Result};

const STACK: &str = "xdpstack";
const NGINX: &str = "nginx";
/// Per-connection TCP buffer (each way) the stack runs with in this scenario.
pub const TCP_BUF: u32 = 16 * 1024;

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("nginx", "nginx-light"), ("wrk", "wrk")])?;
    let mut res = ctx.result("conns", "Connection count: req/s and server memory vs concurrent connections");
    let dir = env::scratch("conns")?;
    // Larger levels get longer runs: wrk opens every connection at its start, inside the run.
    let levels: [(usize, u64); 4] = if ctx.quick {
        [(100, 3), (1_000, 3), (10_000, 6), (50_000, 10)]
    } else {
        [(100, 8), (1_000, 8), (10_000, 12), (50_000, 20)]
    };
    let per_proc = common::conns_per_process();
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server (1 worker) pinned to core {server_cpu}; wrk (1 thread) pinned to core {client_cpu}. \
         A fresh server for every level and run, so memory is that level's."
    );
    let ssb = env::sandbox("ns", 1, ServerSide::Stack)?;
    let ksb = env::sandbox("nk", 1, ServerSide::Kernel)?;
    common::tune_server_ns(&ksb)?;
    for (level, secs) in levels {
        let o = WrkOpts { conns: level, threads: 1, seconds: secs, close: false, timeout_s: 10 };
        let wrks = level.div_ceil(per_proc);
        let nginx_workers = wrks;
        let mut case = Case {
            name: format!("{level} connections"),
            load: if wrks > 1 {
                format!("{wrks} wrk processes on the same core, -t1 -c{} each, -d{secs}s --timeout 10s --latency (keep-alive); nginx with {nginx_workers} worker processes, all on core {server_cpu}", level / wrks)
            } else {
                format!("wrk -t1 -c{level} -d{secs}s --timeout 10s --latency (keep-alive)")
            },
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        for run in 0..ctx.runs {
            for i in 0..2 {
                let r = if i == 0 {
                    stack_level(ctx, &ssb, &server_cpu, &client_cpu, &o, level, &dir)
                } else {
                    nginx_level(ctx, &ksb, &client_cpu, &o, nginx_workers, &dir)
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
        case.add_ratio("rss_kib", STACK, NGINX);
        res.cases.push(case);
    }
    res.notes.push(format!(
        "xdpstack runs with --tcp-buf {TCP_BUF} (a {} KiB receive and a {} KiB send buffer per \
         connection, allocated by the stack in its own memory: they are in its RSS) and \
         --backlog 65535; the default is 64 KiB each way. nginx's socket buffers live in the \
         kernel, not in its RSS: the kernel TCP memory column (from /proc/net/sockstat, \
         host-wide, so other processes' sockets count too) shows them.",
        TCP_BUF / 1024,
        TCP_BUF / 1024
    ));
    res.notes.push(format!(
        "Open files are limited to {} per process here (RLIMIT_NOFILE; the hard limit cannot be \
         raised without CAP_SYS_RESOURCE). Where a level needs more, the client runs several wrk \
         processes on its one core, and nginx runs as many worker processes, all pinned to the \
         server core (the same CPU budget as the stack's one worker, which needs no file \
         descriptor per connection).",
        per_proc + 1000
    ));
    res.notes.push(
        "The client namespace uses ports 1024-65535 (net.ipv4.ip_local_port_range, per \
         namespace); the runner raises RLIMIT_NOFILE for itself and everything it starts."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

fn add_mem(x: &mut crate::model::Metrics, idle: (u64, u64), m: &common::Measured<crate::parse::WrkReport>) {
    x.insert("rss_idle_kib".into(), idle.0 as f64);
    x.insert("rss_kib".into(), m.server_mem_kib.0 as f64);
    x.insert("pss_kib".into(), m.server_mem_kib.1 as f64);
    x.insert("kernel_tcp_mem_kib".into(), m.kernel_tcp_mem_kib as f64);
}

fn stack_level(
    ctx: &Ctx,
    sb: &xdpstack::sandbox::Sandbox,
    server_cpu: &str,
    client_cpu: &str,
    o: &WrkOpts,
    level: usize,
    dir: &std::path::Path,
) -> Result<(crate::model::Metrics, Vec<procs::Placement>)> {
    let frames = if level > 10_000 { "16384" } else { "4096" };
    let (p, stats) = common::start_stack(
        ctx, sb, server_cpu, &["http"],
        &common::strings(&["--workers", "1", "--tcp-buf", &TCP_BUF.to_string(), "--backlog", "65535", "--frames", frames]),
        dir, "xdpstack http",
    )?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(15))? {
        return procs::err(format!("xdpstack http did not come up: {}", p.stderr_tail()));
    }
    let idle = p.memory_kib();
    let m = common::run_wrk(sb, &p, client_cpu, o, dir)?;
    let mut x = common::wrk_metrics(&m);
    add_mem(&mut x, idle, &m);
    let st = common::stop_stack(p, &stats)?;
    let w = &st["workers"][0];
    x.insert("connections_accepted".into(), w["app"]["connections"].as_f64().unwrap_or(0.0));
    Ok((x, m.placement))
}

fn nginx_level(
    ctx: &Ctx,
    sb: &xdpstack::sandbox::Sandbox,
    client_cpu: &str,
    o: &WrkOpts,
    workers: usize,
    dir: &std::path::Path,
) -> Result<(crate::model::Metrics, Vec<procs::Placement>)> {
    let p = common::start_nginx(ctx, sb, &[0], workers, 65535, dir)?;
    let idle = p.memory_kib();
    let m = common::run_wrk(sb, &p, client_cpu, o, dir)?;
    let mut x = common::wrk_metrics(&m);
    add_mem(&mut x, idle, &m);
    drop(p);
    // Let the namespace's sockets go before the next server binds.
    procs::sleep(Duration::from_millis(300))?;
    Ok((x, m.placement))
}
