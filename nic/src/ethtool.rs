//! What the NIC does with incoming traffic: its channel (queue) counts and
//! its RSS indirection table, read with the SIOCETHTOOL ioctl (what
//! `ethtool -l` and `ethtool -x` show). The stack uses them to check that
//! every queue its traffic can arrive on has a worker.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_GRXFHINDIR: u32 = 0x38;

/// `ethtool -l`: channel counts (current and maximum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    /// Max rx-only channels.
    pub max_rx: u32,
    /// Max tx-only channels.
    pub max_tx: u32,
    /// Max combined channels.
    pub max_combined: u32,
    /// Rx-only channels.
    pub rx: u32,
    /// Tx-only channels.
    pub tx: u32,
    /// Combined channels.
    pub combined: u32,
}

impl Channels {
    /// Queues that receive: combined plus rx-only channels.
    pub fn rx_queues(&self) -> u32 {
        self.combined + self.rx
    }
}

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

fn ifreq_for(ifname: &str, data: *mut libc::c_void) -> io::Result<libc::ifreq> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: all-zero is a valid `ifreq` (a name and a union of plain data).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data.cast();
    Ok(ifr)
}

fn ethtool(ifname: &str, data: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = ifreq_for(ifname, data)?;
    // SAFETY: `ifr` is a valid ifreq whose data pointer the caller made
    // point at an ethtool command struct valid for the whole call, sized as
    // the command says.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ethtool -l IF`.
pub fn channels(ifname: &str) -> io::Result<Channels> {
    let mut c = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ethtool(ifname, (&mut c as *mut EthtoolChannels).cast())?;
    Ok(Channels {
        max_rx: c.max_rx,
        max_tx: c.max_tx,
        max_combined: c.max_combined,
        rx: c.rx_count,
        tx: c.tx_count,
        combined: c.combined_count,
    })
}

/// `ethtool -x IF`: the RSS indirection table (hash bucket -> rx queue).
pub fn rss_indirection(ifname: &str) -> io::Result<Vec<u32>> {
    // struct ethtool_rxfh_indir { u32 cmd; u32 size; u32 ring_index[]; }
    let mut head = [ETHTOOL_GRXFHINDIR, 0u32];
    ethtool(ifname, head.as_mut_ptr().cast())?;
    let size = head[1] as usize;
    if size == 0 || size > 1 << 16 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u32; 2 + size];
    buf[0] = ETHTOOL_GRXFHINDIR;
    buf[1] = size as u32;
    ethtool(ifname, buf.as_mut_ptr().cast())?;
    Ok(buf[2..].to_vec())
}

/// The rx queues the NIC can deliver to, as far as it tells: the targets of
/// its RSS table if it has one, else every rx queue (channels, or sysfs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxSpread {
    /// Channel counts, if the driver reports them.
    pub channels: Option<Channels>,
    /// RSS indirection table, if the driver has one.
    pub rss: Vec<u32>,
    /// rx queues in sysfs.
    pub sysfs_queues: u32,
}

impl RxSpread {
    /// Read everything for `ifname`.
    pub fn read(ifname: &str) -> Result<RxSpread, crate::NicError> {
        let sysfs_queues = crate::xsk::rx_queue_count(ifname)?;
        Ok(RxSpread {
            channels: channels(ifname).ok(),
            rss: rss_indirection(ifname).unwrap_or_default(),
            sysfs_queues,
        })
    }

    /// Queues traffic can arrive on (sorted, unique).
    pub fn receiving_queues(&self) -> Vec<u32> {
        let mut q: Vec<u32> = if !self.rss.is_empty() {
            self.rss.clone()
        } else {
            let n = self
                .channels
                .map(|c| c.rx_queues())
                .filter(|&n| n > 0)
                .unwrap_or(self.sysfs_queues);
            (0..n).collect()
        };
        q.sort_unstable();
        q.dedup();
        q
    }

    /// Receiving queues that are not in `served`.
    pub fn unserved(&self, served: &[u32]) -> Vec<u32> {
        self.receiving_queues()
            .into_iter()
            .filter(|q| !served.contains(q))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_targets_decide_which_queues_receive() {
        let s = RxSpread {
            channels: Some(Channels {
                combined: 4,
                ..Default::default()
            }),
            rss: vec![0, 1, 0, 1],
            sysfs_queues: 4,
        };
        assert_eq!(s.receiving_queues(), vec![0, 1]);
        assert!(s.unserved(&[0, 1]).is_empty());
        assert_eq!(s.unserved(&[0]), vec![1]);
        let no_rss = RxSpread {
            rss: vec![],
            ..s.clone()
        };
        assert_eq!(no_rss.unserved(&[0, 1]), vec![2, 3]);
        let nothing = RxSpread {
            channels: None,
            rss: vec![],
            sysfs_queues: 2,
        };
        assert_eq!(nothing.receiving_queues(), vec![0, 1]);
    }
}
