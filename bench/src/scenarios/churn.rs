//! Scenario `churn`: failed connections while every worker's listeners are replaced every
//! 100 ms under a bounded short-connection load. The stack (SIGHUP every 100 ms: each worker
//! opens new listeners and drains the old) against a kernel server that closes and reopens its
//! SO_REUSEPORT listeners every 100 ms, with `net.ipv4.tcp_migrate_req` 0 (default) and 1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lab::sandbox::Side;

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::load::ShortConnReport;
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, BenchError, Proc, Result};

const STACK: &str = "xdpstack (SIGHUP every 100 ms)";
const STACK_CALM: &str = "xdpstack, no churn (control)";
const K0: &str = "kernel reuseport, tcp_migrate_req=0";
const K1: &str = "kernel reuseport, tcp_migrate_req=1";
const EVERY: Duration = Duration::from_millis(100);

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    let mut res = ctx.result(
        "churn",
        "Listener churn: failed connections while listeners are replaced every 100 ms",
    );
    let dir = env::scratch("churn")?;
    let workers = ctx.ncpu.clamp(1, 4);
    let conns: u64 = 500_000;
    let secs: u64 = ctx.pick(10, 4);
    let conc = 20;
    let all = ctx.all_cpus();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "{workers} workers/threads over cores {all} (2 listeners per worker for the stack, 1 per \
         thread for the kernel server); the client (shortconn, {conc} threads) pinned to core \
         {client_cpu}, sharing it with a worker."
    );
    let ssb = env::sandbox("cs", workers as u16, ServerSide::Stack)?;
    let ksb = env::sandbox("ck", workers as u16, ServerSide::Kernel)?;
    common::tune_server_ns(&ksb)?;
    let mut case = Case {
        name: format!("short connections for {secs} s, listeners replaced every 100 ms"),
        load: format!(
            "xdpstack-bench helper shortconn --conns {conns} --concurrency {conc} --seconds {secs} (connect, GET with Connection: close, read to EOF; 3 s timeouts; stops at {secs} s or {conns} connections)"
        ),
        subjects: [STACK, STACK_CALM, K0, K1]
            .iter()
            .map(|s| Subject::new(s))
            .collect(),
        ratios: Vec::new(),
    };
    let cpus: Vec<String> = (0..workers).map(|c| c.to_string()).collect();
    let cpus = cpus.join(",");
    let client_args = common::strings(&[
        "helper",
        "shortconn",
        "--dst",
        &format!("{SERVER_IP}:80"),
        "--conns",
        &conns.to_string(),
        "--concurrency",
        &conc.to_string(),
        "--seconds",
        &format!("{secs}s"),
        "--timeout",
        "3s",
    ]);
    for run in 0..ctx.runs {
        for i in 0..case.subjects.len() {
            let name = case.subjects[i].name.clone();
            let r = if name == STACK || name == STACK_CALM {
                stack_run(ctx, &ssb, workers, &cpus, &client_args, &dir, name == STACK)
            } else {
                let mr = if name == K0 { "0" } else { "1" };
                kernel_run(ctx, &ksb, workers, &cpus, mr, &client_args, &dir)
            };
            match r {
                Ok((x, placement)) => {
                    if run == 0 {
                        res.placement.extend(placement);
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
    let total_failed: Option<f64> = case.subject(STACK).and_then(|s| {
        (!s.runs.is_empty()).then(|| s.runs.iter().filter_map(|r| r.get("failed")).sum())
    });
    let calm_failed: Option<f64> = case.subject(STACK_CALM).and_then(|s| {
        (!s.runs.is_empty()).then(|| s.runs.iter().filter_map(|r| r.get("failed")).sum())
    });
    let stack_sum = |k: &str| -> f64 {
        case.subject(STACK)
            .map(|s| s.runs.iter().filter_map(|r| r.get(k)).sum())
            .unwrap_or(0.0)
    };
    let handoffs = stack_sum("handoff_dropped");
    let unaccepted = stack_sum("flows_not_accepted");
    let replaced: f64 = case
        .subject(STACK)
        .map(|s| {
            s.runs
                .iter()
                .filter_map(|r| r.get("listeners_replaced"))
                .sum()
        })
        .unwrap_or(0.0);
    res.targets.push(
        Target::threshold(
            "churn: failed connections, xdpstack (all runs together)",
            "0 failed",
            total_failed,
            0.0,
            true,
        )
        .why(&format!(
            "{replaced} listeners replaced in those runs; the same load without churn failed {} \
             connection(s); with churn the stack counted {handoffs:.0} cross-core handoffs \
             dropped and {unaccepted:.0} flows never accepted (see the notes)",
            calm_failed.map_or("(not measured)".to_string(), |v| format!("{v:.0}"))
        )),
    );
    // The stack's own counters next to the client's failures, from the data.
    for name in [STACK, STACK_CALM] {
        if let Some(s) = case.subject(name) {
            let sum = |k: &str| -> f64 { s.runs.iter().filter_map(|r| r.get(k)).sum() };
            res.notes.push(format!(
                "{name}, all runs together: client failures {:.0} (connect timeouts {:.0}, \
                 answer timeouts {:.0}, resets {:.0}, refused {:.0}); stack counters: \
                 cross-core handoffs dropped {:.0}, flows never accepted {:.0}, SYNs dropped \
                 for a full backlog {:.0}, resets {:.0}, migrated {:.0}.",
                sum("failed"),
                sum("connect_timeout"),
                sum("timeout"),
                sum("reset"),
                sum("refused"),
                sum("handoff_dropped"),
                sum("flows_not_accepted"),
                sum("syn_dropped"),
                sum("stack_reset"),
                sum("migrated"),
            ));
        }
    }
    res.cases.push(case);
    res.notes.push(
        "The kernel server replaces each thread's listener the best way an application can: \
         open and listen on the new SO_REUSEPORT socket, accept what the old one holds, close it. \
         Connections still in the old listener's queue (or handshaking) when it closes are reset \
         unless net.ipv4.tcp_migrate_req=1 (a per-namespace sysctl, set in the server namespace)."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

fn client_metrics(r: &ShortConnReport) -> Metrics {
    let mut x = Metrics::new();
    x.insert("attempted".into(), r.attempted as f64);
    x.insert("ok".into(), r.ok as f64);
    x.insert("failed".into(), r.failed() as f64);
    x.insert("refused".into(), r.refused as f64);
    x.insert("reset".into(), r.reset as f64);
    x.insert("connect_timeout".into(), r.connect_timeout as f64);
    x.insert("timeout".into(), r.timeout as f64);
    x.insert("bad_response".into(), r.bad_response as f64);
    x.insert("cps".into(), r.cps);
    x.insert("p50_us".into(), r.p50_us);
    x.insert("p99_us".into(), r.p99_us);
    x
}

/// The short-connection client (`helper shortconn client_args`) against server `p`.
fn shortconn(
    ctx: &Ctx,
    sb: &lab::sandbox::Sandbox,
    p: &Proc,
    client_args: &[String],
    dir: &std::path::Path,
) -> Result<common::Measured<String>> {
    common::measure(
        sb,
        p,
        &ctx.client_cpu(),
        "shortconn",
        &ctx.bins.bench,
        client_args,
        dir,
        Duration::from_secs(150),
    )
}

fn stack_run(
    ctx: &Ctx,
    sb: &lab::sandbox::Sandbox,
    workers: usize,
    cpus: &str,
    client_args: &[String],
    dir: &std::path::Path,
    churn: bool,
) -> Result<(Metrics, Vec<procs::Placement>)> {
    let (p, stats) = common::start_stack(
        ctx,
        sb,
        cpus,
        &["http"],
        &common::strings(&["--workers", &workers.to_string(), "--listeners", "2"]),
        dir,
        STACK,
    )?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(15))? {
        return procs::err(format!(
            "xdpstack http did not come up: {}",
            p.stderr_tail()
        ));
    }
    let done = AtomicBool::new(false);
    let hups = std::sync::atomic::AtomicU64::new(0);
    let m = std::thread::scope(|s| {
        s.spawn(|| {
            while churn && !done.load(Ordering::Relaxed) && !procs::interrupted() {
                std::thread::sleep(EVERY);
                p.signal(nix::sys::signal::Signal::SIGHUP);
                hups.fetch_add(1, Ordering::Relaxed);
            }
        });
        let m = shortconn(ctx, sb, &p, client_args, dir);
        done.store(true, Ordering::Relaxed);
        m
    })?;
    let st = common::stop_stack(p, &stats)?;
    let r: ShortConnReport = serde_json::from_str(m.report.trim())?;
    let mut x = client_metrics(&r);
    x.insert("sighups".into(), hups.load(Ordering::Relaxed) as f64);
    let replaced: u64 = st
        .workers
        .iter()
        .filter_map(|w| w.app["listeners_replaced"].as_u64())
        .sum();
    x.insert("listeners_replaced".into(), replaced as f64);
    let (mut mig, mut reset, mut dropped) = (0u64, 0u64, 0u64);
    if let Some(ls) = st.stack["listeners"].as_array() {
        for l in ls {
            mig += l["counters"]["migrated_out"].as_u64().unwrap_or(0);
            reset += l["counters"]["reset"].as_u64().unwrap_or(0);
            dropped += l["counters"]["dropped"].as_u64().unwrap_or(0);
        }
    }
    x.insert("migrated".into(), mig as f64);
    let flows: u64 = st.stack["listeners"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l["counters"]["flows"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    let accepted: u64 = st.stack["listeners"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l["counters"]["accepted"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    x.insert(
        "flows_not_accepted".into(),
        flows.saturating_sub(accepted) as f64,
    );
    let handoff_dropped: u64 = st
        .workers
        .iter()
        .filter_map(|w| w.engine["handoff_dropped"].as_u64())
        .sum();
    x.insert("handoff_dropped".into(), handoff_dropped as f64);
    x.insert("stack_reset".into(), reset as f64);
    x.insert("syn_dropped".into(), dropped as f64);
    x.insert("server_cpu_s".into(), m.server_cpu_s);
    common::add_core_metrics(&mut x, &m);
    Ok((x, m.placement))
}

fn kernel_run(
    ctx: &Ctx,
    sb: &lab::sandbox::Sandbox,
    workers: usize,
    cpus: &str,
    migrate_req: &str,
    client_args: &[String],
    dir: &std::path::Path,
) -> Result<(Metrics, Vec<procs::Placement>)> {
    env::run_in(
        sb,
        Side::Server,
        "sysctl",
        &[
            "-q",
            "-w",
            &format!("net.ipv4.tcp_migrate_req={migrate_req}"),
        ],
    )?;
    let got = env::run_in(
        sb,
        Side::Server,
        "sysctl",
        &["-n", "net.ipv4.tcp_migrate_req"],
    )?;
    if got.trim() != migrate_req {
        return procs::err(format!(
            "tcp_migrate_req is {} in the server namespace, wanted {migrate_req}",
            got.trim()
        ));
    }
    let p = common::start_khttp(
        ctx,
        sb,
        cpus,
        "kernel churn server",
        workers,
        "reuseport",
        &["--churn", &format!("{}ms", EVERY.as_millis())],
        dir,
    )?;
    let m = shortconn(ctx, sb, &p, client_args, dir)?;
    let server_cpu = m.server_cpu_s;
    let (out, _) = p.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    let r: ShortConnReport = serde_json::from_str(m.report.trim())?;
    let mut x = client_metrics(&r);
    if let Some(v) = out
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let replaced: u64 = v["threads"]
            .as_array()
            .map(|t| t.iter().filter_map(|x| x["replaced"].as_u64()).sum())
            .unwrap_or(0);
        x.insert("listeners_replaced".into(), replaced as f64);
    }
    x.insert("server_cpu_s".into(), server_cpu);
    common::add_core_metrics(&mut x, &m);
    Ok((x, m.placement))
}
