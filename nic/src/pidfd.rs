//! Process file descriptors (pidfds, Linux 5.3): a handle on one process
//! that a later process given the same pid number cannot take over. The
//! daemon holds one per attached process, so that what it reads under
//! `/proc/PID` is known to be that process's (see `xdpstack daemon`).
//!
//! Here only the two system calls nix does not wrap; the kernel's own
//! `SO_PEERPIDFD` (Linux 6.5) is `nix::sys::socket::sockopt::PeerPidfd`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `pidfd_open(pid, 0)`: a pidfd for the process that has pid `pid` now
/// (close-on-exec, as every pidfd).
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: pidfd_open takes a pid and flags by value and touches no
    // memory of ours; it returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel installed descriptor `r` in our table
    // for this call; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether the process of `pidfd` has not been reaped yet (running, or a
/// zombie). While this holds its pid number cannot belong to another
/// process: a number is freed only when its process is reaped.
///
/// `pidfd_send_signal(pidfd, 0)`: signal 0 checks existence and
/// permission and sends nothing; no permission still means it exists.
pub fn alive(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: the descriptor is borrowed, so open for the call; the info
    // pointer is null (allowed: the kernel fills in a default) and no other
    // memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        Some(libc::EPERM) => Ok(true),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    #[test]
    fn a_pidfd_outlives_its_process_and_says_so() {
        let me = open(std::process::id() as i32).unwrap();
        assert!(alive(me.as_fd()).unwrap());

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let fd = open(child.id() as i32).unwrap();
        assert!(alive(fd.as_fd()).unwrap());
        child.kill().unwrap();
        // Killed (running still, or a zombie) but not reaped: its pid
        // number is still its own.
        assert!(alive(fd.as_fd()).unwrap());
        child.wait().unwrap();
        assert!(!alive(fd.as_fd()).unwrap());

        assert!(open(0).is_err());
        assert!(open(-1).is_err());
    }
}
