//! SYN cookies (Linux `tcp_syncookies=1`): when a listener's SYN queue is
//! full, a SYN is answered with a SYN-ACK whose sequence number encodes the
//! connection and nothing is kept; a final ACK that carries `cookie + 1`
//! proves the client saw it, and the connection is built then.
//!
//! Layout of the 32-bit cookie (our own, like Linux's it keeps the MSS):
//!
//! ```text
//!   bits 31..5  keyed SipHash-1-3 of (addresses, ports, client ISN, period)
//!   bits  4..3  the period's low two bits (a period is 64 s)
//!   bits  2..0  index of the MSS in MSS_TABLE
//! ```
//!
//! A cookie is valid in the period it was made and the next one (64 to 128
//! s). The hash is keyed with a random per-process secret, so cookies cannot
//! be forged without it (27 bits to guess per try). As with Linux cookies
//! without timestamps, the SYN-ACK offers no window scaling and no SACK: the
//! connection runs without them.

use std::hash::Hasher;

use crate::parse::FlowKey;
use crate::reuseport::FlowHasher;

/// The MSS values a cookie can carry (the largest not above the client's
/// is used).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1220, 1300, 1400, 1440, 1460, 8960];

/// Seconds per cookie period.
pub const PERIOD_SECS: u64 = 64;

/// The secret cookies are made with.
#[derive(Clone, Debug)]
pub struct CookieJar {
    /// The keyed 4-tuple hash of reuseport, with a key of its own.
    key: FlowHasher,
}

impl CookieJar {
    /// A jar with a random secret.
    pub fn random() -> Self {
        CookieJar {
            key: FlowHasher::random(),
        }
    }

    /// A jar with a fixed secret (tests).
    pub fn with_key(k0: u64, k1: u64) -> Self {
        CookieJar {
            key: FlowHasher::with_key(k0, k1),
        }
    }

    fn mac(&self, key: &FlowKey, client_isn: u32, period: u64) -> u32 {
        let mut h = self.key.tuple_state(key);
        h.write_u32(client_isn);
        h.write_u64(period);
        h.finish() as u32
    }

    /// The cookie for a SYN with sequence number `client_isn` and MSS option
    /// `mss` (0: none), at `now_secs`; returns it with the MSS it encodes.
    pub fn make(&self, key: &FlowKey, client_isn: u32, mss: u16, now_secs: u64) -> (u32, u16) {
        let period = now_secs / PERIOD_SECS;
        let want = if mss == 0 { 536 } else { mss };
        let idx = MSS_TABLE.iter().rposition(|&m| m <= want).unwrap_or(0);
        let mac = self.mac(key, client_isn, period) & !0x1f;
        let cookie = mac | (((period & 3) as u32) << 3) | idx as u32;
        (cookie, MSS_TABLE[idx])
    }

    /// Check the cookie an ACK returns (`ack - 1`) for the client ISN
    /// `seq - 1`; the MSS it encodes when valid.
    pub fn check(&self, key: &FlowKey, client_isn: u32, cookie: u32, now_secs: u64) -> Option<u16> {
        let now_p = now_secs / PERIOD_SECS;
        let low = u64::from((cookie >> 3) & 3);
        let period = [now_p, now_p.saturating_sub(1)]
            .into_iter()
            .find(|p| p & 3 == low)?;
        let mac = self.mac(key, client_isn, period) & !0x1f;
        if mac != cookie & !0x1f {
            return None;
        }
        Some(MSS_TABLE[(cookie & 7) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::parse::FlowKey;

    fn key(sport: u16) -> FlowKey {
        FlowKey::test_tcp4(sport)
    }

    #[test]
    fn a_cookie_checks_in_its_period_and_the_next_only() {
        let j = CookieJar::with_key(1, 2);
        let t = 10_000;
        let (c, mss) = j.make(&key(1), 77, 1460, t);
        assert_eq!(mss, 1460);
        assert_eq!(j.check(&key(1), 77, c, t), Some(1460));
        assert_eq!(j.check(&key(1), 77, c, t + PERIOD_SECS), Some(1460));
        assert_eq!(j.check(&key(1), 77, c, t + 2 * PERIOD_SECS), None);
        assert_eq!(j.check(&key(1), 77, c, t + 4 * PERIOD_SECS), None);
        assert_eq!(j.check(&key(1), 78, c, t), None, "another ISN");
        assert_eq!(j.check(&key(2), 77, c, t), None, "another port");
        assert_eq!(j.check(&key(1), 77, c ^ 0x100, t), None, "a flipped bit");
        let other = CookieJar::with_key(3, 4);
        assert_eq!(other.check(&key(1), 77, c, t), None, "another secret");
    }

    #[test]
    fn the_mss_is_the_largest_entry_not_above_the_clients() {
        let j = CookieJar::with_key(1, 2);
        for (asked, got) in [
            (0, 536),
            (100, 536),
            (1000, 536),
            (1460, 1460),
            (1450, 1440),
            (9000, 8960),
        ] {
            let (c, m) = j.make(&key(9), 5, asked, 500);
            assert_eq!(m, got, "asked {asked}");
            assert_eq!(j.check(&key(9), 5, c, 500), Some(got));
        }
    }

    #[test]
    fn random_acks_almost_never_pass() {
        let j = CookieJar::with_key(5, 6);
        let mut passed = 0;
        let mut rng = testkit::Rng::new(0x1234_5678);
        for i in 0..200_000u32 {
            let x = rng.next_u32();
            if j.check(&key((i % 60000) as u16), i, x, 1_000_000).is_some() {
                passed += 1;
            }
        }
        // 2^-27 per try with two periods tried: expect ~0.
        assert!(passed <= 1, "{passed} forged cookies passed");
    }
}
