//! The STUN/TURN socket driver: owns the sockets and the clock, feeds the
//! sans-IO [`turn::Server`] and sends what it returns.
//!
//! One UDP listener and one TCP listener on `--turn-listen`, one UDP socket
//! per relay address. The core sits behind one mutex, taken once per batch
//! of received datagrams; relayed data is sent while the lock is held with
//! non-blocking sends (a full socket buffer drops the datagram, as UDP may).

mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use turn::{Event, FiveTuple, Server, Transport};

use udp::Listener;

/// A bound relay socket and the task reading it.
struct RelaySocket {
    socket: Arc<UdpSocket>,
    task: AbortHandle,
}

/// Everything the core's outputs are sent through.
struct Shared {
    core: Server,
    relays: HashMap<SocketAddr, RelaySocket>,
    tcp: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
}

/// Limits the driver enforces itself (the core enforces the protocol's).
#[derive(Debug, Clone, Copy)]
pub struct DriverLimits {
    /// A TCP connection without an allocation that completes no message for
    /// this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections from one IP.
    pub max_tcp_per_ip: usize,
}

/// The running STUN/TURN service.
pub struct TurnService {
    shared: Mutex<Shared>,
    listener: Listener,
    limits: DriverLimits,
    tcp_per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// Addresses the service listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// UDP listener.
    pub udp: SocketAddr,
    /// TCP listener.
    pub tcp: SocketAddr,
}

impl TurnService {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock would be a bug; keep serving.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends queued responses and acts on events. Called with the lock held.
    fn flush(&self, shared: &mut Shared) {
        while let Some(t) = shared.core.poll_transmit() {
            self.send_to_client(&shared.tcp, t.to, &t.payload);
        }
        while let Some(Event::RelayClosed(addr)) = shared.core.poll_event() {
            if let Some(r) = shared.relays.remove(&addr) {
                r.task.abort();
            }
        }
    }

    fn send_to_client(
        &self,
        tcp: &HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
        to: FiveTuple,
        payload: &[u8],
    ) {
        match to.transport {
            Transport::Udp => self.listener.send(to.client, to.server.ip(), payload),
            Transport::Tcp | Transport::Tls => {
                if let Some(tx) = tcp.get(&to) {
                    // A client that does not read loses data, not the server memory.
                    let _ = tx.try_send(payload.to_vec());
                }
            }
        }
    }

    /// Handles one packet from a client under the lock.
    fn client_packet(
        self: &Arc<Self>,
        shared: &mut Shared,
        now: Instant,
        from: FiveTuple,
        p: &[u8],
    ) {
        let Shared { core, relays, .. } = shared;
        let mut binder = udp::RelayBinder {
            service: self,
            relays,
        };
        if let Some(send) = core.handle_client(now, from, p, &mut binder)
            && let Some(r) = relays.get(&send.relay)
        {
            udp::send_from_relay(&r.socket, send.peer, send.payload);
        }
    }
}

/// Binds the listeners and starts serving.
pub async fn start(
    listen: SocketAddr,
    core: Server,
    limits: DriverLimits,
) -> anyhow::Result<(Arc<TurnService>, Bound)> {
    let listener = Listener::bind(listen)?;
    let udp_addr = listener.local_addr()?;
    let tcp = tokio::net::TcpListener::bind(SocketAddr::new(listen.ip(), udp_addr.port())).await?;
    let tcp_addr = tcp.local_addr()?;
    let service = Arc::new(TurnService {
        shared: Mutex::new(Shared {
            core,
            relays: HashMap::new(),
            tcp: HashMap::new(),
        }),
        listener,
        limits,
        tcp_per_ip: Mutex::new(HashMap::new()),
    });
    tokio::spawn(udp::serve(service.clone()));
    tokio::spawn(tcp::serve(service.clone(), tcp));
    tokio::spawn(timers(service.clone()));
    Ok((
        service,
        Bound {
            udp: udp_addr,
            tcp: tcp_addr,
        },
    ))
}

/// Drives the core's expiry timers.
async fn timers(service: Arc<TurnService>) {
    loop {
        let now = Instant::now();
        let next = service.lock().core.poll_timeout();
        let wake = next.map_or(now + Duration::from_secs(1), |t| {
            t.min(now + Duration::from_secs(1))
        });
        tokio::time::sleep_until(wake.into()).await;
        let mut shared = service.lock();
        shared.core.handle_timeout(Instant::now());
        service.flush(&mut shared);
    }
}
