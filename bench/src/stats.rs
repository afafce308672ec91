//! Statistics over runs: medians, ratios measured side by side, fairness.

use std::collections::BTreeMap;

/// Median of the finite values (mean of the two middle ones for an even count).
/// `None` when there is no finite value.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `num / den`, `None` when the denominator is zero or either side is not finite.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    if !num.is_finite() || !den.is_finite() || den == 0.0 {
        return None;
    }
    Some(num / den)
}

/// Ratios of paired runs (`num[i] / den[i]`, run i of both measured side by side), skipping
/// pairs where either side is missing or the denominator is zero.
pub fn paired_ratios(num: &[Option<f64>], den: &[Option<f64>]) -> Vec<f64> {
    num.iter()
        .zip(den)
        .filter_map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => ratio(*a, *b),
            _ => None,
        })
        .collect()
}

/// Largest over smallest count: 1.0 is perfectly even. `None` for fewer than one bucket, and
/// infinity when some bucket got nothing while another got something.
pub fn max_min_ratio(counts: &[u64]) -> Option<f64> {
    let max = *counts.iter().max()?;
    let min = *counts.iter().min()?;
    if max == 0 {
        return None;
    }
    if min == 0 {
        return Some(f64::INFINITY);
    }
    Some(max as f64 / min as f64)
}

/// Per-metric medians over runs: each run is a map metric -> value; a metric missing from a
/// run is skipped for that run.
pub fn metric_medians(runs: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (k, v) in r {
            by.entry(k.as_str()).or_default().push(*v);
        }
    }
    by.into_iter()
        .filter_map(|(k, v)| median(&v).map(|m| (k.to_string(), m)))
        .collect()
}

/// CPU seconds per 1000 operations.
pub fn cpu_per_1k(cpu_seconds: f64, ops: f64) -> Option<f64> {
    ratio(cpu_seconds * 1000.0, ops)
}

/// Percent by which `value` is over (`+`) or under (`-`) `target`.
pub fn percent_of(value: f64, target: f64) -> Option<f64> {
    ratio(value - target, target).map(|r| r * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 7.0, f64::INFINITY]), Some(7.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        let r = paired_ratios(
            &[Some(150.0), None, Some(100.0), Some(5.0)],
            &[Some(100.0), Some(1.0), Some(0.0), Some(10.0)],
        );
        assert_eq!(r, vec![1.5, 0.5]);
        assert_eq!(median(&r), Some(1.0));
    }

    #[test]
    fn fairness() {
        assert_eq!(max_min_ratio(&[100, 100]), Some(1.0));
        assert_eq!(max_min_ratio(&[105, 100, 102]), Some(1.05));
        assert_eq!(max_min_ratio(&[10, 0]), Some(f64::INFINITY));
        assert_eq!(max_min_ratio(&[0, 0]), None);
        assert_eq!(max_min_ratio(&[]), None);
    }

    #[test]
    fn medians_per_metric() {
        let mk = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let runs = vec![
            mk(&[("rps", 10.0), ("p99", 3.0)]),
            mk(&[("rps", 30.0)]),
            mk(&[("rps", 20.0), ("p99", 5.0)]),
        ];
        let m = metric_medians(&runs);
        assert_eq!(m["rps"], 20.0);
        assert_eq!(m["p99"], 4.0);
    }

    #[test]
    fn per_1k_and_percent() {
        assert_eq!(cpu_per_1k(2.0, 100_000.0), Some(0.02));
        assert_eq!(cpu_per_1k(2.0, 0.0), None);
        assert_eq!(percent_of(1.2, 1.5).map(|p| p.round()), Some(-20.0));
        assert_eq!(percent_of(3.0, 2.0), Some(50.0));
    }
}
