//! The one privilege check of the privileged tests.

use nix::unistd::geteuid;

/// Variables that make a missing privilege a failure instead of a skip.
const REQUIRE: [&str; 2] = ["XDPSTACK_REQUIRE_PRIV", "CI"];

/// True if the test may run privileged steps (effective uid 0: root has
/// CAP_NET_ADMIN and CAP_BPF here). Otherwise the test is skipped (a line on
/// stderr says so), unless `XDPSTACK_REQUIRE_PRIV` or `CI` is set: then a
/// missing privilege panics, so a privileged test never passes by skipping
/// where it must run (`scripts/test.sh` sets `XDPSTACK_REQUIRE_PRIV=1`).
pub fn privileged() -> bool {
    decide(geteuid().is_root(), |v| std::env::var_os(v).is_some())
}

fn decide(root: bool, set: impl Fn(&str) -> bool) -> bool {
    if root {
        return true;
    }
    if let Some(var) = REQUIRE.into_iter().find(|v| set(v)) {
        panic!(
            "{var} is set but this test is not running as root: privileged tests must not \
             be skipped (run as root, e.g. `sudo -E cargo test`)"
        );
    }
    eprintln!("skipped: needs root");
    false
}

#[cfg(test)]
mod tests {
    use super::decide;

    #[test]
    fn root_runs_whatever_is_set() {
        assert!(decide(true, |_| true));
        assert!(decide(true, |_| false));
    }

    #[test]
    fn without_root_it_skips_unless_required() {
        assert!(!decide(false, |_| false));
        for var in ["XDPSTACK_REQUIRE_PRIV", "CI"] {
            let r = std::panic::catch_unwind(|| decide(false, |v| v == var));
            assert!(r.is_err(), "{var} set: must fail, not skip");
        }
    }
}
