//! Wiring of the LLM layer: the price table from the configuration, the endpoint rules, the
//! proposals, the bounded queue the recorder offers rows to and the dissection task's thread.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::ServeConfig;
use crate::control::llm::LlmHandles;
use crate::dissect::proposals::Proposals;
use crate::dissect::queue::{DissectQueue, Msg, QUEUE_ROWS};
use crate::dissect::rules::EndpointRules;
use crate::dissect::task::{DissectTask, LlmRetention};
use crate::events::EventBus;
use crate::live::LiveCell;
use crate::policy::Policy;
use crate::store::Store;

/// The running LLM layer.
pub(super) struct LlmParts {
    /// Given to the recorder.
    pub(super) queue: Arc<DissectQueue>,
    /// Given to the control handlers.
    pub(super) handles: Arc<LlmHandles>,
    /// Given to the reloader.
    pub(super) rules: Arc<EndpointRules>,
}

/// Starts the LLM layer, or returns `None` when `[llm] enabled = false` (the endpoint rules
/// still reach the registry for the middleware `llm` filter).
pub(super) fn start(
    cfg: &ServeConfig,
    store: &Arc<Store>,
    events: &Arc<EventBus>,
    policy: &Arc<Policy>,
    live: &Arc<LiveCell>,
) -> anyhow::Result<Option<LlmParts>> {
    let rules = Arc::new(EndpointRules::load(
        store.clone(),
        live.clone(),
        cfg.llm_rules.clone(),
    ));
    if !cfg.llm.enabled {
        return Ok(None);
    }
    let prices = Arc::new(
        crate::dissect::price::table_from_config(&cfg.llm.prices)
            .map_err(|e| anyhow::anyhow!("[[llm.price]]: {e}"))?,
    );
    let price_table = prices.version().to_owned();
    let recent = policy.recent_calls().clone();
    recent.set_window(cfg.llm.context_window.as_secs());
    let proposals = Arc::new(Proposals::load(store.clone()));
    let (tx, rx) = mpsc::channel(QUEUE_ROWS);
    let queued_bytes = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(DissectQueue::new(
        tx,
        live.clone(),
        recent.clone(),
        queued_bytes.clone(),
    ));
    let retention = LlmRetention {
        max_calls: cfg.llm.max_calls,
        max_age_ms: cfg.llm.max_age.as_millis() as u64,
        max_conversations: cfg.llm.max_conversations,
    };
    DissectTask::new(
        store.clone(),
        events.clone(),
        recent,
        live.clone(),
        prices,
        proposals.clone(),
        queued_bytes,
        retention,
    )
    .spawn(rx)
    .context("cannot start the dissection thread")?;
    // Transactions stored but never dissected (a store from a build without the LLM layer, or
    // recorded while it was off) are read first, before any new row.
    match store.llm_cursor() {
        Ok((cursor, newest)) if newest > cursor.unwrap_or(0) => {
            let after = cursor.unwrap_or(0);
            tracing::info!(
                after,
                newest,
                "reading stored transactions the LLM layer has not seen"
            );
            let _ = queue.sender().try_send(Msg::CatchUp(after));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read where dissection stands"),
    }
    let handles = Arc::new(LlmHandles {
        store: store.clone(),
        queue: queue.clone(),
        rules: rules.clone(),
        proposals,
        events: events.clone(),
        started_ms: crate::time::now_ms(),
        price_table,
    });
    Ok(Some(LlmParts {
        queue,
        handles,
        rules,
    }))
}
