//! Scenario `http`: keep-alive and `Connection: close`, the stack against nginx (`listen
//! reuseport`), the same worker count, the same core, the same body; driven by wrk, and by
//! `pktgen --template http` (an HTTP client with its own TCP on an AF_XDP socket).
//!
//! Why two clients: on a veth pair the receive work of a packet runs on the core that sent it,
//! so with wrk the client kernel's TCP receive and teardown for every response runs on the
//! server's core, whichever server it is (about half the stack's core in `Connection: close`,
//! docs/ARCHITECTURE.md). The AF_XDP client leaves only an XDP redirect there, so the servers'
//! own costs set the figures. nginx keeps its advantage either way: its kernel's receive work
//! for each request runs on the client's core.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, HttpGenOpts, WrkOpts, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, ScenarioResult, Subject, Target};
use crate::procs::{BenchError, Result};
use lab::sandbox::Sandbox;

const STACK: &str = "xdpstack";
const NGINX: &str = "nginx";

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("nginx", "nginx-light"), ("wrk", "wrk")])?;
    let mut res = ctx.result(
        "http",
        "HTTP: keep-alive and Connection: close, xdpstack vs nginx",
    );
    let dir = env::scratch("http")?;
    let secs = ctx.pick(5, 2);
    // `XDPSTACK_BENCH_HTTP_CONNS=10000`: issue 20's `wrk -t1 -c10000` case
    // (both servers with their defaults).
    let conns: usize = std::env::var("XDPSTACK_BENCH_HTTP_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(50);
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server (xdpstack: 1 worker; nginx: 1 worker process, master too) pinned to core {server_cpu}; \
         wrk (1 thread) or pktgen (1 thread) pinned to core {client_cpu}."
    );

    let ([ssb, ksb], rx) = env::sandboxes(
        [("hs", ServerSide::Stack), ("hk", ServerSide::Kernel)],
        &server_cpu,
        &client_cpu,
    )?;
    res.cores.push_str(&format!(" {rx}."));
    let (stack, stack_stats) = common::start_stack(
        ctx,
        &ssb,
        &server_cpu,
        &["http"],
        &common::strings(&["--workers", "1"]),
        &dir,
        "xdpstack http",
    )?;
    if !env::wait_tcp(&ssb, SERVER_IP, 80, Duration::from_secs(15))? {
        return crate::procs::err(format!(
            "xdpstack http did not come up: {}",
            stack.stderr_tail()
        ));
    }
    let nginx = common::start_nginx(ctx, &ksb, &[0], 1, 4096, &dir)?;

    for (case_name, close) in [("keep-alive", false), ("Connection: close", true)] {
        let o = WrkOpts {
            conns,
            threads: 1,
            seconds: secs,
            close,
            timeout_s: 5,
            port: 80,
        };
        let mut case = Case {
            name: case_name.into(),
            load: format!(
                "wrk -t1 -c{conns} -d{secs}s --latency{}",
                if close { " -H 'Connection: close'" } else { "" }
            ),
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        common::wrk_rounds(
            ctx,
            &mut case,
            &[(&ssb, &stack, o.clone()), (&ksb, &nginx, o)],
            &client_cpu,
            &dir,
            (!close).then_some(&mut res.placement),
        )?;
        finish_case(&mut res, case);
    }

    for (case_name, close) in [
        ("keep-alive, AF_XDP client", false),
        ("Connection: close, AF_XDP client", true),
    ] {
        let o = HttpGenOpts {
            conns,
            inflight: 0,
            close,
            seconds: secs,
            addrs: 1,
            connect_rate: 0,
            marks: None,
        };
        let mut case = Case {
            name: case_name.into(),
            load: o.describe(),
            subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
            ratios: Vec::new(),
        };
        httpgen_rounds(
            ctx,
            &mut case,
            &[(&ssb, &stack, o.clone()), (&ksb, &nginx, o)],
            &client_cpu,
            &dir,
        )?;
        finish_case(&mut res, case);
    }

    let stats = common::stop_stack(stack, &stack_stats).ok();
    drop(nginx);
    if let Some(w) = stats.and_then(|s| s.workers.into_iter().next()) {
        res.notes.push(format!(
            "xdpstack worker 0 ran on core {}; its counters at exit: {}",
            w.core.map_or("null".to_string(), |c| c.to_string()),
            w.app
        ));
    }
    let why = |case: &str| {
        res.case(case)
            .map(|c| common::explain(c, STACK, NGINX, 0, ctx.ncpu - 1))
            .unwrap_or_default()
    };
    let mut targets = Vec::new();
    for (case, what, goal) in [
        (
            "keep-alive, AF_XDP client",
            "HTTP keep-alive req/s vs nginx (AF_XDP client)",
            1.5,
        ),
        (
            "Connection: close, AF_XDP client",
            "HTTP Connection: close req/s vs nginx (AF_XDP client)",
            2.5,
        ),
        ("keep-alive", "HTTP keep-alive req/s vs nginx (wrk)", 1.5),
        (
            "Connection: close",
            "HTTP Connection: close req/s vs nginx (wrk)",
            2.5,
        ),
    ] {
        let r = res.case(case).and_then(|c| c.ratio("rps", STACK, NGINX));
        targets.push(
            Target::threshold(what, &format!(">= {goal}x nginx"), r, goal, false).why(&why(case)),
        );
    }
    res.targets.extend(targets);
    res.notes.push(format!(
        "Same body ({} bytes) from both; nginx with keepalive_requests 1e9 (its default of \
         1000 would close wrk's keep-alive connections every 1000 requests), multi_accept on \
         (without it a busy worker accepts one connection per event loop, and connections \
         that arrive while it serves others wait seconds), access_log off.",
        crate::kernel::BODY.len()
    ));
    res.notes.push(
        "The AF_XDP client is `xdpstack pktgen --template http`: 50 connections, each sending \
         its next request as soon as its response is complete (closed loop, as wrk), or one \
         request per connection with `Connection: close` answered by FIN. Its TCP keeps a few \
         dozen bytes per connection and no timers but retransmission. Both sandboxes' kernel \
         sides send with checksums computed (`ethtool -K tx off`), as an AF_XDP receiver \
         needs; nginx pays that checksum on its core."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(ssb);
    drop(ksb);
    Ok(res)
}

/// `ctx.runs` rounds of `pktgen --template http`, each against every server in turn (as
/// [`common::wrk_rounds`]).
fn httpgen_rounds(
    ctx: &Ctx,
    case: &mut Case,
    servers: &[(&Sandbox, &crate::procs::Proc, HttpGenOpts)],
    client_cpu: &str,
    dir: &std::path::Path,
) -> Result<()> {
    for run in 0..ctx.runs {
        for (i, (sb, server, o)) in servers.iter().enumerate() {
            match common::run_httpgen(ctx, sb, server, client_cpu, o, dir) {
                Ok(m) => case.subjects[i].runs.push(common::httpgen_metrics(&m)),
                Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
                Err(e) => case.subjects[i].errors.push(format!("run {run}: {e}")),
            }
        }
    }
    Ok(())
}

/// Closes a case of the stack vs nginx: each subject's summary, their ratios, into `res`.
fn finish_case(res: &mut ScenarioResult, mut case: Case) {
    for s in &mut case.subjects {
        s.finish();
    }
    for m in ["rps", "server_cpu_ms_per_1k"] {
        case.add_ratio(m, STACK, NGINX);
    }
    res.cases.push(case);
}
