//! Scenario `neighflood`: an IPv6 neighbour flood against the stack's HTTP server while a real
//! kernel client keeps making requests over IPv6.
//!
//! `xdpstack pktgen --template ns --send-only` (AF_XDP on the client's veth end) sends
//! neighbour solicitations for the server's IPv6 address, each from the next of N on-link
//! source addresses of the server's /64 (cycling), with the client's MAC as their link-layer
//! address: to the server each source is a new neighbour to learn and answer, as from an
//! attacker who owns a /64. `--send-only` leaves the client interface's receive side to the
//! kernel, so the real client (curl over IPv6, one new connection per request, from the same
//! namespace and the same MAC) works next to the flood; the advertisements the server sends
//! back to the spoofed sources reach the client namespace's kernel, which drops them.
//!
//! For N = 1,000, 100,000 and 1,000,000 (the table holds 16,384), each level has two phases,
//! each with a fresh server (its counters at exit are the phase's):
//! - **cost**: the flood as fast as pktgen sends (more than one server core answers), no
//!   client. The server's CPU (utime + stime, /proc) over the flood divided by the
//!   solicitations it answered is the CPU per flood packet. It is taken at saturation because
//!   below it the worker busy-polls between packets (50 µs after the last frame), so at a
//!   moderate fixed rate its CPU is the polling, not the packets. It must stay flat as N grows
//!   (O(1) eviction, no scan, no global lock).
//! - **served**: the flood at a fixed rate the server keeps up with, while curl makes
//!   requests over IPv6: the real client's success (target 100%).
//!
//! One run takes the levels in turn, so the per-run ratios pair measurements a few minutes
//! apart at most.

use std::time::{Duration, Instant};

use lab::sandbox::Sandbox;

use crate::common::{self, Ctx};
use crate::env::{self, ServerSide};
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, BenchError, Proc, Result};

/// The server's IPv6 address (the sandbox's).
const SERVER_IP6: &str = "2001:db8:18::1";
/// The first spoofed source: 2^32 addresses up from here are all in the server's /64 and
/// clear of the server (::1) and the real client (::2).
const FIRST_SOURCE: &str = "2001:db8:18:0:1::";
/// Source counts, one subject each.
const LEVELS: [u64; 3] = [1_000, 100_000, 1_000_000];
/// Flood rate of the served phase, solicitations per second.
const RATE: u64 = 100_000;
/// Most CPU per flood packet at 1,000,000 sources, relative to 1,000 sources.
const FLAT: f64 = 1.2;
/// The real client's pause between requests.
const CLIENT_PAUSE_S: f64 = 0.1;

fn subject_name(n: u64) -> String {
    format!("{} sources", crate::report::fmt_num(n as f64))
}

/// Seconds of each phase.
#[derive(Clone, Copy, Debug)]
struct Plan {
    cost_s: u64,
    served_s: u64,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    env::ensure_tools(&[("curl", "curl")])?;
    let mut res = ctx.result(
        "neighflood",
        "IPv6 neighbour flood from N on-link sources: CPU per flood packet and real clients",
    );
    let dir = env::scratch("neighflood")?;
    let plan = Plan {
        cost_s: ctx.pick(10, 4),
        served_s: ctx.pick(15, 5),
    };
    let server_cpu = ctx.server_cpu();
    let client_cpu = ctx.client_cpu();
    res.cores = format!(
        "xdpstack (1 worker) pinned to core {server_cpu}; pktgen (1 thread) and the curl \
         client pinned to core {client_cpu}."
    );
    let sb = env::sandbox("nf", 1, ServerSide::Stack)?;
    let rx = env::receive_on_own_cores(&sb, &server_cpu, &client_cpu)?;
    res.cores.push_str(&format!(" {rx}."));

    let mut case = Case {
        name: "neighbour flood".into(),
        load: format!(
            "N = {}; cost phase: xdpstack pktgen --template ns --send-only --dst {SERVER_IP6} \
             --src {FIRST_SOURCE}-(N addresses) --rate 0 --duration {} (no client); served \
             phase the same at --rate {RATE} --duration {} while curl -g \
             'http://[{SERVER_IP6}]/' (Connection: close, --connect-timeout 2 -m 3) runs every \
             {CLIENT_PAUSE_S} s after the previous request",
            LEVELS
                .iter()
                .map(|&n| crate::report::fmt_num(n as f64))
                .collect::<Vec<_>>()
                .join(" / "),
            plan.cost_s,
            plan.served_s,
        ),
        subjects: LEVELS
            .iter()
            .map(|&n| Subject::new(&subject_name(n)))
            .collect(),
        ratios: Vec::new(),
    };
    for run in 0..ctx.runs {
        for (i, &n) in LEVELS.iter().enumerate() {
            let r = one(ctx, &sb, &server_cpu, &client_cpu, n, plan, &dir).map(|(x, d, pl)| {
                if run == 0 && i == LEVELS.len() - 1 {
                    res.placement.extend(pl);
                }
                (x, d)
            });
            case.subjects[i].record(run, r)?;
        }
    }
    for s in &mut case.subjects {
        s.finish();
    }
    let names: Vec<String> = LEVELS.iter().map(|&n| subject_name(n)).collect();
    let (lo, mid, hi) = (&names[0], &names[1], &names[2]);
    case.add_ratio("cpu_us_per_pkt", hi, lo);
    case.add_ratio("cpu_us_per_pkt", mid, lo);
    let flat = case.ratio("cpu_us_per_pkt", hi, lo);
    // Served: the worst run of any level.
    let served = case
        .subjects
        .iter()
        .flat_map(|s| s.runs.iter().filter_map(|r| r.get("success_pct").copied()))
        .reduce(f64::min);
    let med = |s: &str, m: &str| {
        case.subject(s)
            .and_then(|x| x.median.get(m).copied())
            .map_or("–".into(), |v| format!("{v:.3}"))
    };
    res.targets.push(
        Target::threshold(
            "Neighbour flood: CPU per flood packet at 1,000,000 sources / at 1,000 (median of paired runs)",
            &format!("<= {FLAT}x (flat)"),
            flat,
            FLAT,
            true,
        )
        .why(&format!(
            "µs per packet (medians): {} at 1,000, {} at 100,000, {} at 1,000,000",
            med(lo, "cpu_us_per_pkt"),
            med(mid, "cpu_us_per_pkt"),
            med(hi, "cpu_us_per_pkt"),
        )),
    );
    res.targets.push(Target::threshold(
        "Neighbour flood: real client's requests served (worst run of any level)",
        "100%",
        served,
        100.0,
        false,
    ));
    res.cases.push(case);
    res.notes.push(format!(
        "Two phases per level, each with a fresh server (the table starts empty; its counters \
         at exit are the phase's). Cost phase: pktgen sends as fast as it can (more than the \
         server answers: the rest is dropped at the server's XSK rx ring, `xsk.rx_ring_full`); \
         CPU per packet = the server's utime + stime from the flood's start to pktgen's exit \
         over the solicitations it answered (`ndp_solicits_answered`), and `answered/s` is \
         its capacity. Below saturation the worker busy-polls for 50 µs after each frame, so \
         at {RATE}/s its CPU (`served.server_cpu_pct`) is mostly polling and says nothing of \
         the cost of a packet. The table holds 16,384 entries (64 shards): from 100,000 \
         sources on, every solicitation from a new source evicts the oldest unconfirmed entry \
         of its shard (`neighbors.evicted`). Distinct sources: the sources the phase reached \
         (its packets cycle over N). `served.*`: the served phase's counters; the real \
         client's entry is the confirmed one (`served.neighbors.protected` counts it and the \
         server's own addresses' entries, if any). Refused = locked + no override + \
         unsolicited + mismatch (a spoofed solicitation for a known address from another MAC \
         would count there; this flood uses new addresses). The server's advertisements go \
         to the spoofed sources at the client's MAC; the client namespace's kernel drops \
         them, and on a veth that receive work runs in the sender's context, so part of it is \
         charged to the server (the same per packet at every level). The core columns are the \
         served phase's."
    ));
    res.wall_seconds = started.elapsed().as_secs_f64();
    drop(sb);
    Ok(res)
}

type RunOut = (Metrics, String, Vec<procs::Placement>);

/// One level: the cost phase, then the served phase (each with a fresh server).
fn one(
    ctx: &Ctx,
    sb: &Sandbox,
    server_cpu: &str,
    client_cpu: &str,
    n: u64,
    plan: Plan,
    dir: &std::path::Path,
) -> Result<RunOut> {
    let cpus = (server_cpu, client_cpu);
    let (mut x, cost, _) = phase(ctx, sb, cpus, n, 0, plan.cost_s, false, dir)?;
    let (served, sdetail, pl) = phase(ctx, sb, cpus, n, RATE, plan.served_s, true, dir)?;
    for (k, v) in served {
        let keep = k.starts_with("request") || k == "success_pct" || k.starts_with("core");
        x.insert(if keep { k } else { format!("served.{k}") }, v);
    }
    Ok((x, format!("cost: {cost}; served: {sdetail}"), pl))
}

/// One phase: a fresh server, `n` sources at `rate` (0: as fast as possible) for `secs`, and
/// the real client alongside when `client`.
#[allow(clippy::too_many_arguments)]
fn phase(
    ctx: &Ctx,
    sb: &Sandbox,
    (server_cpu, client_cpu): (&str, &str),
    n: u64,
    rate: u64,
    secs: u64,
    client: bool,
    dir: &std::path::Path,
) -> Result<RunOut> {
    let addr6 = format!("{SERVER_IP6}/64");
    let args = ["--workers", "1", "--addr6", &addr6];
    let (p, stats) = common::start_http_stack(ctx, sb, server_cpu, &args, dir)?;
    if client {
        // The client resolves the server (NDP) and is served once before the flood.
        let pre = curl_loop(sb, client_cpu, 1, 0, dir)?
            .wait(Duration::from_secs(10))?
            .1;
        if !pre.trim().starts_with("200") {
            return procs::err(format!(
                "the IPv6 client got no answer before the flood ({:?})",
                pre.trim()
            ));
        }
    }
    let loadavg1 = env::loadavg1();
    let cpu0 = p.cpu_ticks();
    let k0 = common::read_cpus();
    let t0 = Instant::now();
    let last = Ipv6Last::of(n)?;
    let mut flood = Proc::spawn(
        "pktgen ns",
        &sb.info().client_ns,
        client_cpu,
        &ctx.bins.xdpstack,
        &common::strings(&[
            "pktgen",
            "--iface",
            &sb.info().client_if,
            "--queues",
            "1",
            "--template",
            "ns",
            "--send-only",
            "--dst",
            SERVER_IP6,
            "--src",
            &format!("{FIRST_SOURCE}-{}", last.0),
            "--rate",
            &rate.to_string(),
            "--duration",
            &secs.to_string(),
            "--drain",
            "0s",
            "--quiet",
        ]),
        dir,
    )?;
    let mut curl = if client {
        Some(curl_loop(sb, client_cpu, secs * 20, secs, dir)?)
    } else {
        None
    };
    let mut placement = Vec::new();
    let limit = t0 + Duration::from_secs(secs + 20);
    let mut cpu1 = None;
    let busy = |c: &mut Option<Proc>| c.as_mut().is_some_and(|c| c.running());
    while (flood.running() || busy(&mut curl)) && Instant::now() < limit {
        procs::sleep(Duration::from_millis(100))?;
        if placement.is_empty() && t0.elapsed() > Duration::from_secs(1) && flood.running() {
            placement.push(p.placement());
            placement.push(flood.placement());
            placement.extend(curl.as_ref().map(|c| c.placement()));
        }
        if cpu1.is_none() && !flood.running() {
            cpu1 = Some((
                p.cpu_ticks(),
                t0.elapsed().as_secs_f64(),
                common::read_cpus(),
            ));
        }
    }
    let (cpu1, flood_s, k1) = cpu1.unwrap_or_else(|| {
        (
            p.cpu_ticks(),
            t0.elapsed().as_secs_f64(),
            common::read_cpus(),
        )
    });
    let (_, gen_out, gen_err) = flood.wait(Duration::from_secs(5))?;
    let probes = match curl {
        Some(c) => Some(c.wait(Duration::from_secs(5))?.1),
        None => None,
    };
    let st = common::stop_stack(p, &stats)?;
    let g = crate::parse::parse_pktgen(&gen_out)
        .map_err(|e| BenchError::Msg(format!("pktgen: {e}: {}", procs::tail(&gen_err, 3))))?;

    let mut x = Metrics::new();
    x.insert("loadavg1_before".into(), loadavg1);
    x.insert("distinct_sources".into(), g.sent.min(n) as f64);
    x.insert("flood_sent".into(), g.sent as f64);
    x.insert("flood_pps".into(), g.tx_pps);
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let w = st.workers.first().cloned().unwrap_or_default();
    let l2 = &w.l2;
    let answered = num(&l2["ndp_solicits_answered"]);
    x.insert("solicits_answered".into(), answered);
    x.insert("answered_pps".into(), answered / flood_s.max(1e-3));
    let cpu_s = procs::ticks_to_s(cpu0, cpu1);
    x.insert("server_cpu_s".into(), cpu_s);
    x.insert("server_cpu_pct".into(), 100.0 * cpu_s / flood_s.max(1e-3));
    if answered > 0.0 {
        x.insert("cpu_us_per_pkt".into(), cpu_s * 1e6 / answered);
    }
    let nb = &st.stack["neighbors"];
    for k in ["entries", "protected", "evicted", "changed"] {
        x.insert(format!("neighbors.{k}"), num(&nb[k]));
    }
    const REFUSALS: [&str; 4] = [
        "neighbor_locked",
        "neighbor_no_override",
        "neighbor_unsolicited",
        "neighbor_mismatch",
    ];
    for k in REFUSALS
        .iter()
        .chain(&["neighbors_learned", "neighbor_cache_evicted", "rx_frames"])
    {
        x.insert(format!("l2.{k}"), num(&l2[*k]));
    }
    let refused: f64 = REFUSALS.iter().map(|k| num(&l2[*k])).sum();
    x.insert("refused".into(), refused);
    for k in ["rx_dropped", "rx_ring_full"] {
        x.insert(
            format!("xsk.{k}"),
            w.port.kernel_stat(k).unwrap_or(0) as f64,
        );
    }
    for (i, (busy, si)) in common::core_usage(&k0, &k1).iter().enumerate() {
        x.insert(format!("core{i}_busy_pct"), *busy);
        x.insert(format!("core{i}_softirq_pct"), *si);
    }
    let mut detail = format!(
        "sent {} ({:.0}/s), answered {answered:.0} ({:.0}/s), server CPU {cpu_s:.2} s ({:.0}%, \
         {:.3} µs/packet); neighbours: {} entries ({} confirmed), {} evicted, {} learned, \
         {refused} refused, core cache evictions {}",
        g.sent,
        g.tx_pps,
        answered / flood_s.max(1e-3),
        100.0 * cpu_s / flood_s.max(1e-3),
        x.get("cpu_us_per_pkt").copied().unwrap_or(0.0),
        num(&nb["entries"]),
        num(&nb["protected"]),
        num(&nb["evicted"]),
        num(&l2["neighbors_learned"]),
        num(&l2["neighbor_cache_evicted"]),
    );
    if let Some(probes) = probes {
        let (ok, total, mut times) = parse_probes(&probes);
        x.insert("requests".into(), total as f64);
        x.insert("requests_ok".into(), ok as f64);
        let pct = if total == 0 {
            0.0
        } else {
            100.0 * ok as f64 / total as f64
        };
        x.insert("success_pct".into(), pct);
        times.sort_by(f64::total_cmp);
        if let Some(m) = crate::stats::median(&times) {
            x.insert("request_p50_ms".into(), m);
        }
        if let Some(m) = times.last() {
            x.insert("request_max_ms".into(), *m);
        }
        detail.push_str(&format!("; client {ok}/{total} served"));
    }
    Ok((x, detail, placement))
}

/// The last source address of a range of `n` from [`FIRST_SOURCE`].
struct Ipv6Last(String);

impl Ipv6Last {
    fn of(n: u64) -> Result<Ipv6Last> {
        let first: std::net::Ipv6Addr = FIRST_SOURCE
            .parse()
            .map_err(|_| BenchError::Msg(format!("bad address {FIRST_SOURCE}")))?;
        if n == 0 || n > 1 << 32 {
            return procs::err(format!("{n} sources: 1 to 2^32"));
        }
        let last = u128::from(first) + u128::from(n - 1);
        Ok(Ipv6Last(std::net::Ipv6Addr::from(last).to_string()))
    }
}

/// The real client: a bounded shell loop of at most `count` curl requests over IPv6, one new
/// connection each, a pause between them, stopping after `secs` seconds (0: one request).
/// Prints `CODE SECONDS` per request.
fn curl_loop(
    sb: &Sandbox,
    cpu: &str,
    count: u64,
    secs: u64,
    dir: &std::path::Path,
) -> Result<Proc> {
    let script = format!(
        "for i in $(seq 1 {count}); do \
           if [ {secs} -gt 0 ] && [ $SECONDS -ge {secs} ]; then break; fi; \
           curl -g -s -o /dev/null -w '%{{http_code}} %{{time_total}}\\n' \
             --connect-timeout 2 -m 3 -H 'Connection: close' 'http://[{SERVER_IP6}]/'; \
           sleep {CLIENT_PAUSE_S}; \
         done"
    );
    Proc::spawn(
        "curl (IPv6)",
        &sb.info().client_ns,
        cpu,
        "bash",
        &common::strings(&["-c", &script]),
        dir,
    )
}

/// Requests served, requests made, and the served ones' times in ms, from [`curl_loop`]'s output.
fn parse_probes(out: &str) -> (usize, usize, Vec<f64>) {
    let mut ok = 0;
    let mut total = 0;
    let mut times = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        total += 1;
        let mut f = line.split_whitespace();
        if f.next() == Some("200") {
            ok += 1;
            if let Some(t) = f.next().and_then(|t| t.parse::<f64>().ok()) {
                times.push(t * 1000.0);
            }
        }
    }
    (ok, total, times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_are_counted() {
        let (ok, total, times) = parse_probes("200 0.0012\n\n000 3.001\n\n200 0.002\n\n");
        assert_eq!((ok, total), (2, 3));
        assert_eq!(times, vec![1.2, 2.0]);
    }

    #[test]
    fn source_ranges_stay_in_the_servers_64() {
        assert_eq!(Ipv6Last::of(1).unwrap().0, "2001:db8:18:0:1::");
        assert_eq!(
            Ipv6Last::of(1_000_000).unwrap().0,
            "2001:db8:18:0:1:0:f:423f"
        );
        assert!(Ipv6Last::of(0).is_err());
    }
}
