//! RFC 8656 §11 stream framing: any byte stream splits into frames or stops
//! with an error, and each frame goes through the server core as TCP would.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use turn::auth::Users;
use turn::channel_data::frame_len;
use turn::{FiveTuple, RelaySockets, Server, ServerConfig, Transport};

struct NoBind;
impl RelaySockets for NoBind {
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Err(std::io::Error::other("no sockets in fuzzing"))
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut server = Server::new(ServerConfig::new(Users::new("fuzz", [], None)), now, 0, [1; 32]);
    let from = FiveTuple {
        transport: Transport::Tcp,
        client: "198.51.100.1:40000".parse().expect("addr"),
        server: "192.0.2.1:3478".parse().expect("addr"),
    };
    let mut rest = data;
    while let Ok(Some(len)) = frame_len(rest) {
        assert!(len >= 4 && len <= rest.len() && len <= 20 + 65_535);
        let (frame, tail) = rest.split_at(len);
        let _ = server.handle_client(now, from, frame, &mut NoBind);
        while server.poll_transmit().is_some() {}
        rest = tail;
    }
});
