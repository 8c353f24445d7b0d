//! Reading one frame: its top-level object's members, read once with their
//! values unparsed, and the helpers both parsers take fields with.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::SignalError;

/// A member name of a frame: borrowed from the text unless it has escapes.
pub(super) struct Key<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of a frame's top-level object in order, duplicates included,
/// their values unparsed: read once, checked against the JSON grammar.
pub(super) struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(4);
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Reads `text` as one JSON object into its members: not one JSON value is
/// `bad-json`, one that is not an object `bad-message`.
pub(super) fn read_members(text: &str) -> Result<Members<'_>, SignalError> {
    match serde_json::from_str(text) {
        Ok(members) => Ok(members),
        // Not JSON, or JSON but not an object: tell which.
        Err(_) => {
            let whole = Strict {
                levels: JSON_LEVELS,
            };
            Err(match whole.check(text) {
                Err(e) => SignalError::BadJson(e.to_string()),
                Ok(()) => not_a_message(),
            })
        }
    }
}

impl<'a> Members<'a> {
    /// The frame's `type` (its last one), if it is a string.
    pub(super) fn kind(&self) -> Option<Key<'a>> {
        self.last("type")
            .and_then(|t| serde_json::from_str(t.get()).ok())
    }

    /// The value of the last member named `name`, as a JSON object read
    /// into a map keeps it.
    fn last(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Every member but those named `opaque` must read as a
    /// `serde_json::Value` would read it in the frame: numbers within `f64`,
    /// string escapes forming Unicode text, nesting within its limit. The frame's
    /// opaque payload alone is exempt, so refusals elsewhere stay `bad-json`.
    pub(super) fn check_json(&self, opaque: Option<&str>) -> Result<(), SignalError> {
        for (key, value) in &self.0 {
            // A string without escapes is text as it is (the grammar is
            // already checked): the common case, `type` and `to`.
            let text = value.get();
            if opaque == Some(key.as_ref()) || (text.starts_with('"') && !text.contains('\\')) {
                continue;
            }
            if let Err(e) = Strict::MEMBER.check(text) {
                return Err(SignalError::BadJson(format!(
                    "{} in `{}`",
                    without_position(&e),
                    truncate(key, 64)
                )));
            }
        }
        Ok(())
    }

    /// The last value of each of `names` (`type` first), refusing any
    /// other member as serde's `deny_unknown_fields` does.
    pub(super) fn pick<const N: usize>(
        &self,
        names: &'static [&'static str; N],
    ) -> Result<[Option<&'a RawValue>; N], SignalError> {
        let mut values = [None; N];
        for (key, value) in &self.0 {
            match names.iter().position(|n| n == key) {
                Some(i) => {
                    if let Some(slot) = values.get_mut(i) {
                        *slot = Some(*value);
                    }
                }
                None => {
                    let e = <serde_json::Error as de::Error>::unknown_field(key, names);
                    return Err(bad_message(&e.to_string()));
                }
            }
        }
        Ok(values)
    }

    /// The last value of each of `names`, ignoring any other member (a
    /// later protocol version may add optional fields).
    pub(super) fn values<const N: usize>(&self, names: &[&str; N]) -> [Option<&'a RawValue>; N] {
        let mut values = [None; N];
        for (key, value) in &self.0 {
            if let Some(slot) = names
                .iter()
                .position(|n| n == key)
                .and_then(|i| values.get_mut(i))
            {
                *slot = Some(*value);
            }
        }
        values
    }
}

/// Reads one JSON value as `serde_json::Value` would (the same parser
/// paths and limits) without building it, nesting at most `levels` deep.
#[derive(Clone, Copy)]
struct Strict {
    levels: u8,
}

/// How deep serde_json nests a whole text (its recursion limit).
const JSON_LEVELS: u8 = 127;

impl Strict {
    /// A member of a frame: its object is one level already.
    const MEMBER: Strict = Strict {
        levels: JSON_LEVELS - 1,
    };

    /// One JSON text as `serde_json::Value` reads it.
    fn check(self, text: &str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        de::DeserializeSeed::deserialize(self, &mut de)?;
        de.end()
    }

    /// One level down, or the error serde_json gives past its limit.
    fn inner<E: de::Error>(self) -> Result<Strict, E> {
        match self.levels.checked_sub(1) {
            Some(levels) => Ok(Strict { levels }),
            None => Err(E::custom("recursion limit exceeded")),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// serde_json's message without its " at line L column C": positions
/// inside one member would mislead.
pub(super) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

pub(super) fn bad_message(message: &str) -> SignalError {
    // serde's message may quote an unknown field name: bound what is echoed.
    SignalError::BadMessage(truncate(message, 200))
}

pub(super) fn not_a_message() -> SignalError {
    SignalError::BadMessage("expected an object with a string `type`".into())
}

/// A member's value as `T` (a wrong type is `bad-message`).
pub(super) fn field<'a, T: Deserialize<'a>>(value: &'a RawValue) -> Result<T, SignalError> {
    serde_json::from_str(value.get()).map_err(|e| bad_message(&without_position(&e)))
}

/// A required member as `T`.
pub(super) fn required<'a, T: Deserialize<'a>>(
    value: Option<&'a RawValue>,
    name: &'static str,
) -> Result<T, SignalError> {
    match value {
        Some(value) => field(value),
        None => Err(bad_message(
            &<serde_json::Error as de::Error>::missing_field(name).to_string(),
        )),
    }
}

/// An optional member as `T`; `null` is absent.
pub(super) fn optional<'a, T: Deserialize<'a>>(
    value: Option<&'a RawValue>,
) -> Result<Option<T>, SignalError> {
    match value {
        Some(value) => field(value),
        None => Ok(None),
    }
}

pub(super) fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}
