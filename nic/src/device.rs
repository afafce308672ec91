//! A smoltcp [`Device`] over a [`Port`](crate::Port): the rx token reads the
//! frame in place, the tx token writes straight into a free UMEM frame.

use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::ledger::Place;
use crate::ring::{Frame, FrameMem};
use crate::state::{PortState, RxPacket};

/// The device for one smoltcp poll: at most one received packet, and as many
/// transmissions as there are free frames.
pub struct PortDevice<'a, M: FrameMem> {
    mem: &'a M,
    st: &'a mut PortState,
    rx: Option<RxPacket>,
}

impl<'a, M: FrameMem> PortDevice<'a, M> {
    pub(crate) fn new(mem: &'a M, st: &'a mut PortState, rx: Option<RxPacket>) -> Self {
        PortDevice { mem, st, rx }
    }
}

/// Reads one received packet in place.
pub struct PortRxToken<'a, M: FrameMem> {
    mem: &'a M,
    pkt: RxPacket,
}

/// Writes one packet into a free frame.
pub struct PortTxToken<'a, M: FrameMem> {
    mem: &'a M,
    st: &'a mut PortState,
}

impl<M: FrameMem> Device for PortDevice<'_, M> {
    type RxToken<'b>
        = PortRxToken<'b, M>
    where
        Self: 'b;
    type TxToken<'b>
        = PortTxToken<'b, M>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let pkt = self.rx.take()?;
        Some((
            PortRxToken { mem: self.mem, pkt },
            PortTxToken {
                mem: self.mem,
                st: self.st,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        if !self.st.can_tx() {
            return None;
        }
        Some(PortTxToken {
            mem: self.mem,
            st: self.st,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        if self.st.cfg.ethernet {
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = self.st.cfg.mtu + 14;
        } else {
            caps.medium = Medium::Ip;
            caps.max_transmission_unit = self.st.cfg.mtu;
        }
        caps.max_burst_size = Some(self.st.cfg.batch);
        let mut ck = ChecksumCapabilities::default();
        if !self.st.cfg.verify_rx_checksums {
            ck.ipv4 = Checksum::Tx;
            ck.udp = Checksum::Tx;
            ck.tcp = Checksum::Tx;
            ck.icmpv4 = Checksum::Tx;
            ck.icmpv6 = Checksum::Tx;
        }
        caps.checksum = ck;
        caps
    }
}

impl<M: FrameMem> smoltcp::phy::RxToken for PortRxToken<'_, M> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let RxPacket { frame, offset, len } = self.pkt;
        // SAFETY: `Port::device` only lets a packet through whose frame the
        // ledger says is held (place Rx), and the device borrows the port
        // mutably, so the frame cannot be released (and handed to a tx token
        // or the kernel) while this poll runs.
        unsafe {
            self.mem.with_frame(frame.addr, frame.len as usize, |b| {
                // The backend may hand out fewer bytes than `frame.len` for a
                // descriptor that does not fit its frame: never slice past them.
                let end = offset.saturating_add(len).min(b.len());
                let start = offset.min(end);
                f(&b[start..end])
            })
        }
    }
}

impl<M: FrameMem> smoltcp::phy::TxToken for PortTxToken<'_, M> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let headroom = self.st.cfg.l2_headroom;
        let total = headroom + len;
        let addr = if total <= self.st.capacity {
            self.st.alloc_tx()
        } else {
            None
        };
        let Some(addr) = addr else {
            // No frame (or an oversized packet): let smoltcp write into scratch
            // and count the loss, as a full NIC queue would.
            self.st.counters.tx_no_frame += 1;
            let mut scratch = std::mem::take(&mut self.st.scratch);
            scratch.resize(len, 0);
            let r = f(&mut scratch[..len]);
            self.st.scratch = scratch;
            return r;
        };
        // SAFETY: `alloc_tx` just moved this frame Free -> TxBuild, so the port
        // owns it alone; `total` fits the frame's data capacity.
        let r = unsafe {
            self.mem
                .with_frame_mut(addr, total, |b| f(&mut b[headroom..total]))
        };
        self.st.tx_build.push(Frame {
            addr,
            len: total as u32,
        });
        debug_assert_eq!(
            self.st.ledger.place(self.st.index(addr)),
            Some(Place::TxBuild)
        );
        r
    }
}
