//! The placeholder scanner and substitution helpers (`credentials::scan`,
//! `credentials::substitute`): any bytes, read as a header value, a query and both body kinds,
//! are scanned within the bounds, placeholders found are well formed, and a substituted secret
//! is scrubbed back out (`greyproxyd::credentials::fuzzing::check_scan`).

#![no_main]

use greyproxyd::credentials::fuzzing::check_scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_scan(data) {
        panic!("{broken}");
    }
});
