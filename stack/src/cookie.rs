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
//! be forged without it (27 bits to guess per try).
//!
//! Window scaling and SACK ride in the timestamp, as Linux does
//! (`cookie_init_timestamp`, `cookie_timestamp_decode`): when the client's
//! SYN has the timestamp option, the cookie SYN-ACK carries one whose
//! TSval's low 6 bits ([`TS_OPT_BITS`]) are the client's window scale (4
//! bits, 0xf: none) and SACK-permitted (1 bit; the sixth, Linux's ECN bit,
//! is 0), and offers our window scale and SACK-permitted as a SYN-ACK from
//! the SYN queue would. The client echoes the TSval in the final ACK's
//! TSecr, which gives them back ([`CookieOpts`]), and the connection is
//! rebuilt with them and with timestamps. A client without timestamps gets
//! a SYN-ACK without window scaling or SACK, and the connection runs
//! without them. The option bits are not covered by the hash: a client can
//! only lie about its own options.
//!
//! The TSval clock of every connection (see [`CookieJar::ts_offset`]) is
//! keyed with the same secret.

use std::hash::Hasher;

use crate::parse::FlowKey;
use crate::reuseport::FlowHasher;

/// The MSS values a cookie can carry (the largest not above the client's
/// is used).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1220, 1300, 1400, 1440, 1460, 8960];

/// Seconds per cookie period.
pub const PERIOD_SECS: u64 = 64;

/// The low bits of a cookie SYN-ACK's TSval that carry the client's SYN
/// options (Linux's `TSBITS`).
pub const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
/// The largest window scale (RFC 7323 §2.3).
const MAX_WSCALE: u8 = 14;

/// The client's SYN options a cookie SYN-ACK's timestamp keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieOpts {
    /// The client's window scale (at most 14); `None`: it offered none.
    pub wscale: Option<u8>,
    /// The client offered SACK.
    pub sack: bool,
}

impl CookieOpts {
    /// The TSval of a cookie SYN-ACK sent when the connection's clock reads
    /// `now_ts`: its low bits replaced by these options, and never later
    /// than `now_ts` (as Linux: the connection's TSvals must not go back
    /// after it).
    pub fn encode_ts(self, now_ts: u32) -> u32 {
        let wscale = self
            .wscale
            .map_or(TS_WSCALE_MASK, |w| u32::from(w.min(MAX_WSCALE)));
        let bits = wscale | if self.sack { TS_SACK } else { 0 };
        let ts = (now_ts & !TS_OPT_MASK) | bits;
        if (ts.wrapping_sub(now_ts) as i32) > 0 {
            ts.wrapping_sub(1 << TS_OPT_BITS)
        } else {
            ts
        }
    }

    /// The options a final ACK's TSecr (the cookie SYN-ACK's TSval) gives
    /// back.
    pub fn decode_ts(tsecr: u32) -> Self {
        let w = tsecr & TS_WSCALE_MASK;
        CookieOpts {
            wscale: (w != TS_WSCALE_MASK).then_some((w as u8).min(MAX_WSCALE)),
            sack: tsecr & TS_SACK != 0,
        }
    }
}

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

    /// The offset of the TSval clock of connections between `key`'s
    /// addresses (Linux's `secure_tcp_ts_off`): TSvals tell nothing of the
    /// host's uptime, and successive connections to one peer see one
    /// clock (its PAWS, TIME-WAIT reuse). Deterministic, so a connection
    /// rebuilt from a cookie continues the clock of its SYN-ACK's TSval.
    pub fn ts_offset(&self, key: &FlowKey) -> u32 {
        let pair = FlowKey {
            sport: 0,
            dport: 0,
            ..*key
        };
        let mut h = self.key.tuple_state(&pair);
        // Apart from the cookies' MACs (which hash an ISN and a period).
        h.write_u64(u64::from_be_bytes(*b"tsoffset"));
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
    fn options_ride_in_the_low_bits_of_the_tsval() {
        for wscale in [None, Some(0), Some(7), Some(14), Some(15), Some(200)] {
            for sack in [false, true] {
                for now_ts in [0u32, 63, 64, 1_000_000, u32::MAX] {
                    let o = CookieOpts { wscale, sack };
                    let ts = o.encode_ts(now_ts);
                    // Never after the clock, never more than 64 behind.
                    assert!(now_ts.wrapping_sub(ts) < 64, "{ts} for {now_ts}");
                    let back = CookieOpts::decode_ts(ts);
                    assert_eq!(back.sack, sack);
                    assert_eq!(back.wscale, wscale.map(|w| w.min(14)), "{o:?}");
                }
            }
        }
        // Linux's layout: 4 bits of window scale, then SACK; bit 5 (ECN) 0.
        let ts = CookieOpts {
            wscale: Some(7),
            sack: true,
        }
        .encode_ts(0x1234_5678);
        assert_eq!(ts & 0x3f, 0x17);
        let ts = CookieOpts::default().encode_ts(0x1234_5678);
        assert_eq!(ts & 0x3f, 0x0f);
    }

    #[test]
    fn ts_offsets_are_per_address_pair_and_keyed() {
        let j = CookieJar::with_key(1, 2);
        let a = key(1000);
        let b = key(2000);
        assert_eq!(j.ts_offset(&a), j.ts_offset(&b), "ports do not count");
        let other_addr = FlowKey {
            src: "10.9.9.9".parse().unwrap(),
            ..a
        };
        assert_ne!(j.ts_offset(&a), j.ts_offset(&other_addr));
        assert_ne!(j.ts_offset(&a), CookieJar::with_key(3, 4).ts_offset(&a));
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
