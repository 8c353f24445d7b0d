//! `binding` mode: STUN Binding requests (RFC 8489 §7.1, no credentials) at
//! a fixed rate from a few UDP sockets, counting Binding success answers.
//!
//! The requests are paced on a 1 ms tick (whatever is due is sent at once),
//! round-robin over the sockets. The run ends when every request is sent
//! and answered, `--drain-ms` after the last request, or at the time limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stun::{Class, Message, MessageBuilder, Method, TransactionId};
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;

use crate::BindingArgs;
use crate::driver::source_socket;

/// Sends `args.count` Binding requests to `server`; returns the result line.
pub async fn run(server: SocketAddr, args: BindingArgs, limit: Duration) -> anyhow::Result<String> {
    if args.sockets == 0 || args.rate == 0 {
        bail!("--sockets and --rate must be at least 1");
    }
    let start = Instant::now();
    let deadline = start + limit;
    let answered = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::with_capacity(args.sockets);
    let mut receivers = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let s = source_socket(server, 0).context("binding a source socket")?;
        let s = Arc::new(s);
        receivers.push(tokio::spawn(count_answers(s.clone(), answered.clone())));
        sockets.push(s);
    }

    // Transaction ids: 4 random bytes for this run, then the request number.
    let run_id: [u8; 4] = rand::random();
    let mut buf = Vec::with_capacity(64);
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while sent < args.count && Instant::now() < deadline {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        let due = ((elapsed * args.rate as f64) as u64 + 1).min(args.count);
        while sent < due {
            let mut tid = [0u8; 12];
            tid[..4].copy_from_slice(&run_id);
            tid[4..].copy_from_slice(&sent.to_be_bytes());
            buf.clear();
            MessageBuilder::new(
                &mut buf,
                Class::Request,
                Method::BINDING,
                TransactionId(tid),
            );
            let i = usize::try_from(sent % args.sockets as u64).unwrap_or(0);
            if let Some(s) = sockets.get(i) {
                // A full send buffer or ICMP error just loses this request.
                let _ = s.send(&buf).await;
            }
            sent += 1;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();

    let drain_until = (Instant::now() + Duration::from_millis(args.drain_ms)).min(deadline);
    while answered.load(Ordering::Relaxed) < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for r in &receivers {
        r.abort();
    }
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "binding: {sent} sent in {send_secs:.2} s ({:.0}/s), {answered} answered",
        sent as f64 / send_secs.max(1e-9)
    );
    Ok(format!(
        "mode=binding sent={sent} answered={answered} secs={send_secs:.3} rate={:.0}",
        sent as f64 / send_secs.max(1e-9)
    ))
}

/// Counts Binding success responses arriving on `socket` until aborted.
async fn count_answers(socket: Arc<UdpSocket>, answered: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok(n) = socket.recv(&mut buf).await else {
            // ICMP port unreachable and the like: keep listening.
            continue;
        };
        let Some(bytes) = buf.get(..n) else { continue };
        if let Ok(m) = Message::decode(bytes)
            && m.class() == Class::Success
            && m.method() == Method::BINDING
        {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
