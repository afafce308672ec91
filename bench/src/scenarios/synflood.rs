//! Scenario `synflood`: a spoofed SYN flood (`hping3 --flood --rand-source -S -p 80`, bounded
//! by `timeout`) from the client namespace against the stack's HTTP server and against nginx
//! (the same core placement as `http`), while a real client (curl, short connect timeout)
//! makes requests spread over the flood and the time after it. Reports the share of requests
//! that succeeded during and after the flood and the server's RSS growth (largest RSS seen
//! from the flood's start to the end of the probes, minus the RSS just before the flood).
//!
//! A fresh server for every run: a flood that leaves state behind must not hide in the next
//! run's "before". The stack's counters at exit (its --report) and the kernel's SYN cookie
//! and listen-queue counters (/proc/net/netstat of nginx's namespace) go next to the figures.

use std::time::{Duration, Instant};

use lab::sandbox::{Sandbox, Side};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, Proc, Result};

const STACK: &str = "xdpstack";
const NGINX: &str = "nginx";

/// Kernel counters (from /proc/net/netstat) recorded for nginx, as deltas over the run.
const KERNEL_COUNTERS: [&str; 7] = [
    "TcpExt.SyncookiesSent",
    "TcpExt.SyncookiesRecv",
    "TcpExt.SyncookiesFailed",
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.TCPReqQFullDrop",
];

/// Timing of one run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    flood_s: u64,
    after_s: u64,
    probes: usize,
    connect_timeout_s: u64,
    max_time_s: u64,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[
        ("nginx", "nginx-light"),
        ("hping3", "hping3"),
        ("curl", "curl"),
    ])?;
    let mut res = ctx.result(
        "synflood",
        "Spoofed SYN flood: real clients' success and server memory, xdpstack vs nginx",
    );
    let dir = env::scratch("synflood")?;
    let plan = Plan {
        flood_s: 10,
        after_s: ctx.pick(20, 10),
        probes: ctx.pick(100, 50),
        connect_timeout_s: 2,
        max_time_s: 3,
    };
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "server (xdpstack: 1 worker; nginx: 1 worker process, master too) pinned to core \
         {server_cpu}; hping3 and the curl probes pinned to core {client_cpu} (hping3 keeps \
         that core busy: the probes compete with it for it, as a real client on a flooded \
         link competes for the link)."
    );
    let ([ssb, ksb], rx) = env::sandboxes(
        [("fs", ServerSide::Stack), ("fk", ServerSide::Kernel)],
        &server_cpu,
        &client_cpu,
    )?;
    res.cores.push_str(&format!(" {rx}."));
    // Both servers get a route back to the spoofed sources, via the client: without one the
    // kernel drops a SYN it cannot answer before it keeps any state (ListenDrops), and the
    // comparison would be empty. The SYN-ACKs reach the client namespace, whose kernel (not a
    // router) drops them: backscatter, as on a real link.
    let client_ip = ssb
        .info()
        .client_ip4
        .split('/')
        .next()
        .unwrap_or("198.18.0.2")
        .to_string();
    env::run_in(
        &ksb,
        Side::Server,
        "ip",
        &[
            "route",
            "add",
            "default",
            "via",
            &client_ip,
            "dev",
            &ksb.info().server_if,
        ],
    )?;
    let syncookies = env::run_in(
        &ksb,
        Side::Server,
        "sysctl",
        &["-n", "net.ipv4.tcp_syncookies"],
    )
    .unwrap_or_default();

    let mut case = Case {
        name: "SYN flood".into(),
        load: format!(
            "timeout -s INT {f} hping3 --flood --rand-source -S -p 80 {SERVER_IP}; {p} curl \
             requests (--connect-timeout {c} -m {m}, one new connection each) started evenly \
             over the {f} s flood and {a} s after it",
            f = plan.flood_s,
            p = plan.probes,
            c = plan.connect_timeout_s,
            m = plan.max_time_s,
            a = plan.after_s
        ),
        subjects: vec![Subject::new(STACK), Subject::new(NGINX)],
        ratios: Vec::new(),
    };
    for run in 0..ctx.runs {
        for i in 0..2 {
            let r = if i == 0 {
                one_stack(ctx, &ssb, &server_cpu, &client_cpu, &client_ip, plan, &dir)
            } else {
                one_nginx(ctx, &ksb, &client_cpu, plan, &dir)
            };
            let r = r.map(|(x, detail, pl)| {
                if run == 0 {
                    res.placement.extend(pl);
                }
                (x, detail)
            });
            case.subjects[i].record(run, r)?;
        }
    }
    for s in &mut case.subjects {
        s.finish();
    }
    case.add_ratio("success_during_pct", STACK, NGINX);
    case.add_ratio("success_after_pct", STACK, NGINX);
    res.cases.push(case);
    let c = &res.cases[0];
    let med = |s: &str, m: &str| c.subject(s).and_then(|x| x.median.get(m).copied());
    // The target is on every run: the worst run's figures.
    let worst = |s: &str, m: &str, lowest: bool| {
        c.subject(s).and_then(|x| {
            x.runs
                .iter()
                .filter_map(|r| r.get(m).copied())
                .reduce(|a, b| if (a < b) == lowest { a } else { b })
        })
    };
    let succ = worst(STACK, "success_during_pct", true)
        .zip(worst(STACK, "success_after_pct", true))
        .map(|(a, b)| a.min(b));
    res.targets.push(
        Target::threshold(
            "SYN flood: real clients' requests that succeed (xdpstack, during and after, worst run)",
            ">= 99%",
            succ,
            99.0,
            false,
        )
        .why(&format!(
            "medians: during {}%, after {}%; nginx: during {}%, after {}%",
            med(STACK, "success_during_pct").map_or("–".into(), |v| format!("{v:.0}")),
            med(STACK, "success_after_pct").map_or("–".into(), |v| format!("{v:.0}")),
            med(NGINX, "success_during_pct").map_or("–".into(), |v| format!("{v:.0}")),
            med(NGINX, "success_after_pct").map_or("–".into(), |v| format!("{v:.0}")),
        )),
    );
    res.targets.push(Target::threshold(
        "SYN flood: xdpstack RSS growth, MiB (worst run)",
        "< 256 MiB",
        worst(STACK, "rss_growth_mib", false),
        256.0,
        true,
    ));
    res.notes.push(format!(
        "A fresh server for every run. Success: curl got `200` within its limits. RSS growth: \
         the largest RSS (process tree) sampled every 250 ms from the flood's start to the \
         last probe, minus the RSS just before the flood. nginx's namespace has \
         net.ipv4.tcp_syncookies = {}; its SYN cookie and listen-queue counters \
         (/proc/net/netstat, per namespace) are metrics `kernel.*`. Both servers have a route \
         back to the spoofed sources (the kernel: a default route via the client, 198.18.0.2; \
         the stack: --gateway 198.18.0.2), so both answer every SYN they keep; the SYN-ACKs \
         reach the client namespace, whose kernel drops them (backscatter).",
        syncookies.trim()
    ));
    res.notes.push(
        "The stack's counters at exit (its --report: every numeric field of worker 0's \
         engine and of the listener report) are in the results file as `stack.*` metrics; the \
         non-zero ones are listed under the table."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(ssb);
    drop(ksb);
    Ok(res)
}

type RunOut = (Metrics, String, Vec<procs::Placement>);

fn one_stack(
    ctx: &Ctx,
    sb: &Sandbox,
    server_cpu: &str,
    client_cpu: &str,
    gateway: &str,
    plan: Plan,
    dir: &std::path::Path,
) -> Result<RunOut> {
    let args = ["--workers", "1", "--gateway", gateway];
    let (p, stats) = common::start_http_stack(ctx, sb, server_cpu, &args, dir)?;
    let (mut x, pl) = flood(sb, &p, client_cpu, plan, dir)?;
    let st = common::stop_stack(p, &stats)?;
    let mut nums = Vec::new();
    if let Some(w) = st.workers.first() {
        crate::parse::flatten_numbers("stack.engine", &w.engine, &mut nums);
    }
    crate::parse::flatten_numbers("stack.listeners", &st.stack, &mut nums);
    let mut nonzero = Vec::new();
    for (k, v) in nums {
        if v != 0.0 {
            nonzero.push(format!("{} {}", k.trim_start_matches("stack."), v));
        }
        x.insert(k, v);
    }
    let detail = format!(
        "during {:.0}%, after {:.0}%; stack counters at exit (non-zero): {}",
        x.get("success_during_pct").copied().unwrap_or(0.0),
        x.get("success_after_pct").copied().unwrap_or(0.0),
        if nonzero.is_empty() {
            "none".into()
        } else {
            nonzero.join(", ")
        }
    );
    Ok((x, detail, pl))
}

fn one_nginx(
    ctx: &Ctx,
    sb: &Sandbox,
    client_cpu: &str,
    plan: Plan,
    dir: &std::path::Path,
) -> Result<RunOut> {
    let p = common::start_nginx(ctx, sb, &[0], 1, 4096, dir)?;
    let k0 = netstat(sb);
    let (mut x, pl) = flood(sb, &p, client_cpu, plan, dir)?;
    let k1 = netstat(sb);
    let mut parts = Vec::new();
    for k in KERNEL_COUNTERS {
        let d = k1
            .get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(k0.get(k).copied().unwrap_or(0));
        x.insert(format!("kernel.{k}"), d as f64);
        if d != 0 {
            parts.push(format!("{k} +{d}"));
        }
    }
    drop(p);
    let detail = format!(
        "during {:.0}%, after {:.0}%; kernel counters over the run: {}",
        x.get("success_during_pct").copied().unwrap_or(0.0),
        x.get("success_after_pct").copied().unwrap_or(0.0),
        if parts.is_empty() {
            "none changed".into()
        } else {
            parts.join(", ")
        }
    );
    Ok((x, detail, pl))
}

fn netstat(sb: &Sandbox) -> std::collections::BTreeMap<String, u64> {
    env::run_in(sb, Side::Server, "cat", &["/proc/net/netstat"])
        .map(|t| crate::parse::proc_net_counters(&t))
        .unwrap_or_default()
}

struct Probe {
    at_s: f64,
    proc: Option<Proc>,
    ok: Option<bool>,
    seconds: f64,
}

/// Floods `server` and probes it; returns the metrics and the placement of server and flood.
fn flood(
    sb: &Sandbox,
    server: &Proc,
    client_cpu: &str,
    plan: Plan,
    dir: &std::path::Path,
) -> Result<(Metrics, Vec<procs::Placement>)> {
    // A probe before the flood: the server answers at all.
    let pre = curl_once(sb, client_cpu, plan, dir)?;
    let loadavg1 = env::loadavg1();
    let rss_before = server.memory_kib().0;
    let cpu0 = server.cpu_ticks();
    let k0 = common::read_cpus();
    let t0 = Instant::now();
    let mut hping = Proc::spawn(
        "hping3",
        &sb.info().client_ns,
        client_cpu,
        "timeout",
        &common::strings(&[
            "-s",
            "INT",
            "-k",
            "3",
            &plan.flood_s.to_string(),
            "hping3",
            "--flood",
            "--rand-source",
            "-S",
            "-p",
            "80",
            SERVER_IP,
        ]),
        dir,
    )?;
    let total = (plan.flood_s + plan.after_s) as f64;
    let mut probes: Vec<Probe> = (0..plan.probes)
        .map(|i| Probe {
            at_s: total * i as f64 / plan.probes.max(1) as f64,
            proc: None,
            ok: None,
            seconds: 0.0,
        })
        .collect();
    let mut rss_max = rss_before;
    let mut placement = Vec::new();
    let mut cpu_flood = None;
    let mut cores_flood = Vec::new();
    let mut last_mem = Instant::now() - Duration::from_secs(1);
    let hard_end = t0 + Duration::from_secs_f64(total + plan.max_time_s as f64 + 15.0);
    loop {
        let now = t0.elapsed().as_secs_f64();
        for p in probes.iter_mut() {
            if p.proc.is_none() && p.ok.is_none() && now >= p.at_s {
                p.proc = Some(spawn_curl(sb, client_cpu, plan, dir)?);
                p.at_s = now;
            }
            if let Some(mut c) = p.proc.take() {
                if c.running() {
                    p.proc = Some(c);
                } else {
                    let (_, out, _) = c.wait(Duration::from_secs(1))?;
                    p.ok = Some(out.trim().starts_with("200"));
                    p.seconds = out
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0.0);
                }
            }
        }
        if last_mem.elapsed() >= Duration::from_millis(250) {
            last_mem = Instant::now();
            rss_max = rss_max.max(server.memory_kib().0);
        }
        if placement.is_empty() && now > 1.0 && hping.running() {
            placement.push(server.placement());
            placement.push(hping.placement());
        }
        if cpu_flood.is_none() && (!hping.running() || now >= plan.flood_s as f64 + 1.0) {
            cpu_flood = Some((server.cpu_ticks(), now));
            cores_flood = common::core_usage(&k0, &common::read_cpus());
        }
        if probes.iter().all(|p| p.ok.is_some()) && !hping.running() {
            break;
        }
        if Instant::now() >= hard_end {
            // Probes still running past every limit count as failed.
            for p in probes.iter_mut().filter(|p| p.ok.is_none()) {
                p.ok = Some(false);
                p.proc = None;
            }
            break;
        }
        procs::sleep(Duration::from_millis(20))?;
    }
    rss_max = rss_max.max(server.memory_kib().0);
    let (hout, herr) = hping.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(3));
    let sent = crate::parse::parse_hping3(&format!("{hout}\n{herr}")).map(|(tx, _)| tx);
    let cpu1 = server.cpu_ticks();
    let post = curl_once(sb, client_cpu, plan, dir)?;

    let flood_s = plan.flood_s as f64;
    let (during, after): (Vec<&Probe>, Vec<&Probe>) = probes.iter().partition(|p| p.at_s < flood_s);
    let pct = |v: &[&Probe]| {
        if v.is_empty() {
            0.0
        } else {
            100.0 * v.iter().filter(|p| p.ok == Some(true)).count() as f64 / v.len() as f64
        }
    };
    let mut x = Metrics::new();
    x.insert("loadavg1_before".into(), loadavg1);
    x.insert("probes_during".into(), during.len() as f64);
    x.insert("probes_after".into(), after.len() as f64);
    x.insert("success_during_pct".into(), pct(&during));
    x.insert("success_after_pct".into(), pct(&after));
    x.insert(
        "failed".into(),
        probes.iter().filter(|p| p.ok != Some(true)).count() as f64,
    );
    // When the last failure started, seconds from the flood's start (0 if none failed).
    x.insert(
        "last_failure_at_s".into(),
        probes
            .iter()
            .filter(|p| p.ok != Some(true))
            .map(|p| p.at_s)
            .fold(0.0, f64::max),
    );
    let mut times: Vec<f64> = probes
        .iter()
        .filter(|p| p.ok == Some(true))
        .map(|p| p.seconds * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    if let Some(m) = crate::stats::median(&times) {
        x.insert("probe_p50_ms".into(), m);
    }
    if let Some(m) = times.last() {
        x.insert("probe_max_ms".into(), *m);
    }
    x.insert("pre_flood_ok".into(), f64::from(u8::from(pre)));
    x.insert("post_run_ok".into(), f64::from(u8::from(post)));
    x.insert("rss_before_kib".into(), rss_before as f64);
    x.insert("rss_max_kib".into(), rss_max as f64);
    x.insert(
        "rss_growth_mib".into(),
        rss_max.saturating_sub(rss_before) as f64 / 1024.0,
    );
    if let Ok(sent) = sent {
        x.insert("flood_syns".into(), sent as f64);
        x.insert("flood_pps".into(), sent as f64 / flood_s);
    }
    if let Some((c, at)) = cpu_flood {
        x.insert(
            "server_cpu_flood_pct".into(),
            100.0 * procs::ticks_to_s(cpu0, c) / at.max(1e-3),
        );
    }
    x.insert("server_cpu_s".into(), procs::ticks_to_s(cpu0, cpu1));
    // Where the flood's cost landed (the kernel's SYN handling is softirq, charged to no
    // process): every core's busy and softirq share over the flood.
    for (i, (busy, si)) in cores_flood.iter().enumerate() {
        x.insert(format!("core{i}_busy_pct"), *busy);
        x.insert(format!("core{i}_softirq_pct"), *si);
    }
    Ok((x, placement))
}

fn curl_args(plan: Plan) -> Vec<String> {
    common::strings(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{time_total}",
        "--connect-timeout",
        &plan.connect_timeout_s.to_string(),
        "-m",
        &plan.max_time_s.to_string(),
        "-H",
        "Connection: close",
        &format!("http://{SERVER_IP}/"),
    ])
}

fn spawn_curl(sb: &Sandbox, cpu: &str, plan: Plan, dir: &std::path::Path) -> Result<Proc> {
    Proc::spawn(
        "curl",
        &sb.info().client_ns,
        cpu,
        "curl",
        &curl_args(plan),
        dir,
    )
}

fn curl_once(sb: &Sandbox, cpu: &str, plan: Plan, dir: &std::path::Path) -> Result<bool> {
    let p = spawn_curl(sb, cpu, plan, dir)?;
    let (_, out, _) = p.wait(Duration::from_secs(plan.max_time_s + 5))?;
    Ok(out.trim().starts_with("200"))
}
