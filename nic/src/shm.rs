//! Shared memory between two processes: a sealed memfd mapped by both, two
//! single-producer single-consumer record rings in it (one each way), two
//! "I am going to sleep" flags for eventfd doorbells, and file descriptors
//! passed over a Unix socket with `SCM_RIGHTS`.
//!
//! The daemon creates a [`Channel`] per (attached process, core), seals its
//! size (so the other side cannot shrink it and fault the daemon with
//! SIGBUS) and sends the memfd; the application maps it with
//! [`Channel::open`]. Neither side trusts the other: every index read from
//! the shared header is checked before use, a bad one is a [`RingError`]
//! (the daemon then drops the peer), and record bytes are only ever copied
//! in and out (no reference into the shared pages outlives a copy).
//!
//! Layout (`cap` a power of two, at least 4 KiB):
//!
//! ```text
//! 0     magic u64, cap u64
//! 64    ring 0 head   128 ring 0 tail     (daemon -> application)
//! 192   ring 1 head   256 ring 1 tail     (application -> daemon)
//! 320   flag 0 (the daemon's core sleeps) 384 flag 1 (the application sleeps)
//! 4096  ring 0 data [cap]   4096+cap  ring 1 data [cap]
//! ```
//!
//! A record is a 16-byte header (kind u8, 3 bytes zero, payload length u32
//! little-endian, id u64 little-endian) and its payload, padded to 16 bytes.
//! A record never wraps: when it does not fit before the end of the data
//! area the producer writes a [`PAD`] record up to the end.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Record kind that fills the end of the data area (skipped by readers).
pub const PAD: u8 = 0;
/// Bytes of a record header.
pub const HEADER: usize = 16;
const MAGIC: u64 = 0x3154_5441_5350_4458; // "XDPSATT1"
const DATA: usize = 4096;
const RING_OFF: [(usize, usize); 2] = [(64, 128), (192, 256)];
const FLAG_OFF: [usize; 2] = [320, 384];

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A shared mapping of a memfd.
pub struct ShmRegion {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain memory shared with another process; every
// access goes through atomics or bounded byte copies, never through a
// reference that could alias a concurrent write.
unsafe impl Send for ShmRegion {}
// SAFETY: as for Send: `&ShmRegion` only gives atomics and copies.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// A new memfd of `len` bytes, sealed against shrinking and growing,
    /// mapped shared.
    pub fn create(name: &str, len: usize) -> io::Result<ShmRegion> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(errno)?;
        nix::unistd::ftruncate(&fd, len as libc::off_t).map_err(errno)?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )
        .map_err(errno)?;
        Self::map(fd, len)
    }

    /// Map a memfd received from the creator. Its size must be sealed (a
    /// peer could otherwise truncate it under us).
    pub fn open(fd: OwnedFd) -> io::Result<ShmRegion> {
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).map_err(errno)?;
        let need = (SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL).bits();
        if seals & need != need {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shared memory is not sealed against shrinking",
            ));
        }
        let st = nix::sys::stat::fstat(&fd).map_err(errno)?;
        Self::map(fd, st.st_size as usize)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<ShmRegion> {
        let Some(nz) = std::num::NonZeroUsize::new(len) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty region"));
        };
        // SAFETY: a fresh shared mapping of a file we hold; no existing Rust
        // object lives at the address the kernel picks.
        let ptr = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(errno)?;
        Ok(ShmRegion {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    /// The memfd (to send to the peer).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is mapped (never: `create` refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 8-byte-aligned atomic at `off`. Panics on a misaligned or
    /// out-of-range offset (offsets are this module's constants).
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: in bounds and aligned (the mapping is page-aligned);
        // AtomicU64 has interior mutability, so a shared reference to memory
        // another process writes is sound as long as every access is atomic,
        // which the header's are.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: as in `u64_at`.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Copy `src` to `off`. Panics when out of range (callers check).
    fn write(&self, off: usize, src: &[u8]) {
        assert!(off.checked_add(src.len()).is_some_and(|e| e <= self.len));
        // SAFETY: the range is inside the mapping; the ring protocol gives
        // the producer exclusive use of the bytes between tail and head, so
        // the peer does not read them meanwhile (a peer breaking the
        // protocol can only garble bytes it then reads, never ours).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        }
    }

    /// Copy from `off` into `dst`. Panics when out of range (callers check).
    fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off.checked_add(dst.len()).is_some_and(|e| e <= self.len));
        // SAFETY: the range is inside the mapping and `dst` is our own
        // buffer; the bytes are copied out before any is interpreted, so a
        // peer writing them concurrently only changes values we validate.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        }
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this length and no
        // reference into it outlives `self` (every accessor borrows self).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// A peer broke the ring protocol (indices out of range, a record longer
/// than what was published).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// The region is not a channel (wrong magic or size).
    #[error("not an xdpstack channel (magic or size)")]
    BadChannel,
    /// The peer published an impossible index or record.
    #[error("the peer corrupted the ring ({0})")]
    Corrupt(&'static str),
}

/// Which end of a [`Channel`] this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Writes ring 0, reads ring 1, sleeps on flag 0.
    Daemon,
    /// Writes ring 1, reads ring 0, sleeps on flag 1.
    App,
}

/// One shared region with a ring each way.
#[derive(Clone)]
pub struct Channel {
    shm: Arc<ShmRegion>,
    cap: usize,
}

/// Bytes each ring of a channel created with `cap` holds: `cap` rounded up
/// to a power of two, at least 4 KiB.
pub const fn ring_size(cap: usize) -> usize {
    if cap < 4096 {
        4096
    } else {
        cap.next_power_of_two()
    }
}

/// Largest payload of one record in a ring of `size` bytes (a
/// [`ring_size`]): a record takes at most a quarter of its ring.
pub const fn max_payload(size: usize) -> usize {
    size / 4 - HEADER
}

/// The smallest ring whose records carry `payload` bytes.
pub const fn ring_size_for(payload: usize) -> usize {
    ring_size(4 * (payload + HEADER))
}

impl Channel {
    /// Create a channel whose rings hold `cap` bytes each (rounded up to a
    /// power of two, at least 4 KiB: [`ring_size`]).
    pub fn create(name: &str, cap: usize) -> io::Result<Channel> {
        let cap = ring_size(cap);
        let shm = ShmRegion::create(name, DATA + 2 * cap)?;
        shm.u64_at(8).store(cap as u64, Ordering::Relaxed);
        shm.u64_at(0).store(MAGIC, Ordering::Release);
        Ok(Channel {
            shm: Arc::new(shm),
            cap,
        })
    }

    /// Map a channel from its memfd.
    pub fn open(fd: OwnedFd) -> Result<Channel, io::Error> {
        let shm = ShmRegion::open(fd)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, RingError::BadChannel);
        if shm.len() < DATA + 2 * 4096 || shm.u64_at(0).load(Ordering::Acquire) != MAGIC {
            return Err(bad());
        }
        let cap = shm.u64_at(8).load(Ordering::Relaxed) as usize;
        if !cap.is_power_of_two() || cap < 4096 || DATA + 2 * cap != shm.len() {
            return Err(bad());
        }
        Ok(Channel {
            shm: Arc::new(shm),
            cap,
        })
    }

    /// The memfd, to send to the peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shm.fd()
    }

    /// This side's producer and consumer, for a channel whose rings are
    /// still empty (each side splits once, as it takes the channel up).
    /// Every position starts at 0 whatever the shared memory says: the peer
    /// may have written its counters before this side took the channel,
    /// and a position learnt from it is only ever taken through the checks
    /// of `refresh` and `pop` (a daemon that loaded them here started from
    /// ring positions an unprivileged process chose).
    pub fn split(&self, side: Side) -> (RingTx, RingRx) {
        let (tx, rx) = match side {
            Side::Daemon => (0, 1),
            Side::App => (1, 0),
        };
        (
            RingTx {
                ring: self.ring(tx),
                tail: 0,
                head_seen: 0,
                published: 0,
            },
            RingRx {
                ring: self.ring(rx),
                head: 0,
                tail_seen: 0,
            },
        )
    }

    /// Ring `i` of this channel.
    fn ring(&self, i: usize) -> Ring {
        Ring {
            shm: self.shm.clone(),
            head_off: RING_OFF[i].0,
            tail_off: RING_OFF[i].1,
            data: DATA + i * self.cap,
            cap: self.cap as u64,
        }
    }

    /// The "about to sleep" flag of `side` (the producer towards it rings
    /// its doorbell when set; see [`Channel::prepare_sleep`]).
    pub fn sleeping(&self, side: Side) -> bool {
        self.flag(side).load(Ordering::SeqCst) != 0
    }

    fn flag(&self, side: Side) -> &AtomicU32 {
        self.shm.u32_at(FLAG_OFF[side as usize])
    }

    /// `side` is about to sleep: set its flag, then look at its ring once
    /// more. Returns false (flag cleared, do not sleep) when records are
    /// already waiting. Pairs with [`RingTx::publish`] on the other side:
    /// either the sleeper sees the records or the producer sees the flag.
    pub fn prepare_sleep(&self, side: Side, rx: &RingRx) -> bool {
        self.flag(side).store(1, Ordering::SeqCst);
        if rx.has_data() {
            self.flag(side).store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// `side` is awake again.
    pub fn woke(&self, side: Side) {
        self.flag(side).store(0, Ordering::SeqCst);
    }

    /// Whether the other side of `side` sleeps (after publishing, ring its
    /// doorbell if so).
    pub fn peer_sleeping(&self, side: Side) -> bool {
        let peer = match side {
            Side::Daemon => Side::App,
            Side::App => Side::Daemon,
        };
        std::sync::atomic::fence(Ordering::SeqCst);
        self.sleeping(peer)
    }
}

fn padded(len: usize) -> usize {
    (HEADER + len + 15) & !15
}

/// Where one ring lives in the region: its two shared counters and its
/// data area (the geometry both ends share).
struct Ring {
    shm: Arc<ShmRegion>,
    /// Offset of the consumer's head counter.
    head_off: usize,
    /// Offset of the producer's tail counter.
    tail_off: usize,
    /// Offset of the data area.
    data: usize,
    /// Bytes of the data area (a power of two).
    cap: u64,
}

impl Ring {
    /// The consumer's head, as shared.
    fn head(&self) -> &AtomicU64 {
        self.shm.u64_at(self.head_off)
    }

    /// The producer's tail, as shared.
    fn tail(&self) -> &AtomicU64 {
        self.shm.u64_at(self.tail_off)
    }

    /// Copy `bytes` in at `pos` of the data area.
    fn write(&self, pos: usize, bytes: &[u8]) {
        self.shm.write(self.data + pos, bytes);
    }

    /// Copy the bytes at `pos` of the data area out into `out`.
    fn read(&self, pos: usize, out: &mut [u8]) {
        self.shm.read(self.data + pos, out);
    }
}

/// The producing end of a ring.
pub struct RingTx {
    ring: Ring,
    /// Our tail, published by [`RingTx::publish`].
    tail: u64,
    /// The consumer's head as last read.
    head_seen: u64,
    /// The tail last published.
    published: u64,
}

impl RingTx {
    /// Largest payload one record can carry.
    pub fn max_payload(&self) -> usize {
        max_payload(self.ring.cap as usize)
    }

    /// Bytes free now (re-reading the consumer's head).
    pub fn free(&mut self) -> usize {
        self.refresh();
        (self.ring.cap - (self.tail - self.head_seen)) as usize
    }

    /// Payload bytes a record written now could carry (0: none fits).
    pub fn room(&mut self) -> usize {
        let free = self.free();
        let pos = (self.tail % self.ring.cap) as usize;
        let to_end = self.ring.cap as usize - pos;
        // Worst case a pad to the end comes first.
        let usable = if free >= to_end + HEADER {
            (free - to_end).max(to_end.min(free))
        } else {
            to_end.min(free)
        };
        usable.saturating_sub(HEADER).min(self.max_payload()) & !15
    }

    fn refresh(&mut self) {
        let h = self.ring.head().load(Ordering::Acquire);
        // A head behind ours or past our tail is the peer's lie: keep the old
        // value (we simply see less room).
        if h >= self.head_seen && h <= self.tail {
            self.head_seen = h;
        }
    }

    /// Append a record whose payload is `parts` concatenated. Returns false
    /// (nothing written) when it does not fit now. Not visible to the peer
    /// before [`RingTx::publish`].
    pub fn push(&mut self, kind: u8, id: u64, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.max_payload() {
            return false;
        }
        let rec = padded(len) as u64;
        let pos = self.tail % self.ring.cap;
        let to_end = self.ring.cap - pos;
        let need = if to_end < rec { to_end + rec } else { rec };
        if self.ring.cap - (self.tail - self.head_seen) < need {
            self.refresh();
            if self.ring.cap - (self.tail - self.head_seen) < need {
                return false;
            }
        }
        if to_end < rec {
            self.header(pos, PAD, (to_end as usize - HEADER) as u32, 0);
            self.tail += to_end;
        }
        let pos = self.tail % self.ring.cap;
        self.header(pos, kind, len as u32, id);
        let mut off = pos as usize + HEADER;
        for p in parts {
            self.ring.write(off, p);
            off += p.len();
        }
        self.tail += rec;
        true
    }

    fn header(&self, pos: u64, kind: u8, len: u32, id: u64) {
        let mut h = [0u8; HEADER];
        h[0] = kind;
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..16].copy_from_slice(&id.to_le_bytes());
        self.ring.write(pos as usize, &h);
    }

    /// Make the records pushed so far visible to the consumer.
    pub fn publish(&mut self) {
        self.ring.tail().store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// Whether records were pushed and not yet published (from this
    /// side's own count: the shared tail is the peer's to read, and a peer
    /// that rewrites it must not make this side publish every turn).
    pub fn unpublished(&self) -> bool {
        self.published != self.tail
    }
}

/// A record read from a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its kind (never [`PAD`]).
    pub kind: u8,
    /// Its id.
    pub id: u64,
    /// Payload bytes (copied into the caller's buffer).
    pub len: usize,
}

/// The consuming end of a ring.
pub struct RingRx {
    ring: Ring,
    /// Our head, given back by [`RingRx::release`].
    head: u64,
    /// The producer's tail as last read.
    tail_seen: u64,
}

impl RingRx {
    fn refresh(&mut self) -> Result<(), RingError> {
        let t = self.ring.tail().load(Ordering::Acquire);
        if t < self.tail_seen || t - self.head > self.ring.cap || !t.is_multiple_of(16) {
            return Err(RingError::Corrupt("tail"));
        }
        self.tail_seen = t;
        Ok(())
    }

    /// Whether records wait (re-reads the producer's tail).
    pub fn has_data(&self) -> bool {
        self.ring.tail().load(Ordering::Acquire) != self.head
    }

    /// Take the next record, its payload copied into `out` (resized).
    pub fn pop(&mut self, out: &mut Vec<u8>) -> Result<Option<Record>, RingError> {
        loop {
            if self.head == self.tail_seen {
                self.refresh()?;
                if self.head == self.tail_seen {
                    return Ok(None);
                }
            }
            let pos = (self.head % self.ring.cap) as usize;
            let avail = self.tail_seen - self.head;
            let to_end = self.ring.cap as usize - pos;
            if avail < HEADER as u64 || to_end < HEADER {
                return Err(RingError::Corrupt("short header"));
            }
            let mut h = [0u8; HEADER];
            self.ring.read(pos, &mut h);
            let kind = h[0];
            let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
            let id = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            if len > self.ring.cap as usize {
                return Err(RingError::Corrupt("length"));
            }
            let rec = padded(len);
            if rec as u64 > avail || rec > to_end {
                return Err(RingError::Corrupt("record past the tail or the end"));
            }
            self.head += rec as u64;
            if kind == PAD {
                continue;
            }
            out.clear();
            out.resize(len, 0);
            self.ring.read(pos + HEADER, out);
            return Ok(Some(Record { kind, id, len }));
        }
    }

    /// Give the space of the records taken so far back to the producer.
    pub fn release(&mut self) {
        self.ring.head().store(self.head, Ordering::Release);
    }
}

/// Send `data` with `fds` attached (`SCM_RIGHTS`) on a Unix stream socket.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [io::IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cm: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    let n =
        sendmsg::<()>(sock.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None).map_err(errno)?;
    if n != data.len() {
        // Stream sockets of this size do not split a short message; treat
        // it as an error rather than resend without the descriptors.
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

/// Receive into `buf`, appending any descriptors passed with the bytes to
/// `fds` (close-on-exec). Returns the bytes read (0: end of stream).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    // As many descriptors as one message can carry (the kernel's
    // SCM_MAX_FD): the daemon sends three per core.
    let mut space = nix::cmsg_space!([RawFd; 253]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(errno)?;
    let n = msg.bytes;
    for c in msg.cmsgs().map_err(errno)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for r in raw {
                // SAFETY: the kernel installed this descriptor in our table
                // for this message (SCM_RIGHTS); nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(r) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::other("descriptors truncated (MSG_CTRUNC)"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Channel, Channel) {
        pair_of(4096)
    }

    fn pair_of(cap: usize) -> (Channel, Channel) {
        let a = Channel::create("test", cap).unwrap();
        let fd = a.fd().try_clone_to_owned().unwrap();
        let b = Channel::open(fd).unwrap();
        (a, b)
    }

    #[test]
    fn records_cross_in_order_and_wrap() {
        let (d, a) = pair();
        let (mut tx, _) = d.split(Side::Daemon);
        let (_, mut rx) = a.split(Side::App);
        let mut out = Vec::new();
        let mut sent = 0u64;
        let mut got = 0u64;
        // Many rounds of varied sizes wrap the 4 KiB ring many times.
        for round in 0..2000u64 {
            let len = (round * 37 % 700) as usize;
            let payload: Vec<u8> = (0..len).map(|i| (i as u64 + round) as u8).collect();
            while !tx.push(7, round, &[&payload[..len / 2], &payload[len / 2..]]) {
                tx.publish();
                let r = rx.pop(&mut out).unwrap().expect("a full ring has records");
                assert_eq!(r.id, got);
                assert_eq!(out.len(), (got * 37 % 700) as usize);
                assert!(out
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i as u64 + got) as u8));
                got += 1;
                rx.release();
            }
            sent += 1;
        }
        tx.publish();
        while let Some(r) = rx.pop(&mut out).unwrap() {
            assert_eq!(r.id, got);
            got += 1;
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn a_full_ring_refuses_and_a_huge_record_never_fits() {
        let (d, _a) = pair();
        let (mut tx, _) = d.split(Side::Daemon);
        assert!(!tx.push(1, 0, &[&vec![0; tx.max_payload() + 1]]));
        let mut n = 0;
        while tx.push(1, n, &[&[0; 100]]) {
            n += 1;
        }
        assert_eq!(n, 4096 / 128);
    }

    #[test]
    fn a_lying_peer_is_an_error_not_a_panic() {
        let (d, a) = pair();
        let (_, mut rx) = d.split(Side::Daemon);
        // The application side publishes a tail far past anything written.
        a.shm
            .u64_at(RING_OFF[1].1)
            .store(1 << 40, Ordering::Release);
        let mut out = Vec::new();
        assert_eq!(rx.pop(&mut out), Err(RingError::Corrupt("tail")));
        // A tail in range over a header claiming a huge length.
        let (d, a) = pair();
        let (_, mut rx) = d.split(Side::Daemon);
        let (mut tx, _) = a.split(Side::App);
        assert!(tx.push(3, 1, &[&[1; 16]]));
        a.shm.write(DATA + 4096 + 4, &u32::MAX.to_le_bytes());
        tx.publish();
        assert!(matches!(rx.pop(&mut out), Err(RingError::Corrupt(_))));
    }

    #[test]
    fn positions_written_before_the_split_are_not_taken() {
        let (d, a) = pair();
        // The application writes both rings' counters before the daemon
        // takes the channel up.
        for (h, t) in RING_OFF {
            a.shm.u64_at(h).store(1 << 40, Ordering::Release);
            a.shm.u64_at(t).store(3 << 40, Ordering::Release);
        }
        let (mut tx, mut rx) = d.split(Side::Daemon);
        assert!(!tx.unpublished());
        // The daemon's ring starts empty and its writes stay in bounds; the
        // forged tail of the other ring is refused, not followed.
        assert!(tx.free() <= 4096);
        assert!(tx.push(1, 7, &[&[9; 16]]));
        assert!(tx.unpublished());
        tx.publish();
        assert!(!tx.unpublished());
        let mut out = Vec::new();
        assert!(matches!(rx.pop(&mut out), Err(RingError::Corrupt(_))));
    }

    #[test]
    fn sleep_flags_pair_with_publish() {
        let (d, a) = pair();
        let (mut tx, _) = d.split(Side::Daemon);
        let (_, rx) = a.split(Side::App);
        assert!(a.prepare_sleep(Side::App, &rx));
        assert!(d.peer_sleeping(Side::Daemon));
        a.woke(Side::App);
        assert!(tx.push(1, 1, &[]));
        tx.publish();
        assert!(!a.prepare_sleep(Side::App, &rx), "records wait: no sleep");
        assert!(!d.peer_sleeping(Side::Daemon));
    }

    #[test]
    fn ring_sizes_round_up_and_carry_the_payloads_asked_for() {
        assert_eq!(ring_size(0), 4096);
        assert_eq!(ring_size(4097), 8192);
        assert_eq!(ring_size(1 << 20), 1 << 20);
        for payload in [0, 1, 1008, 1009, 65_520, 65_521, 65_572] {
            let size = ring_size_for(payload);
            assert!(max_payload(size) >= payload, "{payload} fits in {size}");
            assert!(
                size == 4096 || max_payload(size / 2) < payload,
                "{size} is the smallest for {payload}"
            );
            let (d, _a) = pair_of(size);
            let (mut tx, _) = d.split(Side::Daemon);
            assert_eq!(tx.max_payload(), max_payload(size));
            assert!(tx.room() >= payload, "an empty ring has room for {payload}");
            assert!(tx.push(1, 0, &[&vec![0; payload]]));
        }
        assert_eq!(ring_size_for(65_572), 512 << 10);
    }

    #[test]
    fn an_unsealed_memfd_is_refused() {
        let fd = memfd_create("x", MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, 16384).unwrap();
        assert!(Channel::open(fd).is_err());
    }

    #[test]
    fn descriptors_cross_a_socket() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let ch = Channel::create("fdtest", 4096).unwrap();
        send_with_fds(a.as_fd(), b"hello\n", &[ch.fd()]).unwrap();
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        assert_eq!(fds.len(), 1);
        let other = Channel::open(fds.pop().unwrap()).unwrap();
        let (mut tx, _) = ch.split(Side::Daemon);
        let (_, mut rx) = other.split(Side::App);
        assert!(tx.push(9, 42, &[b"abc"]));
        tx.publish();
        let mut out = Vec::new();
        let r = rx.pop(&mut out).unwrap().unwrap();
        assert_eq!((r.kind, r.id, &out[..]), (9, 42, &b"abc"[..]));
    }
}
