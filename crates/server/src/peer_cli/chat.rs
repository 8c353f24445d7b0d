//! `switchboard chat`: the room's chat on stdin/stdout, one line a
//! message, as `NAME: text`; joins and leaves as `* NAME joined`. Lines
//! typed before anyone is connected wait for the first peer; at the end of
//! input it leaves once they are delivered (exit 1 if nobody came within
//! [`EOF_WAIT`]).

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use peer::driver::{App, Flow};
use peer::{Channel, Event, LinkEvent, Session};
use signal::PeerId;

/// The chat client.
#[derive(Default)]
pub struct Chat {
    joined: bool,
    pending: std::collections::VecDeque<String>,
    open: HashSet<PeerId>,
    names: std::collections::HashMap<PeerId, String>,
    closing: Option<Instant>,
}

/// How long the end of input waits for undelivered lines.
pub const EOF_WAIT: Duration = Duration::from_secs(10);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl App for Chat {
    fn on_event(&mut self, now: Instant, session: &mut Session, event: &Event) -> Flow {
        match event {
            Event::Joined { peers, .. } => {
                self.joined = true;
                say(&format!("* joined, {} other(s) here", peers.len()));
            }
            Event::PeerJoined(p) => say(&format!("* {} joined", p.name)),
            Event::PeerLeft { id, .. } => {
                self.open.remove(id);
                let name = self.names.remove(id).unwrap_or_else(|| id.to_string());
                say(&format!("* {name} left"));
            }
            Event::Link { peer, event } => match event {
                LinkEvent::ChannelOpen(Channel::Chat) => {
                    self.open.insert(peer.clone());
                    // Lines typed while nobody was there go to the first peer.
                    for json in self.pending.drain(..) {
                        session.write(now, peer, Channel::Chat, false, json.as_bytes());
                    }
                    let name = session.display_name(peer);
                    say(&format!("* connected to {name}"));
                    self.names.insert(peer.clone(), name);
                }
                LinkEvent::Data {
                    channel: Channel::Chat,
                    binary: false,
                    data,
                } => {
                    if let Some(text) = std::str::from_utf8(data)
                        .ok()
                        .and_then(peer::chat::parse_chat)
                    {
                        say(&format!("{}: {text}", session.display_name(peer)));
                    }
                }
                LinkEvent::Failed => say(&format!("* lost {}", session.display_name(peer))),
                _ => {}
            },
            _ => {}
        }
        Flow::Continue
    }

    fn on_input(&mut self, now: Instant, session: &mut Session, bytes: Option<Vec<u8>>) -> Flow {
        let Some(line) = bytes else {
            // End of input: let what was written go out, then leave.
            self.closing = Some(now + EOF_WAIT);
            return Flow::Continue;
        };
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            return Flow::Continue;
        }
        let json = peer::chat::chat_json(&text);
        let mut sent = 0;
        for id in self.open.clone() {
            if session.write(now, &id, Channel::Chat, false, json.as_bytes()) {
                sent += 1;
            }
        }
        if sent == 0 {
            self.pending.push_back(json);
        }
        Flow::Continue
    }

    fn poll(&mut self, now: Instant, session: &mut Session) -> Flow {
        match self.closing {
            Some(deadline) => {
                let buffered: usize = self
                    .open
                    .clone()
                    .iter()
                    .map(|id| session.buffered(id, Channel::Chat))
                    .sum();
                if self.joined && self.pending.is_empty() && buffered == 0 {
                    Flow::Done
                } else if now >= deadline && !self.pending.is_empty() {
                    Flow::Fail(format!(
                        "{} message(s) not delivered: nobody to chat with in the room",
                        self.pending.len()
                    ))
                } else if now >= deadline && self.joined {
                    Flow::Done
                } else {
                    Flow::Continue
                }
            }
            None => Flow::Continue,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.closing
            .map(|_| Instant::now() + Duration::from_millis(50))
    }
}
