//! `--redirect-https`: every request on the plain port is answered with a
//! redirect to the same URL over https (301 for GET and HEAD, 308 for the
//! other methods, which keeps the method and body, RFC 9110 15.4.9).

use crate::head::ConnHeader;
use crate::parse::{Body, Method, Request};
use crate::{Conn, Service};

/// Where redirects point.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// The HTTPS port (left out of the URL when 443).
    pub port: u16,
    /// The host for a request without one (HTTP/1.0): the server's first
    /// address.
    pub fallback: String,
}

/// The value of the `Host` field in a request head already checked by the
/// parser (at most one, valid).
fn host_field(head: &[u8]) -> Option<&[u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        name.eq_ignore_ascii_case(b"host")
            .then(|| value[1..].trim_ascii())
    })
}

/// `host[:port]` without the port (an IPv6 literal keeps its brackets).
fn strip_port(host: &[u8]) -> &[u8] {
    let end = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .map_or(host.len(), |i| i + 1)
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    &host[..end]
}

impl Redirect {
    /// From the command line: `--tls-port`, and the first of the server's
    /// addresses for requests without a host.
    pub fn new(args: &crate::HttpArgs) -> Self {
        let fallback = match args.local_addrs {
            (Some((a, _)), _) => a.to_string(),
            (None, Some((a, _))) => format!("[{a}]"),
            (None, None) => "localhost".into(),
        };
        Redirect {
            port: args.tls.tls_port,
            fallback,
        }
    }

    /// The `Location` line for `target` (origin or absolute form; `*` and
    /// authority forms go to `/`), the host taken from the absolute target,
    /// else `Host`, else the fallback.
    pub fn location(&self, head: &[u8], target: &str, out: &mut Vec<u8>) {
        let t = target.as_bytes();
        let lower = |n: usize| t.get(..n).map(|p| p.to_ascii_lowercase());
        let abs = if lower(7).as_deref() == Some(b"http://") {
            Some(&t[7..])
        } else if lower(8).as_deref() == Some(b"https://") {
            Some(&t[8..])
        } else {
            None
        };
        let (host, path): (&[u8], &[u8]) = match abs {
            Some(rest) => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'/' || b == b'?')
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
            None => (
                host_field(head).unwrap_or(self.fallback.as_bytes()),
                if t.first() == Some(&b'/') { t } else { b"/" },
            ),
        };
        out.extend_from_slice(b"Location: https://");
        out.extend_from_slice(strip_port(host));
        if self.port != 443 {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(self.port).as_bytes());
        }
        if path.first() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(path);
        out.extend_from_slice(b"\r\n");
    }
}

/// The `Strict-Transport-Security` line for `--hsts SECONDS` (none when 0
/// or without certificates).
pub fn hsts_line(args: &super::TlsArgs) -> Option<Vec<u8>> {
    (args.hsts > 0 && args.shared.is_some()).then(|| {
        let mut l = b"Strict-Transport-Security: max-age=".to_vec();
        l.extend_from_slice(itoa::Buffer::new().format(args.hsts).as_bytes());
        l.extend_from_slice(b"\r\n");
        l
    })
}

impl Service {
    /// `--hsts`: the line goes into the response head written at `at` in
    /// the connection's output (after its status line; bodies queued
    /// behind it move along).
    pub(crate) fn add_hsts(&mut self, c: &mut Conn, at: usize) {
        let Some(line) = &self.hsts else {
            return;
        };
        let Some(p) = c.out.buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return;
        };
        let pos = at + p + 2;
        c.out.buf.splice(pos..pos, line.iter().copied());
        for b in c.out.bodies.iter_mut().filter(|b| b.at >= pos) {
            b.at += line.len();
        }
    }

    /// Answers `req` (whose head is `head`) on a plain connection with the
    /// redirect; its body, if any, is read and dropped.
    pub(crate) fn redirect(&mut self, c: &mut Conn, req: &Request, head: &[u8]) {
        let has_body = req.body != Body::None;
        // Answered without asking for the body: with `Expect: 100-continue`
        // the client may send it or not, so what follows is unknown: close.
        let keep = req.keep_alive && !self.stopping && !(has_body && req.expect_continue);
        let conn = ConnHeader::for_response(keep, req.minor);
        c.answered_early = has_body;
        if !keep {
            c.close_after = true;
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        if let Some(r) = &self.redirect {
            r.location(head, req.target, &mut line);
        }
        let status = match req.method {
            Method::Get | Method::Head => 301,
            _ => 308,
        };
        self.simple(c, status, &[&line], req.method == Method::Head, conn);
        self.line = line;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(port: u16, head: &str, target: &str) -> String {
        let r = Redirect {
            port,
            fallback: "198.18.0.1".into(),
        };
        let mut out = Vec::new();
        r.location(head.as_bytes(), target, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn locations() {
        let h = "GET /a?b HTTP/1.1\r\nAccept: */*\r\nHOST:  example.com:8080 \r\n\r\n";
        assert_eq!(loc(443, h, "/a?b"), "Location: https://example.com/a?b\r\n");
        assert_eq!(
            loc(8443, h, "/a?b"),
            "Location: https://example.com:8443/a?b\r\n"
        );
        let h6 = "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n";
        assert_eq!(loc(443, h6, "/"), "Location: https://[2001:db8::1]/\r\n");
        // An absolute target names the host (RFC 9112 3.2.2).
        assert_eq!(
            loc(443, h, "http://other.test:80/x"),
            "Location: https://other.test/x\r\n"
        );
        assert_eq!(
            loc(443, h, "HTTP://other.test?q"),
            "Location: https://other.test/?q\r\n"
        );
        assert_eq!(loc(443, h, "*"), "Location: https://example.com/\r\n");
        // HTTP/1.0 without Host.
        assert_eq!(
            loc(443, "GET /x HTTP/1.0\r\n\r\n", "/x"),
            "Location: https://198.18.0.1/x\r\n"
        );
        // A field whose name only ends in "host" is not Host.
        assert_eq!(
            loc(443, "GET / HTTP/1.0\r\nX-Host: evil\r\n\r\n", "/"),
            "Location: https://198.18.0.1/\r\n"
        );
    }
}
