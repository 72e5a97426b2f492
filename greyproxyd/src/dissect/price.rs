//! LLM prices: the vendored price table (`greyproxyd/data/llm-prices.json`, a trimmed snapshot
//! of LiteLLM's table; `greyproxyd/data/README.md` says its source, version and licence), the
//! overrides the config file adds, model-name matching that survives drift ([`names`]), and the
//! cost of one call in integer micro-USD.
//!
//! # Config: `[[llm.price]]`
//!
//! Each table overrides one model's prices or adds a model the snapshot lacks. Prices are USD
//! per **million** tokens, as vendors publish them:
//!
//! ```toml
//! [[llm.price]]
//! model = "claude-sonnet-4-5"   # required: matched like call names (case, prefix, date)
//! provider = "anthropic"        # optional: only calls of this provider
//! input = 3.0                   # uncached input
//! output = 15.0                 # output (reasoning included, unless `reasoning` is set)
//! cache_read = 0.3              # cache reads (default: the input price)
//! cache_write = 3.75            # 5-minute cache writes (default: 1.25× input for Claude, else input)
//! cache_write_1h = 6.0          # 1-hour cache writes (default: 2× input for Claude, else cache_write)
//! reasoning = 15.0              # reasoning tokens, when priced apart from output
//! context_window = 200000       # input tokens the model accepts
//! ```
//!
//! An override of a model the snapshot has changes only the keys it sets (at every input size:
//! the snapshot's above-200k price of that key no longer applies); one for a model the
//! snapshot lacks must set `input` and `output`. Overrides are matched before the snapshot, so
//! one for `claude-sonnet-4-5` also prices `claude-sonnet-4-5-20250929`.
//!
//! # Arithmetic
//!
//! Prices are held as integer pico-USD per token (converted once, at load), a call's cost is
//! summed in 128-bit integers and rounded half up to micro-USD: no float error creeps in.

mod names;
mod overrides;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock};

use greyproxy_protocol::llm::{Cost, PriceState, Usage};

pub(crate) use overrides::PriceOverride;
use overrides::{Override, resolve_override};
use snapshot::Snapshot;

/// The vendored snapshot, embedded at build time.
const SNAPSHOT_JSON: &str = include_str!("../../data/llm-prices.json");

/// Calls with more input tokens than this are priced at the `*_above_200k_tokens` tier.
const TIER_TOKENS: u64 = 200_000;

const PICO_PER_MICRO: u128 = 1_000_000;

/// The snapshot, parsed once for the daemon's lifetime.
static SNAPSHOT: LazyLock<Result<Arc<Snapshot>, String>> =
    LazyLock::new(|| Snapshot::parse(SNAPSHOT_JSON).map(Arc::new));

/// Why a price table could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum PriceError {
    /// The embedded snapshot did not parse (a build with a broken data file).
    #[error("the built-in price table is unreadable: {0}")]
    Snapshot(String),
    /// An override without a model name.
    #[error("llm.price: `model` must not be empty")]
    EmptyModel,
    /// A price that is negative, not finite, or absurdly large.
    #[error(
        "llm.price for model {model:?}: {field} = {value} is not a price \
         (USD per million tokens, from 0 to 1000000)"
    )]
    InvalidPrice {
        /// The override's model.
        model: String,
        /// The key (`input`, `cache_write_1h`…).
        field: &'static str,
        /// The value as configured.
        value: f64,
    },
    /// A new model without input or output price.
    #[error(
        "llm.price for model {model:?}: the price table has no such model, \
         so `input` and `output` are both required"
    )]
    Incomplete {
        /// The override's model.
        model: String,
    },
    /// An override that sets nothing.
    #[error("llm.price for model {model:?} sets no price and no context_window")]
    Empty {
        /// The override's model.
        model: String,
    },
    /// Two overrides for the same model and provider.
    #[error("llm.price for model {model:?} is configured twice")]
    Duplicate {
        /// The override's model.
        model: String,
    },
}

/// Per-token prices of one tier, in pico-USD (10⁻¹² USD), fallbacks applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rates {
    /// Uncached input.
    pub(crate) input: u64,
    /// Output that is not reasoning.
    pub(crate) output: u64,
    /// Cache reads.
    pub(crate) cache_read: u64,
    /// 5-minute cache writes and writes of unknown TTL.
    pub(crate) cache_write_5m: u64,
    /// 1-hour cache writes.
    pub(crate) cache_write_1h: u64,
    /// Reasoning output.
    pub(crate) reasoning: u64,
}

/// One model's prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Price {
    /// Up to 200 000 input tokens (or at any size when the table has no tier).
    pub(crate) base: Rates,
    /// Above 200 000 input tokens, when the table prices that apart.
    pub(crate) above_200k: Option<Rates>,
    /// Input tokens the model accepts.
    pub(crate) context_window: Option<u64>,
}

/// Prices of one tier as the table gives them (pico-USD per token), before fallbacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawRates {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    cache_write_1h: Option<u64>,
    reasoning: Option<u64>,
}

/// One entry as given, kept so an override can change some keys and keep the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Raw {
    base: RawRates,
    above_200k: RawRates,
    context_window: Option<u64>,
    /// Anthropic bills cache writes at multiples of input: used when the table omits them.
    anthropic: bool,
}

impl Raw {
    /// Applies fallbacks; `None` without an input and output price.
    fn resolve(&self) -> Option<Price> {
        let base = resolve_tier(&self.base, self.anthropic)?;
        let t = &self.above_200k;
        let tiered = t.input.is_some()
            || t.output.is_some()
            || t.cache_read.is_some()
            || t.cache_write.is_some()
            || t.cache_write_1h.is_some()
            || t.reasoning.is_some();
        let above_200k = tiered.then(|| {
            let input = t.input.unwrap_or(base.input);
            let (cw5, cw1) = if self.anthropic {
                // Anthropic's cache writes follow the tier's input price.
                (scale(input, 5, 4), input.saturating_mul(2))
            } else {
                (base.cache_write_5m, base.cache_write_1h)
            };
            let output = t.output.unwrap_or(base.output);
            Rates {
                input,
                output,
                cache_read: t.cache_read.unwrap_or(base.cache_read),
                cache_write_5m: t.cache_write.unwrap_or(cw5),
                cache_write_1h: t.cache_write_1h.unwrap_or(cw1),
                // Reasoning follows the tier's output price unless the table prices it apart.
                reasoning: t.reasoning.unwrap_or(if base.reasoning == base.output {
                    output
                } else {
                    base.reasoning
                }),
            }
        });
        Some(Price {
            base,
            above_200k,
            context_window: self.context_window,
        })
    }
}

fn resolve_tier(r: &RawRates, anthropic: bool) -> Option<Rates> {
    let input = r.input?;
    let output = r.output?;
    let (cw5, cw1) = if anthropic {
        (scale(input, 5, 4), input.saturating_mul(2))
    } else {
        (input, r.cache_write.unwrap_or(input))
    };
    Some(Rates {
        input,
        output,
        cache_read: r.cache_read.unwrap_or(input),
        cache_write_5m: r.cache_write.unwrap_or(cw5),
        cache_write_1h: r.cache_write_1h.unwrap_or(cw1),
        reasoning: r.reasoning.unwrap_or(output),
    })
}

/// `v × num ÷ den`, rounded half up.
fn scale(v: u64, num: u64, den: u64) -> u64 {
    let x = (u128::from(v) * u128::from(num) + u128::from(den) / 2) / u128::from(den);
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// The price table: the embedded snapshot plus configured overrides. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PriceTable {
    snapshot: Arc<Snapshot>,
    overrides: Vec<Override>,
    version: String,
}

impl PriceTable {
    /// The snapshot with these overrides applied (none: the snapshot alone).
    pub(crate) fn with_overrides(overrides: Vec<PriceOverride>) -> Result<PriceTable, PriceError> {
        let snapshot = SNAPSHOT.clone().map_err(PriceError::Snapshot)?;
        // Names the overrides' values, not only their number, so that history priced before a
        // price was changed in the file can be told apart (and re-priced).
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{overrides:?}").as_bytes(),
        );
        let tag: String = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut resolved: Vec<Override> = Vec::with_capacity(overrides.len());
        for o in overrides {
            let r = resolve_override(&snapshot, o)?;
            if resolved
                .iter()
                .any(|x| x.canonical == r.canonical && x.provider == r.provider)
            {
                return Err(PriceError::Duplicate { model: r.model });
            }
            resolved.push(r);
        }
        let version = match resolved.len() {
            0 => snapshot.version.clone(),
            1 => format!("{} +1 override {tag}", snapshot.version),
            n => format!("{} +{n} overrides {tag}", snapshot.version),
        };
        Ok(PriceTable {
            snapshot,
            overrides: resolved,
            version,
        })
    }

    /// The snapshot's version, plus `+N overrides <hash of their values>` when the config adds
    /// any.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The price for a call's provider and model, with the key it was found under: overrides
    /// first, then the snapshot; each tried exact, case-insensitively, without provider
    /// prefix, without date suffix, in Claude's dotted or dashed spelling ([`names`]).
    pub(crate) fn lookup(&self, provider: &str, model: &str) -> Option<(&str, &Price)> {
        if !self.overrides.is_empty() {
            let family = names::family(provider);
            let applies = |o: &&Override| o.provider.as_ref().is_none_or(|p| *p == family);
            for c in names::candidates(provider, model) {
                let hit = self
                    .overrides
                    .iter()
                    .filter(applies)
                    .find(|o| o.canonical == c);
                if let Some(o) = hit {
                    return Some((o.model.as_str(), &o.price));
                }
            }
        }
        self.snapshot
            .find(provider, model)
            .map(|e| (e.key.as_str(), &e.price))
    }

    /// The model's context window (input tokens), when the table knows it.
    pub(crate) fn context_window(&self, provider: &str, model: &str) -> Option<u64> {
        self.lookup(provider, model)
            .and_then(|(_, p)| p.context_window)
    }

    /// A call's cost: `NoUsage` without usage, `Unpriced` (no amount, never 0) when the table
    /// has no price for the model, else the amount in micro-USD. The provider's own figure
    /// (OpenRouter's `usage.cost`, USD) is kept beside it in every case.
    pub(crate) fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: Option<&Usage>,
        provider_cost_usd: Option<f64>,
    ) -> Cost {
        let provider_micro_usd = provider_cost_usd.and_then(micro_from_usd);
        let mut cost = Cost {
            state: PriceState::NoUsage,
            micro_usd: None,
            price_model: None,
            table_version: self.version.clone(),
            provider_micro_usd,
        };
        let Some(usage) = usage else { return cost };
        let Some((key, price)) = self.lookup(provider, model) else {
            cost.state = PriceState::Unpriced;
            return cost;
        };
        cost.state = PriceState::Priced;
        cost.micro_usd = Some(micro_usd(price, usage));
        cost.price_model = Some(key.to_string());
        cost
    }
}

/// The cost of `usage` at `price`, micro-USD rounded half up.
pub(crate) fn micro_usd(price: &Price, u: &Usage) -> u64 {
    let r = match price.above_200k {
        Some(high) if u.input_tokens > TIER_TOKENS => high,
        _ => price.base,
    };
    let uncached = u
        .input_tokens
        .saturating_sub(u.cache_read_tokens)
        .saturating_sub(u.cache_write_tokens);
    let w5 = u.cache_write_5m_tokens.unwrap_or(0);
    let w1 = u.cache_write_1h_tokens.unwrap_or(0);
    // Writes the provider did not split by TTL are billed as 5-minute writes.
    let unsplit = u.cache_write_tokens.saturating_sub(w5).saturating_sub(w1);
    let reasoning = u.reasoning_tokens.min(u.output_tokens);
    let plain_output = u.output_tokens - reasoning;
    let terms = [
        (uncached, r.input),
        (u.cache_read_tokens, r.cache_read),
        (w5.saturating_add(unsplit), r.cache_write_5m),
        (w1, r.cache_write_1h),
        (plain_output, r.output),
        (reasoning, r.reasoning),
    ];
    let pico = terms.iter().fold(0u128, |sum, &(tokens, price)| {
        sum.saturating_add(u128::from(tokens) * u128::from(price))
    });
    u64::try_from(pico.saturating_add(PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap_or(u64::MAX)
}

/// USD → micro-USD, `None` for a negative or non-finite figure.
fn micro_from_usd(usd: f64) -> Option<u64> {
    let x = usd * 1e6;
    (x.is_finite() && (0.0..1e18).contains(&x)).then(|| x.round() as u64)
}

/// The table with the `[[llm.price]]` tables of the configuration file (raw TOML values, so a
/// bad one is reported with its position).
pub(crate) fn table_from_config(tables: &[toml::Value]) -> Result<PriceTable, String> {
    let overrides = tables
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.clone()
                .try_into::<PriceOverride>()
                .map_err(|e| format!("table {}: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PriceTable::with_overrides(overrides).map_err(|e| e.to_string())
}

/// Checks the `[[llm.price]]` tables without keeping the table (`config check`).
pub(crate) fn check_overrides(tables: &[toml::Value]) -> Result<(), String> {
    table_from_config(tables).map(|_| ())
}
