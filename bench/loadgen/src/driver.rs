//! The sans-IO TURN client core (`turn::client`) on one connected tokio UDP
//! socket, with real time: sends what the core queues, feeds it what the
//! server answers, and fires its timers (RFC 8489 §6.2 retransmissions,
//! RFC 8656 §7.3 refreshes).

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use stun::Method;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use turn::Transport;
use turn::client::{Client, ClientConfig, ClientEvent};

use crate::Credentials;

/// Longest one request (with its 401 retry and retransmissions) may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Port 0 on the loopback address of `server`'s family.
pub fn loopback_of(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    }
}

/// Socket buffer size asked for on every source socket (the kernel caps it
/// at `net.core.rmem_max`/`wmem_max`): answers should not be lost in the
/// load generator's own receive queue while it is busy sending.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP source socket on loopback, connected to `server`: on `port` if
/// given (0 = any), with large buffers.
pub fn source_socket(server: SocketAddr, port: u16) -> std::io::Result<UdpSocket> {
    let mut local = loopback_of(server);
    local.set_port(port);
    let s = std::net::UdpSocket::bind(local)?;
    let r = socket2::SockRef::from(&s);
    // Best effort: the default buffers still work, just lose more under load.
    let _ = r.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = r.set_send_buffer_size(SOCKET_BUFFER);
    s.connect(server)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Hands out source ports from a range in turn, so that no 5-tuple is used
/// twice in a run: a server may keep a deleted allocation's 5-tuple for a
/// while and answer a new Allocate on it with 437 (coturn does).
#[derive(Debug)]
pub struct PortCycle {
    next: std::sync::atomic::AtomicU32,
    low: u16,
    span: u32,
}

impl PortCycle {
    /// Ports `low..=high`.
    pub fn new(low: u16, high: u16) -> Self {
        PortCycle {
            next: std::sync::atomic::AtomicU32::new(0),
            low,
            span: u32::from(high.saturating_sub(low)) + 1,
        }
    }

    /// A socket on the next free port of the range.
    fn socket(&self, server: SocketAddr) -> anyhow::Result<UdpSocket> {
        for _ in 0..1000 {
            let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.span;
            let port = u16::try_from(u32::from(self.low) + k).unwrap_or(self.low);
            match source_socket(server, port) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e).context("binding a source socket"),
            }
        }
        bail!("no free source port in the range")
    }
}

/// A fresh seed for a client's transaction ids.
fn seed(n: u64) -> [u8; 32] {
    let mut s: [u8; 32] = rand::random();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (b, x) in s
        .iter_mut()
        .zip(nanos.to_be_bytes().iter().chain(&n.to_be_bytes()))
    {
        *b ^= x;
    }
    s
}

/// One TURN client on its own source socket.
pub struct Session {
    socket: UdpSocket,
    /// The client core.
    pub client: Client,
    buf: Vec<u8>,
}

/// Why [`Session::run_until`] returned without the awaited event.
#[derive(Debug)]
pub enum Stop {
    /// The stop signal fired.
    Signalled,
}

impl Session {
    /// A client of `credentials` on a new socket connected to `server`.
    /// `ports` picks the source port (else the kernel does).
    pub async fn connect(
        server: SocketAddr,
        credentials: &Credentials,
        n: u64,
        ports: Option<&PortCycle>,
    ) -> anyhow::Result<Self> {
        let socket = match ports {
            Some(p) => p.socket(server)?,
            None => source_socket(server, 0).context("binding a source socket")?,
        };
        let mut config = ClientConfig::new(
            server,
            credentials.user.clone(),
            credentials.password.clone(),
            Transport::Udp,
        );
        config.software = Some("switchboard-loadgen".into());
        Ok(Session {
            socket,
            client: Client::new(config, Instant::now(), seed(n)),
            buf: vec![0u8; 2048],
        })
    }

    /// Drives the client until `want` accepts an event (its value is
    /// returned), a failure event, `deadline`, or a change on `stop`.
    pub async fn run_until<T>(
        &mut self,
        deadline: Instant,
        stop: Option<&mut watch::Receiver<bool>>,
        mut want: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> anyhow::Result<Result<T, Stop>> {
        let mut stop = stop;
        loop {
            while let Some(bytes) = self.client.poll_transmit() {
                // A lost send is retransmitted by the core.
                let _ = self.socket.send(&bytes).await;
            }
            while let Some(ev) = self.client.poll_event() {
                if let Some(v) = want(&ev) {
                    return Ok(Ok(v));
                }
                match ev {
                    ClientEvent::Failed { method, code, .. } => {
                        bail!("{} failed with {code}", method_name(method))
                    }
                    ClientEvent::TimedOut { method } => {
                        bail!("{} timed out", method_name(method))
                    }
                    ClientEvent::Expired => bail!("allocation expired"),
                    _ => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("no answer in time");
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
                continue;
            }
            let wake = self
                .client
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            let stopped = async {
                match stop.as_deref_mut() {
                    Some(rx) => {
                        if *rx.borrow_and_update() {
                            return;
                        }
                        // A dropped sender also means stop.
                        let _ = rx.changed().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = self.socket.recv(&mut self.buf) => {
                    // Errors (ICMP unreachable) are left to the core's retransmissions.
                    if let Ok(n) = r
                        && let Some(bytes) = self.buf.get(..n)
                    {
                        let _ = self.client.handle_input(Instant::now(), bytes);
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
                () = stopped => return Ok(Err(Stop::Signalled)),
            }
        }
    }

    /// Allocates (answering the 401 itself) and waits for the answer.
    pub async fn allocate(&mut self) -> anyhow::Result<()> {
        self.client.allocate(Instant::now())?;
        let deadline = Instant::now() + STEP;
        match self
            .run_until(deadline, None, |ev| {
                matches!(ev, ClientEvent::Allocated { .. }).then_some(())
            })
            .await?
        {
            Ok(()) => Ok(()),
            Err(Stop::Signalled) => bail!("stopped"),
        }
    }

    /// Deletes the allocation (Refresh with LIFETIME 0) and waits for the answer.
    pub async fn release(&mut self, deadline: Instant) -> anyhow::Result<()> {
        self.client.refresh(Instant::now(), Duration::ZERO)?;
        match self
            .run_until(deadline, None, |ev| {
                matches!(ev, ClientEvent::Released).then_some(())
            })
            .await?
        {
            Ok(()) => Ok(()),
            Err(Stop::Signalled) => bail!("stopped"),
        }
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::ALLOCATE => "Allocate",
        Method::REFRESH => "Refresh",
        Method::BINDING => "Binding",
        Method::CREATE_PERMISSION => "CreatePermission",
        Method::CHANNEL_BIND => "ChannelBind",
        _ => "request",
    }
}
