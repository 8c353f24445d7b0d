//! The ICE servers handed to browsers: this node's STUN and TURN (UDP and TCP)
//! with ephemeral credentials minted from the TURN secret (coturn's REST
//! scheme), or the operator's `--ice-server` URLs instead.
//!
//! Every browser gets its own TURN username, `EXPIRY:ID` with a random
//! [`credential_id`], so per-user quotas count browsers, not the second
//! they joined in. The credential lives `--credential-ttl` whatever the
//! invite token's `exp` (a token gates joining, not media already set up).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use signal::{IceServer, IceServers, SharedIceServer, TurnCredential};

/// Host names whose URL lists are kept (a deployment has one or two).
const HOST_CACHE: usize = 8;

use crate::config::Config;

/// Builds the ICE server list for one browser.
pub struct IcePolicy {
    public_host: Option<String>,
    fallback_host: String,
    port: u16,
    turns_port: Option<u16>,
    external: Vec<String>,
    /// `external` as a shared list (STUN URLs without credential).
    external_list: Arc<[SharedIceServer]>,
    ttl: u64,
    secret: Vec<u8>,
    /// Lists by host name, shared by the connections that used it.
    cache: Mutex<Vec<(String, Arc<[SharedIceServer]>)>>,
}

impl IcePolicy {
    /// From the configuration, the TURN secret and the port of TURN over
    /// TLS (if served).
    pub fn new(config: &Config, secret: &str, turns_port: Option<u16>) -> Self {
        let ip = config.turn_listen.ip();
        let fallback_host = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            host_literal(ip)
        };
        IcePolicy {
            public_host: config.public_host.clone(),
            fallback_host,
            port: config.turn_listen.port(),
            turns_port,
            external: config.ice_servers.clone(),
            // External servers share our secret (e.g. coturn with the same
            // --auth-secret): TURN URLs get the minted credential, STUN none.
            external_list: config
                .ice_servers
                .iter()
                .map(|url| SharedIceServer {
                    urls: vec![url.clone()],
                    takes_credential: url.starts_with("turn:") || url.starts_with("turns:"),
                })
                .collect(),
            ttl: config.credential_ttl,
            secret: secret.as_bytes().to_vec(),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The list for a browser that reached us with HTTP `Host` header
    /// `host`, with a TURN credential of its own (`EXPIRY:id`).
    pub fn servers_for(&self, host: Option<&str>, id: &str) -> Vec<IceServer> {
        self.ice_for(host, id).to_list()
    }

    /// Like [`IcePolicy::servers_for`] in the form a connection keeps until
    /// it joins: the URL list shared by every browser that used the same
    /// host (cached), and its own credential.
    pub fn ice_for(&self, host: Option<&str>, id: &str) -> IceServers {
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_add(self.ttl);
        let cred = turn::credentials::mint(&self.secret, expires, Some(id));
        let credential = TurnCredential {
            username: cred.username.into_boxed_str(),
            password: cred.password.into_boxed_str(),
        };
        IceServers::new(self.shared_for(host), Some(credential))
    }

    /// The URL list for `host`, from the cache when it is there.
    fn shared_for(&self, host: Option<&str>) -> Arc<[SharedIceServer]> {
        if !self.external.is_empty() {
            // The operator's servers, whatever the host.
            return self.external_list.clone();
        }
        let host = self
            .public_host
            .clone()
            .or_else(|| host.and_then(hostname_of))
            .unwrap_or_else(|| self.fallback_host.clone());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, list)) = cache.iter().find(|(h, _)| *h == host) {
            return list.clone();
        }
        let list = self.builtin_list(&host);
        // The Host header is the client's to choose: a bounded cache.
        if cache.len() >= HOST_CACHE {
            cache.remove(0);
        }
        cache.push((host, list.clone()));
        list
    }

    fn builtin_list(&self, host: &str) -> Arc<[SharedIceServer]> {
        let p = self.port;
        let mut turn = vec![
            format!("turn:{host}:{p}?transport=udp"),
            format!("turn:{host}:{p}?transport=tcp"),
        ];
        if let Some(tp) = self.turns_port {
            // The certificate names the host the page was loaded from.
            turn.push(format!("turns:{host}:{tp}?transport=tcp"));
        }
        Arc::from(vec![
            SharedIceServer {
                urls: vec![format!("stun:{host}:{p}")],
                takes_credential: false,
            },
            SharedIceServer {
                urls: turn,
                takes_credential: true,
            },
        ])
    }
}

/// A fresh id for one browser's TURN username: 8 random bytes, hex (64
/// bits: unguessable enough to keep one browser's quota its own, and no
/// name or address in it).
pub fn credential_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host part of a `Host` header, as usable in an ICE URL. `localhost`
/// becomes `127.0.0.1`: browsers resolve ICE server names themselves and
/// some refuse or map `localhost` differently.
fn hostname_of(header: &str) -> Option<String> {
    let header = header.trim();
    let host = if let Some(rest) = header.strip_prefix('[') {
        // [v6]:port
        let (inner, _) = rest.split_once(']')?;
        return inner
            .parse::<IpAddr>()
            .ok()
            .map(host_literal)
            .filter(|_| !inner.is_empty());
    } else {
        header.rsplit_once(':').map_or(header, |(h, _)| h)
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return None;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Some("127.0.0.1".to_owned());
    }
    Some(host.to_owned())
}

fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(hostname_of("10.0.0.5:8080").as_deref(), Some("10.0.0.5"));
        assert_eq!(hostname_of("localhost:8080").as_deref(), Some("127.0.0.1"));
        assert_eq!(hostname_of("example.org").as_deref(), Some("example.org"));
        assert_eq!(hostname_of("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(hostname_of("bad host?:1"), None);
        assert_eq!(hostname_of("[nope]:1"), None);
    }

    #[test]
    fn external_servers_replace_builtin_ones() -> anyhow::Result<()> {
        let config = Config::load_from([
            "switchboard",
            "--ice-server",
            "stun:stun.example.net:3478",
            "--ice-server",
            "turns:turn.example.net:5349?transport=tcp",
        ])?;
        let servers =
            IcePolicy::new(&config, "shared", None).servers_for(Some("10.0.0.1:8080"), "a1");
        assert_eq!(servers.len(), 2);
        let stun = servers.first().ok_or_else(|| anyhow::anyhow!("stun"))?;
        assert_eq!(stun.urls, vec!["stun:stun.example.net:3478".to_owned()]);
        assert_eq!((&stun.username, &stun.credential), (&None, &None));
        let turn = servers.get(1).ok_or_else(|| anyhow::anyhow!("turn"))?;
        let user = turn.username.clone().unwrap_or_default();
        assert!(turn::credentials::expiry_of(&user).is_some());
        assert_eq!(
            turn.credential,
            Some(turn::credentials::password_for(b"shared", &user))
        );
        Ok(())
    }

    #[test]
    fn public_host_wins_over_the_host_header() -> anyhow::Result<()> {
        let config = Config::load_from([
            "switchboard",
            "--public-host",
            "203.0.113.7",
            "--turn-listen",
            "0.0.0.0:3479",
        ])?;
        let servers =
            IcePolicy::new(&config, "s", Some(443)).servers_for(Some("localhost:8080"), "a1");
        assert_eq!(
            servers.first().map(|s| s.urls.clone()),
            Some(vec!["stun:203.0.113.7:3479".to_owned()])
        );
        // TURN over TLS, when served, is on the same host.
        assert_eq!(
            servers.get(1).and_then(|s| s.urls.last().cloned()),
            Some("turns:203.0.113.7:443?transport=tcp".to_owned())
        );
        Ok(())
    }

    #[test]
    fn browsers_of_one_host_share_the_url_list_not_the_credential() {
        let policy = IcePolicy::new(&Config::default(), "s", None);
        let a = policy.ice_for(Some("192.0.2.1:8080"), "aaaaaaaaaaaaaaaa");
        let b = policy.ice_for(Some("192.0.2.1:8080"), "bbbbbbbbbbbbbbbb");
        assert!(Arc::ptr_eq(
            &policy.shared_for(Some("192.0.2.1:8080")),
            &policy.shared_for(Some("192.0.2.1:1"))
        ));
        let (la, lb) = (a.to_list(), b.to_list());
        assert_eq!(
            la.iter().map(|s| &s.urls).collect::<Vec<_>>(),
            lb.iter().map(|s| &s.urls).collect::<Vec<_>>()
        );
        assert_ne!(
            la.get(1).map(|s| &s.username),
            lb.get(1).map(|s| &s.username)
        );
        // Any number of Host headers: the cache stays bounded.
        for i in 0..100 {
            policy.shared_for(Some(&format!("h{i}.example:8080")));
        }
        let cached = policy.cache.lock().map(|c| c.len()).unwrap_or(usize::MAX);
        assert!(cached <= HOST_CACHE, "{cached}");
    }

    #[test]
    fn builtin_servers_carry_minted_credentials() {
        let mut config = Config::default();
        config.turn_listen = "0.0.0.0:3478".parse().unwrap_or(config.turn_listen);
        let policy = IcePolicy::new(&config, "s3cret", None);
        let servers = policy.servers_for(Some("192.0.2.1:8080"), &credential_id());
        assert_eq!(servers.len(), 2);
        let turn = servers.get(1).cloned();
        let turn = turn.as_ref();
        assert_eq!(
            turn.map(|s| s.urls.clone()),
            Some(vec![
                "turn:192.0.2.1:3478?transport=udp".to_owned(),
                "turn:192.0.2.1:3478?transport=tcp".to_owned()
            ])
        );
        let user = turn.and_then(|s| s.username.clone()).unwrap_or_default();
        let (expiry, id) = user.split_once(':').unwrap_or_default();
        assert!(expiry.parse::<u64>().is_ok(), "{user}");
        assert_eq!(id.len(), 16, "{user}");
        assert_ne!(credential_id(), credential_id());
        assert_eq!(
            turn.and_then(|s| s.credential.clone()),
            Some(turn::credentials::password_for(b"s3cret", &user))
        );
    }
}
