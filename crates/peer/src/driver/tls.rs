//! TLS for `wss://`: the system's roots (rustls-native-certs), extra roots
//! from `--ca FILE`, or a pinned certificate fingerprint (the SHA-256 that
//! `switchboard --tls-self-signed` prints), for self-signed servers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// How to trust the server.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// PEM files with extra root certificates.
    pub ca_files: Vec<std::path::PathBuf>,
    /// The server certificate's SHA-256 (hex, colons allowed): accept that
    /// certificate and no other, whatever signed it.
    pub fingerprint: Option<String>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A `--ca` file could not be read.
    #[error("reading {path}: {source}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A fingerprint that is not 32 bytes of hex.
    #[error("--fingerprint must be a SHA-256 in hex (64 digits, colons allowed)")]
    Fingerprint,
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match &trust.fingerprint {
        Some(hex) => {
            let want = parse_fingerprint(hex).ok_or(TlsError::Fingerprint)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { want, provider }))
                .with_no_client_auth()
        }
        None => {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            for path in &trust.ca_files {
                let pem = std::fs::read(path).map_err(|source| TlsError::Ca {
                    path: path.display().to_string(),
                    source,
                })?;
                for cert in pem_certificates(&pem) {
                    let _ = roots.add(cert);
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The certificates of a PEM file.
fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Accepts exactly one certificate, by its SHA-256; signatures are still
/// checked, so the server must hold that certificate's key.
#[derive(Debug)]
struct Pinned {
    want: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.want {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate does not have the given fingerprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let hex = "AB:".repeat(31) + "AB";
        assert_eq!(parse_fingerprint(&hex), Some([0xAB; 32]));
        assert_eq!(parse_fingerprint("ab"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
        assert!(matches!(
            client_config(&Trust {
                fingerprint: Some("12".into()),
                ..Trust::default()
            }),
            Err(TlsError::Fingerprint)
        ));
    }
}
