//! Scenario `steer`: what the stack's XDP filter costs. The same UDP echo
//! load (`xdpstack pktgen --template echo`, as fast as the rings take it)
//! against the same server with the program steering only the stack's
//! address (`--steer addr`: parse Ethernet/VLAN, IP, look the destination up
//! in a hash map) and steering every frame (`--steer all`: the old
//! behaviour, libxdp's program), side by side, alternating runs; once for
//! `xdpstack echo` and once for the raw reflector (where the AF_XDP path is
//! the whole cost, so the filter's share is largest).
//! Target: the filter costs at most 5% of the packets per second.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Target};
use crate::procs::{self, BenchError, Proc, Result};

const ECHO_ADDR: &str = "xdpstack echo, --steer addr";
const ECHO_ALL: &str = "xdpstack echo, --steer all";
const REFL_ADDR: &str = "raw reflector, --steer addr";
const REFL_ALL: &str = "raw reflector, --steer all";

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    let mut res = ctx.result(
        "steer",
        "The XDP filter's cost: UDP echo pps with --steer addr vs --steer all",
    );
    let dir = env::scratch("steer")?;
    let secs = ctx.pick(5.0, 2.0);
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "every server (one worker / one thread) pinned to core {server_cpu}; pktgen pinned to \
         core {client_cpu} (its sends and the veth hop run there too)."
    );
    res.notes.push(format!(
        "Load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    // One sandbox per server: one XDP program per interface.
    let sbs = [
        env::sandbox("sa", 1, ServerSide::Stack)?,
        env::sandbox("sl", 1, ServerSide::Stack)?,
        env::sandbox("ra", 1, ServerSide::Stack)?,
        env::sandbox("rl", 1, ServerSide::Stack)?,
    ];
    let names = [ECHO_ADDR, ECHO_ALL, REFL_ADDR, REFL_ALL];
    // Every server has the kernel time its XDP program (BPF run-time
    // statistics are global: while one process holds them on, every
    // program pays the two clock reads, so all four pay alike).
    let mut procs: Vec<Option<Proc>> = Vec::new();
    let mut stats_files: Vec<Option<std::path::PathBuf>> = Vec::new();
    for (i, steer) in ["addr", "all"].iter().enumerate() {
        let args = common::strings(&["--workers", "1", "--steer", steer, "--xdp-run-stats"]);
        let p = common::start_stack(ctx, &sbs[i], &server_cpu, &["echo"], &args, &dir, names[i]);
        match p {
            Ok((p, f)) => {
                procs.push(Some(p));
                stats_files.push(Some(f));
            }
            Err(_) => {
                procs.push(None);
                stats_files.push(None);
            }
        }
    }
    for (i, steer) in ["addr", "all"].iter().enumerate() {
        let f = dir.join(format!("reflect-{steer}.json"));
        let p = Proc::spawn(
            names[2 + i],
            &sbs[2 + i].info().server_ns,
            &server_cpu,
            &ctx.bins.xdpstack,
            &common::strings(&[
                "bench",
                "reflect",
                "--iface",
                "xdp0",
                "--queues",
                "1",
                "--addr",
                SERVER_IP,
                "--steer",
                steer,
                "--xdp-run-stats",
                "--report",
                &f.display().to_string(),
            ]),
            &dir,
        );
        procs.push(p.ok());
        stats_files.push(Some(f));
    }
    procs::sleep(Duration::from_millis(1500))?;
    for (i, p) in procs.iter_mut().enumerate() {
        if let Some(pp) = p.as_mut() {
            if !pp.running() {
                res.notes.push(format!(
                    "{} not measured: exited at start: {}",
                    names[i],
                    pp.stderr_tail()
                ));
                *p = None;
            }
        } else {
            res.notes
                .push(format!("{} not measured: did not start", names[i]));
        }
    }
    let load = load_args(secs);
    res.notes.push(format!(
        "Load: `xdpstack {}` against each server in turn, {} run(s), alternating addr/all.",
        load.join(" "),
        ctx.runs
    ));
    let pairs = [
        ("UDP echo, xdpstack", [0usize, 1usize]),
        ("UDP echo, raw reflector", [2, 3]),
    ];
    for (case_name, idx) in pairs {
        let mut case = Case {
            name: case_name.into(),
            load: load.join(" "),
            subjects: idx
                .iter()
                .map(|&i| crate::model::Subject::new(names[i]))
                .collect(),
            ratios: Vec::new(),
        };
        for run in 0..ctx.runs {
            for (k, &i) in idx.iter().enumerate() {
                let Some(p) = procs[i].as_ref() else { continue };
                let meas = common::measure(
                    &sbs[i],
                    p,
                    &client_cpu,
                    "pktgen",
                    &ctx.bins.xdpstack,
                    &load,
                    &dir,
                    Duration::from_secs_f64(secs + 20.0),
                )
                .and_then(|m| Ok((crate::parse::parse_pktgen(&m.report)?, m)));
                match meas {
                    Ok((g, m)) => {
                        let mut x = Metrics::new();
                        x.insert("pps".into(), g.answered_pps);
                        x.insert("sent".into(), g.sent as f64);
                        x.insert("received".into(), g.answered as f64);
                        x.insert("p50_us".into(), g.p50_us);
                        x.insert("p99_us".into(), g.p99_us);
                        x.insert("server_cpu_s".into(), m.server_cpu_s);
                        common::add_core_metrics(&mut x, &m);
                        case.subjects[k].runs.push(x);
                    }
                    Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
                    Err(e) => case.subjects[k].errors.push(format!("run {run}: {e}")),
                }
            }
        }
        for s in &mut case.subjects {
            s.finish();
        }
        case.add_ratio("pps", names[idx[0]], names[idx[1]]);
        res.cases.push(case);
    }
    for p in procs.iter_mut() {
        if let Some(p) = p.take() {
            let _ = p.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(5));
        }
    }
    // The program's own time per packet, from the kernel's BPF statistics.
    let mut ns = [None; 4];
    let mut runtime = Case {
        name: "XDP program run time".into(),
        load: "all the runs above; kernel BPF run-time statistics".into(),
        subjects: names
            .iter()
            .map(|n| crate::model::Subject::new(n))
            .collect(),
        ratios: Vec::new(),
    };
    for (i, f) in stats_files.iter().enumerate() {
        let Some(f) = f else { continue };
        let v: Option<serde_json::Value> = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let rs = v.as_ref().map(|v| v["xdp"]["run_stats"].clone());
        if let Some(n) = rs.as_ref().and_then(|r| r["ns_per_packet"].as_f64()) {
            ns[i] = Some(n);
            let mut x = Metrics::new();
            x.insert("ns_per_packet".into(), n);
            x.insert(
                "runs".into(),
                rs.as_ref().and_then(|r| r["runs"].as_f64()).unwrap_or(0.0),
            );
            runtime.subjects[i].runs.push(x);
        } else {
            runtime.subjects[i]
                .errors
                .push(format!("no run-time statistics in {}", f.display()));
        }
    }
    for s in &mut runtime.subjects {
        s.finish();
    }
    res.cases.push(runtime);
    res.notes.push(format!(
        "Load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    let echo = res
        .case("UDP echo, xdpstack")
        .and_then(|c| c.ratio("pps", ECHO_ADDR, ECHO_ALL));
    let refl = res
        .case("UDP echo, raw reflector")
        .and_then(|c| c.ratio("pps", REFL_ADDR, REFL_ALL));
    // The filter's extra time per packet as a share of the time per packet
    // at the rate `--steer all` reached: what it would cost in pps if the
    // server's core were the only bottleneck.
    let share = |a: Option<f64>, b: Option<f64>, case: &str, den: &str| -> Option<f64> {
        let pps = res
            .case(case)?
            .subjects
            .iter()
            .find(|s| s.name == den)?
            .median
            .get("pps")
            .copied()?;
        Some((a? - b?).max(0.0) * pps / 1e9)
    };
    let echo_share = share(ns[0], ns[1], "UDP echo, xdpstack", ECHO_ALL);
    let refl_share = share(ns[2], ns[3], "UDP echo, raw reflector", REFL_ALL);
    for (what, v, a, b) in [
        ("xdpstack echo", echo_share, ns[0], ns[1]),
        ("raw reflector", refl_share, ns[2], ns[3]),
    ] {
        res.notes.push(format!(
            "{what}: the XDP program ran {} ns per packet with --steer addr and {} ns with --steer all; the difference at the --steer all rate is {} of a core.",
            a.map_or("?".into(), |v| format!("{v:.0}")),
            b.map_or("?".into(), |v| format!("{v:.0}")),
            v.map_or("?".into(), |v| format!("{:.2}%", v * 100.0)),
        ));
    }
    res.targets.push(Target::threshold(
        "XDP filter time per packet, share of the per-packet budget (xdpstack echo)",
        "(ns addr - ns all) x pps(all) <= 5% of a core",
        echo_share,
        0.05,
        true,
    ));
    res.targets.push(Target::threshold(
        "XDP filter cost, UDP echo (xdpstack)",
        "--steer addr >= 95% of --steer all",
        echo,
        0.95,
        false,
    ));
    res.targets.push(Target::threshold(
        "XDP filter cost, raw reflector",
        "--steer addr >= 95% of --steer all",
        refl,
        0.95,
        false,
    ));
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(sbs);
    Ok(res)
}

fn load_args(secs: f64) -> Vec<String> {
    common::strings(&[
        "pktgen",
        "--iface",
        "peer0",
        "--queues",
        "1",
        "--template",
        "echo",
        "--dst",
        SERVER_IP,
        "--dst-port",
        "7",
        "--dst-mac",
        "02:78:73:00:00:01",
        "--src-port",
        "10000-10063",
        "--payload",
        "64",
        "--rate",
        "0",
        "--duration",
        &(secs.round().max(1.0) as u64).to_string(),
        "--quiet",
    ])
}
