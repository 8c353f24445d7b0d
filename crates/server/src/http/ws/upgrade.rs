//! The WebSocket opening handshake, server side (RFC 6455 §4.2.1 what the
//! request must hold, §4.2.2 the 101 answer, §4.4 version 13 only).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request to `/ws` is not a WebSocket opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Upgrade: websocket` / `Connection: upgrade` (e.g. a plain GET).
    NotUpgrade,
    /// A version other than 13 (§4.4): 426 with the one we speak.
    Version,
    /// No `Sec-WebSocket-Key`.
    MissingKey,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::NotUpgrade => (
                StatusCode::BAD_REQUEST,
                "this is the signaling WebSocket: connect with a WebSocket client\n",
            ),
            Refusal::Version => (
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket version 13 is required\n",
            ),
            Refusal::MissingKey => (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n"),
        };
        let mut resp = (status, text).into_response();
        if self == Refusal::Version {
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        resp
    }
}

/// The `Sec-WebSocket-Accept` value for a valid opening handshake.
pub fn check(headers: &HeaderMap) -> Result<HeaderValue, Refusal> {
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Refusal::NotUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refusal::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .filter(|k| !k.trim().is_empty())
        .ok_or(Refusal::MissingKey)?;
    HeaderValue::from_str(&websocket::accept_key(key)).map_err(|_| Refusal::MissingKey)
}

/// The 101 answer that completes the handshake.
pub fn switching_protocols(accept: HeaderValue) -> Response {
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_a_browser_handshake() {
        let h = handshake(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(check(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn refusals() {
        assert_eq!(check(&HeaderMap::new()), Err(Refusal::NotUpgrade));
        let h = handshake(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "x"),
        ]);
        assert_eq!(check(&h), Err(Refusal::Version));
        assert_eq!(
            Refusal::Version.into_response().headers()["sec-websocket-version"],
            "13"
        );
        let h = handshake(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
        ]);
        assert_eq!(check(&h), Err(Refusal::MissingKey));
    }
}
