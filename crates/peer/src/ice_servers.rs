//! The `iceServers` a Switchboard server hands out in `joined`, read as a
//! native peer uses them: `stun:` (RFC 7064) and `turn:` (RFC 7065) URLs
//! with `?transport=udp|tcp`. `turns:` (TURN over TLS) is not used yet:
//! the peer reaches the same server over UDP or TCP.

use std::fmt;

use signal::IceServer;

/// How a URL reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlKind {
    /// STUN Binding only.
    Stun,
    /// TURN over UDP.
    TurnUdp,
    /// TURN over TCP.
    TurnTcp,
}

/// One usable URL, its host not yet resolved (the driver resolves it).
#[derive(Clone, PartialEq, Eq)]
pub struct IceUrl {
    /// STUN or TURN, and its transport.
    pub kind: UrlKind,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (3478 when the URL gives none).
    pub port: u16,
    /// TURN username.
    pub username: String,
    /// TURN password.
    pub credential: String,
}

impl fmt::Debug for IceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceUrl")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// The URLs of `servers` a native peer can use, in order, without repeats.
/// URLs it cannot use (`turns:`, other transports, bad syntax, TURN without
/// a credential) are left out.
pub fn usable_urls(servers: &[IceServer]) -> Vec<IceUrl> {
    let mut out: Vec<IceUrl> = Vec::new();
    for server in servers {
        for url in &server.urls {
            let Some(u) = parse_url(url, server) else {
                continue;
            };
            if !out
                .iter()
                .any(|o| o.kind == u.kind && o.host == u.host && o.port == u.port)
            {
                out.push(u);
            }
        }
    }
    out
}

fn parse_url(url: &str, server: &IceServer) -> Option<IceUrl> {
    let (scheme, rest) = url.split_once(':')?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let transport = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("transport=")))
        .map(str::to_ascii_lowercase);
    let kind = match (scheme.to_ascii_lowercase().as_str(), transport.as_deref()) {
        ("stun", None) => UrlKind::Stun,
        ("turn", None | Some("udp")) => UrlKind::TurnUdp,
        ("turn", Some("tcp")) => UrlKind::TurnTcp,
        _ => return None,
    };
    let (host, port) = split_host_port(authority)?;
    let (username, credential) = match kind {
        UrlKind::Stun => (String::new(), String::new()),
        _ => (server.username.clone()?, server.credential.clone()?),
    };
    Some(IceUrl {
        kind,
        host,
        port,
        username,
        credential,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 3478,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None if !authority.is_empty() => Some((authority.to_owned(), 3478)),
        None => None,
    }
    .filter(|(h, _)| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str], cred: bool) -> IceServer {
        IceServer {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            username: cred.then(|| "1:ab".into()),
            credential: cred.then(|| "pw".into()),
        }
    }

    #[test]
    fn reads_switchboards_list() {
        let list = [
            server(&["stun:192.0.2.10:3478"], false),
            server(
                &[
                    "turn:192.0.2.10:3478?transport=udp",
                    "turn:192.0.2.10:3478?transport=tcp",
                    "turns:example.org:443?transport=tcp",
                ],
                true,
            ),
        ];
        let urls = usable_urls(&list);
        let kinds: Vec<_> = urls
            .iter()
            .map(|u| (u.kind, u.host.as_str(), u.port))
            .collect();
        assert_eq!(
            kinds,
            [
                (UrlKind::Stun, "192.0.2.10", 3478),
                (UrlKind::TurnUdp, "192.0.2.10", 3478),
                (UrlKind::TurnTcp, "192.0.2.10", 3478)
            ]
        );
        assert_eq!(urls[1].username, "1:ab");
        assert!(!format!("{:?}", urls[1]).contains("pw"));
    }

    #[test]
    fn hosts_ports_and_junk() {
        let urls = usable_urls(&[server(
            &[
                "stun:[::1]:3479",
                "stun:[fd00::1]",
                "stun:h",
                "stun:",
                "stun:h:x",
                "turn:h:1?transport=sctp",
                "nope",
            ],
            false,
        )]);
        let got: Vec<_> = urls.iter().map(|u| (u.host.as_str(), u.port)).collect();
        assert_eq!(got, [("::1", 3479), ("fd00::1", 3478), ("h", 3478)]);
        // TURN without a credential is useless.
        assert!(usable_urls(&[server(&["turn:h:1"], false)]).is_empty());
    }
}
