//! The command line of `xdpstack http`, and what it loads before any queue
//! is opened (the site).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::site::{Body, Site, SiteError, Tree};
use crate::stats;

/// `xdpstack http` options.
#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// TCP port.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// HTTPS (`--tls-cert`, `--tls-key`, `--tls-port`, `--redirect-https`).
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Accept queue per listener.
    #[arg(long, default_value_t = 1024)]
    pub backlog: usize,
    /// Body of every 200 response when no --root is given.
    #[arg(long, default_value = "hello from xdpstack\n")]
    pub body: String,
    /// Serve the files under this directory (read into memory at start).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Refuse to start if the files under --root add up to more than this
    /// many bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_root_bytes: u64,
    /// Close a connection idle this long between requests (`30s`, `500ms`;
    /// a bare number is seconds); also reset one whose client reads nothing
    /// of a response for this long.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// A request head must be complete this long after its first byte
    /// (`10s`; a bare number is seconds), else 408 and close; a request body
    /// being read must progress at least this often.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: Duration,
    /// Largest request head (request line and header fields), bytes: 431
    /// past it (414 or 501 for a request line past it); also the bound on a
    /// chunked body's extensions and trailer section.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_header: usize,
    /// Largest request body, bytes (Content-Length or chunked, read in
    /// constant memory): 413 and close past it.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: u64,
    /// Open connections per worker; past it the longest idle one is evicted
    /// (`evicted_idle`), else the new one is reset at once
    /// (`rejected_max_conns`). Sizes the default UMEM and rings too.
    #[arg(long, default_value_t = 16384)]
    pub max_conns: usize,
    /// Reuseport listeners per worker (all on the same port).
    #[arg(long, default_value_t = 1)]
    pub listeners: usize,
    /// Attached mode (`--attach PATH`, `--pin`).
    #[command(flatten)]
    pub attached: runtime::attached::AttachArgs,
    /// Path of the stack's report (listeners, counters), or `off`.
    #[arg(long, default_value = "/stats", value_parser = stats::parse_stats_path)]
    pub stats: stats::StatsPath,
    /// Clients allowed to read the report, comma-separated: `local` (the
    /// subnets of --addr/--addr6, IPv6 link-local, loopback), `any`, or
    /// ADDRESS[/PREFIX]. Anyone else gets the path as an ordinary one.
    #[arg(long, value_delimiter = ',', default_value = "local", value_parser = stats::parse_allow)]
    pub stats_allow: Vec<stats::Allow>,
    /// The server's own addresses with prefixes (what `local` means); set
    /// from the server options, not the command line.
    #[arg(skip)]
    pub local_addrs: stats::LocalAddrs,
}

/// A timeout flag: the one duration syntax, between 1 ms and a day.
fn parse_timeout(s: &str) -> Result<Duration, runtime::duration::DurationError> {
    runtime::duration::parse_within(s, Duration::from_millis(1), Duration::from_secs(86_400))
}

/// What every worker serves, loaded once (before any NIC queue is opened):
/// the fixed body, or the `--root` tree. A refused tree is a one-line error.
pub fn load_site(args: &HttpArgs) -> Result<Arc<Site>, SiteError> {
    match &args.root {
        None => Ok(Arc::new(Site::Fixed(Body::new(
            args.body.as_bytes().to_vec(),
            "text/plain",
        )))),
        Some(root) => {
            let t = Tree::load(root, args.max_root_bytes)?;
            eprintln!(
                "xdpstack http: serving {} ({} files, {} bytes)",
                root.display(),
                t.files(),
                t.bytes()
            );
            Ok(Arc::new(Site::Tree(t)))
        }
    }
}
