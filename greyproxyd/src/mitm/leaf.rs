//! Leaf certificates for intercepted TLS: one per server name (SNI or IP literal), signed by
//! the CA, cached in an LRU so a repeat handshake issues nothing.
//!
//! Unlike greyproxy, which reuses the CA key as every leaf's key, each [`LeafIssuer`] (one per
//! daemon run, and one per CA reload) generates a single ECDSA P-256 leaf key: issuance stays
//! one signature (no key generation per host) and the CA key never signs TLS handshakes.
//! Leaves are valid from an hour ago to at most 30 days ahead (never past the CA), and are
//! re-issued after 7 days in the cache, so a long-running daemon never serves an expired one.
//!
//! `ServerConfig`s are cached too, per (name, ALPN list), next to the leaf they serve, and
//! share one session store per issuer. Building a config is cheap, but a fresh config per
//! connection would also mean a fresh session cache, so no client could ever resume: agents
//! open many short connections to the same few API hosts, and resumption saves the
//! certificate signature and verification on each of them. Sharing the store is safe here:
//! every config has the same (absent) client authentication, rustls refuses to resume a
//! session under a different SNI, and a CA reload builds a new issuer with a new store.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::server::StoresServerSessions;
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ca::{BACKDATE, Ca, CaError, random_serial};

/// Longest validity of a leaf (docs/design.md#mitm): clients reject leaves valid for much longer.
pub(crate) const LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Age after which a cached leaf is issued again, well before it expires.
pub(crate) const REISSUE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// ALPN variants kept per name; clients offer one or two distinct lists in practice.
const CONFIGS_PER_NAME: usize = 4;

/// A cached leaf and the server configs built around it.
struct Entry {
    key: Arc<CertifiedKey>,
    issued_at: Instant,
    not_after: SystemTime,
    configs: Vec<(Vec<Vec<u8>>, Arc<ServerConfig>)>,
}

/// Issues and caches leaf certificates signed by one CA, all with one per-issuer key.
pub(crate) struct LeafIssuer {
    ca: Arc<Ca>,
    leaf_key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    cache: Mutex<LruCache<String, Entry>>,
    issued: AtomicU64,
    reissue_after: Duration,
}

impl std::fmt::Debug for LeafIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafIssuer")
            .field("ca", &self.ca)
            .field("issued", &self.issued())
            .finish_non_exhaustive()
    }
}

/// A server name as cache key and certificate subject: lower-case DNS name without a
/// trailing dot, or a canonical IP address (brackets around IPv6 accepted).
enum Name {
    Dns(String),
    Ip(IpAddr),
}

impl Name {
    fn parse(name: &str) -> Result<Name, CaError> {
        let t = name.trim();
        let t = t.strip_suffix('.').unwrap_or(t);
        let unbracketed = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Name::Ip(ip));
        }
        let dns = t.to_ascii_lowercase();
        // Hostnames as clients send them in SNI: LDH labels (plus `_`, which some internal
        // names carry); anything else would not verify on the client anyway.
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if dns.is_empty() || dns.len() > 253 || !dns.split('.').all(label_ok) {
            return Err(CaError::InvalidName { name: name.into() });
        }
        Ok(Name::Dns(dns))
    }

    fn key(&self) -> String {
        match self {
            Name::Dns(d) => d.clone(),
            Name::Ip(ip) => ip.to_string(),
        }
    }
}

impl LeafIssuer {
    /// An issuer for `ca` with a fresh leaf key and an LRU of `capacity` names (at least 1).
    pub(crate) fn new(ca: Arc<Ca>, capacity: usize) -> Result<LeafIssuer, CaError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let leaf_key = KeyPair::generate()?; // ECDSA P-256
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = provider.key_provider.load_private_key(der)?;
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        // A few sessions per cached name; bounded so memory stays bounded under load.
        let sessions = ServerSessionMemoryCache::new((capacity.get() * 4).clamp(256, 16_384));
        Ok(LeafIssuer {
            ca,
            leaf_key,
            signing_key,
            provider,
            sessions,
            cache: Mutex::new(LruCache::new(capacity)),
            issued: AtomicU64::new(0),
            reissue_after: REISSUE_AFTER,
        })
    }

    /// Changes the age after which a cached leaf is issued again (default [`REISSUE_AFTER`]).
    #[cfg(test)]
    pub(crate) fn with_reissue_after(mut self, age: Duration) -> LeafIssuer {
        self.reissue_after = age;
        self
    }

    /// The CA this issuer signs with.
    pub(crate) fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// Number of leaf certificates issued so far (cache misses and re-issues).
    pub(crate) fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// The chain `[leaf, CA]` and key for `name` (DNS name or IP literal), from the cache when
    /// a leaf for it was issued less than [`REISSUE_AFTER`] ago.
    #[cfg(test)]
    pub(crate) fn certified_key(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        self.with_entry(name, |e| Ok(e.key.clone()))
    }

    /// A server config presenting the leaf for `name`, offering `alpn` (the protocol the
    /// upstream chose, typically), TLS 1.2 and 1.3, no client authentication. Cached per
    /// (name, ALPN list) alongside the leaf.
    pub(crate) fn server_config(
        &self,
        name: &str,
        alpn: &[Vec<u8>],
    ) -> Result<Arc<ServerConfig>, CaError> {
        self.with_entry(name, |e| {
            if let Some((_, cfg)) = e.configs.iter().find(|(a, _)| a.as_slice() == alpn) {
                return Ok(cfg.clone());
            }
            let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(SingleCertAndKey::from(e.key.clone())));
            cfg.alpn_protocols = alpn.to_vec();
            cfg.session_storage = self.sessions.clone();
            let cfg = Arc::new(cfg);
            if e.configs.len() >= CONFIGS_PER_NAME {
                e.configs.remove(0);
            }
            e.configs.push((alpn.to_vec(), cfg.clone()));
            Ok(cfg)
        })
    }

    /// Runs `f` on the fresh cache entry for `name`, issuing a leaf first when there is none
    /// or it is too old. Issuance happens under the lock on purpose: an agent typically opens
    /// several connections to a new host at once, and they should wait for one signature
    /// (tens of microseconds) rather than each issue their own.
    fn with_entry<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Entry) -> Result<R, CaError>,
    ) -> Result<R, CaError> {
        let name = Name::parse(name)?;
        let key = name.key();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = cache.get(&key).is_some_and(|e| {
            e.issued_at.elapsed() < self.reissue_after && SystemTime::now() < e.not_after
        });
        if !fresh {
            let entry = self.issue(&name)?;
            cache.put(key.clone(), entry);
        }
        match cache.get_mut(&key) {
            Some(e) => f(e),
            // Unreachable: the entry was just found or inserted under the same lock.
            None => Err(CaError::InvalidName { name: key }),
        }
    }

    fn issue(&self, name: &Name) -> Result<Entry, CaError> {
        let now = SystemTime::now();
        let not_after = (now + LEAF_VALIDITY).min(self.ca.not_after());
        let mut p = CertificateParams::default();
        // Replace rcgen's placeholder CN; IP leaves carry no CN (nothing to put there that a
        // client would check).
        let mut dn = DistinguishedName::new();
        match name {
            Name::Dns(d) => {
                dn.push(DnType::CommonName, d.as_str());
                p.subject_alt_names = vec![SanType::DnsName(d.as_str().try_into()?)];
            }
            Name::Ip(ip) => p.subject_alt_names = vec![SanType::IpAddress(*ip)],
        }
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
        p.not_after = not_after.into();
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&self.leaf_key, self.ca.issuer())?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        let chain = vec![cert.der().clone(), self.ca.cert_der().clone()];
        Ok(Entry {
            key: Arc::new(CertifiedKey::new(chain, self.signing_key.clone())),
            issued_at: Instant::now(),
            not_after,
            configs: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
