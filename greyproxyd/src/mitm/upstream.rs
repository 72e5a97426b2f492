//! TLS towards origins. Certificates are always verified, against the Mozilla roots bundled
//! by webpki-roots, the system's roots, and any `--upstream-ca` files (for private CAs and
//! tests); there is no switch to turn verification off.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};

/// Why the upstream TLS setup failed at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamTlsError {
    /// An `--upstream-ca` file could not be used.
    #[error("--upstream-ca {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Client TLS configurations for origins, one per ALPN offer.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTls {
    base: Arc<ClientConfig>,
    /// Number of trusted roots, for the start-up log.
    pub(crate) roots: usize,
}

fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let err = |reason: String| UpstreamTlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE blocks".into()));
    }
    Ok(certs)
}

impl UpstreamTls {
    /// Builds the root store (webpki roots + system roots + `extra_ca_files`).
    pub(crate) fn new(extra_ca_files: &[PathBuf]) -> Result<UpstreamTls, UpstreamTlsError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "some system root certificates could not be read");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, "system root certificates loaded");
        for path in extra_ca_files {
            for cert in load_pem_certs(path)? {
                roots.add(cert).map_err(|e| UpstreamTlsError::CaFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let count = roots.len();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(UpstreamTls {
            base: Arc::new(config),
            roots: count,
        })
    }

    /// A configuration offering `alpn` (in the client's order).
    pub(crate) fn config(&self, alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
        let mut c = (*self.base).clone();
        c.alpn_protocols = alpn;
        Arc::new(c)
    }

    /// Connects TLS over `tcp` to `name` offering `alpn`.
    pub(crate) async fn connect<S>(
        &self,
        name: ServerName<'static>,
        alpn: Vec<Vec<u8>>,
        tcp: S,
    ) -> io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio_rustls::TlsConnector::from(self.config(alpn))
            .connect(name, tcp)
            .await
    }
}
