//! Certificate reload without restart: on SIGHUP, and when the certificate
//! or key file changes (checked every `--tls-watch-interval` seconds by
//! size, modification time and inode, following symlinks, so renewals by
//! certbot or a Kubernetes secret's symlink swap are seen). A file caught
//! half-written fails to load; the old certificate stays and the next
//! change is tried again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::CertStore;

/// What identifies one version of a file.
type Stamp = Option<(u64, std::time::SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

fn stamps(store: &CertStore) -> Option<[Stamp; 2]> {
    store.files().map(|[c, k]| [stamp(c), stamp(k)])
}

fn reload(store: &CertStore, why: &str) {
    match store.reload() {
        Ok(fp) => tracing::info!(%fp, "TLS certificate reloaded ({why})"),
        Err(e) => tracing::warn!("TLS certificate not reloaded ({why}): {e:#}"),
    }
}

/// Watches for SIGHUP and file changes until the process ends. `interval`
/// zero watches SIGHUP only.
pub async fn watch(store: Arc<CertStore>, interval: Duration) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("no SIGHUP handler, certificate reload by signal is off: {e}");
            None
        }
    };
    let mut seen = stamps(&store);
    let watching = !interval.is_zero() && seen.is_some();
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(()) = async { hangup.as_mut()?.recv().await } => {
                seen = stamps(&store);
                reload(&store, "SIGHUP");
            }
            _ = tick.tick(), if watching => {
                let now = stamps(&store);
                if now != seen {
                    seen = now;
                    reload(&store, "files changed");
                }
            }
            else => return,
        }
    }
}
