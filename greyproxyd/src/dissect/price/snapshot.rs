//! The vendored snapshot (`greyproxyd/data/llm-prices.json`) parsed into entries, and the
//! lookup over them: exact key first, then the canonical candidates of [`super::names`].

use std::collections::HashMap;

use super::{Price, Raw, RawRates, names};

/// A snapshot entry: its key as the table spells it, as given and resolved.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) raw: Raw,
    pub(super) price: Price,
}

/// The parsed snapshot.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The `version` the file records.
    pub(super) version: String,
    pub(super) entries: Vec<Entry>,
    /// Key as spelled → entry.
    exact: HashMap<String, usize>,
    /// Canonical key ([`names::canonical`]) → entry (the first, in key order, on a clash).
    canonical: HashMap<String, usize>,
}

impl Snapshot {
    pub(super) fn parse(text: &str) -> Result<Snapshot, String> {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let version = doc
            .get("version")
            .and_then(|v| v.as_str())
            .ok_or("no `version`")?
            .to_string();
        let models = doc
            .get("models")
            .and_then(|v| v.as_object())
            .ok_or("no `models` object")?;
        let mut keys: Vec<&String> = models.keys().collect();
        keys.sort();
        let mut snap = Snapshot {
            version,
            entries: Vec::with_capacity(keys.len()),
            exact: HashMap::new(),
            canonical: HashMap::new(),
        };
        for key in keys {
            let Some(raw) = models.get(key).and_then(|v| raw_from_json(key, v)) else {
                continue;
            };
            let Some(price) = raw.resolve() else { continue };
            let i = snap.entries.len();
            snap.exact.insert(key.clone(), i);
            snap.canonical.entry(names::canonical(key)).or_insert(i);
            snap.entries.push(Entry {
                key: key.clone(),
                raw,
                price,
            });
        }
        Ok(snap)
    }

    /// The entry for a call's names, trying candidates most specific first.
    pub(super) fn find(&self, provider: &str, model: &str) -> Option<&Entry> {
        if let Some(&i) = self.exact.get(model.trim()) {
            return self.entries.get(i);
        }
        names::candidates(provider, model)
            .iter()
            .find_map(|c| self.canonical.get(c))
            .and_then(|&i| self.entries.get(i))
    }
}

/// USD per token (as LiteLLM writes them) → pico-USD per token; `None` unless a price.
fn pico_from_usd_per_token(v: &serde_json::Value) -> Option<u64> {
    let x = v.as_f64()? * 1e12;
    (x.is_finite() && (0.0..1e18).contains(&x)).then(|| x.round() as u64)
}

fn raw_from_json(key: &str, v: &serde_json::Value) -> Option<Raw> {
    let obj = v.as_object()?;
    let get = |f: &str| obj.get(f).and_then(pico_from_usd_per_token);
    let rates = |sfx: &str| RawRates {
        input: get(&format!("input_cost_per_token{sfx}")),
        output: get(&format!("output_cost_per_token{sfx}")),
        cache_read: get(&format!("cache_read_input_token_cost{sfx}")),
        cache_write: get(&format!("cache_creation_input_token_cost{sfx}")),
        cache_write_1h: get(&format!("cache_creation_input_token_cost_above_1hr{sfx}")),
        reasoning: get(&format!("output_cost_per_reasoning_token{sfx}")),
    };
    let provider = obj.get("litellm_provider").and_then(|p| p.as_str());
    Some(Raw {
        base: rates(""),
        above_200k: rates("_above_200k_tokens"),
        context_window: obj.get("max_input_tokens").and_then(|n| n.as_u64()),
        anthropic: provider == Some("anthropic") || is_claude(key),
    })
}

pub(super) fn is_claude(model: &str) -> bool {
    let last = model.rsplit('/').next().unwrap_or(model);
    last.to_ascii_lowercase().starts_with("claude")
}
