//! What a participant can send the SFU: any datagram (raw, or wrapped in
//! an ICE check naming the participant's ufrag so that it is routed to its
//! `Rtc`) and any SDP offer or answer text. Nothing panics, and a datagram
//! from an address no check has come from is never routed.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfu::{ParticipantId, Sfu, SfuConfig};

const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let local: SocketAddr = "192.0.2.1:3480".parse().unwrap();
    let from: SocketAddr = "198.51.100.7:50000".parse().unwrap();
    let stranger: SocketAddr = "198.51.100.8:50000".parse().unwrap();
    let now = Instant::now();
    let mut sfu = Sfu::new(SfuConfig {
        room_size: 4,
        ..SfuConfig::default()
    });
    let id = ParticipantId(1);
    sfu.join(now, id, "room", "p1", &[local]).unwrap();
    if mode & 2 != 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = sfu.handle_offer(now, id, &text);
        let _ = sfu.handle_answer(now, id, &text);
    }
    // A datagram from a stranger never reaches anyone.
    assert!(!sfu.handle_datagram(now, stranger, local, rest));
    if mode & 1 != 0 {
        // An ICE check naming the participant, the input as its attributes.
        let ufrag = sfu.ice_ufrag(id).unwrap().to_owned();
        let user = format!("{ufrag}:x");
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attr.extend_from_slice(user.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        attr.extend_from_slice(rest);
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len().min(u16::MAX as usize) as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        sfu.handle_datagram(now, from, local, &msg);
    }
    sfu.handle_datagram(now, from, local, rest);
    sfu.handle_timeout(now + Duration::from_secs(1));
    while sfu.poll_transmit().is_some() {}
    while sfu.poll_event().is_some() {}
});
