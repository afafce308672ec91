//! Response heads, written straight into a connection's output buffer
//! (no formatting machinery, no allocation once the buffer has grown).

/// The status line of `status` (`HTTP/1.1 404 Not Found\r\n`).
pub fn status_line(status: u16) -> &'static [u8] {
    match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        308 => b"HTTP/1.1 308 Permanent Redirect\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        405 => b"HTTP/1.1 405 Method Not Allowed\r\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\n",
        412 => b"HTTP/1.1 412 Precondition Failed\r\n",
        413 => b"HTTP/1.1 413 Content Too Large\r\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\n",
        416 => b"HTTP/1.1 416 Range Not Satisfiable\r\n",
        417 => b"HTTP/1.1 417 Expectation Failed\r\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\n",
        505 => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        _ => b"HTTP/1.1 500 Internal Server Error\r\n",
    }
}

/// The short text body of an error status.
pub fn error_body(status: u16) -> &'static [u8] {
    match status {
        301 => b"moved permanently\n",
        308 => b"permanent redirect\n",
        400 => b"bad request\n",
        404 => b"not found\n",
        405 => b"method not allowed\n",
        408 => b"request timeout\n",
        412 => b"precondition failed\n",
        413 => b"request body too large\n",
        414 => b"request target too long\n",
        416 => b"range not satisfiable\n",
        417 => b"expectation failed\n",
        431 => b"request header too large\n",
        501 => b"not implemented\n",
        505 => b"HTTP version not supported (HTTP/1.0, HTTP/1.1)\n",
        _ => b"error\n",
    }
}

/// What the `Connection` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// Nothing (HTTP/1.1 keep-alive is the default).
    None,
    /// `Connection: keep-alive` (an HTTP/1.0 client asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

impl ConnHeader {
    /// The header of a response after which the connection stays open
    /// (`keep`) or not, to a request of HTTP/1.`minor`.
    pub fn for_response(keep: bool, minor: u8) -> ConnHeader {
        if !keep {
            ConnHeader::Close
        } else if minor == 0 {
            ConnHeader::KeepAlive
        } else {
            ConnHeader::None
        }
    }
}

/// Writes a response head: the status line, `Server`, `Date`, the body's
/// `Content-Type`/`Content-Length` lines (`content`), `extra` lines
/// (complete, with CRLF), `Connection`, and the empty line.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    date: &[u8],
    content: &[u8],
    extra: &[&[u8]],
    conn: ConnHeader,
) {
    out.extend_from_slice(status_line(status));
    out.extend_from_slice(b"Server: xdpstack\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(content);
    for e in extra {
        out.extend_from_slice(e);
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// `Content-Type`/`Content-Length` lines for a body built per response.
pub fn content_lines(out: &mut Vec<u8>, content_type: &str, len: usize) {
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7) for
/// `secs` seconds since the Unix epoch.
pub fn http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |v: u64, at: &mut [u8]| {
        at[0] = b'0' + (v / 10 % 10) as u8;
        at[1] = b'0' + (v % 10) as u8;
    };
    two(d as u64, &mut out[5..7]);
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y.clamp(0, 9999) as u64;
    two(y / 100, &mut out[12..14]);
    two(y % 100, &mut out[14..16]);
    two(rem / 3600, &mut out[17..19]);
    two(rem / 60 % 60, &mut out[20..22]);
    two(rem % 60, &mut out[23..25]);
    out
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let s = |secs| String::from_utf8(http_date(secs).to_vec()).unwrap();
        assert_eq!(s(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(s(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(s(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(s(1_709_164_799), "Wed, 28 Feb 2024 23:59:59 GMT");
        assert_eq!(s(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(s(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        let date = http_date(0);
        let mut content = Vec::new();
        content_lines(&mut content, "text/plain", 12);
        write_head(
            &mut out,
            405,
            &date,
            &content,
            &[b"Allow: GET, HEAD\r\n"],
            ConnHeader::Close,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nServer: xdpstack\r\n\
             Date: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Type: text/plain\r\n\
             Content-Length: 12\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"
        );
        for s in [
            200, 204, 206, 301, 304, 308, 400, 404, 405, 408, 412, 413, 414, 416, 417, 431, 501,
            505,
        ] {
            let line = status_line(s);
            assert!(line.starts_with(format!("HTTP/1.1 {s} ").as_bytes()));
            assert!(line.ends_with(b"\r\n"));
        }
    }
}
