//! What the in-memory service tests share: the arguments of a small server.

use httpd::HttpArgs;

/// The defaults with a small server's limits: port 80, a backlog of 64, the
/// fixed body `OK\n` (or `root`), bodies of at most 10,000 bytes, `max_conns`
/// connections, no `/stats`, the test subnet as the server's own.
pub fn small_args(root: Option<std::path::PathBuf>, max_conns: usize) -> HttpArgs {
    let mut a = HttpArgs::defaults();
    a.port = 80;
    a.backlog = 64;
    a.body = "OK\n".into();
    a.root = root;
    a.max_root_bytes = 1 << 20;
    a.max_body = 10_000;
    a.max_conns = max_conns;
    a.stats = httpd::stats::parse_stats_path("off").unwrap();
    a.local_addrs = (Some((testkit::SERVER_IP4, 24)), None);
    a
}
