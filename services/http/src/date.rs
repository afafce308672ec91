//! HTTP-dates read from requests (RFC 9110 5.6.7: the IMF-fixdate and the
//! two obsolete forms a recipient must accept), and the access log's time.

use crate::head::civil_from_days;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Seconds since the Unix epoch of an HTTP-date: `Sun, 06 Nov 1994
/// 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850; a
/// two-digit year is the most recent one ending so, as 5.6.7 says, taken
/// from 1970-2069), `Sun Nov  6 08:49:37 1994` (asctime). `None` for
/// anything else, a date before 1970 or fields out of range. The day name
/// is not checked against the date (recipients are not asked to).
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let comma = s.iter().position(|&b| b == b',');
    let (day, mon, year, time) = match comma {
        Some(3) => {
            // `Sun, 06 Nov 1994 08:49:37 GMT`
            let r = s.get(4..)?;
            if r.len() != 25 || r[0] != b' ' || r[3] != b' ' || r[7] != b' ' || r[12] != b' ' {
                return None;
            }
            if &r[21..] != b" GMT" {
                return None;
            }
            (
                num(&r[1..3])?,
                month(&r[4..7])?,
                num(&r[8..12])?,
                &r[13..21],
            )
        }
        Some(c) => {
            // `Sunday, 06-Nov-94 08:49:37 GMT`
            if !(6..=9).contains(&c) {
                return None;
            }
            let r = s.get(c + 1..)?;
            if r.len() != 23 || r[0] != b' ' || r[3] != b'-' || r[7] != b'-' || r[10] != b' ' {
                return None;
            }
            if &r[19..] != b" GMT" {
                return None;
            }
            let yy = num(&r[8..10])?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (num(&r[1..3])?, month(&r[4..7])?, year, &r[11..19])
        }
        None => {
            // `Sun Nov  6 08:49:37 1994`
            if s.len() != 24 || s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
                return None;
            }
            let day = if s[8] == b' ' {
                num(&s[9..10])?
            } else {
                num(&s[8..10])?
            };
            (day, month(&s[4..7])?, num(&s[20..24])?, &s[11..19])
        }
    };
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (h, m, sec) = (num(&time[0..2])?, num(&time[3..5])?, num(&time[6..8])?);
    // 60: a leap second, as the grammar allows.
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, mon, day as u32);
    if days < 0 || civil_from_days(days) != (year as i64, mon, day as u32) {
        // 31 Feb and the like.
        return None;
    }
    Some(days as u64 * 86_400 + h * 3600 + m * 60 + sec)
}

fn num(d: &[u8]) -> Option<u64> {
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0, |n, &c| n * 10 + u64::from(c - b'0')))
}

fn month(m: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|x| &x[..] == m)
        .map(|i| i as u32 + 1)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// nginx's `$time_local` for `secs` since the epoch, in UTC:
/// `07/Dec/2026:10:13:12 +0000`.
pub fn log_time(secs: u64) -> [u8; 26] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = *b"01/Jan/1970:00:00:00 +0000";
    let two = |v: u64, at: &mut [u8]| {
        at[0] = b'0' + (v / 10 % 10) as u8;
        at[1] = b'0' + (v % 10) as u8;
    };
    two(u64::from(d), &mut out[0..2]);
    out[3..6].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y.clamp(0, 9999) as u64;
    two(y / 100, &mut out[7..9]);
    two(y % 100, &mut out[9..11]);
    two(rem / 3600, &mut out[12..14]);
    two(rem / 60 % 60, &mut out[15..17]);
    two(rem % 60, &mut out[18..20]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::http_date;

    #[test]
    fn the_three_forms() {
        let t = Some(784_111_777);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), t);
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), t);
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-30 00:00:00 GMT"),
            Some(1_893_456_000)
        );
    }

    #[test]
    fn round_trips_with_the_formatter() {
        for secs in [0, 951_782_400, 1_709_251_199, 1_790_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT ",
            b"Sun, 31 Feb 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08-49-37 GMT",
            b"Sun Nov 6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:3x GMT",
            b"1994-11-06T08:49:37Z",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn log_times() {
        assert_eq!(&log_time(0), b"01/Jan/1970:00:00:00 +0000");
        assert_eq!(&log_time(784_111_777), b"06/Nov/1994:08:49:37 +0000");
    }
}
