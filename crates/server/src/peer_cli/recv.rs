//! `switchboard recv ROOM`: files sent to us on the file channel
//! (docs/protocol.md, "Data channels") stream to a hidden `.part` file in
//! `--dir`, with `written` reports after each 1 MiB reaches the disk; the
//! file gets its name only when its SHA-256 matches, and is deleted
//! otherwise. Never more than one write batch is held in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use peer::driver::{App, Flow};
use peer::files::{Control, Incoming, WRITE_BATCH};
use peer::{Channel, Event, LinkEvent, Session};
use signal::PeerId;

use super::progress::Progress;

struct Active {
    incoming: Incoming,
    part: PathBuf,
    file: File,
    batch: Vec<u8>,
    progress: Progress,
}

/// The receiver.
pub struct Recv {
    dir: PathBuf,
    count: u64,
    verified: u64,
    terminal: bool,
    active: BTreeMap<PeerId, Active>,
    senders: BTreeMap<PeerId, ()>,
}

impl Recv {
    /// Receives into `dir` (which must exist) until `count` files are verified.
    pub fn new(dir: PathBuf, count: u64, terminal: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
        Ok(Recv {
            dir,
            count,
            verified: 0,
            terminal,
            active: BTreeMap::new(),
            senders: BTreeMap::new(),
        })
    }

    fn text(
        &mut self,
        now: Instant,
        session: &mut Session,
        peer: &PeerId,
        text: &str,
    ) -> Result<(), String> {
        let Ok(msg) = Control::parse(text) else {
            return Ok(());
        };
        match &msg {
            Control::File { .. } => {
                if let Some(old) = self.active.remove(peer) {
                    discard(old, "replaced by a new transfer");
                }
                let Ok(incoming) = Incoming::new(&msg) else {
                    return Ok(());
                };
                let part = self.dir.join(format!(
                    ".{}.{}.part",
                    safe_name(incoming.name()),
                    std::process::id()
                ));
                let file = File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
                let label = format!("{} ← {}", incoming.name(), session.display_name(peer));
                let progress = Progress::new(label, incoming.size(), self.terminal);
                self.senders.insert(peer.clone(), ());
                self.active.insert(
                    peer.clone(),
                    Active {
                        incoming,
                        part,
                        file,
                        batch: Vec::with_capacity(WRITE_BATCH as usize),
                        progress,
                    },
                );
            }
            Control::End { .. } => {
                let Some(mut a) = self.active.remove(peer) else {
                    return Ok(());
                };
                let flushed =
                    flush(&mut a).and_then(|_| a.file.sync_all().map_err(|e| e.to_string()));
                if flushed.is_err() {
                    a.incoming.write_failed();
                }
                let Ok(verdict) = a.incoming.end(&msg) else {
                    self.active.insert(peer.clone(), a);
                    return Ok(());
                };
                if let Some(ack) = a.incoming.ack() {
                    session.write(now, peer, Channel::File, false, ack.to_json().as_bytes());
                }
                if verdict.ok {
                    let target = free_name(&self.dir, &safe_name(a.incoming.name()));
                    std::fs::rename(&a.part, &target)
                        .map_err(|e| format!("{}: {e}", target.display()))?;
                    a.progress
                        .finish(&format!("verified, SHA-256 {}", verdict.sha256));
                    println!("{}", target.display());
                    self.verified += 1;
                } else {
                    let _ = std::fs::remove_file(&a.part);
                    a.progress.finish("corrupted, deleted");
                    return Err(format!(
                        "{} arrived corrupted (SHA-256 mismatch); deleted",
                        a.incoming.name()
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn binary(
        &mut self,
        now: Instant,
        session: &mut Session,
        peer: &PeerId,
        data: &[u8],
    ) -> Result<(), String> {
        let Some(a) = self.active.get_mut(peer) else {
            return Ok(());
        };
        if let Err(e) = a.incoming.chunk(data) {
            let a = self.active.remove(peer);
            if let Some(a) = a {
                discard(a, &e.to_string());
            }
            return Err(format!("transfer from {peer} failed: {e}"));
        }
        a.batch.extend_from_slice(data);
        a.progress.set(a.incoming.received());
        if a.batch.len() as u64 >= WRITE_BATCH {
            if let Err(e) = flush(a) {
                a.incoming.write_failed();
                return Err(e);
            }
            if let Some(w) = a.incoming.written(a.incoming.received()) {
                session.write(now, peer, Channel::File, false, w.to_json().as_bytes());
            }
        }
        Ok(())
    }
}

fn flush(a: &mut Active) -> Result<(), String> {
    a.file
        .write_all(&a.batch)
        .map_err(|e| format!("writing {}: {e}", a.part.display()))?;
    a.batch.clear();
    Ok(())
}

fn discard(mut a: Active, why: &str) {
    let _ = std::fs::remove_file(&a.part);
    a.progress.finish(why);
}

/// The sender's (already sanitized) name, never a path or a dot name.
fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    match n.trim_start_matches('.') {
        "" => "file".into(),
        rest if rest.len() != n.len() => format!("_{rest}"),
        _ => n,
    }
}

/// `name`, or `name (1)`, `name (2)`… if taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (1..)
        .map(|i| dir.join(format!("{stem} ({i}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

impl App for Recv {
    fn on_event(&mut self, now: Instant, session: &mut Session, event: &Event) -> Flow {
        let r = match event {
            Event::Link {
                peer,
                event:
                    LinkEvent::Data {
                        channel: Channel::File,
                        binary,
                        data,
                    },
            } => {
                if *binary {
                    self.binary(now, session, peer, data)
                } else {
                    match std::str::from_utf8(data) {
                        Ok(t) => self.text(now, session, peer, t),
                        Err(_) => Ok(()),
                    }
                }
            }
            Event::PeerLeft { id, .. } => {
                if let Some(a) = self.active.remove(id) {
                    discard(a, "sender left");
                    Err(format!("{id} left during a transfer"))
                } else if self.senders.remove(id).is_some()
                    && self.senders.is_empty()
                    && self.count == 0
                {
                    return Flow::Done;
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            return Flow::Fail(e);
        }
        if self.count > 0 && self.verified >= self.count {
            return Flow::Done;
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_in_the_directory() {
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(".bashrc"), "_bashrc");
        assert_eq!(safe_name("a/b"), "a_b");
        assert_eq!(safe_name("report.pdf"), "report.pdf");
    }
}
