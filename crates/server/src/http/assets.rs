//! The browser app (`web/`), embedded in the binary so that it is served the
//! same from any working directory.

/// One embedded file: URL path under `/assets/`, content type, bytes.
pub struct Asset {
    /// Path below `web/`.
    pub path: &'static str,
    /// `Content-Type` header value.
    pub mime: &'static str,
    /// File contents.
    pub body: &'static [u8],
}

macro_rules! embed {
    ($($path:literal => $mime:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the web app.
pub static ASSETS: &[Asset] = embed![
    "index.html" => "text/html; charset=utf-8",
    "room.html" => "text/html; charset=utf-8",
    "diag.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/home.js" => JS,
    "js/room.js" => JS,
    "js/diag.js" => JS,
    "js/signaling.js" => JS,
    "js/peer.js" => JS,
    "js/sfu.js" => JS,
    "js/sfu_room.js" => JS,
    "js/files.js" => JS,
    "js/sha256.js" => JS,
    "js/stats.js" => JS,
    "js/ui.js" => JS,
];

/// The embedded file at `path` (below `web/`).
pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `web/` is embedded (a new file must be added to `ASSETS`).
    #[test]
    fn every_web_file_is_embedded() -> std::io::Result<()> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut stack = vec![root.clone()];
        let mut missing = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&root) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if get(&rel).is_none() {
                        missing.push(rel);
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not embedded: {missing:?}");
        assert!(get("../Cargo.toml").is_none());
        Ok(())
    }
}
