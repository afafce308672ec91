//! Who is at the other end of a control connection: the kernel's record of
//! the process that connected, and a pidfd on that very process.
//!
//! Why the pidfd: `SO_PEERCRED` gives a pid number, and a number can be
//! reused. The privileged-port rule reads the process's capabilities from
//! `/proc/PID/status` at each bind, perhaps long after the connect; by then
//! the process may have exited, leaving the socket to a child (attached
//! processes can fork), and its number may have gone to some other,
//! capable process. Reading that process's `CapEff` would let an
//! unprivileged process bind port 80.
//!
//! How it is closed:
//! - **The handle**: `SO_PEERPIDFD` (Linux 6.5) is a pidfd the kernel made at
//!   `connect()` for the connecting process itself (the same process as
//!   `SO_PEERCRED`'s pid): no window at all. On an older kernel
//!   (`ENOPROTOOPT`) the daemon opens one with `pidfd_open` as soon as it
//!   accepts the connection, so the window is from the connect to the accept
//!   (it was the whole life of the connection), and the uid check below
//!   narrows what could take the number in it to a process of the same user.
//! - **The read**: `/proc/PID/status` is read by number, then the pidfd's
//!   process is checked to be not reaped yet (`pidfd_send_signal` with
//!   signal 0). A pid number is freed only when its process is reaped, so if
//!   ours is still there after the read, the number was ours throughout and
//!   the text read is our process's. Otherwise the answer is no.
//! - **The uid**: the status must show the effective uid `SO_PEERCRED`
//!   recorded at the connect.
//!
//! Not chosen: comparing the start time in `/proc/PID/stat` before and after
//! the read (it shows that both reads saw one process, not that it is the
//! one that connected).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt};

/// `CAP_NET_BIND_SERVICE`'s bit in the capability sets.
const CAP_NET_BIND_SERVICE: u32 = 10;

/// The process that connected, as the kernel recorded it.
#[derive(Debug)]
pub struct Peer {
    /// Effective uid at the connect.
    pub uid: u32,
    /// Its pid (in the daemon's pid namespace; 0 if outside it).
    pub pid: i32,
    /// That process, whatever its number becomes (`None`: it was gone
    /// before the daemon could hold it).
    /// `SO_PEERPIDFD` (made by the kernel at the connect) or, on a kernel
    /// before 6.5, `pidfd_open` of the pid at the accept.
    pidfd: Option<OwnedFd>,
}

impl Peer {
    /// The peer of an accepted control connection.
    pub fn of(sock: &UnixStream) -> io::Result<Peer> {
        let cred = getsockopt(sock, sockopt::PeerCredentials)?;
        let (uid, pid) = (cred.uid(), cred.pid());
        let pidfd = match getsockopt(sock, sockopt::PeerPidfd) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOPROTOOPT) => nic::pidfd::open(pid).ok(),
            // ESRCH: the peer has been reaped already.
            Err(_) => None,
        };
        Ok(Peer { uid, pid, pidfd })
    }

    /// Whether the daemon holds the process (it was not gone already).
    pub fn held(&self) -> bool {
        self.pidfd.is_some()
    }

    /// Whether the process may bind a port below 1024: uid 0, or
    /// `CAP_NET_BIND_SERVICE` in its effective set now, read so that pid
    /// reuse cannot answer for it (see the module's text).
    pub fn may_bind_privileged(&self) -> bool {
        if self.uid == 0 {
            return true;
        }
        self.status().is_some_and(|s| {
            status_euid(&s) == Some(self.uid) && cap_eff_has(&s, CAP_NET_BIND_SERVICE)
        })
    }

    /// The process's `/proc/PID/status` now; `None` if it is gone, or if
    /// the text may be another process's.
    fn status(&self) -> Option<String> {
        let fd = self.pidfd.as_ref()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        // After the read: still not reaped, so the number was never freed
        // and the text is this process's.
        nic::pidfd::alive(fd.as_fd())
            .unwrap_or(false)
            .then_some(status)
    }
}

/// Whether the `CapEff:` line of a `/proc/PID/status` text has bit `bit`.
pub fn cap_eff_has(status: &str, bit: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// The effective uid (the second of `Uid:`'s four) of a `/proc/PID/status`
/// text.
fn status_euid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bit_and_uid_from_proc_status() {
        let s = "Name:\tx\nUid:\t1000\t65534\t1000\t1000\nCapInh:\t0000000000000000\nCapEff:\t0000000000000400\n";
        assert!(cap_eff_has(s, 10));
        assert!(!cap_eff_has(s, 12));
        assert!(!cap_eff_has("CapEff:\t0000000000000000\n", 10));
        assert!(!cap_eff_has("garbage", 10));
        assert_eq!(status_euid(s), Some(65534));
        assert_eq!(status_euid("Uid:\t7\n"), None);
        assert_eq!(status_euid("garbage"), None);
    }

    /// Both ends in this process: the peer is this process, held by the
    /// kernel's pidfd on this kernel; it may bind low ports exactly when
    /// this process could.
    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        assert_eq!(p.pid, std::process::id() as i32);
        assert_eq!(p.uid, nix::unistd::geteuid().as_raw());
        assert!(p.held());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(
            p.may_bind_privileged(),
            p.uid == 0 || cap_eff_has(&status, CAP_NET_BIND_SERVICE)
        );
    }

    /// The race: the peer has been reaped and its number now names a live
    /// process (played by this one). What is under `/proc/PID` is not taken
    /// for the peer's.
    #[test]
    fn a_reaped_peer_is_not_read_under_its_old_number() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = nic::pidfd::open(child.id() as i32).unwrap();
        child.wait().unwrap();
        let reused = Peer {
            uid: 65534,
            pid: std::process::id() as i32,
            pidfd: Some(pidfd),
        };
        assert_eq!(reused.status(), None);
        assert!(!reused.may_bind_privileged());

        let me = Peer {
            pidfd: Some(nic::pidfd::open(std::process::id() as i32).unwrap()),
            ..reused
        };
        assert!(me.status().is_some_and(|s| s.contains("CapEff:")));
    }
}
