//! Who may read the stack's report (`GET /stats`): the path it is served at
//! (`--stats PATH`, or `off`) and the client addresses allowed to read it
//! (`--stats-allow`). By default the report is served at `/stats` to
//! clients on the server's own subnets (`--addr`, `--addr6`), IPv6
//! link-local and loopback: it names every listener and its counters, which
//! a client behind the gateway has no business reading. To anyone else the
//! path is an ordinary one (the fixed body, or a file of `--root`, usually a
//! 404): nothing tells that a report exists. Refusals are counted
//! (`stats_refused`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The server's IPv4 and IPv6 addresses with their prefix lengths.
pub type LocalAddrs = (Option<(Ipv4Addr, u8)>, Option<(Ipv6Addr, u8)>);

/// `--stats`: the path of the report, or none (`off`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsPath(pub Option<String>);

/// Why `--stats` or a `--stats-allow` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsFlagError {
    /// `--stats` neither `off` nor a plain absolute path.
    #[error("`{0}`: expected `off` or a path such as /stats")]
    Path(String),
    /// A `--stats-allow` entry that is not a keyword or an address.
    #[error("`{0}`: expected any, local, or ADDRESS[/PREFIX]")]
    Allow(String),
    /// A prefix length past the family's.
    #[error("`{0}`: prefix length must be 0..={1}")]
    Prefix(String, u8),
}

/// Parse `--stats`: `off`, or an absolute path (no query, no spaces).
pub fn parse_stats_path(s: &str) -> Result<StatsPath, StatsFlagError> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(StatsPath(None));
    }
    if !s.starts_with('/') || s.contains(['?', '#', ' ']) || s.len() > 255 {
        return Err(StatsFlagError::Path(s.to_string()));
    }
    Ok(StatsPath(Some(s.to_string())))
}

/// One entry of `--stats-allow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    /// Every client.
    Any,
    /// The server's own subnets, IPv6 link-local and loopback.
    Local,
    /// Addresses in this prefix.
    Prefix(IpAddr, u8),
}

/// Parse one `--stats-allow` entry: `any`, `local`, `ADDRESS/PREFIX` or a
/// bare address.
pub fn parse_allow(s: &str) -> Result<Allow, StatsFlagError> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "any" => return Ok(Allow::Any),
        "local" => return Ok(Allow::Local),
        _ => {}
    }
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| StatsFlagError::Allow(s.to_string()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| StatsFlagError::Prefix(s.to_string(), max))?,
    };
    Ok(Allow::Prefix(addr, prefix))
}

/// The resolved policy of one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsPolicy {
    path: Option<String>,
    allow: Vec<Allow>,
    local4: Option<(Ipv4Addr, u8)>,
    local6: Option<(Ipv6Addr, u8)>,
}

impl StatsPolicy {
    /// The report at `path` (none: off) for the clients `allow` lets in;
    /// `local4`/`local6` are the server's own addresses with prefixes.
    pub fn new(
        path: &StatsPath,
        allow: &[Allow],
        local4: Option<(Ipv4Addr, u8)>,
        local6: Option<(Ipv6Addr, u8)>,
    ) -> Self {
        StatsPolicy {
            path: path.0.clone(),
            allow: allow.to_vec(),
            local4,
            local6,
        }
    }

    /// The path, if the report is served.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Whether a request for `target` (as sent, Fixed site) names the report.
    pub fn is_target(&self, target: &str) -> bool {
        self.path.as_deref() == Some(target)
    }

    /// Whether a normalized `--root` key (no leading slash, no trailing
    /// slash) names the report.
    pub fn is_key(&self, key: &[u8], trailing_slash: bool) -> bool {
        !trailing_slash
            && self
                .path
                .as_deref()
                .is_some_and(|p| p.trim_start_matches('/').as_bytes() == key)
    }

    /// Whether a request for `target` names the Prometheus exposition
    /// (`/metrics`, served when the report is, with the same allow-list).
    pub fn is_metrics_target(&self, target: &str) -> bool {
        self.path.is_some() && target == "/metrics"
    }

    /// Whether a normalized `--root` key names the Prometheus exposition.
    pub fn is_metrics_key(&self, key: &[u8], trailing_slash: bool) -> bool {
        self.path.is_some() && !trailing_slash && key == b"metrics"
    }

    /// Whether a client at `peer` may read the report (an unknown peer may
    /// not, unless `any` is allowed).
    pub fn allows(&self, peer: Option<IpAddr>) -> bool {
        self.allow.iter().any(|rule| match (rule, peer) {
            (Allow::Any, _) => true,
            (_, None) => false,
            (Allow::Local, Some(p)) => self.is_local(unmap(p)),
            (Allow::Prefix(net, len), Some(p)) => in_prefix(unmap(p), *net, *len),
        })
    }

    fn is_local(&self, p: IpAddr) -> bool {
        match p {
            IpAddr::V4(a) => {
                a.is_loopback()
                    || self
                        .local4
                        .is_some_and(|(ours, len)| in_prefix(p, IpAddr::V4(ours), len))
            }
            IpAddr::V6(a) => {
                a.is_loopback()
                    || a.is_unicast_link_local()
                    || self
                        .local6
                        .is_some_and(|(ours, len)| in_prefix(p, IpAddr::V6(ours), len))
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmap(p: IpAddr) -> IpAddr {
    match p {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(p, IpAddr::V4),
        v4 => v4,
    }
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_stats_path("off").unwrap(), StatsPath(None));
        assert_eq!(
            parse_stats_path("/_admin/stats").unwrap(),
            StatsPath(Some("/_admin/stats".into()))
        );
        for bad in ["stats", "/a?b", "/a b", ""] {
            assert!(parse_stats_path(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_allow("any").unwrap(), Allow::Any);
        assert_eq!(parse_allow(" local").unwrap(), Allow::Local);
        assert_eq!(
            parse_allow("198.18.0.0/15").unwrap(),
            Allow::Prefix("198.18.0.0".parse().unwrap(), 15)
        );
        assert_eq!(
            parse_allow("2001:db8::1").unwrap(),
            Allow::Prefix("2001:db8::1".parse().unwrap(), 128)
        );
        for bad in [
            "10.0.0.0/33",
            "fe80::/129",
            "host",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_is_local_subnets_only() {
        let p = StatsPolicy::new(
            &parse_stats_path("/stats").unwrap(),
            &[Allow::Local],
            Some(("198.18.0.1".parse().unwrap(), 24)),
            Some(("2001:db8:18::1".parse().unwrap(), 64)),
        );
        assert!(p.is_target("/stats"));
        assert!(!p.is_target("/stats/"));
        assert!(p.is_key(b"stats", false));
        assert!(!p.is_key(b"stats", true));
        for ok in [
            "198.18.0.2",
            "2001:db8:18::2",
            "::ffff:198.18.0.9",
            "fe80::1",
            "127.0.0.1",
            "::1",
        ] {
            assert!(p.allows(ip(ok)), "{ok}");
        }
        for refused in ["198.18.1.2", "192.0.2.1", "2001:db8:19::2"] {
            assert!(!p.allows(ip(refused)), "{refused}");
        }
        assert!(!p.allows(None));
    }

    #[test]
    fn prefixes_any_and_off() {
        let allow = [
            parse_allow("192.0.2.0/24").unwrap(),
            parse_allow("2001:db8::/32").unwrap(),
        ];
        let p = StatsPolicy::new(&StatsPath(Some("/s".into())), &allow, None, None);
        assert!(p.allows(ip("192.0.2.200")));
        assert!(p.allows(ip("2001:db8:ffff::1")));
        assert!(!p.allows(ip("192.0.3.1")));
        assert!(!p.allows(ip("127.0.0.1")));
        let any = StatsPolicy::new(&StatsPath(Some("/s".into())), &[Allow::Any], None, None);
        assert!(any.allows(None) && any.allows(ip("203.0.113.1")));
        let off = StatsPolicy::new(&StatsPath(None), &[Allow::Any], None, None);
        assert!(!off.is_target("/stats") && !off.is_key(b"stats", false));
        assert_eq!(off.path(), None);
    }
}
