//! Waiting for and reading relay sockets: one epoll instance per worker
//! ([`RelayPoll`], mio, itself registered with tokio as one readable file
//! descriptor) and one set of receive slots ([`PeerSlots`]) every relay
//! socket of the worker is read into, so an idle allocation costs no task,
//! no tokio registration and no buffer.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use turn::{PEER_HEADROOM, PEER_TAILROOM};

use super::MAX_DATAGRAM;
use super::relays::Relays;

/// Events taken from the relay epoll at once.
const RELAY_EVENTS: usize = 256;

/// One epoll instance (mio) holding a worker's relay sockets
/// (edge-triggered), registered with tokio as one readable file descriptor.
pub(crate) struct RelayPoll {
    poll: RefCell<mio::Poll>,
    events: RefCell<mio::Events>,
    fd: RawFd,
}

impl AsRawFd for RelayPoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl RelayPoll {
    /// A new epoll instance, registered with the current tokio runtime.
    pub(crate) fn new() -> io::Result<AsyncFd<RelayPoll>> {
        let poll = mio::Poll::new()?;
        let fd = poll.as_raw_fd();
        let poll = RelayPoll {
            poll: RefCell::new(poll),
            events: RefCell::new(mio::Events::with_capacity(RELAY_EVENTS)),
            fd,
        };
        // `with_interest` is deprecated because an arbitrary `AsRawFd` may
        // close or change its descriptor while registered (tokio #8587); the
        // replacement is `unsafe`, which this workspace forbids. The contract
        // holds here: `RelayPoll` owns the `mio::Poll`, never replaces it,
        // and returns the same open descriptor until it is dropped.
        #[allow(deprecated)]
        AsyncFd::with_interest(poll, Interest::READABLE)
    }

    /// Where relay sockets register.
    pub(crate) fn registry(&self) -> io::Result<mio::Registry> {
        self.poll.borrow().registry().try_clone()
    }

    /// Adds the addresses of relay sockets that became readable to `ready`;
    /// true if the epoll instance has no more events.
    pub(crate) fn collect(&self, relays: &Relays, ready: &mut Vec<SocketAddr>) -> bool {
        let (Ok(mut poll), Ok(mut events)) =
            (self.poll.try_borrow_mut(), self.events.try_borrow_mut())
        else {
            return false;
        };
        if poll.poll(&mut events, Some(Duration::ZERO)).is_err() {
            return false;
        }
        let mut n = 0;
        for event in events.iter() {
            n += 1;
            if let Some(local) = relays.address(event.token()) {
                ready.push(local);
            }
        }
        n < RELAY_EVENTS
    }
}

/// Datagrams read from one relay socket per turn (one recvmmsg), so one
/// busy peer does not starve the others.
const RELAY_BATCH: usize = 32;
/// One read slot: headroom for the ChannelData header, the largest
/// datagram, tailroom for stream padding.
const SLOT: usize = PEER_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM;

/// A worker's receive slots for relay sockets, shared by all of them (the
/// kernel backs a slot's pages only once a datagram that long was read).
pub(crate) struct PeerSlots {
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
}

impl PeerSlots {
    pub(crate) fn new() -> Self {
        PeerSlots {
            storage: vec![0; RELAY_BATCH * SLOT],
            meta: vec![RecvMeta::default(); RELAY_BATCH],
        }
    }

    /// One recvmmsg on `socket`, each datagram after [`PEER_HEADROOM`]
    /// bytes of its slot. True in the result's second place if the read
    /// filled every slot (the socket may hold more).
    pub(crate) fn read(
        &mut self,
        state: &UdpSocketState,
        socket: &std::net::UdpSocket,
    ) -> io::Result<(usize, bool)> {
        let mut slots = self.storage.chunks_mut(SLOT);
        let mut bufs: [IoSliceMut<'_>; RELAY_BATCH] = std::array::from_fn(|_| {
            let room = slots
                .next()
                .and_then(|s| s.get_mut(PEER_HEADROOM..PEER_HEADROOM + MAX_DATAGRAM));
            IoSliceMut::new(room.unwrap_or_default())
        });
        loop {
            match state.recv(socket.into(), &mut bufs, &mut self.meta) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) => return Ok((n, n >= RELAY_BATCH.min(quinn_udp::BATCH_SIZE))),
                Err(e) => return Err(e),
            }
        }
    }

    /// The first `n` slots after a read: (slot, sender, payload length).
    pub(crate) fn filled(
        &mut self,
        n: usize,
    ) -> impl Iterator<Item = (&mut [u8], SocketAddr, usize)> {
        self.storage
            .chunks_mut(SLOT)
            .zip(self.meta.iter())
            .take(n)
            .map(|(slot, m)| (slot, m.addr, m.len))
    }
}
