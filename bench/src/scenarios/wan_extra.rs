//! The two `wan` cases that are not downloads of the matrix (issue 19's targets):
//!
//! - **share**: a 100 Mbit/s bottleneck, RTT 50 ms, one BDP of queue (50 ms). The stack's flow
//!   alone for 20 s (target: >= 95% of the rate), nginx's (kernel cubic) alone for reference,
//!   then both at once for 60 s from the same client: their throughputs should be within
//!   0.8x..1.25x of each other. Then, as the reference, two kernel cubic flows (two
//!   connections to nginx) the same way: how near each other cubic itself brings two flows
//!   in 60 s from a common start. Each flow is one keep-alive connection fetching the 100 MiB
//!   file over and over; the bytes counted are what reached the client's files when curl's
//!   time limit cut it.
//! - **p99**: 1,000 requests of 10 KiB, each on a new connection (`Connection: close`), 10 at a
//!   time, through RTT 50 ms and 1% loss each way: p50 and p99 of curl's `time_total`, the stack
//!   against nginx with the kernel's cubic (target: p99 <= the kernel's).
//!
//! Selected with `XDPSTACK_BENCH_WAN_EXTRA=share,p99` (both by default; `none` skips them).

use std::path::Path;
use std::time::{Duration, Instant};

use lab::impair::{ImpairSpec, QueueLimit};
use lab::sandbox::{Sandbox, SandboxSpec, Side};

use super::wan::{self, Load, KERNEL_IP, STACK, STACK_IP};
use crate::common::{self, Ctx};
use crate::env;
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, err, Result};

/// Which extra cases to run, from `XDPSTACK_BENCH_WAN_EXTRA`.
pub fn selected(get: impl Fn(&str) -> Option<String>) -> Result<(bool, bool)> {
    let v = get("XDPSTACK_BENCH_WAN_EXTRA").unwrap_or_else(|| "share,p99".into());
    let (mut share, mut p99) = (false, false);
    for w in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match w {
            "share" => share = true,
            "p99" => p99 = true,
            "none" => {}
            _ => return err(format!("wan: bad XDPSTACK_BENCH_WAN_EXTRA part `{w}`")),
        }
    }
    Ok((share, p99))
}

const RTT: Duration = Duration::from_millis(50);
const RATE_BPS: u64 = 100_000_000;
const ALONE: Duration = Duration::from_secs(20);
const SHARED: Duration = Duration::from_secs(60);
/// Frame bytes per payload byte of a full segment (1514 / 1448: Ethernet, IPv4, TCP with
/// the timestamp option).
const WIRE_PER_PAYLOAD: f64 = 1514.0 / 1448.0;
const P99_REQUESTS: usize = 1000;
const P99_PARALLEL: usize = 10;

const S_ALONE: &str = "xdpstack alone";
const K_ALONE: &str = "nginx (kernel cubic) alone";
const S_SHARED: &str = "xdpstack, sharing";
const K_SHARED: &str = "nginx (kernel cubic), sharing";
/// The reference: two kernel cubic flows (two connections to nginx) sharing the bottleneck
/// the same way, the first curl started first as the stack's is.
const K1_SHARED: &str = "nginx (kernel cubic), first of two kernel flows";
const K2_SHARED: &str = "nginx (kernel cubic), second of two kernel flows";

/// A curl in the client namespace fetching the 100 MiB file from `addr` over and over on one
/// connection for `limit`.
fn repeat_fetch(
    ctx: &Ctx,
    sb: &Sandbox,
    addr: &str,
    limit: Duration,
    out: &Path,
) -> Result<std::process::Child> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let (path, len) = Load::File.files().remove(0);
    // Enough copies that the limit, not the list, ends the transfer.
    let copies = (limit.as_secs_f64() * RATE_BPS as f64 / 8.0 / len as f64).ceil() as usize + 2;
    let mut cfg = String::new();
    for i in 0..copies {
        cfg.push_str(&format!(
            "url = \"http://{addr}/{path}\"\noutput = \"{}/{i}\"\n",
            out.display()
        ));
    }
    let cfg_path = out.with_extension("cfg");
    std::fs::write(&cfg_path, cfg)?;
    let secs = limit.as_secs().max(1).to_string();
    let mut cmd = sb.command(Side::Client, "timeout");
    cmd.args([
        "-k",
        "5",
        &(limit.as_secs() + 10).to_string(),
        "taskset",
        "-c",
    ])
    .arg(ctx.client_cpu())
    .args(["curl", "-sS", "--http1.1", "--max-time", &secs, "-K"])
    .arg(&cfg_path)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    Ok(cmd.spawn()?)
}

/// Bytes under `out` (every file), then removes it.
fn bytes_in(out: &Path) -> u64 {
    let n = std::fs::read_dir(out)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(out);
    n
}

/// Runs the flows of `addrs` at once for `limit`: Mbit/s of each.
fn flows(
    ctx: &Ctx,
    sb: &Sandbox,
    addrs: &[&str],
    limit: Duration,
    dir: &Path,
) -> Result<Vec<Metrics>> {
    let outs: Vec<_> = (0..addrs.len())
        .map(|i| dir.join(format!("share-out-{i}")))
        .collect();
    let t = Instant::now();
    let mut children = Vec::new();
    for (a, o) in addrs.iter().zip(&outs) {
        children.push(repeat_fetch(ctx, sb, a, limit, o)?);
    }
    for c in &mut children {
        let _ = c.wait();
    }
    let elapsed = t.elapsed().as_secs_f64().max(limit.as_secs_f64());
    if procs::interrupted() {
        return Err(procs::BenchError::Interrupted);
    }
    Ok(outs
        .iter()
        .map(|o| {
            let b = bytes_in(o);
            let mut x = Metrics::new();
            x.insert("mbit_s".into(), b as f64 * 8.0 / elapsed / 1e6);
            let pct = b as f64 * 8.0 / elapsed / RATE_BPS as f64 * 100.0;
            x.insert("pct_of_rate".into(), pct);
            // The bottleneck counts frames: a full segment (timestamps on, as both sides
            // negotiate) carries 1448 bytes of payload in a 1514-byte frame.
            x.insert("wire_pct_of_rate".into(), pct * WIRE_PER_PAYLOAD);
            x
        })
        .collect())
}

/// An impaired one-queue sandbox shared with the kernel (nginx beside the stack), both
/// namespaces on the kernel's cubic.
fn cubic_sandbox(ctx: &Ctx, tag: &str, spec: &ImpairSpec) -> Result<Sandbox> {
    let sb = Sandbox::up_impaired(
        &SandboxSpec {
            name: env::sandbox_name(tag),
            queues: 1,
        },
        spec,
        Path::new(&ctx.bins.xdpstack),
    )?;
    sb.share_with_kernel()?;
    env::set_cc(&sb, "cubic")?;
    Ok(sb)
}

/// A throughput ratio as the larger over the smaller (infinite when one side got nothing).
fn larger_over_smaller(r: f64) -> f64 {
    if r > 0.0 {
        r.max(1.0 / r)
    } else {
        f64::INFINITY
    }
}

/// The `share` case.
pub fn share(
    ctx: &Ctx,
    res: &mut ScenarioResult,
    root: &Path,
    dir: &Path,
    ceil: &str,
) -> Result<()> {
    let spec = ImpairSpec {
        delay: RTT / 2,
        rate_bps: RATE_BPS,
        queue: QueueLimit::Time(RTT),
        seed: 1919,
        ..ImpairSpec::default()
    };
    eprintln!("-- share: {spec}");
    let mut case = Case {
        name: "sharing: RTT 50 ms, 100 Mbit/s, one BDP of queue, one flow alone, then two".into(),
        load: format!(
            "curl fetching the 100 MiB file over and over on one connection: {} s alone, \
             then the stack's and nginx's flows at once for {} s, then (the reference) two \
             flows from nginx at once for {} s, through {spec} (each way); forwarder ceiling \
             {ceil}",
            ALONE.as_secs(),
            SHARED.as_secs(),
            SHARED.as_secs()
        ),
        subjects: [S_ALONE, K_ALONE, S_SHARED, K_SHARED, K1_SHARED, K2_SHARED]
            .iter()
            .map(|n| Subject::new(n))
            .collect(),
        ratios: Vec::new(),
    };
    let sb = cubic_sandbox(ctx, "ws", &spec)?;
    let cpu = ctx.server_cpu();
    // One stack and one nginx serve every run, as a user's servers stay up.
    let stats = dir.join("share-stack.json");
    let stack = wan::start_stack(ctx, &sb, root, dir, &stats, &[])?;
    let ng = match wan::start_nginx(&sb, &cpu, root, dir, "share") {
        Ok(p) => p,
        Err(e) => {
            let _ = common::stop_stack(stack, &stats);
            return Err(e);
        }
    };
    for run in 0..ctx.runs {
        let r = flows(ctx, &sb, &[STACK_IP], ALONE, dir);
        case.subjects[0].record(run, r.map(|mut v| (v.remove(0), String::new())))?;
        let r = flows(ctx, &sb, &[KERNEL_IP], ALONE, dir);
        case.subjects[1].record(run, r.map(|mut v| (v.remove(0), String::new())))?;
        // Two flows at once, recorded as subjects `first` and `first + 1`.
        for (addrs, first) in [([STACK_IP, KERNEL_IP], 2), ([KERNEL_IP, KERNEL_IP], 4)] {
            match flows(ctx, &sb, &addrs, SHARED, dir) {
                Ok(mut v) => {
                    let b = v.pop().unwrap_or_default();
                    let a = v.pop().unwrap_or_default();
                    case.subjects[first].record(run, Ok((a, String::new())))?;
                    case.subjects[first + 1].record(run, Ok((b, String::new())))?;
                }
                Err(e) => case.subjects[first].record(run, Err(e))?,
            }
        }
    }
    let _ = ng.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    let _ = common::stop_stack(stack, &stats);
    drop(sb);
    for s in &mut case.subjects {
        s.finish();
    }
    case.add_ratio("mbit_s", S_SHARED, K_SHARED);
    case.add_ratio("mbit_s", S_ALONE, K_ALONE);
    case.add_ratio("mbit_s", K1_SHARED, K2_SHARED);
    let reference = case
        .subject(K1_SHARED)
        .zip(case.subject(K2_SHARED))
        .map(|(a, b)| {
            let (a, b) = (a.series("mbit_s"), b.series("mbit_s"));
            crate::stats::paired_ratios(&a, &b)
                .into_iter()
                .map(larger_over_smaller)
                .fold(0.0_f64, f64::max)
        });
    let alone = case
        .subject(S_ALONE)
        .and_then(|s| s.median.get("wire_pct_of_rate").copied());
    let shared = case.ratio("mbit_s", S_SHARED, K_SHARED);
    res.targets.push(Target::threshold(
        "a stack flow alone on a 100 Mbit/s, 50 ms, one-BDP bottleneck, % of the rate on \
         the wire (goodput x 1514/1448)",
        ">= 95%",
        alone,
        95.0,
        false,
    ));
    res.targets.push(
        Target::threshold(
            "stack cubic vs kernel cubic sharing that bottleneck for 60 s: the larger \
             throughput over the smaller",
            "<= 1.25 (0.8x..1.25x)",
            shared.map(larger_over_smaller),
            1.25,
            true,
        )
        .why(&shared.map_or(String::new(), |r| {
            let reference = reference.map_or(String::new(), |k| {
                format!(
                    "; two kernel cubic flows in the same runs, the larger over the smaller \
                     (worst run): {k:.3}"
                )
            });
            format!("xdpstack/nginx = {r:.3}{reference}")
        })),
    );
    res.cases.push(case);
    Ok(())
}

/// `(p50, p99)` in ms of curl's `time_total` lines (`CODE SECONDS`), and how many were 200.
pub fn percentiles(text: &str) -> (Option<f64>, Option<f64>, usize) {
    let mut t: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "200")
                .then(|| w.next()?.parse::<f64>().ok())
                .flatten()
        })
        .map(|s| s * 1000.0)
        .collect();
    t.sort_by(f64::total_cmp);
    let ok = t.len();
    let at = |q: f64| -> Option<f64> {
        if t.is_empty() {
            return None;
        }
        // Nearest rank.
        let rank = ((q * t.len() as f64).ceil() as usize).clamp(1, t.len());
        Some(t[rank - 1])
    };
    (at(0.5), at(0.99), ok)
}

/// One round of the p99 load against `addr`.
fn p99_round(ctx: &Ctx, sb: &Sandbox, addr: &str, dir: &Path) -> Result<Metrics> {
    let files = Load::Seq.files();
    let mut cfg = String::new();
    for (p, _) in files.iter().take(P99_REQUESTS) {
        cfg.push_str(&format!(
            "url = \"http://{addr}/{p}\"\noutput = \"/dev/null\"\n"
        ));
    }
    let cfg_path = dir.join("p99.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let mut cmd = sb.command(Side::Client, "timeout");
    cmd.args(["-k", "5", "600", "taskset", "-c"])
        .arg(ctx.client_cpu())
        .args(["curl", "-sS", "--http1.1", "--max-time", "60"])
        .args([
            "-H",
            "Connection: close",
            "--parallel",
            "--parallel-immediate",
        ])
        .args(["--parallel-max", &P99_PARALLEL.to_string()])
        .args(["-w", "%{http_code} %{time_total}\\n", "-K"])
        .arg(&cfg_path);
    let t = Instant::now();
    let out = cmd.output()?;
    let wall = t.elapsed().as_secs_f64();
    if procs::interrupted() {
        return Err(procs::BenchError::Interrupted);
    }
    let (p50, p99, ok) = percentiles(&String::from_utf8_lossy(&out.stdout));
    let mut x = Metrics::new();
    x.insert("ok".into(), ok as f64);
    x.insert("wall_s".into(), wall);
    if let (Some(a), Some(b)) = (p50, p99) {
        x.insert("p50_ms".into(), a);
        x.insert("p99_ms".into(), b);
    }
    if ok < P99_REQUESTS {
        eprintln!(
            "   {addr}: {ok} of {P99_REQUESTS} requests answered ({})",
            procs::tail(&String::from_utf8_lossy(&out.stderr), 2)
        );
    }
    Ok(x)
}

/// The `p99` case.
pub fn p99(ctx: &Ctx, res: &mut ScenarioResult, root: &Path, dir: &Path, ceil: &str) -> Result<()> {
    let spec = ImpairSpec {
        loss: 0.01,
        delay: RTT / 2,
        rate_bps: RATE_BPS,
        queue: QueueLimit::Time(Duration::from_millis(100)),
        seed: 1999,
        ..ImpairSpec::default()
    };
    eprintln!("-- p99: {spec}");
    let k = "nginx, kernel cubic";
    let mut case = Case {
        name: "p99: RTT 50 ms, loss 1%, 10 KiB responses, a new connection each".into(),
        load: format!(
            "curl --parallel-max {P99_PARALLEL}, {P99_REQUESTS} requests with `Connection: \
             close` (each on a new connection), through {spec} (each way); forwarder ceiling \
             {ceil}"
        ),
        subjects: vec![Subject::new(STACK), Subject::new(k)],
        ratios: Vec::new(),
    };
    let sb = cubic_sandbox(ctx, "wp", &spec)?;
    let cpu = ctx.server_cpu();
    // One stack and one nginx serve every run (each idle while the other is measured).
    let stats = dir.join("p99-stack.json");
    let stack = wan::start_stack(ctx, &sb, root, dir, &stats, &[]);
    let ng = wan::start_nginx(&sb, &cpu, root, dir, "p99");
    if matches!(stack, Err(procs::BenchError::Interrupted))
        || matches!(ng, Err(procs::BenchError::Interrupted))
    {
        return Err(procs::BenchError::Interrupted);
    }
    for run in 0..ctx.runs {
        for (si, addr, up) in [
            (0, STACK_IP, stack.as_ref().err()),
            (1, KERNEL_IP, ng.as_ref().err()),
        ] {
            let r = match up {
                None => p99_round(ctx, &sb, addr, dir),
                Some(e) => Err(procs::BenchError::Msg(format!("did not start: {e}"))),
            };
            case.subjects[si].record(run, r.map(|x| (x, String::new())))?;
        }
    }
    if let Ok(p) = stack {
        let _ = common::stop_stack(p, &stats);
    }
    if let Ok(ng) = ng {
        let _ = ng.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    }
    drop(sb);
    for s in &mut case.subjects {
        s.finish();
    }
    case.add_ratio("p99_ms", STACK, k);
    case.add_ratio("p50_ms", STACK, k);
    let all_ok = case.subjects[0]
        .runs
        .iter()
        .all(|r| r.get("ok") == Some(&(P99_REQUESTS as f64)));
    res.targets.push(
        Target::threshold(
            "p99 completion of 10 KiB responses at 1% loss, 50 ms RTT, vs nginx (kernel cubic)",
            "<= 1.0x",
            case.ratio("p99_ms", STACK, k),
            1.0,
            true,
        )
        .why(if all_ok {
            ""
        } else {
            "some stack requests were not answered"
        }),
    );
    res.cases.push(case);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank_over_answered_requests() {
        let mut text = String::new();
        for i in 1..=100 {
            text.push_str(&format!("200 {}\n", f64::from(i) / 1000.0));
        }
        text.push_str("000 9.0\n");
        let (p50, p99, ok) = percentiles(&text);
        assert_eq!(ok, 100);
        assert_eq!(p50, Some(50.0));
        assert_eq!(p99, Some(99.0));
        assert_eq!(percentiles(""), (None, None, 0));
    }

    #[test]
    fn extra_selection() {
        assert_eq!(selected(|_| None).unwrap(), (true, true));
        assert_eq!(selected(|_| Some("none".into())).unwrap(), (false, false));
        assert_eq!(selected(|_| Some("p99".into())).unwrap(), (false, true));
        assert!(selected(|_| Some("x".into())).is_err());
    }
}
