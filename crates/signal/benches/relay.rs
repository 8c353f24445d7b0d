//! The hub's cost per relayed message, in memory, no sockets.
//!
//! Peer A sends peer B one `message` whose `data` is a realistic ~300-byte
//! application object (nested object and array, decimals, a big integer,
//! unicode escapes):
//! - `after`: [`Hub::handle_text`], draining [`Hub::poll_output`] and
//!   serializing the relayed message with [`ServerMessage::to_json`]: `data`
//!   kept as its text (today's code);
//! - `before`: the same, plus what the old code did per message instead of
//!   keeping the text: the frame parsed into a `serde_json::Value` and read
//!   into the old `deny_unknown_fields` struct, and the relayed message
//!   serialized from that `Value` (in place of `to_json`). It still pays
//!   the new parse as well (`parse_after` below), so it overstates the old
//!   cost by that much;
//! - `parse_after` / `parse_before`: the parse step alone, new and old.
//!
//! At the end the mean time per message of `before` and `after` over all
//! their iterations and the ratio are printed.
//!
//! `cargo bench -p switchboard-signal --bench relay -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use signal::{
    ConnId, Hub, HubConfig, Output, PeerId, RateLimit, ServerMessage, parse_client_message,
};

/// Wall-clock time passed to the hub (tokens are not used here).
const UNIX_NOW: u64 = 1_800_000_000;

/// A state message as an app might send it, ~300 bytes.
const DATA: &str = r#"{"kind":"state","seq":1042,"muted":false,"video":true,"screen":false,"stats":{"rtt":0.023,"jitter":1.10,"lossRate":0.0,"bitrate":1250000,"frames":[30,29.97,30]},"devices":["Built-in Microphone","FaceTime HD Camera (1C1C:B782)"],"session":123456789012345678901234567890,"note":"caf\u00e9 \ud83d\ude00 reconnecting"}"#;

/// A hub with two peers joined to one room; A's connection, B's peer id.
fn setup() -> (Hub, ConnId, PeerId) {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig {
        // No rate limit in the way of millions of messages.
        rate: RateLimit {
            burst: u32::MAX,
            per_second: u32::MAX,
        },
        ..HubConfig::default()
    });
    let (a, b) = (ConnId(1), ConnId(2));
    let mut you = None;
    for (conn, name) in [(a, "Ann"), (b, "Bob")] {
        hub.handle_connect(conn, Default::default(), now);
        let join = format!(r#"{{"type":"join","v":1,"room":"bench","name":"{name}"}}"#);
        hub.handle_text(conn, &join, now, UNIX_NOW);
        while let Some(out) = hub.poll_output() {
            if let Output::Send {
                to,
                message: ServerMessage::Joined { you: id, .. },
            } = out
                && to == b
            {
                you = Some(id);
            }
        }
    }
    (hub, a, you.expect("B joined"))
}

/// The old parser's fields of a relay (`data` read into a `Value`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OldRelayFields {
    #[serde(rename = "type")]
    _type: String,
    to: String,
    #[serde(default)]
    data: Value,
}

/// What the old parser did with a relay frame.
fn old_parse(text: &str) -> (String, String, Value) {
    let value: Value = serde_json::from_str(text).unwrap();
    let kind = value["type"].as_str().unwrap().to_owned();
    let f: OldRelayFields = serde_json::from_value(value).unwrap();
    (kind, f.to, f.data)
}

/// The old relayed message: `data` a `Value`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum OldServerMessage {
    Message { from: PeerId, data: Value },
}

/// Runs `f` `iters` times; adds the time to `total`.
fn timed(iters: u64, total: &Cell<(Duration, u64)>, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    let (d, n) = total.get();
    total.set((d + elapsed, n + iters));
    elapsed
}

fn per_message(total: (Duration, u64)) -> f64 {
    total.0.as_nanos() as f64 / total.1.max(1) as f64
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let (mut hub, a, pb) = setup();
    let frame = format!(r#"{{"type":"message","to":"{pb}","data":{DATA}}}"#);
    println!(
        "relayed frame {} bytes, data {} bytes",
        frame.len(),
        DATA.len()
    );
    let now = Instant::now();

    // Both produce the same relayed message, up to the old re-encoding.
    hub.handle_text(a, &frame, now, UNIX_NOW);
    let relayed = match hub.poll_output() {
        Some(Output::Send { message, .. }) => message.to_json(),
        other => panic!("{other:?}"),
    };
    assert!(
        relayed.ends_with(&format!(r#""data":{DATA}}}"#)),
        "{relayed}"
    );
    let (_, _, old_data) = old_parse(&frame);
    let old = serde_json::to_string(&OldServerMessage::Message {
        from: PeerId("p1".into()),
        data: old_data,
    })
    .unwrap();
    println!("old relayed: {old}\nnew relayed: {relayed}");

    let after_total = Cell::new((Duration::ZERO, 0));
    let before_total = Cell::new((Duration::ZERO, 0));
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    g.bench_function("after", |bench| {
        bench.iter_custom(|iters| {
            timed(iters, &after_total, || {
                hub.handle_text(a, black_box(&frame), now, UNIX_NOW);
                while let Some(out) = hub.poll_output() {
                    if let Output::Send { message, .. } = out {
                        black_box(message.to_json());
                    }
                }
            })
        })
    });
    g.bench_function("before", |bench| {
        bench.iter_custom(|iters| {
            timed(iters, &before_total, || {
                hub.handle_text(a, black_box(&frame), now, UNIX_NOW);
                while let Some(out) = hub.poll_output() {
                    if let Output::Send {
                        message: ServerMessage::Message { from, .. },
                        ..
                    } = out
                    {
                        let (_, _, data) = old_parse(black_box(&frame));
                        let old = OldServerMessage::Message { from, data };
                        black_box(serde_json::to_string(&old).unwrap());
                    }
                }
            })
        })
    });
    g.bench_function("parse_after", |bench| {
        bench.iter(|| parse_client_message(black_box(&frame), 64 * 1024).unwrap())
    });
    g.bench_function("parse_before", |bench| {
        bench.iter(|| old_parse(black_box(&frame)))
    });
    g.finish();
    c.final_summary();

    let (after, before) = (
        per_message(after_total.get()),
        per_message(before_total.get()),
    );
    println!(
        "per relayed message (mean over all iterations): before {before:.0} ns, after {after:.0} ns, before/after {:.2}x",
        before / after
    );
}
