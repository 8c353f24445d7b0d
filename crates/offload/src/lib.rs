//! Kernel fast path for TURN channels: an eBPF program relays established
//! ChannelData (RFC 8656 §12) between UDP clients and their peers, so a
//! bound channel's datagrams no longer cross the server's sockets.
//!
//! The userspace TURN core stays the authority. It calls
//! [`Offload::insert`] when a channel is bound and its permission valid
//! (both directions at once), [`Offload::remove`] on unbind, expiry,
//! refresh to 0 or a policy change, reads [`Offload::counters`] back, and
//! refills each entry's byte budget ([`Offload::add_budget`],
//! [`Offload::set_budget`]) from its `--max-bps` token bucket: a datagram
//! past the budget goes to userspace, which decides. Whatever the program
//! cannot relay exactly (STUN, unknown channels, odd lengths, fragments,
//! IPv4 options, TTL 1, no route, a spent budget) goes up the stack
//! unchanged.
//!
//! Forwarding uses two hooks on the same maps. Native XDP runs where the
//! driver takes it and relays when `bpf_fib_lookup` gives a resolved next
//! hop on an interface that runs it too: `XDP_TX` back out of the same
//! interface (the one-NIC server), `bpf_redirect_map` into another. The TCX
//! ingress classifier runs on every interface and relays the rest:
//! redirects into veths and other virtual devices (a frame XDP redirects
//! into a veth is dropped unless the veth's other end runs XDP or GRO, and
//! generic XDP pays an skb copy for nothing TC cannot do), and next hops
//! whose neighbour entry is missing (`bpf_redirect_neigh` resolves it).
//! Both attachments are bpf_links held by file descriptors: they end with
//! the process, nothing is pinned.
//!
//! Kernel interfaces: BPF_PROG_TYPE_XDP and BPF_PROG_TYPE_SCHED_CLS
//! attached with BPF_LINK_CREATE (XDP, TCX ingress: Linux 6.6; XDP alone
//! from 5.18), `bpf_fib_lookup`, `bpf_redirect`, `bpf_redirect_map`
//! (DEVMAP_HASH), `bpf_redirect_neigh`, `bpf_xdp_adjust_head`/`_tail`,
//! `bpf_skb_adjust_room`/`change_tail`, hash, array and per-CPU array maps,
//! BPF_PROG_TEST_RUN ([`Offload::test_run`]). Without the `kernel` feature
//! none of it is built and [`Offload::attach`] returns
//! [`OffloadError::NotBuilt`]. The program is `bpf/relay.bpf.c`; the map
//! layouts are in `wire`; README.md has the details.

#[cfg(feature = "kernel")]
mod kernel;
#[cfg(not(feature = "kernel"))]
mod stub;
mod types;
// Without the `kernel` feature only its tests use it.
#[cfg_attr(not(feature = "kernel"), allow(dead_code))]
mod wire;

#[cfg(feature = "kernel")]
pub use kernel::Offload;
#[cfg(not(feature = "kernel"))]
pub use stub::Offload;
pub use types::{
    Attachment, CHANNEL_FIRST, CHANNEL_LAST, Cause, Channel, ChannelKey, Config, Counters,
    DEFAULT_MAX_CHANNELS, Hook, HookStats, OffloadError, Stats, TestRun, UNLIMITED, Verdict,
    XdpPolicy,
};

/// True when this build can load the program (the `kernel` feature).
pub const fn built() -> bool {
    cfg!(feature = "kernel")
}
