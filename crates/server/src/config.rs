//! Configuration: every option is a CLI flag, an environment variable
//! (`SWITCHBOARD_*`) and a key of the optional TOML file given with `--config`.
//!
//! Precedence: flag > environment > file > built-in default. The file uses the
//! flag names without the leading dashes (`turn-listen = "0.0.0.0:3478"`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser, parser::ValueSource};
use ipnet::IpNet;

/// Switchboard: a WebRTC signaling server, STUN server and TURN relay in one binary.
#[derive(Debug, Clone, Parser, serde::Deserialize)]
#[command(name = "switchboard", version, about, long_about = None)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Read options from this TOML file (keys are the flag names without dashes).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address for STUN/TURN over UDP and TCP. The default `[::]` is dual
    /// stack: IPv4 clients arrive as IPv4 (mapped addresses are unwrapped).
    #[arg(long, env = "SWITCHBOARD_TURN_LISTEN", default_value = "[::]:3478")]
    pub turn_listen: SocketAddr,

    /// Address for TURN over TLS (`turns:`), or `off`. Listens only when a
    /// TLS certificate is configured (`--tls-cert`/`--tls-key` or `--tls-self-signed`).
    #[arg(long, env = "SWITCHBOARD_TURNS_LISTEN", default_value = "[::]:5349")]
    pub turns_listen: Listen,

    /// Also accept TURN over TLS on the HTTPS port, told apart from HTTP
    /// after the handshake, so one port (443) serves app, signaling and
    /// relay. Browsers are then given `turns:<host>:<HTTPS port>`.
    #[arg(
        long,
        env = "SWITCHBOARD_TURNS_ON_HTTPS_PORT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub turns_on_https_port: bool,

    /// TURN realm sent in authentication challenges.
    #[arg(long, env = "SWITCHBOARD_REALM", default_value = "switchboard")]
    pub realm: String,

    /// Static TURN user as NAME:PASSWORD (repeatable; in the environment, comma-separated).
    #[arg(long = "user", env = "SWITCHBOARD_USERS", value_delimiter = ',')]
    #[serde(rename = "user")]
    pub users: Vec<String>,

    /// Shared secret for ephemeral TURN credentials (coturn's REST scheme,
    /// `use-auth-secret`). When unset, a random secret is generated at start,
    /// which is enough for the built-in signaling server to hand out credentials.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// UDP port range for relay sockets, LOW-HIGH.
    #[arg(long, env = "SWITCHBOARD_RELAY_PORTS", default_value = "49152-65535")]
    pub relay_ports: PortRange,

    /// Public IP advertised as the relay address when behind 1:1 NAT (cloud VMs).
    #[arg(long, env = "SWITCHBOARD_EXTERNAL_IP")]
    pub external_ip: Option<IpAddr>,

    /// Allow relaying to loopback peers. For tests only: it opens the host to its clients.
    #[arg(long, env = "SWITCHBOARD_ALLOW_LOOPBACK_PEERS")]
    pub allow_loopback_peers: bool,

    /// Allow relaying to peers in this CIDR even where the default policy refuses it (repeatable).
    #[arg(
        long = "allow-peer",
        env = "SWITCHBOARD_ALLOW_PEERS",
        value_delimiter = ','
    )]
    #[serde(rename = "allow-peer")]
    pub allow_peers: Vec<IpNet>,

    /// Refuse relaying to peers in this CIDR; wins over --allow-peer (repeatable).
    #[arg(
        long = "deny-peer",
        env = "SWITCHBOARD_DENY_PEERS",
        value_delimiter = ','
    )]
    #[serde(rename = "deny-peer")]
    pub deny_peers: Vec<IpNet>,

    /// Most allocations one ephemeral user (one browser's credential) may
    /// hold at once (486 beyond it).
    #[arg(long, env = "SWITCHBOARD_USER_QUOTA", default_value_t = 16)]
    pub user_quota: usize,

    /// Most allocations one static `--user` may hold at once (486 beyond
    /// it). 0 = no per-user limit: a static user is usually shared by every
    /// client of a deployment; --ip-quota and --total-quota still apply.
    #[arg(long, env = "SWITCHBOARD_STATIC_USER_QUOTA", default_value_t = 0)]
    pub static_user_quota: usize,

    /// Maximum number of allocations in total (508 beyond it).
    #[arg(long, env = "SWITCHBOARD_TOTAL_QUOTA", default_value_t = 10_000)]
    pub total_quota: usize,

    /// Most allocations from one client IP address at once (486 beyond it).
    #[arg(long, env = "SWITCHBOARD_IP_QUOTA", default_value_t = 64)]
    pub ip_quota: usize,

    /// Most permissions (peer IPs) per allocation (508 beyond it).
    #[arg(long, env = "SWITCHBOARD_MAX_PERMISSIONS", default_value_t = 64)]
    pub max_permissions: usize,

    /// Most channels per allocation (508 beyond it).
    #[arg(long, env = "SWITCHBOARD_MAX_CHANNELS", default_value_t = 64)]
    pub max_channels: usize,

    /// Relay bandwidth per allocation in bits per second, each direction
    /// counted; excess datagrams are dropped. 0 = no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_BPS", default_value_t = 50_000_000)]
    pub max_bps: u64,

    /// Relay bandwidth of the whole server in bits per second. 0 = no limit.
    #[arg(long, env = "SWITCHBOARD_TOTAL_BPS", default_value_t = 0)]
    pub total_bps: u64,

    /// The kernel fast path: `auto` relays bound UDP channels in an eBPF
    /// program (XDP, else TC) when this build has it (cargo feature
    /// `kernel-offload`) and the process may load it (root, or CAP_BPF and
    /// CAP_NET_ADMIN), else logs once and relays in userspace; `off` never
    /// tries. The userspace core still decides every channel's life and
    /// bandwidth.
    #[arg(long, env = "SWITCHBOARD_KERNEL_OFFLOAD", value_enum, default_value_t = KernelOffload::Auto)]
    pub kernel_offload: KernelOffload,

    /// Interfaces the kernel fast path attaches to: where clients' and
    /// peers' datagrams arrive (comma-separated). Default: every interface
    /// that is up, except loopback.
    #[arg(
        long,
        env = "SWITCHBOARD_KERNEL_OFFLOAD_INTERFACES",
        value_delimiter = ','
    )]
    pub kernel_offload_interfaces: Vec<String>,

    /// Answers to unauthenticated STUN/TURN requests (Binding, 401
    /// challenges) per second per source IP, with a burst of a tenth of a
    /// second's worth; beyond it requests are dropped unanswered, so the
    /// server cannot be used as a reflector. Sized for many users behind one
    /// carrier-grade or office NAT.
    #[arg(long, env = "SWITCHBOARD_UNAUTHENTICATED_RATE", default_value_t = 3000)]
    pub unauthenticated_rate: u32,

    /// Failed TURN authentications per minute per source IP and per
    /// username (burst: 10); beyond it attempts are dropped unchecked.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 30
    )]
    pub auth_failures_per_minute: u32,

    /// STUN/TURN worker threads (each owns its sockets and allocations).
    /// 0 = one per CPU core.
    #[arg(long, env = "SWITCHBOARD_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Close a TURN TCP connection that has sent no complete message for this
    /// many seconds and holds no allocation (slowloris).
    #[arg(long, env = "SWITCHBOARD_TCP_IDLE_TIMEOUT", default_value_t = 30)]
    pub tcp_idle_timeout: u64,

    /// Most TURN TCP connections from one IP address at once.
    #[arg(long, env = "SWITCHBOARD_MAX_TCP_PER_IP", default_value_t = 64)]
    pub max_tcp_per_ip: usize,

    /// Address for HTTP (web app and signaling WebSocket). `[::]` is dual stack.
    #[arg(long, env = "SWITCHBOARD_HTTP_LISTEN", default_value = "[::]:8080")]
    pub http_listen: SocketAddr,

    /// Require a signed invite token (JWT, HS256) to join a room, fetch
    /// ICE servers or open the diagnostics page. Tokens are made with
    /// `switchboard invite`. Without it anyone who reaches the page may
    /// join and use the relay.
    #[arg(long, env = "SWITCHBOARD_JOIN_SECRET", hide_env_values = true)]
    pub join_secret: Option<String>,

    /// Web origin (scheme://host[:port]) besides the app's own that may open
    /// the signaling WebSocket and read /api/ice (repeatable).
    #[arg(
        long = "allowed-origin",
        env = "SWITCHBOARD_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    #[serde(rename = "allowed-origin")]
    pub allowed_origins: Vec<String>,

    /// Address for Prometheus metrics (`/metrics`, also `/healthz` and
    /// `/readyz`), or `off`.
    #[arg(
        long,
        env = "SWITCHBOARD_METRICS_LISTEN",
        default_value = "127.0.0.1:9641"
    )]
    pub metrics_listen: Listen,

    /// On SIGTERM, keep established calls and allocations for up to this
    /// many seconds while refusing new ones, then exit. A second signal
    /// exits at once.
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", default_value_t = 60)]
    pub drain_timeout: u64,

    /// While draining, answer Allocate with 300 Try Alternate naming this
    /// server (IP:PORT) instead of 508.
    #[arg(long, env = "SWITCHBOARD_ALTERNATE_SERVER")]
    pub alternate_server: Option<SocketAddr>,

    /// Host or IP that browsers use to reach this server's STUN/TURN (in
    /// handed-out ICE URLs). Default: the host the browser used for HTTP.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_HOST")]
    pub public_host: Option<String>,

    /// Hand out this ICE server URL instead of the built-in STUN/TURN (repeatable).
    #[arg(
        long = "ice-server",
        env = "SWITCHBOARD_ICE_SERVERS",
        value_delimiter = ','
    )]
    #[serde(rename = "ice-server")]
    pub ice_servers: Vec<String>,

    /// Lifetime in seconds of the TURN credentials handed to browsers.
    #[arg(long, env = "SWITCHBOARD_CREDENTIAL_TTL", default_value_t = 86_400)]
    pub credential_ttl: u64,

    /// Most peers in one mesh room.
    #[arg(long, env = "SWITCHBOARD_ROOM_SIZE", default_value_t = 8)]
    pub room_size: usize,

    /// Group calls through the built-in SFU: `auto` keeps two people peer
    /// to peer and moves a room to the SFU from the third, `always` uses it
    /// from the first, `never` keeps every room a mesh. Only rooms whose
    /// every member can take part (today's clients say so when they join)
    /// move.
    #[arg(long, env = "SWITCHBOARD_SFU", value_enum, default_value_t = SfuMode::Auto)]
    pub sfu: SfuMode,

    /// UDP address for the SFU's media (one port for every participant),
    /// or `off`.
    #[arg(long, env = "SWITCHBOARD_SFU_LISTEN", default_value = "[::]:3480")]
    pub sfu_listen: Listen,

    /// Most participants in one SFU room.
    #[arg(long, env = "SWITCHBOARD_SFU_ROOM_SIZE", default_value_t = 50)]
    pub sfu_room_size: usize,

    /// Most bits per second a participant may send the SFU per video track
    /// (its simulcast layers together); asked of browsers in the SDP, and
    /// what exceeds it by half is not forwarded. 0 = no cap.
    #[arg(long, env = "SWITCHBOARD_SFU_MAX_PUBLISH_BPS", default_value_t = sfu::DEFAULT_MAX_PUBLISH_BPS)]
    pub sfu_max_publish_bps: u64,

    /// Most signaling WebSocket connections from one IP address at once.
    #[arg(long, env = "SWITCHBOARD_MAX_WS_PER_IP", default_value_t = 32)]
    pub max_ws_per_ip: usize,

    /// Most signaling rooms open at once (in cluster mode: in the cluster).
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Cluster mode: the Redis every node shares, e.g.
    /// `redis://:password@10.0.0.5:6379/0` (`rediss://` for TLS). Rooms
    /// then span the nodes and their limits hold across them. Unset: one
    /// node, nothing needs Redis.
    #[arg(long, env = "SWITCHBOARD_REDIS")]
    pub redis: Option<String>,

    /// Cluster mode over TLS (`rediss://`): the CA certificate (PEM) that
    /// signed Redis's certificate, trusted instead of the system's CAs
    /// (for a Redis with a certificate of your own).
    #[arg(long, env = "SWITCHBOARD_REDIS_CA", requires = "redis")]
    pub redis_ca: Option<PathBuf>,

    /// Cluster mode over TLS: the client certificate (PEM) this node shows
    /// a Redis that asks for one (Redis's `tls-auth-clients yes`, its
    /// default). Needs `--redis-key`.
    #[arg(long, env = "SWITCHBOARD_REDIS_CERT", requires_all = ["redis", "redis_key"])]
    pub redis_cert: Option<PathBuf>,

    /// The private key (PEM) of `--redis-cert`.
    #[arg(long, env = "SWITCHBOARD_REDIS_KEY", requires = "redis_cert")]
    pub redis_key: Option<PathBuf>,

    /// Cluster mode: this node's id (letters, digits, `_`; unique in the
    /// cluster). Unset: a random one at every start.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    pub node_id: Option<String>,

    /// TLS certificate chain (PEM) for HTTPS/WSS.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for HTTPS/WSS.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a freshly generated self-signed certificate (LAN use).
    #[arg(long, env = "SWITCHBOARD_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Check the certificate and key files for changes every this many
    /// seconds and reload them (SIGHUP reloads at once). 0 = only on SIGHUP.
    #[arg(long, env = "SWITCHBOARD_TLS_WATCH_INTERVAL", default_value_t = 10)]
    pub tls_watch_interval: u64,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `switchboard=debug`.
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info")]
    pub log: String,

    /// Log line format: `text` for people, `json` (one object a line) for
    /// log shippers.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// A subcommand instead of running the server.
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--sfu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SfuMode {
    /// Peer to peer for two, the SFU from three.
    Auto,
    /// The SFU for every room.
    Always,
    /// Never the SFU.
    Never,
}

/// `--kernel-offload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelOffload {
    /// Use the kernel fast path where possible.
    Auto,
    /// Relay everything in userspace.
    Off,
}

/// Subcommands of `switchboard`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print an invite link for ROOM, signed with --join-secret.
    Invite(InviteArgs),
    /// Print a configuration file with every key, its meaning and its
    /// default (the Debian package installs it as /etc/switchboard/switchboard.toml).
    ConfigTemplate,
    /// Send files to every browser or peer in ROOM (a native peer over the
    /// app's file channel).
    Send(crate::peer_cli::SendArgs),
    /// Receive files sent to us in ROOM; each is kept only if its SHA-256 matches.
    Recv(crate::peer_cli::RecvArgs),
    /// Chat in ROOM from the terminal: stdin lines out, the room's chat on stdout.
    Chat(crate::peer_cli::ChatArgs),
    /// Pipe stdin to the other native peers in ROOM and theirs to stdout,
    /// one message per line (`--unreliable` for telemetry and game state).
    Pipe(crate::peer_cli::PipeArgs),
}

/// `switchboard invite ROOM`.
#[derive(Debug, Clone, clap::Args)]
pub struct InviteArgs {
    /// The room id (as in /r/ROOM).
    pub room: String,
    /// How long the link works, e.g. `24h`, `90m`, `7d`.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// The name the app shows for whoever uses the link.
    #[arg(long)]
    pub name: Option<String>,
    /// Mark the holder as the room's admin (may join without the room password).
    #[arg(long)]
    pub admin: bool,
    /// Base URL of the server in the link, e.g. `https://meet.example.org`.
    /// Default: https:// and --public-host, else the HTTP listen address.
    #[arg(long)]
    pub url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        // Clap's defaults are the one source of truth for default values.
        match Config::try_parse_from(["switchboard"]) {
            Ok(c) => c,
            Err(e) => unreachable!("built-in defaults must parse: {e}"),
        }
    }
}

impl Config {
    /// Parses the command line and environment, then fills options that were
    /// given neither way from the `--config` file.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(std::env::args_os())
    }

    /// Like [`Config::load`] with explicit arguments (used by tests).
    pub fn load_from<I, T>(args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Config::command().get_matches_from(args);
        let mut cli = Config::from_arg_matches(&matches)?;
        let Some(path) = cli.config.clone() else {
            cli.validate()?;
            return Ok(cli);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let from_file = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        macro_rules! merge {
            ($($field:ident),* $(,)?) => {$(
                if from_file(stringify!($field)) {
                    cli.$field = file.$field.clone();
                }
            )*};
        }
        merge!(
            turn_listen,
            turns_listen,
            turns_on_https_port,
            realm,
            users,
            auth_secret,
            relay_ports,
            external_ip,
            allow_loopback_peers,
            allow_peers,
            deny_peers,
            user_quota,
            static_user_quota,
            total_quota,
            ip_quota,
            max_permissions,
            max_channels,
            max_bps,
            total_bps,
            kernel_offload,
            kernel_offload_interfaces,
            unauthenticated_rate,
            auth_failures_per_minute,
            workers,
            tcp_idle_timeout,
            max_tcp_per_ip,
            http_listen,
            join_secret,
            allowed_origins,
            metrics_listen,
            drain_timeout,
            alternate_server,
            public_host,
            ice_servers,
            credential_ttl,
            room_size,
            sfu,
            sfu_listen,
            sfu_room_size,
            sfu_max_publish_bps,
            max_ws_per_ip,
            max_rooms,
            redis,
            redis_ca,
            redis_cert,
            redis_key,
            node_id,
            tls_cert,
            tls_key,
            tls_self_signed,
            tls_watch_interval,
            log,
            log_format,
        );
        cli.validate()?;
        Ok(cli)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for user in &self.users {
            if !user.contains(':') {
                bail!("--user takes NAME:PASSWORD, got a value without ':'");
            }
        }
        if self.relay_ports.low > self.relay_ports.high {
            bail!("--relay-ports: LOW must not exceed HIGH");
        }
        if let Some(id) = &self.node_id
            && signal::NodeId::new(id).is_none()
        {
            bail!("--node-id takes 1-32 letters, digits or '_', got {id:?}");
        }
        if let Some(url) = &self.redis {
            // Checked here so that a typo stops the start, not every join.
            crate::cluster::check_url(url, &self.redis_tls())?;
        }
        Ok(())
    }

    /// The files a `rediss://` connection uses (none: the system's CAs).
    pub fn redis_tls(&self) -> crate::cluster::RedisTls {
        crate::cluster::RedisTls {
            ca: self.redis_ca.clone(),
            cert: self.redis_cert.clone(),
            key: self.redis_key.clone(),
        }
    }

    /// A TOML configuration file listing every option: its help text, its
    /// environment variable and its default, commented out. Generated from
    /// the flags themselves, so it cannot miss one.
    pub fn template() -> String {
        let mut out = String::from(
            "# Switchboard configuration (switchboard --config FILE).\n\
             # Every key is a command-line flag without its dashes. Flags and SWITCHBOARD_*\n\
             # environment variables win over this file; built-in defaults apply to what\n\
             # none of them sets. The commented values are the defaults: uncomment to change.\n",
        );
        let command = Config::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if matches!(long, "config" | "help" | "version") {
                continue;
            }
            out.push('\n');
            let help = arg
                .get_long_help()
                .or_else(|| arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            for line in wrap(&help, 76) {
                out.push_str(format!("# {line}").trim_end());
                out.push('\n');
            }
            if let Some(env) = arg.get_env() {
                out.push_str(&format!("# (environment: {})\n", env.to_string_lossy()));
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let list = arg.get_value_delimiter().is_some();
            let value = match defaults.first() {
                _ if list => "[]".to_owned(),
                Some(v) => toml_value(v),
                None if matches!(arg.get_action(), clap::ArgAction::SetTrue) => "false".to_owned(),
                None => "\"\"".to_owned(),
            };
            out.push_str(&format!("#{long} = {value}\n"));
        }
        out
    }

    /// The static users as (name, password) pairs.
    pub fn static_users(&self) -> impl Iterator<Item = (&str, &str)> {
        self.users.iter().filter_map(|u| u.split_once(':'))
    }
}

/// `text`'s words in lines of at most `width` characters (longer words stand alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// A default value as TOML: numbers and booleans bare, the rest quoted.
fn toml_value(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
        v.to_owned()
    } else {
        format!("{v:?}")
    }
}

/// A listening address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Listen(pub Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Listen(None));
        }
        s.trim()
            .parse()
            .map(|a| Listen(Some(a)))
            .map_err(|e| format!("expected IP:PORT or off: {e}"))
    }
}

impl TryFrom<String> for Listen {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An inclusive UDP port range, written `LOW-HIGH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    /// First port of the range.
    pub low: u16,
    /// Last port of the range (inclusive).
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (low, high) = s
            .split_once('-')
            .ok_or_else(|| format!("expected LOW-HIGH, got {s:?}"))?;
        let low: u16 = low.trim().parse().map_err(|e| format!("LOW: {e}"))?;
        let high: u16 = high.trim().parse().map_err(|e| format!("HIGH: {e}"))?;
        if low == 0 || low > high {
            return Err(format!("need 0 < LOW <= HIGH, got {s:?}"));
        }
        Ok(PortRange { low, high })
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_from(["switchboard"]).unwrap();
        assert_eq!(c.turn_listen, "[::]:3478".parse().unwrap());
        assert_eq!(c.http_listen, "[::]:8080".parse().unwrap());
        assert_eq!(
            c.metrics_listen,
            Listen(Some("127.0.0.1:9641".parse().unwrap()))
        );
        assert!(c.join_secret.is_none());
        assert_eq!(c.static_user_quota, 0);
        assert_eq!(
            c.relay_ports,
            PortRange {
                low: 49152,
                high: 65535
            }
        );
        assert!(!c.allow_loopback_peers);
        assert!(c.auth_secret.is_none());
        assert_eq!(c.turns_listen, Listen(Some("[::]:5349".parse().unwrap())));
        assert!(c.turns_on_https_port);
    }

    #[test]
    fn turns_options() {
        let c = Config::load_from([
            "switchboard",
            "--turns-listen",
            "off",
            "--turns-on-https-port",
            "false",
        ])
        .unwrap();
        assert_eq!(c.turns_listen, Listen(None));
        assert!(!c.turns_on_https_port);
        assert!("nonsense".parse::<Listen>().is_err());
    }

    #[test]
    fn file_fills_what_flags_do_not_set() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("switchboard.toml");
        std::fs::write(
            &path,
            r#"
realm = "from-file"
turn-listen = "127.0.0.1:5000"
relay-ports = "50000-50100"
user = ["a:b", "c:d"]
allow-peer = ["10.0.0.0/8"]
allow-loopback-peers = true
"#,
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = Config::load_from(["switchboard", "--config", p, "--realm", "from-flag"]).unwrap();
        assert_eq!(c.realm, "from-flag");
        assert_eq!(c.turn_listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            c.relay_ports,
            PortRange {
                low: 50000,
                high: 50100
            }
        );
        assert_eq!(
            c.static_users().collect::<Vec<_>>(),
            [("a", "b"), ("c", "d")]
        );
        assert_eq!(c.allow_peers, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(c.allow_loopback_peers);

        std::fs::write(&path, "no-such-option = 1\n").unwrap();
        assert!(Config::load_from(["switchboard", "--config", p]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn template_lists_every_option_and_parses_back() {
        let template = Config::template();
        let command = Config::command();
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long()
                && !matches!(long, "config" | "help" | "version")
            {
                assert!(
                    template.contains(&format!("\n#{long} = ")),
                    "{long} missing"
                );
            }
        }
        // Uncommented, the template is a valid file equal to the defaults.
        let uncommented: String = template
            .lines()
            .filter(|l| {
                l.split_once(" = ").is_some_and(|(k, _)| {
                    k.len() > 1
                        && k.starts_with('#')
                        && k[1..].bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                })
            })
            .map(|l| format!("{}\n", &l[1..]))
            .filter(|l| !l.ends_with("= \"\"\n"))
            .collect();
        let file: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(file.turn_listen, Config::default().turn_listen);
        assert_eq!(file.user_quota, Config::default().user_quota);
        assert_eq!(file.metrics_listen, Config::default().metrics_listen);
    }

    /// The file the Debian package installs is the generated template.
    #[test]
    fn packaged_config_file_is_the_template() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/switchboard.toml"
        );
        let packaged = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            packaged == Config::template(),
            "packaging/switchboard.toml is out of date: run \
             `cargo run -q -- config-template > packaging/switchboard.toml`"
        );
    }

    #[test]
    fn port_range_parsing() {
        assert_eq!(
            "1-2".parse::<PortRange>(),
            Ok(PortRange { low: 1, high: 2 })
        );
        assert!("2-1".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("10".parse::<PortRange>().is_err());
        assert!(Config::load_from(["switchboard", "--user", "nocolon"]).is_err());
    }
}
