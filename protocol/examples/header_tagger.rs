//! `header_tagger` — a minimal greyproxy middleware in Rust (stdio transport only).
//!
//! It asks for every request (`http-request` hook, no filters) and answers each with a
//! `rewrite` that adds the header `X-Greyproxy-Tagged: 1`, tagged
//! `{"header-tagger.body_bytes": n}` (the request body's size, `null` when the proxy did not
//! send the body because it was over the size limit).
//!
//! Run it under greyproxyd from the repository root:
//!
//! ```sh
//! greyproxyd serve --middleware-cmd 'cargo run -q -p greyproxy-protocol --example header_tagger'
//! # or, once built (cargo build -p greyproxy-protocol --example header_tagger):
//! greyproxyd serve --middleware-cmd target/debug/examples/header_tagger
//! ```
//!
//! Protocol (docs/middleware.md): read the proxy's hello line, write our hello, then one
//! decision line per message. stdout carries protocol lines only; diagnostics go to stderr,
//! which greyproxyd copies into its log as `mw[<label>] …`. Lines that do not parse are logged
//! and skipped; the program exits when stdin closes.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use greyproxy_protocol::middleware::{
    Decision, DecisionAction, HookSpec, HttpRequestMessage, MiddlewareHello, ProxyHello,
};
use serde_json::{Map, Value};

/// Largest request body we want to see; bigger ones arrive as `null`.
const MAX_BODY_BYTES: i64 = 1 << 20;

fn main() -> ExitCode {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();

    // 1. The proxy speaks first: {"type":"hello","version":1}.
    let proxy_hello = loop {
        match read_line(&mut input, &mut line) {
            Ok(false) => {
                eprintln!("header_tagger: stdin closed before the proxy hello");
                return ExitCode::SUCCESS;
            }
            Ok(true) if line.is_empty() => continue,
            Ok(true) => break serde_json::from_slice::<ProxyHello>(&line),
            Err(e) => {
                eprintln!("header_tagger: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    match proxy_hello {
        Ok(hello) => eprintln!("header_tagger: proxy speaks protocol v{}", hello.version),
        Err(e) => {
            eprintln!("header_tagger: expected the proxy hello: {e}");
            return ExitCode::FAILURE;
        }
    }

    // 2. Our hello: protocol [1,1], one request hook for everything.
    let hello = MiddlewareHello {
        kind: "hello".to_owned(),
        name: "header-tagger".to_owned(),
        min_version: 1,
        max_version: 1,
        hooks: vec![HookSpec {
            kind: "http-request".to_owned(),
            filters: None,
        }],
        max_body_bytes: MAX_BODY_BYTES,
    };
    if let Err(e) = send(&mut out, serde_json::to_vec(&hello)) {
        eprintln!("header_tagger: writing hello: {e}");
        return ExitCode::FAILURE;
    }

    // 3. One decision per request message.
    loop {
        match read_line(&mut input, &mut line) {
            Ok(false) => break,
            Ok(true) if line.is_empty() => continue,
            Ok(true) => {}
            Err(e) => {
                eprintln!("header_tagger: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        }
        let msg: HttpRequestMessage = match serde_json::from_slice(&line) {
            Ok(msg) => msg,
            Err(e) => {
                eprintln!("header_tagger: skipping a line that is not an http-request: {e}");
                continue;
            }
        };
        if msg.kind != "http-request" {
            eprintln!("header_tagger: skipping message of type {:?}", msg.kind);
            continue;
        }
        if let Err(e) = send(&mut out, serde_json::to_vec(&decide(msg))) {
            eprintln!("header_tagger: writing decision: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("header_tagger: stdin closed, exiting");
    ExitCode::SUCCESS
}

/// The rewrite for one request: add the header, tag the body size.
fn decide(msg: HttpRequestMessage) -> Decision {
    let body_bytes = msg
        .body
        .as_ref()
        .map_or(Value::Null, |b| Value::from(b.len()));
    let mut tags = Map::new();
    tags.insert("header-tagger.body_bytes".to_owned(), body_bytes);
    Decision {
        kind: "decision".to_owned(),
        id: msg.id,
        action: DecisionAction::Rewrite,
        headers: BTreeMap::from([("X-Greyproxy-Tagged".to_owned(), vec!["1".to_owned()])]),
        tags,
        ..Decision::default()
    }
}

/// Reads one line into `buf` without its `\n` / `\r\n`; `Ok(false)` at end of input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    if input.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

/// Writes one serialised JSON document and a newline, then flushes: one frame.
fn send(out: &mut impl Write, json: serde_json::Result<Vec<u8>>) -> io::Result<()> {
    let mut frame = json?;
    frame.push(b'\n');
    out.write_all(&frame)?;
    out.flush()
}
