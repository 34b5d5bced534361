//! The TLS side of `--syslog-listen tls://` (RFC 5425): the rustls server
//! configuration, from PEM files read once at startup (before `--user`
//! drops privileges, so the key may be readable by root only).
//!
//! `--syslog-tls-cert` is the server's certificate chain, `--syslog-tls-key`
//! its private key (PKCS#8, PKCS#1 or SEC1). With `--syslog-tls-client-ca`,
//! every client must present a certificate that chains to one of the CA
//! file's certificates (RFC 5425's mutual authentication); a client
//! without one fails the handshake and is counted. rustls's safe defaults
//! (TLS 1.2 and 1.3) and its ring provider.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PEM files of `--syslog-tls-*`.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

fn certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{flag} {}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// Reads the files and builds the server configuration; `None` when no
/// certificate was given.
pub fn server_config(files: &TlsFiles) -> Result<Option<Arc<ServerConfig>>, String> {
    let (cert, key) = match (&files.cert, &files.key) {
        (None, None) if files.client_ca.is_none() => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => return Err("--syslog-tls-cert and --syslog-tls-key go together".into()),
    };
    let chain = certs(cert, "--syslog-tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--syslog-tls-key {}: {e}", key.display()))?;
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum
    // key exchange; aws-lc-rs, which has it, is a large C build. ring's
    // X25519 and ECDHE still give forward secrecy to firewall logs.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "--syslog-tls-client-ca")? {
                roots.add(c).map_err(|e| format!("--syslog-tls-client-ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("--syslog-tls-client-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("--syslog-tls-cert {} and --syslog-tls-key: {e}", cert.display()))?;
    Ok(Some(Arc::new(cfg)))
}
