//! What the LLM layer must show after a scripted run: the calls with the usage the mock
//! reported (normalised to OpenTelemetry's semantics), the cost the vendored price table
//! implies (computed here independently, in floating point, from the table's JSON), and the
//! conversation they make up.

use std::time::Duration;

use greyproxy_testkit::control::Control;
use greyproxy_testkit::llm_mock::MockUsage;
use greyproxy_testkit::wait::POLL;
use serde_json::{Value, json};

/// The wire convention a provider reports usage in.
#[derive(Debug, Clone, Copy)]
pub enum Convention {
    /// Anthropic: input excludes cache reads and writes; no reasoning count.
    Anthropic,
    /// OpenAI (Responses, Chat Completions): cached ⊂ input, reasoning ⊂ output; no writes.
    OpenAi,
}

/// The normalised usage the daemon must record for what the mock sent.
pub fn normalised(c: Convention, u: MockUsage) -> Value {
    let input = u.input + u.cache_read + u.cache_creation;
    match c {
        Convention::Anthropic => json!({
            "input_tokens": input, "cache_read_tokens": u.cache_read,
            "cache_write_tokens": u.cache_creation,
            "cache_write_5m_tokens": u.cache_creation, "cache_write_1h_tokens": 0,
            "output_tokens": u.output, "reasoning_tokens": 0}),
        Convention::OpenAi => json!({
            "input_tokens": input, "cache_read_tokens": u.cache_read,
            "cache_write_tokens": 0, "output_tokens": u.output,
            "reasoning_tokens": u.reasoning}),
    }
}

/// The cost in micro-USD the vendored table implies for `model` (looked up exactly as named
/// there), or `None` when the table lacks it.
pub fn table_cost(model: &str, c: Convention, u: MockUsage) -> Option<u64> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/llm-prices.json");
    let table: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let p = table["models"].get(model)?;
    let price = |k: &str| p[k].as_f64();
    let input = price("input_cost_per_token")?;
    let read = price("cache_read_input_token_cost").unwrap_or(input);
    let write = price("cache_creation_input_token_cost").unwrap_or(input);
    let output = price("output_cost_per_token")?;
    // OpenAI reports no cache writes: `cache_creation` tokens are plain (cached-less) input.
    let (uncached, writes) = match c {
        Convention::Anthropic => (u.input, u.cache_creation),
        Convention::OpenAi => (u.input + u.cache_creation, 0),
    };
    let usd = uncached as f64 * input
        + u.cache_read as f64 * read
        + writes as f64 * write
        + u.output as f64 * output;
    Some((usd * 1e6).round() as u64)
}

/// The container's calls (oldest first), once there are `n` (waits up to 20 s).
pub async fn calls(ws: &mut Control, container: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = ws
            .query(json!({"command":"list_llm_calls","container":container}))
            .await;
        let mut v: Vec<Value> = data["calls"].as_array().cloned().unwrap_or_default();
        if v.len() >= n || std::time::Instant::now() > deadline {
            v.reverse();
            return v;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The container's conversations, once one has `calls` calls (waits up to 20 s).
pub async fn conversations(ws: &mut Control, container: &str, calls: u64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = ws
            .query(json!({"command":"list_conversations","container":container}))
            .await;
        let v: Vec<Value> = data["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done = v
            .iter()
            .any(|c| c["totals"]["calls"].as_u64() >= Some(calls));
        if done || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Field-by-field sum of usage objects.
pub fn sum_usage(us: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for u in us {
        for (k, v) in u.as_object().into_iter().flatten() {
            let e = out.entry(k.clone()).or_insert(json!(0));
            *e = json!(e.as_u64().unwrap_or(0) + v.as_u64().unwrap_or(0));
        }
    }
    Value::Object(out)
}

/// Asserts `usage_summary` by container agrees with the sum of the container's calls.
pub async fn assert_usage_summary(ws: &mut Control, container: &str, calls: &[Value]) {
    let s = ws
        .query(json!({"command":"usage_summary","group_by":"container","since":"start"}))
        .await;
    let row = s["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == container))
        .unwrap_or_else(|| panic!("no usage row for {container}: {s}"));
    assert_eq!(row["calls"], calls.len(), "{row}");
    let usages: Vec<Value> = calls.iter().map(|c| c["usage"].clone()).collect();
    let sum = sum_usage(&usages);
    for k in [
        "input_tokens",
        "cache_read_tokens",
        "output_tokens",
        "reasoning_tokens",
    ] {
        assert_eq!(row["usage"][k], sum[k], "{k}: {row} vs {sum}");
    }
    let cost: u64 = calls
        .iter()
        .filter_map(|c| c["cost"]["micro_usd"].as_u64())
        .sum();
    assert_eq!(row["cost_micro_usd"], cost, "{row}");
    let unpriced = calls
        .iter()
        .filter(|c| c["cost"]["state"] == "unpriced")
        .count();
    assert_eq!(row["unpriced_calls"], unpriced, "{row}");
}
