use super::*;

const LIMITS: Limits = Limits {
    max_text: 64 * 1024,
    max_message: 1024 * 1024,
};

/// A client frame: masked with a fixed key (RFC 6455 §5.3).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Every event in `input`, fed in one piece.
fn events(dec: &mut Decoder, mut input: &[u8]) -> Vec<Result<Event, FrameError>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        match dec.decode(&mut input) {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => {}
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

/// Every event in `input`, fed one byte at a time.
fn events_bytewise(dec: &mut Decoder, input: &[u8]) -> Vec<Result<Event, FrameError>> {
    let mut out = Vec::new();
    for b in input {
        let mut one: &[u8] = std::slice::from_ref(b);
        while !one.is_empty() {
            match dec.decode(&mut one) {
                Ok(Some(e)) => out.push(Ok(e)),
                Ok(None) => {}
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

fn text(s: &str) -> Result<Event, FrameError> {
    Ok(Event::Text(s.to_string()))
}

#[test]
fn rfc_6455_masked_hello() {
    // §5.7: a single-frame masked text message.
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        events(&mut Decoder::new(LIMITS), &wire),
        vec![text("Hello")]
    );
    assert_eq!(frame(0x81, b"Hello"), wire);
}

#[test]
fn fragments_with_an_interleaved_ping_in_any_read_sizes() {
    let mut wire = frame(0x01, b"Hel");
    wire.extend(frame(0x89, b"are you there"));
    wire.extend(frame(0x00, "lo \u{e9}".as_bytes().get(..4).unwrap()));
    // The é is split between two fragments: UTF-8 is checked on the whole.
    wire.extend(frame(0x80, "lo \u{e9}".as_bytes().get(4..).unwrap()));
    wire.extend(frame(0x8A, b""));
    wire.extend(frame(0x82, &[1, 2, 3]));
    let mut ping = Control::empty();
    for b in b"are you there" {
        ping.push(*b);
    }
    let want = vec![
        Ok(Event::Ping(ping)),
        text("Hello \u{e9}"),
        Ok(Event::Pong),
        Ok(Event::Binary { len: 3 }),
    ];
    assert_eq!(events(&mut Decoder::new(LIMITS), &wire), want);
    assert_eq!(events_bytewise(&mut Decoder::new(LIMITS), &wire), want);
}

#[test]
fn lengths_of_every_encoding() {
    for n in [0, 125, 126, 65_535, 65_536] {
        let limits = Limits {
            max_text: 70_000,
            max_message: 70_000,
        };
        let body = "a".repeat(n);
        let got = events(&mut Decoder::new(limits), &frame(0x81, body.as_bytes()));
        assert_eq!(got, vec![text(&body)], "length {n}");
    }
}

#[test]
fn nothing_is_kept_after_a_large_message() {
    let mut dec = Decoder::new(LIMITS);
    let big = "b".repeat(60 * 1024);
    let wire = frame(0x81, big.as_bytes());
    let (first, second) = wire.split_at(1000);
    assert_eq!(events(&mut dec, first), vec![]);
    assert!(dec.text.capacity() >= 60 * 1024, "reserved for the message");
    assert_eq!(events(&mut dec, second), vec![text(&big)]);
    assert_eq!(dec.text.capacity(), 0, "the buffer left with the message");
}

#[test]
fn fragments_never_reserve_more_than_the_limit() {
    let limits = Limits {
        max_text: 65_000,
        max_message: 1 << 20,
    };
    let mut dec = Decoder::new(limits);
    let mut wire = frame(0x01, &[b'a'; 40_000]);
    wire.extend(frame(0x80, &[b'b'; 25_000]));
    let mut input: &[u8] = &wire;
    let mut most = 0;
    while !input.is_empty() {
        let (mut chunk, rest) = input.split_at(input.len().min(512));
        input = rest;
        while !chunk.is_empty() {
            dec.decode(&mut chunk).unwrap();
        }
        most = most.max(dec.text.capacity());
    }
    assert!(
        most <= 65_000,
        "reserved {most} bytes for a 65 000-byte message"
    );
}

#[test]
fn oversized_text_is_skipped_and_reported_and_the_stream_goes_on() {
    let mut dec = Decoder::new(LIMITS);
    let big = vec![b'x'; 256 * 1024];
    let mut wire = frame(0x01, &big[..40 * 1024]);
    wire.extend(frame(0x80, &big[40 * 1024..]));
    wire.extend(frame(0x81, b"after"));
    let mut input: &[u8] = &wire;
    let mut got = Vec::new();
    while !input.is_empty() {
        // Partway through, the decoder holds no more than the first fragment.
        let step = input.len().min(4096);
        let (mut chunk, rest) = input.split_at(step);
        input = rest;
        while !chunk.is_empty() {
            if let Some(e) = dec.decode(&mut chunk).unwrap() {
                got.push(e);
            }
        }
        assert!(dec.text.capacity() <= 40 * 1024);
    }
    assert_eq!(
        got,
        vec![
            Event::Oversized { len: 256 * 1024 },
            Event::Text("after".into())
        ]
    );
}

#[test]
fn invalid_utf8_in_an_oversized_message_is_not_looked_at() {
    let limits = Limits {
        max_text: 4,
        max_message: 100,
    };
    let got = events(&mut Decoder::new(limits), &frame(0x81, &[0xFF; 10]));
    assert_eq!(got, vec![Ok(Event::Oversized { len: 10 })]);
}

#[test]
fn too_large_ends_at_the_header() {
    let limits = Limits {
        max_text: 4,
        max_message: 100,
    };
    // Only the header has arrived: refused before any payload is read.
    let wire = frame(0x82, &[0; 101]);
    let got = events(&mut Decoder::new(limits), &wire[..8]);
    assert_eq!(
        got,
        vec![Err(FrameError::MessageTooLarge {
            len: 101,
            limit: 100
        })]
    );
    // Over several fragments too.
    let mut wire = frame(0x01, &[b'a'; 60]);
    wire.extend(frame(0x80, &[b'a'; 60]));
    let got = events(&mut Decoder::new(limits), &wire);
    assert_eq!(got.last().unwrap().as_ref().unwrap_err().close_code(), 1009);
}

#[test]
fn protocol_errors() {
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (
            vec![0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
            FrameError::Unmasked,
        ),
        (frame(0xC1, b"x"), FrameError::ReservedBits),
        (frame(0x83, b"x"), FrameError::UnknownOpcode(3)),
        (frame(0x8B, b""), FrameError::UnknownOpcode(0xB)),
        (frame(0x09, b""), FrameError::FragmentedControl),
        (frame(0x89, &[0; 126]), FrameError::ControlTooLong),
        (frame(0x80, b"x"), FrameError::UnexpectedContinuation),
        (
            [frame(0x01, b"x"), frame(0x81, b"y")].concat(),
            FrameError::ExpectedContinuation,
        ),
        (frame(0x81, &[0xC3, 0x28]), FrameError::InvalidUtf8),
        (frame(0x88, &[0x03]), FrameError::BadClose),
        (frame(0x88, &1005u16.to_be_bytes()), FrameError::BadClose),
        (frame(0x88, &[0x03, 0xE8, 0xFF]), FrameError::BadClose),
        (
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            FrameError::BadLength,
        ),
    ];
    for (wire, want) in cases {
        let got = events(&mut Decoder::new(LIMITS), &wire);
        assert_eq!(got.last(), Some(&Err(want.clone())), "{wire:02x?}");
        assert_eq!(
            events_bytewise(&mut Decoder::new(LIMITS), &wire).last(),
            Some(&Err(want))
        );
    }
    assert_eq!(FrameError::InvalidUtf8.close_code(), 1007);
    assert_eq!(FrameError::Unmasked.close_code(), 1002);
}

#[test]
fn close_frames() {
    let mut dec = Decoder::new(LIMITS);
    assert_eq!(
        events(&mut dec, &frame(0x88, b"")),
        vec![Ok(Event::Close(None))]
    );
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye \u{e9}".as_bytes());
    assert_eq!(
        events(&mut dec, &frame(0x88, &payload)),
        vec![Ok(Event::Close(Some(1000)))]
    );
}
