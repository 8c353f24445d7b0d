//! `switchboard send`, `recv`, `chat` and `pipe`: the native peer
//! (`crates/peer`) in a room, next to browsers or other native peers,
//! over the app's data channels. Each subcommand is an [`App`] on the
//! peer's driver; this module holds what they share.

mod chat;
mod pipe;
mod progress;
mod recv;
mod send;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use peer::Channel;
use peer::driver::{App, Options, RoomTarget, Trust};
use tokio::sync::mpsc;

/// Options every peer subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// The room: the app's room link (`https://HOST/r/ROOM`, an invite link
    /// with `#t=TOKEN`, `?relay=1` for relay-only), or a room id with --server.
    pub room: String,
    /// Base URL of the server, for a bare room id (e.g. `https://meet.example.org`).
    #[arg(long)]
    pub server: Option<String>,
    /// The name the others see.
    #[arg(long, default_value = "switchboard")]
    pub name: String,
    /// Room password.
    #[arg(long)]
    pub password: Option<String>,
    /// Invite token (instead of the link's `#t=`).
    #[arg(long)]
    pub token: Option<String>,
    /// Relay-only: offer only candidates on the server's TURN.
    #[arg(long)]
    pub relay: bool,
    /// Extra root certificate(s), PEM, for a `wss://` server (repeatable).
    #[arg(long)]
    pub ca: Vec<PathBuf>,
    /// Trust the server certificate with this SHA-256 fingerprint (as
    /// `switchboard --tls-self-signed` prints it) and no other.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// TURN over `udp` or `tcp` only (default: whichever the server offers).
    #[arg(long, value_enum)]
    pub turn_transport: Option<TurnTransport>,
    /// Give up when no peer connection comes up this long after a peer is there.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

/// `--turn-transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TurnTransport {
    /// TURN over UDP only.
    Udp,
    /// TURN over TCP only.
    Tcp,
}

/// `switchboard send ROOM FILE…`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Files to send to every peer in the room.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `switchboard recv ROOM`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecvArgs {
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Where received files go.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Exit after this many verified files (0: until interrupted or the
    /// senders leave).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
}

/// `switchboard chat ROOM`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub peer: PeerArgs,
}

/// `switchboard pipe ROOM`.
#[derive(Debug, Clone, clap::Args)]
pub struct PipeArgs {
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Unordered and without retransmissions (telemetry, game state): lost
    /// messages stay lost and are counted.
    #[arg(long)]
    pub unreliable: bool,
}

/// A peer subcommand.
#[derive(Debug, Clone)]
pub enum PeerCommand {
    /// Send files.
    Send(SendArgs),
    /// Receive files.
    Recv(RecvArgs),
    /// Line chat.
    Chat(ChatArgs),
    /// stdin → data channel → stdout.
    Pipe(PipeArgs),
}

/// Runs one peer subcommand to its end.
pub fn run(cmd: PeerCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let terminal = std::io::stderr().is_terminal();
    // What each subcommand is: its app, the channels it opens, whether the
    // pipe is unreliable, and whether it reads stdin.
    let (mut app, channels, unreliable, stdin): (Box<dyn App>, &[Channel], bool, bool) = match &cmd
    {
        PeerCommand::Send(a) => (
            Box::new(send::Send::new(&a.files, terminal)?),
            DATA,
            false,
            false,
        ),
        PeerCommand::Recv(a) => (
            Box::new(recv::Recv::new(a.dir.clone(), a.count, terminal)?),
            DATA,
            false,
            false,
        ),
        PeerCommand::Chat(_) => (Box::new(chat::Chat::default()), DATA, false, true),
        PeerCommand::Pipe(a) => (
            Box::new(pipe::Pipe::default()),
            WITH_PIPE,
            a.unreliable,
            true,
        ),
    };
    let args = match &cmd {
        PeerCommand::Send(a) => &a.peer,
        PeerCommand::Recv(a) => &a.peer,
        PeerCommand::Chat(a) => &a.peer,
        PeerCommand::Pipe(a) => &a.peer,
    };
    let input = stdin.then(stdin_lines);
    runtime.block_on(drive(args, channels, unreliable, app.as_mut(), input))
}

/// The app's channels.
const DATA: &[Channel] = &[Channel::Chat, Channel::File];
/// The app's channels and the native peers' pipe.
const WITH_PIPE: &[Channel] = &[Channel::Chat, Channel::File, Channel::Pipe];

async fn drive(
    args: &PeerArgs,
    channels: &[Channel],
    unreliable_pipe: bool,
    app: &mut dyn App,
    input: Option<mpsc::Receiver<Vec<u8>>>,
) -> anyhow::Result<()> {
    let mut target = RoomTarget::parse(&args.room, args.server.as_deref())?;
    if args.token.is_some() {
        target.token = args.token.clone();
    }
    let opts = Options {
        target,
        name: args.name.clone(),
        password: args.password.clone(),
        relay_only: args.relay,
        channels: channels.to_vec(),
        unreliable_pipe,
        trust: Trust {
            ca_files: args.ca.clone(),
            fingerprint: args.fingerprint.clone(),
        },
        turn_transport: args.turn_transport.map(|t| match t {
            TurnTransport::Udp => peer::ice_servers::UrlKind::TurnUdp,
            TurnTransport::Tcp => peer::ice_servers::UrlKind::TurnTcp,
        }),
        connect_timeout: args.connect_timeout,
    };
    peer::driver::run(opts, app, input).await?;
    Ok(())
}

/// Lines of stdin (each with its newline removed), read on a thread.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(1024);
    std::thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        for line in stdin.lock().split(b'\n') {
            let Ok(mut line) = line else { break };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}
