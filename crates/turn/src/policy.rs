//! Which peers a client may relay to (RFC 8656 §21.2.3 "Server to peer":
//! a TURN server must not become an open door into the networks around it).
//!
//! Refused by default: unspecified, loopback, RFC 1918, CGNAT (100.64/10),
//! link-local (with cloud metadata 169.254.169.254), benchmarking (198.18/15),
//! documentation, IETF-reserved (192.0.0/24, 240/4), broadcast and multicast;
//! for IPv6 also ULA, link- and site-local, discard-only and documentation
//! prefixes — and every IPv4 address above when embedded in IPv6
//! (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64). Operators loosen or
//! tighten this with allow and deny lists; deny wins.
//!
//! The one exception to the built-in list is the server's own services on
//! the same host (its SFU, [`PeerPolicy::with_services`]): a relay-only
//! browser reaches the SFU through the relay. Such an IP gets a permission
//! that reaches that one port and no other ([`Reach::OnlyPort`]), so the
//! relay opens no door to anything else on the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The relay policy: a default deny list, plus operator overrides.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    allow_loopback: bool,
    /// The server's own services (canonical addresses), reachable though
    /// their IPs are refused.
    services: Vec<SocketAddr>,
}

/// How far a permission for one peer IP reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every port of the IP (RFC 8656 §9: permissions are per IP).
    AnyPort,
    /// Only this port: the IP is refused, but one of the server's own
    /// services listens there.
    OnlyPort(u16),
}

impl Reach {
    /// True if a peer on `port` is within reach.
    pub fn admits(self, port: u16) -> bool {
        match self {
            Reach::AnyPort => true,
            Reach::OnlyPort(p) => p == port,
        }
    }
}

impl PeerPolicy {
    /// A policy with the given overrides. `allow_loopback` lets tests relay to
    /// 127.0.0.0/8 and ::1 (never to 0.0.0.0 or ::).
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, allow_loopback: bool) -> Self {
        PeerPolicy {
            allow,
            deny,
            allow_loopback,
            services: Vec::new(),
        }
    }

    /// The same policy, letting relays reach exactly these addresses (the
    /// server's own SFU on this host) even where the IP is refused. The
    /// operator's deny list still wins.
    pub fn with_services(mut self, services: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.services = services
            .into_iter()
            .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
            .collect();
        self
    }

    /// True if relaying to every port of `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.reach(ip) == Some(Reach::AnyPort)
    }

    /// True if relaying to `peer` (this IP and port) is allowed.
    pub fn permits_addr(&self, peer: SocketAddr) -> bool {
        self.reach(peer.ip()).is_some_and(|r| r.admits(peer.port()))
    }

    /// How far a permission for `ip` may reach; `None` if relaying to it
    /// is refused.
    pub fn reach(&self, ip: IpAddr) -> Option<Reach> {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        let open = self.allow.iter().any(|n| n.contains(&ip))
            || (self.allow_loopback && ip.is_loopback())
            || !default_denied(ip);
        if open {
            return Some(Reach::AnyPort);
        }
        self.services
            .iter()
            .find(|s| s.ip() == ip)
            .map(|s| Reach::OnlyPort(s.port()))
    }
}

/// An IPv4-mapped address as plain IPv4, so that lists match either form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The built-in deny list.
pub fn default_denied(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_denied(v4),
        IpAddr::V6(v6) => v6_denied(v6),
    }
}

fn v4_denied(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // 0.0.0.0/8 "this network"
        || a == 10                           // RFC 1918
        || (a == 100 && (b & 0xC0) == 64)    // 100.64.0.0/10 CGNAT
        || a == 127                          // loopback
        || (a == 169 && b == 254)            // link-local, cloud metadata
        || (a == 172 && (b & 0xF0) == 16)    // RFC 1918
        || (a == 192 && b == 0 && c == 0)    // 192.0.0.0/24 IETF assignments
        || (a == 192 && b == 0 && c == 2)    // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)            // RFC 1918
        || (a == 198 && (b & 0xFE) == 18)    // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)  // TEST-NET-3
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
}

fn v6_denied(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return v4_denied(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xFE00) == 0xFC00 // fc00::/7 ULA
        || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10 link-local
        || (s[0] & 0xFFC0) == 0xFEC0 // fec0::/10 site-local (deprecated)
        || (s[0] & 0xFF00) == 0xFF00 // ff00::/8 multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xFFF0) == 0x3FF0 // 3fff::/20 documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64 discard
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // 64:ff9b:1::/48 local NAT64
        || (s[0] == 0x2001 && (s[1] & 0xFFF0) == 0x0010) // 2001:10::/28 ORCHID
        || s[0] == 0 // rest of ::/16 (IPv4-compatible handled above; otherwise reserved)
}

/// The IPv4 address a v6 address carries, for the forms that carry one:
/// IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96,
/// 6to4 2002::/16 and Teredo 2001::/32 (client address, inverted).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible; :: and ::1 are themselves, not embedded.
        return (!ip.is_unspecified() && !ip.is_loopback()).then_some(low);
    }
    if s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every range the issue names, in each of its forms.
    pub(crate) const DENIED: &[&str] = &[
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "::10.1.2.3",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:0101::5",
        "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo client 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo client 10.0.0.1
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::c0a8:101",
        "64:ff9b:1::1",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "ff05::1:3",
        "2001:db8::1",
        "100::1",
    ];

    pub(crate) const ALLOWED: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "198.20.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:0808:0808::1",
        "64:ff9b::808:808",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo client 8.8.8.8
    ];

    #[test]
    fn default_policy_matrix() {
        let p = PeerPolicy::default();
        for a in DENIED {
            assert!(!p.permits(ip(a)), "{a} must be refused");
        }
        for a in ALLOWED {
            assert!(p.permits(ip(a)), "{a} must be allowed");
        }
    }

    #[test]
    fn loopback_opt_in_is_narrow() {
        let p = PeerPolicy::new(vec![], vec![], true);
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(!p.permits(ip("0.0.0.0")));
        assert!(!p.permits(ip("::")));
        assert!(!p.permits(ip("10.0.0.1")));
    }

    #[test]
    fn allow_and_deny_lists() {
        let p = PeerPolicy::new(
            vec!["10.1.0.0/16".parse().unwrap()],
            vec![
                "10.1.2.0/24".parse().unwrap(),
                "8.8.8.0/24".parse().unwrap(),
            ],
            false,
        );
        assert!(p.permits(ip("10.1.1.1")));
        assert!(p.permits(ip("::ffff:10.1.1.1")));
        assert!(!p.permits(ip("10.1.2.1")));
        assert!(!p.permits(ip("8.8.8.8")));
        assert!(!p.permits(ip("::ffff:8.8.8.8")));
        assert!(!p.permits(ip("10.2.0.1")));
    }

    #[test]
    fn own_services_open_one_port_only() {
        let sfu: SocketAddr = "10.0.0.5:3480".parse().unwrap();
        let p =
            PeerPolicy::default().with_services([sfu, "[::ffff:127.0.0.1]:3480".parse().unwrap()]);
        assert_eq!(p.reach(ip("10.0.0.5")), Some(Reach::OnlyPort(3480)));
        assert!(p.permits_addr(sfu));
        assert!(!p.permits(ip("10.0.0.5")), "not every port");
        assert!(!p.permits_addr("10.0.0.5:3479".parse().unwrap()));
        assert!(
            !p.permits_addr("10.0.0.6:3480".parse().unwrap()),
            "not the port on another host"
        );
        // Mapped and plain forms are one address.
        assert!(p.permits_addr("127.0.0.1:3480".parse().unwrap()));
        assert!(p.permits_addr("[::ffff:10.0.0.5]:3480".parse().unwrap()));
        assert!(!p.permits_addr("127.0.0.1:22".parse().unwrap()));
        // Public addresses are unchanged: every port.
        assert_eq!(p.reach(ip("8.8.8.8")), Some(Reach::AnyPort));
        // The wildcard and port 0 are never services.
        let q = PeerPolicy::default().with_services([
            "0.0.0.0:3480".parse().unwrap(),
            "10.0.0.5:0".parse().unwrap(),
        ]);
        assert_eq!(q.reach(ip("0.0.0.0")), None);
        assert_eq!(q.reach(ip("10.0.0.5")), None);
    }

    #[test]
    fn deny_list_beats_own_services() {
        let p = PeerPolicy::new(vec![], vec!["10.0.0.0/8".parse().unwrap()], false)
            .with_services(["10.0.0.5:3480".parse().unwrap()]);
        assert_eq!(p.reach(ip("10.0.0.5")), None);
    }
}
