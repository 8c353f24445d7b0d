//! The SFU's driver: one thread, with a tokio runtime of its own, owns the
//! SFU's UDP socket (`--sfu-listen`) and the sans-IO [`sfu::Sfu`], so every
//! room's participants live on that thread. The signaling hub's commands (a
//! participant joins, its SDP, its tile sizes, it leaves) arrive over a
//! channel ([`SfuServer::send`]); the SFU's SDP for a participant goes back
//! through the [`Reply`] callback, as the JSON of an
//! `RTCSessionDescriptionInit`, and so do its notices: who speaks now
//! (`{"type":"speaker","peer":…}`) and the publish cap
//! (`{"type":"publish-cap","bps":…}`).
//!
//! Datagrams are read with their destination IP (IP_PKTINFO through
//! quinn-udp), so on a wildcard socket the core knows which of the host's
//! addresses a participant used, and what the core sends leaves from it.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState};
use sfu::{Event, ParticipantId, Sfu, SfuConfig};
use socket2::{Protocol, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::socket_bind::{self, canonical, for_socket};
use crate::udp_gso::{GSO_MAX_SEGMENTS, Gso, Sink, Trains, segments, send_gso};

/// Largest read: one datagram, or a GRO train of them (up to 64 KiB) when
/// the sender coalesced them with GSO, as the TURN relay on this host does
/// for a relay-only participant's packets.
const MAX_READ: usize = 1 << 16;

/// How often the SFU's counters are published for the metrics.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How often they also go to the debug log (when they moved).
const STATS_LOG_EVERY: u32 = 5;

/// GSO trains open at once: one per subscriber a frame goes to.
const OPEN_TRAINS: usize = 256;

/// Most datagrams read in a row before timers and commands get a turn.
const RECV_BATCH: usize = 128;

/// Most timeout rounds run back to back before the socket gets a turn.
const TIMEOUT_ROUNDS: usize = 512;

/// Publishing the core's counters for the metrics, and logging them.
struct Report {
    due: Instant,
    ticks: u32,
    logged: sfu::SfuStats,
}

impl Report {
    fn new(now: Instant) -> Self {
        Report {
            due: now + STATS_INTERVAL,
            ticks: 0,
            logged: sfu::SfuStats::default(),
        }
    }

    fn publish(&mut self, now: Instant, stats: sfu::SfuStats, to: &Mutex<sfu::SfuStats>) {
        self.due = now + STATS_INTERVAL;
        *to.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        self.ticks = self.ticks.wrapping_add(1);
        if !self.ticks.is_multiple_of(STATS_LOG_EVERY) || stats == self.logged {
            return;
        }
        let last = self.logged;
        tracing::debug!(
            participants = stats.participants,
            rooms = stats.rooms,
            frames_in = stats.frames_in - last.frames_in,
            frames_out = stats.frames_out - last.frames_out,
            keyframe_requests = stats.keyframe_requests - last.keyframe_requests,
            unrouted = stats.unrouted - last.unrouted,
            rejected = stats.rejected - last.rejected,
            "SFU in the last {}s",
            STATS_INTERVAL.as_secs() * u64::from(STATS_LOG_EVERY)
        );
        self.logged = stats;
    }
}

/// What the hub asks of the SFU. Participants are named by their
/// signaling peer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `peer` takes part in `room`'s SFU session; `via` is the server
    /// address its signaling connection reached (its media is told to go to
    /// that address unless `--external-ip` or a specific `--sfu-listen`
    /// address says otherwise).
    Join {
        peer: String,
        room: String,
        via: Option<IpAddr>,
    },
    /// The participant's SDP offer or answer (`{"type":…,"sdp":…}`).
    Signal { peer: String, data: String },
    /// The participant shows `of`'s video in a tile `width` CSS px wide.
    View {
        peer: String,
        of: String,
        width: u32,
    },
    /// The participant is no longer in the SFU session.
    Leave { peer: String },
}

/// Where the SFU's SDP for a participant goes: `(peer, json)`.
pub type Reply = Box<dyn Fn(&str, String) + Send>;

/// The running SFU.
#[derive(Debug, Clone)]
pub struct SfuServer {
    commands: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    /// The core's counters, copied by its thread once a second.
    stats: Arc<Mutex<sfu::SfuStats>>,
}

impl SfuServer {
    /// Binds the SFU's UDP socket. This comes before the TURN cores are
    /// made: their peer policy lets relays reach this socket (see
    /// [`own_addresses`]).
    pub fn bind(listen: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
        let listen = socket_bind::usable(listen, "SFU");
        let socket = socket_bind::socket(listen, Type::DGRAM, Protocol::UDP, false)?;
        Ok(socket.into())
    }

    /// Starts the SFU's thread on `socket` (from [`SfuServer::bind`]).
    pub fn start(
        socket: std::net::UdpSocket,
        config: SfuConfig,
        external_ip: Option<IpAddr>,
        reply: Reply,
    ) -> anyhow::Result<SfuServer> {
        let local = socket.local_addr()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(sfu::SfuStats::default()));
        let driver = Driver {
            published: stats.clone(),
            trains: Trains::with_open(OPEN_TRAINS),
            sfu: Sfu::new(config),
            local,
            external_ip,
            ids: HashMap::new(),
            names: HashMap::new(),
            joined: HashMap::new(),
            next_id: 1,
            reply,
        };
        std::thread::Builder::new()
            .name("sfu".into())
            .spawn(move || {
                if let Err(e) = driver.run(socket, rx) {
                    tracing::error!("SFU stopped: {e}");
                }
            })?;
        Ok(SfuServer {
            commands,
            local,
            stats,
        })
    }

    /// The core's counters as of the last second.
    pub fn stats(&self) -> sfu::SfuStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a command to the SFU's thread.
    pub fn send(&self, command: Command) {
        // Only fails once the thread has ended (logged there).
        let _ = self.commands.send(command);
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// The addresses at which the SFU bound to `local` can be reached from this
/// host, so the TURN relay may forward to them (a relay-only browser's path
/// to the SFU) and to nothing else on the host: `local` itself, or on a
/// wildcard socket every interface address of its family (IPv4 too on a
/// dual-stack `[::]`), and `external_ip`. Interfaces are read once, at start.
pub fn own_addresses(local: SocketAddr, external_ip: Option<IpAddr>) -> Vec<SocketAddr> {
    let port = local.port();
    let mut ips = Vec::new();
    if local.ip().is_unspecified() {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => ips.extend(
                interfaces
                    .iter()
                    .map(|i| i.ip())
                    .filter(|ip| local.is_ipv6() || ip.is_ipv4()),
            ),
            Err(e) => tracing::warn!(
                "cannot list this host's addresses ({e}): relay-only browsers reach the SFU only on public addresses"
            ),
        }
    } else {
        ips.push(local.ip());
    }
    ips.extend(external_ip);
    let mut out: Vec<SocketAddr> = ips
        .into_iter()
        .map(|ip| canonical(SocketAddr::new(ip, port)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The SFU's thread: the core, its socket, and peer ids ⇄ participants.
struct Driver {
    sfu: Sfu,
    local: SocketAddr,
    external_ip: Option<IpAddr>,
    ids: HashMap<String, ParticipantId>,
    names: HashMap<ParticipantId, String>,
    /// Every peer the hub has joined, with its room and signaling address:
    /// a participant whose transport ended joins again with its next offer.
    joined: HashMap<String, (String, Option<IpAddr>)>,
    next_id: u64,
    reply: Reply,
    published: Arc<Mutex<sfu::SfuStats>>,
    /// What the core sends, as GSO trains: a subscriber's video frame is
    /// usually several packets to one address in a row.
    trains: Trains,
}

/// Where the SFU's trains leave from: its one socket, from the address
/// the participant used (`from`) when it is a wildcard socket.
struct SfuSink<'a> {
    state: &'a UdpSocketState,
    socket: &'a AsyncFd<std::net::UdpSocket>,
    local: SocketAddr,
}

impl SfuSink<'_> {
    fn send_one(&self, to: SocketAddr, src_ip: Option<IpAddr>, contents: &[u8]) -> u64 {
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: None,
            src_ip,
        };
        u64::from(self.state.try_send(self.socket.into(), &transmit).is_err())
    }
}

impl Sink for SfuSink<'_> {
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64 {
        let src_ip = self.local.ip().is_unspecified().then_some(from.ip());
        let to = for_socket(self.local, to);
        if contents.len() > segment {
            match send_gso(
                self.state,
                self.socket.into(),
                to,
                src_ip,
                contents,
                segment,
            ) {
                Gso::Sent => return 0,
                Gso::Dropped => return segments(contents.len(), segment),
                Gso::Refused => {}
            }
        }
        contents
            .chunks(segment.max(1))
            .map(|d| self.send_one(to, src_ip, d))
            .sum()
    }

    fn max_segments(&self) -> usize {
        self.state.max_gso_segments().min(GSO_MAX_SEGMENTS)
    }
}

/// The `RTCSessionDescriptionInit` JSON both ways.
#[derive(serde::Deserialize, serde::Serialize)]
struct Sdp {
    #[serde(rename = "type")]
    kind: String,
    sdp: String,
}

impl Driver {
    fn run(
        mut self,
        socket: std::net::UdpSocket,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let state = UdpSocketState::new((&socket).into())?;
            // See ClientSocket::new: a std socket owns its descriptor.
            #[allow(deprecated)]
            let socket = AsyncFd::with_interest(socket, Interest::READABLE)?;
            let mut storage = vec![0u8; MAX_READ];
            let mut meta = [RecvMeta::default()];
            let mut report = Report::new(Instant::now());
            loop {
                let wake = self
                    .sfu
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
                    .min(report.due);
                tokio::select! {
                    ready = socket.readable() => {
                        let Ok(mut guard) = ready else { continue };
                        // A bounded batch: under a flood the socket never
                        // runs dry, and str0m's timers (RTCP, feedback,
                        // pacing) and the commands must still get their turn.
                        for _ in 0..RECV_BATCH {
                            let mut bufs = [IoSliceMut::new(&mut storage)];
                            match state.recv((&socket).into(), &mut bufs, &mut meta) {
                                Ok(_) => {
                                    let [m] = meta;
                                    let from = canonical(m.addr);
                                    let to = canonical(SocketAddr::new(m.dst_ip.unwrap_or(self.local.ip()), self.local.port()));
                                    let data = storage.get(..m.len).unwrap_or(&[]);
                                    for datagram in data.chunks(m.stride.max(1)) {
                                        self.sfu.handle_datagram(Instant::now(), from, to, datagram);
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    guard.clear_ready();
                                    break;
                                }
                                Err(_) => break,
                            }
                            self.collect(&state, &socket);
                        }
                    }
                    command = commands.recv() => {
                        let Some(command) = command else { return Ok(()) };
                        self.command(command);
                    }
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
                // str0m's pacer sends one packet per timeout and asks to be
                // called again a microsecond later: run the timeouts due
                // now again and again (a bounded number of rounds) rather
                // than one per tokio timer tick, which rounds up to 1 ms
                // and let forwarded video starve behind audio.
                for _ in 0..TIMEOUT_ROUNDS {
                    let now = Instant::now();
                    if self.sfu.poll_timeout().is_none_or(|t| t > now) {
                        break;
                    }
                    self.sfu.handle_timeout(now);
                    self.collect(&state, &socket);
                }
                let now = Instant::now();
                if now >= report.due {
                    report.publish(now, self.sfu.stats(), &self.published);
                }
                self.flush(&state, &socket);
            }
        })
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join { peer, room, via } => {
                self.joined.insert(peer.clone(), (room, via));
                self.join(now, &peer);
            }
            Command::Signal { peer, data } => {
                if !self.ids.contains_key(&peer) {
                    self.join(now, &peer);
                }
                let Some(&id) = self.ids.get(&peer) else {
                    return;
                };
                let result = match serde_json::from_str::<Sdp>(&data) {
                    Ok(s) if s.kind == "offer" => self.sfu.handle_offer(now, id, &s.sdp),
                    Ok(s) if s.kind == "answer" => self.sfu.handle_answer(now, id, &s.sdp),
                    Ok(s) => Err(sfu::SfuError::Sdp(format!("type {:?}", s.kind))),
                    Err(e) => Err(sfu::SfuError::Sdp(e.to_string())),
                };
                if let Err(e) = result {
                    tracing::debug!("SFU: {peer}'s SDP refused: {e}");
                }
            }
            Command::View { peer, of, width } => {
                if let (Some(&id), Some(&of)) = (self.ids.get(&peer), self.ids.get(&of)) {
                    self.sfu.set_view(id, of, width);
                }
            }
            Command::Leave { peer } => {
                self.joined.remove(&peer);
                if let Some(id) = self.ids.remove(&peer) {
                    self.names.remove(&id);
                    self.sfu.leave(id);
                }
            }
        }
    }

    /// Makes `peer` (joined by the hub) a participant, if it is not one.
    fn join(&mut self, now: Instant, peer: &str) {
        let Some((room, via)) = self.joined.get(peer) else {
            return;
        };
        if self.ids.contains_key(peer) {
            return;
        }
        let bound = Some(self.local.ip()).filter(|ip| !ip.is_unspecified());
        let Some(ip) = self.external_ip.or(bound).or(*via) else {
            tracing::warn!(
                "SFU: no address to give {peer} (its signaling host is not an IP address \
                 and did not resolve); set --external-ip"
            );
            return;
        };
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let candidate = SocketAddr::new(ip, self.local.port());
        match self.sfu.join(now, id, room, peer, &[candidate]) {
            Ok(()) => {
                self.ids.insert(peer.to_owned(), id);
                self.names.insert(id, peer.to_owned());
            }
            Err(e) => tracing::debug!("SFU: {peer} not joined: {e}"),
        }
    }

    /// Sends what the core queued, and what [`Driver::collect`] queued.
    fn flush(&mut self, state: &UdpSocketState, socket: &AsyncFd<std::net::UdpSocket>) {
        self.collect(state, socket);
        // A full buffer loses the datagrams, as UDP may.
        self.trains.flush(&self.sink(state, socket));
    }

    fn sink<'a>(
        &self,
        state: &'a UdpSocketState,
        socket: &'a AsyncFd<std::net::UdpSocket>,
    ) -> SfuSink<'a> {
        SfuSink {
            state,
            socket,
            local: self.local,
        }
    }

    /// Queues what the core sends as trains (those that fill up leave at
    /// once) and hands its events on. str0m's pacer releases a
    /// subscriber's packets one per timeout round, so a frame's packets to
    /// one subscriber join one train only across rounds: the driver sends
    /// the trains once per loop turn.
    fn collect(&mut self, state: &UdpSocketState, socket: &AsyncFd<std::net::UdpSocket>) {
        let sink = self.sink(state, socket);
        while let Some(t) = self.sfu.poll_transmit() {
            self.trains
                .push(&sink, t.source, t.destination, &t.contents);
        }
        while let Some(event) = self.sfu.poll_event() {
            match event {
                Event::Answer { to, sdp } => self.reply(to, "answer", sdp),
                Event::Offer { to, sdp } => self.reply(to, "offer", sdp),
                Event::Connected(id) => tracing::debug!("SFU: {:?} connected", self.names.get(&id)),
                Event::Speaker { to, speaker } => self.speaker(to, speaker),
                Event::PublishCap { to, bps } => {
                    self.notify(to, serde_json::json!({ "type": "publish-cap", "bps": bps }))
                }
                Event::Gone(id) => {
                    tracing::debug!("SFU: {:?}'s transport ended", self.names.get(&id));
                    if let Some(name) = self.names.remove(&id) {
                        self.ids.remove(&name);
                    }
                }
            }
        }
    }

    /// Tells `to` who speaks now: `{"type":"speaker","peer":…}` on the
    /// same `sfu` message as the SDP (docs/protocol.md).
    fn speaker(&self, to: ParticipantId, speaker: ParticipantId) {
        if let Some(speaker) = self.names.get(&speaker) {
            self.notify(
                to,
                serde_json::json!({ "type": "speaker", "peer": speaker }),
            );
        }
    }

    /// A notice (not an SDP) for `to`, on the same `sfu` message.
    fn notify(&self, to: ParticipantId, notice: serde_json::Value) {
        if let Some(peer) = self.names.get(&to) {
            (self.reply)(peer, notice.to_string());
        }
    }

    fn reply(&self, to: ParticipantId, kind: &str, sdp: String) {
        let Some(peer) = self.names.get(&to) else {
            return;
        };
        let sdp = Sdp {
            kind: kind.to_owned(),
            sdp,
        };
        if let Ok(json) = serde_json::to_string(&sdp) {
            (self.reply)(peer, json);
        }
    }
}
