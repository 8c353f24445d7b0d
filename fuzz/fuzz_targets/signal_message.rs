//! The signaling message parser: any text parses or returns an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signal::parse_client_message(text, 64 * 1024);
        let _ = signal::check_room(text);
        let _ = signal::check_name(text);
    }
});
