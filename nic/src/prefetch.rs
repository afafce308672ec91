//! Cache prefetch hints, for passes that walk a batch's state before using
//! it so that the batch's cache misses overlap (`stack`'s ingress).

/// Bytes in a cache line (x86-64 and most aarch64 parts).
pub const LINE: usize = 64;

/// Ask the CPU to bring the line holding `p` into its caches. A hint only:
/// it never faults, whatever `p` is, and changes nothing observable.
#[inline(always)]
pub fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is in SSE, which every x86-64 CPU has; it is a
    // hint that never faults or writes, so any address is allowed.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetch every line of `len` bytes from `p`.
#[inline(always)]
pub fn range(p: *const u8, len: usize) {
    let start = p as usize & !(LINE - 1);
    let end = p as usize + len;
    let mut a = start;
    while a < end {
        line(a as *const u8);
        a += LINE;
    }
}

/// Prefetch every line of `*v`.
#[inline(always)]
pub fn value<T>(v: &T) {
    range(v as *const T as *const u8, std::mem::size_of::<T>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_changes_nothing_and_takes_any_address() {
        let v = [7u8; 300];
        value(&v);
        range(v.as_ptr().wrapping_add(1), 299);
        line(std::ptr::null());
        line(usize::MAX as *const u8);
        assert!(v.iter().all(|&b| b == 7));
    }
}
