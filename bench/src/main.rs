//! `xdpstack-bench`: the benchmark scenarios of xdpstack, their results and docs.
//!
//! ```text
//! cargo run --release -p xdpstack-bench -- <scenario>|all [--runs 3] [--quick]
//! cargo run --release -p xdpstack-bench -- report
//! ```
//!
//! Scenarios: `http`, `udp`, `fairness`, `churn`, `conns`, `synflood`, `neighflood`, `dnstcp`, `lossy`. Each builds its own sandboxes
//! (network namespaces with unique names), starts the servers and load tools pinned to cores,
//! writes `bench/results/SCENARIO.json` and regenerates `docs/BENCHMARKS.md` and
//! `docs/bench/*.png`. Ctrl-C stops the load, the servers and tears the sandboxes down.
#![deny(unsafe_code)]

mod common;
mod env;
mod kernel;
mod load;
mod model;
mod parse;
mod procs;
mod report;
mod scenarios;
mod stats;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xdpstack-bench", about = "xdpstack benchmark scenarios")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Runs per measurement (the median is reported). Default: 3, or 1 with --quick.
    #[arg(long, global = true)]
    runs: Option<usize>,
    /// Smoke mode: short durations, fewer connections, 1 run unless --runs is given.
    #[arg(long, global = true)]
    quick: bool,
    /// Before each scenario, wait up to this long (`150s`, `2m`; a bare number is seconds)
    /// for the 1-minute load average to fall below 0.5 (the previous scenario's own load
    /// decays over a minute or two); 0 starts at once. The load at the start is in each
    /// result either way.
    #[arg(long, global = true, default_value = "150s", value_parser = runtime::duration::parse)]
    settle: Duration,
}

#[derive(Subcommand)]
enum Cmd {
    /// HTTP keep-alive and Connection: close, xdpstack vs nginx (wrk and the AF_XDP client pktgen http).
    Http,
    /// UDP echo and DNS: xdpstack vs kernel vs raw AF_XDP reflector.
    Udp,
    /// The XDP filter's cost: UDP echo pps with --steer addr vs --steer all.
    Steer,
    /// Connections per worker: kernel shared listener, kernel reuseport, xdpstack hash/queue.
    Fairness,
    /// Failed connections while listeners are replaced every 100 ms.
    Churn,
    /// req/s, server memory and CPU per request at 100, 1k, 10k, 100k concurrent connections.
    Conns,
    /// Spoofed SYN flood (hping3): real clients' success and server RSS, xdpstack vs nginx.
    Synflood,
    /// IPv6 neighbour flood from 1k/100k/1M on-link sources (pktgen ns): CPU per flood packet
    /// and a real IPv6 client's success.
    Neighflood,
    /// DNS over TCP, one query per connection (kxdpgun -T): xdpstack vs knotd vs Knot XDP.
    Dnstcp,
    /// Bulk transfers through an impaired sandbox (1% loss, 20 ms ± 5 ms,
    /// reordering, duplication): xdpstack with cc cubic/reno/none vs the kernel.
    Lossy,
    /// HTTP keep-alive from an unprivileged process attached to `xdpstack daemon`, vs the
    /// same server in-process and nginx.
    Attach,
    /// Downloads over a long, lossy, bottlenecked path (issue 19): xdpstack http (defaults) vs
    /// nginx with the kernel's cubic and BBR. Long: not in `all` (bench/README.md).
    Wan,
    /// Goodput vs offered load, 0.5x to 10x capacity, two runs per level on one server process.
    Overload,
    /// Every scenario, one after the other.
    All,
    /// Regenerate docs/BENCHMARKS.md and the plots from bench/results.
    Report,
    /// Processes the runner starts inside the namespaces (not for direct use).
    #[command(hide = true)]
    Helper {
        #[command(subcommand)]
        cmd: HelperCmd,
    },
}

/// Where a kernel server listens and on which cores its threads run.
#[derive(clap::Args)]
struct KernelServer {
    #[arg(long)]
    bind: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value = "0")]
    cpus: String,
}

#[derive(Subcommand)]
enum HelperCmd {
    /// Kernel UDP echo server (SO_REUSEPORT, recvmmsg/sendmmsg).
    Kudp {
        #[command(flatten)]
        server: KernelServer,
    },
    /// Kernel HTTP server for short connections.
    Khttp {
        #[command(flatten)]
        server: KernelServer,
        #[arg(long, value_enum)]
        mode: kernel::ListenMode,
        /// Replace every thread's listener this often (reuseport mode): `100ms`.
        #[arg(long, value_parser = runtime::duration::parse)]
        churn: Option<Duration>,
    },
    /// Closed-loop UDP load generator (prints a JSON report).
    Udpload {
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long, value_enum, default_value = "echo")]
        mode: load::UdpMode,
        #[arg(long, default_value_t = 4)]
        sockets: usize,
        #[arg(long, default_value_t = 32)]
        window: u64,
        #[arg(long, default_value = "5s", value_parser = runtime::duration::parse)]
        seconds: Duration,
        #[arg(long, default_value_t = 100_000_000)]
        max_packets: u64,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value = "www.bench.test")]
        qname: String,
    },
    /// Keep-alive HTTP load over many connections, each on its own bound source port.
    Kaload {
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long)]
        src: std::net::IpAddr,
        #[arg(long)]
        port_first: u16,
        #[arg(long)]
        port_count: u16,
        #[arg(long)]
        conns: u64,
        #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
        seconds: Duration,
        #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
        timeout: Duration,
        /// Count responses only after this long (the steady phase).
        #[arg(long, default_value = "0s", value_parser = runtime::duration::parse)]
        steady_after: Duration,
    },
    /// Short HTTP connections (prints a JSON report).
    Shortconn {
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        conns: u64,
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
        #[arg(long, default_value = "60s", value_parser = runtime::duration::parse)]
        seconds: Duration,
        #[arg(long, default_value = "3s", value_parser = runtime::duration::parse)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if let Cmd::Helper { cmd } = cli.cmd {
        return helper(cmd);
    }
    match runner(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(procs::BenchError::Interrupted) => {
            eprintln!("xdpstack-bench: interrupted; sandboxes torn down");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("xdpstack-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn helper(cmd: HelperCmd) -> ExitCode {
    let r: Result<(), Box<dyn std::error::Error>> = match cmd {
        HelperCmd::Kudp { server: s } => {
            kernel::kudp(s.bind, s.threads, &kernel::parse_cpus(&s.cpus)).map_err(Into::into)
        }
        HelperCmd::Khttp {
            server: s,
            mode,
            churn,
        } => kernel::khttp(s.bind, s.threads, &kernel::parse_cpus(&s.cpus), mode, churn)
            .map_err(Into::into),
        HelperCmd::Udpload {
            dst,
            mode,
            sockets,
            window,
            seconds,
            max_packets,
            payload,
            qname,
        } => load::udpload(
            dst,
            mode,
            sockets,
            window,
            seconds.as_secs_f64().clamp(0.1, 600.0),
            max_packets,
            payload,
            &qname,
        )
        .map_err(Into::into)
        .and_then(|r| print_json(&r)),
        HelperCmd::Kaload {
            dst,
            src,
            port_first,
            port_count,
            conns,
            seconds,
            timeout,
            steady_after,
        } => load::kaload(
            dst,
            src,
            port_first..port_first.saturating_add(port_count),
            conns,
            seconds.as_secs_f64().clamp(0.1, 600.0),
            timeout,
            steady_after.as_secs_f64(),
        )
        .map_err(Into::into)
        .and_then(|r| print_json(&r)),
        HelperCmd::Shortconn {
            dst,
            conns,
            concurrency,
            seconds,
            timeout,
        } => {
            let r = load::shortconn(
                dst,
                conns,
                concurrency,
                seconds.as_secs_f64().clamp(0.1, 600.0),
                timeout,
            );
            print_json(&r)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdpstack-bench helper: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A helper's report on stdout, as one line of JSON.
fn print_json(r: &impl serde::Serialize) -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", serde_json::to_string(r)?);
    Ok(())
}

fn runner(cli: &Cli) -> procs::Result<()> {
    if matches!(cli.cmd, Cmd::Report) {
        let p = report::regenerate()?;
        println!("wrote {}", p.display());
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return procs::err("the scenarios need root (network namespaces, AF_XDP)");
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, procs::stop_flag().clone())?;
    }
    // Many connections: raise the open-file limit for us and everything we start, as far as
    // we may (without CAP_SYS_RESOURCE the hard limit is the ceiling).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if setrlimit(Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20).is_err() {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    let ctx = common::Ctx {
        bins: env::bins()?,
        quick: cli.quick,
        runs: cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let which: Vec<&str> = match cli.cmd {
        Cmd::Http => vec!["http"],
        Cmd::Udp => vec!["udp"],
        Cmd::Steer => vec!["steer"],
        Cmd::Fairness => vec!["fairness"],
        Cmd::Churn => vec!["churn"],
        Cmd::Conns => vec!["conns"],
        Cmd::Synflood => vec!["synflood"],
        Cmd::Neighflood => vec!["neighflood"],
        Cmd::Dnstcp => vec!["dnstcp"],
        Cmd::Lossy => vec!["lossy"],
        Cmd::Attach => vec!["attach"],
        Cmd::Wan => vec!["wan"],
        Cmd::Overload => vec!["overload"],
        Cmd::All => report::ORDER.to_vec(),
        Cmd::Report | Cmd::Helper { .. } => vec![],
    };
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for id in which {
        if !cli.settle.is_zero() {
            let waited = env::settle(cli.settle, report::QUIET_LOAD)?;
            if waited >= Duration::from_secs(1) {
                eprintln!(
                    "   waited {:.0} s for the load to settle",
                    waited.as_secs_f64()
                );
            }
        }
        eprintln!(
            "== scenario {id} ({} run(s){}), load average {}",
            ctx.runs,
            if ctx.quick { ", quick" } else { "" },
            env::loadavg()
        );
        let t = Instant::now();
        let r = match id {
            "http" => scenarios::http::run(&ctx),
            "udp" => scenarios::udp::run(&ctx),
            "steer" => scenarios::steer::run(&ctx),
            "fairness" => scenarios::fairness::run(&ctx),
            "churn" => scenarios::churn::run(&ctx),
            "conns" => scenarios::conns::run(&ctx),
            "synflood" => scenarios::synflood::run(&ctx),
            "neighflood" => scenarios::neighflood::run(&ctx),
            "dnstcp" => scenarios::dnstcp::run(&ctx),
            "lossy" => scenarios::lossy::run(&ctx),
            "attach" => scenarios::attach::run(&ctx),
            "wan" => scenarios::wan::run(&ctx),
            "overload" => scenarios::overload::run(&ctx),
            _ => continue,
        };
        match r {
            Ok(res) => {
                // Configs and process output of a scenario that worked are not kept (set
                // XDPSTACK_BENCH_KEEP=1 to keep them).
                if std::env::var_os("XDPSTACK_BENCH_KEEP").is_none() {
                    let _ = std::fs::remove_dir_all(
                        std::env::temp_dir()
                            .join(format!("xdpstack-bench-{}-{id}", std::process::id())),
                    );
                }
                let p = report::save(&res)?;
                eprintln!(
                    "== {id}: {:.0} s, wrote {}",
                    t.elapsed().as_secs_f64(),
                    p.display()
                );
                for tg in &res.targets {
                    eprintln!(
                        "   {}: {} ({})",
                        tg.name,
                        match tg.met {
                            Some(true) => "met",
                            Some(false) => "missed",
                            None => "not measured",
                        },
                        tg.detail
                    );
                }
            }
            Err(procs::BenchError::Interrupted) => return Err(procs::BenchError::Interrupted),
            Err(e) => {
                eprintln!(
                    "== {id} failed: {e} (process output kept in {})",
                    std::env::temp_dir()
                        .join(format!("xdpstack-bench-{}-{id}", std::process::id()))
                        .display()
                );
                failures.push(format!("{id}: {e}"));
            }
        }
        if let Ok(left) = lab::sandbox::leftovers() {
            let ours: Vec<String> = left
                .into_iter()
                .filter(|n| n.starts_with(&format!("xs-b{}", std::process::id())))
                .collect();
            if !ours.is_empty() {
                eprintln!("warning: namespaces left after {id}: {ours:?}");
            }
        }
    }
    let p = report::regenerate()?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        p.display(),
        t0.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        procs::err(format!("failed scenarios: {}", failures.join("; ")))
    }
}
