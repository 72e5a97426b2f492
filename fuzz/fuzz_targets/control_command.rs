//! Control WebSocket commands: `ClientMessage::decode` on arbitrary text. It must never panic,
//! and anything it accepts must survive an encode/decode round trip unchanged.

#![no_main]

use greyproxy_protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::decode(text) {
        Ok(message) => {
            let encoded = message.encode();
            let again = ClientMessage::decode(&encoded)
                .unwrap_or_else(|e| panic!("re-decoding {encoded:?} failed: {e:?}"));
            assert_eq!(again, message, "round trip through {encoded:?}");
        }
        Err((_, error)) => {
            let _ = error.to_string();
        }
    }
});
