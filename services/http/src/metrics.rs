//! `GET /metrics`: the `/stats` counters in Prometheus' text exposition
//! format (written by the prometheus-client crate): every listener's
//! counters, every core's handoff counters and the XDP program's counters.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

type Labels = Vec<(String, String)>;

/// The exposition text for the stack's report (`/stats`'s JSON) and the XDP
/// program's counters (name -> value).
pub fn render(stack: &Value, xdp: Option<&[(&'static str, u64)]>) -> String {
    let mut reg = Registry::with_prefix("xdpstack");
    // Listener counters: one family per counter, labelled by listener.
    let mut listener_fams: Vec<(String, Family<Labels, Counter>)> = Vec::new();
    let flows: Family<Labels, Gauge> = Family::default();
    if let Some(ls) = stack["listeners"].as_array() {
        for l in ls {
            let labels: Labels = ["id", "proto", "port", "core", "queue", "state"]
                .iter()
                .map(|k| {
                    let v = &l[*k];
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.to_string(), s)
                })
                .collect();
            let Some(c) = l["counters"].as_object() else {
                continue;
            };
            for (name, v) in c {
                let Some(v) = v.as_u64() else { continue };
                if name == "flows" {
                    flows.get_or_create(&labels).set(v as i64);
                    continue;
                }
                let fam = match listener_fams.iter().position(|(n, _)| n == name) {
                    Some(i) => &listener_fams[i].1,
                    None => {
                        listener_fams.push((name.clone(), Family::default()));
                        &listener_fams[listener_fams.len() - 1].1
                    }
                };
                fam.get_or_create(&labels).inc_by(v);
            }
        }
    }
    for (name, fam) in listener_fams {
        reg.register(
            format!("listener_{name}"),
            format!("Listener counter `{name}` (see /stats)"),
            fam,
        );
    }
    reg.register("listener_flows", "Flows a listener owns now", flows);
    // Handoff counters by core.
    let mut core_fams: Vec<(String, Family<Labels, Counter>)> = Vec::new();
    if let Some(cs) = stack["cores"].as_array() {
        for (i, c) in cs.iter().enumerate() {
            let Some(obj) = c.as_object() else { continue };
            let core = obj.get("core").and_then(Value::as_u64).unwrap_or(i as u64);
            let labels: Labels = vec![("core".into(), core.to_string())];
            for (name, v) in obj {
                let Some(v) = v.as_u64() else { continue };
                if name == "core" {
                    continue;
                }
                let fam = match core_fams.iter().position(|(n, _)| n == name) {
                    Some(i) => &core_fams[i].1,
                    None => {
                        core_fams.push((name.clone(), Family::default()));
                        &core_fams[core_fams.len() - 1].1
                    }
                };
                fam.get_or_create(&labels).inc_by(v);
            }
        }
    }
    for (name, fam) in core_fams {
        reg.register(
            format!("handoff_{name}"),
            format!("Cross-core handoff counter `{name}`"),
            fam,
        );
    }
    // The XDP program: packets by verdict and reason.
    if let Some(xdp) = xdp {
        let fam: Family<Labels, Counter> = Family::default();
        for (name, v) in xdp {
            let (verdict, reason) = name.split_once('_').unwrap_or(("other", name));
            fam.get_or_create(&vec![
                ("verdict".into(), verdict.to_string()),
                ("reason".into(), reason.to_string()),
            ])
            .inc_by(*v);
        }
        reg.register(
            "xdp_packets",
            "Packets seen by the XDP program, by verdict (steered to the stack, passed to the kernel, dropped) and reason",
            fam,
        );
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listeners_cores_and_xdp_become_labelled_counters() {
        let stack = json!({
            "listeners": [{"id": 1, "proto": "tcp", "addr": "Any", "port": 80, "core": 0,
                "queue": 0, "uid": 0, "state": "active",
                "counters": {"accepted": 5, "flows": 2, "bytes_in": 100}}],
            "cores": [{"core": 0, "sent": 3}],
        });
        let xdp = [("steered_ip", 7u64), ("passed_not_ours", 9)];
        let text = render(&stack, Some(&xdp));
        assert!(
            text.contains("# TYPE xdpstack_listener_accepted counter"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("xdpstack_listener_accepted_total{")
                    && l.contains("port=\"80\"")
                    && l.contains("proto=\"tcp\"")
                    && l.ends_with(" 5")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("xdpstack_listener_flows{") && l.ends_with(" 2")),
            "{text}"
        );
        assert!(
            text.contains("xdpstack_handoff_sent_total{core=\"0\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("xdpstack_xdp_packets_total{verdict=\"steered\",reason=\"ip\"} 7"),
            "{text}"
        );
        assert!(text.contains("reason=\"not_ours\"} 9"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
