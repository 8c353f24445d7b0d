//! The app's chat over the `chat` data channel (id 0), sans-IO: each text
//! message is `{"text": string}` (`web/js/peer.js`); a receiver shows at
//! most [`MAX_CHAT`] UTF-16 code units of it and ignores anything else.

use serde_json::Value;

use crate::files::js;

/// The longest text a receiver keeps, in UTF-16 code units (peer.js's
/// `slice(0, 4000)`; the app's input field has the same `maxlength`).
pub const MAX_CHAT: usize = 4000;

/// A received chat message's text, as peer.js reads it: a JSON object whose
/// `text` is a string, cut to [`MAX_CHAT`] UTF-16 code units (a surrogate
/// pair cut in half leaves U+FFFD, where the browser keeps a lone
/// surrogate). Anything else is `None`, to be ignored.
pub fn parse_chat(text: &str) -> Option<String> {
    match js::parse(text).ok()? {
        Value::Object(msg) => match msg.get("text") {
            Some(Value::String(text)) => Some(js::slice_utf16(text, MAX_CHAT).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// The text message peer.js sends for `text`: `JSON.stringify({ text })`.
/// Not cut: the receiver does that.
pub fn chat_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 12);
    out.push_str(r#"{"text":"#);
    js::push_json_string(&mut out, text);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_what_peer_js_sends() {
        assert_eq!(chat_json("hi"), r#"{"text":"hi"}"#);
        assert_eq!(
            chat_json("say \"hi\"\n\\ é 😀 </script>"),
            "{\"text\":\"say \\\"hi\\\"\\n\\\\ é 😀 </script>\"}"
        );
        assert_eq!(chat_json(""), r#"{"text":""}"#);
        for text in ["hi", "", "a\"\\\n\u{0}\u{2028}😀", &"x".repeat(4000)] {
            assert_eq!(parse_chat(&chat_json(text)).as_deref(), Some(text));
        }
    }

    #[test]
    fn received_messages_are_read_like_peer_js() {
        assert_eq!(parse_chat(r#"{"text":"hello"}"#).as_deref(), Some("hello"));
        assert_eq!(
            parse_chat(r#" {"ts":1,"text":"a\u00e9\ud83d\ude00","extra":[1]} "#).as_deref(),
            Some("aé😀")
        );
        assert_eq!(
            parse_chat(&chat_json(&"y".repeat(5000))),
            Some("y".repeat(4000))
        );
        // Cut in UTF-16 code units, as String.prototype.slice does.
        let emoji = format!("{}😀😀", "z".repeat(3999));
        assert_eq!(
            parse_chat(&chat_json(&emoji)),
            Some(format!("{}\u{FFFD}", "z".repeat(3999)))
        );
        assert_eq!(
            parse_chat(r#"{"text":"lone \udc00"}"#).as_deref(),
            Some("lone \u{FFFD}")
        );
        for ignored in [
            "",
            "hello",
            "null",
            r#""text""#,
            r#"["text"]"#,
            "{}",
            r#"{"text":5}"#,
            r#"{"text":null}"#,
            r#"{"text":["a"]}"#,
            r#"{"Text":"a"}"#,
            r#"{"text":"a""#,
        ] {
            assert_eq!(parse_chat(ignored), None, "{ignored}");
        }
    }
}
