//! The Usage view's live figures: tokens per minute, dollars per hour and a per-minute
//! sparkline, computed here from the `llm_call.new` events this dashboard saw (the daemon keeps
//! no rates). Calls are added up per minute of arrival into a ring of [`LIVE_MINUTES`] buckets,
//! each keyed by container, client and model, so memory is bounded whatever the traffic and a
//! frame reads a handful of numbers per row.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use greyproxy_protocol::llm::{LlmCall, PriceState};

/// Minutes of history kept: the width of the sparkline.
pub const LIVE_MINUTES: u64 = 10;

/// Rates are averaged over this many of the latest minutes.
pub(crate) const RATE_MINUTES: u64 = 5;

/// Distinct keys kept per bucket and grouping; further keys count in the totals only.
const MAX_KEYS: usize = 512;

/// What the board's rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Container name.
    Container,
    /// Agent program.
    Client,
    /// Model answered (else requested), as `usage_summary` groups it.
    Model,
}

impl Group {
    /// In the order the grouping key cycles through.
    pub(crate) const ALL: [Group; 3] = [Group::Container, Group::Client, Group::Model];

    /// The wire name (`usage_summary`'s `group_by`), also the column title in lower case.
    pub(crate) fn wire(self) -> &'static str {
        match self {
            Group::Container => "container",
            Group::Client => "client",
            Group::Model => "model",
        }
    }

    /// A call's key under this grouping: exactly the daemon's, so live figures meet the rows.
    pub(crate) fn key(self, c: &LlmCall) -> String {
        match self {
            Group::Container => c.container_name.clone(),
            Group::Client => c.client.as_str().to_owned(),
            Group::Model => c
                .model_answered
                .clone()
                .or_else(|| c.model_requested.clone())
                .unwrap_or_else(|| "-".into()),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Sums over some calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Acc {
    /// Input plus output tokens.
    pub(crate) tokens: u64,
    /// Cost of the priced calls.
    pub(crate) micro_usd: u64,
    /// Calls.
    pub(crate) calls: u64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.micro_usd = self.micro_usd.saturating_add(o.micro_usd);
        self.calls += o.calls;
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Minutes since the Unix epoch.
    minute: u64,
    total: Acc,
    by: [HashMap<String, Acc>; 3],
}

/// The live rates of one row (or of everything).
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Tokens per minute over the last `RATE_MINUTES`.
    pub tokens_per_min: f64,
    /// Dollars per hour over the same span.
    pub usd_per_hour: f64,
    /// Tokens in each of the last [`LIVE_MINUTES`] minutes, oldest first.
    pub spark: [u64; LIVE_MINUTES as usize],
}

/// The ring of per-minute buckets.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// When this dashboard started watching: rates are not averaged over time it did not see.
    started: SystemTime,
    buckets: VecDeque<Bucket>,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60
}

impl Live {
    /// Nothing seen yet; watching since `now`.
    pub(crate) fn new(now: SystemTime) -> Live {
        Live {
            started: now,
            buckets: VecDeque::new(),
        }
    }

    /// Adds a call that arrived at `now`.
    pub(crate) fn add(&mut self, c: &LlmCall, now: SystemTime) {
        let minute = minute_of(now);
        self.expire(minute);
        // A clock that went back adds to the newest bucket rather than reordering the ring.
        if self.buckets.back().is_none_or(|b| b.minute < minute) {
            self.buckets.push_back(Bucket {
                minute,
                ..Bucket::default()
            });
        }
        let Some(b) = self.buckets.back_mut() else {
            return;
        };
        let acc = Acc {
            tokens: c
                .usage
                .map(|u| u.input_tokens.saturating_add(u.output_tokens))
                .unwrap_or(0),
            micro_usd: match (c.cost.state, c.cost.micro_usd) {
                (PriceState::Priced, Some(m)) => m,
                _ => 0,
            },
            calls: 1,
        };
        b.total.add(&acc);
        for g in Group::ALL {
            let map = &mut b.by[g.index()];
            let key = g.key(c);
            if let Some(a) = map.get_mut(&key) {
                a.add(&acc);
            } else if map.len() < MAX_KEYS {
                map.insert(key, acc);
            }
        }
    }

    /// Drops the buckets older than the sparkline.
    pub(crate) fn expire(&mut self, now_minute: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|b| b.minute + LIVE_MINUTES <= now_minute)
        {
            self.buckets.pop_front();
        }
    }

    /// Whether any call arrived in the last [`LIVE_MINUTES`].
    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The rates of `key` under `group` (`None`: every call) at `now`.
    pub(crate) fn rate(&self, group: Group, key: Option<&str>, now: SystemTime) -> Rate {
        let now_min = minute_of(now);
        let mut spark = [0u64; LIVE_MINUTES as usize];
        let mut recent = Acc::default();
        for b in &self.buckets {
            let Some(age) = now_min.checked_sub(b.minute) else {
                continue;
            };
            if age >= LIVE_MINUTES {
                continue;
            }
            let acc = match key {
                None => Some(&b.total),
                Some(k) => b.by[group.index()].get(k),
            };
            let Some(acc) = acc else { continue };
            spark[(LIVE_MINUTES - 1 - age) as usize] += acc.tokens;
            if age < RATE_MINUTES {
                recent.add(acc);
            }
        }
        // Averaged over the span this dashboard saw, at least a minute (a first call seconds
        // after starting is not a rate of millions per minute).
        let window_start = SystemTime::UNIX_EPOCH
            + Duration::from_secs((now_min + 1).saturating_sub(RATE_MINUTES) * 60);
        let from = window_start.max(self.started);
        let minutes = (now.duration_since(from).unwrap_or_default().as_secs_f64() / 60.0).max(1.0);
        Rate {
            tokens_per_min: recent.tokens as f64 / minutes,
            usd_per_hour: recent.micro_usd as f64 / 1e6 / minutes * 60.0,
            spark,
        }
    }
}

/// A sparkline of `values` (oldest first), scaled to its own maximum: `·` for none.
pub(crate) fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                '·'
            } else {
                let i = (v as u128 * 7 / max as u128) as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sample::usage::call;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 60 * 60 + secs)
    }

    #[test]
    fn rates_average_the_last_minutes_and_the_sparkline_shows_each_minute() {
        let mut live = Live::new(at(0));
        // 1 000 tokens and 10 000 micro-USD per call.
        for m in 0..6 {
            live.add(
                &call("dev", "claude-sonnet-4-5", 900, 100, 10_000),
                at(m * 60 + 5),
            );
        }
        live.add(&call("ci", "gpt-5", 4_000, 0, 0), at(5 * 60 + 30));
        let now = at(5 * 60 + 59);
        let all = live.rate(Group::Container, None, now);
        assert_eq!(
            all.spark,
            [0, 0, 0, 0, 1_000, 1_000, 1_000, 1_000, 1_000, 5_000]
        );
        // Minutes 1–5 (5 000 + 4 000 tokens) over the 5 minutes that ended now.
        assert!((all.tokens_per_min - 9_000.0 / (4.0 + 59.0 / 60.0)).abs() < 1e-6);
        let dev = live.rate(Group::Container, Some("dev"), now);
        assert_eq!(dev.spark[9], 1_000);
        assert!((dev.usd_per_hour - 0.05 / (4.0 + 59.0 / 60.0) * 60.0).abs() < 1e-9);
        let gpt = live.rate(Group::Model, Some("gpt-5"), now);
        assert_eq!(gpt.spark[9], 4_000);
        assert_eq!(gpt.usd_per_hour, 0.0);
        assert_eq!(
            live.rate(Group::Client, Some("claude-code"), now).spark[9],
            1_000
        );
        assert_eq!(live.rate(Group::Client, Some("codex"), now).spark[9], 4_000);
        // Ten minutes later everything has aged out.
        let later = at(16 * 60);
        assert_eq!(live.rate(Group::Container, None, later).tokens_per_min, 0.0);
        live.expire(minute_of(later));
        assert!(live.is_empty());
    }

    #[test]
    fn a_first_call_right_after_start_is_averaged_over_a_minute() {
        let mut live = Live::new(at(10));
        live.add(&call("dev", "m", 6_000, 0, 0), at(12));
        let r = live.rate(Group::Container, None, at(15));
        assert_eq!(r.tokens_per_min, 6_000.0);
    }

    #[test]
    fn keys_per_bucket_are_bounded() {
        let mut live = Live::new(at(0));
        for i in 0..(MAX_KEYS + 10) {
            live.add(&call(&format!("c{i}"), "m", 1, 0, 0), at(1));
        }
        let b = live.buckets.back().unwrap();
        assert_eq!(b.by[Group::Container.index()].len(), MAX_KEYS);
        assert_eq!(b.total.calls, MAX_KEYS as u64 + 10);
        assert_eq!(
            live.rate(Group::Container, Some("c520"), at(1)).spark[9],
            0,
            "beyond the bound: in the total only"
        );
    }

    #[test]
    fn sparklines_scale_to_their_maximum() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), "·▁▄█");
        assert_eq!(sparkline(&[0, 0]), "··");
        assert_eq!(sparkline(&[5]), "█");
    }
}
