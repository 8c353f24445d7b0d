//! The app's data-channel wire as the native peer reads it (`peer::files`,
//! `peer::chat`): any text parses or is refused, never panics, and what
//! parses is sanitised as files.js would and serialises back to itself; a
//! receiver fed any split of any bytes counts and hashes them like the
//! whole, refuses more than announced, and verifies exactly when all the
//! announced bytes arrived intact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peer::chat::{MAX_CHAT, chat_json, parse_chat};
use peer::files::{
    Control, FileWireError, Incoming, IncomingState, MAX_ID, MAX_NAME, MAX_SIZE, Outgoing,
    OutgoingEvent, sha256_hex,
};

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn check_text(text: &str) {
    if let Ok(msg) = Control::parse(text) {
        if let Control::File {
            id,
            name,
            size,
            mime,
        } = &msg
        {
            assert!(utf16_len(id) <= MAX_ID);
            assert!(!name.is_empty() && utf16_len(name) <= MAX_NAME);
            assert!(
                !name
                    .chars()
                    .any(|c| matches!(c, '\\' | '/' | '\0'..='\x1f'))
            );
            assert!(*size <= MAX_SIZE);
            if !mime.is_empty() {
                let (kind, sub) = mime.split_once('/').expect("type/subtype");
                for part in [kind, sub] {
                    assert!(!part.is_empty());
                    assert!(
                        part.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
                    );
                }
            }
            // What the app would answer to this header is well-formed too.
            assert!(Incoming::new(&msg).is_ok());
        }
        assert_eq!(
            Control::parse(&msg.to_json()),
            Ok(msg),
            "to_json does not parse back"
        );
    }
    if let Some(chat) = parse_chat(text) {
        assert!(utf16_len(&chat) <= MAX_CHAT);
        assert_eq!(
            parse_chat(&chat_json(&chat)).as_deref(),
            Some(chat.as_str())
        );
    }
}

/// Sends `data` from an `Outgoing` to an `Incoming` that was told `size`,
/// in pieces whose lengths come from `step` (empty ones included).
fn transfer(data: &[u8], size: u64, step: u8) {
    let mut inc = Incoming::new(&Control::File {
        id: "1-fuzz00".into(),
        name: "f".into(),
        size,
        mime: String::new(),
    })
    .expect("valid header");
    // The sender is told the true length, so it always finishes.
    let mut out = Outgoing::new("1-fuzz00", "f", data.len() as u64, "").expect("valid transfer");
    let mut rest = data;
    let mut i = 0_usize;
    let mut overrun = false;
    let mut reported = 0;
    while !rest.is_empty() {
        i += 1;
        // 0..=97 bytes, every length (0 too) once in 98 pieces.
        let len = ((usize::from(step) + i * 7919) % 98).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        out.sent(piece).expect("within size");
        if overrun {
            assert_eq!(inc.chunk(piece), Err(FileWireError::NotReceiving));
            continue;
        }
        match inc.chunk(piece) {
            Ok(()) => assert!(inc.received() <= size),
            Err(FileWireError::MoreThanAnnounced) => {
                assert!(inc.received() + piece.len() as u64 > size);
                assert_eq!(inc.state(), IncomingState::Failed);
                overrun = true;
            }
            Err(e) => panic!("chunk: {e}"),
        }
        if i % 3 == 0 {
            if let Some(report) = inc.written(inc.received()) {
                let &Control::Written { bytes, .. } = &report else {
                    panic!("not a written report: {report:?}");
                };
                assert!(bytes > reported && bytes <= inc.received());
                reported = bytes;
                let msg = Control::parse(&report.to_json()).expect("written parses");
                assert_eq!(
                    out.handle(&msg),
                    Some(OutgoingEvent::Progress { written: bytes })
                );
            }
        }
    }
    let end = out.finish().expect("all sent");
    assert_eq!(out.sha256(), Some(sha256_hex(data).as_str()));
    let end = Control::parse(&end.to_json()).expect("end parses");
    if overrun {
        assert!(data.len() as u64 > size);
        assert_eq!(inc.end(&end), Err(FileWireError::NotReceiving));
        assert_eq!(inc.ack(), None);
        return;
    }
    let verdict = inc.end(&end).expect("our end");
    assert_eq!(
        verdict.sha256,
        sha256_hex(data),
        "split hashing differs from one-shot"
    );
    assert_eq!(verdict.ok, data.len() as u64 == size);
    let ack = Control::parse(&inc.ack().expect("ack after end").to_json()).expect("ack parses");
    let told = out.handle(&ack);
    assert_eq!(
        told,
        Some(if verdict.ok {
            OutgoingEvent::Delivered
        } else {
            OutgoingEvent::Corrupted
        })
    );
}

fuzz_target!(|input: &[u8]| {
    if let Ok(text) = std::str::from_utf8(input) {
        check_text(text);
    }
    let Some((&step, rest)) = input.split_first() else {
        return;
    };
    let Some((&mode, data)) = rest.split_first() else {
        return;
    };
    let len = data.len() as u64;
    let size = match mode % 3 {
        0 => len,
        1 => len + 1,
        _ => len.saturating_sub(1),
    };
    transfer(data, size, step);
});
