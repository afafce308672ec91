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
    let secs = ctx.pick(8, 3);
    let levels: [usize; 4] = [100, 1_000, 10_000, 50_000];
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server (1 worker) pinned to core {server_cpu}; wrk (1 thread) pinned to core {client_cpu}. \
         A fresh server for every level and run, so memory is that level's."
    );
    let ssb = env::sandbox("ns", 1, ServerSide::Stack)?;
    let ksb = env::sandbox("nk", 1, ServerSide::Kernel)?;
    common::tune_server_ns(&ksb)?;
    for level in levels {
        let o = WrkOpts { conns: level, threads: 1, seconds: secs, close: false, timeout_s: 10 };
        let mut case = Case {
            name: format!("{level} connections"),
            load: format!("wrk -t1 -c{level} -d{secs}s --timeout 10s --latency (keep-alive)"),
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        for run in 0..ctx.runs {
            for i in 0..2 {
                let r = if i == 0 {
                    stack_level(ctx, &ssb, &server_cpu, &client_cpu, &o, level, &dir)
                } else {
                    nginx_level(ctx, &ksb, &client_cpu, &o, &dir)
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
    dir: &std::path::Path,
) -> Result<(crate::model::Metrics, Vec<procs::Placement>)> {
    let p = common::start_nginx(ctx, sb, &[0], 1, 65535, dir)?;
    let idle = p.memory_kib();
    let m = common::run_wrk(sb, &p, client_cpu, o, dir)?;
    let mut x = common::wrk_metrics(&m);
    add_mem(&mut x, idle, &m);
    drop(p);
    // Let the namespace's sockets go before the next server binds.
    procs::sleep(Duration::from_millis(300))?;
    Ok((x, m.placement))
}
