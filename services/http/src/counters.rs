//! What one worker's HTTP service counts.

/// Counters of one worker's HTTP service.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HttpCounters {
    /// Responses sent (every status).
    pub requests: u64,
    /// Connections accepted.
    pub connections: u64,
    /// 2xx responses.
    pub status_2xx: u64,
    /// 3xx responses.
    pub status_3xx: u64,
    /// 4xx responses.
    pub status_4xx: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Connections closed for idleness between requests.
    pub idle_closed: u64,
    /// Request heads not complete within --header-timeout (408, closed).
    pub header_timeouts: u64,
    /// Request bodies that stopped arriving while skipped (closed).
    pub body_timeouts: u64,
    /// Clients that read nothing of a response for --idle-timeout (reset).
    pub send_timeouts: u64,
    /// Connections reset at accept because --max-conns were open and none
    /// was idle between requests for `EVICT_AFTER`.
    pub rejected_max_conns: u64,
    /// Connections idle between requests (or before the first) closed to
    /// let a new one in when --max-conns were open and none was in
    /// `closed_quiet`'s list: the longest idle first, idle at least
    /// `EVICT_AFTER`.
    pub evicted_idle: u64,
    /// Keep-alive connections idle after a request closed at once to let a
    /// new one in when --max-conns were open, the one that went idle first,
    /// whatever its age (nginx reuses its idle keep-alive connections so
    /// when it runs out).
    pub closed_quiet: u64,
    /// Connections the engine ended while held (reset by the peer, timed
    /// out): forgotten at once.
    pub ended: u64,
    /// Most connections open at once.
    pub max_open: u64,
    /// Listeners replaced (SIGHUP).
    pub listeners_replaced: u64,
    /// Idle connections closed when the stop began.
    pub closed_at_stop: u64,
    /// Connections still open when the grace period ended (reset).
    pub reset_at_exit: u64,
    /// Request body bytes read (decoded).
    pub body_bytes: u64,
    /// `100 Continue` responses sent.
    pub continues: u64,
    /// Requests for the report from clients --stats-allow does not list
    /// (answered as an ordinary path).
    pub stats_refused: u64,
    /// 206 responses (ranges), and how many of them were
    /// `multipart/byteranges`.
    pub partial: u64,
    /// See `partial`.
    pub multipart: u64,
    /// 304 responses (If-None-Match / If-Modified-Since).
    pub not_modified: u64,
    /// 412 responses (If-Match / If-Unmodified-Since).
    pub precondition_failed: u64,
    /// 416 responses (no satisfiable range).
    pub range_not_satisfiable: u64,
    /// 200 and 206 responses from a precompressed variant (`file.br`).
    pub encoded_br: u64,
    /// 200 and 206 responses from a precompressed variant (`file.gz`).
    pub encoded_gzip: u64,
    /// Bytes read from files served from disk (not held in memory).
    pub disk_bytes: u64,
    /// Trees swapped in after a SIGHUP.
    pub site_reloads: u64,
    /// Bytes written to the access log, and failed writes.
    pub log_bytes: u64,
    /// See `log_bytes`.
    pub log_errors: u64,
}
