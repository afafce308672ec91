//! Scenario `udp`: UDP echo and DNS. The stack (`xdpstack echo`, `xdpstack dns`) against the
//! kernel path (a SO_REUSEPORT recvmmsg/sendmmsg echo server of this crate; knotd for DNS, the
//! same zone, the same core) and the raw AF_XDP reflector (`xdpstack bench reflect`).
//! Packets per second and round-trip latency percentiles.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::load::UdpLoadReport;
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, BenchError, Proc, Result};

const STACK_ECHO: &str = "xdpstack echo";
const STACK_DNS: &str = "xdpstack dns";
const KERNEL_ECHO: &str = "kernel echo (reuseport, mmsg)";
const KNOT: &str = "knotd";
const REFLECT: &str = "raw reflector";

/// The zone every DNS server serves (also used by `dnstcp`).
pub const ZONE: &str = "$ORIGIN bench.test.
$TTL 3600
@       IN SOA ns1.bench.test. hostmaster.bench.test. 1 7200 3600 1209600 3600
@       IN NS  ns1.bench.test.
ns1     IN A   198.18.0.1
www     IN A   198.18.0.80
";

/// The name every DNS query asks for.
pub const QNAME: &str = "www.bench.test";

struct Server {
    name: &'static str,
    proc: Option<Proc>,
    sandbox: usize,
    port: u16,
    error: Option<String>,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("knotd", "knot")])?;
    let mut res = ctx.result(
        "udp",
        "UDP echo and DNS: xdpstack vs the kernel path vs the raw AF_XDP reflector",
    );
    let dir = env::scratch("udp")?;
    let secs = ctx.pick(5.0, 2.0);
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "every server (one worker / one thread) pinned to core {server_cpu}; the load generator \
         pinned to core {client_cpu} (its kernel UDP sends and the veth hop run there too)."
    );
    let zone = dir.join("bench.test.zone");
    std::fs::write(&zone, ZONE)?;

    // One sandbox per server: an XDP program owns its interface.
    let (sbs, rx) = env::sandboxes(
        [
            ("ue", ServerSide::Stack),
            ("ud", ServerSide::Stack),
            ("ur", ServerSide::Stack),
            ("uk", ServerSide::Kernel),
        ],
        &server_cpu,
        &client_cpu,
    )?;
    res.cores.push_str(&format!(" {rx}."));
    let mut servers: Vec<Server> = Vec::new();
    let one = common::strings(&["--workers", "1"]);
    let stack_echo =
        common::start_stack(ctx, &sbs[0], &server_cpu, &["echo"], &one, &dir, STACK_ECHO);
    servers.push(server(STACK_ECHO, 0, 7, stack_echo.map(|(p, _)| p)));
    let mut dns_args = one.clone();
    dns_args.extend(common::strings(&["--zone", &zone.display().to_string()]));
    let stack_dns = common::start_stack(
        ctx,
        &sbs[1],
        &server_cpu,
        &["dns"],
        &dns_args,
        &dir,
        STACK_DNS,
    );
    servers.push(server(STACK_DNS, 1, 53, stack_dns.map(|(p, _)| p)));
    let refl = Proc::spawn(
        REFLECT,
        &sbs[2].info().server_ns,
        &server_cpu,
        &ctx.bins.xdpstack,
        &common::strings(&[
            "bench", "reflect", "--iface", "xdp0", "--queues", "1", "--addr", SERVER_IP,
        ]),
        &dir,
    );
    servers.push(server(REFLECT, 2, 7, refl));
    let kecho = common::helper(
        ctx,
        &sbs[3].info().server_ns,
        &server_cpu,
        KERNEL_ECHO,
        &common::strings(&[
            "kudp",
            "--bind",
            &format!("{SERVER_IP}:7"),
            "--threads",
            "1",
            "--cpus",
            &server_cpu,
        ]),
        &dir,
    );
    servers.push(server(KERNEL_ECHO, 3, 7, kecho));
    let knot = start_knot(&sbs[3], &server_cpu, &zone, &dir);
    servers.push(server(KNOT, 3, 53, knot));

    // Give every server time to open its sockets; a server that died is recorded as such.
    procs::sleep(Duration::from_millis(1500))?;
    for s in servers.iter_mut() {
        if let Some(p) = s.proc.as_mut() {
            if !p.running() {
                let tail = p.stderr_tail();
                s.error = Some(format!("exited at start: {tail}"));
                s.proc = None;
            }
        }
    }
    for s in &servers {
        if let Some(e) = &s.error {
            res.notes.push(format!("{} not measured: {e}", s.name));
        }
    }

    let pktgen = pktgen_available(ctx);
    res.notes.push(if pktgen {
        "Load generator: `xdpstack pktgen` (AF_XDP on the client's veth end, open loop): \
         throughput cases send as fast as the rings take frames (--rate 0) and count answers; \
         latency cases send 20,000 packets/s. The same generator for every server."
            .to_string()
    } else {
        "Load generator: this crate's closed-loop kernel UDP client (udpload), the same for \
         every server (`xdpstack pktgen` was not available in this build). It is one thread on \
         one core; when it saturates its core the figures bound the generator, not the server."
            .to_string()
    });
    let loads: [(&str, &str, bool, &[&str]); 4] = [
        (
            "echo, throughput",
            "echo",
            false,
            &[KERNEL_ECHO, STACK_ECHO, REFLECT],
        ),
        (
            "echo, latency",
            "echo",
            true,
            &[KERNEL_ECHO, STACK_ECHO, REFLECT],
        ),
        ("DNS, throughput", "dns", false, &[KNOT, STACK_DNS, REFLECT]),
        ("DNS, latency", "dns", true, &[KNOT, STACK_DNS]),
    ];
    for (name, mode, latency, who) in loads {
        let describe = |m: &str| {
            if pktgen {
                load_pktgen(m, if m == "dns" { 53 } else { 7 }, secs, latency).join(" ")
            } else {
                load_udpload(m, if m == "dns" { 53 } else { 7 }, secs, latency).join(" ")
            }
        };
        let mut case = Case {
            name: name.into(),
            load: format!(
                "{}{}",
                describe(mode),
                if mode == "dns" {
                    " (the reflector gets the echo load: it cannot answer DNS)"
                } else {
                    ""
                }
            ),
            subjects: who.iter().map(|n| Subject::new(n)).collect(),
            ratios: Vec::new(),
        };
        for run in 0..ctx.runs {
            for (i, who) in who.iter().enumerate() {
                let Some(s) = servers.iter().find(|s| s.name == *who) else {
                    continue;
                };
                let Some(p) = s.proc.as_ref() else {
                    continue;
                };
                // The reflector only echoes.
                let m = if s.name == REFLECT { "echo" } else { mode };
                let (program, args, label) = if pktgen {
                    (
                        ctx.bins.xdpstack.as_str(),
                        load_pktgen(m, s.port, secs, latency),
                        "pktgen",
                    )
                } else {
                    (
                        ctx.bins.bench.as_str(),
                        load_udpload(m, s.port, secs, latency),
                        "udpload",
                    )
                };
                let sb = &sbs[s.sandbox];
                let meas = common::measure(
                    sb,
                    p,
                    &client_cpu,
                    label,
                    program,
                    &args,
                    &dir,
                    Duration::from_secs_f64(secs + 20.0),
                )
                .and_then(|meas| {
                    let r = if pktgen {
                        let g = crate::parse::parse_pktgen(&meas.report)?;
                        UdpLoadReport {
                            sent: g.sent,
                            received: g.answered,
                            lost: g.sent.saturating_sub(g.answered),
                            bad: 0,
                            seconds: g.send_seconds,
                            pps: g.answered_pps,
                            p50_us: g.p50_us,
                            p90_us: g.p90_us,
                            p99_us: g.p99_us,
                            p999_us: g.p999_us,
                            mean_us: 0.0,
                        }
                    } else {
                        serde_json::from_str(meas.report.trim())?
                    };
                    Ok((meas, r))
                });
                match meas {
                    Ok((meas, r)) => {
                        if run == 0 && !latency && mode == "echo" {
                            res.placement.extend(meas.placement.iter().cloned());
                        }
                        let mut x = Metrics::new();
                        x.insert("pps".into(), r.pps);
                        x.insert("sent".into(), r.sent as f64);
                        x.insert("received".into(), r.received as f64);
                        x.insert("lost".into(), r.lost as f64);
                        x.insert("bad".into(), r.bad as f64);
                        x.insert("p50_us".into(), r.p50_us);
                        x.insert("p99_us".into(), r.p99_us);
                        x.insert("p999_us".into(), r.p999_us);
                        x.insert("server_cpu_s".into(), meas.server_cpu_s);
                        x.insert("client_cpu_s".into(), meas.client_cpu_s);
                        if let Some(v) =
                            crate::stats::cpu_per_1k(meas.server_cpu_s, r.received as f64)
                        {
                            x.insert("server_cpu_ms_per_1k".into(), v * 1000.0);
                        }
                        common::add_core_metrics(&mut x, &meas);
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
        let (stack, kernel) = if mode == "echo" {
            (STACK_ECHO, KERNEL_ECHO)
        } else {
            (STACK_DNS, KNOT)
        };
        case.add_ratio("pps", stack, kernel);
        case.add_ratio("pps", stack, REFLECT);
        case.add_ratio("p99_us", stack, kernel);
        res.cases.push(case);
    }
    for s in servers.iter_mut() {
        if let Some(p) = s.proc.take() {
            let (out, _) = p.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(5));
            if s.name == KERNEL_ECHO {
                res.notes
                    .push(format!("kernel echo server at exit: {}", out.trim()));
            }
        }
    }

    let r =
        |case: &str, num: &str, den: &str| res.case(case).and_then(|c| c.ratio("pps", num, den));
    let echo_k = r("echo, throughput", STACK_ECHO, KERNEL_ECHO);
    let echo_r = r("echo, throughput", STACK_ECHO, REFLECT);
    let dns_k = r("DNS, throughput", STACK_DNS, KNOT);
    let dns_r = r("DNS, throughput", STACK_DNS, REFLECT);
    let last = ctx.ncpu - 1;
    let why = |v: Option<f64>, case: &str, a: &str, b: &str| match v {
        None => format!("{a} or {b} could not be measured (see notes)"),
        Some(_) => res
            .case(case)
            .map(|c| common::explain(c, a, b, 0, last))
            .unwrap_or_default(),
    };
    let t = [
        Target::threshold(
            "UDP echo pps vs kernel",
            ">= 2x the kernel path",
            echo_k,
            2.0,
            false,
        )
        .why(&why(echo_k, "echo, throughput", STACK_ECHO, KERNEL_ECHO)),
        Target::threshold(
            "UDP echo pps vs raw reflector",
            ">= 80% of the raw reflector",
            echo_r,
            0.8,
            false,
        )
        .why(&why(echo_r, "echo, throughput", STACK_ECHO, REFLECT)),
        Target::threshold(
            "DNS pps vs knotd",
            ">= 2x the kernel path",
            dns_k,
            2.0,
            false,
        )
        .why(&why(dns_k, "DNS, throughput", STACK_DNS, KNOT)),
        Target::threshold(
            "DNS pps vs raw reflector",
            ">= 80% of the raw reflector",
            dns_r,
            0.8,
            false,
        )
        .why(&why(dns_r, "DNS, throughput", STACK_DNS, REFLECT)),
    ];
    res.targets.extend(t);
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(sbs);
    Ok(res)
}

/// True if this build's `xdpstack pktgen` is the real generator (not a placeholder).
fn pktgen_available(ctx: &Ctx) -> bool {
    std::process::Command::new(&ctx.bins.xdpstack)
        .args(["pktgen", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--template"))
        .unwrap_or(false)
}

/// Throughput: as fast as possible; latency: a moderate fixed rate (pktgen) or one datagram
/// in flight (udpload).
const LATENCY_RATE: u64 = 20_000;

/// pktgen's and the reflector's own `--cores` is not used: taskset pins them, and their
/// default placement picks from the cores taskset allows.
fn load_pktgen(mode: &str, port: u16, secs: f64, latency: bool) -> Vec<String> {
    let rate = if latency { LATENCY_RATE } else { 0 };
    common::strings(&[
        "pktgen",
        "--iface",
        "peer0",
        "--queues",
        "1",
        "--template",
        mode,
        "--dst",
        SERVER_IP,
        "--dst-port",
        &port.to_string(),
        "--dst-mac",
        "02:78:73:00:00:01",
        "--src-port",
        "10000-10063",
        "--payload",
        "64",
        "--qname",
        QNAME,
        "--rate",
        &rate.to_string(),
        "--duration",
        &(secs.round().max(1.0) as u64).to_string(),
        "--quiet",
    ])
}

fn load_udpload(mode: &str, port: u16, secs: f64, latency: bool) -> Vec<String> {
    let (sockets, window) = if latency { ("1", "1") } else { ("4", "32") };
    common::strings(&[
        "helper",
        "udpload",
        "--dst",
        &format!("{SERVER_IP}:{port}"),
        "--mode",
        mode,
        "--sockets",
        sockets,
        "--window",
        window,
        "--seconds",
        &format!("{secs}s"),
        "--qname",
        QNAME,
    ])
}

fn server(name: &'static str, sandbox: usize, port: u16, p: Result<Proc>) -> Server {
    match p {
        Ok(p) => Server {
            name,
            proc: Some(p),
            sandbox,
            port,
            error: None,
        },
        Err(e) => Server {
            name,
            proc: None,
            sandbox,
            port,
            error: Some(e.to_string()),
        },
    }
}

/// knotd as dnstcp starts it without XDP: the same configuration.
fn start_knot(
    sb: &lab::sandbox::Sandbox,
    cpu: &str,
    zone: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Proc> {
    super::dnstcp::start_knot(sb, cpu, zone, dir, false, KNOT)
}
