//! The channel table: the userspace side of the entries (which key holds
//! which counters slot, which relay ports are in use) and the map writes
//! that install, refill and remove them.
//!
//! Only userspace writes `to_peer`, `to_client`, `grants` and `ports`;
//! only the program writes a slot's `counters` once it is in use, so a
//! budget refill never races a counter update. Freed slots are reused
//! oldest first, which leaves datagrams still in flight on a removed
//! entry the most time to finish.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::{Offload, map_error};
use crate::types::{Channel, ChannelKey, Counters, OffloadError, UNLIMITED};
use crate::wire::{self, CounterWords, PORT_WORDS};

/// One installed channel.
struct Entry {
    channel: Channel,
    family: u8,
    slot: u32,
}

pub(super) struct Table {
    entries: HashMap<ChannelKey, Entry>,
    /// (peer, relay) → the key bound to it: the reverse map's key.
    peers: HashMap<(SocketAddr, SocketAddr), ChannelKey>,
    free: VecDeque<u32>,
    /// Entries per relay port: the port's bit is set while any use it.
    relay_ports: HashMap<u16, u32>,
    /// Mirror of the `ports` map, so a bit is set without reading the map.
    port_words: Vec<u64>,
    capacity: u32,
}

impl Table {
    pub(super) fn new(capacity: u32) -> Self {
        Table {
            entries: HashMap::new(),
            peers: HashMap::new(),
            free: (0..capacity).collect(),
            relay_ports: HashMap::new(),
            port_words: vec![0; 2 * PORT_WORDS as usize],
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Updates the mirror; returns the word to write and its index.
    pub(super) fn set_port_bit(&mut self, base: u32, port: u16, on: bool) -> (u32, u64) {
        let (index, bit) = wire::port_bit(base, port);
        let word = self.port_words.get_mut(index as usize);
        match word {
            Some(w) => {
                if on {
                    *w |= bit;
                } else {
                    *w &= !bit;
                }
                (index, *w)
            }
            None => (index, 0),
        }
    }
}

fn canonical_key(key: &ChannelKey) -> ChannelKey {
    let c = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    ChannelKey {
        client: c(key.client),
        server: c(key.server),
        channel: key.channel,
    }
}

/// A grant that is a number of bytes, never [`UNLIMITED`] by accident.
fn limited(bytes: u64) -> u64 {
    bytes.min(UNLIMITED - 1)
}

impl Offload {
    /// Relays `ch` in the kernel, both directions, with `budget_bytes` to
    /// spend before its datagrams go to userspace again ([`UNLIMITED`]: no
    /// limit). Call it when the channel is bound and the peer's permission
    /// is valid. Inserting the same channel again only sets its budget;
    /// the same key with another peer or relay replaces the entry.
    pub fn insert(&mut self, ch: &Channel, budget_bytes: u64) -> Result<(), OffloadError> {
        let ch = wire::canonical(ch);
        let family = wire::family(&ch)?;
        if let Some(e) = self.table.entries.get(&ch.key) {
            if e.channel == ch {
                return self.set_budget(&ch.key, budget_bytes);
            }
            self.remove(&ch.key)?;
        }
        if self.table.peers.contains_key(&(ch.peer, ch.relay)) {
            return Err(OffloadError::PeerTaken {
                peer: ch.peer,
                relay: ch.relay,
            });
        }
        let slot = self
            .table
            .free
            .pop_front()
            .ok_or(OffloadError::Full(self.table.capacity))?;
        let entry = Entry {
            channel: ch,
            family,
            slot,
        };
        if let Err(e) = self.install(&entry, budget_bytes) {
            // The install error is the one to report; the cleanup's would
            // only repeat it.
            let _ = self.uninstall(&entry);
            self.table.free.push_front(slot);
            return Err(e);
        }
        self.table.peers.insert((ch.peer, ch.relay), ch.key);
        self.table.entries.insert(ch.key, entry);
        Ok(())
    }

    fn install(&mut self, e: &Entry, budget: u64) -> Result<(), OffloadError> {
        let ch = &e.channel;
        let grant = if budget == UNLIMITED {
            UNLIMITED
        } else {
            limited(budget)
        };
        self.maps
            .counters
            .set(e.slot, [0u64; 5], 0)
            .map_err(map_error("counters", "update"))?;
        self.maps
            .grants
            .set(e.slot, grant, 0)
            .map_err(map_error("grants", "update"))?;
        let port = ch.relay.port();
        let users = self.table.relay_ports.entry(port).or_insert(0);
        *users += 1;
        if *users == 1 {
            self.set_port(1, port, true)?;
        }
        self.maps
            .to_client
            .insert(
                wire::peer_key(ch, e.family),
                wire::peer_route(ch, e.slot),
                0,
            )
            .map_err(map_error("to_client", "update"))?;
        self.maps
            .to_peer
            .insert(
                wire::chan_key(&ch.key, e.family),
                wire::chan_route(ch, e.slot),
                0,
            )
            .map_err(map_error("to_peer", "update"))
    }

    /// Takes an entry out of the maps; the first error is returned after
    /// everything was tried.
    fn uninstall(&mut self, e: &Entry) -> Result<(), OffloadError> {
        let ch = &e.channel;
        let gone = |r: Result<(), aya::maps::MapError>| match r {
            Err(aya::maps::MapError::KeyNotFound | aya::maps::MapError::ElementNotFound) => Ok(()),
            r => r,
        };
        let to_peer = gone(self.maps.to_peer.remove(&wire::chan_key(&ch.key, e.family)))
            .map_err(map_error("to_peer", "delete"));
        let to_client = gone(self.maps.to_client.remove(&wire::peer_key(ch, e.family)))
            .map_err(map_error("to_client", "delete"));
        let port = ch.relay.port();
        let mut ports = Ok(());
        if let Some(users) = self.table.relay_ports.get_mut(&port) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.table.relay_ports.remove(&port);
                ports = self.set_port(1, port, false);
            }
        }
        to_peer.and(to_client).and(ports)
    }

    /// Stops relaying `key` in the kernel (unbind, expiry, refresh to 0,
    /// policy change): its datagrams go to userspace from now on. Returns
    /// the entry's final counters, `None` if it was not in the kernel.
    pub fn remove(&mut self, key: &ChannelKey) -> Result<Option<Counters>, OffloadError> {
        let key = canonical_key(key);
        let Some(e) = self.table.entries.remove(&key) else {
            return Ok(None);
        };
        self.table.peers.remove(&(e.channel.peer, e.channel.relay));
        let removed = self.uninstall(&e);
        let counters = self.read(e.slot);
        self.table.free.push_back(e.slot);
        removed?;
        counters.map(Some)
    }

    /// What the kernel relayed for `key`, `None` if it is not in the kernel.
    pub fn counters(&self, key: &ChannelKey) -> Result<Option<Counters>, OffloadError> {
        match self.table.entries.get(&canonical_key(key)) {
            Some(e) => self.read(e.slot).map(Some),
            None => Ok(None),
        }
    }

    /// Adds `bytes` to what `key` may still relay (a refill from the token
    /// bucket); no effect on an unlimited entry.
    pub fn add_budget(&mut self, key: &ChannelKey, bytes: u64) -> Result<(), OffloadError> {
        let slot = self.slot(key)?;
        let grant = self.grant(slot)?;
        if grant == UNLIMITED {
            return Ok(());
        }
        self.write_grant(slot, limited(grant.saturating_add(bytes)))
    }

    /// Sets what `key` may still relay from now on to `bytes`
    /// ([`UNLIMITED`]: no limit).
    pub fn set_budget(&mut self, key: &ChannelKey, bytes: u64) -> Result<(), OffloadError> {
        let slot = self.slot(key)?;
        let grant = if bytes == UNLIMITED {
            UNLIMITED
        } else {
            limited(self.words(slot)?[4].saturating_add(bytes))
        };
        self.write_grant(slot, grant)
    }

    fn slot(&self, key: &ChannelKey) -> Result<u32, OffloadError> {
        self.table
            .entries
            .get(&canonical_key(key))
            .map(|e| e.slot)
            .ok_or(OffloadError::NotFound)
    }

    fn words(&self, slot: u32) -> Result<CounterWords, OffloadError> {
        self.maps
            .counters
            .get(&slot, 0)
            .map_err(map_error("counters", "lookup"))
    }

    fn grant(&self, slot: u32) -> Result<u64, OffloadError> {
        self.maps
            .grants
            .get(&slot, 0)
            .map_err(map_error("grants", "lookup"))
    }

    fn write_grant(&mut self, slot: u32, grant: u64) -> Result<(), OffloadError> {
        self.maps
            .grants
            .set(slot, grant, 0)
            .map_err(map_error("grants", "update"))
    }

    fn read(&self, slot: u32) -> Result<Counters, OffloadError> {
        let [
            to_peer_packets,
            to_peer_bytes,
            to_client_packets,
            to_client_bytes,
            charged,
        ] = self.words(slot)?;
        let grant = self.grant(slot)?;
        Ok(Counters {
            to_peer_packets,
            to_peer_bytes,
            to_client_packets,
            to_client_bytes,
            budget_left: if grant == UNLIMITED {
                UNLIMITED
            } else {
                grant.saturating_sub(charged)
            },
        })
    }
}
