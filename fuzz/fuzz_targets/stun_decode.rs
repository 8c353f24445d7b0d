//! STUN decoding: any bytes decode to an error or a message whose attributes
//! parse or fail cleanly; a decoded message re-encodes and decodes again.
//! The stream-prefix check (the shared TLS port's router) agrees with the
//! decoder on every message it accepts, and decides within 8 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stun::{Attribute, Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let prefix = stun::starts_with_stun_header(data);
    if data.len() >= 8 {
        assert!(prefix.is_some());
    }
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    assert_eq!(prefix, Some(true), "a decodable message is seen as STUN");
    let _ = msg.verify_integrity(b"key");
    let _ = msg.verify_integrity_sha256(b"key");
    let _ = msg.unknown_comprehension_required().count();
    let tid = msg.transaction_id();
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(&mut buf, msg.class(), msg.method(), tid);
    let mut count = 0;
    for raw in msg.attributes() {
        if let Ok(attr) = Attribute::decode(raw, &tid) {
            assert_eq!(attr.typ(), raw.typ);
            if b.add(&attr).is_ok() {
                count += 1;
            }
        }
    }
    b.add_fingerprint().ok();
    let again = Message::decode(b.finish()).expect("re-encoded message decodes");
    assert_eq!(again.attributes().count(), count);
});
