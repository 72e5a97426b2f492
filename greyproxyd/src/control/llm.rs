//! Handlers of the LLM layer's commands: calls, conversations, usage summaries, endpoint rules
//! and the rebuild. Store reads run on the blocking pool.

use std::sync::Arc;

use greyproxy_protocol::Event;
use greyproxy_protocol::command::{
    CreateEndpointRuleArgs, ListConversationsArgs, ListLlmCallsArgs, UpdateEndpointRuleArgs,
    UsageSummaryArgs,
};
use greyproxy_protocol::event::EndpointRuleDeleted;
use greyproxy_protocol::llm::LlmClient;
use serde_json::{Value, json};

use crate::dissect::proposals::Proposals;
use crate::dissect::queue::{DissectQueue, Msg};
use crate::dissect::rules::EndpointRules;
use crate::dissect::usage::{GroupBy, Summary, parse_since};
use crate::events::EventBus;
use crate::store::{CallQuery, ConversationFilter, Store};
use crate::time::{now_ms, parse_timestamp_ms};

/// Page size when none is asked for, and the largest one served.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What the LLM commands need.
#[derive(Debug)]
pub(crate) struct LlmHandles {
    /// Calls and conversations.
    pub(crate) store: Arc<Store>,
    /// The dissection task's inbox (rebuild).
    pub(crate) queue: Arc<DissectQueue>,
    /// Endpoint rules created over `/ws`.
    pub(crate) rules: Arc<EndpointRules>,
    /// Endpoint proposals.
    pub(crate) proposals: Arc<Proposals>,
    /// Events.
    pub(crate) events: Arc<EventBus>,
    /// Unix ms when the daemon started (`since: "start"`).
    pub(crate) started_ms: u64,
    /// Version of the price table in use.
    pub(crate) price_table: String,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("background task failed: {e}"))?
}

fn limit(l: Option<usize>) -> usize {
    l.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

impl LlmHandles {
    /// The layer's part of `status`.
    pub(crate) fn status(&self) -> greyproxy_protocol::LlmStatus {
        greyproxy_protocol::LlmStatus {
            price_table: self.price_table.clone(),
            queued: self.queue.queued(),
            dropped: self.queue.dropped(),
        }
    }

    /// `list_llm_calls`.
    pub(crate) async fn list_calls(&self, a: ListLlmCallsArgs) -> Result<Value, String> {
        let store = self.store.clone();
        blocking(move || {
            let q = CallQuery {
                conversation_id: a.conversation_id,
                container: a.container,
                before_id: a.before_id,
                limit: limit(a.limit),
            };
            let (calls, has_more) = store.list_llm_calls(&q).map_err(|e| e.to_string())?;
            Ok(json!({ "calls": calls, "has_more": has_more }))
        })
        .await
    }

    /// `list_conversations`.
    pub(crate) async fn list_conversations(
        &self,
        a: ListConversationsArgs,
    ) -> Result<Value, String> {
        let client = match a.client.as_deref() {
            Some(c) => Some(c.parse::<LlmClient>().map_err(|e| e.to_string())?),
            None => None,
        };
        let before = match a.before.as_deref() {
            Some(b) => Some(
                parse_timestamp_ms(b)
                    .ok_or_else(|| format!("invalid before {b:?}: use RFC 3339"))?,
            ),
            None => None,
        };
        let store = self.store.clone();
        blocking(move || {
            let f = ConversationFilter {
                container: a.container,
                client,
                model: a.model,
                parent: a.parent_id,
            };
            let page = store
                .list_conversations(&f, limit(a.limit), before)
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "conversations": page.items,
                "has_more": page.next_before.is_some(),
                "next_before": page.next_before.map(crate::time::rfc3339_ms),
            }))
        })
        .await
    }

    /// `get_conversation`.
    pub(crate) async fn get_conversation(&self, id: String) -> Result<Value, String> {
        let store = self.store.clone();
        blocking(move || {
            let c = store
                .get_conversation(&id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("conversation {id} not found"))?;
            serde_json::to_value(c).map_err(|e| e.to_string())
        })
        .await
    }

    /// `usage_summary`.
    pub(crate) async fn usage_summary(&self, a: UsageSummaryArgs) -> Result<Value, String> {
        let by = GroupBy::parse(a.group_by.as_deref())?;
        let now = now_ms();
        let since = match a.since.as_deref() {
            Some(s) => parse_since(s, now, self.started_ms)?,
            None => 0,
        };
        let until = match a.until.as_deref() {
            Some(u) => parse_since(u, now, self.started_ms)?,
            None => u64::MAX,
        };
        let store = self.store.clone();
        blocking(move || {
            let mut s = Summary::default();
            store
                .scan_llm_calls(since, until, |c| {
                    if a.container.as_ref().is_none_or(|w| *w == c.container_name) {
                        s.add(by, c);
                    }
                })
                .map_err(|e| e.to_string())?;
            let (rows, total) = s.finish();
            Ok(json!({
                "group_by": by.as_str(),
                "since": crate::time::rfc3339_ms(since),
                "until": (until != u64::MAX).then(|| crate::time::rfc3339_ms(until)),
                "rows": rows,
                "total": total,
            }))
        })
        .await
    }

    /// `list_endpoint_rules`.
    pub(crate) fn list_rules(&self) -> Value {
        json!({ "rules": self.rules.list(), "proposals": self.proposals.list() })
    }

    /// `create_endpoint_rule`: also drops the proposals it now covers.
    pub(crate) async fn create_rule(&self, a: CreateEndpointRuleArgs) -> Result<Value, String> {
        let rules = self.rules.clone();
        let r = blocking(move || rules.create(&a)).await?;
        let live = self.queue.live();
        self.proposals
            .retain(|p| live.load().llm.lookup(&p.host, &p.path, "POST").is_none());
        self.events.publish(Event::EndpointRuleCreated(r.clone()));
        serde_json::to_value(r).map_err(|e| e.to_string())
    }

    /// `update_endpoint_rule`.
    pub(crate) async fn update_rule(&self, a: UpdateEndpointRuleArgs) -> Result<Value, String> {
        let rules = self.rules.clone();
        let r = blocking(move || rules.update(&a)).await?;
        self.events.publish(Event::EndpointRuleUpdated(r.clone()));
        serde_json::to_value(r).map_err(|e| e.to_string())
    }

    /// `delete_endpoint_rule`.
    pub(crate) async fn delete_rule(&self, id: u64) -> Result<(), String> {
        let rules = self.rules.clone();
        blocking(move || rules.delete(id)).await?;
        self.events
            .publish(Event::EndpointRuleDeleted(EndpointRuleDeleted {
                rule_id: id,
            }));
        Ok(())
    }

    /// `rebuild_conversations`: answered when the task is done.
    pub(crate) async fn rebuild(&self) -> Result<Value, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .sender()
            .send(Msg::Rebuild(tx))
            .await
            .map_err(|_| "the dissection task is not running".to_string())?;
        let (transactions, calls) = rx
            .await
            .map_err(|_| "the dissection task stopped".to_string())??;
        Ok(json!({ "transactions": transactions, "calls": calls }))
    }
}
