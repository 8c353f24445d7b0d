//! The STUN/TURN socket driver: owns the sockets and the clock, feeds the
//! sans-IO [`turn::Server`] and sends what it returns.
//!
//! One worker thread per core. Each runs a single-threaded runtime and owns
//! a core, a UDP and a TCP listener on `--turn-listen` and a TLS listener on
//! `--turns-listen` (SO_REUSEPORT: the kernel spreads clients over workers
//! by their address), the TURN connections the shared HTTPS port hands it
//! (`handoff.rs`), and the relay sockets of the allocations it made. A
//! packet never crosses threads and takes no lock; workers share only the
//! quota ledger (touched on Allocate), the nonce key, the per-address
//! connection counts (touched on connect and close) and the stats board
//! (touched once a second).
//!
//! Imports point one way:
//!
//! ```text
//! mod.rs (start) ─▶ runtime.rs (a worker thread and its tasks)
//!                     ─▶ transport/ (read loops: udp, relay, accept, stream)
//!                          ─▶ worker.rs (owns the core; one method per input)
//!                               ─▶ egress.rs (what leaves, GSO trains, stream queues)
//!                                    ─▶ socket/ (client socket, relay sockets, epoll, GSO)
//!                               ─▶ turn::Server
//! ```

mod egress;
pub mod handoff;
pub mod kernel;
mod runtime;
mod socket;
mod stats;
mod transport;
mod worker;

pub use stats::{StatsBoard, WorkerStats};
pub use transport::accept::HANDSHAKE_TIMEOUT as TLS_HANDSHAKE_TIMEOUT;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use socket2::{Protocol, Type};
use tokio::sync::mpsc;
use turn::Server;

use crate::per_address::ConnectionsPerIp;
use crate::socket_bind as bind;
use transport::accept::StreamRules;
use worker::Control;

/// What the driver does itself: its own limits (the core enforces the
/// protocol's) and the kernel fast path.
#[derive(Clone)]
pub struct DriverOptions {
    /// A TCP connection without an allocation that completes no message for
    /// this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Most TCP/TLS connections from one address (IPv6: one /64), across
    /// workers and listeners.
    pub max_tcp_per_ip: usize,
    /// The kernel fast path, when attached; the cores must then be made
    /// with `ServerConfig::offload` on.
    pub kernel: Option<Arc<kernel::KernelOffload>>,
}

/// Addresses the service listens on, and the ways in for connections
/// accepted elsewhere, for counters and for control.
pub struct Bound {
    /// UDP listener (`[::]:PORT` when dual stack; `0.0.0.0:PORT` if `[::]`
    /// was asked on a host without IPv6).
    pub udp: SocketAddr,
    /// TCP listener.
    pub tcp: SocketAddr,
    /// TURN-over-TLS listener, if on.
    pub tls: Option<SocketAddr>,
    /// Hands TURN connections found on the shared HTTPS port to a worker.
    pub handoff: handoff::Handoff,
    /// Every worker's counters, published about once a second.
    pub stats: Arc<StatsBoard>,
    control: Vec<mpsc::UnboundedSender<Control>>,
}

impl Bound {
    /// Tells every worker to refuse new allocations from now on: Allocate
    /// gets 300 Try Alternate to `alternate` when set, else 508.
    /// Established allocations keep relaying.
    pub fn drain(&self, alternate: Option<SocketAddr>) {
        for worker in &self.control {
            // A worker that stopped has nothing left to drain.
            let _ = worker.send(Control::Drain { alternate });
        }
    }
}

/// The TURN-over-TLS listener: where, and with which certificate.
pub struct TlsListen {
    /// `--turns-listen`.
    pub addr: SocketAddr,
    /// The certificate and configurations.
    pub tls: Arc<crate::tls::Tls>,
}

/// One UDP socket and one TCP listener per worker on the same address (all
/// SO_REUSEPORT). With port 0 the first UDP socket picks the port; if TCP
/// cannot have that port (another program's TCP holds it), another is
/// picked, a few times.
fn bind_pairs(
    listen: SocketAddr,
    workers: usize,
) -> anyhow::Result<Vec<(std::net::UdpSocket, std::net::TcpListener)>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_bind_pairs(listen, workers) {
            Err(e) if listen.port() == 0 && attempt < 8 && in_use(&e) => continue,
            r => return r,
        }
    }
}

fn in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    })
}

fn try_bind_pairs(
    listen: SocketAddr,
    workers: usize,
) -> anyhow::Result<Vec<(std::net::UdpSocket, std::net::TcpListener)>> {
    let mut sockets = Vec::with_capacity(workers);
    let mut addr = listen;
    for _ in 0..workers {
        let udp = bind::socket(addr, Type::DGRAM, Protocol::UDP, true)?;
        if addr.port() == 0 {
            // Port 0: the first socket picks, the others join it.
            addr = udp
                .local_addr()?
                .as_socket()
                .context("UDP listener has no address")?;
            // SO_REUSEPORT would join a TCP listener of another server of
            // ours on that port: check it is free with a plain bind first.
            drop(bind::socket(addr, Type::STREAM, Protocol::TCP, false)?);
        }
        let tcp = bind::socket(addr, Type::STREAM, Protocol::TCP, true)?;
        tcp.listen(1024)?;
        sockets.push((
            std::net::UdpSocket::from(udp),
            std::net::TcpListener::from(tcp),
        ));
    }
    Ok(sockets)
}

/// Binds the listeners of `workers` workers and starts them; `core(i)`
/// makes worker `i`'s core.
pub fn start(
    listen: SocketAddr,
    turns: Option<TlsListen>,
    workers: usize,
    core: impl Fn(usize) -> Server,
    limits: DriverOptions,
) -> anyhow::Result<Bound> {
    let workers = workers.max(1);
    let listen = bind::usable(listen, "STUN/TURN");
    if listen.port() != 0 {
        // SO_REUSEPORT would let us share a port another server holds;
        // refuse instead, as a plain bind would.
        drop(bind::socket(listen, Type::DGRAM, Protocol::UDP, false)?);
        drop(bind::socket(listen, Type::STREAM, Protocol::TCP, false)?);
    }
    let mut tls_listeners = Vec::with_capacity(workers);
    let mut tls_addr = None;
    if let Some(TlsListen { addr, tls }) = &turns {
        let mut addr = bind::usable(*addr, "TURN over TLS");
        let context = |addr| move || format!("binding TURN over TLS on {addr}");
        if addr.port() != 0 {
            drop(
                bind::socket(addr, Type::STREAM, Protocol::TCP, false)
                    .with_context(context(addr))?,
            );
        }
        for _ in 0..workers {
            let s = bind::socket(addr, Type::STREAM, Protocol::TCP, true)
                .with_context(context(addr))?;
            s.listen(1024)?;
            addr = s
                .local_addr()?
                .as_socket()
                .context("TLS listener has no address")?;
            tls_listeners.push(Some((std::net::TcpListener::from(s), tls.clone())));
        }
        tls_addr = Some(addr);
    }
    let sockets = bind_pairs(listen, workers)?;
    let addr = match sockets.first() {
        Some((udp, _)) => udp.local_addr()?,
        None => listen,
    };
    let rules = StreamRules {
        per_ip: ConnectionsPerIp::new(limits.max_tcp_per_ip),
        idle: limits.tcp_idle_timeout,
    };
    let board = StatsBoard::new(workers);
    let mut handoffs = Vec::with_capacity(workers);
    let mut controls = Vec::with_capacity(workers);
    for (index, (udp, tcp)) in sockets.into_iter().enumerate() {
        let (to_worker, handoff) = handoff::channel();
        handoffs.push(to_worker);
        let (control_tx, control) = mpsc::unbounded_channel();
        controls.push(control_tx);
        let setup = runtime::Setup {
            index,
            core: core(index),
            udp,
            tcp,
            tls: tls_listeners.get_mut(index).and_then(Option::take),
            handoff,
            control,
            rules: rules.clone(),
            board: board.clone(),
            kernel: limits.kernel.clone(),
        };
        std::thread::Builder::new()
            .name(format!("turn-worker-{index}"))
            .spawn(move || {
                if let Err(e) = runtime::run(setup) {
                    tracing::error!("TURN worker {index} stopped: {e:#}");
                }
            })?;
    }
    Ok(Bound {
        udp: addr,
        tcp: addr,
        tls: tls_addr,
        handoff: handoff::Handoff::new(handoffs),
        stats: board,
        control: controls,
    })
}
