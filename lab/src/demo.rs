//! `xdpstack demo`: the kernel-bypass HTTP demo, end to end, in a sandbox it
//! builds and removes itself (Ctrl-C included).

use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sandbox::{Sandbox, SandboxSpec, Side};

/// `xdpstack demo` options.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Queues (and stack workers).
    #[arg(long, default_value_t = 2)]
    pub queues: u16,
    /// How long the load runs, whole seconds from `1s` to `60s` (a bare
    /// number is seconds).
    #[arg(long, default_value = "5s", value_parser = parse_load_time)]
    pub duration: Duration,
    /// Concurrent connections of the load client.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
}

/// Why the demo stopped short.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Tools it needs are missing (`scripts/deps.sh demo` installs them:
    /// package setup lives in the scripts, never in the binary).
    #[error("missing {0}: install them with scripts/deps.sh demo (./scripts/demo.sh does)")]
    Missing(String),
    /// SIGINT/SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// Checks that the programs of `tools` (program, Debian package) are on
/// PATH; names the packages of the missing ones.
pub fn ensure_packages(tools: &[(&str, &str)]) -> Result<(), DemoError> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DemoError::Missing(missing.join(" ")))
    }
}

/// Whether `bin` is on PATH.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

struct Server {
    child: Child,
}

/// Removes a temporary file however the demo ends. Declared before the
/// server guard, so it is dropped after it (the server writes the file as
/// it stops).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Server {
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `--duration`: whole seconds (wrk's `-d`), 1 to 60.
fn parse_load_time(s: &str) -> Result<Duration, runtime::duration::DurationError> {
    runtime::duration::parse_whole_secs_within(s, Duration::from_secs(1), Duration::from_secs(60))
}

fn interrupted(stop: &AtomicBool) -> Result<(), DemoError> {
    if stop.load(Ordering::Relaxed) {
        Err(DemoError::Interrupted)
    } else {
        Ok(())
    }
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    ensure_packages(&[
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
        ("curl", "curl"),
        ("wrk", "wrk"),
    ])?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let name = format!("demo{}", std::process::id());
    let sb = Sandbox::up(&SandboxSpec {
        name: name.clone(),
        queues: args.queues,
    })?;
    let result = drive(args, &sb, &stop);
    let down = sb.down();
    if stop.load(Ordering::Relaxed) {
        down?;
        eprintln!("interrupted; sandbox {name} removed");
        return Ok(ExitCode::from(130));
    }
    let code = result?;
    down?;
    println!("sandbox {name} removed; nothing left behind");
    Ok(code)
}

fn drive(
    args: &DemoArgs,
    sb: &Sandbox,
    stop: &AtomicBool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let info = sb.info().clone();
    println!("== sandbox {} ({} queues)", info.name, info.queues);
    println!(
        "   server ns {} iface {} {} / {} (stack, no kernel address)",
        info.server_ns, info.server_if, info.server_ip4, info.server_ip6
    );
    println!(
        "   client ns {} iface {} {} / {} (kernel stack: curl, wrk)",
        info.client_ns, info.client_if, info.client_ip4, info.client_ip6
    );
    let ip4 = info
        .server_ip4
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let ip6 = info
        .server_ip6
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let stats = std::env::temp_dir().join(format!("xdpstack-demo-{}.json", std::process::id()));
    let _cleanup = RemoveOnDrop(stats.clone());
    let exe = std::env::current_exe()?;
    let exe = exe.to_string_lossy();
    let mut server = Server {
        child: sb
            .command(Side::Server, &exe)
            .args([
                "http",
                "--iface",
                &info.server_if,
                "--addr",
                &info.server_ip4,
            ])
            // A short graceful stop: the demo waits at most 5 s for the server.
            .args(["--addr6", &info.server_ip6, "--grace", "2s", "--workers"])
            .arg(info.queues.to_string())
            .arg("--report")
            .arg(&stats)
            .stdin(Stdio::null())
            .spawn()?,
    };
    // Wait until the stack answers.
    let url4 = format!("http://{ip4}/");
    let url6 = format!("http://[{ip6}]/");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        interrupted(stop)?;
        if let Some(st) = server.child.try_wait()? {
            return Err(format!("the server exited early ({st})").into());
        }
        let ok = sb
            .command(Side::Client, "curl")
            .args(["-s", "-o", "/dev/null", "-m", "1", &url4])
            .status()?
            .success();
        if ok {
            break;
        }
        if Instant::now() > deadline {
            return Err("the stack did not answer within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for url in [&url4, &url6] {
        interrupted(stop)?;
        println!("\n== curl -i {url}   (from the client namespace, kernel TCP)");
        let out = sb
            .command(Side::Client, "curl")
            .args(["-sS", "-i", "-g", "-m", "5", url])
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            return Err(format!(
                "curl {url} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
    }
    interrupted(stop)?;
    println!(
        "\n== wrk -t2 -c{} -d{}s {url4}   (keep-alive, bounded)",
        args.connections,
        args.duration.as_secs()
    );
    let out_path = std::env::temp_dir().join(format!("xdpstack-demo-{}.wrk", std::process::id()));
    let out_file = std::fs::File::create(&out_path)?;
    let mut wrk = sb
        .command(Side::Client, "wrk")
        .args(["-t2", &format!("-c{}", args.connections)])
        .args([
            &format!("-d{}s", args.duration.as_secs()),
            "--timeout",
            "2s",
            &url4,
        ])
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()?;
    // Poll, so that SIGINT/SIGTERM sent to the demo alone stops wrk too.
    let wrk_deadline = Instant::now() + args.duration + Duration::from_secs(10);
    loop {
        if wrk.try_wait()?.is_some() {
            break;
        }
        if stop.load(Ordering::Relaxed) || Instant::now() > wrk_deadline {
            let _ = wrk.kill();
            let _ = wrk.wait();
            let _ = std::fs::remove_file(&out_path);
            interrupted(stop)?;
            return Err("wrk did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wrk_text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let wrk_out = wrk_text;
    print!("{wrk_out}");
    interrupted(stop)?;
    server.stop();
    let report: serde_json::Value = std::fs::read_to_string(&stats)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or("the server wrote no statistics")?;
    let _ = std::fs::remove_file(&stats);
    let wrk_requests = parse_wrk_requests(&wrk_out);
    let wrk_errors = parse_wrk_errors(&wrk_out);
    let rate = wrk_out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    println!("\n== report");
    println!(
        "   xdp mode {} zero-copy {}",
        report["xdp_mode"], report["zero_copy"]
    );
    println!("   wrk: {wrk_requests} requests, {wrk_errors} errors, {rate} req/s (wrk unpinned)");
    let mut total = 0;
    let mut frames_ok = true;
    if let Some(ws) = report["workers"].as_array() {
        for w in ws {
            let n = w["app"]["requests"].as_u64().unwrap_or(0);
            total += n;
            frames_ok &= w["frame_accounting"] == "ok";
            println!(
                "   worker {} (queue {}, core {}): {} requests, {} connections, frames {}",
                w["worker"],
                w["queue"],
                w["core"],
                n,
                w["app"]["connections"],
                w["frame_accounting"]
            );
        }
    }
    println!("   stack answered {total} requests in all (curl + wrk + readiness probes)");
    if wrk_errors > 0 || wrk_requests == 0 || !frames_ok {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Requests wrk completed ("N requests in ...").
pub fn parse_wrk_requests(out: &str) -> u64 {
    out.lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Socket errors plus non-2xx responses reported by wrk.
pub fn parse_wrk_errors(out: &str) -> u64 {
    let mut n = 0;
    for l in out.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                n += part
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            n += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://198.18.0.1/\n  2 threads and 50 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   500.00us  100.00us   2.00ms   90.00%\n  100000 requests in 5.00s, 12.00MB read\n  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec:  20000.00\n";

    #[test]
    fn wrk_output_parsed() {
        assert_eq!(parse_wrk_requests(WRK), 100000);
        assert_eq!(parse_wrk_errors(WRK), 10);
        assert_eq!(parse_wrk_requests("garbage"), 0);
        assert_eq!(parse_wrk_errors("Requests/sec: 1\n"), 0);
    }
}
