//! The HTTP/1.1 compliance probe (`bench/h1probe/h1probe.py`, issue 21) against `xdpstack
//! http` in a sandbox, from the client namespace: the fixed body (`--body OK`, the body the
//! probe's echo cases accept) and a `--root` tree. Fails if fewer than [`MIN_PASSED`] of the
//! probe's 161 scored cases pass or if any scored request-smuggling case fails (in the tree, a
//! 405 to a well-formed POST is the resource's answer, not a failure), naming the cases that did
//! not pass. Needs root (see `privileged.rs`: skipped without root, an error
//! under CI) and Debian's python3 (scripts/deps.sh). One at a time.
//!
//! `cargo test -p xdpstack --test h1probe -- --nocapture`

mod common;
#[path = "support/tree.rs"]
#[allow(dead_code)] // the tree helpers this test does not use
mod tree;

use common::*;
use serde_json::Value;
use tree::TempTree;

/// The target: 140 of the 161 scored cases (nginx 1.22 with `return 200;` passes 109).
const MIN_PASSED: u64 = 140;
/// Cases that wait for bytes never sent: the probe waits this long for an answer (the server's
/// own timeouts are longer, so a wait that ends here is a pass either way).
const PROBE_TIMEOUT: &str = "2";

fn probe_path() -> String {
    format!("{}/../bench/h1probe/h1probe.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the probe against the server on port 80 of the sandbox, returns its JSON report.
fn run_probe(sb: &lab::sandbox::Sandbox) -> Value {
    let probe = probe_path();
    let mut cmd = client(
        sb,
        900,
        PY,
        [
            probe.as_str(),
            "--host",
            SERVER_IP4,
            "--port",
            "80",
            "--timeout",
            PROBE_TIMEOUT,
            "--json",
        ],
    );
    let out = run_ok(&mut cmd);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("the probe printed no JSON ({e}):\n{out}"))
}

/// The scored smuggling cases whose request is a well-formed POST (`Content-Length` with
/// optional whitespace around its value): the probe wants 400 or 2xx, a tree (no POST) answers
/// 405, the resource's refusal, which is right.
const WELL_FORMED_POSTS: [&str; 2] = ["SMUG-CL-TRAILING-SPACE", "SMUG-CL-EXTRA-LEADING-SP"];

/// Asserts the target on one report; `what` names the server's mode. `refused_post`: the
/// server has no POST (a `--root` tree): a 405 to one of [`WELL_FORMED_POSTS`] (and only that)
/// is not counted against the smuggling target.
fn check(report: &Value, what: &str, refused_post: bool) {
    let s = &report["summary"];
    let passed = s["passed"].as_u64().expect("passed");
    let scored = s["scored"].as_u64().expect("scored");
    let smuggling = s["smuggling_failures"]
        .as_array()
        .expect("smuggling_failures");
    eprintln!(
        "{what}: passed {passed} of {scored} scored ({} warned, {} failed), smuggling failures: {}; \
         not passed: {}",
        s["warned"],
        s["failed"],
        smuggling.len(),
        s["failures"]
    );
    assert_eq!(scored, 161, "{what}: the probe's scored cases changed: {s}");
    let status_of = |id: &Value| {
        report["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| &r["id"] == id)
            .map(|r| r["status"].clone())
            .unwrap_or_default()
    };
    let real: Vec<_> = smuggling
        .iter()
        .filter(|id| {
            !(refused_post
                && WELL_FORMED_POSTS.iter().any(|w| *id == w)
                && status_of(id) == serde_json::json!([405]))
        })
        .map(|id| format!("{id} {}", status_of(id)))
        .collect();
    assert!(
        real.is_empty(),
        "{what}: scored smuggling cases failed: {real:?}"
    );
    assert!(
        passed >= MIN_PASSED,
        "{what}: {passed} of {scored} scored cases passed, below {MIN_PASSED}; not passed: {}",
        s["failures"]
    );
}

#[test]
fn compliance_probe_fixed_body_and_tree() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("h1probe", 1);

    let server = Server::start(&sb, Service::Http, &["--workers", "1", "--body", "OK"]);
    let fixed = run_probe(&sb);
    let stats = server.stop();
    assert_frames_ok(&stats);
    check(&fixed, "fixed body", false);
    // The server stopped cleanly after the malformed requests (no panic), having refused them.
    assert!(total(&stats, "/app/status_4xx") >= 100, "{stats:#}");

    let root = TempTree::new("h1probe");
    root.file("index.html", b"OK");
    let server = Server::start(
        &sb,
        Service::Http,
        &["--workers", "1", "--root", &root.arg()],
    );
    let tree = run_probe(&sb);
    let stats = server.stop();
    assert_frames_ok(&stats);
    check(&tree, "--root", true);
}
