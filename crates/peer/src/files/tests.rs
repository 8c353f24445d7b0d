use super::*;

fn file(id: &str, name: &str, size: u64, mime: &str) -> Control {
    Control::File {
        id: id.into(),
        name: name.into(),
        size,
        mime: mime.into(),
    }
}

fn parse_file(text: &str) -> (String, String, u64, String) {
    match Control::parse(text) {
        Ok(Control::File {
            id,
            name,
            size,
            mime,
        }) => (id, name, size, mime),
        other => panic!("{text}: {other:?}"),
    }
}

/// Deterministic bytes (xorshift), for data that is not all alike.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn json_is_what_files_js_sends() {
    // JSON.stringify({ t: 'file', id, name, size, mime }) and friends.
    assert_eq!(
        file("1-k3j2h1", "report.pdf", 12345, "application/pdf").to_json(),
        r#"{"t":"file","id":"1-k3j2h1","name":"report.pdf","size":12345,"mime":"application/pdf"}"#
    );
    assert_eq!(
        file("2-000000", "a \"b\"\\c/\u{1}\n é 😀", 0, "").to_json(),
        "{\"t\":\"file\",\"id\":\"2-000000\",\"name\":\"a \\\"b\\\"\\\\c/\\u0001\\n é 😀\",\"size\":0,\"mime\":\"\"}"
    );
    assert_eq!(
        file("x", "big", MAX_SIZE, "").to_json(),
        r#"{"t":"file","id":"x","name":"big","size":9007199254740991,"mime":""}"#
    );
    assert_eq!(
        Control::End {
            id: "1-k3j2h1".into(),
            sha256: sha256_hex(b"abc"),
        }
        .to_json(),
        r#"{"t":"end","id":"1-k3j2h1","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#
    );
    assert_eq!(
        Control::Written {
            id: "1-k3j2h1".into(),
            bytes: 1048576,
        }
        .to_json(),
        r#"{"t":"written","id":"1-k3j2h1","bytes":1048576}"#
    );
    assert_eq!(
        Control::Ack {
            id: "1-k3j2h1".into(),
            ok: true,
        }
        .to_json(),
        r#"{"t":"ack","id":"1-k3j2h1","ok":true}"#
    );
    assert_eq!(
        Control::Ack {
            id: "1-k3j2h1".into(),
            ok: false,
        }
        .to_json(),
        r#"{"t":"ack","id":"1-k3j2h1","ok":false}"#
    );
}

#[test]
fn browser_messages_parse() {
    assert_eq!(
        Control::parse(
            r#"{"t":"file","id":"1-k3j2h1","name":"report.pdf","size":12345,"mime":"application/pdf"}"#
        ),
        Ok(file("1-k3j2h1", "report.pdf", 12345, "application/pdf"))
    );
    // Whitespace and key order are JSON's business, not the wire's.
    assert_eq!(
        Control::parse(
            " {\"size\": 3, \"mime\": \"\", \"name\": \"a\", \"id\": \"i\", \"t\": \"file\"}\n"
        ),
        Ok(file("i", "a", 3, ""))
    );
    assert_eq!(
        Control::parse(r#"{"t":"end","id":"1-a","sha256":"00ff"}"#),
        Ok(Control::End {
            id: "1-a".into(),
            sha256: "00ff".into()
        })
    );
    assert_eq!(
        Control::parse(r#"{"t":"written","id":"1-a","bytes":1048576}"#),
        Ok(Control::Written {
            id: "1-a".into(),
            bytes: 1048576
        })
    );
    assert_eq!(
        Control::parse(r#"{"t":"ack","id":"1-a","ok":false}"#),
        Ok(Control::Ack {
            id: "1-a".into(),
            ok: false
        })
    );
}

#[test]
fn every_parsed_message_round_trips() {
    // What parse returns (sanitised) serialises to a text that parses back to it.
    let messages = [
        file("1-abcdef", "ok.txt", 5, "text/plain"),
        file("", "a\"😀é\u{7f}", MAX_SIZE, ""), // sanitised already
        Control::End {
            id: "1-abcdef".into(),
            sha256: sha256_hex(b""),
        },
        Control::End {
            id: "x".repeat(100), // kept whole: only a `file`'s id is cut
            sha256: String::new(),
        },
        Control::Written {
            id: "1-abcdef".into(),
            bytes: u64::MAX,
        },
        Control::Ack {
            id: "\u{2028}".into(),
            ok: true,
        },
    ];
    for msg in messages {
        assert_eq!(Control::parse(&msg.to_json()), Ok(msg.clone()), "{msg:?}");
    }
}

#[test]
fn hostile_names_are_sanitised_like_files_js() {
    // The e2e test's case.
    let (_, name, _, mime) = parse_file(
        r#"{"t":"file","id":"x1","name":"../../etc/passwd","size":10,"mime":"text/html; evil"}"#,
    );
    assert_eq!(name, ".._.._etc_passwd");
    assert_eq!(mime, "");
    let name_of = |name: &str| {
        parse_file(&format!(
            r#"{{"t":"file","id":"x","size":1,"name":{name}}}"#
        ))
        .1
    };
    assert_eq!(
        name_of(r#""C:\\Windows\\a\u0000b\nc\u001fd\u007f""#),
        "C:_Windows_a_b_c_d\u{7f}"
    );
    assert_eq!(name_of(r#""""#), "file");
    assert_eq!(name_of("null"), "file");
    assert_eq!(parse_file(r#"{"t":"file","id":"x","size":1}"#).1, "file");
    assert_eq!(name_of("5"), "5");
    assert_eq!(name_of("false"), "false");
    assert_eq!(name_of("{}"), "[object Object]");
    assert_eq!(name_of(r#"["a/b",null,1]"#), "a_b,,1");
    // 255 UTF-16 code units at most.
    assert_eq!(
        name_of(&format!("\"{}\"", "n".repeat(300))),
        "n".repeat(255)
    );
    // A cut through a surrogate pair keeps one unit, as a lone surrogate in
    // the browser and U+FFFD here.
    let emoji = format!("\"{}{}\"", "n".repeat(254), "😀".repeat(3));
    assert_eq!(name_of(&emoji), format!("{}\u{FFFD}", "n".repeat(254)));
    // What a browser sender sends after cutting a long name mid-pair.
    assert_eq!(name_of(r#""abc\ud83d""#), "abc\u{FFFD}");
}

#[test]
fn hostile_mimes_are_dropped() {
    let mime_of = |mime: &str| {
        parse_file(&format!(
            r#"{{"t":"file","id":"x","size":1,"mime":{mime}}}"#
        ))
        .3
    };
    for good in [
        "text/plain",
        "application/vnd.ms-excel",
        "image/svg+xml",
        "a_b/c.d-e+f",
    ] {
        assert_eq!(mime_of(&format!("\"{good}\"")), good);
    }
    for bad in [
        r#""""#,
        r#""text""#,
        r#""text/""#,
        r#""/plain""#,
        r#""text/plain; charset=utf-8""#,
        r#""text/html\n""#,
        r#""a/b/c""#,
        r#""tëxt/plain""#,
        r#"" text/plain""#,
        "5",
        "null",
        r#"["text/plain"]"#,
    ] {
        assert_eq!(mime_of(bad), "", "{bad}");
    }
}

#[test]
fn sizes_must_be_safe_integers() {
    let size_of = |size: &str| {
        Control::parse(&format!(
            r#"{{"t":"file","id":"x","name":"a","size":{size}}}"#
        ))
        .map(|c| match c {
            Control::File { size, .. } => size,
            _ => unreachable!(),
        })
    };
    assert_eq!(size_of("0"), Ok(0));
    assert_eq!(size_of("-0"), Ok(0));
    assert_eq!(size_of("9007199254740991"), Ok(MAX_SIZE));
    assert_eq!(size_of("1e3"), Ok(1000));
    assert_eq!(size_of("5.0"), Ok(5));
    // Number(size) coerces, as files.js does.
    assert_eq!(size_of(r#""10""#), Ok(10));
    assert_eq!(size_of(r#"" 0x10 ""#), Ok(16));
    assert_eq!(size_of("null"), Ok(0));
    assert_eq!(size_of("true"), Ok(1));
    assert_eq!(size_of("[7]"), Ok(7));
    for bad in [
        "-1",
        "1.5",
        "9007199254740992",
        "1e300",
        r#""ten""#,
        r#""1 0""#,
        "{}",
        "[1,2]",
    ] {
        assert_eq!(size_of(bad), Err(FileWireError::BadSize), "{bad}");
    }
    assert_eq!(
        Control::parse(r#"{"t":"file","id":"x","name":"a"}"#),
        Err(FileWireError::BadSize)
    );
    // JavaScript would read 1e400 as Infinity and ignore the message too.
    assert!(matches!(size_of("1e400"), Err(FileWireError::Json(_))));
}

#[test]
fn ids_follow_files_js() {
    let long = "i".repeat(70);
    let (id, ..) = parse_file(&format!(r#"{{"t":"file","id":"{long}","size":1}}"#));
    assert_eq!(id, "i".repeat(64));
    for bad in ["5", "null", r#"["a"]"#] {
        let text = format!(r#"{{"t":"file","id":{bad},"size":1}}"#);
        assert_eq!(Control::parse(&text), Err(FileWireError::BadId), "{text}");
        let text = format!(r#"{{"t":"end","id":{bad},"sha256":""}}"#);
        assert_eq!(Control::parse(&text), Err(FileWireError::BadId), "{text}");
    }
    assert_eq!(
        Control::parse(r#"{"t":"file","size":1}"#),
        Err(FileWireError::BadId)
    );
    // `written` and `ack` look their transfer up by String(id).
    assert_eq!(
        Control::parse(r#"{"t":"written","id":["1-a"],"bytes":1}"#),
        Ok(Control::Written {
            id: "1-a".into(),
            bytes: 1
        })
    );
    assert_eq!(
        Control::parse(r#"{"t":"ack","ok":true}"#),
        Ok(Control::Ack {
            id: "undefined".into(),
            ok: true
        })
    );
}

#[test]
fn written_and_ack_fields_follow_files_js() {
    let bytes_of = |b: &str| {
        Control::parse(&format!(r#"{{"t":"written","id":"a","bytes":{b}}}"#)).map(|c| match c {
            Control::Written { bytes, .. } => bytes,
            _ => unreachable!(),
        })
    };
    assert_eq!(bytes_of("5"), Ok(5));
    assert_eq!(bytes_of("-5"), Ok(0));
    assert_eq!(bytes_of("1.9"), Ok(1));
    assert_eq!(bytes_of("1e300"), Ok(u64::MAX));
    for bad in [r#""5""#, "null", "true", "[5]"] {
        assert_eq!(bytes_of(bad), Err(FileWireError::BadBytes), "{bad}");
    }
    let ok_of = |ok: &str| match Control::parse(&format!(r#"{{"t":"ack","id":"a"{ok}}}"#)) {
        Ok(Control::Ack { ok, .. }) => ok,
        other => panic!("{other:?}"),
    };
    assert!(ok_of(r#","ok":true"#));
    assert!(ok_of(r#","ok":1"#));
    assert!(ok_of(r#","ok":"no""#));
    assert!(ok_of(r#","ok":{}"#));
    assert!(!ok_of(r#","ok":false"#));
    assert!(!ok_of(r#","ok":0"#));
    assert!(!ok_of(r#","ok":"""#));
    assert!(!ok_of(r#","ok":null"#));
    assert!(!ok_of(""));
    // A non-string sha256 is an `end` that never verifies.
    assert_eq!(
        Control::parse(r#"{"t":"end","id":"a","sha256":5}"#),
        Ok(Control::End {
            id: "a".into(),
            sha256: String::new()
        })
    );
}

#[test]
fn other_texts_are_not_control_messages() {
    for text in ["", "not json", "{", r#"{"t":"file","id":"x","size":1,}"#] {
        assert!(
            matches!(Control::parse(text), Err(FileWireError::Json(_))),
            "{text}"
        );
    }
    for text in [
        "null",
        "5",
        r#""file""#,
        r#"["file"]"#,
        "{}",
        r#"{"t":"File","id":"x","size":1}"#,
        r#"{"t":["file"],"id":"x","size":1}"#,
        r#"{"text":"hello"}"#,
    ] {
        assert_eq!(
            Control::parse(text),
            Err(FileWireError::UnknownType),
            "{text}"
        );
    }
    // As in JSON.parse, the last of duplicate keys wins.
    assert_eq!(
        Control::parse(r#"{"t":"end","t":"ack","id":"a","ok":true}"#),
        Ok(Control::Ack {
            id: "a".into(),
            ok: true
        })
    );
}

#[test]
fn known_sha256_vectors() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // A million 'a's, streamed through the receiver in odd pieces.
    let million = vec![b'a'; 1_000_000];
    let mut inc = Incoming::new(&file("m", "a", 1_000_000, "")).unwrap();
    for piece in million.chunks(999) {
        inc.chunk(piece).unwrap();
    }
    let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    let verdict = inc
        .end(&Control::End {
            id: "m".into(),
            sha256: expected.into(),
        })
        .unwrap();
    assert_eq!(
        verdict,
        Verdict {
            ok: true,
            sha256: expected.into()
        }
    );
}

#[test]
fn chunked_hashing_equals_one_shot() {
    // Any split of any data hashes like the whole, on both sides.
    for (len, seed) in [
        (0, 1),
        (1, 2),
        (CHUNK - 1, 3),
        (CHUNK, 4),
        (3 * CHUNK + 5, 5),
        (100_003, 6),
    ] {
        let data = bytes(len, seed);
        let whole = sha256_hex(&data);
        for split in [1, 7, 64, 1000, CHUNK] {
            let mut inc = Incoming::new(&file("p", "p", len as u64, "")).unwrap();
            let mut out = Outgoing::new("p", "p", len as u64, "").unwrap();
            // Splits of varying lengths: split, split+1, … wrapping at 2·split.
            let mut rest = &data[..];
            let mut step = split;
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(step.min(rest.len()).min(CHUNK));
                inc.chunk(piece).unwrap();
                out.sent(piece).unwrap();
                rest = tail;
                step = if step >= 2 * split { split } else { step + 1 };
            }
            let end = out.finish().unwrap();
            assert_eq!(
                end,
                Control::End {
                    id: "p".into(),
                    sha256: whole.clone()
                }
            );
            assert_eq!(
                inc.end(&end).unwrap(),
                Verdict {
                    ok: true,
                    sha256: whole.clone()
                }
            );
        }
    }
}

#[test]
fn a_transfer_end_to_end() {
    let data = bytes(3 * CHUNK + 5, 9);
    let mut out = Outgoing::new(
        "1-abcdef",
        "x.bin",
        data.len() as u64,
        "application/octet-stream",
    )
    .unwrap();
    let header = out.header();
    assert_eq!(
        header.to_json(),
        r#"{"t":"file","id":"1-abcdef","name":"x.bin","size":49157,"mime":"application/octet-stream"}"#
    );
    let mut inc = Incoming::new(&Control::parse(&header.to_json()).unwrap()).unwrap();
    assert_eq!(
        (inc.id(), inc.name(), inc.size(), inc.mime()),
        ("1-abcdef", "x.bin", 49157, "application/octet-stream")
    );
    // Chunks are 16 KiB, the last one shorter: four messages, as in the e2e test.
    let mut chunks = 0;
    while out.can_send() {
        let from = out.bytes_sent() as usize;
        let chunk = &data[from..from + out.next_len()];
        out.sent(chunk).unwrap();
        inc.chunk(chunk).unwrap();
        chunks += 1;
    }
    assert_eq!(chunks, 4);
    assert_eq!(out.next_len(), 0);
    let written = inc.written(inc.received()).unwrap();
    assert_eq!(
        written.to_json(),
        r#"{"t":"written","id":"1-abcdef","bytes":49157}"#
    );
    assert_eq!(
        out.handle(&Control::parse(&written.to_json()).unwrap()),
        Some(OutgoingEvent::Progress { written: 49157 })
    );
    let end = out.finish().unwrap();
    assert_eq!(out.state(), OutgoingState::Sent);
    assert_eq!(out.sha256(), Some(sha256_hex(&data).as_str()));
    let verdict = inc.end(&Control::parse(&end.to_json()).unwrap()).unwrap();
    assert!(verdict.ok);
    assert_eq!(inc.state(), IncomingState::Verified);
    let ack = inc.ack().unwrap();
    assert_eq!(ack.to_json(), r#"{"t":"ack","id":"1-abcdef","ok":true}"#);
    assert_eq!(
        out.handle(&Control::parse(&ack.to_json()).unwrap()),
        Some(OutgoingEvent::Delivered)
    );
    assert_eq!(out.state(), OutgoingState::Delivered);
    // Only the first ack counts.
    assert_eq!(out.handle(&ack), None);
}

#[test]
fn the_window_follows_written_reports() {
    let size = 40 * 1024 * 1024;
    let mut out = Outgoing::new("w", "w", size, "").unwrap();
    let chunk = vec![0u8; CHUNK];
    while out.can_send() {
        out.sent(&chunk[..out.next_len()]).unwrap();
    }
    // files.js waits while done - written > WINDOW: one chunk past it.
    assert_eq!(out.bytes_sent(), WINDOW + CHUNK as u64);
    assert_eq!(out.next_len(), 0);
    // Reports for other transfers change nothing.
    let other = Control::Written {
        id: "v".into(),
        bytes: size,
    };
    assert_eq!(out.handle(&other), None);
    assert!(!out.can_send());
    let report = Control::Written {
        id: "w".into(),
        bytes: WRITE_BATCH,
    };
    assert_eq!(
        out.handle(&report),
        Some(OutgoingEvent::Progress {
            written: WRITE_BATCH
        })
    );
    assert!(out.can_send());
    // A stale (lower) report does not shrink the window.
    let stale = Control::Written {
        id: "w".into(),
        bytes: 5,
    };
    assert_eq!(
        out.handle(&stale),
        Some(OutgoingEvent::Progress {
            written: WRITE_BATCH
        })
    );
    assert_eq!(out.bytes_written(), WRITE_BATCH);
    // An ack before `end` is not this transfer's verdict.
    assert_eq!(
        out.handle(&Control::Ack {
            id: "w".into(),
            ok: true
        }),
        None
    );
    assert_eq!(out.state(), OutgoingState::Sending);
    assert_eq!(
        out.finish(),
        Err(FileWireError::Incomplete {
            sent: WINDOW + CHUNK as u64,
            size
        })
    );
}

#[test]
fn more_data_than_announced_fails_the_transfer() {
    // The e2e test's case: 10 bytes announced, 11 sent.
    let mut inc = Incoming::new(
        &Control::parse(r#"{"t":"file","id":"x1","name":"a","size":10,"mime":""}"#).unwrap(),
    )
    .unwrap();
    assert_eq!(inc.chunk(&[0; 11]), Err(FileWireError::MoreThanAnnounced));
    assert_eq!(
        FileWireError::MoreThanAnnounced.to_string(),
        "more data than announced"
    );
    assert_eq!(inc.state(), IncomingState::Failed);
    assert_eq!(inc.received(), 0);
    assert_eq!(inc.chunk(&[0; 1]), Err(FileWireError::NotReceiving));
    assert_eq!(inc.written(0), None);
    let end = Control::End {
        id: "x1".into(),
        sha256: sha256_hex(&[]),
    };
    assert_eq!(inc.end(&end), Err(FileWireError::NotReceiving));
    assert_eq!(inc.ack(), None);

    // Exactly the size in pieces is fine; one byte more is not.
    let mut inc = Incoming::new(&file("y", "a", 10, "")).unwrap();
    inc.chunk(&[1; 6]).unwrap();
    inc.chunk(&[1; 4]).unwrap();
    inc.chunk(&[]).unwrap();
    assert_eq!(inc.chunk(&[1]), Err(FileWireError::MoreThanAnnounced));

    // The sender refuses to send it in the first place.
    let mut out = Outgoing::new("z", "a", 10, "").unwrap();
    out.sent(&[0; 6]).unwrap();
    assert_eq!(out.sent(&[0; 5]), Err(FileWireError::MoreThanAnnounced));
    assert_eq!(out.bytes_sent(), 6);
    assert_eq!(
        out.sent(&vec![0; CHUNK + 1]),
        Err(FileWireError::ChunkTooLarge(CHUNK + 1))
    );
}

#[test]
fn a_tampered_or_short_file_is_not_ok() {
    let data = bytes(100_000, 11);
    let mut tampered = data.clone();
    tampered[CHUNK + 100] ^= 0xff;
    let mut out = Outgoing::new("t", "evil.bin", data.len() as u64, "").unwrap();
    let mut inc = Incoming::new(&out.header()).unwrap();
    for (sent, got) in data.chunks(CHUNK).zip(tampered.chunks(CHUNK)) {
        out.sent(sent).unwrap();
        inc.chunk(got).unwrap();
    }
    let verdict = inc.end(&out.finish().unwrap()).unwrap();
    assert_eq!(
        verdict,
        Verdict {
            ok: false,
            sha256: sha256_hex(&tampered)
        }
    );
    assert_eq!(inc.state(), IncomingState::Corrupted);
    let ack = inc.ack().unwrap();
    assert_eq!(ack.to_json(), r#"{"t":"ack","id":"t","ok":false}"#);
    assert_eq!(out.handle(&ack), Some(OutgoingEvent::Corrupted));
    assert_eq!(out.state(), OutgoingState::Corrupted);
    // A second `end` is ignored.
    assert_eq!(
        inc.end(&Control::End {
            id: "t".into(),
            sha256: String::new()
        }),
        Err(FileWireError::NotReceiving)
    );

    // Missing bytes fail even when the hash is of what arrived.
    let mut inc = Incoming::new(&file("s", "a", 10, "")).unwrap();
    inc.chunk(b"12345").unwrap();
    let end = Control::End {
        id: "s".into(),
        sha256: sha256_hex(b"12345"),
    };
    assert!(!inc.end(&end).unwrap().ok);
    assert_eq!(inc.state(), IncomingState::Corrupted);

    // An uppercase digest is a different string.
    let mut inc = Incoming::new(&file("u", "a", 3, "")).unwrap();
    inc.chunk(b"abc").unwrap();
    let end = Control::End {
        id: "u".into(),
        sha256: sha256_hex(b"abc").to_uppercase(),
    };
    assert!(!inc.end(&end).unwrap().ok);
}

#[test]
fn end_must_name_the_transfer() {
    let mut inc = Incoming::new(&file("a", "a", 0, "")).unwrap();
    let empty = sha256_hex(b"");
    assert_eq!(
        inc.end(&Control::End {
            id: "b".into(),
            sha256: empty.clone()
        }),
        Err(FileWireError::NotOurs)
    );
    assert_eq!(
        inc.end(&Control::Ack {
            id: "a".into(),
            ok: true
        }),
        Err(FileWireError::NotOurs)
    );
    assert_eq!(inc.state(), IncomingState::Receiving);
    assert!(
        inc.end(&Control::End {
            id: "a".into(),
            sha256: empty
        })
        .unwrap()
        .ok
    );

    // A `file` id longer than 64 is cut, and the sender's whole id then never
    // matches: files.js never ends such a transfer either.
    let long = "i".repeat(70);
    let mut inc = Incoming::new(
        &Control::parse(&format!(r#"{{"t":"file","id":"{long}","size":0}}"#)).unwrap(),
    )
    .unwrap();
    let end = Control::parse(&format!(r#"{{"t":"end","id":"{long}","sha256":""}}"#)).unwrap();
    assert_eq!(inc.end(&end), Err(FileWireError::NotOurs));
    assert_eq!(Incoming::new(&end).err(), Some(FileWireError::NotFile));
}

#[test]
fn written_reports_are_capped_and_monotonic() {
    let mut inc = Incoming::new(&file("r", "a", 3 * WRITE_BATCH, "")).unwrap();
    assert_eq!(inc.written(0), None);
    let batch = vec![0u8; CHUNK];
    for _ in 0..(WRITE_BATCH as usize / CHUNK) {
        inc.chunk(&batch).unwrap();
    }
    assert_eq!(inc.unreported(), WRITE_BATCH);
    // Never more than was received.
    assert_eq!(
        inc.written(u64::MAX),
        Some(Control::Written {
            id: "r".into(),
            bytes: WRITE_BATCH
        })
    );
    assert_eq!(inc.unreported(), 0);
    assert_eq!(inc.written(WRITE_BATCH), None);
    assert_eq!(inc.written(10), None);
    inc.chunk(&batch).unwrap();
    inc.write_failed();
    // A failed write is never reported, and the verdict is not ok.
    assert_eq!(inc.written(inc.received()), None);
    inc.chunk(&batch).unwrap();
    let verdict = inc
        .end(&Control::End {
            id: "r".into(),
            sha256: String::new(),
        })
        .unwrap();
    assert!(!verdict.ok);
    assert_eq!(inc.state(), IncomingState::Failed);
    assert_eq!(
        inc.ack(),
        Some(Control::Ack {
            id: "r".into(),
            ok: false
        })
    );
    assert_eq!(inc.written(inc.received()), None);
}

#[test]
fn an_empty_file() {
    let mut out = Outgoing::new("e", "", 0, "").unwrap();
    assert_eq!(out.header(), file("e", "file", 0, ""));
    assert!(!out.can_send());
    let end = out.finish().unwrap();
    assert_eq!(out.finish(), Err(FileWireError::NotSending));
    assert_eq!(out.sent(&[]), Err(FileWireError::NotSending));
    let mut inc = Incoming::new(&out.header()).unwrap();
    assert_eq!(inc.written(0), None);
    assert!(inc.end(&end).unwrap().ok);
}

#[test]
fn outgoing_follows_the_browser_sender() {
    let long = "😀".repeat(200); // 400 UTF-16 units
    let out = Outgoing::new("1-a", &long, 1, "text/plain").unwrap();
    assert_eq!(out.name(), format!("{}\u{FFFD}", "😀".repeat(127)));
    assert_eq!(js::len_utf16(out.name()), MAX_NAME);
    assert_eq!(
        Outgoing::new("1-a", "a", MAX_SIZE + 1, "").err(),
        Some(FileWireError::BadSize)
    );
    assert!(Outgoing::new("i".repeat(64), "a", MAX_SIZE, "").is_ok());
    assert_eq!(
        Outgoing::new("i".repeat(65), "a", 1, "").err(),
        Some(FileWireError::IdTooLong)
    );
}

#[test]
fn a_hand_made_file_message_is_sanitised_too() {
    let inc = Incoming::new(&file(&"i".repeat(80), "../x\n", 1, "text/html; evil")).unwrap();
    assert_eq!(
        (inc.id(), inc.name(), inc.mime()),
        ("i".repeat(64).as_str(), ".._x_", "")
    );
    assert_eq!(
        Incoming::new(&file("i", "a", MAX_SIZE + 1, "")).err(),
        Some(FileWireError::BadSize)
    );
}

#[test]
fn transfer_ids_look_like_the_apps() {
    assert_eq!(transfer_id(1, 0), "1-000000");
    assert_eq!(transfer_id(12, 36_u64.pow(6) - 1), "12-zzzzzz");
    assert_eq!(transfer_id(3, 36_u64.pow(6) + 35), "3-00000z");
    assert_eq!(transfer_id(7, 1_234_567_890), format!("7-{}", "kf12oi"));
    let mut ids = TransferIds::default();
    assert_eq!(ids.next_id(0), "1-000000");
    assert_eq!(ids.next_id(36), "2-000010");
    let id = ids.next_id(rand::random());
    assert!(id.starts_with("3-") && id.len() == 8, "{id}");
    assert!(
        id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
}
