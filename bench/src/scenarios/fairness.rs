//! Scenario `fairness`: how evenly short connections spread over N workers: a kernel listener
//! shared by N accept threads, kernel SO_REUSEPORT (N listeners), and the stack with
//! `--selector hash` and `--selector queue`. ab drives >= 20,000 short connections.

use std::time::{Duration, Instant};

use crate::common::{self, Ctx, SERVER_IP};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::parse;
use crate::procs::{self, BenchError, Proc, Result};
use crate::stats;

const K_SHARED: &str = "kernel, one shared listener";
const K_REUSE: &str = "kernel, SO_REUSEPORT";
const S_HASH: &str = "xdpstack --selector hash";
const S_QUEUE: &str = "xdpstack --selector queue";

/// Connections per worker from an `xdpstack http` stats report: accepted by listener, summed
/// per core.
pub fn stack_per_worker(stats: &runtime::report::ServerReport, workers: usize) -> Vec<u64> {
    let mut per = vec![0u64; workers];
    if let Some(ls) = stats.stack["listeners"].as_array() {
        for l in ls {
            if l["proto"] != "tcp" {
                continue;
            }
            let core = l["core"].as_u64().unwrap_or(0) as usize;
            let acc = l["counters"]["accepted"].as_u64().unwrap_or(0);
            if let Some(slot) = per.get_mut(core) {
                *slot += acc;
            }
        }
    }
    per
}

/// Connections per thread from the kernel helper's JSON.
pub fn kernel_per_thread(out: &str) -> Option<Vec<u64>> {
    let v: serde_json::Value = serde_json::from_str(out.lines().last()?.trim()).ok()?;
    let t = v["threads"].as_array()?;
    let mut per: Vec<(u64, u64)> = t
        .iter()
        .map(|x| {
            (
                x["thread"].as_u64().unwrap_or(0),
                x["accepted"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    per.sort_unstable();
    Some(per.into_iter().map(|(_, a)| a).collect())
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("ab", "apache2-utils")])?;
    let mut res = ctx.result("fairness", "Fairness: connections per worker");
    let dir = env::scratch("fairness")?;
    let workers = ctx.ncpu.clamp(1, 4);
    let n = 20_000;
    let conc = 50;
    let all = ctx.all_cpus();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "{workers} workers (threads) pinned one per core over cores {all}; ab pinned to core \
         {client_cpu}, so it shares that core with one worker (2 cores: no core is free for the \
         client). The veths have {workers} queues each way."
    );
    let ssb = env::sandbox("fs", workers as u16, ServerSide::Stack)?;
    let ksb = env::sandbox("fk", workers as u16, ServerSide::Kernel)?;
    common::tune_server_ns(&ksb)?;
    let mut case = Case {
        name: format!("{n} short connections"),
        load: format!("ab -n {n} -c {conc} -r (HTTP/1.0, one request per connection)"),
        subjects: [K_SHARED, K_REUSE, S_HASH, S_QUEUE]
            .iter()
            .map(|s| Subject::new(s))
            .collect(),
        ratios: Vec::new(),
    };
    let cpu_list: Vec<String> = (0..workers).map(|c| c.to_string()).collect();
    let cpu_list = cpu_list.join(",");
    for run in 0..ctx.runs {
        for i in 0..case.subjects.len() {
            let name = case.subjects[i].name.clone();
            match one(ctx, &name, &ssb, &ksb, workers, &cpu_list, n, conc, &dir) {
                Ok((x, per, placement)) => {
                    if run == 0 {
                        res.placement.extend(placement);
                    }
                    case.subjects[i]
                        .detail
                        .push(format!("run {run}: per worker {per:?}"));
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
    for s in [K_SHARED, K_REUSE, S_QUEUE] {
        case.add_ratio("max_min", S_HASH, s);
    }
    for (name, label) in [(S_HASH, "hash"), (S_QUEUE, "queue")] {
        let v = case
            .subject(name)
            .and_then(|s| s.median.get("max_min").copied());
        res.targets.push(Target::threshold(
            &format!("fairness, xdpstack --selector {label} (max/min connections per worker)"),
            "<= 1.05",
            v,
            1.05,
            true,
        ));
    }
    res.cases.push(case);
    res.notes.push(
        "Counts are every connection the server accepted: the readiness probes (TCP connects \
         before ab starts) and any connection ab opened beyond its requests are included, so \
         totals can exceed -n by a few dozen."
            .into(),
    );
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn one(
    ctx: &Ctx,
    name: &str,
    ssb: &lab::sandbox::Sandbox,
    ksb: &lab::sandbox::Sandbox,
    workers: usize,
    cpus: &str,
    n: u64,
    conc: usize,
    dir: &std::path::Path,
) -> Result<(Metrics, Vec<u64>, Vec<procs::Placement>)> {
    let ab_args = common::strings(&[
        "-t",
        "120",
        "-n",
        &n.to_string(),
        "-c",
        &conc.to_string(),
        "-r",
        "-s",
        "10",
        &format!("http://{SERVER_IP}/"),
    ]);
    let limit = Duration::from_secs(150);
    let client_cpu = ctx.client_cpu();
    let (m, per) = if name == K_SHARED || name == K_REUSE {
        let mode = if name == K_SHARED {
            "shared"
        } else {
            "reuseport"
        };
        let p: Proc = common::start_khttp(ctx, ksb, cpus, name, workers, mode, &[], dir)?;
        let m = common::measure(ksb, &p, &client_cpu, "ab", "ab", &ab_args, dir, limit)?;
        let (out, errs) = p.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
        let per = common_kernel(&out, &errs)?;
        (m, per)
    } else {
        let sel = if name == S_HASH { "hash" } else { "queue" };
        let (p, stats) = common::start_stack(
            ctx,
            ssb,
            cpus,
            &["http"],
            &common::strings(&[
                "--workers",
                &workers.to_string(),
                "--selector",
                sel,
                "--listeners",
                "1",
            ]),
            dir,
            name,
        )?;
        if !env::wait_tcp(ssb, SERVER_IP, 80, Duration::from_secs(15))? {
            return procs::err(format!("{name} did not come up: {}", p.stderr_tail()));
        }
        let m = common::measure(ssb, &p, &client_cpu, "ab", "ab", &ab_args, dir, limit)?;
        let st = common::stop_stack(p, &stats)?;
        (m, stack_per_worker(&st, workers))
    };
    let ab = parse::parse_ab(&m.report)?;
    let mut x = Metrics::new();
    x.insert("cps".into(), ab.rps);
    x.insert("complete".into(), ab.complete as f64);
    x.insert("failed".into(), (ab.failed + ab.non_2xx) as f64);
    if let Some(r) = stats::max_min_ratio(&per) {
        x.insert("max_min".into(), r);
    }
    for (i, c) in per.iter().enumerate() {
        x.insert(format!("worker{i}"), *c as f64);
    }
    x.insert("server_cpu_s".into(), m.server_cpu_s);
    x.insert("client_cpu_s".into(), m.client_cpu_s);
    common::add_core_metrics(&mut x, &m);
    if let Some(a) = &ab.aborted {
        return procs::err(format!("ab stopped early: {a}"));
    }
    Ok((x, per, m.placement))
}

fn common_kernel(out: &str, errs: &str) -> Result<Vec<u64>> {
    kernel_per_thread(out).ok_or_else(|| {
        BenchError::Msg(format!(
            "no counts from the kernel server: {}",
            procs::tail(errs, 3)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_reports() {
        let st: runtime::report::ServerReport =
            serde_json::from_value(serde_json::json!({"stack": {"listeners": [
                {"proto": "tcp", "core": 0, "counters": {"accepted": 10}},
                {"proto": "tcp", "core": 1, "counters": {"accepted": 7}},
                {"proto": "tcp", "core": 1, "counters": {"accepted": 4}},
                {"proto": "udp", "core": 0, "counters": {"accepted": 99}},
            ]}}))
            .unwrap();
        assert_eq!(stack_per_worker(&st, 2), vec![10, 11]);
        let k = "{\"server\":\"khttp\",\"threads\":[{\"thread\":1,\"accepted\":5},{\"thread\":0,\"accepted\":9}]}\n";
        assert_eq!(kernel_per_thread(k), Some(vec![9, 5]));
        assert_eq!(kernel_per_thread("nope"), None);
    }
}
