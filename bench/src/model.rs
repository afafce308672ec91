//! The results files (bench/results/SCENARIO.json): what was measured, per run, with medians,
//! paired ratios, where every process ran, and the tracked targets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::procs::{BenchError, Placement, Result};
use crate::stats;

/// One run's metrics: name -> value.
pub type Metrics = BTreeMap<String, f64>;

/// The machine and the build, recorded with every result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    /// UTC date and time of the run.
    pub date: String,
    /// `uname -r`.
    pub kernel: String,
    /// `nproc`.
    pub nproc: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Memory, from /proc/meminfo.
    pub mem_total_kib: u64,
    /// Cargo profile the stack binary was built with.
    pub profile: String,
    /// `git describe` of the tree.
    pub git: String,
    /// Quick (smoke) mode: short durations, fewer connections.
    pub quick: bool,
    /// Runs per measurement.
    pub runs: usize,
    /// Load average (1, 5, 15 min) before the scenario: how busy the machine was.
    pub loadavg_before: String,
    /// Versions of the peer tools (nginx, wrk, ab, knotd).
    pub tools: BTreeMap<String, String>,
}

/// One thing measured: a server (or a setting) under one load.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Subject {
    /// Name in tables ("xdpstack", "nginx", "kernel reuseport", ...).
    pub name: String,
    /// Metrics of every run, in run order.
    pub runs: Vec<Metrics>,
    /// Per-metric medians over the runs.
    pub median: Metrics,
    /// Why it could not be measured, or errors seen in some runs.
    pub errors: Vec<String>,
    /// Extra per-subject detail for the report (e.g. per-worker counts of the median run).
    pub detail: Vec<String>,
}

impl Subject {
    /// A subject with no runs yet.
    pub fn new(name: &str) -> Subject {
        Subject {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Records run `run`: its metrics and, if not empty, its detail; or its error. An
    /// interrupt is handed back (the scenario stops).
    pub fn record(&mut self, run: usize, r: Result<(Metrics, String)>) -> Result<()> {
        match r {
            Ok((x, detail)) => {
                if !detail.is_empty() {
                    self.detail.push(format!("run {run}: {detail}"));
                }
                self.runs.push(x);
                Ok(())
            }
            Err(BenchError::Interrupted) => Err(BenchError::Interrupted),
            Err(e) => {
                self.errors.push(format!("run {run}: {e}"));
                Ok(())
            }
        }
    }

    /// Recomputes the medians.
    pub fn finish(&mut self) {
        self.median = stats::metric_medians(&self.runs);
    }

    /// Value of `metric` in every run (None where missing), for pairing.
    pub fn series(&self, metric: &str) -> Vec<Option<f64>> {
        self.runs.iter().map(|r| r.get(metric).copied()).collect()
    }
}

/// A ratio of two subjects' metric, run by run (both measured in the same run).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ratio {
    /// Metric.
    pub metric: String,
    /// Numerator subject.
    pub num: String,
    /// Denominator subject.
    pub den: String,
    /// Ratio in each run.
    pub per_run: Vec<f64>,
    /// Median of the per-run ratios.
    pub median: Option<f64>,
}

/// A group of subjects measured under the same load.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Case {
    /// Name ("keep-alive", "10000 connections", ...).
    pub name: String,
    /// The load, in words (tool and options).
    pub load: String,
    /// What was measured.
    pub subjects: Vec<Subject>,
    /// Paired ratios.
    pub ratios: Vec<Ratio>,
}

impl Case {
    /// The subject called `name`.
    pub fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.name == name)
    }

    /// Adds the paired ratio `num.metric / den.metric` (skipped if either is missing).
    pub fn add_ratio(&mut self, metric: &str, num: &str, den: &str) {
        let (Some(a), Some(b)) = (self.subject(num), self.subject(den)) else {
            return;
        };
        let per_run = stats::paired_ratios(&a.series(metric), &b.series(metric));
        let median = stats::median(&per_run);
        self.ratios.push(Ratio {
            metric: metric.to_string(),
            num: num.to_string(),
            den: den.to_string(),
            per_run,
            median,
        });
    }

    /// The median paired ratio `num.metric / den.metric`, if measured.
    pub fn ratio(&self, metric: &str, num: &str, den: &str) -> Option<f64> {
        self.ratios
            .iter()
            .find(|r| r.metric == metric && r.num == num && r.den == den)
            .and_then(|r| r.median)
    }
}

/// A tracked target and how this run did against it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Target {
    /// What is tracked ("HTTP keep-alive vs nginx").
    pub name: String,
    /// The goal in words (">= 1.5x nginx").
    pub goal: String,
    /// The measured value (a ratio, a count), if it could be measured.
    pub value: Option<f64>,
    /// Met, missed, or not measured (None).
    pub met: Option<bool>,
    /// By how much, and why where missed.
    pub detail: String,
}

impl Target {
    /// A target "value >= threshold" (or <= when `at_most`).
    pub fn threshold(
        name: &str,
        goal: &str,
        value: Option<f64>,
        threshold: f64,
        at_most: bool,
    ) -> Target {
        let met = value.map(|v| {
            if at_most {
                v <= threshold
            } else {
                v >= threshold
            }
        });
        let detail = match value {
            None => "not measured".to_string(),
            Some(v) => match stats::percent_of(v, threshold) {
                Some(p) if at_most => format!("{v:.3} against at most {threshold} ({p:+.1}%)"),
                Some(p) => format!("{v:.3} against at least {threshold} ({p:+.1}%)"),
                None => format!("{v:.3}"),
            },
        };
        Target {
            name: name.to_string(),
            goal: goal.to_string(),
            value,
            met,
            detail,
        }
    }

    /// Appends an explanation.
    pub fn why(mut self, why: &str) -> Target {
        if !why.is_empty() {
            self.detail = format!("{}; {why}", self.detail);
        }
        self
    }
}

/// Everything one scenario measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario id (`udp`, `http`, `fairness`, `churn`, `conns`).
    pub scenario: String,
    /// Title.
    pub title: String,
    /// Machine, date, build, mode.
    pub meta: Meta,
    /// How cores were used, in words.
    pub cores: String,
    /// The measurements.
    pub cases: Vec<Case>,
    /// Where each process ran (one sample per process, taken under load).
    pub placement: Vec<Placement>,
    /// Tracked targets.
    pub targets: Vec<Target>,
    /// Anything the reader must know (unavailable peers, caveats).
    pub notes: Vec<String>,
    /// Wall-clock seconds the scenario took.
    pub wall_seconds: f64,
}

impl ScenarioResult {
    /// The case called `name`.
    pub fn case(&self, name: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.name == name)
    }
}
