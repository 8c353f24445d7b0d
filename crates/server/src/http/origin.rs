//! Which web origins may open the signaling WebSocket and read `/api/ice`.
//!
//! Browsers do not apply CORS to WebSockets, so without this check any web
//! site could make its visitors' browsers join rooms and pull TURN
//! credentials. Allowed:
//!
//! - no `Origin` header at all (native clients; browsers always send one
//!   on a WebSocket upgrade);
//! - the origin the app is served from, as the browser sees it: the
//!   request's `Host` header with the listener's scheme — or `https` on a
//!   plain listener, which is what a TLS-terminating reverse proxy in front
//!   looks like (it must pass the `Host` header on, as nginx's
//!   `proxy_set_header Host $host` does);
//! - `--public-host`, over `http` or `https`, on any port (a reverse proxy
//!   in front may listen anywhere and rewrite the `Host` header);
//! - each `--allowed-origin URL`.
//!
//! Ports equal to the scheme's default count as absent on both sides, and
//! names compare case-insensitively. `Origin: null` (sandboxed frames,
//! `file:` pages) is refused.

/// A parsed origin: scheme, lowercased host (IPv6 in brackets), and the port
/// unless it is the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` if malformed.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{inner}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// `scheme://host[:port]`, with an optional trailing `/`.
    fn parse(s: &str) -> Option<Origin> {
        let s = s.trim().trim_end_matches('/');
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        let port = port.filter(|p| Some(*p) != default_port(&scheme));
        Some(Origin { scheme, host, port })
    }
}

/// The origin rule of one listener.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    tls: bool,
    public_host: Option<String>,
    allowed: Vec<Origin>,
}

impl OriginPolicy {
    /// For a listener that is HTTPS if `tls`, with `--public-host`
    /// and `--allowed-origin` values. Entries that are not `scheme://host[:port]`
    /// are skipped with a warning.
    pub fn new(tls: bool, public_host: Option<&str>, allowed_origins: &[String]) -> Self {
        let allowed = allowed_origins
            .iter()
            .filter_map(|a| {
                let o = Origin::parse(a);
                if o.is_none() {
                    tracing::warn!(origin = %a, "ignoring --allowed-origin: expected scheme://host[:port]");
                }
                o
            })
            .collect();
        OriginPolicy {
            tls,
            public_host: public_host.and_then(|h| split_host_port(h).map(|(h, _)| h)),
            allowed,
        }
    }

    /// Whether a request with these `Origin` and `Host` headers may go on.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Some(o) = Origin::parse(origin) else {
            return false;
        };
        if self.allowed.contains(&o) {
            return true;
        }
        let scheme_ok = if self.tls {
            o.scheme == "https"
        } else {
            o.scheme == "http" || o.scheme == "https"
        };
        if !scheme_ok {
            return false;
        }
        if let Some((h, p)) = host.and_then(split_host_port) {
            let p = p.filter(|p| Some(*p) != default_port(&o.scheme));
            if h == o.host && p == o.port {
                return true;
            }
        }
        if let Some(public) = &self.public_host
            && *public == o.host
        {
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_origins() {
        let o = |s: &str| Origin::parse(s).map(|o| (o.scheme, o.host, o.port));
        assert_eq!(
            o("http://127.0.0.1:8080"),
            Some(("http".into(), "127.0.0.1".into(), Some(8080)))
        );
        assert_eq!(
            o("HTTPS://Call.Example.com:443/"),
            Some(("https".into(), "call.example.com".into(), None))
        );
        assert_eq!(
            o("http://[::1]:80"),
            Some(("http".into(), "[::1]".into(), None))
        );
        for bad in [
            "null",
            "",
            "http://",
            "http://a:b",
            "example.com",
            "http://a/b",
            "http://[::1",
        ] {
            assert_eq!(o(bad), None, "{bad}");
        }
    }

    #[test]
    fn served_origin_public_host_and_allowed_ones() {
        let p = OriginPolicy::new(
            false,
            Some("call.example.com"),
            &["https://embed.example.org".into(), "junk".into()],
        );
        let host = Some("127.0.0.1:8080");
        assert!(p.allows(None, host));
        assert!(p.allows(Some("http://127.0.0.1:8080"), host));
        assert!(!p.allows(Some("http://127.0.0.1:8081"), host));
        assert!(!p.allows(Some("http://evil.example"), host));
        assert!(!p.allows(Some("null"), host));
        assert!(!p.allows(Some("http://127.0.0.1:8080"), None));
        assert!(p.allows(Some("https://embed.example.org"), host));
        assert!(p.allows(Some("https://embed.example.org:443"), host));
        assert!(!p.allows(Some("http://embed.example.org"), host));
        // The public host, directly or behind a proxy on 443.
        assert!(p.allows(Some("https://call.example.com"), host));
        assert!(p.allows(Some("http://call.example.com:8080"), host));
        assert!(p.allows(Some("https://call.example.com:9999"), host));
        assert!(!p.allows(Some("https://call.example.com.evil.example"), host));
        // A TLS-terminating proxy passing Host on.
        assert!(p.allows(Some("https://call.example.com"), Some("call.example.com")));
        assert!(p.allows(Some("https://other.example"), Some("other.example")));
        // Default ports are the same as none.
        assert!(p.allows(Some("http://localhost"), Some("localhost:80")));
        assert!(p.allows(Some("http://[::1]:8080"), Some("[::1]:8080")));
    }

    #[test]
    fn a_tls_listener_wants_https() {
        let p = OriginPolicy::new(true, None, &[]);
        assert!(p.allows(Some("https://10.0.0.2:8443"), Some("10.0.0.2:8443")));
        assert!(!p.allows(Some("http://10.0.0.2:8443"), Some("10.0.0.2:8443")));
    }
}
