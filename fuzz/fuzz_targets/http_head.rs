//! First request head on the HTTP proxy port: `parse_head` on the raw bytes, `read_head` over
//! an in-memory reader delivering the same bytes in small chunks, and the string helpers
//! (`absolute_target`, `split_authority`, `basic_username`) on the input as text.

#![no_main]

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use greyproxyd::proxy::head::{
    MAX_HEAD, absolute_target, basic_username, parse_head, read_head, split_authority,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Builder::new_current_thread()
            .build()
            .expect("current-thread runtime")
    })
}

/// Delivers `data` at most `chunk` bytes per read, as a slow socket would.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };

    let parsed = parse_head(input);
    if let Ok(Some(head)) = &parsed {
        assert!(head.len <= input.len());
        assert!(head.port != 0);
        assert!(!head.host.is_empty());
    }

    // The incremental path must agree with parsing the same bytes at once whenever the
    // whole head fits in what was delivered.
    let chunk = usize::from(knob) * 16 + 1;
    runtime().block_on(async {
        let mut reader = Trickle { data: input, chunk };
        let mut buf = Vec::new();
        let read = read_head(&mut reader, &mut buf).await;
        assert!(buf.len() <= input.len());
        assert!(buf.len() <= MAX_HEAD + 4096);
        if let (Ok(head), Ok(Some(whole))) = (&read, &parsed) {
            assert_eq!(head, whole);
        }
    });

    let _ = basic_username(input);
    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok((host, port)) = absolute_target(text) {
            assert!(!host.is_empty() && port != 0);
        }
        for default in [None, Some(80)] {
            if let Ok((host, port)) = split_authority(text, default) {
                assert!(!host.is_empty() && port != 0);
            }
        }
    }
});
