//! The one public door the LLM benchmark (`greyproxyd/benches/llm.rs`) uses into the
//! crate-private LLM layer. A [`Pipeline`] is the daemon's dissection task ([`DissectTask`])
//! driven on the caller's thread instead of its own: a recorded transaction is classified
//! against the endpoint registry, read by its dissector, given its client, thread and price,
//! folded into its conversation and stored, over a real store file — the same code, step for
//! step, as in the daemon, without the queue in front of it. The two halves can be run apart
//! ([`Pipeline::dissect`], [`Pipeline::record`]) so that the benchmark can time them apart.
//! Nothing in the daemon calls this; it exists only for the benchmark.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use greyproxy_protocol::Transaction;

use super::model::Dissected;
use super::price::PriceTable;
use super::proposals::Proposals;
use super::queue::{Job, RowKind, classify};
use super::recent::RecentCalls;
use super::task::{DissectTask, LlmRetention, dissect_http};
use crate::endpoints::LlmRule;
use crate::events::EventBus;
use crate::live::{Live, LiveCell};
use crate::store::Store;

/// Why a [`Pipeline`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store file cannot be opened.
    #[error("cannot open the store: {0}")]
    Store(String),
    /// An endpoint rule is invalid.
    #[error("invalid endpoint rules: {0}")]
    Rules(String),
    /// The price table cannot be loaded.
    #[error("cannot load the price table: {0}")]
    Prices(String),
}

/// The dissection task over one store, run by the caller.
pub struct Pipeline {
    task: DissectTask,
    live: Arc<LiveCell>,
}

/// A row classified and read by its dissector, not yet priced, assembled or stored.
pub struct Prepared {
    job: Job,
    d: Dissected,
}

impl Pipeline {
    /// A pipeline over the store at `path` (created when missing) with the built-in endpoint
    /// rules plus `rules` (as configured `[[endpoint_rule]]` tables), the vendored price table
    /// and the default retention. Commits are durable, as in the daemon.
    pub fn open(path: &Path, rules: Vec<LlmRule>) -> Result<Pipeline, PipelineError> {
        let store = Arc::new(Store::open(path).map_err(|e| PipelineError::Store(e.to_string()))?);
        let live = LiveCell::new(
            Live::new(vec![], vec![], rules, Duration::from_secs(30))
                .map_err(|e| PipelineError::Rules(e.to_string()))?,
        );
        let prices = Arc::new(
            PriceTable::with_overrides(Vec::new())
                .map_err(|e| PipelineError::Prices(e.to_string()))?,
        );
        let task = DissectTask::new(
            store.clone(),
            Arc::new(EventBus::new()),
            Arc::new(RecentCalls::new(120)),
            live.clone(),
            prices,
            Arc::new(Proposals::load(store)),
            Arc::new(AtomicU64::new(0)),
            LlmRetention::default(),
        );
        Ok(Pipeline { task, live })
    }

    /// Commit each call's conversation changes with an fsync (the default, as live traffic
    /// does) or not (as a rebuild does). The call row is committed durably either way.
    pub fn set_durable(&mut self, durable: bool) {
        self.task.set_durable(durable);
    }

    /// The whole of what the dissection task does with `tx`, queued at `at_ms` (Unix ms, when
    /// the exchange ended). Returns the conversation of the call it recorded, if any.
    pub fn call(&mut self, tx: Transaction, at_ms: u64) -> Option<String> {
        let kind = classify(&self.live.load().llm, &tx)?;
        let job = Job {
            tx,
            kind,
            at_ms,
            weight: 0,
        };
        self.task.row(&job).map(|l| l.conversation_id)
    }

    /// The first half of [`Pipeline::call`] for an HTTP call: the registry's classification and
    /// the dissector. `None` when no rule reads `tx` as an HTTP call.
    pub fn dissect(&self, tx: Transaction, at_ms: u64) -> Option<Prepared> {
        let RowKind::Http(decoder) = classify(&self.live.load().llm, &tx)? else {
            return None;
        };
        let d = dissect_http(decoder, &tx);
        let job = Job {
            tx,
            kind: RowKind::Http(decoder),
            at_ms,
            weight: 0,
        };
        Some(Prepared { job, d })
    }

    /// The second half: client and thread, price, assembly, the call stored. Returns the
    /// conversation the call was counted in, if any. The dissected call is the caller's to
    /// drop (freeing a long history's model is part of reading it, not of assembling it).
    pub fn record(&mut self, p: &Prepared) -> Option<String> {
        self.task
            .record_http(&p.job, &p.d)
            .map(|l| l.conversation_id)
    }

    /// Calls recorded so far (with or without a conversation).
    pub fn recorded(&self) -> u64 {
        self.task.recorded()
    }
}
