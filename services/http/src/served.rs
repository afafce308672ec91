//! What every worker serves, shared by all of them, and what changes it
//! while the server runs: the site (replaced on SIGHUP by a tree loaded
//! anew, off the workers' path) and the access log's file (reopened on
//! SIGUSR1, as logrotate expects).
//!
//! Workers look at two generation counters once per turn (a relaxed load
//! each); only when one moved do they take the lock and clone what it
//! guards. A reload that fails is reported on stderr and the old tree
//! stays.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::site::{LoadLimits, Site, SiteError, Tree};

/// The site and the access log of a running server.
#[derive(Debug)]
pub struct Served {
    site: Mutex<Arc<Site>>,
    site_gen: AtomicU64,
    /// `--root` and its limits (None: the fixed body, nothing to reload).
    root: Option<(PathBuf, LoadLimits)>,
    log: Option<LogFile>,
    /// Reloads refused (the old tree kept).
    reload_failures: AtomicU64,
    /// Signals are watched (a tree or a log may change).
    watched: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<Arc<File>>,
    gen: AtomicU64,
}

/// Opens `path` for appending (created 0644 if missing), as nginx opens its
/// logs.
fn open_log(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

impl Served {
    /// A server serving `site`, whose tree (if any) is reloaded from
    /// `root`, logging to `log` (opened now: an error is the caller's
    /// refusal to start).
    pub fn new(
        site: Site,
        root: Option<(PathBuf, LoadLimits)>,
        log: Option<PathBuf>,
    ) -> Result<Served, SiteError> {
        let log = match log {
            None => None,
            Some(path) => {
                let f =
                    open_log(&path).map_err(|e| SiteError::Log(path.display().to_string(), e))?;
                Some(LogFile {
                    path,
                    file: Mutex::new(Arc::new(f)),
                    gen: AtomicU64::new(0),
                })
            }
        };
        Ok(Served {
            site: Mutex::new(Arc::new(site)),
            site_gen: AtomicU64::new(0),
            root,
            log,
            reload_failures: AtomicU64::new(0),
            watched: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The site's generation: bumped by every successful reload.
    pub fn site_gen(&self) -> u64 {
        self.site_gen.load(Ordering::Acquire)
    }

    /// The site now, with its generation.
    pub fn site(&self) -> (Arc<Site>, u64) {
        let g = self.site.lock().unwrap_or_else(PoisonError::into_inner);
        (g.clone(), self.site_gen.load(Ordering::Acquire))
    }

    /// Loads the tree again from `--root` and swaps it in (what SIGHUP
    /// does). On failure the old tree stays and the error is returned.
    /// Without `--root`, nothing to do.
    pub fn reload(&self) -> Result<(), SiteError> {
        let Some((root, limits)) = &self.root else {
            return Ok(());
        };
        match Tree::load(root, *limits) {
            Ok(t) => {
                let mut g = self.site.lock().unwrap_or_else(PoisonError::into_inner);
                *g = Arc::new(Site::Tree(t));
                self.site_gen.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Signals may change the tree or the log: workers look for it even
    /// when idle.
    pub fn watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// Reloads refused so far.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// The access log's generation (bumped by every reopen), if there is a
    /// log.
    pub fn log_gen(&self) -> Option<u64> {
        self.log.as_ref().map(|l| l.gen.load(Ordering::Acquire))
    }

    /// The access log's file now, with its generation.
    pub fn log_file(&self) -> Option<(Arc<File>, u64)> {
        self.log.as_ref().map(|l| {
            let f = l.file.lock().unwrap_or_else(PoisonError::into_inner);
            (f.clone(), l.gen.load(Ordering::Acquire))
        })
    }

    /// Opens the access log's path again (SIGUSR1: logrotate renamed the
    /// file); workers write to the new file from their next flush. On
    /// failure the old file stays.
    pub fn reopen_log(&self) -> std::io::Result<()> {
        let Some(l) = &self.log else {
            return Ok(());
        };
        let f = open_log(&l.path)?;
        let mut g = l.file.lock().unwrap_or_else(PoisonError::into_inner);
        *g = Arc::new(f);
        l.gen.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Reload the tree on SIGHUP and reopen the log on SIGUSR1, from a
    /// thread of their own (blocked in the signal iterator, never on a
    /// worker's path), for the life of the process. SIGHUP's listener
    /// replacement (the runtime's) happens beside it.
    pub fn watch_signals(self: &Arc<Self>) -> std::io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGUSR1};
        if self.root.is_some() || self.log.is_some() {
            self.watched.store(true, Ordering::Relaxed);
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGUSR1])?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("xdpstack-http-ctl".into())
            .spawn(move || {
                for sig in signals.forever() {
                    match sig {
                        SIGHUP => me.on_hup(),
                        SIGUSR1 => {
                            if let Err(e) = me.reopen_log() {
                                eprintln!(
                                    "xdpstack http: cannot reopen the access log ({e}); still writing to the old file"
                                );
                            }
                        }
                        _ => {}
                    }
                }
            })?;
        Ok(())
    }

    fn on_hup(&self) {
        let Some((root, _)) = &self.root else {
            return;
        };
        let t0 = std::time::Instant::now();
        match self.reload() {
            Ok(()) => {
                let (site, _) = self.site();
                if let Site::Tree(t) = &*site {
                    let (df, db) = t.on_disk();
                    eprintln!(
                        "xdpstack http: reloaded {} ({} files, {} bytes in memory, {df} files ({db} bytes) from disk) in {:.0?}",
                        root.display(),
                        t.files(),
                        t.bytes(),
                        t0.elapsed()
                    );
                }
            }
            Err(e) => {
                eprintln!("xdpstack http: reload refused, still serving the previous tree: {e}")
            }
        }
    }
}
