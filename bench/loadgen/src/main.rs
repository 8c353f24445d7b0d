//! `switchboard-loadgen`: STUN/TURN load against one server address, for
//! `bench/run`'s side-by-side comparison of Switchboard and coturn.
//!
//! Modes (each bounded in count *and* time, and each stops by itself):
//! - `binding`: Binding requests (RFC 8489 §7) over UDP from a few sockets
//!   at a set rate; counts the success answers.
//! - `allocate`: full Allocate (RFC 8656 §7.1, with the 401 round trip of
//!   RFC 8489 §9.2) through the `turn::client` core, then Refresh with
//!   LIFETIME 0 (§7.3) to delete it; measures allocations per second.
//! - `hold`: makes N allocations, one UDP socket each, and keeps them
//!   (refreshing when due) until SIGINT/SIGTERM or `--hold-secs`, so the
//!   server's memory per idle allocation can be read; then deletes them.
//!
//! - `signaling`: N signaling WebSockets (Switchboard's `/ws` or PeerJS's
//!   server) from many loopback source addresses, joined in waves into
//!   groups of 4, then relayed messages at a steady rate; join rate and
//!   relay latency ([`signaling`]).
//! - `sfu`: a synthetic group call (str0m publishers sending VP8 simulcast,
//!   subscribers counting frames) against Switchboard's SFU or Janus's
//!   VideoRoom; frame loss and server CPU per forwarded packet ([`sfu`]).
//!
//! Results go to stdout as one `RESULT key=value ...` line (parsed by
//! `bench/run`); progress goes to stderr. Only loopback targets are accepted.

mod allocate;
mod binding;
mod driver;
mod sfu;
mod signaling;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

/// STUN/TURN load generator (loopback only; bounded in count and time).
#[derive(Debug, Parser)]
#[command(name = "switchboard-loadgen", version, about)]
struct Cli {
    /// STUN/TURN server address (UDP), e.g. 127.0.0.1:3478.
    #[arg(long, global = true, default_value = "127.0.0.1:3478")]
    server: SocketAddr,

    /// Hard limit on the whole run in seconds, whatever else happens.
    #[arg(long, global = true, default_value_t = 120)]
    secs: u64,

    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Binding requests at a fixed rate; counts answers.
    Binding(BindingArgs),
    /// Allocate (with the 401 round trip) then delete, C at a time.
    Allocate(AllocateArgs),
    /// Create N allocations and hold them until stopped.
    Hold(HoldArgs),
    /// Signaling WebSockets: join N in waves, then relay at a steady rate
    /// (`--server` is the HTTP address).
    Signaling(SignalingArgs),
    /// A synthetic group call through an SFU (`--server` is Switchboard's
    /// HTTP address or Janus's WebSocket API).
    Sfu(SfuArgs),
}

/// Which SFU `sfu` talks to.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SfuTarget {
    /// Switchboard's `/ws` and its SFU (run it with `--sfu always`).
    Switchboard,
    /// Janus's WebSocket API and its VideoRoom plugin.
    Janus,
}

/// Options of `sfu`.
#[derive(Debug, Args)]
pub struct SfuArgs {
    /// Which SFU.
    #[arg(long, value_enum, default_value = "switchboard")]
    pub target: SfuTarget,
    /// The server process, whose CPU time is measured.
    #[arg(long)]
    pub server_pid: u32,
    /// Participants sending a three-layer VP8 simulcast camera.
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Participants receiving every publisher's video.
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    /// Frames per second per layer.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Seconds after the last join before measuring (ICE, DTLS, keyframes).
    #[arg(long, default_value_t = 5)]
    pub warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    pub measure_secs: u64,
    /// Address of this host the participants' media sockets bind to (and
    /// the only non-loopback address they send to).
    #[arg(long, default_value = "127.0.0.1")]
    pub media_ip: std::net::IpAddr,
}

/// Which signaling server `signaling` talks to.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignalingProtocol {
    /// Switchboard's `/ws`: `join` a room, relay with `to`.
    Switchboard,
    /// PeerJS's server (npm `peer`): `/peerjs?id=…`, relay with `dst`.
    Peerjs,
}

/// Options of `signaling`.
#[derive(Debug, Args)]
pub struct SignalingArgs {
    /// Which server's protocol.
    #[arg(long, value_enum, default_value = "switchboard")]
    pub protocol: SignalingProtocol,
    /// Connections to open and join.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Members per room (PeerJS: per group of peers that message each other).
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    /// Connections opened at once; the next wave starts when one is done.
    #[arg(long, default_value_t = 500)]
    pub wave: usize,
    /// Loopback source addresses (127.1.0.1, 127.1.0.2, …) to spread the
    /// connections over.
    #[arg(long, default_value_t = 400)]
    pub sources: usize,
    /// Seconds of quiet after all joined (the server's memory is read then).
    #[arg(long, default_value_t = 5)]
    pub idle_secs: u64,
    /// Relayed messages per second, in total.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of relaying.
    #[arg(long, default_value_t = 10)]
    pub relay_secs: u64,
    /// Bytes of padding in each relayed message (an ICE candidate is ~200).
    #[arg(long, default_value_t = 200)]
    pub payload: usize,
    /// More servers (nodes of one cluster): connection i goes to server
    /// i mod n (`--server` first), and relay latency is reported within a
    /// node and across nodes.
    #[arg(long = "also")]
    pub also: Vec<std::net::SocketAddr>,
}

/// Options of `binding`.
#[derive(Debug, Args)]
pub struct BindingArgs {
    /// Requests to send in total.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Requests per second, across all sockets.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Source sockets to spread the requests over.
    #[arg(long, default_value_t = 4)]
    pub sockets: usize,
    /// How long to wait for late answers after the last request (ms).
    #[arg(long, default_value_t = 1000)]
    pub drain_ms: u64,
}

/// Credentials shared by `allocate` and `hold`.
#[derive(Debug, Args)]
pub struct Credentials {
    /// TURN username (long-term credentials).
    #[arg(long)]
    pub user: String,
    /// TURN password.
    #[arg(long)]
    pub password: String,
}

/// Options of `allocate`.
#[derive(Debug, Args)]
pub struct AllocateArgs {
    /// Allocations to make (and delete) in total.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Allocations in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Source ports to use in turn, LOW-HIGH (no 5-tuple is reused while
    /// the run makes fewer allocations than the range has ports).
    #[arg(long, default_value = "40000-60999")]
    pub source_ports: PortRange,
    #[command(flatten)]
    pub credentials: Credentials,
}

/// An inclusive port range, `LOW-HIGH`.
#[derive(Debug, Clone, Copy)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (low, high) = s.split_once('-').ok_or("expected LOW-HIGH")?;
        let low: u16 = low.trim().parse().map_err(|e| format!("LOW: {e}"))?;
        let high: u16 = high.trim().parse().map_err(|e| format!("HIGH: {e}"))?;
        if low == 0 || low > high {
            return Err(format!("need 0 < LOW <= HIGH, got {s:?}"));
        }
        Ok(PortRange { low, high })
    }
}

/// Options of `hold`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    /// Allocations to make and hold (one source socket each).
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Allocations being made at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Stop holding after this many seconds (SIGINT/SIGTERM stop earlier).
    #[arg(long, default_value_t = 60)]
    pub hold_secs: u64,
    #[command(flatten)]
    pub credentials: Credentials,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.server.ip().is_loopback() {
        bail!(
            "{} is not a loopback address: this load generator only targets this machine",
            cli.server
        );
    }
    // One thread: the generator takes at most one of the machine's cores,
    // leaving the other to the server under test.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let limit = Duration::from_secs(cli.secs);
    let server = cli.server;
    let line = rt.block_on(async move {
        let work = async {
            match cli.mode {
                Mode::Binding(a) => binding::run(server, a, limit).await,
                Mode::Allocate(a) => allocate::run(server, a, limit).await,
                Mode::Hold(a) => allocate::hold(server, a, limit).await,
                Mode::Signaling(a) => signaling::run(server, a, limit).await,
                Mode::Sfu(a) => sfu::run(server, a, limit).await,
            }
        };
        // The modes watch the limit themselves; this is the backstop.
        match tokio::time::timeout(limit + Duration::from_secs(10), work).await {
            Ok(r) => r,
            Err(_) => bail!("run exceeded --secs {}", limit.as_secs()),
        }
    })?;
    println!("RESULT {line}");
    Ok(())
}
