//! HTTP server: the embedded web app and the signaling WebSocket.
//! (Placeholder until the signaling issue lands.)

use std::sync::Arc;

use crate::config::Config;

/// What the HTTP side needs from the rest of the process.
pub struct HttpContext {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// The secret the TURN server checks ephemeral credentials against.
    pub turn_secret: Arc<str>,
}

/// Serves HTTP until `shutdown` resolves.
pub async fn serve(
    _ctx: HttpContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    shutdown.await;
    Ok(())
}
