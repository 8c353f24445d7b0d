//! `switchboard send ROOM FILE…`: every file to every peer in the room
//! over the file channel (docs/protocol.md, "Data channels"), read from
//! disk as it goes; done when at least one peer has verified every file
//! and no transfer is under way.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use peer::driver::{App, Flow};
use peer::files::{Control, HIGH_WATER, LOW_WATER, Outgoing, OutgoingEvent, TransferIds};
use peer::{Channel, Event, LinkEvent, Session};
use signal::PeerId;

use super::progress::Progress;

struct Source {
    path: PathBuf,
    name: String,
    size: u64,
}

struct Current {
    out: Outgoing,
    file: File,
    progress: Progress,
    header_sent: bool,
    /// The `end` message, made once, until it is written.
    end: Option<String>,
    end_sent: bool,
}

#[derive(Default)]
struct Receiver {
    queue: VecDeque<usize>,
    current: Option<Current>,
    delivered: usize,
}

/// The sender.
pub struct Send {
    sources: Vec<Source>,
    receivers: BTreeMap<PeerId, Receiver>,
    ids: TransferIds,
    terminal: bool,
    buf: Vec<u8>,
    finished_one: bool,
    blocked: bool,
}

impl Send {
    /// Checks every file can be read before joining.
    pub fn new(paths: &[PathBuf], terminal: bool) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        for path in paths {
            let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
            anyhow::ensure!(meta.is_file(), "{} is not a file", path.display());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            sources.push(Source {
                path: path.clone(),
                name,
                size: meta.len(),
            });
        }
        Ok(Send {
            sources,
            receivers: BTreeMap::new(),
            ids: TransferIds::default(),
            terminal,
            buf: Vec::new(),
            finished_one: false,
            blocked: false,
        })
    }

    fn start_next(&mut self, id: &PeerId, peer_name: &str) -> Result<(), String> {
        let Some(r) = self.receivers.get_mut(id) else {
            return Ok(());
        };
        if r.current.is_some() {
            return Ok(());
        }
        let Some(i) = r.queue.pop_front() else {
            return Ok(());
        };
        let Some(src) = self.sources.get(i) else {
            return Ok(());
        };
        let file = open(&src.path)?;
        let out = Outgoing::new(
            self.ids.next_id(rand::random()),
            &src.name,
            src.size,
            mime_of(&src.path),
        )
        .map_err(|e| format!("{}: {e}", src.path.display()))?;
        let progress = Progress::new(
            format!("{} → {peer_name}", src.name),
            src.size,
            self.terminal,
        );
        r.current = Some(Current {
            out,
            file,
            progress,
            header_sent: false,
            end: None,
            end_sent: false,
        });
        Ok(())
    }

    /// Writes to `id` while the channel, the window and the buffer allow.
    fn pump(&mut self, now: Instant, session: &mut Session, id: &PeerId) -> Result<(), String> {
        let Some(cur) = self.receivers.get_mut(id).and_then(|r| r.current.as_mut()) else {
            return Ok(());
        };
        if !cur.header_sent {
            let header = cur.out.header().to_json();
            if !session.write(now, id, Channel::File, false, header.as_bytes()) {
                self.blocked = true;
                return Ok(());
            }
            session.set_low_threshold(id, Channel::File, LOW_WATER);
            cur.header_sent = true;
        }
        while cur.out.bytes_sent() < cur.out.size() {
            if !cur.out.can_send() || session.buffered(id, Channel::File) > HIGH_WATER {
                return Ok(());
            }
            let len = cur.out.next_len();
            self.buf.resize(len, 0);
            let offset = cur.out.bytes_sent();
            cur.file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| cur.file.read_exact(&mut self.buf))
                .map_err(|e| format!("reading {}: {e}", cur.out.name()))?;
            if !session.write(now, id, Channel::File, true, &self.buf) {
                self.blocked = true;
                return Ok(());
            }
            cur.out.sent(&self.buf).map_err(|e| e.to_string())?;
            cur.progress.set(cur.out.bytes_sent());
        }
        if !cur.end_sent {
            if cur.end.is_none() {
                cur.end = Some(cur.out.finish().map_err(|e| e.to_string())?.to_json());
            }
            let end = cur.end.as_deref().unwrap_or_default();
            if !session.write(now, id, Channel::File, false, end.as_bytes()) {
                self.blocked = true;
                return Ok(());
            }
            cur.end_sent = true;
        }
        Ok(())
    }

    fn on_control(&mut self, id: &PeerId, peer_name: &str, text: &str) -> Result<(), String> {
        let Ok(msg) = Control::parse(text) else {
            return Ok(());
        };
        let Some(r) = self.receivers.get_mut(id) else {
            return Ok(());
        };
        let Some(cur) = r.current.as_mut() else {
            return Ok(());
        };
        match cur.out.handle(&msg) {
            Some(OutgoingEvent::Progress { .. }) | None => Ok(()),
            Some(OutgoingEvent::Delivered) => {
                let sha = cur.out.sha256().unwrap_or_default().to_owned();
                cur.progress.finish(&format!("delivered, SHA-256 {sha}"));
                r.current = None;
                r.delivered += 1;
                if r.delivered == self.sources.len() {
                    self.finished_one = true;
                }
                self.start_next(id, peer_name)
            }
            Some(OutgoingEvent::Corrupted) => {
                cur.progress.finish("corrupted");
                Err(format!(
                    "{} arrived corrupted at {peer_name}",
                    cur.out.name()
                ))
            }
        }
    }
}

fn open(path: &Path) -> Result<File, String> {
    File::open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A type for the receiver's download link, from the extension.
fn mime_of(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
    .into()
}

impl App for Send {
    fn on_event(&mut self, _now: Instant, session: &mut Session, event: &Event) -> Flow {
        let r = match event {
            Event::Link { peer, event } => {
                let name = session.display_name(peer);
                match event {
                    LinkEvent::ChannelOpen(Channel::File) => {
                        let queue = (0..self.sources.len()).collect();
                        self.receivers.insert(
                            peer.clone(),
                            Receiver {
                                queue,
                                ..Receiver::default()
                            },
                        );
                        self.start_next(peer, &name)
                    }
                    LinkEvent::Data {
                        channel: Channel::File,
                        binary: false,
                        data,
                    } => match std::str::from_utf8(data) {
                        Ok(text) => self.on_control(peer, &name, text),
                        Err(_) => Ok(()),
                    },
                    LinkEvent::Failed | LinkEvent::ChannelClosed(Channel::File) => {
                        self.lost(peer, &name)
                    }
                    _ => Ok(()),
                }
            }
            Event::PeerLeft { id, .. } => {
                let name = id.to_string();
                self.lost(id, &name)
            }
            _ => Ok(()),
        };
        match r {
            Ok(()) => Flow::Continue,
            Err(e) => Flow::Fail(e),
        }
    }

    fn poll(&mut self, now: Instant, session: &mut Session) -> Flow {
        self.blocked = false;
        let ids: Vec<PeerId> = self.receivers.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.pump(now, session, &id) {
                return Flow::Fail(e);
            }
        }
        let busy = self
            .receivers
            .values()
            .any(|r| r.current.is_some() || !r.queue.is_empty());
        if self.finished_one && !busy {
            return Flow::Done;
        }
        Flow::Continue
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // A full SCTP buffer says nothing when it drains below our
        // threshold only later: look again soon.
        self.blocked
            .then(|| Instant::now() + Duration::from_millis(5))
    }
}

impl Send {
    fn lost(&mut self, id: &PeerId, name: &str) -> Result<(), String> {
        match self.receivers.remove(id) {
            Some(Receiver {
                current: Some(mut cur),
                ..
            }) => {
                cur.progress.finish("interrupted");
                Err(format!(
                    "{name} went away during the transfer of {}",
                    cur.out.name()
                ))
            }
            _ => Ok(()),
        }
    }
}
