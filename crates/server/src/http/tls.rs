//! HTTPS/WSS: browsers grant camera and microphone only on HTTPS (or
//! localhost). `--tls-cert`/`--tls-key` load a PEM chain and key;
//! `--tls-self-signed` generates a certificate at start (rcgen) for LAN use and
//! prints its SHA-256 fingerprint so users can check the browser's warning.
//!
//! ALPN offers only HTTP/1.1: the signaling WebSocket uses the HTTP/1.1
//! upgrade.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// A loaded TLS configuration.
pub struct Tls {
    config: RustlsConfig,
}

/// Loads or generates the certificate, if the configuration asks for TLS.
pub async fn load(config: &Config) -> anyhow::Result<Option<Tls>> {
    let (certs, key) = match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
        (Some(cert), Some(key), _) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading --tls-cert {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing --tls-cert {}", cert.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--tls-cert {}: no certificate",
                cert.display()
            );
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading --tls-key {}", key.display()))?;
            if let Some(first) = certs.first() {
                println!(
                    "TLS certificate SHA-256 fingerprint: {}",
                    fingerprint(first)
                );
            }
            (certs, key)
        }
        (None, None, true) => {
            let (cert, key) = self_signed(config)?;
            println!(
                "TLS: self-signed certificate; browsers will warn once. Check its SHA-256 fingerprint:\n  {}",
                fingerprint(&cert)
            );
            (vec![cert], key)
        }
        (None, None, false) => return Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match or are unsupported")?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: RustlsConfig::from_config(Arc::new(server)),
    }))
}

/// A self-signed certificate for `localhost`, loopback, the listen address
/// and `--public-host`.
fn self_signed(
    config: &Config,
) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = config.http_listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    if let Some(host) = &config.public_host {
        names.push(host.clone());
    }
    let certified = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
    Ok((cert, key))
}

/// `AB:CD:…` SHA-256 of a DER certificate, as browsers show it.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Serves HTTPS until `shutdown` resolves, then lets open requests finish
/// for up to 5 s.
pub async fn serve(
    addr: SocketAddr,
    tls: Tls,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    axum_server::bind_rustls(addr, tls.config)
        .handle(handle)
        // The client's address is needed to count its WebSockets.
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .with_context(|| format!("serving HTTPS on {addr}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_and_fingerprint() -> anyhow::Result<()> {
        let config = Config::default();
        let (cert, key) = self_signed(&config)?;
        let fp = fingerprint(&cert);
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()));
        // The pair is usable by rustls.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        Ok(())
    }

    #[tokio::test]
    async fn loads_pem_files_and_refuses_garbage() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("switchboard-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem())?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        let args = |c: &std::path::Path, k: &std::path::Path| {
            Config::load_from([
                "switchboard".to_owned(),
                "--tls-cert".to_owned(),
                c.display().to_string(),
                "--tls-key".to_owned(),
                k.display().to_string(),
            ])
        };
        assert!(load(&args(&cert, &key)?).await?.is_some());
        // A key file holding a certificate is refused with an error, not a panic.
        assert!(load(&args(&cert, &cert)?).await.is_err());
        assert!(load(&args(&dir.join("missing.pem"), &key)?).await.is_err());
        assert!(load(&Config::default()).await?.is_none());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
