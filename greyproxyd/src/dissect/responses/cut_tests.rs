//! The fuzz entry points' bound checks run on every prefix of realistic inputs (a stream cut
//! anywhere, a WebSocket connection closed after any message) and on the golden fixtures with
//! bytes flipped, so `cargo test` exercises them without cargo-fuzz.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use super::fuzz;

fn fixture_bodies(name: &str) -> (String, String) {
    let path = format!(
        "{}/tests/fixtures/llm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    (s("request_body"), s("response_body"))
}

#[test]
fn every_cut_of_a_stream_respects_the_bounds() {
    let (request, response) = fixture_bodies("openai_1170");
    let (request, response) = (request.as_bytes(), response.as_bytes());
    // Every cut near the interesting events, and a stride through the rest.
    for cut in (0..response.len())
        .step_by(499)
        .chain((37_700..38_200).step_by(7))
    {
        for flags in [1, 5] {
            fuzz::http(&request[..cut.min(request.len())], &response[..cut], flags);
        }
    }
    for flags in 0..8 {
        fuzz::http(request, response, flags);
    }
}

#[test]
fn flipped_bytes_respect_the_bounds() {
    let (request, response) = fixture_bodies("openai_1166");
    let mut response = response.into_bytes();
    for i in (37_000..response.len()).step_by(997) {
        let saved = response[i];
        for b in [b'"', b'\\', b'\n', b'{', 0xff] {
            response[i] = b;
            fuzz::http(request.as_bytes(), &response, 1);
        }
        response[i] = saved;
    }
}

#[test]
fn every_prefix_of_a_connection_respects_the_bounds() {
    let (_, response) = fixture_bodies("openai_1166");
    let create = br#"{"type":"response.create","model":"gpt-5.1","input":"go"}"#;
    let mut messages: Vec<(bool, &[u8])> = vec![(true, create)];
    for line in response.lines() {
        if let Some(data) = line.strip_prefix("data: ") {
            messages.push((false, data.as_bytes()));
        }
    }
    messages.push((true, create));
    messages.push((false, b"not json"));
    messages.push((
        false,
        br#"{"type":"response.output_text.delta","delta":"x"}"#,
    ));
    for n in 0..=messages.len() {
        fuzz::ws(&messages[..n]);
        fuzz::ws(&messages[n..]);
    }
}
