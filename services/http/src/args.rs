//! The command line of `xdpstack http`, and what it loads before any queue
//! is opened (the site).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::served::Served;
use crate::site::{Body, LoadLimits, Site, SiteError, Tree};
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
    /// Serve the files under this directory (small files held in memory,
    /// large ones read from disk; reloaded on SIGHUP).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Bytes of --root files held in memory in all (the smallest first);
    /// the files past it are read from disk as they are sent.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_root_bytes: u64,
    /// Files of --root larger than this are never held in memory: they are
    /// kept open and read in chunks as the connection's window allows.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_file_in_memory: u64,
    /// Log every response to FILE in nginx's combined format (buffered per
    /// worker, written at least once a second; reopened on SIGUSR1).
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
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

impl HttpArgs {
    /// `xdpstack http` with nothing on its command line: the defaults a user
    /// gets, `local_addrs` empty (for tests and for embedding the service).
    pub fn defaults() -> HttpArgs {
        // With the server's options beside it, as `xdpstack http` has them
        // (`--attach` names them as conflicts; clap checks that they exist).
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            _server: runtime::server::ServerArgs,
            #[command(flatten)]
            http: HttpArgs,
        }
        <Cmd as clap::Parser>::parse_from(["http"]).http
    }
}

/// A timeout flag: the one duration syntax, between 1 ms and a day.
fn parse_timeout(s: &str) -> Result<Duration, runtime::duration::DurationError> {
    runtime::duration::parse_within(s, Duration::from_millis(1), Duration::from_secs(86_400))
}

/// What every worker serves, loaded once (before any NIC queue is opened):
/// the fixed body, or the `--root` tree; and the access log, opened. A
/// refused tree or log is a one-line error. SIGHUP and SIGUSR1 are handled
/// once [`Served::watch_signals`] is called.
pub fn load_site(args: &HttpArgs) -> Result<Arc<Served>, SiteError> {
    let log = args.access_log.clone();
    match &args.root {
        None => Ok(Arc::new(Served::new(
            Site::Fixed(Body::new(args.body.as_bytes().to_vec(), "text/plain")),
            None,
            log,
        )?)),
        Some(root) => {
            let limits = LoadLimits {
                max_bytes: args.max_root_bytes,
                max_file: args.max_file_in_memory,
            };
            // One descriptor per file served from disk: take what the hard
            // limit allows, as nginx's `worker_rlimit_nofile` would.
            raise_nofile();
            let t = Tree::load(root, limits)?;
            let (files, bytes, (df, db)) = (t.files(), t.bytes(), t.on_disk());
            let served = Served::new(Site::Tree(t), Some((root.clone(), limits)), log)?;
            // Said once nothing can refuse the start any more.
            eprintln!(
                "xdpstack http: serving {} ({files} files, {bytes} bytes in memory, {df} files ({db} bytes) from disk)",
                root.display(),
            );
            Ok(Arc::new(served))
        }
    }
}

/// Raises the soft limit on open files to the hard one (nothing if it
/// cannot).
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
