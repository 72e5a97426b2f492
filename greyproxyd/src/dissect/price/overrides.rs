//! `[[llm.price]]` overrides: the config table as written, checked and turned into prices
//! (merged with the snapshot's entry for the same model, when there is one).

use serde::Deserialize;

use super::snapshot::{Snapshot, is_claude};
use super::{Price, PriceError, Raw, RawRates, names};

/// Largest price an override may set (USD per million tokens): keeps sums far from overflow.
const MAX_USD_PER_MILLION: f64 = 1_000_000.0;

/// One `[[llm.price]]` table of the config file. Prices are USD per million tokens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceOverride {
    /// Model name, matched like call names.
    pub(crate) model: String,
    /// Only calls of this provider (`anthropic`, `openai`, `openrouter`, `gcp.gemini`…).
    #[serde(default)]
    pub(crate) provider: Option<String>,
    /// Uncached input.
    #[serde(default)]
    pub(crate) input: Option<f64>,
    /// Output (reasoning included unless `reasoning` is set).
    #[serde(default)]
    pub(crate) output: Option<f64>,
    /// Cache reads.
    #[serde(default)]
    pub(crate) cache_read: Option<f64>,
    /// 5-minute cache writes (and writes whose TTL the provider did not say).
    #[serde(default)]
    pub(crate) cache_write: Option<f64>,
    /// 1-hour cache writes.
    #[serde(default)]
    pub(crate) cache_write_1h: Option<f64>,
    /// Reasoning tokens, when priced apart from output.
    #[serde(default)]
    pub(crate) reasoning: Option<f64>,
    /// Input tokens the model accepts.
    #[serde(default)]
    pub(crate) context_window: Option<u64>,
}

/// A configured override, resolved.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// As configured (reported as the price's model).
    pub(super) model: String,
    /// [`names::canonical`] of the model.
    pub(super) canonical: String,
    /// Provider family ([`names::family`]), when restricted.
    pub(super) provider: Option<String>,
    pub(super) price: Price,
}

/// Checks one `[[llm.price]]` table and resolves it against the snapshot.
pub(super) fn resolve_override(
    snapshot: &Snapshot,
    o: PriceOverride,
) -> Result<Override, PriceError> {
    let model = o.model.trim().to_string();
    if model.is_empty() {
        return Err(PriceError::EmptyModel);
    }
    let pico = |field: &'static str, v: Option<f64>| -> Result<Option<u64>, PriceError> {
        match v {
            None => Ok(None),
            Some(x) if x.is_finite() && (0.0..=MAX_USD_PER_MILLION).contains(&x) => {
                // USD per million tokens = 10⁶ pico-USD per token.
                Ok(Some((x * 1e6).round() as u64))
            }
            Some(value) => Err(PriceError::InvalidPrice {
                model: model.clone(),
                field,
                value,
            }),
        }
    };
    let set = RawRates {
        input: pico("input", o.input)?,
        output: pico("output", o.output)?,
        cache_read: pico("cache_read", o.cache_read)?,
        cache_write: pico("cache_write", o.cache_write)?,
        cache_write_1h: pico("cache_write_1h", o.cache_write_1h)?,
        reasoning: pico("reasoning", o.reasoning)?,
    };
    if set == RawRates::default() && o.context_window.is_none() {
        return Err(PriceError::Empty { model });
    }
    let provider = o.provider.as_deref().map(names::family);
    let mut raw = match snapshot.find(provider.as_deref().unwrap_or(""), &model) {
        Some(e) => e.raw.clone(),
        None => Raw {
            anthropic: provider.as_deref() == Some("anthropic") || is_claude(&model),
            ..Raw::default()
        },
    };
    // A key the override sets replaces the snapshot's at every tier.
    let fields = [
        (set.input, &mut raw.base.input, &mut raw.above_200k.input),
        (set.output, &mut raw.base.output, &mut raw.above_200k.output),
        (
            set.cache_read,
            &mut raw.base.cache_read,
            &mut raw.above_200k.cache_read,
        ),
        (
            set.cache_write,
            &mut raw.base.cache_write,
            &mut raw.above_200k.cache_write,
        ),
        (
            set.cache_write_1h,
            &mut raw.base.cache_write_1h,
            &mut raw.above_200k.cache_write_1h,
        ),
        (
            set.reasoning,
            &mut raw.base.reasoning,
            &mut raw.above_200k.reasoning,
        ),
    ];
    for (value, base, high) in fields {
        if value.is_some() {
            *base = value;
            *high = None;
        }
    }
    if o.context_window.is_some() {
        raw.context_window = o.context_window;
    }
    let price = raw.resolve().ok_or_else(|| PriceError::Incomplete {
        model: model.clone(),
    })?;
    Ok(Override {
        canonical: names::canonical(&model),
        model,
        provider,
        price,
    })
}
