//! The reports a server writes on exit (`--report FILE`) and prints: typed
//! on both sides, the fields named as the JSON has always named them (the
//! tests and bench read them back; a field missing when read is its
//! default). The parts that belong to a service or
//! to the stack's own counters stay JSON values inside.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `xdpstack http|echo|dns|daemon --iface ...`: the whole run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerReport {
    /// `http`, `echo`, `dns`, `daemon`.
    pub service: String,
    /// The interface served.
    pub iface: String,
    /// `native` or `generic`.
    pub xdp_mode: String,
    /// Whether the XSKs run in zero-copy mode.
    pub zero_copy: bool,
    /// The XDP program: ids, attach mode, counters.
    pub xdp: Value,
    /// `addr`, `ports` or `all`.
    pub steer: String,
    /// The pcap tap's counts, if `--pcap` was given.
    pub pcap: Option<PcapReport>,
    /// Seconds served.
    pub seconds: f64,
    /// `hash` or `queue`.
    pub selector: String,
    /// One per worker.
    pub workers: Vec<WorkerReport>,
    /// Listeners and handoff counters of the whole stack.
    pub stack: Value,
}

/// The pcap tap's counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PcapReport {
    /// Frames written.
    pub frames: u64,
    /// Frames not written past `--pcap-limit`.
    pub skipped_past_limit: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// One worker (one queue, one core, one engine).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// NIC queue served.
    pub queue: u32,
    /// Core pinned to (None: not pinned).
    pub core: Option<usize>,
    /// The service's counters.
    pub app: Value,
    /// Engine counters.
    pub engine: Value,
    /// Demux counters (`dropped`: per reason).
    pub l2: Value,
    /// The port's counters.
    pub port: PortReport,
    /// `ok`, or what the frame ledger found wrong.
    pub frame_accounting: String,
    /// The worker loop's counters.
    #[serde(rename = "loop")]
    pub loop_stats: LoopReport,
    /// Connections held at the end.
    pub sockets: usize,
    /// Flows in the flow table at the end.
    pub flows: usize,
    /// TIME-WAIT records held at the end.
    pub time_wait: usize,
}

impl WorkerReport {
    /// Frames the demux dropped, every reason summed.
    pub fn l2_dropped(&self) -> u64 {
        self.l2
            .get("dropped")
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }
}

/// A port's counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PortReport {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Sends with no free frame.
    pub tx_no_frame: u64,
    /// Sends with the tx ring full.
    pub tx_ring_full: u64,
    /// Frames dropped on transmit.
    pub tx_dropped: u64,
    /// Wake-ups of the kernel for transmit.
    pub tx_kicks: u64,
    /// Bad rx descriptors.
    pub rx_bad_desc: u64,
    /// Where the UMEM frames are.
    pub frames_by_place: Value,
    /// The kernel's XDP socket statistics (name -> value), if read.
    pub kernel: Option<serde_json::Map<String, Value>>,
}

impl PortReport {
    /// One of the kernel's XDP socket statistics (`rx_ring_full`, ...).
    pub fn kernel_stat(&self, name: &str) -> Option<u64> {
        self.kernel.as_ref()?.get(name)?.as_u64()
    }
}

/// The worker loop's counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopReport {
    /// Loop iterations.
    pub iterations: u64,
    /// Sleeps in poll().
    pub sleeps: u64,
    /// Batches drained.
    pub drain_batches: u64,
    /// Time the graceful stop took, ms.
    pub grace_used_ms: u64,
    /// Whether the grace ran out.
    pub grace_expired: bool,
    /// When it did: the connections by phase (half-open, queued,
    /// accepted, closing).
    pub left_at_grace: [usize; 4],
}

/// `xdpstack http|echo|dns --attach PATH`: per daemon core, the service's
/// counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachedReport {
    /// `http`, `echo`, `dns`.
    pub service: String,
    /// The daemon's control socket.
    pub attached: String,
    /// One per daemon core.
    pub cores: Vec<AttachedCore>,
}

/// One daemon core of an attached process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachedCore {
    /// Daemon core index.
    pub core: usize,
    /// The service's counters.
    pub app: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_the_old_ones() {
        let w = WorkerReport {
            l2: serde_json::json!({"dropped": {"a": 2, "b": 3}}),
            ..WorkerReport::default()
        };
        assert_eq!(w.l2_dropped(), 5);
        let r = ServerReport {
            workers: vec![w],
            ..ServerReport::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "service",
            "iface",
            "xdp_mode",
            "zero_copy",
            "xdp",
            "steer",
            "pcap",
            "seconds",
            "selector",
            "workers",
            "stack",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        let w = &v["workers"][0];
        for k in [
            "worker",
            "queue",
            "core",
            "app",
            "engine",
            "l2",
            "port",
            "frame_accounting",
            "loop",
            "sockets",
            "flows",
        ] {
            assert!(w.get(k).is_some(), "{k}");
        }
        assert!(w["port"].get("rx_frames").is_some());
        assert!(w["loop"].get("grace_used_ms").is_some());
        let back: ServerReport = serde_json::from_value(v).unwrap();
        assert_eq!(back.workers[0].l2_dropped(), 5);
    }
}
