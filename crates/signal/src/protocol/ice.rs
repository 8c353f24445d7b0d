//! The `iceServers` of `joined`: what a connection is handed, and how the
//! hub keeps it until the connection joins.

use serde::{Deserialize, Serialize};

/// One entry of `RTCConfiguration.iceServers`.
///
/// Deserializes leniently: `username` and `credential` may be absent or
/// `null`, and other members (e.g. a later `credentialType`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (absent for STUN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password (absent for STUN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A TURN credential of one connection (coturn's REST scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `EXPIRY:ID`.
    pub username: Box<str>,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: Box<str>,
}

/// An entry of a shared ICE server list: its URLs, and whether it takes
/// the connection's TURN credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedIceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// `turn:`/`turns:`: give it the connection's credential.
    pub takes_credential: bool,
}

/// The ICE servers of one connection, kept until it joins: a list shared
/// by every connection that reached the server under the same host name,
/// and the connection's own TURN credential. [`IceServers::to_list`] makes
/// the `iceServers` of `joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    shared: Option<std::sync::Arc<[SharedIceServer]>>,
    credential: Option<TurnCredential>,
}

impl IceServers {
    /// `shared` with `credential` for its TURN entries.
    pub fn new(
        shared: std::sync::Arc<[SharedIceServer]>,
        credential: Option<TurnCredential>,
    ) -> Self {
        IceServers {
            shared: Some(shared),
            credential,
        }
    }

    /// The list as sent in `joined`.
    pub fn to_list(&self) -> Vec<IceServer> {
        let Some(shared) = &self.shared else {
            return Vec::new();
        };
        shared
            .iter()
            .map(|s| {
                let cred = self.credential.as_ref().filter(|_| s.takes_credential);
                IceServer {
                    urls: s.urls.clone(),
                    username: cred.map(|c| c.username.to_string()),
                    credential: cred.map(|c| c.password.to_string()),
                }
            })
            .collect()
    }
}

impl From<Vec<IceServer>> for IceServers {
    /// A list of its own (tests): entries with a username keep theirs.
    fn from(list: Vec<IceServer>) -> Self {
        let credential = list.iter().find_map(|s| {
            Some(TurnCredential {
                username: s.username.as_deref()?.into(),
                password: s.credential.as_deref()?.into(),
            })
        });
        let shared: Vec<SharedIceServer> = list
            .into_iter()
            .map(|s| SharedIceServer {
                takes_credential: s.username.is_some(),
                urls: s.urls,
            })
            .collect();
        IceServers::new(shared.into(), credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_share_urls_and_keep_their_own_credential() {
        let list = vec![
            IceServer {
                urls: vec!["stun:h:3478".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:h:3478?transport=udp".into()],
                username: Some("1:a".into()),
                credential: Some("pw".into()),
            },
        ];
        let ice = IceServers::from(list.clone());
        assert_eq!(ice.to_list(), list);
        assert_eq!(IceServers::default().to_list(), vec![]);
        // Serialized as RTCIceServer objects, STUN without credential fields.
        let json = serde_json::to_string(&ice.to_list()).unwrap_or_default();
        assert_eq!(
            json,
            r#"[{"urls":["stun:h:3478"]},{"urls":["turn:h:3478?transport=udp"],"username":"1:a","credential":"pw"}]"#
        );
    }
}
