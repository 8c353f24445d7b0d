//! The tokio driver of a [`Session`]: host UDP sockets (one per local
//! address), TCP streams to TURN servers, the signaling WebSocket
//! (`ws://`, or `wss://` with rustls), name resolution and the clock. The
//! application on top (send, receive, chat, pipe) is an [`App`]: it sees
//! every event and writes to the data channels in [`App::poll`].

mod sockets;
pub mod target;
pub mod tls;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use signal::ClientMessage;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{Channel, Event, Session, SessionConfig};
pub use sockets::NetIn;
pub use target::RoomTarget;
pub use tls::Trust;

/// How long to wait for the signaling server's `joined`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Signaling heartbeat (the server drops silent connections).
const PING_EVERY: Duration = Duration::from_secs(20);

/// What the application says after each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Finished: leave the room and return `Ok`.
    Done,
    /// Failed: leave the room and return this error.
    Fail(String),
}

/// The application on top of a session.
pub trait App {
    /// Every session event (the driver has acted on it first).
    fn on_event(&mut self, now: Instant, session: &mut Session, event: &Event) -> Flow;
    /// After every turn of the loop: write what can be written now.
    fn poll(&mut self, _now: Instant, _session: &mut Session) -> Flow {
        Flow::Continue
    }
    /// Bytes from the application's own input; `None` at its end.
    fn on_input(&mut self, _now: Instant, _session: &mut Session, _bytes: Option<Vec<u8>>) -> Flow {
        Flow::Continue
    }
    /// The earliest time [`App::poll`] wants to run again without input.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Everything the driver needs to join.
#[derive(Debug, Clone)]
pub struct Options {
    /// The room.
    pub target: RoomTarget,
    /// Display name.
    pub name: String,
    /// Room password.
    pub password: Option<String>,
    /// Relay-only.
    pub relay_only: bool,
    /// Channels to open.
    pub channels: Vec<Channel>,
    /// Pipe unordered and unreliable.
    pub unreliable_pipe: bool,
    /// How to trust a `wss://` server.
    pub trust: Trust,
    /// Which TURN transports to use (`None`: every one offered).
    pub turn_transport: Option<crate::ice_servers::UrlKind>,
    /// Give up when no peer link is up this long after the first peer
    /// appeared (str0m itself never fails).
    pub connect_timeout: Duration,
}

/// Why the peer stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The signaling server could not be reached or refused the upgrade.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The WebSocket URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server refused the join (bad token, full room, wrong password…).
    #[error("the server refused to join the room: {code}: {message}")]
    Refused {
        /// Its code.
        code: String,
        /// Its message.
        message: String,
    },
    /// No `joined` in time.
    #[error("no answer from the signaling server within {0:?}")]
    JoinTimeout(Duration),
    /// The signaling connection ended.
    #[error("the signaling connection closed")]
    SignalingClosed,
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Local sockets.
    #[error("local sockets: {0}")]
    Io(#[from] std::io::Error),
    /// The application failed.
    #[error("{0}")]
    App(String),
}

/// Joins, runs `app` until it is done, leaves.
pub async fn run<A: App + ?Sized>(
    opts: Options,
    app: &mut A,
    mut input: Option<mpsc::Receiver<Vec<u8>>>,
) -> Result<(), DriverError> {
    let url = opts.target.ws_url.to_string();
    let mut ws = connect(&opts)
        .await
        .map_err(|reason| DriverError::Unreachable {
            url: url.clone(),
            reason,
        })?;
    let (net_tx, mut net_rx) = mpsc::channel::<NetIn>(4096);
    let mut net = sockets::Sockets::bind(net_tx).await?;
    let mut session = Session::new(
        SessionConfig {
            room: opts.target.room.clone(),
            name: opts.name.clone(),
            password: opts.password.clone(),
            token: opts.target.token.clone(),
            relay_only: opts.relay_only || opts.target.relay,
            channels: opts.channels.clone(),
            unreliable_pipe: opts.unreliable_pipe,
        },
        rand::random(),
    );
    let start = Instant::now();
    for addr in net.hosts() {
        session.add_host(start, addr);
    }
    let mut joined = false;
    let mut next_ping = start + PING_EVERY;
    let mut waiting_since: Option<Instant> = None;
    let result = loop {
        let now = Instant::now();
        // Flush everything the session and the app produced.
        let mut flow = Flow::Continue;
        loop {
            let mut progressed = false;
            while let Some(msg) = session.poll_signal() {
                progressed = true;
                let text = serde_json::to_string(&msg).unwrap_or_default();
                if ws.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            while let Some(t) = session.poll_transmit() {
                progressed = true;
                net.send(t, now).await;
            }
            while let Some(ev) = session.poll_event() {
                progressed = true;
                match &ev {
                    Event::IceServers(urls) => {
                        let wanted = |k: crate::ice_servers::UrlKind| match opts.turn_transport {
                            Some(only) => k == crate::ice_servers::UrlKind::Stun || k == only,
                            None => true,
                        };
                        for u in urls.iter().filter(|u| wanted(u.kind)) {
                            for addr in resolve(&u.host, u.port).await {
                                session.add_server(now, u, addr);
                            }
                        }
                    }
                    Event::Joined { .. } => joined = true,
                    Event::Refused { code, message } if !joined => {
                        flow = Flow::Fail(
                            DriverError::Refused {
                                code: code.clone(),
                                message: message.clone(),
                            }
                            .to_string(),
                        );
                    }
                    Event::Refused { code, message } => tracing::warn!("server: {code}: {message}"),
                    Event::ServerFailed { server, reason } => tracing::warn!(%server, "{reason}"),
                    Event::Reconnect => {
                        tracing::warn!("the server is restarting; calls go on until it exits")
                    }
                    _ => {}
                }
                if flow == Flow::Continue {
                    flow = app.on_event(now, &mut session, &ev);
                }
            }
            if flow == Flow::Continue {
                flow = app.poll(now, &mut session);
            }
            if flow != Flow::Continue || !progressed {
                break;
            }
        }
        // No link up for too long, while someone is there.
        let any_up = session.members().any(|(_, _, up)| up);
        let anyone = session.members().next().is_some();
        waiting_since = match (anyone && !any_up, waiting_since) {
            (true, None) => Some(now),
            (true, w) => w,
            (false, _) => None,
        };
        if let Some(w) = waiting_since {
            if now.duration_since(w) > opts.connect_timeout && flow == Flow::Continue {
                flow = Flow::Fail(format!(
                    "no connection to the other peers within {:?} (try --relay, or check the TURN server)",
                    opts.connect_timeout
                ));
            }
        }
        if !joined && now.duration_since(start) > JOIN_TIMEOUT && flow == Flow::Continue {
            break Err(DriverError::JoinTimeout(JOIN_TIMEOUT));
        }
        match flow {
            Flow::Continue => {}
            Flow::Done => {
                // What the app wrote last (an `ack`, a chat line) still has
                // to leave: keep the connections running a moment.
                linger(&mut session, &mut net, &mut net_rx, now).await;
                break Ok(());
            }
            Flow::Fail(e) => break Err(DriverError::App(e)),
        }
        let mut deadline = session
            .poll_timeout()
            .unwrap_or(now + crate::IDLE)
            .min(now + crate::IDLE);
        deadline = deadline.min(next_ping);
        if let Some(t) = app.poll_timeout() {
            deadline = deadline.min(t);
        }
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => match signal::parse_server_message(text.as_str()) {
                    Ok(m) => session.handle_signal(Instant::now(), m),
                    Err(e) => tracing::warn!("unreadable signaling message: {e}"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Err(DriverError::SignalingClosed),
                Some(Ok(_)) => {}
            },
            Some(n) = net_rx.recv() => {
                let now = Instant::now();
                handle_net(&mut session, &mut net, now, n);
                // Take whatever else arrived without waiting.
                for _ in 0..256 {
                    match net_rx.try_recv() {
                        Ok(n) => handle_net(&mut session, &mut net, now, n),
                        Err(_) => break,
                    }
                }
            },
            bytes = recv_input(&mut input) => {
                if bytes.is_none() {
                    input = None;
                }
                let flow = app.on_input(Instant::now(), &mut session, bytes);
                match flow {
                    Flow::Continue => {}
                    Flow::Done => break Ok(()),
                    Flow::Fail(e) => break Err(DriverError::App(e)),
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if now >= next_ping {
                    session.ping();
                    next_ping = now + PING_EVERY;
                }
                session.handle_timeout(now);
            },
        }
    };
    // Say goodbye; the others see `peer-left` at once.
    let leave = serde_json::to_string(&ClientMessage::Leave).unwrap_or_default();
    let _ = ws.send(Message::text(leave)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    drop(net);
    result
}

/// How long the driver keeps the connections going after the app is done:
/// at least the first, while data channels still hold unsent bytes up to
/// the second.
const LINGER: Duration = Duration::from_millis(700);
const LINGER_MAX: Duration = Duration::from_secs(5);

async fn linger(
    session: &mut Session,
    net: &mut sockets::Sockets,
    net_rx: &mut mpsc::Receiver<NetIn>,
    start: Instant,
) {
    loop {
        let now = Instant::now();
        while let Some(t) = session.poll_transmit() {
            net.send(t, now).await;
        }
        let waited = now.duration_since(start);
        if waited >= LINGER_MAX || waited >= LINGER && session.buffered_total() == 0 {
            return;
        }
        let until = now + Duration::from_millis(50);
        let deadline = session.poll_timeout().unwrap_or(until).min(until);
        tokio::select! {
            Some(n) = net_rx.recv() => handle_net(session, net, Instant::now(), n),
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(Instant::now()),
        }
    }
}

fn handle_net(session: &mut Session, net: &mut sockets::Sockets, now: Instant, n: NetIn) {
    match n {
        NetIn::Udp { local, from, data } => session.handle_udp(now, local, from, &data),
        NetIn::Stream { server, data } => session.handle_stream(now, server, &data),
        NetIn::StreamClosed { server } => {
            net.forget_stream(server);
            session.stream_closed(now, server);
        }
    }
}

async fn recv_input(input: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        tracing::warn!(host, "cannot resolve ICE server");
        return Vec::new();
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    // One address per family.
    let v4 = addrs.iter().find(|a| a.is_ipv4()).copied();
    let v6 = addrs.iter().find(|a| a.is_ipv6()).copied();
    v4.into_iter().chain(v6).collect()
}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn sockets::Io>>;

async fn connect(opts: &Options) -> Result<Ws, String> {
    let url = &opts.target.ws_url;
    let host = url.host_str().ok_or("no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = tokio::time::timeout(
        JOIN_TIMEOUT,
        tokio::net::TcpStream::connect((bare.as_str(), port)),
    )
    .await
    .map_err(|_| "connection timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn sockets::Io> = if url.scheme() == "wss" {
        let config = tls::client_config(&opts.trust).map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from(bare.clone()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (ws, _) = tokio_tungstenite::client_async(url.as_str(), io)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}
