//! RFC 6455 §5 framing, server side: any byte stream from a client decodes
//! to events or stops with an error, never panics, gives the same events
//! however the reads split it, and never returns a text over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket::{Decoder, Event, FrameError, Limits};

const LIMITS: Limits = Limits {
    max_text: 1024,
    max_message: 4096,
};

/// Every event, feeding `data` in reads of at most `step` bytes.
fn run(data: &[u8], step: usize) -> (Vec<Event>, Option<FrameError>) {
    let mut dec = Decoder::new(LIMITS);
    let mut events = Vec::new();
    for mut chunk in data.chunks(step.max(1)) {
        while !chunk.is_empty() {
            let result = dec.decode(&mut chunk);
            assert!(dec.buffered() <= LIMITS.max_text, "holds more than max_text");
            match result {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let whole = run(data, data.len());
    let split = run(data, usize::from(step % 17) + 1);
    assert_eq!(whole, split, "events depend on how reads split the stream");
    for e in &whole.0 {
        match e {
            Event::Text(t) => assert!(t.len() <= LIMITS.max_text),
            Event::Oversized { len } => {
                assert!(*len > LIMITS.max_text && *len <= LIMITS.max_message)
            }
            Event::Binary { len } => assert!(*len <= LIMITS.max_message),
            Event::Ping(p) => assert!(p.as_bytes().len() <= 125),
            Event::Pong | Event::Close(_) => {}
        }
    }
});
