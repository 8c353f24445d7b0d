//! The `switchboard` binary: configuration, the STUN/TURN socket driver and
//! the HTTP server (web app + signaling), in one process.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::Rng;
use tracing_subscriber::EnvFilter;

use switchboard::config::{Command, Config, LogFormat, SfuMode};
use switchboard::{http, metrics, sfu_server, tls, turn_server};

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if let Some(Command::ConfigTemplate) = &config.command {
        print!("{}", Config::template());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Invite(args)) = &config.command {
        return match switchboard::invite::link(&config, args, unix_now()) {
            Ok(link) => {
                println!("{link}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    if let Some(cmd) = peer_command(&config) {
        // The peer logs warnings only (to stderr), unless --log says more.
        let level = if config.log == Config::default().log {
            "warn"
        } else {
            config.log.as_str()
        };
        if let Ok(filter) = EnvFilter::try_new(level) {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
        }
        return match switchboard::peer_cli::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let filter = match EnvFilter::try_new(&config.log) {
        Ok(f) => f,
        Err(e) => return fail(&anyhow::anyhow!("--log {:?}: {e}", config.log)),
    };
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The peer subcommand, if one was given.
fn peer_command(config: &Config) -> Option<switchboard::peer_cli::PeerCommand> {
    use switchboard::peer_cli::PeerCommand;
    match config.command.clone()? {
        Command::Send(a) => Some(PeerCommand::Send(a)),
        Command::Recv(a) => Some(PeerCommand::Recv(a)),
        Command::Chat(a) => Some(PeerCommand::Chat(a)),
        Command::Pipe(a) => Some(PeerCommand::Pipe(a)),
        Command::Invite(_) | Command::ConfigTemplate => None,
    }
}

/// One line on stderr, no backtrace: what went wrong, and for a port in
/// use what to do about it.
fn fail(e: &anyhow::Error) -> ExitCode {
    let in_use = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    });
    if in_use {
        eprintln!(
            "switchboard: {e:#}\n  another program (or another switchboard) holds this address; \
             choose a free one with --http-listen, --turn-listen, --turns-listen or --metrics-listen"
        );
    } else {
        eprintln!("switchboard: {e:#}");
    }
    ExitCode::FAILURE
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What every worker's TURN core shares: users, quotas, the nonce key.
struct CoreShared {
    ledger: Arc<turn::ledger::Ledger>,
    nonce_secret: [u8; 32],
    start: Instant,
    start_unix: u64,
    /// The kernel fast path is attached: the cores offer it channels.
    offload: bool,
}

/// The SFU's socket, bound before the TURN cores (when rooms may use the
/// SFU), and the addresses at which relays may reach it. If it cannot be
/// bound every room stays a mesh.
fn bind_sfu(config: &mut Config) -> (Option<std::net::UdpSocket>, Vec<SocketAddr>) {
    let Some(listen) = config.sfu_listen.0.filter(|_| config.sfu != SfuMode::Never) else {
        return (None, Vec::new());
    };
    match sfu_server::SfuServer::bind(listen) {
        Ok(socket) => {
            let addresses = socket
                .local_addr()
                .map(|local| sfu_server::own_addresses(local, config.external_ip))
                .unwrap_or_default();
            (Some(socket), addresses)
        }
        Err(e) => {
            tracing::error!("SFU not started on {listen} ({e:#}); rooms stay peer to peer");
            config.sfu = SfuMode::Never;
            (None, Vec::new())
        }
    }
}

/// Worker `i`'s TURN core, configured from the command line; relays may
/// reach the SFU at `sfu` though the peer policy refuses those IPs.
fn turn_core(
    config: &Config,
    secret: &str,
    shared: &CoreShared,
    sfu: &[SocketAddr],
    i: usize,
) -> turn::Server {
    let users = turn::auth::Users::new(
        &config.realm,
        config.static_users(),
        Some(secret.as_bytes().to_vec()),
    );
    let mut core = turn::ServerConfig::new(users);
    core.relay_ports = worker_ports(config, i);
    core.external_ip = config.external_ip;
    core.policy = turn::policy::PeerPolicy::new(
        config.allow_peers.clone(),
        config.deny_peers.clone(),
        config.allow_loopback_peers,
    )
    .with_services(sfu.iter().copied());
    core.ledger = shared.ledger.clone();
    core.nonce_secret = Some(shared.nonce_secret);
    core.max_permissions = config.max_permissions;
    core.max_channels = config.max_channels;
    core.offload = shared.offload;
    core.allocation_bytes_per_second = config.max_bps / 8;
    // Each worker gets its share of the server's bandwidth.
    let workers = u64::try_from(worker_count(config)).unwrap_or(1);
    core.total_bytes_per_second = (config.total_bps / 8).div_ceil(workers);
    // A short burst (a tenth of a second's worth): a flood from one
    // source gets little back, a busy NAT gets its steady rate.
    let unauth = config.unauthenticated_rate as f32;
    core.unauthenticated_rate = turn::rate_limit::Rate {
        per_second: unauth,
        burst: (unauth / 10.0).max(10.0),
    };
    core.auth_failure_rate = turn::rate_limit::Rate {
        per_second: config.auth_failures_per_minute as f32 / 60.0,
        burst: 10.0,
    };
    let mut seed: [u8; 32] = rand::rng().random();
    seed[0] ^= u8::try_from(i % 256).unwrap_or(0);
    turn::Server::new(core, shared.start, shared.start_unix, seed)
}

/// Worker `i`'s share of `--relay-ports`: contiguous slices, so workers
/// never contend for a port (and EVEN-PORT keeps its pairs). A range
/// smaller than the number of workers is shared whole.
fn worker_ports(config: &Config, i: usize) -> std::ops::RangeInclusive<u16> {
    let (low, high) = (config.relay_ports.low, config.relay_ports.high);
    let span = usize::from(high - low) + 1;
    let workers = worker_count(config);
    if span < 2 * workers {
        return low..=high;
    }
    let share = span / workers;
    let start = usize::from(low) + i * share;
    let end = if i + 1 == workers {
        usize::from(high)
    } else {
        start + share - 1
    };
    let to_port = |p: usize| u16::try_from(p).unwrap_or(high);
    to_port(start)..=to_port(end)
}

fn worker_count(config: &Config) -> usize {
    if config.workers > 0 {
        return config.workers;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The kernel fast path, if `--kernel-offload auto` and it can be had; why
/// not is logged once, and everything is relayed in userspace.
fn kernel_offload(config: &Config) -> Option<turn_server::kernel::KernelOffload> {
    if config.kernel_offload == switchboard::config::KernelOffload::Off {
        return None;
    }
    if config.turn_listen.port() == 0 {
        tracing::info!("kernel fast path off: it needs a fixed --turn-listen port");
        return None;
    }
    let listen = [config.turn_listen];
    match turn_server::kernel::KernelOffload::attach(&config.kernel_offload_interfaces, &listen) {
        Ok(k) => {
            tracing::info!(interfaces = ?k.interfaces(), "kernel fast path on: bound UDP channels are relayed in the kernel");
            Some(k)
        }
        Err(offload::OffloadError::NotBuilt) => {
            tracing::debug!("kernel fast path not in this build (cargo feature kernel-offload)");
            None
        }
        Err(e) => {
            tracing::warn!("kernel fast path unavailable, relaying in userspace: {e}");
            None
        }
    }
}

async fn run(mut config: Config) -> anyhow::Result<()> {
    // Without --auth-secret a random one is made: ephemeral credentials then
    // come only from this process (the signaling server and the banner).
    let secret: String = match &config.auth_secret {
        Some(s) => s.clone(),
        None => {
            let bytes: [u8; 24] = rand::rng().random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let kernel = kernel_offload(&config).map(Arc::new);
    let limits = turn_server::DriverOptions {
        tcp_idle_timeout: std::time::Duration::from_secs(config.tcp_idle_timeout),
        max_tcp_per_ip: config.max_tcp_per_ip,
        kernel: kernel.clone(),
    };
    let shared = CoreShared {
        ledger: Arc::new(turn::ledger::Ledger::new(turn::ledger::Quotas {
            per_user: config.user_quota,
            per_static_user: config.static_user_quota,
            per_ip: config.ip_quota,
            total: config.total_quota,
        })),
        nonce_secret: rand::rng().random(),
        start: Instant::now(),
        start_unix: unix_now(),
        offload: kernel.is_some(),
    };
    let tls = tls::load(&config)?.map(Arc::new);
    // `--turns-listen` on the HTTPS address is how one asks for the
    // one-port set-up: serve TURN over TLS there, beside HTTPS.
    let turns_on_http = config
        .turns_listen
        .0
        .is_some_and(|t| same_listener(t, config.http_listen));
    if turns_on_http && tls.is_some() {
        println!(
            "  note: --turns-listen is the HTTPS address; TURN over TLS is served on the HTTPS port"
        );
        config.turns_listen.0 = None;
        config.turns_on_https_port = true;
    }
    let turns = match (&tls, config.turns_listen.0) {
        (Some(tls), Some(addr)) => Some(turn_server::TlsListen {
            addr,
            tls: tls.clone(),
        }),
        _ => None,
    };
    let (sfu_socket, sfu_addresses) = bind_sfu(&mut config);
    let bound = turn_server::start(
        config.turn_listen,
        turns,
        worker_count(&config),
        |i| turn_core(&config, &secret, &shared, &sfu_addresses, i),
        limits,
    )
    .with_context(|| format!("binding STUN/TURN on {}", config.turn_listen))?;

    let host = shown_host(bound.udp.ip(), config.public_host.as_deref());
    let port = bound.udp.port();
    println!("Switchboard {}", env!("CARGO_PKG_VERSION"));
    println!("  STUN  stun:{host}:{port}");
    println!("  TURN  turn:{host}:{port}?transport=udp");
    println!("  TURN  turn:{host}:{port}?transport=tcp");
    if let Some(tls_addr) = bound.tls {
        let h = shown_host(tls_addr.ip(), config.public_host.as_deref());
        println!("  TURN  turns:{h}:{}?transport=tcp", tls_addr.port());
    }
    if !config.users.is_empty() {
        println!("  static users: {}", config.users.len());
    } else if std::io::stdout().is_terminal() {
        // A credential to paste into a client while trying things out. Only
        // on a terminal: stdout of a service ends up in its logs, and a
        // password must not.
        let c = turn::credentials::mint(
            secret.as_bytes(),
            unix_now() + DEV_CREDENTIAL_TTL,
            Some("dev"),
        );
        println!(
            "  dev credential (valid {DEV_CREDENTIAL_TTL} s): username {} password {}",
            c.username, c.password
        );
    } else {
        println!("  TURN credentials: ephemeral, handed to browsers by the web app");
    }
    tracing::info!(udp = %bound.udp, tcp = %bound.tcp, tls = ?bound.tls, "STUN/TURN listening");

    let http_listener = bind_tcp(config.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_listen))?;
    let http_addr = http_listener.local_addr()?;
    if config.join_secret.is_some() {
        println!(
            "  access: invite links only (--join-secret); make one with `switchboard invite ROOM`"
        );
    } else if !http_addr.ip().is_loopback() {
        println!(
            "  WARNING: no --join-secret: anyone who can reach this page can join rooms and use \
             the TURN relay. Set --join-secret and hand out `switchboard invite` links."
        );
        tracing::warn!("no --join-secret: anyone who reaches the web app gets relay credentials");
    }
    let share = tls.is_some() && config.turns_on_https_port;
    let mut turns_port = bound.tls.map(|a| a.port());
    if share {
        let h = shown_host(http_addr.ip(), config.public_host.as_deref());
        println!(
            "  TURN  turns:{h}:{}?transport=tcp (shares the HTTPS port)",
            http_addr.port()
        );
        turns_port = Some(http_addr.port());
    }
    if let Some(tls) = &tls {
        let interval = std::time::Duration::from_secs(config.tls_watch_interval);
        tokio::spawn(tls::reload::watch(tls.store.clone(), interval));
    }

    let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let signaling_stats = Arc::new(http::SignalingStats::default());
    if let Some(addr) = config.metrics_listen.0 {
        let sources = metrics::Sources {
            turn: bound.stats.clone(),
            signaling: signaling_stats.clone(),
            tls: tls.clone(),
            draining: draining_rx.clone(),
            start_unix: shared.start_unix,
        };
        match bind_tcp(addr).await {
            Ok(listener) => {
                println!("  metrics http://{}/metrics", listener.local_addr()?);
                tokio::spawn(metrics::serve(listener, sources, stopped(stop_rx.clone())));
            }
            // The default port is best effort (a second instance, a test);
            // one the operator chose must work.
            Err(e) if config.metrics_listen == default_metrics_listen() => {
                tracing::warn!("metrics off: cannot bind {addr}: {e} (set --metrics-listen)");
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("binding metrics on {addr}")));
            }
        }
    }
    let config = Arc::new(config);
    let ctx = http::HttpContext {
        config: config.clone(),
        turn_secret: secret.into(),
        tls,
        turn_handoff: share.then(|| bound.handoff.clone()),
        turns_port,
        draining: draining_rx,
        signaling_stats: signaling_stats.clone(),
        sfu_socket,
    };
    let drain = Drain {
        timeout: std::time::Duration::from_secs(config.drain_timeout),
        alternate: config.alternate_server,
        turn: &bound,
        signaling: &signaling_stats,
    };
    tokio::select! {
        r = http::serve_on(http_listener, ctx, stopped(stop_rx.clone())) => r,
        () = async {
            shutdown_signal().await;
            let _ = draining_tx.send(true);
            drain.run().await;
            let _ = stop_tx.send(true);
            // Open connections get a short grace period to close.
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}

/// The graceful drain after the first SIGTERM or SIGINT.
struct Drain<'a> {
    timeout: std::time::Duration,
    alternate: Option<SocketAddr>,
    turn: &'a turn_server::Bound,
    signaling: &'a http::SignalingStats,
}

impl Drain<'_> {
    /// Refuses new allocations (the HTTP side refuses new joins and tells
    /// peers to reconnect elsewhere, having seen `draining` turn true),
    /// then waits until nothing is left or `timeout` has passed. A second
    /// signal exits at once.
    async fn run(&self) {
        self.turn.drain(self.alternate);
        println!(
            "draining: new joins and allocations are refused; established calls keep going for up \
             to {} s (signal again to exit now)",
            self.timeout.as_secs()
        );
        tracing::info!(timeout_s = self.timeout.as_secs(), "draining");
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown_signal() => {
                    tracing::info!("second signal: exiting now");
                    std::process::exit(0);
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::info!("drain timeout reached; exiting");
                    return;
                }
                _ = tick.tick() => {
                    if self.idle() {
                        tracing::info!("drained: no allocation and no peer left; exiting");
                        return;
                    }
                }
            }
        }
    }

    /// No allocation and no joined peer left (as of the last snapshots).
    fn idle(&self) -> bool {
        let allocations: u64 = self
            .turn
            .stats
            .snapshot()
            .iter()
            .map(|w| w.core.allocations_total())
            .sum();
        allocations == 0 && self.signaling.snapshot().hub.peers == 0
    }
}

/// True when two listen addresses would take the same TCP port.
fn same_listener(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn default_metrics_listen() -> switchboard::config::Listen {
    Config::default().metrics_listen
}

/// Binds a TCP listener; `[::]` falls back to `0.0.0.0` on a machine
/// without IPv6.
async fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Err(e) if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) && no_ipv6(&e) => {
            tracing::info!(
                "IPv6 unavailable ({e}); listening on 0.0.0.0:{}",
                addr.port()
            );
            tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, addr.port())).await
        }
        r => r,
    }
}

fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT
}

/// Lifetime of the development credential printed on a terminal.
const DEV_CREDENTIAL_TTL: u64 = 3600;

/// How long open connections may take to close after the drain.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The host to show in URLs: the configured public host, or the bound IP,
/// or loopback for a wildcard bind.
fn shown_host(ip: IpAddr, public: Option<&str>) -> String {
    if let Some(h) = public {
        return h.to_owned();
    }
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    match SocketAddr::new(ip, 0) {
        SocketAddr::V6(_) => format!("[{ip}]"),
        SocketAddr::V4(_) => ip.to_string(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_ports_are_split_between_workers() {
        let c = Config::load_from([
            "switchboard",
            "--relay-ports",
            "1000-1999",
            "--workers",
            "3",
        ])
        .unwrap();
        let ranges: Vec<_> = (0..3).map(|i| worker_ports(&c, i)).collect();
        assert_eq!(ranges, [1000..=1332, 1333..=1665, 1666..=1999]);
        let small = Config::load_from([
            "switchboard",
            "--relay-ports",
            "1000-1003",
            "--workers",
            "3",
        ])
        .unwrap();
        assert_eq!(worker_ports(&small, 2), 1000..=1003);
    }
}
