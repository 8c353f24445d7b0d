//! HTTPS: a certificate from `--tls-cert`/`--tls-key`, or a self-signed one
//! generated at start with `--tls-self-signed`. (Not yet implemented.)

use std::net::SocketAddr;

use axum::Router;

use crate::config::Config;

/// A loaded TLS configuration.
pub struct Tls;

/// Loads or generates the certificate, if the configuration asks for TLS.
pub async fn load(config: &Config) -> anyhow::Result<Option<Tls>> {
    if config.tls_cert.is_some() || config.tls_self_signed {
        anyhow::bail!("TLS is not implemented yet");
    }
    Ok(None)
}

/// Serves HTTPS until `shutdown` resolves.
pub async fn serve(
    _addr: SocketAddr,
    _tls: Tls,
    _router: Router,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::bail!("TLS is not implemented yet")
}
