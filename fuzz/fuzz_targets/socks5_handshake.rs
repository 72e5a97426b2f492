//! SOCKS5 server handshake (greeting, RFC 1929 sub-negotiation, request) over arbitrary client
//! bytes. The handshake must never panic, must never read past the request (every read is a
//! `read_exact` of a length from the protocol), and what it writes back must be well formed.

#![no_main]

use std::sync::OnceLock;

use greyproxyd::proxy::socks5::{Target, handshake};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Builder::new_current_thread()
            .build()
            .expect("current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        // Reads come from `data` (then EOF), writes go to a Vec.
        let mut stream = tokio::io::join(data, Vec::<u8>::new());
        let result = handshake(&mut stream).await;
        let (rest, written) = stream.into_inner();
        // Nothing past the input can have been read, and on success the unread bytes are
        // exactly what a client pipelined after its request.
        assert!(rest.len() <= data.len());
        // Replies are 2-byte method/auth answers plus at most one 10-byte request reply.
        assert!(written.len() <= 2 + 2 + 10, "wrote {} bytes", written.len());
        if let Ok(request) = result {
            if let Target::Domain(name, _) = &request.target {
                assert!(!name.is_empty());
                assert!(!name.chars().any(|c| c == '\0' || c.is_whitespace()));
            }
            // Display must work for every accepted target.
            let _ = request.target.to_string();
            let _ = request.target.host();
            if let Some(user) = &request.username {
                assert!(!user.is_empty() && user != "proxy");
            }
        }
    });
});
