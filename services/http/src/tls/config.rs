//! What HTTPS serves with: certificates and keys read from PEM files, the
//! SNI choice between them, session resumption (a ticket key rotator and a
//! server-side cache) and the rustls configuration built from them, shared
//! by every worker and rebuilt on SIGHUP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The one ALPN protocol spoken (RFC 7301): a client offering only others
/// (`h2`) gets a `no_application_protocol` alert.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why the certificates were refused (one line: the start is refused, or a
/// SIGHUP keeps the ones loaded before).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `--tls-cert` and `--tls-key` were not given in pairs.
    #[error("--tls-cert given {certs} times and --tls-key {keys} times: give them in pairs")]
    Pairs {
        /// `--tls-cert` count.
        certs: usize,
        /// `--tls-key` count.
        keys: usize,
    },
    /// A file could not be read.
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate file holds no certificate.
    #[error("no PEM certificate in {0}")]
    NoCert(PathBuf),
    /// A certificate that does not parse.
    #[error("certificate {path} is not valid: {reason}")]
    BadCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key of a kind the crypto provider does not sign with.
    #[error("key {path} is not usable: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("key {key} does not match certificate {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// The crypto provider: *ring* (what the tokio crate's rustls uses, and
/// what builds here without cmake). rustls 0.23.48 marks it deprecated
/// because it has no post-quantum key exchange (X25519MLKEM768 needs
/// aws-lc-rs); X25519, P-256 and P-384 are offered.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// One certificate chain with its key, and the DNS names it is for.
struct Entry {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// Reads one `--tls-cert`/`--tls-key` pair and checks that they match.
fn load_pair(cert: &Path, key: &Path) -> Result<Entry, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::Read {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    let pem = read("certificate", cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCert(cert.to_owned()));
    };
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsError::BadCert {
        path: cert.to_owned(),
        reason: e.to_string(),
    })?;
    let names = ee
        .valid_dns_names()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let pem = read("key", key)?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::BadKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = provider();
    let signer = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })
        }
    }
    Ok(Entry {
        key: Arc::new(ck),
        names,
    })
}

/// Chooses the certificate by the client's SNI: an exact name, else a
/// wildcard (`*.example.com` for `a.example.com`), else the first pair
/// given (clients without SNI, or a name no certificate has).
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn new(entries: &[Entry]) -> Option<Self> {
        let default = entries.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for e in entries {
            for n in &e.names {
                // The first pair naming a host wins.
                match n.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()),
                    None => exact.entry(n.clone()),
                }
                .or_insert_with(|| e.key.clone());
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for `name` (already lowercase, as rustls gives it).
    pub fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.');
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// How many TLS 1.3 tickets a full handshake sends (one is what browsers
/// and curl use; each costs an encryption).
const TLS13_TICKETS: usize = 1;

/// The certificates and resumption state every worker shares.
pub struct TlsShared {
    pairs: Vec<(PathBuf, PathBuf)>,
    cache: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
    current: ArcSwap<ServerConfig>,
    /// The reload generation the certificates were last read for.
    applied: Mutex<u64>,
    /// Reloads done / refused (the old certificates kept).
    pub reloads: AtomicU64,
    /// Reloads refused.
    pub reload_failures: AtomicU64,
}

impl std::fmt::Debug for TlsShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsShared")
            .field("pairs", &self.pairs)
            .finish_non_exhaustive()
    }
}

fn build(
    pairs: &[(PathBuf, PathBuf)],
    cache: &Arc<dyn StoresServerSessions>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<ServerConfig, TlsError> {
    let entries = pairs
        .iter()
        .map(|(c, k)| load_pair(c, k))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = SniResolver::new(&entries).ok_or(TlsError::Pairs { certs: 0, keys: 0 })?;
    let provider = Arc::new(provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    cfg.session_storage = cache.clone();
    cfg.ticketer = ticketer.clone();
    cfg.send_tls13_tickets = TLS13_TICKETS;
    // The server's order (rustls's: AES-256-GCM, AES-128-GCM, then
    // ChaCha20-Poly1305; all AEAD with forward secrecy), as audits expect.
    cfg.ignore_client_order = true;
    Ok(cfg)
}

impl TlsShared {
    /// Reads every pair (`certs[i]` with `keys[i]`) and builds the
    /// configuration: what a refused start reports.
    pub fn load(
        certs: &[PathBuf],
        keys: &[PathBuf],
        cache_size: usize,
    ) -> Result<Arc<Self>, TlsError> {
        if certs.len() != keys.len() || certs.is_empty() {
            return Err(TlsError::Pairs {
                certs: certs.len(),
                keys: keys.len(),
            });
        }
        let pairs: Vec<_> = certs.iter().cloned().zip(keys.iter().cloned()).collect();
        let cache: Arc<dyn StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(cache_size.max(1));
        // A rotator: a new key every 6 hours, tickets of the previous one
        // still accepted (rustls's `TicketRotator`).
        let ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        let cfg = build(&pairs, &cache, &ticketer)?;
        Ok(Arc::new(TlsShared {
            pairs,
            cache,
            ticketer,
            current: ArcSwap::from_pointee(cfg),
            applied: Mutex::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }))
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// SIGHUP number `gen`: the first worker to see it reads the files
    /// again (the others wait for it, then find it done). A refused reload
    /// keeps the certificates loaded before (one line on stderr). Session
    /// caches and ticket keys are kept: sessions resume across reloads.
    pub fn reload(&self, gen: u64) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if *applied >= gen {
            return;
        }
        *applied = gen;
        match build(&self.pairs, &self.cache, &self.ticketer) {
            Ok(cfg) => {
                self.current.store(Arc::new(cfg));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                log::info!("TLS certificates reloaded");
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "xdpstack http: TLS reload refused, keeping the loaded certificates: {e}"
                );
            }
        }
    }
}
