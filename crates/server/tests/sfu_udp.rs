//! The SFU's driver over real loopback UDP: two str0m clients, one
//! publishing VP8, one subscribing; the SFU thread answers, offers the
//! publisher's track (with the publisher's peer id as stream id) and
//! forwards its frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard::sfu_server::{Command, SfuServer};

struct Client {
    peer: &'static str,
    socket: UdpSocket,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    frames: usize,
    offers: Vec<String>,
}

impl Client {
    fn new(peer: &'static str) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut rtc = Rtc::new(Instant::now());
        let local = socket.local_addr().unwrap();
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        Client {
            peer,
            socket,
            rtc,
            pending: None,
            video: None,
            frames: 0,
            offers: Vec::new(),
        }
    }

    /// Its first offer: a camera, or (a subscriber) a data channel.
    fn offer(&mut self, publish: bool) -> String {
        let mut change = self.rtc.sdp_api();
        if publish {
            self.video =
                Some(change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        } else {
            change.add_channel("chat".into());
        }
        let (offer, pending) = change.apply().unwrap();
        self.pending = Some(pending);
        json("offer", &offer.to_sdp_string())
    }

    /// Drives the Rtc: its datagrams out, the socket's in.
    fn drive(&mut self, frame: Option<u64>) {
        let now = Instant::now();
        let vp8 = |w: &str0m::media::Writer| {
            w.payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .map(|p| p.pt())
        };
        if let (Some(n), Some(mid)) = (frame, self.video)
            && let Some(w) = self.rtc.writer(mid)
            && let Some(pt) = vp8(&w)
        {
            let mut data = vec![0u8; 800];
            data[0] = if n % 30 == 0 { 0x10 } else { 0x11 };
            let _ = w.write(pt, now, MediaTime::from_90khz(n * 3000), data);
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let to = self.socket.local_addr().unwrap();
            let r = Receive::new(Protocol::Udp, from, to, &buf[..n]).unwrap();
            self.rtc
                .handle_input(Input::Receive(Instant::now(), r))
                .unwrap();
        }
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .unwrap();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::MediaData(_)) => self.frames += 1,
                Output::Event(_) => {}
            }
        }
    }

    /// The SFU's answer or offer; returns our answer to an offer. Its
    /// notices (`speaker`, `publish-cap`) carry no SDP.
    fn sdp(&mut self, data: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if v["type"] != "answer" && v["type"] != "offer" {
            assert!(
                ["speaker", "publish-cap"].contains(&v["type"].as_str().unwrap_or("")),
                "{data}"
            );
            return None;
        }
        let sdp = v["sdp"].as_str().unwrap();
        if v["type"] == "answer" {
            let pending = self.pending.take().unwrap();
            let answer = SdpAnswer::from_sdp_string(sdp).unwrap();
            self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
            None
        } else {
            self.offers.push(sdp.to_owned());
            let offer = SdpOffer::from_sdp_string(sdp).unwrap();
            let answer = self.rtc.sdp_api().accept_offer(offer).unwrap();
            Some(json("answer", &answer.to_sdp_string()))
        }
    }
}

fn json(kind: &str, sdp: &str) -> String {
    serde_json::json!({ "type": kind, "sdp": sdp }).to_string()
}

#[test]
fn a_subscriber_receives_the_publishers_video_through_the_sfu_thread() {
    let (tx, replies) = mpsc::channel::<(String, String)>();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let reply = Box::new(move |peer: &str, json: String| {
        let _ = tx.send((peer.to_owned(), json));
    });
    let sfu = SfuServer::start(
        SfuServer::bind(listen).unwrap(),
        sfu::SfuConfig::default(),
        None,
        reply,
    )
    .unwrap();
    assert_ne!(sfu.local_addr().port(), 0);
    let via = "127.0.0.1".parse().unwrap();
    let mut clients = [Client::new("p1"), Client::new("p2")];
    for (i, c) in clients.iter_mut().enumerate() {
        sfu.send(Command::Join {
            peer: c.peer.into(),
            room: "r".into(),
            via: Some(via),
        });
        let offer = c.offer(i == 0);
        sfu.send(Command::Signal {
            peer: c.peer.into(),
            data: offer,
        });
    }
    let start = Instant::now();
    let mut frame = 0;
    while start.elapsed() < Duration::from_secs(15) && clients[1].frames < 60 {
        while let Ok((peer, data)) = replies.try_recv() {
            let c = clients.iter_mut().find(|c| c.peer == peer).unwrap();
            if let Some(answer) = c.sdp(&data) {
                sfu.send(Command::Signal { peer, data: answer });
            }
        }
        let due = start.elapsed().as_millis() as u64 / 33;
        let send = (frame < due).then(|| {
            frame += 1;
            frame
        });
        clients[0].drive(send);
        clients[1].drive(None);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        clients[1].frames >= 60,
        "subscriber decoded {} frames",
        clients[1].frames
    );
    assert_eq!(
        clients[0].frames, 0,
        "the publisher is not sent its own video"
    );
    // The track was offered under the publisher's peer id.
    let offer = clients[1]
        .offers
        .first()
        .expect("the SFU offered the track");
    assert!(offer.contains("a=msid:p1 "), "{offer}");
    sfu.send(Command::Leave { peer: "p1".into() });
    sfu.send(Command::Leave { peer: "p2".into() });
}
