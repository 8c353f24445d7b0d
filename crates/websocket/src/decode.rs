//! The frame decoder (RFC 6455 §5.2 base framing, §5.4 fragmentation,
//! §5.5 control frames, §5.6 text must be UTF-8).
//!
//! A state machine fed with whatever the socket returned: it keeps at most
//! a frame header (14 bytes) and a control payload (125 bytes) between
//! calls, plus the text message being assembled when it is split across
//! reads. A text message within [`Limits::max_text`] is collected in a
//! buffer reserved for its own length that the caller takes away with the
//! [`Event::Text`]; a longer one up to [`Limits::max_message`] is skipped
//! and reported by length; anything longer is a protocol error. Binary
//! payloads are never kept (signaling is text), only counted.

use crate::is_valid_close_code;

/// How much a connection may send in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Text messages up to this many bytes are assembled and returned.
    pub max_text: usize,
    /// Messages over `max_text` up to this many bytes are skipped and
    /// reported ([`Event::Oversized`], [`Event::Binary`]); longer ones end
    /// the connection ([`FrameError::MessageTooLarge`]).
    pub max_message: usize,
}

/// A control frame's payload (at most 125 bytes, RFC 6455 §5.5), kept
/// inline so answering a ping allocates nothing.
#[derive(Clone, Copy)]
pub struct Control {
    bytes: [u8; MAX_CONTROL],
    len: u8,
}

impl Control {
    const fn empty() -> Self {
        Control {
            bytes: [0; MAX_CONTROL],
            len: 0,
        }
    }

    /// The payload.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Control").field(&self.as_bytes()).finish()
    }
}

impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// A complete message or control frame.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A text message within [`Limits::max_text`], valid UTF-8.
    Text(String),
    /// A text message of `len` bytes over [`Limits::max_text`], skipped
    /// unread (neither stored nor checked for UTF-8).
    Oversized {
        /// Its length over all fragments.
        len: usize,
    },
    /// A binary message of `len` bytes, skipped unread.
    Binary {
        /// Its length over all fragments.
        len: usize,
    },
    /// A ping; the payload goes back in the pong.
    Ping(Control),
    /// A pong (unsolicited ones too, RFC 6455 §5.5.3).
    Pong,
    /// The peer closes, with its status code if it sent one.
    Close(Option<u16>),
}

/// Why the connection must close (RFC 6455 §7.1.7), with the status code
/// to send ([`FrameError::close_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV1-3 set although no extension was negotiated.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A client frame without a masking key (§5.1).
    #[error("client frame not masked")]
    Unmasked,
    /// Opcode 3-7 or 11-15.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A control frame with FIN clear (§5.5).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame payload over 125 bytes (§5.5).
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A continuation frame with no message to continue (§5.4).
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (§5.4).
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A 64-bit length with its most significant bit set (§5.2).
    #[error("frame length out of range")]
    BadLength,
    /// A message over [`Limits::max_message`].
    #[error("message of {len} bytes or more exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Its length so far.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A text message that is not UTF-8 (§8.1).
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload, a code that may not be sent,
    /// or a reason that is not UTF-8 (§5.5.1, §7.4).
    #[error("malformed close frame")]
    BadClose,
}

impl FrameError {
    /// The status code the server closes with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::MessageTooLarge { .. } => 1009,
            FrameError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

const MAX_CONTROL: usize = 125;
const MAX_HEADER: usize = 14;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The frame whose payload is being read.
struct Frame {
    opcode: u8,
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes unmasked so far (selects the mask byte).
    offset: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// The data message being received, over one or more frames.
struct Message {
    kind: Kind,
    len: u64,
    /// The text is being collected (it fits `max_text` so far).
    keep: bool,
}

/// Decodes a client's frames; see the module documentation.
pub struct Decoder {
    limits: Limits,
    header: [u8; MAX_HEADER],
    header_len: u8,
    frame: Option<Frame>,
    message: Option<Message>,
    /// The text being assembled; empty (unallocated) between messages.
    text: Vec<u8>,
    control: Control,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message: None,
            text: Vec::new(),
            control: Control::empty(),
        }
    }

    /// Bytes held for the text being assembled (its reserved capacity):
    /// never more than [`Limits::max_text`].
    pub fn buffered(&self) -> usize {
        self.text.capacity()
    }

    /// Consumes bytes from the front of `input` until one event is complete
    /// (returned, with `input` advanced past it) or `input` is used up
    /// (`Ok(None)`). Call again while `input` is not empty. After an error
    /// the stream is out of step: close the connection.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Event>, FrameError> {
        loop {
            if self.frame.is_none() && !self.read_header(input)? {
                return Ok(None);
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(None);
            };
            let take = usize::try_from(frame.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len());
            let (chunk, rest) = input.split_at(take);
            *input = rest;
            let keep_text = self.message.as_ref().is_some_and(|m| m.keep);
            let mut mask = frame.mask;
            mask.rotate_left(frame.offset % 4);
            let unmasked = chunk.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m);
            if frame.opcode >= OP_CLOSE {
                unmasked.for_each(|b| self.control.push(b));
            } else if keep_text {
                self.text.extend(unmasked);
            }
            frame.offset += take;
            frame.remaining -= take as u64;
            if frame.remaining > 0 {
                return Ok(None);
            }
            let (opcode, fin) = (frame.opcode, frame.fin);
            self.frame = None;
            if let Some(event) = self.finish_frame(opcode, fin)? {
                return Ok(Some(event));
            }
        }
    }

    /// Collects and checks the next frame header; true once `self.frame`
    /// is set.
    fn read_header(&mut self, input: &mut &[u8]) -> Result<bool, FrameError> {
        loop {
            let have = usize::from(self.header_len);
            let need = header_len(&self.header, have);
            if have >= need {
                break;
            }
            let Some((&b, rest)) = input.split_first() else {
                return Ok(false);
            };
            *input = rest;
            if let Some(slot) = self.header.get_mut(have) {
                *slot = b;
            }
            self.header_len += 1;
        }
        let h = self.header;
        self.header_len = 0;
        let [b0, b1, ..] = h;
        if b0 & 0x70 != 0 {
            return Err(FrameError::ReservedBits);
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let (len, mask_at) = match b1 & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let len = u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]);
                if len >> 63 != 0 {
                    return Err(FrameError::BadLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mut mask = [0; 4];
        for (i, m) in mask.iter_mut().enumerate() {
            *m = h.get(mask_at + i).copied().unwrap_or(0);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        self.start_frame(opcode, fin, len)?;
        self.frame = Some(Frame {
            opcode,
            fin,
            remaining: len,
            mask,
            offset: 0,
        });
        Ok(true)
    }

    /// Checks a frame header against the message state and the limits.
    fn start_frame(&mut self, opcode: u8, fin: bool, len: u64) -> Result<(), FrameError> {
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin {
                    return Err(FrameError::FragmentedControl);
                }
                if len > MAX_CONTROL as u64 {
                    return Err(FrameError::ControlTooLong);
                }
                self.control = Control::empty();
                return Ok(());
            }
            OP_CONTINUATION => {
                if self.message.is_none() {
                    return Err(FrameError::UnexpectedContinuation);
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.message.is_some() {
                    return Err(FrameError::ExpectedContinuation);
                }
                let kind = if opcode == OP_TEXT {
                    Kind::Text
                } else {
                    Kind::Binary
                };
                self.message = Some(Message {
                    kind,
                    len: 0,
                    keep: kind == Kind::Text,
                });
            }
            other => return Err(FrameError::UnknownOpcode(other)),
        }
        let limits = self.limits;
        let Some(msg) = self.message.as_mut() else {
            return Ok(());
        };
        msg.len = msg.len.saturating_add(len);
        if msg.len > limits.max_message as u64 {
            return Err(FrameError::MessageTooLarge {
                len: msg.len,
                limit: limits.max_message,
            });
        }
        if msg.keep {
            if msg.len > limits.max_text as u64 {
                // Over the parse limit: skip the rest, and give the memory back.
                msg.keep = false;
                self.text = Vec::new();
            } else {
                // Within max_text, so bounded: reserve this frame once,
                // exactly (amortized growth could double it past max_text).
                self.text.reserve_exact(usize::try_from(len).unwrap_or(0));
            }
        }
        Ok(())
    }

    /// A frame's payload is complete: the event it finishes, if any.
    fn finish_frame(&mut self, opcode: u8, fin: bool) -> Result<Option<Event>, FrameError> {
        match opcode {
            OP_PING => return Ok(Some(Event::Ping(self.control))),
            OP_PONG => return Ok(Some(Event::Pong)),
            OP_CLOSE => return close_event(self.control.as_bytes()).map(Some),
            _ => {}
        }
        if !fin {
            return Ok(None);
        }
        let Some(msg) = self.message.take() else {
            return Ok(None);
        };
        let len = usize::try_from(msg.len).unwrap_or(usize::MAX);
        Ok(Some(match (msg.kind, msg.keep) {
            (Kind::Text, true) => {
                let bytes = std::mem::take(&mut self.text);
                Event::Text(String::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8)?)
            }
            (Kind::Text, false) => Event::Oversized { len },
            (Kind::Binary, _) => Event::Binary { len },
        }))
    }
}

/// The header's full length once its first `have` bytes are known
/// (§5.2: 2 bytes, then 0, 2 or 8 of extended length, then the 4-byte mask).
fn header_len(h: &[u8; MAX_HEADER], have: usize) -> usize {
    if have < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// A close frame's payload as an event (§5.5.1): empty, or a valid code
/// with an optional UTF-8 reason.
fn close_event(payload: &[u8]) -> Result<Event, FrameError> {
    match payload {
        [] => Ok(Event::Close(None)),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) || std::str::from_utf8(reason).is_err() {
                return Err(FrameError::BadClose);
            }
            Ok(Event::Close(Some(code)))
        }
        [_] => Err(FrameError::BadClose),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
