//! What the TURN core hands the offload and gets back: channel entries,
//! their counters, the attach configuration and the errors. The same in
//! both builds (with and without the `kernel` feature).

use std::error::Error;
use std::net::SocketAddr;

/// First channel number the kernel relays (RFC 8656 §12).
pub const CHANNEL_FIRST: u16 = 0x4000;
/// Last channel number the kernel relays: the TURN core accepts RFC 5766's
/// range up to 0x7FFF (coturn's clients use it), so the fast path does too.
pub const CHANNEL_LAST: u16 = 0x7FFF;
/// A budget or grant without limit.
pub const UNLIMITED: u64 = u64::MAX;
/// Default capacity of the channel tables.
pub const DEFAULT_MAX_CHANNELS: u32 = 65_536;

/// What a client's ChannelData datagram names: the client's address, the
/// server address it reached (a concrete IP, as in the core's `FiveTuple`)
/// and the channel number. UDP only: stream transports stay in userspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The listen address the client sent to.
    pub server: SocketAddr,
    /// 0x4000–0x7FFF.
    pub channel: u16,
}

/// A bound channel with a valid permission: both directions of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel {
    /// The client side.
    pub key: ChannelKey,
    /// The allocation's relay socket address (the local one, not the
    /// advertised one behind 1:1 NAT).
    pub relay: SocketAddr,
    /// The peer bound to the channel.
    pub peer: SocketAddr,
}

/// What the kernel relayed for one entry since it was inserted. Bytes are
/// application bytes (ChannelData payloads), as the core's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams relayed from the client to the peer.
    pub to_peer_packets: u64,
    /// Their payload bytes.
    pub to_peer_bytes: u64,
    /// Datagrams relayed from the peer to the client.
    pub to_client_packets: u64,
    /// Their payload bytes.
    pub to_client_bytes: u64,
    /// Bytes the kernel may still relay before it hands the entry's
    /// datagrams to userspace; [`UNLIMITED`] for no limit.
    pub budget_left: u64,
}

/// Datagrams for a TURN port seen by one hook, by outcome (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Relayed by this hook.
    pub forwarded: u64,
    /// No entry for the datagram's addresses and channel.
    pub no_entry: u64,
    /// Lengths that do not add up (left to the core, which drops them).
    pub bad_length: u64,
    /// The entry's budget was spent.
    pub over_budget: u64,
    /// No next hop this hook can use: no route, neighbour not resolved
    /// (XDP), egress without XDP (XDP), MTU too small.
    pub no_route: u64,
    /// Fragments, TTL 1, a checksum still to be completed (sent from this
    /// host), a zero IPv6 checksum, GSO packets.
    pub unsupported: u64,
}

/// Outcome counts of both hooks. A datagram the XDP hook leaves to the
/// stack is seen again by the TC hook, so it counts in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// The XDP hook.
    pub xdp: HookStats,
    /// The TC (TCX ingress) hook.
    pub tc: HookStats,
}

/// Where the native XDP hook runs; the TC hook runs on every interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdpPolicy {
    /// TC only.
    Never,
    /// Interfaces backed by a device (`/sys/class/net/IF/device`: PCI,
    /// virtio, …) whose driver takes a native XDP program; virtual ones
    /// (veth, bridges) get TC only, because a frame XDP redirects into a
    /// veth is dropped unless the other end runs XDP or GRO.
    #[default]
    Auto,
    /// Every interface, failing if one refuses native XDP. For labs whose
    /// veth peers have GRO on, and for drivers the heuristic misses.
    Always,
}

/// Which hook an attachment or a test run is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// The native XDP program.
    Xdp,
    /// The TCX ingress classifier.
    Tc,
}

/// What runs on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// Its index.
    pub ifindex: u32,
    /// Native XDP attached (and the interface is an XDP egress).
    pub xdp: bool,
    /// TCX ingress attached.
    pub tc: bool,
}

/// Where and how to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interfaces the TURN traffic arrives on, client and peer side.
    pub interfaces: Vec<String>,
    /// TURN UDP listen addresses; only their ports matter to the kernel.
    pub listen: Vec<SocketAddr>,
    /// Where native XDP runs.
    pub xdp: XdpPolicy,
    /// Capacity of the channel tables.
    pub max_channels: u32,
}

impl Config {
    /// Default policy and capacity.
    pub fn new(interfaces: &[String], listen: &[SocketAddr]) -> Self {
        Config {
            interfaces: interfaces.to_vec(),
            listen: listen.to_vec(),
            xdp: XdpPolicy::default(),
            max_channels: DEFAULT_MAX_CHANNELS,
        }
    }
}

/// A hook's verdict in [`Offload::test_run`](crate::Offload::test_run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Up the stack (XDP_PASS, TC_ACT_OK).
    Pass,
    /// Dropped (XDP_DROP, TC_ACT_SHOT).
    Drop,
    /// XDP_ABORTED.
    Aborted,
    /// XDP_TX: out of the interface it came in on.
    Tx,
    /// XDP_REDIRECT or TC_ACT_REDIRECT.
    Redirect,
    /// Any other return value.
    Other(u32),
}

/// One frame through one hook, without any interface (BPF_PROG_TEST_RUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// What the hook returned.
    pub verdict: Verdict,
    /// The frame as the hook left it.
    pub frame: Vec<u8>,
}

/// A boxed cause.
pub type Cause = Box<dyn Error + Send + Sync>;

/// Why the offload cannot do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// Built without the `kernel` feature.
    #[error("kernel offload not built in (build switchboard-offload with the `kernel` feature)")]
    NotBuilt,
    /// The kernel refused the program or its maps (needs root, or CAP_BPF
    /// and CAP_NET_ADMIN, and Linux 5.18 or later).
    #[error("loading the eBPF relay failed")]
    Load(#[source] Cause),
    /// [`Offload::attach`](crate::Offload::attach) without interfaces or listen addresses.
    #[error("kernel offload needs at least one interface and one UDP listen address")]
    NothingToAttach,
    /// No interface of that name in this network namespace.
    #[error("no interface {0}")]
    NoSuchInterface(String),
    /// An interface refused a hook.
    #[error("attaching the {hook:?} hook to {interface} failed")]
    Attach {
        /// The interface.
        interface: String,
        /// The hook.
        hook: Hook,
        /// Why.
        #[source]
        source: Cause,
    },
    /// Client and server, or relay and peer, or the two sides, differ in
    /// address family: the kernel does not translate (RFC 6156 mixed
    /// allocations stay in userspace).
    #[error("addresses of a kernel-relayed channel must share one address family")]
    MixedFamily,
    /// A channel number the kernel does not relay.
    #[error("channel number {0:#06x} outside 0x4000-0x7fff")]
    BadChannel(u16),
    /// All entries are in use.
    #[error("kernel channel table full ({0} entries)")]
    Full(u32),
    /// The peer is already bound on this relay address under another key.
    #[error("peer {peer} is already bound on relay {relay}")]
    PeerTaken {
        /// The peer.
        peer: SocketAddr,
        /// The relay address.
        relay: SocketAddr,
    },
    /// No entry for that key.
    #[error("no kernel entry for that channel")]
    NotFound,
    /// A map operation failed.
    #[error("eBPF map {map}: {op} failed")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What was tried.
        op: &'static str,
        /// Why.
        #[source]
        source: Cause,
    },
    /// BPF_PROG_TEST_RUN failed.
    #[error("test run of the {0:?} hook failed")]
    TestRun(Hook, #[source] Cause),
}
