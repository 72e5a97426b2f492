//! The interception CA: an ECDSA P-256 root kept as `ca-cert.pem` (0644) and `ca-key.pem`
//! (0600) in the state dir. [`generate`] creates it, [`load`] reads and validates it,
//! [`ensure`] does whichever applies on `serve`. Leaves are signed by [`Ca::issuer`]; the CA key
//! itself never serves TLS (see [`super::leaf`]).
//!
//! Unlike greyproxy (Go), the CN carries a random suffix so two installs can be told apart in
//! a trust store, the key is stored as PKCS#8 (`PRIVATE KEY`; SEC1 `EC PRIVATE KEY` files
//! written by greyproxy load too), and both files are written atomically.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::atomic::write_atomic;

/// File name of the CA certificate in the state dir (PEM, mode 0644).
pub(crate) const CA_CERT_FILE: &str = "ca-cert.pem";
/// File name of the CA private key in the state dir (PEM, mode 0600).
pub(crate) const CA_KEY_FILE: &str = "ca-key.pem";

/// CA validity: ten years, like greyproxy, starting an hour in the past so that a client whose
/// clock lags slightly behind ours still accepts it.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far in the past certificates start (clock skew between us and the client).
pub(crate) const BACKDATE: Duration = Duration::from_secs(3600);

/// Everything that can go wrong with the CA files or with issuing certificates. Messages
/// name the file concerned so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file is missing.
    #[error("{} does not exist", .path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// Neither CA file exists.
    #[error("no CA in {}: create one with `greyproxyd cert generate` (`greyproxyd serve` also creates it)", .dir.display())]
    NoCa {
        /// The state directory.
        dir: PathBuf,
    },
    /// Only one of the two CA files exists.
    #[error(
        "found {} but not {}: restore the missing file, or replace both with `greyproxyd cert generate --force`",
        .present.display(), .missing.display()
    )]
    OnlyOne {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// `generate` without `force` while a CA file exists.
    #[error(
        "{} already exists; use `greyproxyd cert generate --force` to replace the CA (clients that trust the old one must then trust the new one)",
        .path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Reading, writing or changing the mode of a file failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done ("read", "write", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file holds no PEM block of the expected kind.
    #[error("{} is not a PEM {what}: {reason}", .path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// The PEM block does not hold a usable certificate or key.
    #[error("{}: invalid {what}: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The key is not the one the certificate was issued for.
    #[error("{} does not match the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate cannot sign certificates.
    #[error("{} is not a CA certificate ({reason})", .path.display())]
    NotCa {
        /// The certificate file.
        path: PathBuf,
        /// Which constraint is missing.
        reason: &'static str,
    },
    /// The certificate's validity has ended.
    #[error("{} expired on {not_after}; replace it with `greyproxyd cert generate --force`", .path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// A leaf was requested for something that is neither a DNS name nor an IP address.
    #[error("cannot issue a certificate for {name:?}: not a DNS name or IP address")]
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Key generation or signing failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a key or configuration.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// A loaded CA: certificate, key, the issuer that signs leaves, and metadata for display.
pub(crate) struct Ca {
    cert_der: CertificateDer<'static>,
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    subject: String,
    fingerprint: String,
    not_before: SystemTime,
    not_after: SystemTime,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The certificate, DER.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }
    /// The certificate, PEM (what `ca-cert.pem` holds).
    #[cfg(test)]
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// The CA private key.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &KeyPair {
        self.issuer.key()
    }
    /// Signs leaf certificates with the CA key and the CA's subject as issuer name.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
    /// Subject distinguished name, e.g. `CN=greyproxy CA 1a2b3c4d, O=greyproxy`.
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }
    /// SHA-256 of the DER certificate, colon-separated upper-case hex.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// Start of validity.
    pub(crate) fn not_before(&self) -> SystemTime {
        self.not_before
    }
    /// End of validity.
    pub(crate) fn not_after(&self) -> SystemTime {
        self.not_after
    }
    /// Where the certificate was read from or written to.
    pub(crate) fn cert_path(&self) -> &Path {
        &self.cert_path
    }
    /// Where the key was read from or written to.
    pub(crate) fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Parses and validates a CA from PEM contents; the paths are only used in messages and
    /// kept as metadata. Accepts PKCS#8, SEC1 and PKCS#1 keys.
    pub(crate) fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Ca, CaError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem).map_err(|e| CaError::NotPem {
            path: cert_path.into(),
            what: "certificate",
            reason: e.to_string(),
        })?;
        let invalid_cert = |reason: String| CaError::Invalid {
            path: cert_path.into(),
            what: "certificate",
            reason,
        };
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| invalid_cert(e.to_string()))?;
        let not_ca = |reason| CaError::NotCa {
            path: cert_path.into(),
            reason,
        };
        match x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => return Err(not_ca("basic constraints do not say CA")),
            Err(e) => return Err(invalid_cert(e.to_string())),
        }
        if let Ok(Some(ku)) = x509.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(not_ca("key usage lacks keyCertSign"));
        }
        let not_before = SystemTime::from(x509.validity().not_before.to_datetime());
        let not_after = SystemTime::from(x509.validity().not_after.to_datetime());
        let now = SystemTime::now();
        if not_after <= now {
            return Err(CaError::Expired {
                path: cert_path.into(),
                not_after: rfc3339(not_after),
            });
        }
        if not_before > now {
            // Leaves would still verify once the client's clock catches up; a warning is
            // more useful than refusing to start.
            tracing::warn!(path = %cert_path.display(), not_before = %rfc3339(not_before), "CA certificate is not valid yet (clock skew?)");
        }

        let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CaError::NotPem {
            path: key_path.into(),
            what: "private key",
            reason: e.to_string(),
        })?;
        let key = KeyPair::try_from(&key_der).map_err(|e| CaError::Invalid {
            path: key_path.into(),
            what: "private key",
            reason: e.to_string(),
        })?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(CaError::KeyMismatch {
                cert: cert_path.into(),
                key: key_path.into(),
            });
        }
        let subject = x509.subject().to_string();
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| invalid_cert(e.to_string()))?;
        Ok(Ca {
            cert_pem: pem_text(&cert_der),
            fingerprint: fingerprint(&cert_der),
            cert_der,
            issuer,
            subject,
            not_before,
            not_after,
            cert_path: cert_path.into(),
            key_path: key_path.into(),
        })
    }
}

/// Re-encodes DER as a PEM `CERTIFICATE` block (64-column base64), so [`Ca::cert_pem`] is
/// canonical whatever the file's line endings or extra blocks were.
fn pem_text(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// SHA-256 of `der` as `AB:CD:…`, the form browsers and `openssl x509 -fingerprint -sha256`
/// show.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 3339 UTC with second precision, as everywhere else in greyproxyd.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Path of the CA certificate in `state_dir`.
pub(crate) fn cert_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CA_CERT_FILE)
}

/// Path of the CA key in `state_dir`.
pub(crate) fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CA_KEY_FILE)
}

/// `n` random bytes from the OS.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| CaError::Random)?;
    Ok(b)
}

/// `N` random bytes as lower-case hex.
fn random_hex<const N: usize>() -> Result<String, CaError> {
    Ok(random_bytes::<N>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Maps an I/O error on `path` to [`CaError::Io`].
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CaError {
    let path = path.to_path_buf();
    move |source| CaError::Io {
        action,
        path,
        source,
    }
}

/// A random positive 128-bit serial. Random serials matter: rcgen's default derives the
/// serial from the subject key, and all our leaves share one key, so they would share a
/// serial too, which Firefox rejects (`SEC_ERROR_REUSED_ISSUER_AND_SERIAL`).
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut b = random_bytes::<16>()?;
    b[0] &= 0x7f;
    b[0] |= 0x01; // keep 16 significant bytes: never a leading zero to strip
    Ok(SerialNumber::from_slice(&b))
}

/// Creates a new CA in `state_dir` (created 0700 if missing) and writes both files
/// atomically. Refuses when either file exists unless `force`.
pub(crate) fn generate(state_dir: &Path, force: bool) -> Result<Ca, CaError> {
    let (cert_file, key_file) = (cert_path(state_dir), key_path(state_dir));
    if !force {
        for p in [&cert_file, &key_file] {
            if p.exists() {
                return Err(CaError::Exists { path: p.clone() });
            }
        }
    }
    if !state_dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io_err("create directory", state_dir))?;
    }

    let key = KeyPair::generate()?; // ECDSA P-256 with SHA-256
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("greyproxy CA {}", random_hex::<4>()?),
    );
    dn.push(DnType::OrganizationName, "greyproxy");
    p.distinguished_name = dn;
    // Path length 0: the CA signs leaves only, never another CA.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = SystemTime::now();
    p.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    p.not_after = (now + CA_VALIDITY).into();
    p.serial_number = Some(random_serial()?);
    let cert = p.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());

    // Key first: a crash between the two renames then leaves a new key next to the old
    // certificate, which `load` reports as a mismatch instead of silently using stale files,
    // and the reload watcher waits for the certificate to follow.
    write_atomic(&key_file, key_pem.as_bytes(), 0o600).map_err(io_err("write", &key_file))?;
    write_atomic(&cert_file, cert_pem.as_bytes(), 0o644).map_err(io_err("write", &cert_file))?;
    Ca::from_pem(
        cert_pem.as_bytes(),
        key_pem.as_bytes(),
        &cert_file,
        &key_file,
    )
}

/// Tightens a key file readable by group or others to 0600, with a warning.
pub(crate) fn tighten_key_mode(key_file: &Path) -> Result<(), CaError> {
    let meta = fs::metadata(key_file).map_err(io_err("inspect", key_file))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %key_file.display(), mode = format!("{mode:o}"), "CA key was accessible to group/others; setting 0600");
        fs::set_permissions(key_file, fs::Permissions::from_mode(0o600))
            .map_err(io_err("set the mode of", key_file))?;
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CaError::Missing { path: path.into() },
        _ => io_err("read", path)(e),
    })
}

/// Loads and validates the CA from `state_dir`: both files must exist, parse, match, be a CA
/// and not be expired. A key readable by group/others is tightened to 0600 (with a warning).
pub(crate) fn load(state_dir: &Path) -> Result<Ca, CaError> {
    let (cert_file, key_file) = (cert_path(state_dir), key_path(state_dir));
    let cert = read_file(&cert_file)?;
    let key = read_file(&key_file)?;
    tighten_key_mode(&key_file)?;
    Ca::from_pem(&cert, &key, &cert_file, &key_file)
}

/// What `serve` does at start-up: load the CA when both files exist, generate one when both
/// are missing (`true` = generated), and refuse when only one exists (a lost key must not be
/// silently replaced: clients trust the old certificate).
pub(crate) fn ensure(state_dir: &Path) -> Result<(Ca, bool), CaError> {
    if pair_exists(state_dir)? {
        Ok((load(state_dir)?, false))
    } else {
        Ok((generate(state_dir, false)?, true))
    }
}

/// `true` when both CA files exist, `false` when neither does, [`CaError::OnlyOne`] otherwise.
pub(crate) fn pair_exists(state_dir: &Path) -> Result<bool, CaError> {
    let (cert_file, key_file) = (cert_path(state_dir), key_path(state_dir));
    match (cert_file.exists(), key_file.exists()) {
        (c, k) if c == k => Ok(c),
        (true, _) => Err(CaError::OnlyOne {
            present: cert_file,
            missing: key_file,
        }),
        _ => Err(CaError::OnlyOne {
            present: key_file,
            missing: cert_file,
        }),
    }
}

#[cfg(test)]
mod tests;
