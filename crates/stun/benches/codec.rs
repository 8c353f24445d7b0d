//! STUN codec micro-benchmarks (RFC 8489 §5–§6, §14): what the server does
//! for every Binding request it answers.
//!
//! - decode a 20-byte Binding request (`Message::decode` checks framing once);
//! - decode the RFC 5769 §2.1 sample request and walk all its attributes;
//! - build a Binding success with XOR-MAPPED-ADDRESS and FINGERPRINT into a
//!   reused buffer (no allocation once the buffer has grown);
//! - verify the RFC 5769 §2.1 MESSAGE-INTEGRITY (HMAC-SHA1, short-term key).
//!
//! `cargo bench -p switchboard-stun --bench codec`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

/// RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
/// USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
const RFC5769_2_1: &str = include_str!("../tests/vectors/rfc5769_2_1_request.hex");
/// RFC 5769 §2.1's short-term password (the HMAC key).
const SHORT_TERM: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// A bare Binding request, as a STUN client (or ICE consent check without
/// credentials) sends it.
fn binding_request() -> Vec<u8> {
    let mut buf = Vec::new();
    MessageBuilder::new(
        &mut buf,
        Class::Request,
        Method::BINDING,
        TransactionId([0x5A; 12]),
    );
    buf
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("stun");
    g.throughput(Throughput::Elements(1));

    let request = binding_request();
    g.bench_function("decode_binding_request", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(&request)).unwrap();
            black_box((m.class(), m.method(), m.transaction_id()))
        })
    });

    let sample = hex(RFC5769_2_1);
    g.bench_function("decode_iterate_rfc5769_2_1", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(&sample)).unwrap();
            let tid = m.transaction_id();
            let mut n = 0usize;
            for raw in m.attributes() {
                if Attribute::decode(raw, &tid).is_ok() {
                    n += 1;
                }
            }
            black_box(n)
        })
    });

    let mapped: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let tid = TransactionId([0xA5; 12]);
    let mut out = Vec::with_capacity(2048);
    g.bench_function("build_binding_success_xor_mapped_fingerprint", |b| {
        b.iter(|| {
            out.clear();
            let mut m = MessageBuilder::new(&mut out, Class::Success, Method::BINDING, tid);
            m.add(&Attribute::XorMappedAddress(black_box(mapped)))
                .unwrap();
            m.add_fingerprint().unwrap();
            black_box(m.finish().len())
        })
    });

    let signed = Message::decode(&sample).unwrap();
    assert_eq!(signed.verify_integrity(SHORT_TERM), Ok(()));
    g.bench_function("verify_message_integrity_rfc5769_2_1", |b| {
        b.iter(|| black_box(&signed).verify_integrity(black_box(SHORT_TERM)))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
