//! Two sessions wired together in memory — a stand-in hub relaying their
//! signaling, a perfect network carrying their datagrams, virtual time —
//! to check the core end to end without sockets: the newcomer offers, both
//! sides open the app's channels, chat crosses; relay-only offers no host
//! candidate; a link that never connects restarts ICE and finally gives up
//! (str0m's DTLS handshake times out first, which ends its `Rtc`: the link
//! reports `Failed` then, after the first restart).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use signal::{ClientMessage, PeerId, PeerInfo, ServerMessage};

use super::*;
use crate::{CONNECT_TIMEOUT, MAX_RESTARTS};

fn config(name: &str, relay_only: bool) -> SessionConfig {
    SessionConfig {
        room: "r".into(),
        name: name.into(),
        password: None,
        token: None,
        relay_only,
        channels: vec![Channel::Chat, Channel::File],
        unreliable_pipe: false,
    }
}

struct Net {
    now: Instant,
    a: Session,
    b: Session,
    a_host: SocketAddr,
    b_host: SocketAddr,
    events: Vec<(char, Event)>,
    /// Drop every datagram (a network that lets nothing through).
    blackhole: bool,
}

impl Net {
    fn new(relay_only: bool) -> Net {
        let now = Instant::now();
        let mut a = Session::new(config("Ann", relay_only), [1; 32]);
        let mut b = Session::new(config("Bob", relay_only), [2; 32]);
        let a_host: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b_host: SocketAddr = "10.0.0.2:2000".parse().unwrap();
        a.add_host(now, a_host);
        b.add_host(now, b_host);
        // Drop the joins; the hub's answers are made up below.
        while a.poll_signal().is_some() {}
        while b.poll_signal().is_some() {}
        let info = |id: &str, name: &str| PeerInfo::new(PeerId(id.into()), name);
        b.handle_signal(now, joined("p2", vec![]));
        a.handle_signal(now, joined("p1", vec![info("p2", "Bob")]));
        b.handle_signal(
            now,
            ServerMessage::PeerJoined {
                peer: info("p1", "Ann"),
            },
        );
        Net {
            now,
            a,
            b,
            a_host,
            b_host,
            events: Vec::new(),
            blackhole: false,
        }
    }

    /// Moves signaling and datagrams until both sides are quiet, then
    /// advances time to the next timer; `steps` rounds.
    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            let mut moved = true;
            while moved {
                moved = false;
                let mut to_b = VecDeque::new();
                let mut to_a = VecDeque::new();
                while let Some(m) = self.a.poll_signal() {
                    to_b.extend(relay(m, "p1"));
                }
                while let Some(m) = self.b.poll_signal() {
                    to_a.extend(relay(m, "p2"));
                }
                moved |= !to_a.is_empty() || !to_b.is_empty();
                for m in to_b {
                    self.b.handle_signal(self.now, m);
                }
                for m in to_a {
                    self.a.handle_signal(self.now, m);
                }
                while let Some(t) = self.a.poll_transmit() {
                    moved = true;
                    if let Transmit::Udp { from, to, data } = t {
                        if to == self.b_host && !self.blackhole {
                            self.b.handle_udp(self.now, to, from, &data);
                        }
                    }
                }
                while let Some(t) = self.b.poll_transmit() {
                    moved = true;
                    if let Transmit::Udp { from, to, data } = t {
                        if to == self.a_host && !self.blackhole {
                            self.a.handle_udp(self.now, to, from, &data);
                        }
                    }
                }
                while let Some(e) = self.a.poll_event() {
                    self.events.push(('a', e));
                }
                while let Some(e) = self.b.poll_event() {
                    self.events.push(('b', e));
                }
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(self.now + Duration::from_millis(10));
            self.now = next.max(self.now + Duration::from_millis(1));
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
    }

    fn saw(&self, side: char, want: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(s, e)| *s == side && want(e))
    }
}

fn joined(you: &str, peers: Vec<PeerInfo>) -> ServerMessage {
    ServerMessage::Joined {
        v: 1,
        room: "r".into(),
        you: PeerId(you.into()),
        peers,
        ice_servers: vec![],
    }
}

/// What the hub would deliver for `m` sent by `from`.
fn relay(m: ClientMessage, from: &str) -> Option<ServerMessage> {
    let ClientMessage::Relay { kind, data, .. } = m else {
        return None;
    };
    Some(ServerMessage::relayed(kind, PeerId(from.into()), data))
}

fn opened(e: &Event, ch: Channel) -> bool {
    matches!(e, Event::Link { event: LinkEvent::ChannelOpen(c), .. } if *c == ch)
}

#[test]
fn the_newcomer_offers_channels_open_and_chat_crosses() {
    let mut net = Net::new(false);
    net.run(200);
    for side in ['a', 'b'] {
        assert!(
            net.saw(side, |e| matches!(
                e,
                Event::Link {
                    event: LinkEvent::Connected,
                    ..
                }
            )),
            "{side} connected: {:?}",
            net.events
        );
        assert!(
            net.saw(side, |e| opened(e, Channel::Chat)),
            "{side} chat open"
        );
        assert!(
            net.saw(side, |e| opened(e, Channel::File)),
            "{side} file open"
        );
    }
    let now = net.now;
    assert!(net.a.write(
        now,
        &PeerId("p2".into()),
        Channel::Chat,
        false,
        br#"{"text":"hi"}"#
    ));
    net.run(20);
    assert!(net.saw('b', |e| matches!(e, Event::Link { peer, event: LinkEvent::Data { channel: Channel::Chat, data, .. } } if peer.0 == "p1" && data == br#"{"text":"hi"}"#)));
    // Each side told the other it sends no media.
    assert!(net.a.stats().datagrams_in > 0 && net.b.stats().datagrams_in > 0);
}

#[test]
fn relay_only_offers_no_host_candidate() {
    let mut net = Net::new(true);
    net.run(5);
    assert!(!net.saw('a', |e| matches!(e, Event::LocalCandidate { .. })));
    assert!(!net.saw('a', |e| matches!(
        e,
        Event::Link {
            event: LinkEvent::Connected,
            ..
        }
    )));
}

#[test]
fn a_link_that_never_connects_restarts_then_gives_up() {
    let mut net = Net::new(false);
    let start = net.now;
    net.blackhole = true;
    net.run(400);
    let restarts = net
        .events
        .iter()
        .filter(|(s, e)| {
            *s == 'a'
                && matches!(
                    e,
                    Event::Link {
                        event: LinkEvent::Restarting(_),
                        ..
                    }
                )
        })
        .count();
    assert!(
        (1..=MAX_RESTARTS as usize).contains(&restarts),
        "{:?}",
        net.events
    );
    assert!(net.saw('a', |e| matches!(
        e,
        Event::Link {
            event: LinkEvent::Failed,
            ..
        }
    )));
    assert!(
        net.now.duration_since(start) > CONNECT_TIMEOUT,
        "not before the connect timeout"
    );
    assert!(
        net.now.duration_since(start) < Duration::from_secs(300),
        "gave up in bounded time"
    );
}
