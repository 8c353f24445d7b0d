//! Timers: retransmissions and give-ups (RFC 8489 §6.2.1–6.2.2) and the
//! refreshes that keep an allocation (RFC 8656 §7.3), its permissions (§9)
//! and channels (§12) alive.

use std::time::Instant;

use super::transaction::{self, Request};
use super::{Client, ClientEvent};

impl Client {
    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.transactions.iter().map(|t| t.deadline);
        let alloc = self
            .allocation
            .iter()
            .flat_map(|a| [Some(a.expires), a.refresh_at])
            .flatten();
        let perms = self
            .permissions
            .values()
            .filter(|p| p.installed && !p.in_flight)
            .map(|p| p.refresh_at);
        let chans = self
            .channels
            .iter()
            .filter(|c| c.bound && !c.in_flight)
            .map(|c| c.refresh_at);
        tx.chain(alloc).chain(perms).chain(chans).min()
    }

    /// Retransmits and gives up on requests, and sends the refreshes that
    /// are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(t) = self.transactions.get_mut(i) {
            if t.deadline > now {
                i += 1;
                continue;
            }
            match t.on_deadline() {
                transaction::Step::Retransmit => {
                    self.transmits.push_back(t.bytes.clone());
                    i += 1;
                }
                transaction::Step::TimedOut => {
                    let t = self.transactions.swap_remove(i);
                    self.timed_out(now, t.request);
                }
            }
        }
        self.refresh_due(now);
    }

    fn refresh_due(&mut self, now: Instant) {
        let Some(a) = self.allocation.as_mut() else {
            return;
        };
        if a.expires <= now {
            self.clear_allocation();
            self.events.push_back(ClientEvent::Expired);
            return;
        }
        let mut requests = Vec::new();
        if a.refresh_at.is_some_and(|t| t <= now) {
            a.refresh_at = None;
            requests.push(Request::Refresh {
                lifetime: a.lifetime,
                automatic: true,
            });
        }
        let mut due = Vec::new();
        for (ip, p) in &mut self.permissions {
            if p.installed && !p.in_flight && p.refresh_at <= now {
                p.in_flight = true;
                due.push(*ip);
            }
        }
        if !due.is_empty() {
            due.sort();
            requests.push(Request::CreatePermission { peers: due });
        }
        for c in &mut self.channels {
            if c.bound && !c.in_flight && c.refresh_at <= now {
                c.in_flight = true;
                requests.push(Request::ChannelBind {
                    channel: c.number,
                    peer: c.peer,
                });
            }
        }
        for r in requests {
            // Encoding these small requests cannot fail; if it did, the
            // next timeout would not retry, and the allocation would expire.
            let _ = self.start(now, r, 0);
        }
    }

    /// Forgets the allocation and everything that hangs off it.
    pub(super) fn clear_allocation(&mut self) {
        self.allocation = None;
        self.permissions.clear();
        self.channels.clear();
        self.transactions
            .retain(|t| matches!(t.request, Request::Binding | Request::Allocate(_)));
    }

    /// A request got no response.
    fn timed_out(&mut self, now: Instant, request: Request) {
        let method = request.method();
        match request {
            Request::Refresh {
                lifetime: Some(0), ..
            } => {
                // Nobody answered the delete; the server will expire it.
                self.clear_allocation();
            }
            Request::Refresh {
                automatic: true, ..
            } => {
                if let Some(a) = self.allocation.as_mut() {
                    // Try again at once; the allocation may still be alive.
                    a.refresh_at = Some(now);
                }
            }
            // An explicit refresh leaves the automatic schedule as it was.
            Request::Refresh { .. } => {}
            Request::CreatePermission { peers } => {
                // Keep refreshing confirmed permissions: the next timeout
                // tries again. Unconfirmed ones are dropped.
                for ip in peers {
                    match self.permissions.get_mut(&ip) {
                        Some(p) if p.installed => p.in_flight = false,
                        _ => {
                            self.permissions.remove(&ip);
                        }
                    }
                }
            }
            Request::ChannelBind { channel, .. } => {
                match self.channels.iter_mut().find(|c| c.number == channel) {
                    Some(c) if c.bound => c.in_flight = false,
                    _ => self.channels.retain(|c| c.number != channel),
                }
            }
            other => self.drop_request_state(&other),
        }
        self.events.push_back(ClientEvent::TimedOut { method });
    }

    /// Undoes what a failed request had set up.
    pub(super) fn drop_request_state(&mut self, request: &Request) {
        match request {
            Request::Binding | Request::Refresh { .. } => {}
            Request::Allocate(_) => self.allocating = false,
            Request::CreatePermission { peers } => {
                for ip in peers {
                    self.permissions.remove(ip);
                }
            }
            Request::ChannelBind { channel, .. } => {
                self.channels.retain(|c| c.number != *channel);
            }
        }
    }
}
