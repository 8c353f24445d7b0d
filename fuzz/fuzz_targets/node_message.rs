//! What a node reads from Redis pub/sub (`signal::parse_node_message`):
//! any text parses or is an error; what parses serializes and parses back
//! to itself; and a cluster-mode hub takes it without panicking.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = signal::parse_node_message(text) else {
        return;
    };
    let again = signal::parse_node_message(&message.to_json());
    assert!(again.is_ok_and(|m| m == message));
    let mut hub = signal::Hub::new(signal::HubConfig {
        node: signal::NodeId::new("fuzz"),
        ..signal::HubConfig::default()
    });
    let now = Instant::now();
    hub.handle_connect(signal::ConnId(1), Default::default(), now);
    hub.handle_text(
        signal::ConnId(1),
        r#"{"type":"join","v":1,"room":"r","name":"A"}"#,
        now,
        0,
    );
    hub.handle_node_message(message, now);
    while hub.poll_output().is_some() {}
});
