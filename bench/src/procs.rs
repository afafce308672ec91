//! Processes the runner starts: pinned with taskset inside a namespace, their CPU time and
//! memory read from /proc, their placement recorded, stopped with a bounded wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::parse;

/// Set by SIGINT/SIGTERM: every wait loop returns [`BenchError::Interrupted`].
pub fn stop_flag() -> &'static std::sync::Arc<AtomicBool> {
    static FLAG: OnceLock<std::sync::Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| std::sync::Arc::new(AtomicBool::new(false)))
}

/// True once SIGINT/SIGTERM arrived.
pub fn interrupted() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

/// Errors of the runner.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// Something failed; the message says what.
    #[error("{0}")]
    Msg(String),
}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError::Msg(e.to_string())
    }
}

impl From<lab::sandbox::SandboxError> for BenchError {
    fn from(e: lab::sandbox::SandboxError) -> Self {
        BenchError::Msg(format!("sandbox: {e}"))
    }
}

impl From<crate::parse::ParseError> for BenchError {
    fn from(e: crate::parse::ParseError) -> Self {
        BenchError::Msg(e.to_string())
    }
}

impl From<serde_json::Error> for BenchError {
    fn from(e: serde_json::Error) -> Self {
        BenchError::Msg(format!("json: {e}"))
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Builds an error message.
pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(BenchError::Msg(msg.into()))
}

/// Sleeps in small steps, returning early with `Interrupted` on Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            return Err(BenchError::Interrupted);
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|v| v as f64)
        .unwrap_or(100.0)
}

/// A process started by the runner.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for the report ("nginx", "wrk", ...).
    pub label: String,
    /// The namespace it runs in.
    pub netns: String,
    /// The CPU list given to taskset.
    pub cpus: String,
    /// The full command line.
    pub cmdline: String,
    child: Option<Child>,
    pid: i32,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Where a process (and its threads and children) ran.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// What it is.
    pub label: String,
    /// Namespace.
    pub netns: String,
    /// CPU list given to taskset.
    pub taskset: String,
    /// The command line.
    pub cmdline: String,
    /// For each task (thread) of the process tree: `pid/tid name: allowed cpus, last cpu`.
    pub tasks: Vec<String>,
}

impl Proc {
    /// Starts `program args` in `netns`, pinned to `cpus` with taskset, output to files in `dir`.
    pub fn spawn(
        label: &str,
        netns: &str,
        cpus: &str,
        program: &str,
        args: &[String],
        dir: &Path,
    ) -> Result<Proc> {
        Self::spawn_env(label, netns, cpus, program, args, dir, &[])
    }

    /// [`Proc::spawn`] with extra environment variables.
    pub fn spawn_env(
        label: &str,
        netns: &str,
        cpus: &str,
        program: &str,
        args: &[String],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Proc> {
        if interrupted() {
            return Err(BenchError::Interrupted);
        }
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let stdout = dir.join(format!("{n:03}-{safe}.out"));
        let stderr = dir.join(format!("{n:03}-{safe}.err"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, "taskset", "-c", cpus, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let cmdline = format!(
            "ip netns exec {netns} taskset -c {cpus} {program} {}",
            args.join(" ")
        );
        log::info!("start {label}: {cmdline}");
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::Msg(format!("cannot start {cmdline}: {e}")))?;
        let pid = child.id() as i32;
        Ok(Proc {
            label: label.to_string(),
            netns: netns.to_string(),
            cpus: cpus.to_string(),
            cmdline,
            child: Some(child),
            pid,
            stdout,
            stderr,
        })
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// CPU ticks (utime + stime, all threads) of the process and all its live descendants.
    pub fn cpu_ticks(&self) -> u64 {
        tree_pids(self.pid)
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter_map(|s| parse::proc_stat_ticks(&s).ok())
            .map(|(t, _)| t)
            .sum()
    }

    /// Resident memory of the process tree, in KiB: (sum of VmRSS, sum of Pss).
    pub fn memory_kib(&self) -> (u64, u64) {
        let mut rss = 0;
        let mut pss = 0;
        for p in tree_pids(self.pid) {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/status")) {
                rss += parse::proc_kib(&s, "VmRSS").unwrap_or(0);
            }
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
                pss += parse::proc_kib(&s, "Pss").unwrap_or(0);
            }
        }
        (rss, pss)
    }

    /// Where every thread of the process tree is allowed to run and last ran.
    pub fn placement(&self) -> Placement {
        let mut tasks = Vec::new();
        for p in tree_pids(self.pid) {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/task")) else {
                continue;
            };
            let mut tids: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            tids.sort_unstable();
            for tid in tids {
                let base = format!("/proc/{p}/task/{tid}");
                let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
                let name = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Name:"))
                    .unwrap_or("?")
                    .trim()
                    .to_string();
                let allowed = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .unwrap_or("?")
                    .trim()
                    .to_string();
                let last = std::fs::read_to_string(format!("{base}/stat"))
                    .ok()
                    .and_then(|s| parse::proc_stat_ticks(&s).ok())
                    .and_then(|(_, c)| c)
                    .map_or("?".to_string(), |c| c.to_string());
                tasks.push(format!(
                    "{p}/{tid} {name}: allowed {allowed}, last ran on {last}"
                ));
            }
        }
        Placement {
            label: self.label.clone(),
            netns: self.netns.clone(),
            taskset: self.cpus.clone(),
            cmdline: self.cmdline.clone(),
            tasks,
        }
    }

    /// Sends a signal to the program.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid), sig);
    }

    /// Waits for the process to exit by itself for at most `limit` (then SIGTERM, then SIGKILL).
    /// Returns (exited by itself?, stdout, stderr).
    pub fn wait(mut self, limit: Duration) -> Result<(bool, String, String)> {
        let end = Instant::now() + limit;
        let mut by_itself = true;
        let mut interrupted_now = false;
        loop {
            if !self.running() {
                break;
            }
            if interrupted() {
                interrupted_now = true;
                self.terminate(Duration::from_secs(2));
                break;
            }
            if Instant::now() >= end {
                by_itself = false;
                log::warn!(
                    "{} ran past its limit of {limit:?}: stopping it",
                    self.label
                );
                self.terminate(Duration::from_secs(3));
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if interrupted_now {
            return Err(BenchError::Interrupted);
        }
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        Ok((by_itself, out, err))
    }

    /// Sends `sig` and waits up to `grace` for exit (SIGKILL after). Returns stdout, stderr.
    pub fn stop_with(mut self, sig: Signal, grace: Duration) -> (String, String) {
        self.signal(sig);
        let end = Instant::now() + grace;
        while self.running() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.terminate(Duration::from_secs(2));
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (out, err)
    }

    /// The last lines of stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        tail(
            &std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            5,
        )
    }

    fn terminate(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in tree_pids(self.pid) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

/// The last `n` non-empty lines of `s`, joined by " | ".
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// `pid` and all its live descendants.
pub fn tree_pids(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(pp) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| parse::proc_stat_ppid(&s))
            {
                parents.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for &(p, pp) in &parents {
            if pp == cur && !out.contains(&p) {
                out.push(p);
            }
        }
        i += 1;
    }
    out
}

/// CPU seconds used by a set of processes between two tick readings.
pub fn ticks_to_s(before: u64, after: u64) -> f64 {
    after.saturating_sub(before) as f64 / clk_tck()
}

/// Waits until `probe` returns true, polling every 20 ms, for at most `limit`.
pub fn wait_until(limit: Duration, mut probe: impl FnMut() -> bool) -> Result<bool> {
    let end = Instant::now() + limit;
    loop {
        if interrupted() {
            return Err(BenchError::Interrupted);
        }
        if probe() {
            return Ok(true);
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
