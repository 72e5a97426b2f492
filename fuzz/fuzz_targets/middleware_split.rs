//! `--middleware-cmd` splitting: `split_command` on arbitrary text. Never a panic; on success
//! at least one argument, none of them empty.

#![no_main]

use greyproxyd::middleware::split::split_command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match split_command(text) {
        Ok(args) => {
            assert!(!args.is_empty());
            assert!(args.iter().all(|a| !a.is_empty()));
            // Splitting never creates characters: the arguments are at most the input's size.
            assert!(args.iter().map(String::len).sum::<usize>() <= text.len());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
