//! The few JavaScript semantics the app's data-channel code relies on, so a
//! native peer reads and writes exactly what `web/js/files.js` and
//! `web/js/peer.js` do: `JSON.parse` (including lone surrogates, which
//! `JSON.stringify` writes as `\udXXX` escapes), `JSON.stringify`'s string
//! escaping, `String(v)`, `Number(v)`, truthiness, and `String.prototype.slice`
//! counted in UTF-16 code units.
//!
//! A Rust `String` cannot hold a lone surrogate; wherever JavaScript would
//! keep one (from the wire, or from slicing a pair in half) this module puts
//! U+FFFD instead, which is also one UTF-16 code unit, so lengths agree.

use std::borrow::Cow;

use serde_json::Value;

/// `JSON.parse(text)`. Lone surrogate escapes become U+FFFD; everything else
/// is serde_json's RFC 8259 parser (which, unlike JavaScript, refuses numbers
/// beyond f64's range such as `1e400` and nesting deeper than 128 levels).
pub(crate) fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(&repair_surrogates(text))
}

/// Rewrites `\uXXXX` escapes of lone surrogates as `\ufffd`; pairs and all
/// other text are kept. Backslashes only occur inside JSON strings, where each
/// one starts a two-character escape (or a six-character `\u` one), so no
/// string tracking is needed.
fn repair_surrogates(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0; // text[..copied] is in `out` (when `out` is used)
    let mut from = 0;
    while let Some(pos) = text.get(from..).and_then(|rest| rest.find('\\')) {
        let at = from + pos;
        let after = text.get(at + 1..).unwrap_or_default();
        let unit = after.strip_prefix('u').and_then(hex4);
        match unit {
            Some(0xD800..=0xDBFF) => {
                let low = after
                    .get(5..)
                    .and_then(|s| s.strip_prefix("\\u"))
                    .and_then(hex4);
                if matches!(low, Some(0xDC00..=0xDFFF)) {
                    from = at + 12;
                } else {
                    out.push_str(text.get(copied..at).unwrap_or_default());
                    out.push_str("\\ufffd");
                    copied = at + 6;
                    from = at + 6;
                }
            }
            Some(0xDC00..=0xDFFF) => {
                out.push_str(text.get(copied..at).unwrap_or_default());
                out.push_str("\\ufffd");
                copied = at + 6;
                from = at + 6;
            }
            Some(_) => from = at + 6,
            None => from = at + 1 + after.chars().next().map_or(0, char::len_utf8),
        }
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(text.get(copied..).unwrap_or_default());
        Cow::Owned(out)
    }
}

/// The four hex digits at the start of `s`, if there are four.
fn hex4(s: &str) -> Option<u16> {
    let digits = s.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Appends `s` as a JSON string literal exactly as `JSON.stringify` writes it:
/// `"` `\` and the C0 controls escaped (`\b \t \n \f \r`, else `\u00xx` in
/// lowercase hex), everything else (`/`, non-ASCII, U+2028) literal.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s.slice(0, max)` in UTF-16 code units. Where the cut would split a
/// surrogate pair, JavaScript keeps the lone high surrogate; this keeps
/// U+FFFD in its place.
pub(crate) fn slice_utf16(s: &str, max: usize) -> Cow<'_, str> {
    let mut units = 0;
    for (at, c) in s.char_indices() {
        let len = c.len_utf16();
        if units + len > max {
            let mut cut = s.get(..at).unwrap_or_default().to_owned();
            if units < max {
                cut.push('\u{FFFD}');
            }
            return Cow::Owned(cut);
        }
        units += len;
    }
    Cow::Borrowed(s)
}

/// The length of `s` in UTF-16 code units (JavaScript's `length`).
pub(crate) fn len_utf16(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// `String(v)` for a value `JSON.parse` made.
pub(crate) fn to_string(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed("null"),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(number_to_string(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Cow::Borrowed(s),
        // Array.prototype.toString is join(','), null elements empty.
        Value::Array(items) => Cow::Owned(
            items
                .iter()
                .map(|item| match item {
                    Value::Null => Cow::Borrowed(""),
                    other => to_string(other),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Cow::Borrowed("[object Object]"),
    }
}

/// `Number.prototype.toString()`: the shortest digits that round-trip, in
/// plain notation for 1e-6 ≤ |x| < 1e21, else as `1.5e+21` / `1e-7`.
pub(crate) fn number_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned(); // also -0
    }
    if (1e-6..1e21).contains(&x.abs()) {
        return format!("{x}");
    }
    let e = format!("{x:e}"); // "1.5e21", "1e-7"
    match e.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => e,
    }
}

/// `Number(v)` for a value `JSON.parse` made (`None`: the field is absent,
/// i.e. `undefined`).
pub(crate) fn to_number(v: Option<&Value>) -> f64 {
    match v {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => string_to_number(s),
        Some(array @ Value::Array(_)) => string_to_number(&to_string(array)),
        Some(Value::Object(_)) => f64::NAN,
    }
}

/// JavaScript's WhiteSpace and LineTerminator, which `Number(string)` trims.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `Number(s)` (StringToNumber): trimmed; empty is 0; `0x`/`0o`/`0b`
/// integers; `Infinity` with an optional sign; else a decimal literal
/// (`5`, `-5.`, `.5e3`), anything else NaN.
fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_space);
    if s.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = s.strip_prefix(prefix) {
            if digits.is_empty() {
                return f64::NAN;
            }
            let mut x = 0.0_f64;
            for c in digits.chars() {
                match c.to_digit(radix) {
                    Some(d) => x = x * f64::from(radix) + f64::from(d),
                    None => return f64::NAN,
                }
            }
            return x;
        }
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned == "Infinity" {
        return if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if !is_decimal_literal(unsigned) {
        return f64::NAN;
    }
    s.parse().unwrap_or(f64::NAN)
}

/// StrUnsignedDecimalLiteral: `digits [. digits?]` or `. digits`, then an
/// optional exponent `e [+-] digits`.
fn is_decimal_literal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (
            s.get(..at).unwrap_or_default(),
            Some(s.get(at + 1..).unwrap_or_default()),
        ),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// JavaScript truthiness of a field (`None`: absent, i.e. `undefined`).
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0 && !x.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lone_surrogates_parse_as_replacement_characters() {
        // JSON.stringify('a\ud83d') === '"a\\ud83d"': what a browser sends
        // after slicing a name in the middle of an emoji.
        assert_eq!(parse(r#""a\ud83d""#).unwrap(), json!("a\u{FFFD}"));
        assert_eq!(parse(r#""\udc00b""#).unwrap(), json!("\u{FFFD}b"));
        assert_eq!(parse(r#""\ud83d\ude00""#).unwrap(), json!("😀"));
        assert_eq!(
            parse(r#""\ud83d\ud83d\ude00""#).unwrap(),
            json!("\u{FFFD}😀")
        );
        assert_eq!(parse(r#""\ud83d\u0041""#).unwrap(), json!("\u{FFFD}A"));
        // An escaped backslash followed by "ud800" is not an escape.
        assert_eq!(parse(r#""\\ud800""#).unwrap(), json!("\\ud800"));
        assert_eq!(
            parse(r#"{"é\ud800":"\\"}"#).unwrap(),
            json!({"é\u{FFFD}": "\\"})
        );
        // Text without lone surrogates is not copied.
        assert!(matches!(
            repair_surrogates(r#""\u00e9\n""#),
            Cow::Borrowed(_)
        ));
        // Truncated escapes stay invalid JSON.
        assert!(parse(r#""\ud8"#).is_err());
        assert!(parse(r#""\"#).is_err());
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        let mut out = String::new();
        push_json_string(
            &mut out,
            "a\"b\\c/d\u{8}\t\n\u{c}\r\u{0}\u{1f}\u{7f}é\u{2028}😀",
        );
        assert_eq!(
            out,
            "\"a\\\"b\\\\c/d\\b\\t\\n\\f\\r\\u0000\\u001f\u{7f}é\u{2028}😀\""
        );
    }

    #[test]
    fn slicing_counts_utf16_units() {
        assert_eq!(slice_utf16("abc", 2), "ab");
        assert_eq!(slice_utf16("abc", 3), "abc");
        assert_eq!(slice_utf16("é😀x", 2), "é\u{FFFD}");
        assert_eq!(slice_utf16("é😀x", 3), "é😀");
        assert_eq!(slice_utf16("😀", 0), "");
        assert_eq!(len_utf16("é😀x"), 4);
    }

    #[test]
    fn number_coercion_follows_javascript() {
        let n = |v: Value| to_number(Some(&v));
        assert!(to_number(None).is_nan());
        assert_eq!(n(json!(null)), 0.0);
        assert_eq!(n(json!(true)), 1.0);
        assert_eq!(n(json!(12)), 12.0);
        assert_eq!(n(json!(" \u{a0}12\n")), 12.0);
        assert_eq!(n(json!("")), 0.0);
        assert_eq!(n(json!("0x1F")), 31.0);
        assert_eq!(n(json!("0b101")), 5.0);
        assert_eq!(n(json!("1e3")), 1000.0);
        assert_eq!(n(json!(".5")), 0.5);
        assert_eq!(n(json!("5.")), 5.0);
        assert_eq!(n(json!("-Infinity")), f64::NEG_INFINITY);
        assert_eq!(n(json!([7])), 7.0);
        assert_eq!(n(json!([])), 0.0);
        for nan in [
            json!("0x"),
            json!("-0x10"),
            json!("1_000"),
            json!("inf"),
            json!("NaN"),
            json!("1e"),
            json!("."),
            json!("12px"),
            json!("\u{85}1"),
            json!([1, 2]),
            json!({}),
        ] {
            assert!(n(nan.clone()).is_nan(), "{nan}");
        }
    }

    #[test]
    fn string_coercion_follows_javascript() {
        let s = |v: Value| to_string(&v).into_owned();
        assert_eq!(s(json!(null)), "null");
        assert_eq!(s(json!(false)), "false");
        assert_eq!(s(json!(5)), "5");
        assert_eq!(s(json!(-0.0)), "0");
        assert_eq!(s(json!(0.1)), "0.1");
        assert_eq!(s(json!(1e21)), "1e+21");
        assert_eq!(s(json!(1.5e300)), "1.5e+300");
        assert_eq!(s(json!(1e20)), "100000000000000000000");
        assert_eq!(s(json!(0.000001)), "0.000001");
        assert_eq!(s(json!(1e-7)), "1e-7");
        assert_eq!(s(json!(12345678901234567890_u64)), "12345678901234567000");
        assert_eq!(
            s(json!(["a", null, [1, "b"], {}])),
            "a,,1,b,[object Object]"
        );
        assert_eq!(s(json!({"a": 1})), "[object Object]");
    }

    #[test]
    fn truthiness_follows_javascript() {
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("0"),
            json!([]),
            json!({}),
        ] {
            assert!(truthy(Some(&v)), "{v}");
        }
        for v in [json!(false), json!(0), json!(-0.0), json!(""), json!(null)] {
            assert!(!truthy(Some(&v)), "{v}");
        }
        assert!(!truthy(None));
    }
}
