//! `xdpstack status --iface IF`: what is attached to an interface (the XDP
//! program, the bpf_link holding it), its queues (channels, RSS table) and
//! the program's counters. Read-only: it never changes the interface.

use serde_json::{json, Value};

/// `xdpstack status` options.
#[derive(clap::Args, Clone, Debug)]
pub struct StatusArgs {
    /// Interface to inspect.
    #[arg(long)]
    pub iface: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything `status` reports, as JSON.
pub fn status(iface: &str) -> Result<Value, nic::NicError> {
    let attached = nic::steer::attached(iface)?;
    let spread = nic::ethtool::RxSpread::read(iface)?;
    let program = match &attached {
        None => Value::Null,
        Some(a) => {
            let ours = a.name == nic::steer::PROG_NAME;
            let counters = if ours {
                nic::steer::SteerCounters::of_program(a.prog_id)
                    .ok()
                    .map(|c| runtime::xsk_opts::counters_json(&c))
            } else {
                None
            };
            json!({
                "id": a.prog_id,
                "name": a.name,
                "ours": ours,
                "attach_mode": a.mode.to_string(),
                "link_id": a.link_id,
                "stale": a.link_id.is_none() && (ours || a.name == nic::steer::LIBXDP_DEFAULT_PROG),
                "counters": counters,
            })
        }
    };
    Ok(json!({
        "iface": iface,
        "program": program,
        "queues": {
            "rx_queues_sysfs": spread.sysfs_queues,
            "channels": spread.channels.map(|c| json!({
                "rx": c.rx, "tx": c.tx, "combined": c.combined,
                "max_rx": c.max_rx, "max_tx": c.max_tx, "max_combined": c.max_combined,
            })),
            "rss_table": if spread.rss.is_empty() { Value::Null } else { json!(spread.rss) },
            "receiving": spread.receiving_queues(),
        },
    }))
}

/// The text form of [`status`].
pub fn format(s: &Value) -> String {
    let mut out = String::new();
    let p = &s["program"];
    out.push_str(&format!(
        "interface {}\n",
        s["iface"].as_str().unwrap_or("?")
    ));
    if p.is_null() {
        out.push_str("xdp: no program attached\n");
    } else {
        let holder = match p["link_id"].as_u64() {
            Some(l) => format!("bpf_link {l} (detached when its process exits)"),
            None => "netlink (stays until detached)".to_string(),
        };
        out.push_str(&format!(
            "xdp: program {} `{}` ({} mode), held by {}{}{}\n",
            p["id"],
            p["name"].as_str().unwrap_or(""),
            p["attach_mode"].as_str().unwrap_or("?"),
            holder,
            if p["ours"].as_bool() == Some(true) {
                ", xdpstack's"
            } else {
                ""
            },
            if p["stale"].as_bool() == Some(true) {
                ", stale: the next xdpstack start replaces it"
            } else {
                ""
            },
        ));
        if let Some(c) = p["counters"].as_object() {
            for (k, v) in c {
                out.push_str(&format!("  {k:<18} {v}\n"));
            }
        }
    }
    let q = &s["queues"];
    out.push_str(&format!(
        "queues: {} rx in sysfs; channels {}; receiving {}\n",
        q["rx_queues_sysfs"],
        if q["channels"].is_null() {
            "unknown".to_string()
        } else {
            format!(
                "rx {} tx {} combined {} (max combined {})",
                q["channels"]["rx"],
                q["channels"]["tx"],
                q["channels"]["combined"],
                q["channels"]["max_combined"]
            )
        },
        q["receiving"],
    ));
    if let Some(t) = q["rss_table"].as_array() {
        out.push_str(&format!(
            "rss table: {} entries {:?}\n",
            t.len(),
            t.iter().filter_map(|v| v.as_u64()).collect::<Vec<_>>()
        ));
    } else {
        out.push_str("rss table: none reported\n");
    }
    out
}
