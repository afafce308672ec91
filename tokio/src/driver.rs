//! One daemon core as the tokio sockets see it: the attach crate's [`Core`]
//! behind a lock, the wakers of the tasks waiting on it, and the task that
//! drives it (takes the daemon's records, wakes who they concern, publishes
//! what the tasks wrote).
//!
//! The driver's turn: clear the doorbell if it slept, take every record
//! waiting ([`Core::poll_events`]), wake the readers and writers of the
//! connections they touched and the acceptors and UDP receivers of the core,
//! publish the records the tasks pushed since the last turn (one publish, the
//! daemon's doorbell rung only if its worker sleeps). A turn that found
//! records is followed by another after the other ready tasks ran
//! (`yield_now`), without sleeping: while the process is busy no doorbell is
//! rung either way and no system call is made. A turn that found none
//! announces sleep ([`Core::prepare_sleep`]) and waits on the doorbell
//! (registered with tokio through [`AsyncFd`]), on a kick from a task that
//! pushed a record, or, while a task found the ring full (the daemon frees
//! room without telling), on a 1 ms timer.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use attach::Core;
use stack::socket::{ConnId, TcpApi};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::Error;

/// How long a task that found the ring full waits before it tries again.
const RING_RETRY: Duration = Duration::from_millis(1);

/// The wakers of one connection (a read half and a write half may wait in
/// different tasks).
#[derive(Default)]
pub(crate) struct ConnWait {
    pub read: Option<Waker>,
    pub write: Option<Waker>,
    /// The last send took nothing (no credit, or the ring full): not
    /// writable until the daemon tells something of it or the ring retry.
    pub write_blocked: bool,
}

/// What the tasks and the driver share for one core (under its lock).
pub(crate) struct CoreState {
    pub core: Core,
    pub conns: HashMap<ConnId, ConnWait, attach::IdBuild>,
    /// Acceptors by listener id (several tasks may accept on one listener).
    pub accept: HashMap<u64, Vec<Waker>>,
    /// UDP receivers by socket id (several tasks may receive on one socket).
    pub udp_recv: HashMap<u64, Vec<Waker>>,
    /// Tasks waiting for the answer to an outgoing connect, by its token.
    pub connect: HashMap<u64, Waker>,
    /// Tasks that found the ring full.
    pub ring_full: Vec<Waker>,
    /// Why the core can serve nothing more (the daemon went away, or broke
    /// the ring protocol).
    pub dead: Option<Error>,
    /// Records pushed and not yet published.
    pub dirty: bool,
    /// The driver announced sleep and waits (or is about to): a push must
    /// kick it. Otherwise its next step publishes anyway (a turn, or the
    /// flush of the announcement) and a kick would only make it turn once
    /// more for nothing.
    driver_sleeping: bool,
    ready: Vec<ConnId>,
}

/// Add `w` to `list` unless a waker of the same task is there.
pub(crate) fn add_waker(list: &mut Vec<Waker>, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

impl CoreState {
    /// The error every call on a dead core fails with.
    pub fn check(&self) -> io::Result<()> {
        match &self.dead {
            Some(e) => Err(e.clone().into()),
            None => Ok(()),
        }
    }

    /// Every waker of the core (for the core's death).
    fn all_wakers(&mut self, out: &mut Vec<Waker>) {
        for w in self.conns.values_mut() {
            out.extend(w.read.take());
            out.extend(w.write.take());
            w.write_blocked = false;
        }
        out.extend(self.accept.drain().flat_map(|(_, w)| w));
        out.extend(self.udp_recv.drain().flat_map(|(_, w)| w));
        out.extend(self.connect.drain().map(|(_, w)| w));
        out.append(&mut self.ring_full);
    }
}

/// The doorbell: a duplicate of the core's eventfd, owned for [`AsyncFd`].
struct Bell(OwnedFd);

impl std::os::fd::AsRawFd for Bell {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// `fd` registered with the runtime's reactor for readability.
///
/// tokio 1.54 deprecated the safe registration (its new one is an `unsafe
/// fn`, and this project keeps unsafe code in nic/): the safe one is sound
/// for [`Bell`], which owns its descriptor for its whole life and always
/// returns that one, the invariant the unsafe version asks of its caller.
#[allow(deprecated)]
fn register(fd: Bell) -> io::Result<AsyncFd<Bell>> {
    AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)
}

/// One core: the state, the driver's kick, its doorbell.
pub(crate) struct CoreCell {
    pub index: usize,
    state: Mutex<CoreState>,
    kick: Notify,
    stop: AtomicBool,
    bell: AsyncFd<Bell>,
}

impl CoreCell {
    /// Take `core` up (in a runtime: the doorbell registers with its
    /// reactor).
    pub fn new(mut core: Core) -> io::Result<CoreCell> {
        let bell = register(Bell(core.fd().try_clone_to_owned()?))?;
        core.set_ready_tracking(true);
        Ok(CoreCell {
            index: core.index(),
            state: Mutex::new(CoreState {
                core,
                conns: HashMap::default(),
                accept: HashMap::new(),
                udp_recv: HashMap::new(),
                connect: HashMap::new(),
                ring_full: Vec::new(),
                dead: None,
                dirty: false,
                driver_sleeping: false,
                ready: Vec::new(),
            }),
            kick: Notify::new(),
            stop: AtomicBool::new(false),
            bell,
        })
    }

    /// The state. A task that panicked while holding the lock left nothing
    /// half-done that matters more than serving the others: take it anyway.
    pub fn lock(&self) -> MutexGuard<'_, CoreState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A task pushed records: have the driver publish them (after the other
    /// ready tasks had their turn).
    pub fn pushed(&self, st: &mut CoreState) {
        if !st.dirty {
            st.dirty = true;
            if st.driver_sleeping {
                self.kick.notify_one();
            }
        }
    }

    /// Stop the driver (the sockets are all gone).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// The core is dead: every waiting task is woken and fails with `why`.
    pub fn kill(&self, why: Error) {
        let mut wake = Vec::new();
        {
            let mut st = self.lock();
            if st.dead.is_none() {
                st.dead = Some(why);
            }
            st.all_wakers(&mut wake);
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// One turn; returns the records taken and whether a task waits for
    /// room in the ring.
    fn turn(&self, slept: Slept, wake: &mut Vec<Waker>) -> (usize, bool) {
        let mut st = self.lock();
        let st = &mut *st;
        st.driver_sleeping = false;
        match slept {
            Slept::No => {}
            // The doorbell rang: clear it.
            Slept::Rang => st.core.woke(),
            // Kicked or timed out: the doorbell, if it rang meanwhile,
            // stays readable for the next sleep (no read for nothing).
            Slept::Other => st.core.woke_quiet(),
        }
        let n = st.core.poll_events();
        if let Some(e) = st.core.broken() {
            let why = Error::Broken(e.to_string());
            log::error!("xdpstack-tokio: core {}: {why}", self.index);
            st.dead.get_or_insert(why);
            st.all_wakers(wake);
            return (0, false);
        }
        if n > 0 {
            st.core.take_ready(&mut st.ready);
            for c in st.ready.drain(..) {
                if let Some(w) = st.conns.get_mut(&c) {
                    w.write_blocked = false;
                    wake.extend(w.read.take());
                    wake.extend(w.write.take());
                }
            }
            // The connections the daemon reported gone stay known to the
            // core (their unread bytes, their end of stream) until their
            // stream drops: clear its list of them without forgetting them.
            st.core.set_ready_tracking(false);
            st.core.set_ready_tracking(true);
            // Accepted connections and datagrams carry no per-socket
            // readiness: whoever waits on this core looks again.
            wake.extend(st.accept.drain().flat_map(|(_, w)| w));
            wake.extend(st.udp_recv.drain().flat_map(|(_, w)| w));
            wake.extend(st.connect.drain().map(|(_, w)| w));
            // The daemon is busy with this process's ring: writers that
            // found it full try again (no timer needed while busy).
            wake.append(&mut st.ring_full);
        }
        st.core.flush();
        st.dirty = false;
        let blocked = !st.ring_full.is_empty() || st.core.tx_blocked();
        (n, blocked)
    }

    /// Announce sleep; false when records wait already.
    fn prepare_sleep(&self) -> bool {
        let mut st = self.lock();
        st.dirty = false;
        st.driver_sleeping = true;
        if st.core.prepare_sleep() {
            return true;
        }
        st.driver_sleeping = false;
        false
    }

    /// Wake the tasks that found the ring full (they try again).
    fn retry_ring(&self, wake: &mut Vec<Waker>) {
        let mut st = self.lock();
        wake.append(&mut st.ring_full);
    }
}

/// How the driver's last wait ended.
#[derive(Clone, Copy)]
enum Slept {
    /// It did not wait.
    No,
    /// The doorbell rang.
    Rang,
    /// A kick or the ring retry's timer.
    Other,
}

/// The driver task of one core, until [`CoreCell::stop`].
pub(crate) async fn drive(cell: Arc<CoreCell>) {
    let mut slept = Slept::No;
    let mut wake = Vec::new();
    loop {
        if cell.stop.load(Ordering::Acquire) {
            break;
        }
        let (n, blocked) = cell.turn(slept, &mut wake);
        slept = Slept::No;
        wake.drain(..).for_each(Waker::wake);
        if n > 0 {
            // Busy: look again once the tasks just woken have run.
            tokio::task::yield_now().await;
            continue;
        }
        if !cell.prepare_sleep() {
            continue;
        }
        slept = Slept::Other;
        tokio::select! {
            r = cell.bell.readable() => match r {
                Ok(mut g) => {
                    g.clear_ready();
                    slept = Slept::Rang;
                }
                Err(e) => {
                    cell.kill(Error::Broken(format!("doorbell: {e}")));
                    break;
                }
            },
            () = cell.kick.notified() => {
                // Let the other ready tasks push theirs: one publish for all.
                tokio::task::yield_now().await;
            }
            () = tokio::time::sleep(RING_RETRY), if blocked => {
                cell.retry_ring(&mut wake);
                wake.drain(..).for_each(Waker::wake);
            }
        }
    }
}

/// Watch the control socket: when the daemon goes away, every core dies
/// and every waiting task fails with [`Error::DaemonGone`].
pub(crate) async fn watch(
    cells: Vec<Arc<CoreCell>>,
    watch: attach::DaemonWatch,
    stop: Arc<Notify>,
) {
    let fd = match watch.try_clone_fd().and_then(|fd| register(Bell(fd))) {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("xdpstack-tokio: cannot watch the control socket: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            r = fd.readable() => {
                match r {
                    Ok(mut g) => g.clear_ready(),
                    Err(_) => break,
                }
                // Readable: the end of the stream, or the reply of a
                // request in flight (look again once it is read).
                for _ in 0..250 {
                    if watch.gone() {
                        for c in &cells {
                            c.kill(Error::DaemonGone);
                        }
                        return;
                    }
                    if quiet(fd.get_ref()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            () = stop.notified() => return,
        }
    }
}

/// Whether nothing waits on the control socket (neither a reply nor the
/// end of the stream): a peek that never blocks and takes nothing.
fn quiet(fd: &Bell) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let mut b = [0u8; 1];
    matches!(
        recv(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            &mut b,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
        ),
        Err(nix::errno::Errno::EAGAIN)
    )
}
