//! docs/BENCHMARKS.md and docs/bench/*.png, regenerated from bench/results/*.json.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::env;
use crate::model::{Case, ScenarioResult};
use crate::procs::{err, BenchError, Result};

/// A 1-minute load average below this counts as a quiet machine: `main` waits for it
/// before each scenario (`--settle`) and the report flags scenarios that started above it.
pub const QUIET_LOAD: f64 = 0.5;

/// Scenario ids in report order.
pub const ORDER: [&str; 11] = [
    "http",
    "udp",
    "dnstcp",
    "fairness",
    "churn",
    "conns",
    "synflood",
    "neighflood",
    "lossy",
    "attach",
    "overload",
];

/// Scenarios reported after [`ORDER`] but not run by `all` (long: run on their own).
pub const REPORTED_ONLY: [&str; 1] = ["wan"];

/// Columns shown per scenario: (metric key, header).
fn columns(scenario: &str) -> &'static [(&'static str, &'static str)] {
    match scenario {
        "http" | "attach" => &[
            ("rps", "req/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("socket_errors", "socket errors"),
            ("non_2xx", "non-2xx"),
            ("server_cpu_s", "server CPU s"),
            ("server_cpu_ms_per_1k", "server CPU ms / 1k req"),
            ("client_cpu_s", "wrk CPU s"),
        ],
        "udp" => &[
            ("pps", "answers/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("p999_us", "p99.9 µs"),
            ("lost", "lost"),
            ("bad", "bad"),
            ("server_cpu_s", "server CPU s"),
            ("server_cpu_ms_per_1k", "server CPU ms / 1k"),
            ("client_cpu_s", "generator CPU s"),
        ],
        "fairness" => &[
            ("worker0", "worker 0"),
            ("worker1", "worker 1"),
            ("worker2", "worker 2"),
            ("worker3", "worker 3"),
            ("max_min", "max/min"),
            ("cps", "conn/s"),
            ("failed", "failed"),
            ("server_cpu_s", "server CPU s"),
        ],
        "churn" => &[
            ("attempted", "attempted"),
            ("ok", "ok"),
            ("failed", "failed"),
            ("refused", "refused"),
            ("reset", "reset"),
            ("connect_timeout", "connect timeout"),
            ("timeout", "answer timeout"),
            ("listeners_replaced", "listeners replaced"),
            ("migrated", "migrated"),
            ("handoff_dropped", "handoffs dropped"),
            ("flows_not_accepted", "flows not accepted"),
            ("cps", "conn/s"),
        ],
        "conns" => &[
            ("rps", "req/s"),
            ("rps_steady", "req/s (steady)"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("established", "established (peak)"),
            ("connect_s", "all connected after s"),
            ("errors", "errors"),
            ("timeouts", "timeouts"),
            ("rss_idle_kib", "RSS idle KiB"),
            ("rss_kib", "RSS KiB"),
            ("kernel_tcp_mem_kib", "kernel TCP mem KiB (host)"),
            ("xsk_rx_ring_full", "XSK rx ring full"),
            ("server_cpu_ms_per_1k", "server CPU ms / 1k req"),
            ("established_at_mark", "established at steady mark"),
            (
                "server_cpu_ms_per_1k_steady",
                "server CPU ms / 1k req (steady)",
            ),
        ],
        "dnstcp" => &[
            ("answers_per_s", "answers/s (best)"),
            ("answers_per_s_q50k", "answers/s at 50k offered"),
            ("answers_per_s_q75k", "answers/s at 75k offered"),
            ("answers_per_s_q100k", "answers/s at 100k offered"),
            ("answers_per_s_q150k", "answers/s at 150k offered"),
            ("sent_pct_of_offered", "SYNs sent, % of offered (best)"),
            ("established", "established"),
            ("replies", "answers"),
            ("reset", "reset"),
            ("server_cpu_ms_per_1k", "server CPU ms / 1k answers"),
            ("client_cpu_s", "kxdpgun CPU s"),
        ],
        "lossy" => &[
            ("transfer_s", "transfer s (all connections)"),
            ("conn_median_s", "per-connection s, median"),
            ("conn_max_s", "per-connection s, max"),
            ("goodput_mib_s", "goodput MiB/s each way"),
            ("failed", "failed transfers"),
            ("server_echoed_mib", "server echoed MiB"),
        ],
        "wan" => &[
            ("download_s", "download s"),
            ("goodput_mbit_s", "goodput Mbit/s"),
            ("exact", "complete, byte-exact"),
            ("bad_files", "files wrong"),
            ("connections", "connections"),
            ("max_gap_ms", "longest gap ms"),
            ("max_gap_rto", "longest gap / RTO"),
            ("wall_s", "cut at s"),
        ],
        "synflood" => &[
            ("success_during_pct", "success during flood %"),
            ("success_after_pct", "success after flood %"),
            ("failed", "failed requests"),
            ("last_failure_at_s", "last failure started at s"),
            ("probe_p50_ms", "request p50 ms"),
            ("probe_max_ms", "request max ms"),
            ("rss_before_kib", "RSS before KiB"),
            ("rss_growth_mib", "RSS growth MiB"),
            ("flood_pps", "flood SYN/s"),
            ("server_cpu_flood_pct", "server CPU % during flood"),
            ("kernel.TcpExt.SyncookiesSent", "kernel SYN cookies sent"),
            ("kernel.TcpExt.ListenDrops", "kernel listen drops"),
        ],
        "neighflood" => &[
            ("distinct_sources", "distinct sources (cost phase)"),
            ("flood_pps", "flood NS/s sent"),
            ("answered_pps", "NS answered/s"),
            ("server_cpu_pct", "server CPU %"),
            ("cpu_us_per_pkt", "server CPU µs / flood packet"),
            ("neighbors.entries", "table entries"),
            ("neighbors.evicted", "evicted"),
            ("refused", "refused updates"),
            ("l2.neighbor_cache_evicted", "core cache evictions"),
            ("xsk.rx_ring_full", "dropped at the XSK rx ring"),
            ("served.flood_pps", "served phase: flood NS/s"),
            ("served.answered_pps", "served phase: NS answered/s"),
            ("served.neighbors.evicted", "served phase: evicted"),
            (
                "served.neighbors.protected",
                "served phase: confirmed entries",
            ),
            ("success_pct", "client served %"),
            ("request_p50_ms", "request p50 ms"),
            ("request_max_ms", "request max ms"),
        ],
        "overload" => &[
            ("capacity", "capacity /s"),
            ("peak", "peak /s"),
            ("min_pct_of_peak", "lowest goodput, % of peak"),
            ("max_run_diff_pct", "run 2 vs run 1, largest %"),
            ("recovery_served", "new clients served (of 100)"),
        ],
        _ => &[],
    }
}

pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "∞".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        // Thousands separators.
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Loads every results file there is.
pub fn load_results(dir: &Path) -> Vec<ScenarioResult> {
    let mut out = Vec::new();
    for id in ORDER.iter().chain(REPORTED_ONLY.iter()) {
        let p = dir.join(format!("{id}.json"));
        if let Ok(text) = std::fs::read_to_string(&p) {
            match serde_json::from_str::<ScenarioResult>(&text) {
                Ok(r) => out.push(r),
                Err(e) => eprintln!("warning: {}: {e}", p.display()),
            }
        }
    }
    out
}

/// Writes one scenario's results file.
pub fn save(r: &ScenarioResult) -> Result<PathBuf> {
    let dir = env::results_dir();
    std::fs::create_dir_all(&dir)?;
    let p = dir.join(format!("{}.json", r.scenario));
    std::fs::write(&p, serde_json::to_string_pretty(r)?)?;
    Ok(p)
}

const CORE_COLS: [(&str, &str); 5] = [
    ("core0_busy_pct", "core 0 busy %"),
    ("core0_softirq_pct", "core 0 softirq %"),
    ("core1_busy_pct", "core 1 busy %"),
    ("core1_softirq_pct", "core 1 softirq %"),
    ("loadavg1_before", "load avg (1 min) before run"),
];

fn case_table(md: &mut String, scenario: &str, c: &Case) {
    let cols: Vec<(&str, &str)> = columns(scenario)
        .iter()
        .chain(CORE_COLS.iter())
        .copied()
        .filter(|(k, _)| c.subjects.iter().any(|s| s.median.contains_key(*k)))
        .collect();
    let _ = writeln!(md, "**{}** — load: `{}`\n", c.name, c.load);
    let _ = write!(md, "| subject | runs |");
    for (_, h) in &cols {
        let _ = write!(md, " {h} |");
    }
    let _ = write!(md, "\n|---|---|");
    for _ in &cols {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for s in &c.subjects {
        let _ = write!(md, "| {} | {} |", s.name, s.runs.len());
        for (k, _) in &cols {
            let v = s.median.get(*k).map_or("–".to_string(), |v| fmt_num(*v));
            let _ = write!(md, " {v} |");
        }
        md.push('\n');
    }
    md.push('\n');
    if !c.ratios.is_empty() {
        let _ = writeln!(md, "| ratio (same run) | per run | median |\n|---|---|---|");
        for r in &c.ratios {
            let per: Vec<String> = r.per_run.iter().map(|v| format!("{v:.3}")).collect();
            let _ = writeln!(
                md,
                "| {} {} / {} | {} | {} |",
                r.metric,
                r.num,
                r.den,
                if per.is_empty() {
                    "–".into()
                } else {
                    per.join(", ")
                },
                r.median
                    .map_or("not measured".into(), |v| format!("**{v:.3}**"))
            );
        }
        md.push('\n');
    }
    for s in &c.subjects {
        for d in &s.detail {
            let _ = writeln!(md, "- {}: {d}", s.name);
        }
        for e in &s.errors {
            let _ = writeln!(md, "- {} **error**: {e}", s.name);
        }
    }
    md.push('\n');
}

/// Renders BENCHMARKS.md.
pub fn markdown(results: &[ScenarioResult], plots: &[(String, String)]) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Generated by `cargo run --release -p xdpstack-bench -- report` from \
         `bench/results/*.json` (written by `cargo run --release -p xdpstack-bench -- all`). \
         Do not edit by hand.\n\n",
    );
    if results.is_empty() {
        md.push_str(
            "No results yet: run `cargo run --release -p xdpstack-bench -- all` as root.\n",
        );
        return md;
    }
    let quick = results.iter().any(|r| r.meta.quick);
    let few_runs = results.iter().any(|r| r.meta.runs < 3);
    if quick || few_runs {
        md.push_str(
            "> **SMOKE RUN — not the project's figures.** Some results below come from quick \
             mode (short durations, fewer connections) and/or fewer than 3 runs, taken while \
             other engineers were building and testing on the same two cores. They show that \
             the suite works end to end; the ratios are noisy. Regenerate on a quiet machine \
             with `cargo run --release -p xdpstack-bench -- all`.\n\n",
        );
    }
    let busy: Vec<String> = results
        .iter()
        .filter(|r| {
            r.meta
                .loadavg_before
                .split_whitespace()
                .next()
                .and_then(|l| l.parse::<f64>().ok())
                .is_some_and(|l| l >= QUIET_LOAD)
        })
        .map(|r| format!("{} (load average {})", r.scenario, r.meta.loadavg_before))
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            md,
            "> **Load before the scenarios.** The 1-minute load average was at or above {QUIET_LOAD} \
             when these scenarios started: {}. It is either other work on the machine or the \
             suite's own previous scenario still decaying (the load average is a moving mean \
             over minutes; the suite waits up to `--settle` seconds, 150 by default, for it to \
             fall before each scenario). On 2 cores other work \
             competes with the servers and the load generators: check the per-run load \
             averages below, and whether anything else ran, before quoting a ratio.\n",
            busy.join(", ")
        );
    }
    let m = &results[0].meta;
    md.push_str("## Machine and build\n\n| | |\n|---|---|\n");
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let _ = writeln!(md, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(md, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(
        md,
        "| memory | {:.1} GiB |",
        m.mem_total_kib as f64 / 1048576.0
    );
    let _ = writeln!(md, "| build profile | {} |", m.profile);
    let _ = writeln!(md, "| tree | {} |", m.git);
    for (k, v) in &m.tools {
        let _ = writeln!(md, "| {k} | {} |", v.replace('|', "/"));
    }
    md.push_str("\n| scenario | date | mode | runs | load avg before | wall time |\n|---|---|---|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} s |",
            r.scenario,
            r.meta.date,
            if r.meta.quick {
                "quick (smoke)"
            } else {
                "full"
            },
            r.meta.runs,
            r.meta.loadavg_before,
            r.wall_seconds
        );
    }
    md.push_str("\n## Tracked targets\n\n| target | goal | measured | status | scenario (mode, runs) | detail |\n|---|---|---|---|---|---|\n");
    for r in results {
        for t in &r.targets {
            let status = match t.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {status} | {} ({}, {}) | {} |",
                t.name,
                t.goal,
                t.value.map_or("–".into(), |v| format!("{v:.3}")),
                r.scenario,
                if r.meta.quick { "quick" } else { "full" },
                r.meta.runs,
                t.detail.replace('|', "/")
            );
        }
    }
    md.push_str(
        "\nRatios are medians of per-run ratios: in every run each subject is measured one \
         after the other on the same cores, so a ratio compares figures taken minutes apart at \
         most. CPU seconds are utime+stime from /proc/PID/stat (all threads and child \
         processes) read before and after the load; the load tools' CPU comes from \
         getrusage(RUSAGE_CHILDREN).\n\n",
    );
    for r in results {
        let _ = writeln!(md, "## {}\n", r.title);
        let _ = writeln!(
            md,
            "Scenario `{}`: `cargo run --release -p xdpstack-bench -- {}`. {} run(s) per figure, {}.\n",
            r.scenario,
            r.scenario,
            r.meta.runs,
            if r.meta.quick { "quick mode" } else { "full mode" }
        );
        let _ = writeln!(md, "Cores: {}\n", r.cores);
        for c in &r.cases {
            case_table(&mut md, &r.scenario, c);
        }
        for (sc, file) in plots {
            if sc == &r.scenario {
                let _ = writeln!(md, "![{sc}](bench/{file})\n");
            }
        }
        if !r.notes.is_empty() {
            md.push_str("Notes:\n\n");
            for n in &r.notes {
                let _ = writeln!(md, "- {n}");
            }
            md.push('\n');
        }
        if !r.placement.is_empty() {
            md.push_str(
                "<details><summary>Where each process ran (sampled under load)</summary>\n\n",
            );
            for p in &r.placement {
                let _ = writeln!(
                    md,
                    "- **{}** in `{}`, taskset `{}`: `{}`",
                    p.label, p.netns, p.taskset, p.cmdline
                );
                for t in p.tasks.iter().take(12) {
                    let _ = writeln!(md, "  - {t}");
                }
                if p.tasks.len() > 12 {
                    let _ = writeln!(md, "  - … {} more threads", p.tasks.len() - 12);
                }
            }
            md.push_str("\n</details>\n\n");
        }
    }
    md.push_str(
        "## Regenerating\n\n\
         As root, on a machine where nothing else runs:\n\n\
         ```\n\
         cargo run --release -p xdpstack-bench -- all            # every scenario, 3 runs each\n\
         cargo run --release -p xdpstack-bench -- http --runs 5  # one scenario\n\
         cargo run --release -p xdpstack-bench -- all --quick    # smoke run (short, 1 run)\n\
         cargo run --release -p xdpstack-bench -- report         # this page from bench/results\n\
         ```\n",
    );
    md
}

fn font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok {
        Ok(())
    } else {
        err("no TrueType font found (apt-get install fonts-dejavu-core)")
    }
}

fn perr<E: std::fmt::Debug>(e: E) -> BenchError {
    BenchError::Msg(format!("plot: {e:?}"))
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// A grouped bar chart: one group per category, one bar per series.
pub fn bars(
    path: &Path,
    title: &str,
    ylabel: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(perr)?;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let ymax = if max > 0.0 { max * 1.15 } else { 1.0 };
    let n = groups.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(perr)?;
    let g = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .y_desc(ylabel)
        .x_labels(2 * n + 1)
        .x_label_formatter(&move |x| {
            // Group names at the middle of each group (key points fall on halves).
            if (x - x.floor() - 0.5).abs() < 1e-6 {
                g.get(x.floor() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()
        .map_err(perr)?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (si, (name, vals)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let rects: Vec<Rectangle<(f64, f64)>> = vals
            .iter()
            .enumerate()
            .filter_map(|(gi, v)| {
                let v = (*v)?;
                let v = if v.is_finite() { v } else { ymax };
                let x0 = gi as f64 + 0.1 + si as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.92, v)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(perr)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(perr)?;
    root.present().map_err(perr)?;
    Ok(())
}

/// Lines over a log-scale x axis.
pub fn lines(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(perr)?;
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let xmin = xs.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let xmax = xs.fold(0.0f64, f64::max).max(xmin * 10.0);
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0f64..ymax)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()
        .map_err(perr)?;
    for (si, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(perr)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(perr)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(perr)?;
    root.present().map_err(perr)?;
    Ok(())
}

/// Bars of one metric: one group per case, one bar per subject (subjects by first appearance).
fn case_bars(
    r: &ScenarioResult,
    cases: &[&Case],
    metric: &str,
    path: &Path,
    title: &str,
    ylabel: &str,
) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for c in cases {
        for s in &c.subjects {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    let groups: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let series: Vec<(String, Vec<Option<f64>>)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                cases
                    .iter()
                    .map(|c| c.subject(n).and_then(|s| s.median.get(metric).copied()))
                    .collect(),
            )
        })
        .collect();
    let _ = r;
    bars(path, title, ylabel, &groups, &series)
}

/// Draws the plots of every result; returns (scenario, file name) of each plot drawn.
pub fn plots(results: &[ScenarioResult], dir: &Path) -> Vec<(String, String)> {
    let _ = std::fs::create_dir_all(dir);
    let mut out = Vec::new();
    let quick = |r: &ScenarioResult| if r.meta.quick { " (smoke run)" } else { "" };
    for r in results {
        let file = format!("{}.png", r.scenario);
        let path = dir.join(&file);
        let res = match r.scenario.as_str() {
            "wan" => {
                let cases: Vec<&Case> = r
                    .cases
                    .iter()
                    .filter(|c| c.name.starts_with("RTT"))
                    .collect();
                case_bars(
                    r,
                    &cases,
                    "goodput_mbit_s",
                    &path,
                    &format!("WAN downloads: goodput, median{}", quick(r)),
                    "Mbit/s",
                )
            }
            "http" => {
                let cases: Vec<&Case> = r.cases.iter().collect();
                case_bars(
                    r,
                    &cases,
                    "rps",
                    &path,
                    &format!("HTTP req/s, median{}", quick(r)),
                    "requests/s",
                )
            }
            "udp" => {
                let cases: Vec<&Case> = r
                    .cases
                    .iter()
                    .filter(|c| c.name.contains("throughput"))
                    .collect();
                case_bars(
                    r,
                    &cases,
                    "pps",
                    &path,
                    &format!("UDP answers/s, median{}", quick(r)),
                    "answers/s",
                )
            }
            "fairness" => {
                let groups: Vec<String> = r
                    .cases
                    .first()
                    .map(|c| c.subjects.iter().map(|s| s.name.clone()).collect())
                    .unwrap_or_default();
                let workers = (0..4)
                    .filter(|w| {
                        r.cases.iter().any(|c| {
                            c.subjects
                                .iter()
                                .any(|s| s.median.contains_key(&format!("worker{w}")))
                        })
                    })
                    .count();
                let series: Vec<(String, Vec<Option<f64>>)> = (0..workers)
                    .map(|w| {
                        (
                            format!("worker {w}"),
                            r.cases
                                .first()
                                .map(|c| {
                                    c.subjects
                                        .iter()
                                        .map(|s| s.median.get(&format!("worker{w}")).copied())
                                        .collect()
                                })
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                bars(
                    &path,
                    &format!("Connections per worker, median{}", quick(r)),
                    "connections",
                    &groups,
                    &series,
                )
            }
            "churn" => {
                let cases: Vec<&Case> = r.cases.iter().collect();
                let groups: Vec<String> = cases
                    .first()
                    .map(|c| c.subjects.iter().map(|s| s.name.clone()).collect())
                    .unwrap_or_default();
                let series = vec![(
                    "failed connections".to_string(),
                    cases
                        .first()
                        .map(|c| {
                            c.subjects
                                .iter()
                                .map(|s| s.median.get("failed").copied())
                                .collect()
                        })
                        .unwrap_or_default(),
                )];
                bars(
                    &path,
                    &format!(
                        "Failed connections under listener churn, median{}",
                        quick(r)
                    ),
                    "failed",
                    &groups,
                    &series,
                )
            }
            "conns" => {
                let mut names: Vec<String> = Vec::new();
                for c in &r.cases {
                    for s in &c.subjects {
                        if !names.contains(&s.name) {
                            names.push(s.name.clone());
                        }
                    }
                }
                let level = |c: &Case| {
                    c.name
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<f64>().ok())
                };
                let pts = |metric: &str, scale: f64| -> Vec<(String, Vec<(f64, f64)>)> {
                    names
                        .iter()
                        .map(|n| {
                            (
                                n.clone(),
                                r.cases
                                    .iter()
                                    .filter_map(|c| {
                                        Some((level(c)?, c.subject(n)?.median.get(metric)? * scale))
                                    })
                                    .collect(),
                            )
                        })
                        .collect()
                };
                let a = lines(
                    &path,
                    &format!("req/s vs concurrent connections{}", quick(r)),
                    "connections",
                    "requests/s",
                    &pts("rps", 1.0),
                );
                let mem = format!("{}-memory.png", r.scenario);
                let b = lines(
                    &dir.join(&mem),
                    &format!("Server RSS vs concurrent connections{}", quick(r)),
                    "connections",
                    "RSS MiB",
                    &pts("rss_kib", 1.0 / 1024.0),
                );
                if b.is_ok() {
                    out.push((r.scenario.clone(), mem));
                }
                a
            }
            "overload" => {
                let series: Vec<(String, Vec<(f64, f64)>)> = r
                    .cases
                    .iter()
                    .flat_map(|c| {
                        c.subjects.iter().map(move |s| {
                            (
                                format!("{}: {}", c.name, s.name),
                                crate::scenarios::overload::plot_points(s),
                            )
                        })
                    })
                    .filter(|(_, p)| !p.is_empty())
                    .collect();
                lines(
                    &path,
                    &format!("Goodput vs offered load, % of own peak{}", quick(r)),
                    "offered, % of the server's capacity",
                    "goodput, % of its peak",
                    &series,
                )
            }
            _ => continue,
        };
        match res {
            Ok(()) => out.push((r.scenario.clone(), file)),
            Err(e) => eprintln!("warning: plot {}: {e}", path.display()),
        }
    }
    out.sort();
    out
}

/// Regenerates docs/BENCHMARKS.md and the plots from bench/results.
pub fn regenerate() -> Result<PathBuf> {
    let results = load_results(&env::results_dir());
    let docs = env::repo_root().join("docs");
    let plots = plots(&results, &docs.join("bench"));
    let md = markdown(&results, &plots);
    let path = docs.join("BENCHMARKS.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(106897.52), "106,898");
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(-1500.0), "-1,500");
        assert_eq!(fmt_num(12.345), "12.35");
        assert_eq!(fmt_num(0.0123), "0.012");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(f64::INFINITY), "∞");
    }

    #[test]
    fn empty_report_says_how_to_run() {
        let md = markdown(&[], &[]);
        assert!(md.contains("No results yet"));
    }
}
