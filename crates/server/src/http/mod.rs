//! HTTP server: the embedded web app, the signaling WebSocket (`/ws`) and a
//! small JSON API for the diagnostics page, over HTTP or HTTPS.
//!
//! Routes: `/` home, `/r/{room}` room page, `/diag` diagnostics page,
//! `/assets/{file}` embedded files, `/ws` signaling (protocol in
//! `docs/protocol.md`), `/api/ice` ICE servers with fresh credentials,
//! `/healthz` (alive), `/readyz` (503 while draining, or in cluster mode
//! while Redis is unreachable).
//!
//! Signaling limits: `--max-ws-per-ip` WebSocket connections per client
//! address (refused with 429 before the upgrade, see [`crate::per_address`]); rooms,
//! room size and message rate in the hub ([`hub_config`]). Web origins:
//! a foreign `Origin` is refused with 403 on `/ws` and `/api/ice`
//! ([`origin`]). Token mode (`--join-secret`): joins need an invite token
//! (checked by the hub), `/api/ice` a `Authorization: Bearer` one.
//! Drain: when [`HttpContext::draining`] turns true, `/readyz` answers 503
//! and the hub tells every peer to `reconnect` and refuses new joins.

mod assets;
mod ice;
pub mod origin;
mod stats;
mod tls;
mod ws;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use signal::{HubConfig, SfuPolicy};
use tokio::sync::watch;

use crate::config::{Config, SfuMode};
use crate::per_address::ConnectionsPerIp;
use crate::tls::Tls;
use crate::turn_server::handoff::Handoff;
use ice::IcePolicy;
use origin::OriginPolicy;
pub use stats::{SignalingSnapshot, SignalingStats};
use ws::Signaling;

/// What the HTTP side needs from the rest of the process.
pub struct HttpContext {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// The secret the TURN server checks ephemeral credentials against.
    pub turn_secret: Arc<str>,
    /// The certificate, when serving HTTPS.
    pub tls: Option<Arc<Tls>>,
    /// Where TURN connections found on the HTTPS port go (port sharing).
    pub turn_handoff: Option<Handoff>,
    /// The port browsers are given for TURN over TLS: the HTTPS port when
    /// it is shared, else the `--turns-listen` port; none without TLS.
    pub turns_port: Option<u16>,
    /// Turns true when the process starts draining (SIGTERM): `/readyz`
    /// answers 503, peers are told to reconnect, new joins are refused.
    pub draining: watch::Receiver<bool>,
    /// Signaling counters, for the metrics.
    pub signaling_stats: Arc<SignalingStats>,
    /// The SFU's socket when it was bound already (by `main`, before the
    /// TURN cores whose peer policy lets relays reach it); otherwise the
    /// router binds `--sfu-listen` itself.
    pub sfu_socket: Option<std::net::UdpSocket>,
}

/// The address of an HTTP client, for counting its WebSockets.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

struct App {
    signaling: Arc<Signaling>,
    ice: IcePolicy,
    ws_per_ip: Arc<ConnectionsPerIp>,
    origins: OriginPolicy,
    join_secret: Option<signal::token::Secret>,
    stats: Arc<SignalingStats>,
    draining: watch::Receiver<bool>,
}

/// Serves HTTP (or HTTPS, per the TLS options) on `config.http_listen` until
/// `shutdown` resolves.
pub async fn serve(
    ctx: HttpContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = ctx.config.http_listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTP on {addr}"))?;
    serve_on(listener, ctx, shutdown).await
}

/// Connections waiting to be accepted. tokio listens with 128 (the libc
/// crate's SOMAXCONN); a crowd of browsers reconnecting at once (a restart,
/// a drain) overflows that and waits a whole SYN retransmission (1 s, then
/// 3 s…). The kernel caps it at `net.core.somaxconn` (4096 by default).
const ACCEPT_BACKLOG: i32 = 4096;

/// Raises the listener's accept backlog to [`ACCEPT_BACKLOG`] (listening
/// again on a listening socket only changes its backlog).
fn widen_backlog(listener: &tokio::net::TcpListener) {
    if let Err(e) = socket2::SockRef::from(listener).listen(ACCEPT_BACKLOG) {
        tracing::debug!("could not raise the HTTP accept backlog: {e}");
    }
}

/// Like [`serve`] on an already bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    mut ctx: HttpContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    widen_backlog(&listener);
    let hub = hub_config(&ctx);
    let sfu = ctx.sfu_socket.take();
    // The router prints the SFU's line: before the web app's, the last one
    // of the banner (what tests and scripts wait for).
    let (router, stop, signaling) = router(&ctx, hub, sfu);
    let Some(tls) = ctx.tls.clone() else {
        println!(
            "Switchboard web app: http://{}/",
            display_addr(listener.local_addr()?)
        );
        return serve_routed(listener, router, stop, signaling, shutdown).await;
    };
    println!(
        "Switchboard web app: https://{}/",
        display_addr(listener.local_addr()?)
    );
    let handoff = ctx.turn_handoff.clone();
    let served = tls::serve(
        listener,
        tls,
        handoff,
        router,
        close_sockets_on(shutdown, stop),
    )
    .await;
    signaling.finish_cluster().await;
    served
}

/// Serves plain HTTP on an already bound listener (used by tests with port 0).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    ctx: HttpContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hub = hub_config(&ctx);
    serve_listener_with(listener, ctx, hub, shutdown).await
}

/// Like [`serve_listener`] with explicit hub limits and timings (tests use
/// short heartbeats).
pub async fn serve_listener_with(
    listener: tokio::net::TcpListener,
    mut ctx: HttpContext,
    hub: HubConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    widen_backlog(&listener);
    let sfu = ctx.sfu_socket.take();
    let (router, stop, signaling) = router(&ctx, hub, sfu);
    serve_routed(listener, router, stop, signaling, shutdown).await
}

/// Serves `router` on plain HTTP until `shutdown`; then closes the
/// WebSockets (`stop`) and finishes the cluster driver after them.
async fn serve_routed(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Sender<bool>,
    signaling: Arc<Signaling>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let served = serve_plain(listener, router, close_sockets_on(shutdown, stop)).await;
    signaling.finish_cluster().await;
    served
}

/// The hub settings the configuration asks for.
pub fn hub_config(ctx: &HttpContext) -> HubConfig {
    HubConfig {
        room_size: ctx.config.room_size.max(1),
        max_rooms: ctx.config.max_rooms.max(1),
        join_secret: ctx
            .config
            .join_secret
            .as_deref()
            .map(signal::token::Secret::new),
        sfu: match (ctx.config.sfu, ctx.config.sfu_listen.0) {
            (_, None) | (SfuMode::Never, _) => SfuPolicy::Never,
            (SfuMode::Auto, Some(_)) => SfuPolicy::Auto,
            (SfuMode::Always, Some(_)) => SfuPolicy::Always,
        },
        sfu_room_size: ctx.config.sfu_room_size.max(1),
        node: ctx
            .config
            .redis
            .as_ref()
            .map(|_| crate::cluster::node_id(ctx.config.node_id.as_deref())),
        ..HubConfig::default()
    }
}

/// `shutdown`, which on resolving also tells every WebSocket to close:
/// graceful shutdown waits for open connections, and these would never end.
/// The SFU's settings from the server's.
fn sfu_config(config: &Config) -> sfu::SfuConfig {
    sfu::SfuConfig {
        room_size: config.sfu_room_size.max(1),
        // Layers by each subscriber's estimate as well as its tiles.
        bandwidth_estimation: true,
        max_publish_bps: config.sfu_max_publish_bps,
    }
}

async fn close_sockets_on(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    stop: watch::Sender<bool>,
) {
    shutdown.await;
    let _ = stop.send(true);
}

async fn serve_plain(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The client's address is needed to count its WebSockets.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// The router, the switch that closes all WebSockets (graceful shutdown
/// waits for open connections, so they must be told to end), and the
/// signaling whose cluster driver is finished after them. `sfu` is the
/// SFU's socket if bound already.
fn router(
    ctx: &HttpContext,
    mut hub: HubConfig,
    sfu: Option<std::net::UdpSocket>,
) -> (Router, watch::Sender<bool>, Arc<Signaling>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // SFU rooms need the SFU running: without it every room stays a mesh.
    let sfu_listen = ctx
        .config
        .sfu_listen
        .0
        .filter(|_| hub.sfu != SfuPolicy::Never);
    if sfu_listen.is_none() {
        hub.sfu = SfuPolicy::Never;
    }
    let signaling = Signaling::new(hub, stop_rx);
    if let Some(listen) = sfu_listen {
        let socket = match sfu {
            Some(socket) => Ok(socket),
            None => crate::sfu_server::SfuServer::bind(listen),
        };
        let attached = socket.and_then(|socket| {
            signaling.attach_sfu(socket, sfu_config(&ctx.config), ctx.config.external_ip)
        });
        match attached {
            // Not println!: a closed stdout (a parent that read the
            // banner and went) must not panic the server.
            Ok(addr) => {
                let _ = writeln!(std::io::stdout(), "Switchboard SFU: media on udp {addr}");
            }
            Err(e) => {
                tracing::error!("SFU not started on {listen} ({e:#}); rooms stay peer to peer");
                signaling.disable_sfu();
            }
        }
    }
    if let Some(url) = &ctx.config.redis {
        // A bad URL or CA is refused at start (Config::validate); this
        // only fails if the hub has no node id.
        if let Err(e) = signaling.attach_cluster(url, &ctx.config.redis_tls()) {
            tracing::error!("cluster mode not started: {e:#}");
        }
    }
    tokio::spawn(signaling.clone().run_ticker());
    tokio::spawn(signaling.clone().drain_on(ctx.draining.clone()));
    ctx.signaling_stats.attach(Arc::downgrade(&signaling));
    let app = Arc::new(App {
        signaling: signaling.clone(),
        ice: IcePolicy::new(&ctx.config, &ctx.turn_secret, ctx.turns_port),
        ws_per_ip: ConnectionsPerIp::new(ctx.config.max_ws_per_ip),
        origins: OriginPolicy::new(
            ctx.tls.is_some(),
            ctx.config.public_host.as_deref(),
            &ctx.config.allowed_origins,
        ),
        join_secret: ctx
            .config
            .join_secret
            .as_deref()
            .map(signal::token::Secret::new),
        stats: ctx.signaling_stats.clone(),
        draining: ctx.draining.clone(),
    });
    let router = Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/r/{room}", get(room_page))
        .route("/diag", get(|| async { page("diag.html") }))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.ico", get(|| async { page("favicon.svg") }))
        .route("/ws", get(websocket))
        .route("/api/ice", get(ice_servers).options(ice_preflight))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(app);
    (router, stop_tx, signaling)
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

async fn room_page(Path(room): Path<String>) -> Response {
    match signal::check_room(&room) {
        Ok(_) => page("room.html"),
        Err(_) => (StatusCode::NOT_FOUND, "no such room id\n").into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    page(&path)
}

fn page(path: &str) -> Response {
    let Some(a) = assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss: blob:; img-src 'self' blob: data:; \
             media-src 'self' blob: mediastream:; frame-ancestors 'none'",
        ),
    );
    resp
}

fn host_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// The `Origin` header; a value that is not text counts as a foreign origin.
fn origin_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .map(|h| h.to_str().unwrap_or("invalid"))
}

/// `/readyz`: 200 `ready`, or 503 `draining` once the drain started.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    if *app.draining.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else if app.signaling.cluster_up() == Some(false) {
        // Cannot admit joins: the load balancer should send people to a
        // node that can. Rooms already joined here go on.
        (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// `/ws`: upgrades to the signaling WebSocket, unless its `Origin` is
/// foreign (403) or the client's address already has `--max-ws-per-ip` of
/// them open (429), both before upgrading.
async fn websocket(
    State(app): State<Arc<App>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let accept = match ws::upgrade::check(headers) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    if !app.origins.allows(origin_of(headers), host_of(headers)) {
        tracing::debug!(%client, "refusing WebSocket: foreign origin");
        SignalingStats::bump(&app.stats.ws_refused_origin);
        return forbidden_origin();
    }
    let ice = app.ice.ice_for(host_of(headers), &ice::credential_id());
    let host = host_of(headers).map(str::to_owned);
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        // Not an HTTP/1.1 connection that can be taken over.
        return ws::upgrade::Refusal::NotUpgrade.into_response();
    };
    let Some(slot) = app.ws_per_ip.try_acquire(client.ip()) else {
        tracing::debug!(%client, "refusing WebSocket: too many from this address");
        SignalingStats::bump(&app.stats.ws_refused_per_ip);
        return too_many_connections(app.ws_per_ip.limit());
    };
    SignalingStats::bump(&app.stats.ws_accepted);
    let signaling = app.signaling.clone();
    // The slot is held until the connection ends (dropped too if the
    // upgrade fails).
    tokio::spawn(async move {
        let via = server_ip(host.as_deref()).await;
        match on_upgrade.await {
            Ok(upgraded) => {
                signaling
                    .run_connection(TokioIo::new(upgraded), ice, via, slot)
                    .await
            }
            Err(e) => tracing::debug!(%client, error = %e, "WebSocket upgrade failed"),
        }
    });
    ws::upgrade::switching_protocols(accept)
}

/// The server address a client reached by the name in its `Host` header:
/// the IP literal itself, else the name's first address (IPv4 first), for
/// the SFU's ICE candidate. `None` when it does not resolve.
async fn server_ip(host: Option<&str>) -> Option<std::net::IpAddr> {
    let host = host?;
    let name = match host.rsplit_once(':') {
        // `[v6]:port` or `name:port`; a bare IPv6 literal has no brackets.
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = name.parse() {
        return Some(ip);
    }
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::lookup_host((name, 0)),
    )
    .await
    .ok()?
    .ok()?
    .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
}

/// A JSON error body `{"error": code, "message": …}` (plus `reason` when
/// given), not cached.
fn json_error(status: StatusCode, code: &str, message: &str, reason: Option<&str>) -> Response {
    let mut body = serde_json::json!({ "error": code, "message": message });
    if let (Some(reason), Some(obj)) = (reason, body.as_object_mut()) {
        obj.insert("reason".into(), reason.into());
    }
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 403: the request's `Origin` is neither this app's nor an `--allowed-origin`.
fn forbidden_origin() -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        "forbidden-origin",
        "this web origin may not use this server's signaling; the operator can allow it with --allowed-origin",
        None,
    )
}

/// 429 with a short JSON body: the client's address has `limit` WebSockets open.
fn too_many_connections(limit: usize) -> Response {
    json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-connections",
        &format!("at most {limit} signaling connections per address; close one and retry"),
        None,
    )
}

/// Headers letting an allowed cross-origin page read the answer.
fn cors(resp: &mut Response, origin: Option<&str>) {
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// The bearer token of an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `/api/ice`: the ICE servers with a fresh credential. A foreign `Origin`
/// gets 403; in token mode a request without a valid `Authorization:
/// Bearer TOKEN` (for any room) gets 401.
async fn ice_servers(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let origin = origin_of(&headers);
    if !app.origins.allows(origin, host_of(&headers)) {
        return forbidden_origin();
    }
    if let Some(secret) = &app.join_secret {
        let checked = signal::token::verify(
            secret.as_bytes(),
            bearer(&headers).unwrap_or_default(),
            ws::unix_now(),
        );
        if let Err(e) = checked {
            SignalingStats::bump(&app.stats.unauthorized_api);
            let mut resp = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &e.to_string(),
                Some(e.reason()),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            cors(&mut resp, origin);
            return resp;
        }
    }
    let servers = app
        .ice
        .servers_for(host_of(&headers), &ice::credential_id());
    let body = serde_json::json!({ "iceServers": servers });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(&mut resp, origin);
    resp
}

/// CORS preflight of `/api/ice` (a cross-origin fetch with `Authorization`):
/// allowed origins only.
async fn ice_preflight(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let origin = origin_of(&headers);
    if origin.is_none() || !app.origins.allows(origin, host_of(&headers)) {
        return forbidden_origin();
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(&mut resp, origin);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}
