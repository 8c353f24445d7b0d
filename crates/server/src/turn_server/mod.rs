//! The STUN/TURN socket driver: owns the sockets and the clock, feeds the
//! sans-IO [`turn::Server`] and sends what it returns.
//!
//! One worker thread per core. Each runs a single-threaded runtime and owns
//! a core, a UDP and a TCP listener on `--turn-listen` and a TLS listener on
//! `--turns-listen` (SO_REUSEPORT: the kernel spreads clients over workers
//! by their address), the TURN connections the shared HTTPS port hands it
//! (`handoff.rs`), and the relay
//! sockets of the allocations it made. A packet never crosses threads and
//! takes no lock; workers share only the quota ledger (touched on Allocate)
//! and the nonce key. Relayed data is sent with non-blocking syscalls (a
//! full socket buffer drops the datagram, as UDP may).

pub mod handoff;
mod tcp;
mod tls;
mod udp;
mod worker;

pub use tls::HANDSHAKE_TIMEOUT as TLS_HANDSHAKE_TIMEOUT;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use turn::Server;

/// Limits the driver enforces itself (the core enforces the protocol's).
#[derive(Debug, Clone, Copy)]
pub struct DriverLimits {
    /// A TCP connection without an allocation that completes no message for
    /// this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections from one IP.
    pub max_tcp_per_ip: usize,
}

/// Addresses the service listens on, and the way in for connections
/// accepted elsewhere.
pub struct Bound {
    /// UDP listener.
    pub udp: SocketAddr,
    /// TCP listener.
    pub tcp: SocketAddr,
    /// TURN-over-TLS listener, if on.
    pub tls: Option<SocketAddr>,
    /// Hands TURN connections found on the shared HTTPS port to a worker.
    pub handoff: handoff::Handoff,
}

/// The TURN-over-TLS listener: where, and with which certificate.
pub struct TlsListen {
    /// `--turns-listen`.
    pub addr: SocketAddr,
    /// The certificate and configurations.
    pub tls: Arc<crate::tls::Tls>,
}

/// TCP connections per client IP, across workers (touched on accept and close).
pub(crate) type TcpCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

fn reuseport_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    s.set_reuse_port(true)?;
    if ty == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Binds the listeners of `workers` workers and starts them; `core(i)`
/// makes worker `i`'s core.
pub fn start(
    listen: SocketAddr,
    turns: Option<TlsListen>,
    workers: usize,
    core: impl Fn(usize) -> Server,
    limits: DriverLimits,
) -> anyhow::Result<Bound> {
    let workers = workers.max(1);
    if listen.port() != 0 {
        // SO_REUSEPORT would let us share a port another server holds;
        // refuse instead, as a plain bind would.
        drop(std::net::UdpSocket::bind(listen)?);
        drop(std::net::TcpListener::bind(listen)?);
    }
    let mut tls_listeners = Vec::with_capacity(workers);
    let mut tls_addr = None;
    if let Some(TlsListen { addr, tls }) = &turns {
        if addr.port() != 0 {
            drop(
                std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding TURN over TLS on {addr}"))?,
            );
        }
        let mut addr = *addr;
        for _ in 0..workers {
            let s = reuseport_socket(addr, Type::STREAM, Protocol::TCP)
                .with_context(|| format!("binding TURN over TLS on {addr}"))?;
            s.listen(1024)?;
            addr = s
                .local_addr()?
                .as_socket()
                .context("TLS listener has no address")?;
            tls_listeners.push(Some((std::net::TcpListener::from(s), tls.clone())));
        }
        tls_addr = Some(addr);
    }
    let mut sockets = Vec::with_capacity(workers);
    let mut addr = listen;
    for _ in 0..workers {
        let udp = reuseport_socket(addr, Type::DGRAM, Protocol::UDP)?;
        if addr.port() == 0 {
            // Port 0: the first socket picks, the others join it.
            addr = udp
                .local_addr()?
                .as_socket()
                .context("UDP listener has no address")?;
        }
        let tcp = reuseport_socket(addr, Type::STREAM, Protocol::TCP)?;
        tcp.listen(1024)?;
        sockets.push((
            std::net::UdpSocket::from(udp),
            std::net::TcpListener::from(tcp),
        ));
    }
    let tcp_counts: TcpCounts = Arc::default();
    let mut handoffs = Vec::with_capacity(workers);
    for (i, (udp, tcp)) in sockets.into_iter().enumerate() {
        let server = core(i);
        let counts = tcp_counts.clone();
        let (to_worker, handoff) = handoff::channel();
        handoffs.push(to_worker);
        let sockets = worker::Sockets {
            udp,
            tcp,
            tls: tls_listeners.get_mut(i).and_then(Option::take),
            handoff,
        };
        std::thread::Builder::new()
            .name(format!("turn-worker-{i}"))
            .spawn(move || {
                if let Err(e) = worker::run(server, sockets, limits, counts) {
                    tracing::error!("TURN worker {i} stopped: {e:#}");
                }
            })?;
    }
    Ok(Bound {
        udp: addr,
        tcp: addr,
        tls: tls_addr,
        handoff: handoff::Handoff::new(handoffs),
    })
}
