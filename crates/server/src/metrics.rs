//! Prometheus metrics (text format 0.0.4, `prometheus-client`) on
//! `--metrics-listen` (default 127.0.0.1:9641, coturn's port), with
//! `/healthz` and `/readyz` beside them for probes that should not reach
//! the public port.
//!
//! Nothing here is touched per packet: the cores keep plain counters
//! (`turn::Server::stats()`, `signal::Hub::stats()`), each TURN worker
//! publishes a snapshot about once a second, and a scrape reads the latest
//! snapshots through [`Sources`], a `prometheus-client` collector. Labels
//! name kinds (method, result, reason, transport), never users or
//! addresses. The metric names and their meaning are listed in the README.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::http::{SignalingSnapshot, SignalingStats};
use crate::tls::Tls;
use crate::turn_server::{StatsBoard, WorkerStats};

/// Where a scrape reads from.
pub struct Sources {
    /// The TURN workers' latest snapshots.
    pub turn: Arc<StatsBoard>,
    /// The signaling hub and its WebSocket driver.
    pub signaling: Arc<SignalingStats>,
    /// The certificate, when TLS is on (its expiry is exported).
    pub tls: Option<Arc<Tls>>,
    /// True once the process drains (SIGTERM).
    pub draining: watch::Receiver<bool>,
    /// Seconds since the Unix epoch when the process started.
    pub start_unix: u64,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// One metric with its type, written by [`Encoder`].
struct Encoder<'a, 'b> {
    inner: &'a mut DescriptorEncoder<'b>,
}

impl Encoder<'_, '_> {
    /// A counter; `prometheus-client` adds the `_total` suffix to `name`.
    fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let c = ConstCounter::new(value);
        let m = self
            .inner
            .encode_descriptor(name, help, None, c.metric_type())?;
        c.encode(m)
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) -> fmt::Result {
        let g = ConstGauge::new(value);
        let m = self
            .inner
            .encode_descriptor(name, help, None, g.metric_type())?;
        g.encode(m)
    }

    /// A labelled family; `rows` are (label pairs, value).
    fn family<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        rows: impl IntoIterator<Item = ([(&'static str, &'static str); N], u64)>,
    ) -> fmt::Result {
        let mut m = self.inner.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in rows {
            let labelled = m.encode_family(&labels)?;
            match kind {
                MetricType::Gauge => {
                    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(labelled)?
                }
                _ => ConstCounter::new(value).encode(labelled)?,
            }
        }
        Ok(())
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut e = Encoder {
            inner: &mut encoder,
        };
        e.family(
            "switchboard_build_info",
            "Build of the running binary (value 1)",
            MetricType::Gauge,
            [([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        e.gauge(
            "switchboard_start_time_seconds",
            "When the process started, seconds since the Unix epoch",
            i64::try_from(self.start_unix).unwrap_or(0),
        )?;
        e.gauge(
            "switchboard_draining",
            "1 while the process drains after SIGTERM, else 0",
            i64::from(*self.draining.borrow()),
        )?;
        if let Some(expiry) = self.tls.as_ref().and_then(|t| t.store.not_after_unix()) {
            e.gauge(
                "switchboard_tls_certificate_expiry_timestamp_seconds",
                "When the served TLS certificate expires, seconds since the Unix epoch",
                expiry,
            )?;
        }
        encode_turn(&mut e, &self.turn.snapshot())?;
        encode_signaling(&mut e, &self.signaling)
    }
}

/// Sums a per-worker value.
fn sum(workers: &[WorkerStats], f: impl Fn(&WorkerStats) -> u64) -> u64 {
    workers.iter().map(f).sum()
}

fn encode_turn(e: &mut Encoder<'_, '_>, w: &[WorkerStats]) -> fmt::Result {
    let mut core = turn::ServerStats::default();
    for s in w {
        core.add(&s.core);
    }
    e.family(
        "switchboard_turn_allocations",
        "TURN allocations alive now, by client transport and relay address family",
        MetricType::Gauge,
        core.allocations()
            .map(|(transport, family, n)| ([("transport", transport), ("family", family)], n)),
    )?;
    e.family(
        "switchboard_turn_requests",
        "STUN/TURN requests by method and response (success, an error code, or dropped unanswered)",
        MetricType::Counter,
        core.responses()
            .map(|(method, result, n)| ([("method", method), ("result", result)], n)),
    )?;
    e.counter(
        "switchboard_stun_binding_requests",
        "STUN Binding requests answered",
        core.bindings_answered,
    )?;
    e.gauge(
        "switchboard_turn_kernel_channels",
        "Channels the kernel fast path relays now (--kernel-offload)",
        i64::try_from(core.offloaded_channels).unwrap_or(i64::MAX),
    )?;
    e.counter(
        "switchboard_turn_kernel_relayed_packets",
        "Datagrams the kernel fast path relayed (both directions; also in switchboard_turn_relayed_packets_total)",
        core.offloaded_packets,
    )?;
    e.counter(
        "switchboard_turn_kernel_relayed_bytes",
        "Payload bytes the kernel fast path relayed (also in switchboard_turn_relayed_bytes_total)",
        core.offloaded_bytes,
    )?;
    e.family(
        "switchboard_turn_relayed_packets",
        "Datagrams relayed, by direction",
        MetricType::Counter,
        [
            (
                [("direction", "client_to_peer")],
                core.client_to_peer_packets,
            ),
            (
                [("direction", "peer_to_client")],
                core.peer_to_client_packets,
            ),
        ],
    )?;
    e.family(
        "switchboard_turn_relayed_bytes",
        "Payload bytes relayed, by direction",
        MetricType::Counter,
        [
            ([("direction", "client_to_peer")], core.client_to_peer_bytes),
            ([("direction", "peer_to_client")], core.peer_to_client_bytes),
        ],
    )?;
    e.family(
        "switchboard_turn_dropped",
        "Requests and datagrams refused or dropped, by reason",
        MetricType::Counter,
        core.drops_by_reason()
            .map(|(r, n)| ([("reason", r.as_str())], n)),
    )?;
    e.family(
        "switchboard_turn_stream_connections",
        "TURN stream connections open now, by transport",
        MetricType::Gauge,
        [
            ([("transport", "tcp")], sum(w, |s| s.tcp_open)),
            ([("transport", "tls")], sum(w, |s| s.tls_open)),
        ],
    )?;
    e.counter(
        "switchboard_turn_stream_accepted",
        "TURN TCP connections accepted (TLS ones included, before the handshake)",
        sum(w, |s| s.tcp_accepted),
    )?;
    e.family(
        "switchboard_turn_tls_handshakes",
        "TURN-over-TLS handshakes, by result",
        MetricType::Counter,
        [
            ([("result", "ok")], sum(w, |s| s.tls_handshakes)),
            ([("result", "failed")], sum(w, |s| s.tls_handshake_failures)),
        ],
    )?;
    e.counter(
        "switchboard_turn_stream_refused",
        "TURN TCP/TLS connections refused: the address holds --max-tcp-per-ip",
        sum(w, |s| s.tcp_refused_per_ip),
    )?;
    e.counter(
        "switchboard_turn_tls_handed_over",
        "TURN-over-TLS connections found on the shared HTTPS port and moved to a TURN worker",
        sum(w, |s| s.tls_handed_over),
    )?;
    e.gauge(
        "switchboard_turn_relay_sockets",
        "Relay sockets open now (allocations and held reservations)",
        i64::try_from(sum(w, |s| s.relay_sockets)).unwrap_or(i64::MAX),
    )?;
    e.gauge(
        "switchboard_turn_relay_sockets_kept",
        "Relay sockets of ended allocations kept bound for the next ones (at most 64 per worker)",
        i64::try_from(sum(w, |s| s.relay_sockets_kept)).unwrap_or(i64::MAX),
    )?;
    e.family(
        "switchboard_turn_send_dropped",
        "Datagrams or frames dropped on the way out because a socket buffer or write queue was full",
        MetricType::Counter,
        [
            ([("transport", "udp")], sum(w, |s| s.udp_send_dropped)),
            ([("transport", "stream")], sum(w, |s| s.stream_send_dropped)),
        ],
    )
}

fn encode_signaling(e: &mut Encoder<'_, '_>, stats: &SignalingStats) -> fmt::Result {
    let s = stats.snapshot();
    e.gauge(
        "switchboard_signaling_websockets",
        "Signaling WebSockets open now",
        i64::try_from(s.hub.connections).unwrap_or(i64::MAX),
    )?;
    e.gauge(
        "switchboard_signaling_rooms",
        "Rooms open now",
        i64::try_from(s.hub.rooms).unwrap_or(i64::MAX),
    )?;
    e.gauge(
        "switchboard_signaling_peers",
        "Peers joined to a room now",
        i64::try_from(s.hub.peers).unwrap_or(i64::MAX),
    )?;
    e.counter(
        "switchboard_signaling_joins",
        "Successful joins",
        s.hub.joins,
    )?;
    e.counter(
        "switchboard_signaling_relayed_messages",
        "Offers, answers, candidates and messages relayed to a peer",
        s.hub.relayed,
    )?;
    e.family(
        "switchboard_signaling_errors",
        "Signaling error messages sent, by protocol error code",
        MetricType::Counter,
        s.hub.errors().map(|(code, n)| ([("code", code)], n)),
    )?;
    e.counter(
        "switchboard_signaling_websockets_accepted",
        "WebSocket upgrades accepted",
        s.ws_accepted,
    )?;
    e.family(
        "switchboard_signaling_websockets_refused",
        "WebSocket upgrades refused, by reason",
        MetricType::Counter,
        [
            ([("reason", "per_ip")], s.ws_refused_per_ip),
            ([("reason", "origin")], s.ws_refused_origin),
        ],
    )?;
    e.counter(
        "switchboard_http_unauthorized",
        "API requests refused for a missing or bad invite token",
        s.unauthorized_api,
    )?;
    encode_cluster(e, &s)?;
    encode_sfu(e, &s)
}

fn encode_cluster(e: &mut Encoder<'_, '_>, s: &SignalingSnapshot) -> fmt::Result {
    let Some(c) = s.cluster else {
        return Ok(());
    };
    e.gauge(
        "switchboard_cluster_redis_up",
        "Cluster mode: 1 while this node reaches Redis",
        i64::from(c.up),
    )?;
    e.family(
        "switchboard_cluster_messages",
        "Cluster mode: messages to and from other nodes (published, received, \
         unreadable, dropped while Redis was unreachable)",
        MetricType::Counter,
        [
            ([("kind", "published")], c.published),
            ([("kind", "received")], c.received),
            ([("kind", "bad")], c.bad_messages),
            ([("kind", "dropped")], c.dropped_while_down),
        ],
    )?;
    e.counter(
        "switchboard_cluster_nodes_swept",
        "Cluster mode: nodes this one found dead (liveness key expired)",
        c.nodes_swept,
    )
}

fn encode_sfu(e: &mut Encoder<'_, '_>, s: &SignalingSnapshot) -> fmt::Result {
    e.gauge(
        "switchboard_sfu_rooms",
        "Rooms whose media goes through the SFU now",
        i64::try_from(s.hub.sfu_rooms).unwrap_or(i64::MAX),
    )?;
    let Some(sfu) = s.sfu else {
        return Ok(());
    };
    e.gauge(
        "switchboard_sfu_participants",
        "Participants connected to the SFU now",
        i64::try_from(sfu.participants).unwrap_or(i64::MAX),
    )?;
    e.family(
        "switchboard_sfu_frames",
        "Media frames through the SFU: received from publishers, written to subscribers",
        MetricType::Counter,
        [
            ([("direction", "in")], sfu.frames_in),
            ([("direction", "out")], sfu.frames_out),
        ],
    )?;
    e.counter(
        "switchboard_sfu_keyframe_requests",
        "Keyframes the SFU asked publishers for (PLI)",
        sfu.keyframe_requests,
    )?;
    e.counter(
        "switchboard_sfu_frames_over_cap",
        "Frames not forwarded: their publisher sent more than --sfu-max-publish-bps",
        sfu.frames_over_cap,
    )?;
    e.family(
        "switchboard_sfu_dropped_datagrams",
        "Datagrams the SFU dropped: from no participant, or refused by one's connection",
        MetricType::Counter,
        [
            ([("reason", "unrouted")], sfu.unrouted),
            ([("reason", "rejected")], sfu.rejected),
        ],
    )
}

/// The metrics, health and readiness endpoints.
pub fn router(sources: Sources) -> Router {
    let draining = sources.draining.clone();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    let registry = Arc::new(registry);
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(registry)
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let draining = *draining.borrow();
                async move { readiness(draining) }
            }),
        )
}

/// `/readyz`: 200 while serving, 503 while draining (load balancers stop
/// sending new clients; established ones keep going).
pub fn readiness(draining: bool) -> Response {
    if draining {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::with_capacity(8192);
    if prometheus_client::encoding::prometheus_text::encode(&mut body, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sources: Sources,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sources))
        .with_graceful_shutdown(shutdown)
        .await
}
