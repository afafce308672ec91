//! Running a service as a process attached to `xdpstack daemon` (`http
//! --attach`, `echo --attach`): one thread per daemon core, each running
//! the service on that core's shared-memory channel (`attach::Core`), until
//! SIGINT/SIGTERM (graceful, within the grace) or the daemon goes away.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::server::WorkerCtx;

/// Options of attached mode.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AttachArgs {
    /// Attach to the `xdpstack daemon` at this control socket instead of
    /// opening an interface: run unprivileged, one thread per daemon core.
    #[arg(long)]
    pub attach: Option<PathBuf>,
    /// With --attach: pin the thread of daemon core i to core i (beside
    /// the daemon's worker).
    #[arg(long)]
    pub pin: bool,
}

/// Attach to the daemon at `args.attach`, make the service for every core
/// (all binds done before any thread serves: a refused bind fails the
/// start whole), serve until stopped. Returns the per-core counters.
pub fn run<S, F, J>(
    name: &str,
    args: &AttachArgs,
    grace: Duration,
    make: F,
    json_of: J,
) -> Result<Value, String>
where
    S: attach::Service + Send + 'static,
    F: Fn(&WorkerCtx, &mut attach::Core) -> Result<S, String>,
    J: Fn(&S) -> Value + Send + Sync + 'static,
{
    let path = args.attach.clone().ok_or("--attach PATH is required")?;
    let client =
        attach::Client::connect(&path).map_err(|e| format!("attach to {}: {e}", path.display()))?;
    let stop = crate::xsk_opts::stop_flag().map_err(|e| e.to_string())?;
    let reload = Arc::new(AtomicU64::new(0));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| e.to_string())?;
    let watch = client.watch();
    let mut cores = client.into_cores();
    let mut services = Vec::new();
    for core in cores.iter_mut() {
        let ctx = WorkerCtx {
            worker: core.index(),
            // The daemon's selector decides; the uid is the kernel's.
            selector: Arc::new(stack::reuseport::HashSelector),
            bind: stack::reuseport::BindOptions::new(0).with_reuseport(true),
            reload: reload.clone(),
        };
        services.push(make(&ctx, core)?);
    }
    eprintln!(
        "xdpstack {name}: attached to {} ({} core(s))",
        path.display(),
        cores.len()
    );
    let json_of = Arc::new(json_of);
    let mut handles = Vec::new();
    for (mut core, mut svc) in cores.into_iter().zip(services) {
        let stop = stop.clone();
        let pin = args.pin;
        let json_of = json_of.clone();
        let h = std::thread::Builder::new()
            .name(format!("xdpstack-a{}", core.index()))
            .spawn(move || {
                if pin {
                    stack::worker::pin_to_core(core.index());
                }
                attach::run(&mut core, &mut svc, &stop, grace);
                json!({"core": core.index(), "app": json_of(&svc)})
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    while !handles.iter().all(|h| h.is_finished()) {
        if hup.swap(false, Ordering::Relaxed) {
            reload.fetch_add(1, Ordering::Relaxed);
        }
        if watch.gone() {
            return Err(format!("the daemon at {} went away", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cores: Vec<Value> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    Ok(json!({"service": name, "attached": path.display().to_string(), "cores": cores}))
}
