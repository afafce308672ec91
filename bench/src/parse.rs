//! Parsers of the load tools' output (wrk, ab) and of /proc.

use std::collections::BTreeMap;

/// What wrk printed (run with `--latency`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WrkReport {
    /// Requests completed.
    pub requests: u64,
    /// Seconds wrk measured over.
    pub seconds: f64,
    /// `Requests/sec:`.
    pub rps: f64,
    /// Latency percentiles from `Latency Distribution`, in microseconds (50, 75, 90, 99).
    pub latency_us: BTreeMap<String, f64>,
    /// Socket errors: connect.
    pub err_connect: u64,
    /// Socket errors: read.
    pub err_read: u64,
    /// Socket errors: write.
    pub err_write: u64,
    /// Socket errors: timeout.
    pub err_timeout: u64,
    /// `Non-2xx or 3xx responses:`.
    pub non_2xx: u64,
}

/// Why an output could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// A line the report must have is missing.
    #[error("no `{0}` line in the output")]
    Missing(&'static str),
    /// A value could not be read.
    #[error("cannot read {what} from {text:?}")]
    Bad {
        /// What was being read.
        what: &'static str,
        /// The text.
        text: String,
    },
}

fn bad(what: &'static str, text: &str) -> ParseError {
    ParseError::Bad {
        what,
        text: text.to_string(),
    }
}

/// A duration as wrk prints it (`453.00us`, `1.20ms`, `2.00s`, `1.50m`) in microseconds.
pub fn wrk_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * mult)
}

/// Parses wrk's report.
pub fn parse_wrk(out: &str) -> Result<WrkReport, ParseError> {
    let mut r = WrkReport::default();
    let mut got_rps = false;
    let mut got_requests = false;
    let mut in_dist = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((p, v)) = t.split_once('%') {
                if let (Ok(p), Some(us)) = (p.trim().parse::<f64>(), wrk_duration_us(v)) {
                    r.latency_us.insert(format!("p{}", p as u32), us);
                    continue;
                }
            }
            in_dist = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().map_err(|_| bad("Requests/sec", t))?;
            got_rps = true;
        } else if t.contains(" requests in ") {
            // "534485 requests in 5.00s, 84.60MB read"
            let mut w = t.split_whitespace();
            r.requests = w
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad("request count", t))?;
            let secs = t
                .split(" requests in ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .and_then(wrk_duration_us)
                .ok_or_else(|| bad("duration", t))?;
            r.seconds = secs / 1e6;
            got_requests = true;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                let mut kv = part.split_whitespace();
                let (Some(k), Some(n)) = (kv.next(), kv.next()) else {
                    return Err(bad("socket errors", t));
                };
                let n: u64 = n.parse().map_err(|_| bad("socket errors", t))?;
                match k {
                    "connect" => r.err_connect = n,
                    "read" => r.err_read = n,
                    "write" => r.err_write = n,
                    "timeout" => r.err_timeout = n,
                    _ => {}
                }
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().map_err(|_| bad("non-2xx", t))?;
        }
    }
    if !got_rps {
        return Err(ParseError::Missing("Requests/sec:"));
    }
    if !got_requests {
        return Err(ParseError::Missing("N requests in T"));
    }
    Ok(r)
}

/// What ab printed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AbReport {
    /// `Complete requests:`.
    pub complete: u64,
    /// `Failed requests:`.
    pub failed: u64,
    /// The breakdown of failures: connect, receive, length, exceptions.
    pub failed_connect: u64,
    /// Receive failures.
    pub failed_receive: u64,
    /// Length mismatches.
    pub failed_length: u64,
    /// Exceptions.
    pub failed_exceptions: u64,
    /// `Non-2xx responses:` (absent means 0).
    pub non_2xx: u64,
    /// `Time taken for tests:` in seconds.
    pub seconds: f64,
    /// `Requests per second:`.
    pub rps: f64,
    /// `Percentage of the requests served within a certain time (ms)`: p50.. p100, in ms.
    pub latency_ms: BTreeMap<String, f64>,
    /// ab stopped early (`Total of N requests completed` after an error).
    pub aborted: Option<String>,
}

fn after_colon_num<T: std::str::FromStr>(t: &str, what: &'static str) -> Result<T, ParseError> {
    t.split_once(':')
        .and_then(|(_, v)| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(what, t))
}

/// Parses ab's report. An ab that stopped on an error (it does on a refused connect) still
/// yields a report, with `aborted` set and `complete` from its `Total of N requests completed`.
pub fn parse_ab(out: &str) -> Result<AbReport, ParseError> {
    let mut r = AbReport::default();
    let mut got_complete = false;
    let mut in_pct = false;
    let mut last_error: Option<String> = None;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Percentage of the requests served") {
            in_pct = true;
            continue;
        }
        if in_pct {
            if let Some((p, v)) = t.split_once('%') {
                if let (Ok(p), Some(Ok(ms))) = (
                    p.trim().parse::<u32>(),
                    v.split_whitespace().next().map(str::parse::<f64>),
                ) {
                    r.latency_ms.insert(format!("p{p}"), ms);
                    continue;
                }
            }
            in_pct = false;
        }
        if t.starts_with("Complete requests:") {
            r.complete = after_colon_num(t, "complete requests")?;
            got_complete = true;
        } else if t.starts_with("Failed requests:") {
            r.failed = after_colon_num(t, "failed requests")?;
        } else if t.starts_with("(Connect:") {
            // "(Connect: 0, Receive: 0, Length: 3, Exceptions: 0)"
            let inner = t.trim_start_matches('(').trim_end_matches(')');
            for part in inner.split(',') {
                let (k, v) = part
                    .split_once(':')
                    .ok_or_else(|| bad("failure kinds", t))?;
                let v: u64 = v.trim().parse().map_err(|_| bad("failure kinds", t))?;
                match k.trim() {
                    "Connect" => r.failed_connect = v,
                    "Receive" => r.failed_receive = v,
                    "Length" => r.failed_length = v,
                    "Exceptions" => r.failed_exceptions = v,
                    _ => {}
                }
            }
        } else if t.starts_with("Non-2xx responses:") {
            r.non_2xx = after_colon_num(t, "non-2xx")?;
        } else if t.starts_with("Time taken for tests:") {
            r.seconds = after_colon_num(t, "time taken")?;
        } else if t.starts_with("Requests per second:") {
            r.rps = after_colon_num(t, "requests per second")?;
        } else if t.starts_with("apr_") || t.contains("Connection reset") {
            last_error = Some(t.to_string());
        } else if let Some(rest) = t.strip_prefix("Total of ") {
            // "Total of 1234 requests completed"
            if !got_complete {
                r.complete = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad("total completed", t))?;
                got_complete = true;
            }
            r.aborted = Some(last_error.clone().unwrap_or_else(|| t.to_string()));
        }
    }
    if !got_complete {
        return Err(ParseError::Missing("Complete requests:"));
    }
    Ok(r)
}

/// What `xdpstack pktgen` printed (its JSON summary).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PktgenReport {
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Replies matched to something sent.
    pub answered: u64,
    /// Seconds of sending.
    pub send_seconds: f64,
    /// Sent per second.
    pub tx_pps: f64,
    /// Answered per second.
    pub answered_pps: f64,
    /// Round-trip percentiles, microseconds (0 when nothing was answered).
    pub p50_us: f64,
    /// 90th.
    pub p90_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// CPU seconds (user + system) of pktgen's threads.
    pub cpu_s: f64,
    /// The frame accounting check ("ok" or what went wrong).
    pub frame_accounting: String,
}

/// What `pktgen --template http` reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpGenReport {
    /// Complete responses.
    pub responses: u64,
    /// Responses per second over the sending time.
    pub rps: f64,
    /// Most connections established at once.
    pub peak_open: u64,
    /// Seconds until every connection was up at once (none: never).
    pub all_open_s: Option<f64>,
    /// Responses that were not 2xx, could not be read, or connections reset by the server.
    pub errors: u64,
    /// Connections given up after the client's retries.
    pub timeouts: u64,
    /// Requests sent again.
    pub retransmits: u64,
    /// Request-to-response percentiles, µs.
    pub p50_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// Per second: (end time s, seconds covered, responses, connections open).
    pub series: Vec<(f64, f64, u64, u64)>,
    /// The frame accounting check.
    pub frame_accounting: String,
}

impl HttpGenReport {
    /// Responses and seconds between `mark` and `end` seconds (whole samples starting at or
    /// after the mark and ending by the end), and the connections open at the first sample at
    /// or after the mark.
    pub fn between(&self, mark: f64, end: f64) -> (u64, f64, u64) {
        let mut n = 0;
        let mut secs = 0.0;
        let mut open = None;
        for &(t, dt, answered, o) in &self.series {
            if t - dt >= mark - 0.05 && t <= end + 0.1 {
                n += answered;
                secs += dt;
            }
            if t >= mark && open.is_none() {
                open = Some(o);
            }
        }
        (n, secs, open.unwrap_or(0))
    }
}

/// CPU seconds (user + system) of all of pktgen's threads in its summary.
fn threads_cpu_s(v: &serde_json::Value) -> f64 {
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    v["threads"].as_array().map_or(0.0, |ts| {
        ts.iter()
            .map(|t| f(&t["cpu_user_s"]) + f(&t["cpu_sys_s"]))
            .sum()
    })
}

/// Parses `pktgen --template http`'s JSON summary.
pub fn parse_pktgen_http(out: &str) -> Result<HttpGenReport, ParseError> {
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|_| bad("pktgen http JSON", out))?;
    let t = &v["totals"];
    let c = &t["counters"];
    if !c.is_object() {
        return Err(ParseError::Missing("totals.counters"));
    }
    let u = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let lat = &v["latency_us"];
    let series = v["per_second"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        f(&s["t"]),
                        f(&s["seconds"]),
                        u(&s["answered"]),
                        u(&s["open"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpGenReport {
        responses: u(&c["responses"]),
        rps: f(&t["responses_per_s"]),
        peak_open: u(&t["peak_open"]),
        all_open_s: t["all_open_s"].as_f64(),
        errors: u(&c["status_other"]) + u(&c["bad_responses"]) + u(&c["rst_received"]),
        timeouts: u(&c["timeouts"]),
        retransmits: u(&c["request_retransmits"]),
        p50_us: f(&lat["p50"]),
        p99_us: f(&lat["p99"]),
        series,
        frame_accounting: v["frame_accounting"].as_str().unwrap_or("").to_string(),
    })
}

/// Parses pktgen's JSON summary.
pub fn parse_pktgen(out: &str) -> Result<PktgenReport, ParseError> {
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|_| bad("pktgen JSON", out))?;
    let t = &v["totals"];
    if !t.is_object() {
        return Err(ParseError::Missing("totals"));
    }
    let u = |x: &serde_json::Value, what: &'static str| x.as_u64().ok_or_else(|| bad(what, out));
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let lat = &v["latency_us"];
    let cpu_s = threads_cpu_s(&v);
    Ok(PktgenReport {
        sent: u(&t["sent"], "sent")?,
        received: u(&t["received"], "received")?,
        answered: u(&t["answered"], "answered")?,
        send_seconds: f(&t["send_seconds"]),
        tx_pps: f(&t["tx_pps"]),
        answered_pps: f(&t["answered_pps"]),
        p50_us: f(&lat["p50"]),
        p90_us: f(&lat["p90"]),
        p99_us: f(&lat["p99"]),
        p999_us: f(&lat["p999"]),
        cpu_s,
        frame_accounting: v["frame_accounting"].as_str().unwrap_or("").to_string(),
    })
}

/// CPU time of a process from the text of `/proc/PID/stat`: (utime + stime) in clock ticks,
/// plus the CPU it last ran on (field 39).
pub fn proc_stat_ticks(stat: &str) -> Result<(u64, Option<u32>), ParseError> {
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let close = stat.rfind(')').ok_or_else(|| bad("/proc stat", stat))?;
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15, processor field 39.
    let field = |n: usize| rest.get(n - 3).copied();
    let utime: u64 = field(14)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("utime", stat))?;
    let stime: u64 = field(15)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("stime", stat))?;
    let cpu = field(39).and_then(|v| v.parse().ok());
    Ok((utime + stime, cpu))
}

/// Parent pid (field 4) from the text of `/proc/PID/stat`.
pub fn proc_stat_ppid(stat: &str) -> Option<i32> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// A `Key:   1234 kB` value from `/proc/PID/status` or `smaps_rollup`, in KiB.
pub fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Per-CPU jiffies from `/proc/stat`: for each `cpuN` line, (busy, softirq, total), where busy
/// excludes idle and iowait.
pub fn proc_stat_cpus(text: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let Some(name) = w.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        let v: Vec<u64> = w.filter_map(|x| x.parse().ok()).collect();
        if v.len() < 7 {
            continue;
        }
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = v.iter().take(8).sum();
        let idle = v[3] + v[4];
        out.push((total - idle, v[6], total));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://198.18.0.1/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   468.34us  102.20us   5.09ms   91.77%
    Req/Sec   107.41k     3.59k  113.12k    78.00%
  Latency Distribution
     50%  453.00us
     75%  487.00us
     90%    1.35ms
     99%    2.01s 
  534485 requests in 5.00s, 84.60MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec: 106897.52
Transfer/sec:     16.92MB
";

    #[test]
    fn wrk_report() {
        let r = parse_wrk(WRK).expect("parses");
        assert_eq!(r.requests, 534_485);
        assert!((r.seconds - 5.0).abs() < 1e-9);
        assert!((r.rps - 106_897.52).abs() < 1e-6);
        assert_eq!(r.latency_us["p50"], 453.0);
        assert_eq!(r.latency_us["p75"], 487.0);
        assert_eq!(r.latency_us["p90"], 1350.0);
        assert!((r.latency_us["p99"] - 2_010_000.0).abs() < 1e-6);
        assert_eq!(
            (r.err_connect, r.err_read, r.err_write, r.err_timeout),
            (1, 2, 3, 4)
        );
        assert_eq!(r.non_2xx, 12);
    }

    #[test]
    fn wrk_without_errors_and_truncated() {
        let clean: String = WRK
            .lines()
            .filter(|l| !l.contains("Socket errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse_wrk(&clean).expect("parses");
        assert_eq!((r.err_connect, r.non_2xx), (0, 0));
        assert_eq!(
            parse_wrk("Running 5s test\n"),
            Err(ParseError::Missing("Requests/sec:"))
        );
        assert!(matches!(
            parse_wrk("Requests/sec: lots\n"),
            Err(ParseError::Bad { .. })
        ));
    }

    #[test]
    fn wrk_units() {
        assert_eq!(wrk_duration_us("12.5us"), Some(12.5));
        assert_eq!(wrk_duration_us("2ms"), Some(2000.0));
        assert_eq!(wrk_duration_us("1.5s"), Some(1_500_000.0));
        assert_eq!(wrk_duration_us("1.00m"), Some(60_000_000.0));
        assert_eq!(wrk_duration_us("fast"), None);
    }

    const AB: &str = "This is ApacheBench, Version 2.3 <$Revision: 1903618 $>
Benchmarking 198.18.0.1 (be patient)
Completed 2000 requests
Finished 20000 requests


Server Software:
Server Hostname:        198.18.0.1
Server Port:            80

Document Path:          /
Document Length:        20 bytes

Concurrency Level:      50
Time taken for tests:   2.345 seconds
Complete requests:      20000
Failed requests:        7
   (Connect: 0, Receive: 2, Length: 5, Exceptions: 0)
Non-2xx responses:      3
Total transferred:      1520000 bytes
Requests per second:    8528.43 [#/sec] (mean)
Time per request:       5.863 [ms] (mean)

Percentage of the requests served within a certain time (ms)
  50%      5
  66%      6
  99%     12
 100%     20 (longest request)
";

    #[test]
    fn ab_report() {
        let r = parse_ab(AB).expect("parses");
        assert_eq!(r.complete, 20_000);
        assert_eq!(r.failed, 7);
        assert_eq!((r.failed_receive, r.failed_length), (2, 5));
        assert_eq!(r.non_2xx, 3);
        assert!((r.seconds - 2.345).abs() < 1e-9);
        assert!((r.rps - 8528.43).abs() < 1e-9);
        assert_eq!(r.latency_ms["p50"], 5.0);
        assert_eq!(r.latency_ms["p99"], 12.0);
        assert_eq!(r.latency_ms["p100"], 20.0);
        assert_eq!(r.aborted, None);
    }

    #[test]
    fn ab_aborted() {
        let out = "Benchmarking 198.18.0.1 (be patient)\n\
                   apr_socket_connect(): Connection refused (111)\n\
                   Total of 1234 requests completed\n";
        let r = parse_ab(out).expect("parses");
        assert_eq!(r.complete, 1234);
        assert_eq!(
            r.aborted.as_deref(),
            Some("apr_socket_connect(): Connection refused (111)")
        );
        assert_eq!(
            parse_ab("nothing"),
            Err(ParseError::Missing("Complete requests:"))
        );
    }

    #[test]
    fn pktgen_http_summary() {
        let out = r#"{"totals": {"sent": 10, "answered": 9, "responses_per_s": 4.5,
          "send_seconds": 2.0, "peak_open": 3, "all_open_s": 0.5,
          "counters": {"requests": 10, "responses": 9, "connects": 3, "status_other": 1,
            "bad_responses": 0, "rst_received": 1, "timeouts": 2, "request_retransmits": 4}},
          "latency_us": {"p50": 10.0, "p99": 20.0},
          "threads": [{"cpu_user_s": 0.5, "cpu_sys_s": 0.25}],
          "per_second": [{"t": 1.0, "seconds": 1.0, "answered": 4, "open": 2},
                         {"t": 2.0, "seconds": 1.0, "answered": 5, "open": 3}],
          "frame_accounting": "ok"}"#;
        let r = parse_pktgen_http(out).expect("parses");
        assert_eq!((r.responses, r.rps, r.peak_open), (9, 4.5, 3));
        assert_eq!((r.errors, r.timeouts, r.retransmits), (2, 2, 4));
        assert_eq!(r.all_open_s, Some(0.5));
        assert_eq!((r.p50_us, r.p99_us), (10.0, 20.0));
        assert_eq!(r.frame_accounting, "ok");
        assert_eq!(r.between(1.0, 2.0), (5, 1.0, 2));
        assert_eq!(r.between(0.0, 2.0), (9, 2.0, 2));
        assert_eq!(r.between(0.0, 1.0), (4, 1.0, 2));
        assert!(parse_pktgen_http("{}").is_err());
    }

    #[test]
    fn pktgen_dns_summaries_read_as_kxdpgun_ones() {
        let tcp = r#"{"xdp_mode":"generic","totals":{"send_seconds":2.0,"counters":{"connects":100,"established":98,"responses":97,"closed":96,"rst_received":1,"status_2xx":95}}}"#;
        let r = parse_pktgen_dns(tcp, true).expect("parses");
        assert_eq!(
            (
                r.sent,
                r.established,
                r.replies,
                r.closed,
                r.reset,
                r.noerror
            ),
            (100, 98, 97, 96, 1, 95)
        );
        assert_eq!(
            (r.proto.as_str(), r.mode.as_str(), r.duration_s),
            ("TCP", "generic", 2.0)
        );
        let udp = r#"{"xdp_mode":"native","totals":{"sent":1000,"answered":990,"send_seconds":1.0,"counters":{"dns_rcode_errors":10}}}"#;
        let r = parse_pktgen_dns(udp, false).expect("parses");
        assert_eq!(
            (r.sent, r.replies, r.noerror, r.established),
            (1000, 990, 980, 0)
        );
        assert_eq!(
            parse_pktgen_dns("{}", true),
            Err(ParseError::Missing("totals.counters"))
        );
        assert!(parse_pktgen_dns("no", false).is_err());
    }

    #[test]
    fn pktgen_summary() {
        let out = r#"{
  "tool": "xdpstack pktgen", "template": "echo", "rate_pps": 0,
  "totals": {"sent": 1000, "received": 990, "answered": 980, "lost": 20,
             "answered_ratio": 0.98, "send_seconds": 2.0, "tx_pps": 500.0,
             "rx_pps": 495.0, "answered_pps": 490.0, "counters": {}},
  "threads": [{"thread": 0, "cpu_user_s": 0.5, "cpu_sys_s": 0.25}],
  "latency_us": {"count": 980, "min": 5.0, "mean": 9.0, "p50": 8.0, "p90": 12.0,
                 "p99": 20.5, "p999": 40.0, "max": 90.0},
  "frame_accounting": "ok"
}"#;
        let r = parse_pktgen(out).expect("parses");
        assert_eq!((r.sent, r.received, r.answered), (1000, 990, 980));
        assert_eq!(r.answered_pps, 490.0);
        assert_eq!((r.p50_us, r.p99_us, r.p999_us), (8.0, 20.5, 40.0));
        assert_eq!(r.cpu_s, 0.75);
        assert_eq!(r.frame_accounting, "ok");
        // Nothing answered: latency is null.
        let none = out.replace(
            r#""latency_us": {"count": 980, "min": 5.0, "mean": 9.0, "p50": 8.0, "p90": 12.0,
                 "p99": 20.5, "p999": 40.0, "max": 90.0}"#,
            r#""latency_us": null"#,
        );
        assert_eq!(parse_pktgen(&none).expect("parses").p99_us, 0.0);
        assert_eq!(parse_pktgen("{}"), Err(ParseError::Missing("totals")));
        assert!(parse_pktgen("not json").is_err());
    }

    #[test]
    fn cpu_lines() {
        let t = "cpu  10 0 10 80 0 0 5 0 0 0\ncpu0 5 0 5 40 0 0 3 0 0 0\ncpu1 5 0 5 38 2 0 2 1 0 0\nintr 1 2\n";
        assert_eq!(proc_stat_cpus(t), vec![(13, 3, 53), (13, 2, 53)]);
    }

    #[test]
    fn proc_stat() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    3 0 100 1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(proc_stat_ticks(stat), Ok((325, Some(1))));
        assert_eq!(proc_stat_ppid(stat), Some(1));
        assert!(proc_stat_ticks("garbage").is_err());
        let status = "Name:\tnginx\nVmRSS:\t   10240 kB\nThreads:\t1\n";
        assert_eq!(proc_kib(status, "VmRSS"), Some(10240));
        assert_eq!(proc_kib(status, "Pss"), None);
    }
}

/// What `kxdpgun` printed at the end of a run (UDP or `-T` TCP mode).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KxdpgunReport {
    /// "UDP" or "TCP", from the first line.
    pub proto: String,
    /// XDP mode from the first line ("native mode", "generic mode").
    pub mode: String,
    /// UDP: queries sent; TCP: SYNs sent (one query per connection).
    pub sent: u64,
    /// TCP: handshakes completed.
    pub established: u64,
    /// DNS replies received.
    pub replies: u64,
    /// TCP: connections closed by the FIN exchange.
    pub closed: u64,
    /// TCP: connections reset.
    pub reset: u64,
    /// Replies with rcode NOERROR.
    pub noerror: u64,
    /// Seconds of the run, as kxdpgun reports it.
    pub duration_s: f64,
}

/// `pktgen --template dnstcp --close` (tcp) or `--template dns` (UDP) read as kxdpgun's
/// summary: SYNs (queries) sent, handshakes, answers, FIN closes, resets received and
/// NOERROR answers, over the sending time.
pub fn parse_pktgen_dns(out: &str, tcp: bool) -> Result<KxdpgunReport, ParseError> {
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|_| bad("pktgen JSON", out))?;
    let t = &v["totals"];
    let c = &t["counters"];
    if !c.is_object() {
        return Err(ParseError::Missing("totals.counters"));
    }
    let u = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
    let mode = v["xdp_mode"].as_str().unwrap_or("").to_string();
    let duration_s = t["send_seconds"].as_f64().unwrap_or(0.0);
    Ok(if tcp {
        KxdpgunReport {
            proto: "TCP".into(),
            mode,
            sent: u(&c["connects"]),
            established: u(&c["established"]),
            replies: u(&c["responses"]),
            closed: u(&c["closed"]),
            reset: u(&c["rst_received"]),
            noerror: u(&c["status_2xx"]),
            duration_s,
        }
    } else {
        let answered = u(&t["answered"]);
        KxdpgunReport {
            proto: "UDP".into(),
            mode,
            sent: u(&t["sent"]),
            established: 0,
            replies: answered,
            closed: 0,
            reset: 0,
            noerror: answered.saturating_sub(u(&c["dns_rcode_errors"])),
            duration_s,
        }
    })
}

/// First integer in `s` (digits after optional spaces).
fn first_u64(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

/// Parses kxdpgun's summary:
///
/// ```text
/// using interface peer0, XDP threads 1, TCP, native mode
/// total SYNs:        60001 (20000 pps)
/// total established: 60001 (20000 pps) (100%)
/// total replies:     60001 (20000 pps) (100%)
/// total closed:      60001 (20000 pps) (100%)
/// responded NOERROR:   60001
/// duration: 3 s
/// ```
///
/// (UDP mode says `total queries:` instead of `total SYNs:`.)
pub fn parse_kxdpgun(out: &str) -> Result<KxdpgunReport, ParseError> {
    let mut r = KxdpgunReport::default();
    let mut seen_sent = false;
    let mut seen_duration = false;
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("using interface") {
            let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
            if let Some(p) = parts.get(2) {
                r.proto = p.to_string();
            }
            if let Some(m) = parts.get(3) {
                r.mode = m.to_string();
            }
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let n = first_u64(v);
        match k.trim() {
            "total SYNs" | "total queries" => {
                r.sent = n.ok_or_else(|| bad("kxdpgun sent", line))?;
                seen_sent = true;
            }
            "total established" => r.established = n.unwrap_or(0),
            "total replies" => r.replies = n.unwrap_or(0),
            "total closed" => r.closed = n.unwrap_or(0),
            "total reset" => r.reset = n.unwrap_or(0),
            "responded NOERROR" => r.noerror = n.unwrap_or(0),
            "duration" => {
                r.duration_s = v
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse().ok())
                    .ok_or_else(|| bad("kxdpgun duration", line))?;
                seen_duration = true;
            }
            _ => {}
        }
    }
    if !seen_sent {
        return Err(ParseError::Missing("kxdpgun total SYNs/queries"));
    }
    if !seen_duration {
        return Err(ParseError::Missing("kxdpgun duration"));
    }
    Ok(r)
}

/// hping3's closing statistics: (packets transmitted, packets received). hping3 spells it
/// "tramitted"; both spellings are accepted.
pub fn parse_hping3(out: &str) -> Result<(u64, u64), ParseError> {
    for line in out.lines() {
        let l = line.trim();
        if l.contains("packets tramitted") || l.contains("packets transmitted") {
            let mut parts = l.split(',');
            let tx = parts.next().and_then(first_u64);
            let rx = parts.next().and_then(first_u64);
            if let (Some(tx), Some(rx)) = (tx, rx) {
                return Ok((tx, rx));
            }
            return Err(bad("hping3 statistics", line));
        }
    }
    Err(ParseError::Missing("hping3 statistics"))
}

/// `/proc/net/netstat` or `/proc/net/snmp`: pairs of lines `Prefix: names...` /
/// `Prefix: values...` into `Prefix.Name -> value`.
pub fn proc_net_counters(text: &str) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((p1, n)), Some((p2, v))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (k, x) in n.split_whitespace().zip(v.split_whitespace()) {
            if let Ok(x) = x.parse::<u64>() {
                out.insert(format!("{p1}.{k}"), x);
            }
        }
    }
    out
}

/// Every number in a JSON value, flattened to `prefix.key.sub` (array items by index).
pub fn flatten_numbers(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x));
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                flatten_numbers(&format!("{prefix}.{k}"), x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_numbers(&format!("{prefix}.{i}"), x, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    const KX_TCP: &str = "using interface peer0, XDP threads 1, TCP, native mode
thread#00: sent 60001, received 60001
total SYNs:        60001 (20000 pps)
total established: 60001 (20000 pps) (100%)
total replies:     59990 (19996 pps) (99%)
total closed:      59980 (19993 pps) (99%)
total reset:       11 (3 pps) (0%)
average DNS reply size: 48 B
average Ethernet reply rate: 43840730 bps (43.84 Mbps)
responded NOERROR:   59990
duration: 3 s
";

    const KX_UDP: &str = "using interface peer0, XDP threads 1, UDP, native mode
thread#00: sent 40010, received 40010
total queries:     40010 (20005 pps)
total replies:     40010 (20005 pps) (100%)
average DNS reply size: 48 B
average Ethernet reply rate: 14403600 bps (14.40 Mbps)
responded NOERROR:   40010
duration: 2 s
";

    #[test]
    fn kxdpgun_tcp_and_udp() {
        let r = parse_kxdpgun(KX_TCP).expect("tcp");
        assert_eq!(r.proto, "TCP");
        assert_eq!(r.mode, "native mode");
        assert_eq!(
            (
                r.sent,
                r.established,
                r.replies,
                r.closed,
                r.reset,
                r.noerror
            ),
            (60001, 60001, 59990, 59980, 11, 59990)
        );
        assert_eq!(r.duration_s, 3.0);
        let u = parse_kxdpgun(KX_UDP).expect("udp");
        assert_eq!((u.proto.as_str(), u.sent, u.replies), ("UDP", 40010, 40010));
        assert_eq!(u.established, 0);
        assert!(parse_kxdpgun("failed to initialize XDP socket").is_err());
        assert!(parse_kxdpgun("total SYNs: x (1 pps)\nduration: 1 s").is_err());
        assert!(parse_kxdpgun("total SYNs: 5 (1 pps)\n").is_err());
    }

    #[test]
    fn hping3_statistics() {
        let out = "HPING 198.18.0.1 (peer0 198.18.0.1): S set, 40 headers + 0 data bytes
hping in flood mode, no replies will be shown

--- 198.18.0.1 hping statistic ---
1234567 packets tramitted, 0 packets received, 100% packet loss
round-trip min/avg/max = 0.0/0.0/0.0 ms
";
        assert_eq!(parse_hping3(out).expect("stats"), (1_234_567, 0));
        assert_eq!(
            parse_hping3("5 packets transmitted, 5 packets received, 0% packet loss")
                .expect("stats"),
            (5, 5)
        );
        assert!(parse_hping3("HPING 198.18.0.1: S set").is_err());
        assert!(parse_hping3("x packets tramitted, y packets received").is_err());
    }

    #[test]
    fn netstat_pairs() {
        let t = "TcpExt: SyncookiesSent SyncookiesRecv ListenDrops
TcpExt: 10 2 7
IpExt: InNoRoutes
IpExt: 3
Broken: a b
";
        let m = proc_net_counters(t);
        assert_eq!(m.get("TcpExt.SyncookiesSent"), Some(&10));
        assert_eq!(m.get("TcpExt.ListenDrops"), Some(&7));
        assert_eq!(m.get("IpExt.InNoRoutes"), Some(&3));
        assert!(!m.keys().any(|k| k.starts_with("Broken")));
    }

    #[test]
    fn flatten() {
        let v = serde_json::json!({"a": 1, "b": {"c": 2.5, "d": "x"}, "e": [3, {"f": 4}]});
        let mut out = Vec::new();
        flatten_numbers("s", &v, &mut out);
        out.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            out,
            vec![
                ("s.a".to_string(), 1.0),
                ("s.b.c".to_string(), 2.5),
                ("s.e.0".to_string(), 3.0),
                ("s.e.1.f".to_string(), 4.0)
            ]
        );
    }
}
