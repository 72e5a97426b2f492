//! The vault: credential secrets encrypted at rest with AES-256-GCM (aws-lc-rs), under a 32-byte
//! key kept in `<state dir>/credentials.key` (mode 0600).
//!
//! A sealed secret is `nonce (12) ‖ ciphertext ‖ tag (16)`, greyproxy's layout; the nonce is
//! random per encryption (96 bits from the OS: with a few thousand encryptions per key, the
//! chance of a repeat is negligible). The associated data names the credential id, so a sealed
//! blob copied onto another credential's row does not open.
//!
//! The key file is created on first use only when nothing sealed exists yet: a missing key next
//! to sealed secrets means they can no longer be read, and creating a fresh key silently would
//! turn that into data loss; the caller says which case it is in ([`KeyFile`]).

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::secret::Secret;

/// The key file's name in the state dir.
pub(crate) const KEY_FILE: &str = "credentials.key";

/// AES-256 key length.
const KEY_LEN: usize = 32;

/// GCM tag length.
const TAG_LEN: usize = 16;

/// Prefix of the associated data; the credential id follows.
const AAD_PREFIX: &str = "greyproxy-credential:v1:";

/// What the caller knows about the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFile {
    /// Sealed secrets exist: the key must be there.
    MustExist,
    /// Nothing is sealed yet: a missing key is created.
    CreateIfMissing,
}

/// Why the vault cannot be opened, or a secret cannot be sealed or opened. Never contains a
/// secret or key bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    /// Credentials are stored but their key file is gone.
    #[error(
        "the credentials key {} is missing but stored credentials need it; restore it, or \
         delete and re-create the credentials",
        path.display()
    )]
    KeyMissing {
        /// The expected key file.
        path: PathBuf,
    },
    /// The key file exists but cannot be read (or created).
    #[error("cannot read or create the credentials key {}: {source}", path.display())]
    KeyIo {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error(
        "the credentials key {} holds {len} bytes, not {KEY_LEN}: it is not a key this daemon \
         wrote",
        path.display()
    )]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Group or others have access to the key file.
    #[error(
        "the credentials key {} has mode {mode:o}: group and others must have no access \
         (chmod 600 it)",
        path.display()
    )]
    KeyMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// A sealed secret is damaged, was sealed under another key, or belongs to another
    /// credential.
    #[error("a stored secret cannot be decrypted (another key, or not this credential's)")]
    Open,
}

/// The open vault. The key is held by aws-lc (which wipes it on drop); [`fmt::Debug`] never
/// shows it.
pub(crate) struct Vault {
    key: LessSafeKey,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault { key: <hidden> }")
    }
}

impl Vault {
    /// Opens the vault of `state_dir`, creating its key when missing and `mode` allows it.
    pub(crate) fn open(state_dir: &Path, mode: KeyFile) -> Result<Vault, VaultError> {
        let path = state_dir.join(KEY_FILE);
        let bytes = match read_key(&path) {
            Ok(bytes) => bytes,
            Err(VaultError::KeyIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                if mode == KeyFile::MustExist {
                    return Err(VaultError::KeyMissing { path });
                }
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                getrandom::fill(key.as_mut()).map_err(|_| VaultError::Random)?;
                crate::atomic::write_atomic(&path, key.as_ref(), 0o600)
                    .map_err(|source| VaultError::KeyIo { path, source })?;
                Zeroizing::new(key.to_vec())
            }
            Err(e) => return Err(e),
        };
        // The length was checked: aws-lc refusing 32 bytes would mean a bad file all the same.
        Vault::from_key(&bytes).ok_or(VaultError::KeyLength {
            path: state_dir.join(KEY_FILE),
            len: bytes.len() as u64,
        })
    }

    /// A vault over raw key bytes (32), `None` otherwise.
    pub(crate) fn from_key(bytes: &[u8]) -> Option<Vault> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Vault {
            key: LessSafeKey::new(key),
        })
    }

    /// Encrypts `secret` for credential `id`: `nonce ‖ ciphertext ‖ tag`.
    pub(crate) fn seal(&self, id: &str, secret: &Secret) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + secret.expose().len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(secret.expose().as_bytes());
        let mut body = out.split_off(NONCE_LEN);
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            aad(id),
            &mut body,
        );
        if sealed.is_err() {
            // The plaintext copy in `body` must not outlive the failure.
            zeroize::Zeroize::zeroize(&mut body);
            return Err(VaultError::Open);
        }
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`Vault::seal`] made for credential `id`.
    pub(crate) fn open_secret(&self, id: &str, sealed: &[u8]) -> Result<Secret, VaultError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Open)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, aad(id), buf.as_mut_slice())
            .map_err(|_| VaultError::Open)?;
        let text = std::str::from_utf8(plain).map_err(|_| VaultError::Open)?;
        Secret::new(text).map_err(|_| VaultError::Open)
    }
}

fn aad(id: &str) -> Aad<Vec<u8>> {
    Aad::from(format!("{AAD_PREFIX}{id}").into_bytes())
}

/// Reads and checks the key file: mode first (a readable key is refused before it is read).
fn read_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let io_err = |source| VaultError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(VaultError::KeyLength {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(io_err)?);
    if bytes.len() != KEY_LEN {
        return Err(VaultError::KeyLength {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;

    use super::*;

    const SECRET: &str = "sk-proj-THE-REAL-SECRET-0123456789abcdef";

    fn secret() -> Secret {
        Secret::new(SECRET).unwrap()
    }

    #[test]
    fn the_key_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = Vault::open(dir.path(), KeyFile::CreateIfMissing).unwrap();
        let path = dir.path().join(KEY_FILE);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let key = fs::read(&path).unwrap();
        let sealed = v1.seal("cr-1", &secret()).unwrap();
        // Reopened (even as "must exist"), the same key opens what the first sealed.
        let v2 = Vault::open(dir.path(), KeyFile::MustExist).unwrap();
        assert_eq!(fs::read(&path).unwrap(), key);
        assert_eq!(v2.open_secret("cr-1", &sealed).unwrap().expose(), SECRET);
    }

    #[test]
    fn sealing_hides_the_secret_and_uses_a_fresh_nonce() {
        let v = Vault::from_key(&[7; 32]).unwrap();
        let a = v.seal("cr-1", &secret()).unwrap();
        let b = v.seal("cr-1", &secret()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12 + SECRET.len() + 16);
        assert!(!a.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
        assert_eq!(v.open_secret("cr-1", &b).unwrap().expose(), SECRET);
    }

    #[test]
    fn a_blob_moved_to_another_credential_or_damaged_does_not_open() {
        let v = Vault::from_key(&[7; 32]).unwrap();
        let sealed = v.seal("cr-1", &secret()).unwrap();
        assert!(matches!(
            v.open_secret("cr-2", &sealed),
            Err(VaultError::Open)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            v.open_secret("cr-1", &flipped),
            Err(VaultError::Open)
        ));
        assert!(matches!(
            v.open_secret("cr-1", &sealed[..20]),
            Err(VaultError::Open)
        ));
        let other = Vault::from_key(&[8; 32]).unwrap();
        assert!(matches!(
            other.open_secret("cr-1", &sealed),
            Err(VaultError::Open)
        ));
    }

    #[test]
    fn a_missing_key_that_is_expected_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let e = Vault::open(dir.path(), KeyFile::MustExist).unwrap_err();
        assert!(matches!(e, VaultError::KeyMissing { .. }), "{e}");
        assert!(e.to_string().contains("credentials.key is missing"), "{e}");
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn a_key_of_the_wrong_length_or_open_to_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        crate::atomic::write_atomic(&path, &[1; 31], 0o600).unwrap();
        let e = Vault::open(dir.path(), KeyFile::CreateIfMissing).unwrap_err();
        assert!(matches!(e, VaultError::KeyLength { len: 31, .. }), "{e}");
        // Not replaced by a fresh key: the old one may still be recoverable.
        assert_eq!(fs::read(&path).unwrap(), [1; 31]);
        crate::atomic::write_atomic(&path, &[1; 32], 0o640).unwrap();
        let e = Vault::open(dir.path(), KeyFile::MustExist).unwrap_err();
        assert!(matches!(e, VaultError::KeyMode { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Vault::open(dir.path(), KeyFile::MustExist).is_ok());
    }

    #[test]
    fn an_unreadable_key_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the key should be: metadata works, reading does not.
        let path = dir.path().join(KEY_FILE);
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        let e = Vault::open(dir.path(), KeyFile::MustExist).unwrap_err();
        assert!(
            matches!(e, VaultError::KeyLength { .. } | VaultError::KeyIo { .. }),
            "{e}"
        );
        assert!(format!("{:?}", Vault::from_key(&[9; 32]).unwrap()).contains("hidden"));
    }
}
