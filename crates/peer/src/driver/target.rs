//! What the room argument of `switchboard send|recv|chat|pipe` names: the
//! app's room URL (`https://host/r/ROOM`, with `?relay=1` and an invite's
//! `#t=TOKEN` if present), or a bare room id with a server URL.

use url::Url;

/// Where to join.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomTarget {
    /// The signaling WebSocket, `ws://…/ws` or `wss://…/ws`.
    pub ws_url: Url,
    /// The room id.
    pub room: String,
    /// An invite token from the link's `#t=` fragment.
    pub token: Option<String>,
    /// The link asked for relay-only (`?relay=1`).
    pub relay: bool,
}

impl std::fmt::Debug for RoomTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomTarget")
            .field("ws_url", &self.ws_url.as_str())
            .field("room", &self.room)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("relay", &self.relay)
            .finish()
    }
}

/// Why a room argument is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL, and no server to put a bare room id on.
    #[error("{0:?} is neither a room URL (http[s]://HOST/r/ROOM) nor a room id with --server")]
    NotAUrl(String),
    /// A URL, but not of a room page.
    #[error("{0} is not a room link: expected http[s]://HOST/r/ROOM")]
    NotARoom(String),
}

impl RoomTarget {
    /// Reads `arg`; `server` is the base URL for a bare room id.
    pub fn parse(arg: &str, server: Option<&str>) -> Result<Self, TargetError> {
        let url = match Url::parse(arg) {
            Ok(u) if u.has_host() => u,
            _ => {
                let Some(base) = server else {
                    return Err(TargetError::NotAUrl(arg.to_owned()));
                };
                let base = Url::parse(base).map_err(|_| TargetError::NotAUrl(base.to_owned()))?;
                base.join(&format!("/r/{arg}"))
                    .map_err(|_| TargetError::NotAUrl(arg.to_owned()))?
            }
        };
        let room = url
            .path()
            .strip_prefix("/r/")
            .map(|r| r.trim_end_matches('/'))
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| TargetError::NotARoom(url.to_string()))?
            .to_owned();
        let token = url.fragment().and_then(|f| {
            f.split('&')
                .find_map(|kv| kv.strip_prefix("t="))
                .map(str::to_owned)
        });
        let relay = url.query_pairs().any(|(k, v)| k == "relay" && v == "1");
        let mut ws_url = url.clone();
        let scheme = match url.scheme() {
            "https" | "wss" => "wss",
            "http" | "ws" => "ws",
            _ => return Err(TargetError::NotARoom(url.to_string())),
        };
        // Only errors for schemes that cannot change (both are special here).
        let _ = ws_url.set_scheme(scheme);
        ws_url.set_path("/ws");
        ws_url.set_query(None);
        ws_url.set_fragment(None);
        Ok(RoomTarget {
            ws_url,
            room,
            token,
            relay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_links_and_ids() {
        let t =
            RoomTarget::parse("https://talk.example.org/r/abc_12?relay=1#t=eyJ.x.y", None).unwrap();
        assert_eq!(t.ws_url.as_str(), "wss://talk.example.org/ws");
        assert_eq!(
            (t.room.as_str(), t.token.as_deref(), t.relay),
            ("abc_12", Some("eyJ.x.y"), true)
        );
        let t = RoomTarget::parse("http://127.0.0.1:8080/r/room1", None).unwrap();
        assert_eq!(t.ws_url.as_str(), "ws://127.0.0.1:8080/ws");
        assert!(!t.relay && t.token.is_none());
        let t = RoomTarget::parse("room2", Some("http://127.0.0.1:9/")).unwrap();
        assert_eq!(
            (t.ws_url.as_str(), t.room.as_str()),
            ("ws://127.0.0.1:9/ws", "room2")
        );
        assert!(matches!(
            RoomTarget::parse("room2", None),
            Err(TargetError::NotAUrl(_))
        ));
        assert!(matches!(
            RoomTarget::parse("http://h/x/room", None),
            Err(TargetError::NotARoom(_))
        ));
        assert!(
            !format!(
                "{:?}",
                RoomTarget::parse("http://h/r/a#t=secret", None).unwrap()
            )
            .contains("secret")
        );
    }
}
