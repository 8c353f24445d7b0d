//! `switchboard pipe ROOM`: each line of stdin is one message on the pipe
//! channel (id 2) to every native peer in the room; each message received
//! is a line on stdout. With `--unreliable` the channel is unordered with
//! no retransmissions, so messages can be lost: both sides count what
//! they sent and received and say so on stderr at the end.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use peer::driver::{App, Flow};
use peer::{Channel, Event, LinkEvent, Session};
use signal::PeerId;

/// Messages queued for peers whose channel is not open yet, at most.
const BACKLOG: usize = 100_000;
/// Bytes a channel may hold unsent before the pipe waits.
const SEND_BUFFER: usize = 64 * 1024;

/// The pipe.
#[derive(Default)]
pub struct Pipe {
    open: HashSet<PeerId>,
    backlog: std::collections::VecDeque<Vec<u8>>,
    sent: u64,
    received: u64,
    dropped: u64,
    closing: Option<Instant>,
    saw_peer: bool,
    /// Peers that already took the message at the front of the backlog.
    took_front: HashSet<PeerId>,
}

impl Pipe {
    /// The counts, on stderr.
    fn report(&self) {
        eprintln!(
            "pipe: sent {} messages, received {}, dropped {} before a peer was connected",
            self.sent, self.received, self.dropped
        );
    }

    fn send_all(&mut self, now: Instant, session: &mut Session) {
        if self.open.is_empty() {
            return;
        }
        while let Some(msg) = self.backlog.front() {
            for id in &self.open {
                if self.took_front.contains(id) {
                    continue;
                }
                // A small send buffer: an unreliable channel abandons what
                // waits too long in it.
                if session.buffered(id, Channel::Pipe) > SEND_BUFFER
                    || !session.write(now, id, Channel::Pipe, true, msg)
                {
                    // Later, to the peers that have not taken it yet.
                    return;
                }
                self.took_front.insert(id.clone());
            }
            self.took_front.clear();
            self.backlog.pop_front();
            self.sent += 1;
        }
    }
}

impl Drop for Pipe {
    /// The counts are said however the pipe ended.
    fn drop(&mut self) {
        self.report();
    }
}

impl App for Pipe {
    fn on_event(&mut self, now: Instant, session: &mut Session, event: &Event) -> Flow {
        match event {
            Event::Link {
                peer,
                event: LinkEvent::ChannelOpen(Channel::Pipe),
            } => {
                self.open.insert(peer.clone());
                self.saw_peer = true;
                self.send_all(now, session);
            }
            Event::Link {
                event:
                    LinkEvent::Data {
                        channel: Channel::Pipe,
                        data,
                        ..
                    },
                ..
            } => {
                self.received += 1;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(data);
                let _ = out.write_all(b"\n");
            }
            Event::PeerLeft { id, .. } => {
                self.open.remove(id);
                self.took_front.remove(id);
                if self.saw_peer && self.open.is_empty() {
                    let _ = std::io::stdout().flush();
                    return Flow::Done;
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn on_input(&mut self, now: Instant, session: &mut Session, bytes: Option<Vec<u8>>) -> Flow {
        match bytes {
            Some(line) => {
                if self.backlog.len() >= BACKLOG {
                    self.dropped += 1;
                } else {
                    self.backlog.push_back(line);
                }
                self.send_all(now, session);
            }
            // A pure receiver (stdin empty, e.g. </dev/null) keeps
            // receiving until the senders leave.
            None if self.sent == 0 && self.backlog.is_empty() => {}
            None => self.closing = Some(now),
        }
        Flow::Continue
    }

    fn poll(&mut self, now: Instant, session: &mut Session) -> Flow {
        self.send_all(now, session);
        if let Some(since) = self.closing {
            let pending: usize = self
                .open
                .iter()
                .map(|id| session.buffered(id, Channel::Pipe))
                .sum();
            let waited = now.duration_since(since);
            if self.backlog.is_empty() && pending == 0 && waited > Duration::from_millis(500)
                || waited > Duration::from_secs(30)
            {
                let _ = std::io::stdout().flush();
                return Flow::Done;
            }
        }
        Flow::Continue
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.closing.is_some() || !self.backlog.is_empty())
            .then(|| Instant::now() + Duration::from_millis(10))
    }
}
