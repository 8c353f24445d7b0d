//! The SFU with str0m clients on an in-memory network, in virtual time:
//! a simulcast publisher, subscribers that get one layer each, leaving.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc, RtcConfig};

use super::*;

const SFU: &str = "10.0.0.1:5000";
const RIDS: [&str; 3] = ["l", "m", "h"];
/// Frame sizes per layer (bytes at 30 fps: ~48, ~144, ~360 kbit/s).
const SIZES: [usize; 3] = [200, 600, 1500];

struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    /// Publisher: its video mid.
    video: Option<Mid>,
    /// Subscriber: per frame received, (mid, layer byte, keyframe).
    frames: Vec<(Mid, u8, bool)>,
    /// Layers asked for a keyframe (publisher).
    keyframe_wanted: VecDeque<Option<Rid>>,
    timeout: Instant,
    /// A bottleneck on the way from the SFU (bits/s): a FIFO served at that
    /// rate, tail drop past `QUEUE_BYTES`, like a home uplink.
    limit_bps: Option<u64>,
    queue: VecDeque<(Instant, Transmit)>,
    queued_bytes: usize,
    busy_until: Instant,
}

/// The bottleneck's buffer (~0.4 s at 300 kbit/s).
const QUEUE_BYTES: usize = 15_000;

impl Client {
    fn new(now: Instant, id: u64) -> Client {
        let addr: SocketAddr = format!("10.0.0.{}:4000", id + 10).parse().unwrap();
        let mut rtc = RtcConfig::new().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Client {
            id: ParticipantId(id),
            addr,
            rtc,
            pending: None,
            video: None,
            frames: Vec::new(),
            keyframe_wanted: VecDeque::new(),
            timeout: now,
            limit_bps: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: now,
        }
    }
}

struct World {
    now: Instant,
    sfu: Sfu,
    clients: Vec<Client>,
    frame: u64,
    start: Instant,
    /// Frame sizes per layer.
    sizes: [usize; 3],
    /// Virtual time per step.
    step: Duration,
    /// Every offer the SFU made: (to, SDP).
    offers: Vec<(ParticipantId, String)>,
}

impl World {
    fn new() -> World {
        World::with(SfuConfig {
            room_size: 50,
            ..SfuConfig::default()
        })
    }

    fn with(config: SfuConfig) -> World {
        let now = Instant::now();
        let sfu = Sfu::new(config);
        World {
            now,
            sfu,
            clients: Vec::new(),
            frame: 0,
            start: now,
            sizes: SIZES,
            step: Duration::from_millis(5),
            offers: Vec::new(),
        }
    }

    /// A client joins the room; `publish` adds a three-layer simulcast camera.
    fn join(&mut self, id: u64, publish: bool) {
        let mut c = Client::new(self.now, id);
        let label = format!("p{id}");
        self.sfu
            .join(self.now, c.id, "room", &label, &[SFU.parse().unwrap()])
            .unwrap();
        let mut change = c.rtc.sdp_api();
        let mid = if publish {
            let mut sim = Simulcast::new();
            for r in RIDS {
                sim.add_send_layer(SimulcastLayer::new(r));
            }
            Some(change.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim)))
        } else {
            // A subscriber's first offer: a data channel, as the app opens
            // its negotiated chat channel (any m-line starts the transport).
            change.add_channel("chat".into());
            None
        };
        let (offer, pending) = change.apply().unwrap();
        c.pending = Some(pending);
        c.video = mid;
        self.sfu
            .handle_offer(self.now, c.id, &offer.to_sdp_string())
            .unwrap();
        self.clients.push(c);
        self.signal();
    }

    fn client(&mut self, id: u64) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.id == ParticipantId(id))
            .unwrap()
    }

    /// Hands the SFU's offers and answers to the clients, and back.
    fn signal(&mut self) {
        while let Some(e) = self.sfu.poll_event() {
            match e {
                Event::Answer { to, sdp } => {
                    let c = self.clients.iter_mut().find(|c| c.id == to).unwrap();
                    let answer = SdpAnswer::from_sdp_string(&sdp).unwrap();
                    let pending = c.pending.take().unwrap();
                    c.rtc.sdp_api().accept_answer(pending, answer).unwrap();
                }
                Event::Offer { to, sdp } => {
                    self.offers.push((to, sdp.clone()));
                    let Some(c) = self.clients.iter_mut().find(|c| c.id == to) else {
                        continue;
                    };
                    let offer = SdpOffer::from_sdp_string(&sdp).unwrap();
                    let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
                    self.sfu
                        .handle_answer(self.now, to, &answer.to_sdp_string())
                        .unwrap();
                }
                Event::Connected(_)
                | Event::Gone(_)
                | Event::Speaker { .. }
                | Event::PublishCap { .. } => {}
            }
        }
    }

    /// One 5 ms step: clients and SFU exchange datagrams; publishers send a
    /// frame per layer every 33 ms (a keyframe when one was asked for).
    fn step(&mut self) {
        self.now += self.step;
        let now = self.now;
        let sfu_addr: SocketAddr = SFU.parse().unwrap();
        let send_frame = now.duration_since(self.start) >= Duration::from_millis(33 * self.frame);
        if send_frame {
            self.frame += 1;
        }
        let frame = self.frame;
        for c in &mut self.clients {
            if send_frame && let Some(mid) = c.video {
                let wanted: Vec<Option<Rid>> = c.keyframe_wanted.drain(..).collect();
                for (i, r) in RIDS.iter().enumerate() {
                    let rid: Rid = (*r).into();
                    let key =
                        frame % 90 == 1 || wanted.contains(&Some(rid)) || wanted.contains(&None);
                    let mut data = vec![0u8; self.sizes[i]];
                    // VP8 frame tag: bit 0 clear on a keyframe.
                    data[0] = if key { 0x10 } else { 0x11 };
                    data[1] = i as u8;
                    let Some(w) = c.rtc.writer(mid) else { continue };
                    let Some(pt) = w
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Vp8)
                        .map(|p| p.pt())
                    else {
                        continue;
                    };
                    let _ = w
                        .rid(rid)
                        .write(pt, now, MediaTime::from_90khz(frame * 3000), data);
                }
            }
            if c.timeout <= now {
                let _ = c.rtc.handle_input(Input::Timeout(now));
            }
            loop {
                match c.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        c.timeout = t;
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        assert_eq!(t.destination, sfu_addr);
                        self.sfu
                            .handle_datagram(now, t.source, t.destination, &t.contents);
                    }
                    Ok(Output::Event(RtcEvent::MediaData(d))) => {
                        c.frames.push((d.mid, d.data[1], d.is_keyframe()));
                    }
                    Ok(Output::Event(RtcEvent::KeyframeRequest(r))) => {
                        c.keyframe_wanted.push_back(r.rid);
                    }
                    Ok(Output::Event(_)) => {}
                    Err(e) => panic!("client {:?}: {e}", c.id),
                }
            }
        }
        if self.sfu.poll_timeout().is_some_and(|t| t <= now) {
            self.sfu.handle_timeout(now);
        }
        while let Some(t) = self.sfu.poll_transmit() {
            assert_eq!(t.source, sfu_addr);
            let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                continue;
            };
            let Some(rate) = c.limit_bps else {
                c.queue.push_back((now, t));
                continue;
            };
            if c.queued_bytes + t.contents.len() > QUEUE_BYTES {
                continue;
            }
            let start = c.busy_until.max(now);
            let bits = t.contents.len() as u64 * 8;
            c.busy_until = start + Duration::from_micros(bits * 1_000_000 / rate);
            c.queued_bytes += t.contents.len();
            c.queue.push_back((c.busy_until, t));
        }
        for c in &mut self.clients {
            while c.queue.front().is_some_and(|(at, _)| *at <= now) {
                let (_, t) = c.queue.pop_front().unwrap();
                if c.limit_bps.is_some() {
                    c.queued_bytes -= t.contents.len();
                }
                let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents).unwrap();
                let _ = c.rtc.handle_input(Input::Receive(now, r));
            }
        }
        self.signal();
    }

    /// The SFU's offers to client `id` so far.
    fn offers_to(&self, id: u64) -> Vec<&String> {
        self.offers
            .iter()
            .filter(|(to, _)| *to == ParticipantId(id))
            .map(|(_, s)| s)
            .collect()
    }

    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.step();
        }
    }
}

fn layers(frames: &[(Mid, u8, bool)]) -> Vec<u8> {
    let mut v: Vec<u8> = frames.iter().map(|f| f.1).collect();
    v.dedup();
    v
}

#[test]
fn subscribers_get_one_layer_each_and_the_publisher_sends_once() {
    let mut w = World::new();
    w.join(1, true);
    w.join(2, false);
    w.join(3, false);
    // Bob shows Alice in a small tile; Carol does not say (any size).
    w.sfu.set_view(ParticipantId(2), ParticipantId(1), 160);
    w.run(Duration::from_secs(4));

    let bob = w.client(2).frames.clone();
    let carol = w.client(3).frames.clone();
    assert!(bob.len() > 60, "Bob decoded {} frames", bob.len());
    assert!(carol.len() > 60, "Carol decoded {} frames", carol.len());
    // Each gets one layer, starting at a keyframe. (The first few frames
    // may be of whichever layer the publisher's Rtc completed first: a
    // layer not heard from yet cannot be chosen.)
    assert_eq!(layers(&bob[5..]), vec![0], "Bob: {:?}", layers(&bob));
    assert_eq!(layers(&carol[5..]), vec![2], "Carol: {:?}", layers(&carol));
    assert!(
        bob[0].2 && carol[0].2,
        "the first frame forwarded is a keyframe"
    );
    let s = w.sfu.stats();
    assert_eq!((s.participants, s.rooms), (3, 1));
    // The publisher sends each layer once, whatever the subscribers.
    assert!(s.frames_in >= 3 * 100, "{s:?}");
    assert!(s.frames_out <= s.frames_in, "{s:?}");
}

#[test]
fn a_publisher_over_its_cap_has_its_top_layer_dropped() {
    // Layers of 48, 144 and 360 kbit/s; a 200 kbit/s cap allows 300 with
    // the grace: low and medium fit, high does not.
    let mut w = World::with(SfuConfig {
        max_publish_bps: 200_000,
        ..SfuConfig::default()
    });
    w.join(1, true);
    w.join(2, false);
    w.run(Duration::from_secs(5));
    let frames = w.client(2).frames.clone();
    assert!(frames.len() > 60, "decoded {} frames", frames.len());
    // Once the rates are measured (a second), the high layer is gone.
    let late = &frames[frames.len() / 2..];
    assert_eq!(layers(late), vec![1], "{:?}", layers(&frames));
    assert!(w.sfu.stats().frames_over_cap > 30, "{:?}", w.sfu.stats());
}

/// The publisher `id` changes what it sends (`edit`) and offers it.
fn renegotiate(
    w: &mut World,
    id: u64,
    edit: impl FnOnce(&mut str0m::change::SdpApi) -> Mid,
) -> Mid {
    let c = w.client(id);
    let mut change = c.rtc.sdp_api();
    let mid = edit(&mut change);
    let (offer, pending) = change.apply().unwrap();
    c.pending = Some(pending);
    let now = w.now;
    w.sfu
        .handle_offer(now, ParticipantId(id), &offer.to_sdp_string())
        .unwrap();
    w.signal();
    mid
}

#[test]
fn a_second_stream_is_forwarded_as_its_own_and_stops_with_it() {
    let mut w = World::new();
    w.join(1, true);
    w.join(2, false);
    w.run(Duration::from_secs(1));
    // Ann shares her screen: a second video, in a stream of its own.
    w.offers.clear();
    let screen = renegotiate(&mut w, 1, |c| {
        c.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("screen".into()),
            None,
            None,
        )
    });
    w.run(Duration::from_secs(1));
    let to_bob = w.offers_to(2);
    assert!(
        to_bob.iter().any(|s| s.contains("a=msid:p1+1 ")),
        "{to_bob:?}"
    );
    assert!(
        to_bob.iter().all(|s| s.contains("a=msid:p1 ")),
        "{to_bob:?}"
    );
    // She stops: Bob's copy of it is stopped (its m-line rejected).
    w.offers.clear();
    renegotiate(&mut w, 1, |c| {
        c.set_direction(screen, Direction::Inactive);
        screen
    });
    w.run(Duration::from_secs(1));
    let to_bob = w.offers_to(2);
    assert!(
        to_bob.iter().any(|s| s.contains("m=video 0 ")),
        "{to_bob:?}"
    );
    // Her camera goes on.
    w.client(2).frames.clear();
    w.run(Duration::from_secs(1));
    assert!(w.client(2).frames.len() > 20);
}

#[test]
fn a_bigger_tile_switches_up_at_a_keyframe() {
    let mut w = World::new();
    w.join(1, true);
    w.join(2, false);
    w.sfu.set_view(ParticipantId(2), ParticipantId(1), 160);
    w.run(Duration::from_secs(2));
    assert_eq!(layers(&w.client(2).frames[5..]), vec![0]);
    w.client(2).frames.clear();
    w.sfu.set_view(ParticipantId(2), ParticipantId(1), 1280);
    let asked = w.sfu.stats().keyframe_requests;
    w.run(Duration::from_secs(4));
    let frames = w.client(2).frames.clone();
    // Low until the high layer's keyframe (asked for, not waited for), then
    // high. (While str0m's estimator probes towards the desired bitrate its
    // estimate may dip for a moment: the medium layer in between is fine.)
    let seen = layers(&frames);
    assert_eq!(seen.first(), Some(&0), "{seen:?}");
    assert_eq!(seen.last(), Some(&2), "{seen:?}");
    for pair in frames.windows(2) {
        if let [a, b] = pair
            && a.1 != b.1
        {
            assert!(b.2, "switched from {} to {} not on a keyframe", a.1, b.1);
        }
    }
    assert!(w.sfu.stats().keyframe_requests > asked);
    // The first switch up comes within a few frames of the request.
    let switch_at = frames.iter().position(|f| f.1 != 0).unwrap_or(usize::MAX);
    assert!(
        switch_at < 10,
        "switched {switch_at} frames late: PLI not honoured?"
    );
}

/// The layers of the frames received in the last `d` of a run of `total`
/// (frames come at 30 a second).
fn recent(frames: &[(Mid, u8, bool)], seconds: usize) -> &[(Mid, u8, bool)] {
    &frames[frames.len().saturating_sub(seconds * 30)..]
}

#[test]
fn a_subscriber_behind_a_slow_link_gets_the_lowest_layer() {
    let mut w = World::new();
    // Browser-like layers: ~144 kbit/s, ~480 kbit/s, ~960 kbit/s.
    w.sizes = [600, 2000, 4000];
    w.join(1, true);
    w.join(2, false);
    w.join(3, false);
    w.client(2).limit_bps = Some(300_000);
    w.run(Duration::from_secs(12));
    let bob = w.client(2).frames.clone();
    let carol = w.client(3).frames.clone();
    // Bob's video keeps playing, on the lowest layer; Carol, on a link
    // without a limit, stays above it (which layer exactly depends on how
    // far str0m's estimate has climbed on this simulated link).
    let bob_recent = recent(&bob, 2);
    assert!(
        bob_recent.len() >= 50,
        "Bob got {} frames in the last 2 s",
        bob_recent.len()
    );
    assert_eq!(layers(bob_recent), vec![0], "Bob: {:?}", layers(&bob));
    let carol_recent = layers(recent(&carol, 2));
    assert!(!carol_recent.contains(&0), "Carol: {:?}", layers(&carol));

    // Climbing back once the limit lifts is not shown here: on this
    // in-memory link str0m's estimate stays near what it last measured
    // (its probes are gated after losses); the browser test with `tc`
    // is where that is to be shown.
}

#[test]
fn a_publisher_leaving_stops_its_tracks_at_the_others() {
    let mut w = World::new();
    w.join(1, true);
    w.join(2, false);
    w.run(Duration::from_secs(2));
    assert!(!w.client(2).frames.is_empty());
    w.sfu.leave(ParticipantId(1));
    w.clients.retain(|c| c.id != ParticipantId(1));
    w.run(Duration::from_millis(200));
    let s = w.sfu.stats();
    assert_eq!(s.participants, 1);
    // Bob was offered the stop and answered it: nothing left to send him.
    let bob = w.client(2);
    let mids: Vec<_> = bob
        .rtc
        .media(bob.frames[0].0)
        .map(|m| m.direction())
        .into_iter()
        .collect();
    assert_eq!(mids, vec![Direction::Inactive], "{mids:?}");
}

#[test]
fn a_full_room_refuses_and_strangers_are_not_routed() {
    let mut sfu = Sfu::new(SfuConfig {
        room_size: 2,
        ..SfuConfig::default()
    });
    let now = Instant::now();
    let at = [SFU.parse().unwrap()];
    let mut join = |id: u64, room: &str| sfu.join(now, ParticipantId(id), room, "p", &at);
    join(1, "r").unwrap();
    join(2, "r").unwrap();
    assert_eq!(join(3, "r"), Err(SfuError::RoomFull));
    assert_eq!(join(1, "s"), Err(SfuError::AlreadyJoined));
    assert!(join(3, "other").is_ok());
    let from: SocketAddr = "192.0.2.9:1234".parse().unwrap();
    let to: SocketAddr = SFU.parse().unwrap();
    // Garbage, RTP-looking bytes and a STUN check for an unknown ufrag.
    for junk in [
        &[][..],
        &[0x80, 0, 0, 1][..],
        &[0u8; 20][..],
        &[0x16; 40][..],
    ] {
        assert!(!sfu.handle_datagram(now, from, to, junk));
    }
    assert_eq!(sfu.stats().unrouted, 4);
    assert_eq!(
        sfu.handle_offer(now, ParticipantId(9), "v=0"),
        Err(SfuError::UnknownParticipant)
    );
    assert!(matches!(
        sfu.handle_offer(now, ParticipantId(1), "not sdp"),
        Err(SfuError::Sdp(_))
    ));
    sfu.leave(ParticipantId(1));
    sfu.leave(ParticipantId(2));
    assert_eq!(sfu.stats().rooms, 1);
}

#[test]
fn an_ice_check_is_routed_by_its_username_before_its_address() {
    let mut w = World::new();
    w.join(1, true);
    w.join(2, false);
    w.run(Duration::from_secs(2));
    let old = w.client(1).addr;
    assert_eq!(w.sfu.route(old, &[0x80, 0, 0, 1]), Some(ParticipantId(1)));
    // Client 1's browser gave up that port, and client 2's took it: the
    // check from there names client 2's session.
    let ufrag = w.sfu.ice_ufrag(ParticipantId(2)).unwrap().to_owned();
    let mut buf = Vec::new();
    let tid = stun::TransactionId([7; 12]);
    let mut b =
        stun::MessageBuilder::new(&mut buf, stun::Class::Request, stun::Method::BINDING, tid);
    b.add(&stun::Attribute::Username(&format!("{ufrag}:abcd")))
        .unwrap();
    assert_eq!(w.sfu.route(old, b.finish()), Some(ParticipantId(2)));
    // A check naming nobody still follows the address.
    let mut buf = Vec::new();
    let mut b =
        stun::MessageBuilder::new(&mut buf, stun::Class::Request, stun::Method::BINDING, tid);
    b.add(&stun::Attribute::Username("nobody:abcd")).unwrap();
    assert_eq!(w.sfu.route(old, b.finish()), Some(ParticipantId(1)));
}
