//! `xdpstack`: a userspace TCP/IP stack on AF_XDP sockets.
#![deny(unsafe_code)]

mod status;

use dnsd as dns;
use echod as echo;
use httpd as http;
use lab::{bulk, demo, impair, sandbox};
use pktgen::reflect;
use runtime::{attached, server};

use std::process::ExitCode;

/// jemalloc, not glibc malloc: see docs/ARCHITECTURE.md ("Memory per
/// connection").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xdpstack",
    version,
    about = "A userspace TCP/IP stack on AF_XDP sockets"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Test network: a server and a client namespace joined by a veth pair.
    Sandbox {
        #[command(subcommand)]
        cmd: SandboxCmd,
    },
    /// HTTP/1.1 server on the stack.
    Http {
        #[command(flatten)]
        server: server::ServerArgs,
        /// Boxed: the largest arguments by far (clippy's large_enum_variant).
        #[command(flatten)]
        http: Box<http::HttpArgs>,
    },
    /// The privileged daemon: owns the interface, the XDP program and the
    /// per-core engines; unprivileged processes attach over --control
    /// (`xdpstack http --attach PATH`, the attach crate).
    Daemon(daemon::DaemonArgs),
    /// TCP and UDP echo server on the stack.
    Echo {
        #[command(flatten)]
        server: server::ServerArgs,
        #[command(flatten)]
        echo: echo::EchoArgs,
    },
    /// Authoritative DNS server on the stack (UDP and TCP).
    Dns {
        #[command(flatten)]
        server: server::ServerArgs,
        #[command(flatten)]
        dns: dns::DnsArgs,
    },
    /// AF_XDP packet generator.
    Pktgen(pktgen::PktgenArgs),
    /// Benchmark tools.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Build a sandbox, serve HTTP on the stack, drive it with curl and wrk,
    /// report, tear everything down.
    Demo(demo::DemoArgs),
    /// What is attached to an interface: XDP program, bpf_link, queues,
    /// RSS table, the program's counters.
    Status(status::StatusArgs),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Return every frame with MAC/IP/ports swapped, no stack in between:
    /// the ceiling of the AF_XDP path.
    Reflect(reflect::ReflectArgs),
    /// Kernel TCP client: parallel connections each push N bytes through an
    /// echo server and check every byte that comes back; JSON report.
    Bulk(bulk::BulkArgs),
    /// Kernel TCP echo server (the kernel's side of a bulk comparison).
    KernelEcho(bulk::KernelEchoArgs),
}

#[derive(Subcommand)]
enum SandboxCmd {
    /// Create the namespaces and the veth pair; print what was made.
    Up {
        /// Sandbox name.
        #[arg(long, default_value = sandbox::DEFAULT_NAME)]
        name: String,
        /// Queues each way.
        #[arg(long, default_value_t = 1)]
        queues: u16,
        /// The server side's kernel also holds 10.112.0.3/24 and
        /// fd00:112::3/64 on xdp0 (the client gets .2 / ::2): run the stack
        /// with --addr 10.112.0.1/24 --addr6 fd00:112::1/64 beside it.
        #[arg(long)]
        share_with_kernel: bool,
        /// Impair the link (any of these given): a middle namespace
        /// xs-NAME-mid runs a forwarder between the two ends, e.g.
        /// `--loss 1% --delay 20ms --jitter 5ms --reorder 0.5% --duplicate 0.1%`
        /// (each way, seeded: `--seed N`), and a bottleneck each way:
        /// `--rate 100mbit --queue 100ms` (tail drop past the queue;
        /// `--ecn-mark 5ms` marks ECN-capable packets CE past 5 ms queued).
        #[command(flatten)]
        impair: impair::ImpairArgs,
    },
    /// The impairing forwarder (started by `sandbox up --loss ...` in the
    /// middle namespace; not for direct use).
    #[command(hide = true)]
    Impair(impair::forward::ForwardArgs),
    /// Remove a sandbox (its namespaces, veth and anything attached to it).
    Down {
        /// Sandbox name.
        #[arg(long, default_value = sandbox::DEFAULT_NAME)]
        name: String,
    },
    /// Run a command in one of the namespaces.
    Exec {
        /// Sandbox name.
        #[arg(long, default_value = sandbox::DEFAULT_NAME)]
        name: String,
        /// In the client namespace (default).
        #[arg(long, conflicts_with = "server")]
        client: bool,
        /// In the server namespace.
        #[arg(long)]
        server: bool,
        /// The command.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Exit non-zero if any sandbox namespace of ours is left.
    Leaks,
}

fn main() -> ExitCode {
    // rustls warns about what clients send (an IP address as SNI, as
    // testssl.sh and some scanners do): a line per handshake, so errors only
    // unless RUST_LOG says otherwise.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,rustls=error"),
    )
    .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdpstack: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.cmd {
        Cmd::Sandbox { cmd } => sandbox_cmd(cmd),
        // The three services the same way: the service crate gives the
        // app and its arguments, this binary chooses attached or XSK mode.
        Cmd::Http {
            mut server,
            mut http,
        } => {
            // The rings and UMEM follow the connections a worker may keep.
            server.xsk.expect_depth = Some(http.max_conns);
            // What `--stats-allow local` means.
            http.local_addrs = (server.addr, server.addr6);
            // Loaded before any NIC queue is opened or the daemon is
            // attached to: a refused tree is a one-line error and nothing
            // was attached.
            let site = http::load_site(&http)?;
            // The certificates too: an unreadable file or a key that does
            // not match is a one-line error before anything is attached.
            http::tls::load(&mut http.tls)?;
            // SIGHUP reloads the tree, SIGUSR1 reopens the access log.
            site.watch_signals()?;
            if http.attached.attach.is_some() {
                let report = attached::run(
                    "http",
                    &http.attached,
                    server.grace,
                    |ctx, core| http::HttpApp::new(ctx, core, &http, site.clone()),
                    |app| app.json(),
                )?;
                return attached_done(&server, &report);
            }
            let report = server::serve(
                &server,
                "http",
                move |ctx, engine| http::HttpApp::new(ctx, engine, &http, site.clone()),
                |app| app.json(),
            )?;
            print_summary(&report);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Echo { mut server, echo } => {
            server.xsk.expect_depth = Some(echo.max_conns);
            if echo.attached.attach.is_some() {
                let report = attached::run(
                    "echo",
                    &echo.attached,
                    server.grace,
                    |ctx, core| echo::EchoApp::new(ctx, core, &echo),
                    |app| app.json(),
                )?;
                return attached_done(&server, &report);
            }
            let report = server::serve(
                &server,
                "echo",
                move |ctx, engine| echo::EchoApp::new(ctx, engine, &echo),
                |app| app.json(),
            )?;
            print_summary(&report);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dns { mut server, dns } => {
            // One packet queued per TCP connection, or the UDP queue.
            server.xsk.expect_depth = Some(dns.tcp_max_conns.max(dns.udp_queue));
            let index = dns::load_logged(&dns)?;
            if dns.attached.attach.is_some() {
                let report = attached::run(
                    "dns",
                    &dns.attached,
                    server.grace,
                    |ctx, core| dns::DnsApp::new(ctx, core, &dns, index.clone(), dns::ATTACHED_MTU),
                    |app| app.json(),
                )?;
                return attached_done(&server, &report);
            }
            let report = server::serve(
                &server,
                "dns",
                move |ctx, engine| {
                    let mtu = engine.port().config().mtu;
                    dns::DnsApp::new(ctx, engine, &dns, index.clone(), mtu)
                },
                |app| app.json(),
            )?;
            print_summary(&report);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Daemon(args) => {
            let report = daemon::run(&args)?;
            print_summary(&report.server);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pktgen(args) => pktgen::run(&args),
        Cmd::Bench { cmd } => match cmd {
            BenchCmd::Reflect(args) => reflect::run(&args),
            BenchCmd::Bulk(args) => {
                let report = bulk::run_bulk(&args);
                println!("{}", serde_json::to_string(&report)?);
                Ok(if report.failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            BenchCmd::KernelEcho(args) => {
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                    signal_hook::flag::register(sig, stop.clone())?;
                }
                let report = bulk::run_kernel_echo(&args, &stop)?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(ExitCode::SUCCESS)
            }
        },
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Status(args) => {
            let s = status::status(&args.iface)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", status::format(&s));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An attached service stopped: its report on stderr (one line of JSON),
/// and in `--report FILE` if given.
fn attached_done(
    server: &server::ServerArgs,
    report: &runtime::report::AttachedReport,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    eprintln!("{}", serde_json::to_string(report)?);
    if let Some(path) = &server.report {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .map_err(|e| format!("cannot write report {}: {e}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per worker on stderr when a server stops.
fn print_summary(report: &runtime::report::ServerReport) {
    for w in &report.workers {
        eprintln!(
            "worker {} (core {}): app {} | rx {} tx {} frames | dropped {} | frames {}",
            w.worker,
            w.core.map_or("null".to_string(), |c| c.to_string()),
            w.app,
            w.port.rx_frames,
            w.port.tx_frames,
            w.l2_dropped(),
            serde_json::Value::from(w.frame_accounting.as_str()),
        );
    }
}

fn sandbox_cmd(cmd: SandboxCmd) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cmd {
        SandboxCmd::Up {
            name,
            queues,
            share_with_kernel,
            impair,
        } => {
            sandbox::ensure_tools()?;
            let spec = sandbox::SandboxSpec { name, queues };
            let imp = impair.spec();
            let sb = if imp.is_active() || impair.seed.is_some() {
                let exe = std::env::current_exe()?;
                let sb = sandbox::Sandbox::up_impaired(&spec, &imp, &exe)?;
                println!(
                    "impaired each way ({imp}) by a forwarder in netns {}; counters in {}",
                    sandbox::middle_ns(&spec.name),
                    sandbox::impair_stats_path(&spec.name).display()
                );
                sb
            } else {
                sandbox::Sandbox::up(&spec)?
            };
            if share_with_kernel {
                sb.share_with_kernel()?;
            }
            let info = sb.keep();
            println!("{}", sandbox::format_info(&info));
            Ok(ExitCode::SUCCESS)
        }
        SandboxCmd::Down { name } => {
            if sandbox::down(&name)? {
                println!("sandbox {name} removed");
            } else {
                println!("sandbox {name} did not exist");
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCmd::Exec {
            name,
            client: _,
            server,
            cmd,
        } => {
            let info = sandbox::attach(&name)?;
            let ns = if server {
                &info.server_ns
            } else {
                &info.client_ns
            };
            // Replace this process: `ip netns exec` enters the namespace
            // and execs the command in turn, so the pid we were started
            // with is the command's, and its signals and exit code too
            // (`kill -TERM %1` stops the server gracefully).
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", ns])
                .args(&cmd)
                .exec();
            Err(format!("cannot exec `ip netns exec {ns} {}`: {err}", cmd.join(" ")).into())
        }
        SandboxCmd::Impair(args) => {
            let stats = impair::forward::run(&args)?;
            eprintln!("{}", serde_json::to_string(&stats)?);
            Ok(ExitCode::SUCCESS)
        }
        SandboxCmd::Leaks => {
            let left = sandbox::leftovers()?;
            if left.is_empty() {
                println!("no sandbox namespaces left");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("left behind: {}", left.join(" "));
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xdpstack").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn attach_conflicts_with_what_the_daemon_owns() {
        for service in ["http", "echo", "dns"] {
            let zone: &[&str] = if service == "dns" {
                &["--zone", "z"]
            } else {
                &[]
            };
            let with = |extra: &[&str]| {
                let mut a = vec![service, "--attach", "/run/x.sock"];
                a.extend_from_slice(zone);
                a.extend_from_slice(extra);
                parse(&a)
            };
            assert!(with(&[]).is_ok(), "{service}");
            assert!(with(&["--grace", "2s", "--report", "/tmp/r.json"]).is_ok());
            for bad in [
                &["--iface", "eth0"][..],
                &["--queues", "0-1"],
                &["--map", "0:1"],
                &["--cores", "1"],
                &["--addr", "10.0.0.1/24"],
                &["--workers", "2"],
                &["--selector", "queue"],
                &["--frames", "8192"],
                &["--steer", "all"],
            ] {
                let e = with(bad)
                    .err()
                    .unwrap_or_else(|| panic!("{service} {bad:?}"));
                assert_eq!(
                    e.kind(),
                    clap::error::ErrorKind::ArgumentConflict,
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn closed_sets_are_enums_and_old_spellings_still_parse() {
        let ok = |a: &[&str]| parse(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        let base = ["http", "--iface", "eth0", "--addr", "10.0.0.1/24"];
        fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            a
        }
        let Cmd::Http { server, .. } =
            ok(&with(&base, &["--selector", "queue", "--cc", "reno"])).cmd
        else {
            panic!("not http")
        };
        assert_eq!(server.selector, server::SelectorArg::Queue);
        assert_eq!(server.cc, server::CcArg::Reno);
        assert!(parse(&with(&base, &["--selector", "random"])).is_err());
        assert!(parse(&with(&base, &["--cc", "vegas"])).is_err());
        let Cmd::Http { server, .. } = ok(&with(&base, &["--cc", "bbr"])).cmd else {
            panic!("not http")
        };
        assert_eq!(server.cc, server::CcArg::Bbr);
        let Cmd::Http { server, .. } = ok(&with(
            &base,
            &["--stats-file", "/tmp/a.json", "--grace", "1.5"],
        ))
        .cmd
        else {
            panic!("not http")
        };
        assert_eq!(
            server.report.as_deref(),
            Some(std::path::Path::new("/tmp/a.json"))
        );
        assert_eq!(server.grace, std::time::Duration::from_millis(1500));
        assert!(parse(&with(&base, &["--grace", "2h"])).is_err());
    }
}
