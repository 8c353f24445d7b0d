//! Binding the listeners (SO_REUSEPORT, dual stack, the IPv4 fallback) and
//! the one rule for addresses at the socket boundary: an IPv4 client of a
//! dual-stack `[::]` socket is IPv4 everywhere past the socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Linux's errno for "address family not supported" (IPv6 compiled out or
/// disabled at boot); std has no `ErrorKind` for it.
const EAFNOSUPPORT: i32 = 97;

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 client) as the IPv4 address it is; any other as is.
/// Every address a socket reports goes through this, so the core (mapped
/// address, relay family, peer policy), the rate limits, the quotas and the
/// per-address connection counts see an IPv4 client as IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// `to` as a socket of `local`'s family takes it: an IPv4 destination
/// becomes IPv4-mapped on an IPv6 socket (the reverse of [`canonical`]).
pub(crate) fn for_socket(local: SocketAddr, to: SocketAddr) -> SocketAddr {
    match (local, to) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => to,
    }
}

/// A non-blocking socket bound to `addr`; `[::]` explicitly dual stack
/// (IPV6_V6ONLY off, whatever `net.ipv6.bindv6only` says).
pub(crate) fn socket(
    addr: SocketAddr,
    ty: Type,
    proto: Protocol,
    reuse_port: bool,
) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if is_ipv6_any(addr) {
        s.set_only_v6(false)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if ty == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// `listen`, or `0.0.0.0` with its port when `listen` is `[::]` and this
/// host has no IPv6 (logged once; `what` names the listener).
pub(crate) fn usable(listen: SocketAddr, what: &str) -> SocketAddr {
    if !is_ipv6_any(listen) {
        return listen;
    }
    let probe = SocketAddr::new(listen.ip(), 0);
    match socket(probe, Type::DGRAM, Protocol::UDP, false) {
        Err(e) if ipv6_unavailable(&e) => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), listen.port());
            tracing::warn!("{what}: no IPv6 on this host ({e}); listening on {v4}, IPv4 only");
            v4
        }
        _ => listen,
    }
}

fn is_ipv6_any(addr: SocketAddr) -> bool {
    addr.is_ipv6() && addr.ip().is_unspecified()
}

/// Errors binding `[::]` gives on a host without IPv6.
fn ipv6_unavailable(e: &io::Error) -> bool {
    e.raw_os_error() == Some(EAFNOSUPPORT) || e.kind() == io::ErrorKind::AddrNotAvailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    #[test]
    fn mapped_ipv4_becomes_ipv4_and_back() {
        assert_eq!(
            canonical(addr("[::ffff:127.0.0.1]:5000")),
            addr("127.0.0.1:5000")
        );
        assert_eq!(canonical(addr("[::1]:5000")), addr("[::1]:5000"));
        assert_eq!(canonical(addr("[2001:db8::1]:1")), addr("[2001:db8::1]:1"));
        assert_eq!(canonical(addr("192.0.2.1:7")), addr("192.0.2.1:7"));
        // IPv4-compatible (::a.b.c.d, deprecated) is not mapped: stays IPv6.
        assert_eq!(canonical(addr("[::127.0.0.1]:7")), addr("[::127.0.0.1]:7"));
        let v6_local = addr("[::]:3478");
        assert_eq!(
            for_socket(v6_local, addr("127.0.0.1:5000")),
            addr("[::ffff:127.0.0.1]:5000")
        );
        assert_eq!(for_socket(v6_local, addr("[::1]:9")), addr("[::1]:9"));
        assert_eq!(
            for_socket(addr("0.0.0.0:1"), addr("127.0.0.1:5")),
            addr("127.0.0.1:5")
        );
    }

    #[test]
    fn only_missing_ipv6_falls_back() {
        assert!(ipv6_unavailable(&io::Error::from_raw_os_error(
            EAFNOSUPPORT
        )));
        assert!(ipv6_unavailable(&io::Error::from(
            io::ErrorKind::AddrNotAvailable
        )));
        assert!(!ipv6_unavailable(&io::Error::from(
            io::ErrorKind::AddrInUse
        )));
        // Not `[::]`: nothing to fall back from.
        assert_eq!(usable(addr("127.0.0.1:3478"), "t"), addr("127.0.0.1:3478"));
        assert_eq!(usable(addr("[::1]:3478"), "t"), addr("[::1]:3478"));
    }

    #[test]
    fn dual_stack_listener_is_not_v6_only() {
        let s = socket(addr("[::]:0"), Type::DGRAM, Protocol::UDP, true);
        if let Ok(s) = s {
            assert_eq!(s.only_v6().ok(), Some(false));
        }
    }
}
