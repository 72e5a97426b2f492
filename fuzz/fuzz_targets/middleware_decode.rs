//! Middleware → proxy messages: `Decision::decode` and `MiddlewareHello::decode` on arbitrary
//! bytes (both lenient: case-insensitive keys, `null` as the default). Never a panic; an
//! accepted decision must survive a serialize/decode round trip.

#![no_main]

use greyproxy_protocol::middleware::{Decision, MiddlewareHello, negotiate_version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decision) = Decision::decode(data) {
        let json = serde_json::to_vec(&decision).expect("a decision serializes");
        let again = Decision::decode(&json).unwrap_or_else(|e| {
            panic!(
                "re-decoding {:?} failed: {e}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(again, decision);
    }
    if let Ok(hello) = MiddlewareHello::decode(data) {
        let _ = serde_json::to_vec(&hello).expect("a hello serializes");
        let _ = negotiate_version(hello.min_version, hello.max_version);
    }
});
