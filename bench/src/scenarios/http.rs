//! Scenario `http`: keep-alive and `Connection: close` with wrk, the stack against nginx
//! (`listen reuseport`), the same worker count, the same core, the same body.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, WrkOpts, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, ScenarioResult, Subject, Target};
use crate::procs::Result;

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
    let conns = 50;
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server (xdpstack: 1 worker; nginx: 1 worker process, master too) pinned to core {server_cpu}; \
         wrk (1 thread) pinned to core {client_cpu}."
    );

    let ssb = env::sandbox("hs", 1, ServerSide::Stack)?;
    let ksb = env::sandbox("hk", 1, ServerSide::Kernel)?;
    let rx = env::receive_on_own_cores(&ssb, &server_cpu, &client_cpu)?;
    env::receive_on_own_cores(&ksb, &server_cpu, &client_cpu)?;
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
        for s in &mut case.subjects {
            s.finish();
        }
        for m in ["rps", "server_cpu_ms_per_1k"] {
            case.add_ratio(m, STACK, NGINX);
        }
        res.cases.push(case);
    }

    let stats = common::stop_stack(stack, &stack_stats).ok();
    drop(nginx);
    if let Some(s) = stats {
        let w = &s["workers"][0];
        res.notes.push(format!(
            "xdpstack worker 0 ran on core {}; its counters at exit: {}",
            w["core"], w["app"]
        ));
    }
    let ka = res
        .case("keep-alive")
        .and_then(|c| c.ratio("rps", STACK, NGINX));
    let cl = res
        .case("Connection: close")
        .and_then(|c| c.ratio("rps", STACK, NGINX));
    let why = |case: &str| {
        res.case(case)
            .map(|c| common::explain(c, STACK, NGINX, 0, ctx.ncpu - 1))
            .unwrap_or_default()
    };
    let (why_ka, why_cl) = (why("keep-alive"), why("Connection: close"));
    res.targets.push(
        Target::threshold(
            "HTTP keep-alive req/s vs nginx",
            ">= 1.5x nginx",
            ka,
            1.5,
            false,
        )
        .why(&why_ka),
    );
    res.targets.push(
        Target::threshold(
            "HTTP Connection: close req/s vs nginx",
            ">= 2.5x nginx",
            cl,
            2.5,
            false,
        )
        .why(&why_cl),
    );
    res.notes.push(format!(
        "Same body ({} bytes) from both; nginx with keepalive_requests 1e9 (its default of \
         1000 would close wrk's keep-alive connections every 1000 requests), access_log off.",
        crate::kernel::BODY.len()
    ));
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(ssb);
    drop(ksb);
    Ok(res)
}
