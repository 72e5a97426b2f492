//! `usage_summary`: calls in a time window grouped by container, client, model, day or
//! conversation, with totals, cache-hit ratio and the median time to first token.

use std::collections::BTreeMap;

use greyproxy_protocol::llm::{LlmCall, LlmTotals, PriceState, UsageRow};

/// What rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupBy {
    /// Container name.
    Container,
    /// Agent program.
    Client,
    /// Model answered (else requested).
    Model,
    /// UTC day of the call.
    Day,
    /// Conversation id (`-` for calls without one).
    Conversation,
}

impl GroupBy {
    /// Parses the wire name.
    pub(crate) fn parse(s: Option<&str>) -> Result<GroupBy, String> {
        Ok(match s.unwrap_or("container") {
            "container" => GroupBy::Container,
            "client" => GroupBy::Client,
            "model" => GroupBy::Model,
            "day" => GroupBy::Day,
            "conversation" => GroupBy::Conversation,
            other => {
                return Err(format!(
                    "invalid group_by {other:?}: use container, client, model, day or conversation"
                ));
            }
        })
    }

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupBy::Container => "container",
            GroupBy::Client => "client",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Conversation => "conversation",
        }
    }

    fn key(self, c: &LlmCall) -> String {
        match self {
            GroupBy::Container => c.container_name.clone(),
            GroupBy::Client => c.client.as_str().to_owned(),
            GroupBy::Model => c
                .model_answered
                .clone()
                .or_else(|| c.model_requested.clone())
                .unwrap_or_else(|| "-".into()),
            GroupBy::Day => c.timestamp.get(..10).unwrap_or("-").to_owned(),
            GroupBy::Conversation => c.conversation_id.clone().unwrap_or_else(|| "-".into()),
        }
    }
}

/// Adds one call to totals.
pub(crate) fn add_call(t: &mut LlmTotals, c: &LlmCall) {
    t.calls += 1;
    if let Some(u) = &c.usage {
        t.usage.add(u);
    }
    match (c.cost.state, c.cost.micro_usd) {
        (PriceState::Priced, Some(m)) => t.cost_micro_usd += m,
        (PriceState::Unpriced, _) => t.unpriced_calls += 1,
        _ => {}
    }
    t.duration_ms += c.duration_ms.unwrap_or(0);
}

/// Accumulates rows.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    groups: BTreeMap<String, (LlmTotals, Vec<u64>)>,
    total: (LlmTotals, Vec<u64>),
}

impl Summary {
    /// Adds a call under its group.
    pub(crate) fn add(&mut self, by: GroupBy, c: &LlmCall) {
        let g = self.groups.entry(by.key(c)).or_default();
        for (t, ttfts) in [g, &mut self.total] {
            add_call(t, c);
            if let Some(v) = c.ttft_ms {
                ttfts.push(v);
            }
        }
    }

    /// The rows, costliest first (then by key), and the total row (key `total`).
    pub(crate) fn finish(self) -> (Vec<UsageRow>, UsageRow) {
        let mut rows: Vec<UsageRow> = self
            .groups
            .into_iter()
            .map(|(k, (t, ttft))| row(k, t, ttft))
            .collect();
        rows.sort_by(|a, b| {
            b.totals
                .cost_micro_usd
                .cmp(&a.totals.cost_micro_usd)
                .then_with(|| a.key.cmp(&b.key))
        });
        let (t, ttft) = self.total;
        (rows, row("total".into(), t, ttft))
    }
}

fn row(key: String, totals: LlmTotals, mut ttft: Vec<u64>) -> UsageRow {
    let cache_hit_ratio = if totals.usage.input_tokens == 0 {
        0.0
    } else {
        totals.usage.cache_read_tokens as f64 / totals.usage.input_tokens as f64
    };
    ttft.sort_unstable();
    let ttft_p50_ms = (!ttft.is_empty()).then(|| ttft[(ttft.len() - 1) / 2]);
    UsageRow {
        key,
        totals,
        cache_hit_ratio,
        ttft_p50_ms,
    }
}

/// Parses a window bound: RFC 3339, a span back from `now_ms` (`90m`, `24h`, `7d`), `today`
/// (UTC midnight) or `start` (`started_ms`).
pub(crate) fn parse_since(s: &str, now_ms: u64, started_ms: u64) -> Result<u64, String> {
    match s.trim() {
        "start" => Ok(started_ms),
        "today" => Ok(now_ms - now_ms % 86_400_000),
        t => crate::time::parse_timestamp_ms(t)
            .or_else(|| {
                humantime::parse_duration(t)
                    .ok()
                    .map(|d| now_ms.saturating_sub(d.as_millis() as u64))
            })
            .ok_or_else(|| {
                format!(
                    "invalid since {t:?}: use RFC 3339, a span such as 24h or 7d, today or start"
                )
            }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use greyproxy_protocol::llm::{Cost, Usage};

    use super::*;
    use crate::store::test_call;

    fn priced(mut c: LlmCall, micro: u64, input: u64, cached: u64, ttft: u64) -> LlmCall {
        c.usage = Some(Usage {
            input_tokens: input,
            cache_read_tokens: cached,
            output_tokens: 10,
            ..Default::default()
        });
        c.cost = Cost {
            state: PriceState::Priced,
            micro_usd: Some(micro),
            price_model: Some("m".into()),
            table_version: "t".into(),
            provider_micro_usd: None,
        };
        c.ttft_ms = Some(ttft);
        c
    }

    #[test]
    fn groups_sum_and_rank_by_cost() {
        let mut s = Summary::default();
        let a1 = priced(test_call(1, 1_000, "a", Some("x")), 100, 1000, 500, 30);
        let a2 = priced(test_call(2, 2_000, "a", Some("x")), 50, 1000, 0, 10);
        let b = priced(test_call(3, 3_000, "b", None), 500, 10, 0, 20);
        let mut unpriced = test_call(4, 4_000, "a", None);
        unpriced.cost.state = PriceState::Unpriced;
        for c in [&a1, &a2, &b, &unpriced] {
            s.add(GroupBy::Container, c);
        }
        let (rows, total) = s.finish();
        assert_eq!(
            rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        let a = &rows[1];
        assert_eq!(
            (
                a.totals.calls,
                a.totals.cost_micro_usd,
                a.totals.unpriced_calls
            ),
            (3, 150, 1)
        );
        assert_eq!(a.totals.usage.input_tokens, 2000);
        assert!((a.cache_hit_ratio - 0.25).abs() < 1e-9);
        assert_eq!(a.ttft_p50_ms, Some(10));
        assert_eq!((total.totals.calls, total.totals.cost_micro_usd), (4, 650));
        assert_eq!(total.ttft_p50_ms, Some(20));
    }

    #[test]
    fn since_forms() {
        let now = 10 * 86_400_000 + 5_000;
        assert_eq!(parse_since("start", now, 42), Ok(42));
        assert_eq!(parse_since("today", now, 0), Ok(10 * 86_400_000));
        assert_eq!(parse_since("1h", now, 0), Ok(now - 3_600_000));
        assert_eq!(parse_since("1970-01-02T00:00:00Z", now, 0), Ok(86_400_000));
        assert!(
            parse_since("yesterday-ish", now, 0)
                .unwrap_err()
                .contains("invalid since")
        );
        assert!(GroupBy::parse(Some("galaxy")).is_err());
        assert_eq!(GroupBy::parse(None), Ok(GroupBy::Container));
    }
}
