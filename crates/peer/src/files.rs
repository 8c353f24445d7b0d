//! The app's file transfer over the `file` data channel (id 1), sans-IO:
//! exactly the wire of `web/js/files.js`, so a native peer and a browser are
//! interchangeable on either end (the contract is written down in
//! `docs/protocol.md`, "Data channels").
//!
//! One transfer at a time per direction:
//!
//! 1. sender → `{"t":"file","id","name","size","mime"}` ([`Outgoing::header`]),
//! 2. sender → the bytes as binary messages of [`CHUNK`] bytes, the last one
//!    shorter ([`Outgoing::next_len`], [`Outgoing::sent`]),
//! 3. receiver → `{"t":"written","id","bytes"}` as its disk writes complete
//!    ([`Incoming::written`]); the sender keeps at most [`WINDOW`] bytes beyond
//!    the last report in flight ([`Outgoing::can_send`]),
//! 4. sender → `{"t":"end","id","sha256"}` ([`Outgoing::finish`]),
//! 5. receiver → `{"t":"ack","id","ok"}` ([`Incoming::end`], [`Incoming::ack`]).
//!
//! Nothing here does IO, reads a clock or holds file data: the driver moves
//! the messages, reads and writes the file, and watches the channel's
//! buffered amount ([`HIGH_WATER`], [`LOW_WATER`]).

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) mod js;
#[cfg(test)]
mod tests;

/// Size of one binary message (`CHUNK` in files.js). Every chunk but a
/// file's last is exactly this long.
pub const CHUNK: usize = 16 * 1024;
/// Bytes the sender may have sent beyond the receiver's last `written`
/// report (`WINDOW`).
pub const WINDOW: u64 = 16 * 1024 * 1024;
/// A name's maximum length in UTF-16 code units (`MAX_NAME`).
pub const MAX_NAME: usize = 255;
/// A received id's maximum length in UTF-16 code units (files.js slices it).
pub const MAX_ID: usize = 64;
/// The largest size a receiver accepts: `Number.MAX_SAFE_INTEGER`.
pub const MAX_SIZE: u64 = (1 << 53) - 1;
/// How much the browser receiver batches into one disk write before it
/// reports `written` (`WRITE_BATCH`). A native receiver may report more
/// often; it must report at least every [`WINDOW`] bytes or the sender stalls.
pub const WRITE_BATCH: u64 = 1024 * 1024;
/// The browser sender stops sending while the channel's buffered amount is
/// above this (`HIGH_WATER`)…
pub const HIGH_WATER: usize = 4 * 1024 * 1024;
/// …and resumes when it drops to this (`LOW_WATER`, its
/// `bufferedAmountLowThreshold`).
pub const LOW_WATER: usize = 1024 * 1024;

/// Why a message or a call was refused. For a received message, the app's
/// answer to every one of these is to ignore the message; only
/// [`FileWireError::MoreThanAnnounced`] also fails the transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileWireError {
    /// The text is not JSON (files.js ignores it).
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but not an object whose `t` is `file`, `end`, `written` or `ack`.
    #[error("not a file control message")]
    UnknownType,
    /// A `file` whose `Number(size)` is not a safe integer ≥ 0, or a size
    /// above [`MAX_SIZE`] given to [`Outgoing::new`].
    #[error("size is not an integer from 0 to 2^53 - 1")]
    BadSize,
    /// A `file` or `end` whose `id` is not a string.
    #[error("id is not a string")]
    BadId,
    /// An id given to [`Outgoing::new`] longer than [`MAX_ID`] UTF-16 code
    /// units (the receiver would cut it and never match the `end`).
    #[error("id is longer than 64 UTF-16 code units")]
    IdTooLong,
    /// A `written` whose `bytes` is not a number.
    #[error("bytes is not a number")]
    BadBytes,
    /// More bytes than the `file` message announced (the transfer failed).
    #[error("more data than announced")]
    MoreThanAnnounced,
    /// [`Outgoing::sent`] with a chunk over [`CHUNK`] bytes.
    #[error("a chunk of {0} bytes is larger than 16 KiB")]
    ChunkTooLarge(usize),
    /// [`Outgoing::finish`] before all the announced bytes were sent.
    #[error("{sent} of {size} bytes sent")]
    Incomplete {
        /// Bytes sent.
        sent: u64,
        /// Bytes announced.
        size: u64,
    },
    /// [`Outgoing::sent`] or [`Outgoing::finish`] after `finish`.
    #[error("the transfer has already ended")]
    NotSending,
    /// [`Incoming::new`] with something other than a `file` message.
    #[error("not a file message")]
    NotFile,
    /// [`Incoming::end`] with something other than an `end` for this id.
    #[error("not an end for this transfer")]
    NotOurs,
    /// A chunk or an `end` after the transfer ended or failed (ignored).
    #[error("the transfer is not receiving")]
    NotReceiving,
}

/// A text message on the file channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Announces a transfer; the binary chunks that follow belong to it.
    File {
        /// The transfer id: `<n>-<6 base36>` from the app ([`transfer_id`]).
        id: String,
        /// A display name: no `\`, `/` or C0 controls once parsed.
        name: String,
        /// Bytes that will follow.
        size: u64,
        /// A `type/subtype` media type, or empty.
        mime: String,
    },
    /// The sender has sent everything; `sha256` is the lowercase hex SHA-256
    /// of all the bytes it sent.
    End {
        /// The transfer id.
        id: String,
        /// Lowercase hex (empty when the peer sent no string: it never matches).
        sha256: String,
    },
    /// The receiver has the first `bytes` bytes on disk.
    Written {
        /// The transfer id.
        id: String,
        /// Bytes written so far.
        bytes: u64,
    },
    /// The receiver's verdict: all bytes arrived and the SHA-256 matched.
    Ack {
        /// The transfer id.
        id: String,
        /// Verified.
        ok: bool,
    },
}

impl Control {
    /// Reads a text message as files.js's receive side does, sanitising a
    /// `file` as it does: the name is `String(name ?? 'file')` with `\`, `/`
    /// and U+0000–U+001F replaced by `_`, cut to [`MAX_NAME`] UTF-16 code
    /// units, `file` if empty; the mime is kept only if it matches
    /// `^[\w.+-]+/[\w.+-]+$`; `Number(size)` must be a safe integer ≥ 0; the
    /// id must be a string and is cut to [`MAX_ID`] code units. An `end`'s id
    /// must be a string and is compared whole, as files.js does. `written`
    /// and `ack` ids are `String(id)`; `written`'s `bytes` is any number
    /// (negative counts as 0, fractions are dropped: the same window either
    /// way); `ack`'s `ok` is JavaScript truthiness.
    pub fn parse(text: &str) -> Result<Control, FileWireError> {
        let msg = js::parse(text).map_err(|e| FileWireError::Json(e.to_string()))?;
        let Value::Object(msg) = msg else {
            return Err(FileWireError::UnknownType);
        };
        let loose_id = || {
            msg.get("id").map_or_else(
                || "undefined".to_owned(),
                |id| js::to_string(id).into_owned(),
            )
        };
        match msg.get("t").and_then(Value::as_str) {
            Some("file") => {
                let size = js::to_number(msg.get("size"));
                let Some(size) = safe_size(size) else {
                    return Err(FileWireError::BadSize);
                };
                let Some(Value::String(id)) = msg.get("id") else {
                    return Err(FileWireError::BadId);
                };
                let name = match msg.get("name") {
                    None | Some(Value::Null) => "file".into(),
                    Some(name) => js::to_string(name),
                };
                let mime = match msg.get("mime") {
                    Some(Value::String(mime)) => sanitize_mime(mime),
                    _ => String::new(),
                };
                Ok(Control::File {
                    id: js::slice_utf16(id, MAX_ID).into_owned(),
                    name: sanitize_name(&name),
                    size,
                    mime,
                })
            }
            Some("end") => {
                let Some(Value::String(id)) = msg.get("id") else {
                    return Err(FileWireError::BadId);
                };
                let sha256 = match msg.get("sha256") {
                    Some(Value::String(hex)) => hex.clone(),
                    _ => String::new(),
                };
                Ok(Control::End {
                    id: id.clone(),
                    sha256,
                })
            }
            Some("written") => {
                let Some(bytes) = msg.get("bytes").and_then(Value::as_f64) else {
                    return Err(FileWireError::BadBytes);
                };
                // `as` saturates: 1e300 is u64::MAX, which the window treats
                // like the browser treats 1e300.
                let bytes = bytes.max(0.0).floor() as u64;
                Ok(Control::Written {
                    id: loose_id(),
                    bytes,
                })
            }
            Some("ack") => Ok(Control::Ack {
                id: loose_id(),
                ok: js::truthy(msg.get("ok")),
            }),
            _ => Err(FileWireError::UnknownType),
        }
    }

    /// The text files.js sends for this message, byte for byte (its
    /// `JSON.stringify`: fields in its order, no spaces).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64);
        match self {
            Control::File {
                id,
                name,
                size,
                mime,
            } => {
                out.push_str(r#"{"t":"file","id":"#);
                js::push_json_string(&mut out, id);
                out.push_str(r#","name":"#);
                js::push_json_string(&mut out, name);
                let _ = write!(out, r#","size":{size},"mime":"#);
                js::push_json_string(&mut out, mime);
            }
            Control::End { id, sha256 } => {
                out.push_str(r#"{"t":"end","id":"#);
                js::push_json_string(&mut out, id);
                out.push_str(r#","sha256":"#);
                js::push_json_string(&mut out, sha256);
            }
            Control::Written { id, bytes } => {
                out.push_str(r#"{"t":"written","id":"#);
                js::push_json_string(&mut out, id);
                let _ = write!(out, r#","bytes":{bytes}"#);
            }
            Control::Ack { id, ok } => {
                out.push_str(r#"{"t":"ack","id":"#);
                js::push_json_string(&mut out, id);
                let _ = write!(out, r#","ok":{ok}"#);
            }
        }
        out.push('}');
        out
    }

    /// The transfer id the message is about.
    pub fn id(&self) -> &str {
        match self {
            Control::File { id, .. }
            | Control::End { id, .. }
            | Control::Written { id, .. }
            | Control::Ack { id, .. } => id,
        }
    }
}

/// `Number.isSafeInteger(x) && x >= 0`, as a byte count.
fn safe_size(x: f64) -> Option<u64> {
    let ok = x.is_finite() && x.trunc() == x && (0.0..=MAX_SIZE as f64).contains(&x);
    ok.then_some(x as u64)
}

/// A received name as files.js keeps it: `\`, `/` and U+0000–U+001F become
/// `_`, at most [`MAX_NAME`] UTF-16 code units, `file` if empty.
///
/// It is a display name, not a safe path: it may be `..`, start with a dot,
/// or be a device name on Windows. A driver saving to disk must choose the
/// file name itself (or check this one).
pub fn sanitize_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| match c {
            '\\' | '/' | '\u{0}'..='\u{1f}' => '_',
            c => c,
        })
        .collect();
    let cut = js::slice_utf16(&replaced, MAX_NAME).into_owned();
    if cut.is_empty() {
        "file".to_owned()
    } else {
        cut
    }
}

/// A received media type as files.js keeps it: itself if it matches
/// `^[\w.+-]+/[\w.+-]+$` (ASCII word characters), else empty.
pub fn sanitize_mime(mime: &str) -> String {
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
    };
    match mime.split_once('/') {
        Some((kind, sub)) if part(kind) && part(sub) => mime.to_owned(),
        _ => String::new(),
    }
}

/// Lowercase hex SHA-256 of `data`, as `end` carries it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A transfer id as files.js makes one: `<n>-<6 base36 digits>`, where `n`
/// counts this peer's transfers from 1 and the digits come from `random`
/// (pass e.g. `rand::random()`). Ids only need to be unique among one
/// sender's transfers on one channel.
pub fn transfer_id(n: u64, random: u64) -> String {
    let mut r = random % 36_u64.pow(6);
    let mut digits = ['0'; 6];
    for d in digits.iter_mut().rev() {
        *d = char::from_digit((r % 36) as u32, 36).unwrap_or('0');
        r /= 36;
    }
    let mut id = n.to_string();
    id.push('-');
    id.extend(digits);
    id
}

/// Numbers transfers like files.js's module-wide counter (the first is 1).
#[derive(Debug, Clone)]
pub struct TransferIds {
    next: u64,
}

impl Default for TransferIds {
    fn default() -> Self {
        TransferIds { next: 1 }
    }
}

impl TransferIds {
    /// The next id, its random part from `random` (see [`transfer_id`]).
    pub fn next_id(&mut self, random: u64) -> String {
        let id = transfer_id(self.next, random);
        self.next += 1;
        id
    }
}

/// Where an [`Outgoing`] transfer is (files.js's `state` for `dir: 'out'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingState {
    /// Header sent; bytes going out.
    Sending,
    /// `end` sent; waiting for the `ack`.
    Sent,
    /// The receiver verified the bytes.
    Delivered,
    /// The receiver's SHA-256 (or byte count) differed.
    Corrupted,
}

/// What a received control message did to an [`Outgoing`] transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingEvent {
    /// A `written` report: the receiver has `written` bytes on disk (the
    /// highest reported so far). The window may have opened: try sending.
    Progress {
        /// Bytes on the receiver's disk.
        written: u64,
    },
    /// `ack` with `ok`: the file arrived intact.
    Delivered,
    /// `ack` without `ok`.
    Corrupted,
}

/// The sending side of one file.
///
/// A driver loop, with `dc` the file channel:
///
/// ```text
/// dc.send_text(out.header().to_json());
/// while out.can_send() && dc.buffered_amount() <= HIGH_WATER {
///     let chunk = read(out.bytes_sent(), out.next_len());
///     dc.send_binary(chunk); out.sent(chunk)?;
/// }
/// // paused: resume on a `written` (OutgoingEvent::Progress) or when the
/// // buffered amount drops to LOW_WATER
/// if out.bytes_sent() == out.size() { dc.send_text(out.finish()?.to_json()) }
/// // every text received on the channel: Control::parse, then out.handle(&c)
/// ```
///
/// The buffered-amount check is the driver's: this type only sees the
/// receiver's `written` reports. files.js keeps the buffered amount under
/// [`HIGH_WATER`] before each chunk and the window check after it; a native
/// sender must keep both (the window alone lets 16 MiB pile up in the SCTP
/// send buffer, the buffered amount alone lets a slow disk fill the
/// receiver's memory).
#[derive(Debug, Clone)]
pub struct Outgoing {
    id: String,
    name: String,
    size: u64,
    mime: String,
    sent: u64,
    written: u64,
    hash: Sha256,
    sha256: Option<String>,
    state: OutgoingState,
}

impl Outgoing {
    /// A transfer of `size` bytes. The name is cut to [`MAX_NAME`] UTF-16
    /// code units and is `file` if empty, as files.js's sender does; the
    /// mime is sent as given (a receiver drops one that is not `type/subtype`).
    pub fn new(
        id: impl Into<String>,
        name: &str,
        size: u64,
        mime: impl Into<String>,
    ) -> Result<Outgoing, FileWireError> {
        let id = id.into();
        if js::len_utf16(&id) > MAX_ID {
            return Err(FileWireError::IdTooLong);
        }
        if size > MAX_SIZE {
            return Err(FileWireError::BadSize);
        }
        let name = if name.is_empty() { "file" } else { name };
        Ok(Outgoing {
            id,
            name: js::slice_utf16(name, MAX_NAME).into_owned(),
            size,
            mime: mime.into(),
            sent: 0,
            written: 0,
            hash: Sha256::new(),
            sha256: None,
            state: OutgoingState::Sending,
        })
    }

    /// The `file` message to send first.
    pub fn header(&self) -> Control {
        Control::File {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
        }
    }

    /// Whether the next chunk may go out as far as the receiver's window is
    /// concerned: bytes remain and at most [`WINDOW`] bytes are beyond its
    /// last `written` report (files.js's `done - written > WINDOW` wait). The
    /// caller also checks the channel's buffered amount (see [`Outgoing`]).
    pub fn can_send(&self) -> bool {
        self.state == OutgoingState::Sending
            && self.sent < self.size
            && self.sent.saturating_sub(self.written) <= WINDOW
    }

    /// How many bytes the next chunk holds: [`CHUNK`], or what is left of
    /// the file; 0 when [`Outgoing::can_send`] is false.
    pub fn next_len(&self) -> usize {
        if !self.can_send() {
            return 0;
        }
        usize::try_from(self.size - self.sent).map_or(CHUNK, |left| left.min(CHUNK))
    }

    /// Records a chunk handed to the channel: hashes and counts it. Refused
    /// (and not counted) if it is over [`CHUNK`] bytes or would exceed the
    /// announced size.
    pub fn sent(&mut self, chunk: &[u8]) -> Result<(), FileWireError> {
        if self.state != OutgoingState::Sending {
            return Err(FileWireError::NotSending);
        }
        if chunk.len() > CHUNK {
            return Err(FileWireError::ChunkTooLarge(chunk.len()));
        }
        let total = self.sent.saturating_add(chunk.len() as u64);
        if total > self.size {
            return Err(FileWireError::MoreThanAnnounced);
        }
        self.hash.update(chunk);
        self.sent = total;
        Ok(())
    }

    /// The `end` message, once every announced byte was sent; the transfer
    /// then waits for the `ack`.
    pub fn finish(&mut self) -> Result<Control, FileWireError> {
        if self.state != OutgoingState::Sending {
            return Err(FileWireError::NotSending);
        }
        if self.sent != self.size {
            return Err(FileWireError::Incomplete {
                sent: self.sent,
                size: self.size,
            });
        }
        let sha256 = hex(&std::mem::take(&mut self.hash).finalize());
        self.sha256 = Some(sha256.clone());
        self.state = OutgoingState::Sent;
        Ok(Control::End {
            id: self.id.clone(),
            sha256,
        })
    }

    /// Applies a received control message. `written` for this id counts at
    /// any time (the highest report wins); `ack` for this id only after
    /// [`Outgoing::finish`], and only the first. Anything else: `None`.
    pub fn handle(&mut self, msg: &Control) -> Option<OutgoingEvent> {
        match msg {
            Control::Written { id, bytes } if *id == self.id => {
                self.written = self.written.max(*bytes);
                Some(OutgoingEvent::Progress {
                    written: self.written,
                })
            }
            Control::Ack { id, ok } if *id == self.id && self.state == OutgoingState::Sent => {
                if *ok {
                    self.state = OutgoingState::Delivered;
                    Some(OutgoingEvent::Delivered)
                } else {
                    self.state = OutgoingState::Corrupted;
                    Some(OutgoingEvent::Corrupted)
                }
            }
            _ => None,
        }
    }

    /// The transfer id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The name as announced.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The announced size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Bytes handed to the channel so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }
    /// The receiver's highest `written` report.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }
    /// The SHA-256 sent in `end`, once finished.
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }
    /// Where the transfer is.
    pub fn state(&self) -> OutgoingState {
        self.state
    }
}

/// Where an [`Incoming`] transfer is (files.js's `state` for `dir: 'in'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingState {
    /// Chunks are arriving.
    Receiving,
    /// More data than announced (no `ack` is sent), or the driver reported a
    /// failed write (the `ack` says not ok).
    Failed,
    /// `end` arrived, every byte is there and the SHA-256 matched.
    Verified,
    /// `end` arrived, but bytes were missing or the SHA-256 differed.
    Corrupted,
}

/// The result of [`Incoming::end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// All announced bytes arrived, were written, and hash to the sender's
    /// SHA-256: keep the file. Otherwise delete it.
    pub ok: bool,
    /// The SHA-256 of the bytes received, lowercase hex.
    pub sha256: String,
}

/// The receiving side of one file, made from its `file` message. A new
/// `file` while one is receiving replaces it in files.js (the old one is
/// dropped without an `ack`).
///
/// The driver streams each chunk to disk itself; this type only counts,
/// hashes and answers:
///
/// ```text
/// binary chunk:  inc.chunk(&data)?;  write data at the end of the file
/// write done:    if let Some(w) = inc.written(bytes_on_disk) { send w.to_json() }
/// text `end`:    finish and report the writes, then
///                let verdict = inc.end(&end)?;  keep or delete the file
///                send inc.ack().to_json()
/// write failed:  inc.write_failed()   (the transfer goes on; the ack says not ok)
/// ```
///
/// The sender stalls once it is [`WINDOW`] bytes beyond the last report,
/// so report at least that often; files.js reports after each
/// [`WRITE_BATCH`] write. A driver writing synchronously can report when
/// [`Incoming::unreported`] reaches `WRITE_BATCH` and when all bytes are in.
#[derive(Debug, Clone)]
pub struct Incoming {
    id: String,
    name: String,
    size: u64,
    mime: String,
    received: u64,
    reported: u64,
    hash: Sha256,
    write_failed: bool,
    sha256: Option<String>,
    verdict: Option<bool>,
    state: IncomingState,
}

impl Incoming {
    /// Starts receiving the transfer a `file` message announced (its fields
    /// sanitised again, as [`Control::parse`] does, so a hand-made message
    /// gets the same treatment).
    pub fn new(file: &Control) -> Result<Incoming, FileWireError> {
        let Control::File {
            id,
            name,
            size,
            mime,
        } = file
        else {
            return Err(FileWireError::NotFile);
        };
        if *size > MAX_SIZE {
            return Err(FileWireError::BadSize);
        }
        Ok(Incoming {
            id: js::slice_utf16(id, MAX_ID).into_owned(),
            name: sanitize_name(name),
            size: *size,
            mime: sanitize_mime(mime),
            received: 0,
            reported: 0,
            hash: Sha256::new(),
            write_failed: false,
            sha256: None,
            verdict: None,
            state: IncomingState::Receiving,
        })
    }

    /// A binary message: counted and hashed. Over the announced size the
    /// transfer fails ("more data than announced"): delete what was written;
    /// no `ack` follows. After the transfer ended or failed, chunks are
    /// refused with [`FileWireError::NotReceiving`] (files.js ignores them).
    pub fn chunk(&mut self, data: &[u8]) -> Result<(), FileWireError> {
        if self.state != IncomingState::Receiving {
            return Err(FileWireError::NotReceiving);
        }
        let total = self.received.saturating_add(data.len() as u64);
        if total > self.size {
            self.state = IncomingState::Failed;
            return Err(FileWireError::MoreThanAnnounced);
        }
        self.hash.update(data);
        self.received = total;
        Ok(())
    }

    /// The driver's writes of the first `bytes` bytes completed: the
    /// `written` report to send, if it moves past the last one. `bytes` is
    /// capped at what was received. Nothing once the transfer ended or failed
    /// or a write failed (files.js reports only successful writes).
    pub fn written(&mut self, bytes: u64) -> Option<Control> {
        if self.state != IncomingState::Receiving || self.write_failed {
            return None;
        }
        let bytes = bytes.min(self.received);
        if bytes <= self.reported {
            return None;
        }
        self.reported = bytes;
        Some(Control::Written {
            id: self.id.clone(),
            bytes,
        })
    }

    /// A disk write failed: the transfer goes on (chunks are still counted)
    /// but ends not ok, and no more `written` reports go out.
    pub fn write_failed(&mut self) {
        self.write_failed = true;
    }

    /// The sender's `end`: ok when no write failed, exactly the announced
    /// bytes arrived and their SHA-256 is the one sent. Refused (files.js
    /// ignores it) if it is not an `end` with this transfer's id, or the
    /// transfer already ended or failed.
    pub fn end(&mut self, end: &Control) -> Result<Verdict, FileWireError> {
        let Control::End { id, sha256 } = end else {
            return Err(FileWireError::NotOurs);
        };
        if *id != self.id {
            return Err(FileWireError::NotOurs);
        }
        if self.state != IncomingState::Receiving {
            return Err(FileWireError::NotReceiving);
        }
        let ours = hex(&std::mem::take(&mut self.hash).finalize());
        let ok = !self.write_failed && self.received == self.size && ours == *sha256;
        self.state = if ok {
            IncomingState::Verified
        } else if self.write_failed {
            IncomingState::Failed
        } else {
            IncomingState::Corrupted
        };
        self.sha256 = Some(ours.clone());
        self.verdict = Some(ok);
        Ok(Verdict { ok, sha256: ours })
    }

    /// The `ack` to send, once [`Incoming::end`] gave its verdict.
    pub fn ack(&self) -> Option<Control> {
        self.verdict.map(|ok| Control::Ack {
            id: self.id.clone(),
            ok,
        })
    }

    /// The transfer id (as cut to [`MAX_ID`]).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The sanitised display name (see [`sanitize_name`]: not a safe path).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The announced size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The sanitised media type, or empty.
    pub fn mime(&self) -> &str {
        &self.mime
    }
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
    /// Bytes received but not yet reported as `written`.
    pub fn unreported(&self) -> u64 {
        self.received.saturating_sub(self.reported)
    }
    /// The SHA-256 of what arrived, once ended.
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }
    /// Where the transfer is.
    pub fn state(&self) -> IncomingState {
        self.state
    }
}
