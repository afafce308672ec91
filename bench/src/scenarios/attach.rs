//! Scenario `attach`: HTTP keep-alive served by an unprivileged process attached to
//! `xdpstack daemon` (shared-memory rings to the daemon's worker), against the same server
//! in-process (`xdpstack http --iface`) and nginx, on the same core, with the same wrk load.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, WrkOpts, SERVER_CIDR, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, ScenarioResult, Subject, Target};
use crate::procs::{self, Proc, Result};

const INPROC: &str = "xdpstack in-process";
const ATTACHED: &str = "xdpstack attached";
const NGINX: &str = "nginx";
/// The attached server's port: above 1024, so that uid 65534 with no capabilities may bind it.
const PORT: u16 = 8080;

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[
        ("nginx", "nginx-light"),
        ("wrk", "wrk"),
        ("setpriv", "util-linux"),
    ])?;
    let mut res = ctx.result(
        "attach",
        "HTTP keep-alive: a process attached to the daemon vs in-process vs nginx",
    );
    let dir = env::scratch("attach")?;
    let secs = ctx.pick(5, 2);
    let conns = 50;
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "every server on core {server_cpu}: in-process xdpstack (1 worker); the daemon (1 \
         worker) and the attached `xdpstack http` process (uid 65534, no capabilities) both \
         pinned to it; nginx (1 worker process, master too). wrk (1 thread) on core \
         {client_cpu}."
    );
    let ([isb, dsb, ksb], rx) = env::sandboxes(
        [
            ("ai", ServerSide::Stack),
            ("ad", ServerSide::Stack),
            ("ak", ServerSide::Kernel),
        ],
        &server_cpu,
        &client_cpu,
    )?;
    res.cores.push_str(&format!(" {rx}."));

    let (inproc, inproc_stats) =
        common::start_http_stack(ctx, &isb, &server_cpu, &["--workers", "1"], &dir)?;

    // The daemon, its control socket open to every user (the attached process is uid 65534).
    let sock = dir.join("daemon.sock");
    let daemon_stats = dir.join("daemon-stats.json");
    let daemon = Proc::spawn_env(
        "xdpstack daemon",
        &dsb.info().server_ns,
        &server_cpu,
        &ctx.bins.xdpstack,
        &common::strings(&[
            "daemon",
            "--iface",
            "xdp0",
            "--addr",
            SERVER_CIDR,
            "--workers",
            "1",
            "--control",
            &sock.display().to_string(),
            "--control-mode",
            "666",
            "--report",
            &daemon_stats.display().to_string(),
        ]),
        &dir,
        &[("RUST_LOG", "warn")],
    )?;
    let up = procs::wait_until(Duration::from_secs(15), || sock.exists())?;
    if !up {
        return procs::err(format!(
            "the daemon's control socket did not appear: {}",
            daemon.stderr_tail()
        ));
    }
    let port = PORT.to_string();
    let attached = Proc::spawn(
        "xdpstack http --attach",
        &dsb.info().server_ns,
        &server_cpu,
        "setpriv",
        &common::strings(&[
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            &ctx.bins.xdpstack,
            "http",
            "--port",
            &port,
            "--attach",
            &sock.display().to_string(),
        ]),
        &dir,
    )?;
    if !env::wait_tcp(&dsb, SERVER_IP, PORT, Duration::from_secs(15))? {
        return procs::err(format!(
            "the attached server did not come up: {} / daemon: {}",
            attached.stderr_tail(),
            daemon.stderr_tail()
        ));
    }
    let nginx = common::start_nginx(ctx, &ksb, &[0], 1, 4096, &dir)?;

    let mut case = Case {
        name: "keep-alive".into(),
        load: format!("wrk -t1 -c{conns} -d{secs}s --latency (the attached server on port {PORT})"),
        subjects: vec![
            Subject::new(INPROC),
            Subject::new(ATTACHED),
            Subject::new(NGINX),
        ],
        ratios: Vec::new(),
    };
    // The server CPU counted for the attached subject is the daemon's only (the process the
    // load is measured against); the attached process shares its core.
    let wrk = |port| WrkOpts {
        conns,
        threads: 1,
        seconds: secs,
        close: false,
        timeout_s: 5,
        port,
    };
    common::wrk_rounds(
        ctx,
        &mut case,
        &[
            (&isb, &inproc, wrk(80)),
            (&dsb, &daemon, wrk(PORT)),
            (&ksb, &nginx, wrk(80)),
        ],
        &client_cpu,
        &dir,
        Some(&mut res.placement),
    )?;
    for s in &mut case.subjects {
        s.finish();
    }
    case.add_ratio("rps", ATTACHED, INPROC);
    case.add_ratio("rps", ATTACHED, NGINX);
    case.add_ratio("rps", INPROC, NGINX);
    res.cases.push(case);

    drop(attached);
    if let Some(w) = common::stop_stack(daemon, &daemon_stats)
        .ok()
        .and_then(|s| s.workers.into_iter().next())
    {
        res.notes
            .push(format!("daemon worker 0 counters at exit: {}", w.app));
    }
    let _ = common::stop_stack(inproc, &inproc_stats);
    drop(nginx);

    let c = &res.cases[0];
    for (name, want, of, min) in [
        ("in-process", ">= 0.8x in-process", INPROC, 0.8),
        ("nginx", ">= 1x nginx", NGINX, 1.0),
    ] {
        res.targets.push(Target::threshold(
            &format!("attached HTTP keep-alive req/s vs {name}"),
            want,
            c.ratio("rps", ATTACHED, of),
            min,
            false,
        ));
    }
    res.notes.push(
        "The attached subject is two processes on one core: the daemon's worker (the \
         engine, the XDP socket) and the application (HttpApp over the shared-memory rings). \
         Its server CPU columns count the daemon only."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(isb);
    drop(dsb);
    drop(ksb);
    Ok(res)
}
