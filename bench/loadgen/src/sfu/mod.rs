//! `sfu` mode: the same synthetic group call against Switchboard's SFU or
//! Janus's VideoRoom, for `bench/run`'s SFU phase.
//!
//! `--publishers` str0m peers each send VP8 simulcast (three layers, see
//! [`media`]) at `--fps`; `--subscribers` str0m peers each receive every
//! publisher's high layer. After `--warmup-secs` (joins, ICE, DTLS, first
//! keyframes) a `--measure-secs` window counts, per subscriber and
//! publisher, the frames that arrived, the RTP packets subscribers got, and
//! the server's CPU time (from `/proc/<--server-pid>/stat`). One `RESULT`
//! line: streams held, frame loss, server CPU per forwarded packet.
//!
//! Local only: signaling to a loopback `--server`, media from sockets on
//! `--media-ip` (127.0.0.1, or an address of a network namespace the
//! benchmark made: Janus gathers no loopback candidates) to that address or
//! loopback, nothing else; bounded by the window and `--secs`.

mod janus;
mod media;
mod switchboard;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use media::{Media, Role, SdpLink, StreamCount, Totals, Window};

use crate::{SfuArgs, SfuTarget};

/// A stream counts as held when it loses less than this (percent).
const HELD_BELOW_LOSS_PCT: f64 = 1.0;
/// Time between two participants' joins (a burst of 100 DTLS handshakes
/// at once measures the handshakes, not forwarding).
const JOIN_GAP: Duration = Duration::from_millis(30);

/// Runs the call; returns the `RESULT` line's fields.
pub async fn run(server: SocketAddr, args: SfuArgs, limit: Duration) -> anyhow::Result<String> {
    if args.publishers == 0 || args.publishers > 1000 || args.subscribers > 1000 {
        bail!("--publishers 1..=1000, --subscribers 0..=1000");
    }
    let start = Instant::now();
    let join_time = JOIN_GAP * (args.publishers + args.subscribers) as u32;
    let from = start + join_time + Duration::from_secs(args.warmup_secs);
    let window = Window {
        from,
        until: from + Duration::from_secs(args.measure_secs),
    };
    let deadline = window.until + Duration::from_millis(500);
    if deadline > start + limit {
        bail!("warm-up plus measurement exceed --secs {}", limit.as_secs());
    }
    let totals = Arc::new(Totals::default());
    let room = format!("bench-sfu-{}", std::process::id());
    let janus_room = match args.target {
        SfuTarget::Janus => Some(janus::Room::create(server, args.publishers).await?),
        SfuTarget::Switchboard => None,
    };
    let mut media_tasks: JoinSet<(Role, anyhow::Result<HashMap<u16, StreamCount>>)> =
        JoinSet::new();
    let mut signaling = JoinSet::new();
    let publishers = (0..args.publishers).map(|i| Role::Publisher(i as u16));
    let subscribers = (0..args.subscribers).map(|_| Role::Subscriber);
    for (i, role) in publishers.chain(subscribers).enumerate() {
        let mut media = Media::new(role, args.fps, args.media_ip).await?;
        let (to_media, from_signaling) = mpsc::unbounded_channel();
        let (to_signaling, from_media) = mpsc::unbounded_channel();
        let link = SdpLink {
            to_media,
            from_media,
        };
        let name = format!("bench{i}");
        let t = totals.clone();
        match (&janus_room, role) {
            (None, _) => {
                let offer = media.offer()?;
                signaling.spawn(switchboard::signal(
                    server,
                    room.clone(),
                    name,
                    role,
                    offer,
                    link,
                    deadline,
                ));
            }
            (Some(r), Role::Publisher(_)) => {
                let offer = media.offer()?;
                signaling.spawn(r.clone().publish(name, offer, link, deadline));
            }
            (Some(r), Role::Subscriber) => {
                signaling.spawn(r.clone().subscribe(name, link, deadline));
            }
        }
        media_tasks.spawn(async move {
            let r = media
                .run(from_signaling, to_signaling, t, window, deadline)
                .await;
            (role, r)
        });
        tokio::time::sleep(JOIN_GAP).await;
    }
    tokio::time::sleep_until(window.from.into()).await;
    let cpu_from = cpu_ticks(args.server_pid)?;
    let own_from = cpu_ticks(std::process::id())?;
    tokio::time::sleep_until(window.until.into()).await;
    let cpu_until = cpu_ticks(args.server_pid)?;
    let own_until = cpu_ticks(std::process::id())?;

    let mut failures = 0u64;
    while let Some(r) = signaling.join_next().await {
        if let Ok(Err(e)) = r {
            failures += 1;
            eprintln!("signaling: {e:#}");
        }
    }
    let expected = u64::from(args.fps) * args.measure_secs;
    let mut losses: Vec<f64> = Vec::new();
    while let Some(r) = media_tasks.join_next().await {
        let (role, r) = r.context("media task")?;
        let streams = match r {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                eprintln!("media: {e:#}");
                HashMap::new()
            }
        };
        if matches!(role, Role::Subscriber) {
            for p in 0..args.publishers as u16 {
                let got = streams.get(&p).map_or(0, |s| s.frames).min(expected);
                losses.push(100.0 * (expected - got) as f64 / expected.max(1) as f64);
            }
        }
    }
    if let Some(r) = janus_room {
        r.destroy().await;
    }
    let streams = losses.len();
    let held = losses.iter().filter(|l| **l < HELD_BELOW_LOSS_PCT).count();
    let mean = losses.iter().sum::<f64>() / streams.max(1) as f64;
    let worst = losses.iter().cloned().fold(0.0, f64::max);
    let packets = totals.rtp_packets.load(Ordering::Relaxed);
    let secs = args.measure_secs.max(1) as f64;
    let tick_us = 1_000_000.0 / clock_ticks_per_second();
    let server_us = cpu_until.saturating_sub(cpu_from) as f64 * tick_us;
    let own_us = own_until.saturating_sub(own_from) as f64 * tick_us;
    let per_packet = if packets == 0 {
        0.0
    } else {
        server_us / packets as f64
    };
    Ok(format!(
        "target={:?} publishers={} subscribers={} streams={streams} held={held} \
         loss_mean_pct={mean:.2} loss_worst_pct={worst:.2} packets={packets} pps={:.0} \
         server_cpu_pct={:.1} server_us_per_packet={per_packet:.2} loadgen_cpu_pct={:.1} \
         keyframe_requests={} failures={failures}",
        args.target,
        args.publishers,
        args.subscribers,
        packets as f64 / secs,
        server_us / secs / 10_000.0,
        own_us / secs / 10_000.0,
        totals.keyframe_requests.load(Ordering::Relaxed),
    ))
}

/// User plus system CPU time of process `pid` (all its threads), in clock
/// ticks: fields 14 and 15 of `/proc/<pid>/stat` (proc(5)).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is --server-pid right?)"))?;
    // The command name may hold spaces and parentheses; fields follow the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next().context("no utime")?.parse()?;
    let stime: u64 = fields.next().context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's
/// USER_HZ, fixed by its ABI).
fn clock_ticks_per_second() -> f64 {
    100.0
}
