//! The golden fixtures (`greyproxyd/tests/fixtures/llm/*.json`, real captured transactions) as
//! the store would hand them to a dissector: bodies as text, the header map parsed from the
//! fixture's JSON string. Shared by the dissectors' golden tests.
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::{HeaderMapJson, Transaction};
use serde_json::Value;

/// Loads `<name>.json`.
pub(crate) fn load(name: &str) -> Transaction {
    let path = format!(
        "{}/tests/fixtures/llm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Transaction {
        id: v.get("id").and_then(Value::as_u64).unwrap_or(0),
        url: s("url").unwrap(),
        method: s("method").unwrap_or_default(),
        destination_host: s("destination_host").unwrap(),
        request_headers: s("request_headers")
            .map(|h| serde_json::from_str::<HeaderMapJson>(&h).unwrap()),
        request_body: s("request_body"),
        request_body_encoding: Some("text".into()),
        response_body: s("response_body"),
        response_body_encoding: Some("text".into()),
        response_content_type: s("response_content_type"),
        status_code: Some(
            v.get("status_code")
                .and_then(Value::as_u64)
                .map_or(200, |c| u16::try_from(c).unwrap()),
        ),
        ..Transaction::default()
    }
}
