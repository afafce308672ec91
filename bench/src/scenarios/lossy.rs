//! Scenario `lossy`: bulk transfers through an impaired sandbox (1% loss, 20 ms ± 5 ms, 0.5%
//! reordering, 0.1% duplication each way, made by the sandbox's forwarder in a middle
//! namespace), the stack's echo with congestion control cubic, reno and none against the
//! kernel's TCP echo on the same interface and the same path (the sandbox is shared with the
//! kernel: the stack holds 10.112.0.1, the server namespace's kernel 10.112.0.3).
//!
//! The client is `xdpstack bench bulk` (kernel TCP, cubic): 100 parallel connections, each
//! pushing 10 MiB through the echo and checking every byte that comes back.

use std::path::Path;
use std::time::{Duration, Instant};

use lab::bulk::BulkReport;
use lab::impair::ImpairSpec;
use lab::sandbox::{self, Sandbox, SandboxSpec, Side};

use crate::common::{self, Ctx};
use crate::env;
use crate::model::{Case, ScenarioResult, Subject, Target};
use crate::procs::{self, Proc, Result};

const KERNEL: &str = "kernel";
const STACK_IP: &str = "10.112.0.1";
const KERNEL_IP: &str = "10.112.0.3";

/// The impairment of issue 11's target.
pub fn target_spec() -> ImpairSpec {
    ImpairSpec::lossy_wan(2024)
}

fn bulk(ctx: &Ctx, sb: &Sandbox, addr: &str, conns: u32, bytes: u64) -> Result<BulkReport> {
    let timeout = 900;
    let out = sb
        .command(Side::Client, "timeout")
        .args(["-k", "5", &(timeout + 30).to_string(), "taskset", "-c"])
        .arg(ctx.client_cpu())
        .arg(&ctx.bins.xdpstack)
        .args(["bench", "bulk", "--addr", addr, "--seed", "3"])
        .args(["--conns", &conns.to_string(), "--bytes", &bytes.to_string()])
        .args(["--timeout", &format!("{timeout}s")])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: BulkReport = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| {
            procs::BenchError::Msg(format!(
                "bulk client: no JSON ({e}, {}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })?;
    Ok(report)
}

fn metrics(r: &BulkReport) -> crate::model::Metrics {
    let mut m = crate::model::Metrics::new();
    for (k, v) in [
        ("transfer_s", Some(r.elapsed_s)),
        ("conn_median_s", r.conn_s.median),
        ("conn_max_s", r.conn_s.max),
        ("goodput_mib_s", Some(r.goodput_mib_s_each_way)),
        ("failed", Some(r.failed as f64)),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    m
}

/// A report as one line of JSON (for the log).
fn json_line(r: &BulkReport) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    let mut res = ctx.result(
        "lossy",
        "Bulk transfers on a lossy, slow, reordering path: xdpstack (cc cubic/reno/none) vs the kernel",
    );
    let dir = env::scratch("lossy")?;
    let (conns, bytes) = ctx.pick((100u32, 10u64 << 20), (20, 1 << 20));
    let spec = target_spec();
    let server_cpu = ctx.server_cpu();
    res.cores = format!(
        "servers (xdpstack echo, 1 worker; the kernel echo, a thread per connection) pinned to \
         core {server_cpu}; the bulk client (kernel TCP, 2 threads per connection) to core {}; \
         the impairing forwarder (one thread) unpinned in the middle namespace.",
        ctx.client_cpu()
    );
    let sb = Sandbox::up_impaired(
        &SandboxSpec {
            name: env::sandbox_name("ly"),
            queues: 1,
        },
        &spec,
        Path::new(&ctx.bins.xdpstack),
    )?;
    sb.share_with_kernel()?;
    let name = sb.info().name.clone();
    // Cubic on both kernel ends (the client and the kernel echo): this
    // machine's default is BBR, which a new namespace inherits; the stack
    // runs cubic, so the comparison is cubic against cubic.
    let _allow = env::AllowCc::new(&["cubic".to_string()])?;
    env::set_cc(&sb, "cubic")?;

    let ccs = ["cubic", "reno", "none"];
    let stack_names: Vec<String> = ccs.iter().map(|cc| format!("xdpstack {cc}")).collect();
    let mut case = Case {
        name: format!("{conns} x {} MiB each way", bytes >> 20),
        load: format!(
            "xdpstack bench bulk --conns {conns} --bytes {bytes} (echo; every byte checked) \
             through {spec}"
        ),
        subjects: std::iter::once(Subject::new(KERNEL))
            .chain(stack_names.iter().map(|n| Subject::new(n)))
            .collect(),
        ratios: Vec::new(),
    };
    let kernel = Proc::spawn(
        "kernel echo",
        &sb.info().server_ns,
        &server_cpu,
        &ctx.bins.xdpstack,
        &common::strings(&["bench", "kernel-echo", "--addr", KERNEL_IP, "--port", "7"]),
        &dir,
    )?;
    if !env::wait_tcp(&sb, KERNEL_IP, 7, Duration::from_secs(15))? {
        return procs::err(format!(
            "kernel echo did not come up: {}",
            kernel.stderr_tail()
        ));
    }
    for run in 0..ctx.runs {
        match bulk(ctx, &sb, KERNEL_IP, conns, bytes) {
            Ok(r) => {
                eprintln!("run {run} kernel: {}", json_line(&r));
                case.subjects[0].runs.push(metrics(&r));
            }
            Err(procs::BenchError::Interrupted) => return Err(procs::BenchError::Interrupted),
            Err(e) => case.subjects[0].errors.push(format!("run {run}: {e}")),
        }
        for (i, cc) in ccs.iter().enumerate() {
            let stats = dir.join(format!("stack-{cc}-{run}.json"));
            let args = common::strings(&[
                "echo",
                "--iface",
                "xdp0",
                "--addr",
                "10.112.0.1/24",
                "--cc",
                cc,
                "--report",
                &stats.display().to_string(),
            ]);
            let p = Proc::spawn_env(
                &format!("xdpstack echo {cc}"),
                &sb.info().server_ns,
                &server_cpu,
                &ctx.bins.xdpstack,
                &args,
                &dir,
                &[("RUST_LOG", "warn")],
            )?;
            if !env::wait_tcp(&sb, STACK_IP, 7, Duration::from_secs(15))? {
                case.subjects[i + 1]
                    .errors
                    .push(format!("run {run}: did not come up: {}", p.stderr_tail()));
                continue;
            }
            let r = bulk(ctx, &sb, STACK_IP, conns, bytes);
            let s = common::stop_stack(p, &stats);
            match r {
                Ok(r) => {
                    eprintln!("run {run} xdpstack {cc}: {}", json_line(&r));
                    let mut m = metrics(&r);
                    if let Some(w) = s.ok().and_then(|s| s.workers.into_iter().next()) {
                        let echoed = w.app["tcp_bytes"].as_f64().unwrap_or(0.0);
                        m.insert("server_echoed_mib".into(), echoed / (1 << 20) as f64);
                        if run == 0 {
                            case.subjects[i + 1].detail.push(format!(
                                "counters at exit: app {}, frame accounting {}",
                                w.app, w.frame_accounting
                            ));
                        }
                    }
                    case.subjects[i + 1].runs.push(m);
                }
                Err(procs::BenchError::Interrupted) => return Err(procs::BenchError::Interrupted),
                Err(e) => case.subjects[i + 1].errors.push(format!("run {run}: {e}")),
            }
        }
    }
    let _ = kernel.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    for s in &mut case.subjects {
        s.finish();
    }
    for n in &stack_names {
        case.add_ratio("transfer_s", n, KERNEL);
    }
    if let Some(f) = sandbox::forwarder_stats(&name) {
        res.notes.push(format!(
            "forwarder counters at the end: {}",
            serde_json::to_string(&f).unwrap_or_default()
        ));
    }
    let cubic = case.ratio("transfer_s", &stack_names[0], KERNEL);
    res.cases.push(case);
    res.targets.push(Target::threshold(
        "bulk transfer time on the lossy path vs the kernel (cubic on both sides)",
        "<= 1.0x the kernel's",
        cubic,
        1.0,
        true,
    ));
    res.notes.push(
        "Transfer time: from the first connect to the last byte checked, all connections in \
         parallel. The kernel peer is the server namespace's own TCP on the same xdp0, \
         behind the same forwarder; the kernel's congestion control is set to cubic in both \
         namespaces for the run (cubic allowed in the root namespace, restored after), so \
         the kernel's cubic meets the stack's cubic (before 2026-12-07 the kernel ran this \
         machine's default, BBR, unsaid)."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(sb);
    Ok(res)
}
