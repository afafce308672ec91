//! What the generator and the reflector read of the machine and report the
//! same way: pinning, thread CPU time, port counters and latency as JSON.

use hdrhistogram::Histogram;
use nic::PortStats;
use serde_json::{json, Value};

/// Pin the calling thread: to `cores[i % len]` when given, else to core i
/// (or core N-1-i when `reverse`) of the N cores. Returns the core used.
pub fn pin_thread(i: usize, cores: Option<&[usize]>, reverse: bool) -> Option<usize> {
    let ids = core_affinity::get_core_ids()?;
    if ids.is_empty() {
        return None;
    }
    let core = match cores {
        Some(list) if !list.is_empty() => {
            let want = list[i % list.len()];
            *ids.iter().find(|c| c.id == want)?
        }
        _ if reverse => ids[ids.len() - 1 - i % ids.len()],
        _ => ids[i % ids.len()],
    };
    core_affinity::set_for_current(core).then_some(core.id)
}

/// CPU time of the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// User seconds.
    pub user: f64,
    /// System seconds.
    pub sys: f64,
}

impl CpuTimes {
    /// The CPU time used since `start`.
    pub fn since(self, start: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user - start.user,
            sys: self.sys - start.sys,
        }
    }
}

/// The calling thread's CPU time so far.
pub fn cpu_times() -> CpuTimes {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => CpuTimes {
            user: u.user_time().num_microseconds() as f64 / 1e6,
            sys: u.system_time().num_microseconds() as f64 / 1e6,
        },
        Err(_) => CpuTimes::default(),
    }
}

/// A port's counters as JSON.
pub fn port_json(s: &PortStats) -> Value {
    let c = &s.counters;
    json!({
        "rx_frames": c.rx_frames,
        "tx_frames": c.tx_frames,
        "rx_bytes": c.rx_bytes,
        "tx_bytes": c.tx_bytes,
        "tx_no_frame": c.tx_no_frame,
        "tx_ring_full": c.tx_ring_full,
        "tx_dropped": c.tx_dropped,
        "tx_kicks": c.tx_kicks,
        "fill_kicks": c.fill_kicks,
        "rx_bad_desc": c.rx_bad_desc,
        "waits": c.waits,
        "frames_by_place": s.frames,
        "kernel": s.kernel.map(|k| k.fields().iter().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()),
    })
}

/// Latency percentiles of a histogram in ns, as µs.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    json!({
        "count": h.len(),
        "min": us(h.min()),
        "mean": h.mean() / 1000.0,
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
    })
}
