//! The one dissection task: takes queued rows in order, reads each LLM call with its dissector
//! (pairing WebSocket messages per upgrade connection), prices it, folds it into its
//! conversation, stores the call and publishes `llm_call.new` / `conversation.updated`. It runs
//! on its own thread: its work (JSON parsing, redb commits) never occupies the async workers
//! that forward traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greyproxy_protocol::Event;
use greyproxy_protocol::Transaction;
use greyproxy_protocol::event::MaintenanceProgress;
use greyproxy_protocol::llm::{LlmCall, SessionSource};
use lru::LruCache;
use tokio::sync::mpsc;

use super::assemble::{Assembler, CallInput};
use super::model::{Decoder, Dissected};
use super::price::PriceTable;
use super::proposals::Proposals;
use super::queue::{Job, Msg, RowKind, classify};
use super::recent::{LatestCall, RecentCalls};
use super::responses::WsConn;
use super::summary::preview;
use super::{anthropic, chat, client, gemini, responses};
use crate::events::EventBus;
use crate::live::LiveCell;
use crate::store::{IdKind, Store, StoreError};
use crate::time::{parse_timestamp_ms, rfc3339_ms};

/// WebSocket connections whose pairing state is kept (the least recently used goes first).
const WS_CONNS: usize = 1024;
/// Rows read per page by a rebuild.
const REBUILD_PAGE: usize = 256;

/// Retention of calls and conversations (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LlmRetention {
    /// Most calls kept.
    pub(crate) max_calls: u64,
    /// Calls and conversations older than this many ms go.
    pub(crate) max_age_ms: u64,
    /// Most conversations kept.
    pub(crate) max_conversations: u64,
}

impl Default for LlmRetention {
    fn default() -> Self {
        LlmRetention {
            max_calls: 200_000,
            max_age_ms: 90 * 24 * 3_600_000,
            max_conversations: 20_000,
        }
    }
}

/// Everything the task needs.
pub(crate) struct DissectTask {
    store: Arc<Store>,
    events: Arc<EventBus>,
    recent: Arc<RecentCalls>,
    live: Arc<LiveCell>,
    prices: Arc<PriceTable>,
    assembler: Assembler,
    ws: LruCache<u64, WsConn>,
    proposals: Arc<Proposals>,
    queued_bytes: Arc<AtomicU64>,
    retention: LlmRetention,
    calls_since_prune: u64,
    /// Calls recorded since start.
    recorded: u64,
    /// Publish events (off during a rebuild).
    publish: bool,
}

/// One call ready to be recorded: the dissected model plus where it came from.
struct Found<'a> {
    d: &'a Dissected,
    tx: &'a Transaction,
    started_ms: u64,
    duration_ms: Option<u64>,
    ttft_ms: Option<u64>,
    request_row: u64,
    response_rows: Vec<u64>,
}

impl DissectTask {
    /// A task over these handles.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<Store>,
        events: Arc<EventBus>,
        recent: Arc<RecentCalls>,
        live: Arc<LiveCell>,
        prices: Arc<PriceTable>,
        proposals: Arc<Proposals>,
        queued_bytes: Arc<AtomicU64>,
        retention: LlmRetention,
    ) -> DissectTask {
        let assembler = Assembler::new(store.clone());
        DissectTask {
            store,
            events,
            recent,
            live,
            prices,
            assembler,
            ws: LruCache::new(
                std::num::NonZeroUsize::new(WS_CONNS).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
            proposals,
            queued_bytes,
            retention,
            calls_since_prune: 0,
            recorded: 0,
            publish: true,
        }
    }

    /// Commit each call's conversation changes with an fsync (the default) or not, as a
    /// rebuild does; the call row itself is always committed durably.
    pub(crate) fn set_durable(&mut self, durable: bool) {
        self.assembler.set_durable(durable);
    }

    /// Calls recorded since the task was made.
    pub(crate) fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Runs until every sender is gone, on a thread of its own.
    pub(crate) fn spawn(
        self,
        rx: mpsc::Receiver<Msg>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("greyproxyd-dissect".into())
            .spawn(move || {
                lowest_priority();
                self.run(rx)
            })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Row(job) => {
                    self.queued_bytes.fetch_sub(job.weight, Ordering::Relaxed);
                    let container = job.tx.container_name.clone();
                    // A bug in a dissector must cost that row only, not the layer: the thread
                    // goes on with the next row (the dissectors hold no state across rows but
                    // the WebSocket pairing, which a lost row only cuts short).
                    let latest =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.row(&job)))
                            .unwrap_or_else(|_| {
                                tracing::error!(
                                    transaction = job.tx.id,
                                    "dissecting a recorded row panicked; the row is skipped"
                                );
                                None
                            });
                    self.recent.done(&container, latest);
                }
                Msg::Rebuild(reply) => {
                    let r = self.rebuild().map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Msg::CatchUp(after) => match self.catch_up(after) {
                    Ok((rows, calls)) => tracing::info!(
                        after,
                        rows,
                        calls,
                        "LLM layer caught up with the stored transactions"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot catch up with the stored transactions")
                    }
                },
            }
        }
    }

    /// Handles one row; returns the call's "latest" facts when it completed one.
    pub(crate) fn row(&mut self, job: &Job) -> Option<LatestCall> {
        let t = &job.tx;
        match job.kind {
            RowKind::Http(decoder) => self.record_http(job, &dissect_http(decoder, t)),
            RowKind::WsMessage(_) => {
                let upgrade = t.upgrade_id?;
                let payload = super::request_body(t)?;
                let conn = self.ws.get_or_insert_mut(upgrade, WsConn::new);
                let call = if t.method == "WS_REQ" {
                    conn.on_request(t.id, job.at_ms, &payload)
                } else {
                    conn.on_response(t.id, job.at_ms, &payload)
                };
                self.ws_call(call, t)
            }
            RowKind::WsClosed => {
                let call = self.ws.pop(&t.id).and_then(|mut c| c.on_close(job.at_ms));
                self.ws_call(call, t)
            }
            RowKind::Probe => {
                if let Some(p) = self.proposals.observe(t)
                    && self.publish
                {
                    self.events.publish(Event::EndpointRuleProposed(p));
                }
                None
            }
        }
    }

    /// Records an HTTP call its dissector has read from `job`'s row: everything the task does
    /// after the dissection (the benchmark times the two parts apart).
    pub(crate) fn record_http(&mut self, job: &Job, d: &Dissected) -> Option<LatestCall> {
        let t = &job.tx;
        let started_ms = parse_timestamp_ms(&t.timestamp)
            .map(|s| s.max(job.at_ms.saturating_sub(t.duration_ms.unwrap_or(0))))
            .unwrap_or(job.at_ms);
        let ttft_ms = d.response.first_content_end.and_then(|end| {
            t.response_timeline
                .iter()
                .find(|[off, _]| *off >= end as u64)
                .map(|[_, ms]| *ms)
        });
        self.record(Found {
            duration_ms: t.duration_ms,
            ttft_ms,
            started_ms,
            request_row: t.id,
            response_rows: Vec::new(),
            tx: t,
            d,
        })
    }

    fn ws_call(&mut self, call: Option<responses::WsCall>, t: &Transaction) -> Option<LatestCall> {
        let c = call?;
        self.record(Found {
            started_ms: c.started_ms,
            duration_ms: Some(c.ended_ms.saturating_sub(c.started_ms)),
            ttft_ms: c.first_content_ms.map(|f| f.saturating_sub(c.started_ms)),
            request_row: c.request_row,
            response_rows: c.response_rows,
            tx: t,
            d: &c.dissected,
        })
    }

    /// Prices, assembles, stores and publishes one call.
    fn record(&mut self, f: Found<'_>) -> Option<LatestCall> {
        let t = f.tx;
        let d = f.d;
        let headers = t.request_headers.as_ref();
        let client = client::detect_client(headers, d);
        let session = client::wire_session(headers, d);
        let thread = client::classify_thread(client, d);
        let model = d.response.model.clone().or_else(|| d.request.model.clone());
        let cost = self.prices.cost(
            &d.provider,
            model.as_deref().unwrap_or(""),
            d.response.usage.as_ref(),
            d.response.provider_cost_usd,
        );
        let context_window = model
            .as_deref()
            .and_then(|m| self.prices.context_window(&d.provider, m));
        let error = call_error(t, d);
        let id = self.store.next_id(IdKind::LlmCall);
        let input = CallInput {
            call_id: id,
            transaction_id: f.request_row,
            timestamp_ms: f.started_ms,
            container: &t.container_name,
            client,
            thread,
            session_id: session.as_deref(),
            session_source: SessionSource::Wire,
            provider: &d.provider,
            model: model.as_deref(),
            usage: d.response.usage,
            cost: &cost,
            duration_ms: f.duration_ms,
            context_window,
            error: error.as_deref(),
            dissected: d,
        };
        let assembled = match self.assembler.on_call(&input) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot assemble an LLM call; recorded without its conversation");
                Default::default()
            }
        };
        let session_source = assembled
            .summary
            .as_ref()
            .map_or(SessionSource::Wire, |s| s.session_source);
        let call = LlmCall {
            id,
            transaction_id: f.request_row,
            response_transaction_ids: f.response_rows,
            upgrade_id: t.upgrade_id,
            timestamp: rfc3339_ms(f.started_ms),
            container_name: t.container_name.clone(),
            client,
            provider: d.provider.clone(),
            operation: d.operation.to_owned(),
            decoder: d.decoder.name().to_owned(),
            host: t.destination_host.clone(),
            model_requested: d.request.model.clone(),
            model_answered: d.response.model.clone(),
            response_id: d.response.id.clone(),
            session_id: assembled
                .summary
                .as_ref()
                .map(|s| s.session_id.clone())
                .or(session),
            session_source,
            thread,
            conversation_id: assembled.conversation_id.clone(),
            turn: assembled.turn,
            stream: d.response.streamed || d.request.stream,
            stop_reason: d.response.stop_reason.clone(),
            status_code: if t.upgrade_id.is_some() {
                None
            } else {
                t.status_code
            },
            duration_ms: f.duration_ms,
            ttft_ms: f.ttft_ms,
            tool_calls: d
                .response
                .tool_calls
                .iter()
                .map(|u| u.info.clone())
                .collect(),
            last_text: last_line(&d.response.text),
            error,
            usage: d.response.usage,
            usage_raw: d.response.usage_raw.clone(),
            cost,
        };
        if let Err(e) = self.store.put_llm_calls(std::slice::from_ref(&call)) {
            tracing::warn!(error = %e, "cannot store an LLM call");
        }
        self.calls_since_prune += 1;
        self.recorded += 1;
        if self.calls_since_prune >= 1000 {
            self.prune();
        }
        let latest = call
            .conversation_id
            .clone()
            .map(|conversation_id| LatestCall {
                ended_secs: (f.started_ms + f.duration_ms.unwrap_or(0)) / 1000,
                conversation_id,
                turn: call.turn.unwrap_or(0),
                call_id: id,
                tool_calls: call.tool_calls.clone(),
                last_text: call.last_text.clone(),
            });
        if self.publish {
            self.events.publish(Event::LlmCallNew(call));
            for s in [
                assembled.changed_parent,
                assembled.changed_child,
                assembled.summary,
            ]
            .into_iter()
            .flatten()
            {
                self.events.publish(Event::ConversationUpdated(s.into()));
            }
        }
        latest
    }

    fn prune(&mut self) {
        self.calls_since_prune = 0;
        let r = self.retention;
        let cutoff = if r.max_age_ms > 0 {
            crate::time::now_ms().saturating_sub(r.max_age_ms)
        } else {
            0
        };
        if let Err(e) = self.store.prune_llm_calls(r.max_calls, cutoff) {
            tracing::warn!(error = %e, "cannot prune LLM calls");
        }
        match self.store.prune_conversations(cutoff, r.max_conversations) {
            // A cached open conversation that was pruned must not be written back.
            Ok(n) if n > 0 => self.assembler.reset(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune conversations"),
        }
    }

    /// Forgets every call and conversation and reads every stored transaction again, with the
    /// current registry and prices.
    fn rebuild(&mut self) -> Result<(u64, u64), StoreError> {
        self.store.clear_llm_calls()?;
        self.store.clear_conversations()?;
        self.assembler.reset();
        self.ws.clear();
        self.catch_up(0)
    }

    /// Reads the stored transactions after `after` (those recorded while the layer was off,
    /// by a build without it, or not dissected before a crash) as if they were arriving now,
    /// without events; `maintenance.progress` reports each page. Returns the transactions read
    /// and the calls recorded.
    fn catch_up(&mut self, after: u64) -> Result<(u64, u64), StoreError> {
        let total = self.store.count_transactions_after(after)?;
        self.assembler.set_durable(false);
        self.publish = false;
        let registry = self.live.load();
        let first_call = self.recorded;
        let (mut done, mut after) = (0u64, after);
        let progress = |done, calls, finished| {
            Event::MaintenanceProgress(MaintenanceProgress {
                job: "rebuild_conversations".into(),
                done,
                total,
                calls,
                finished,
            })
        };
        let result = loop {
            let page = match self.store.transaction_heads_after(after, REBUILD_PAGE) {
                Ok(p) => p,
                Err(e) => break Err(e),
            };
            let Some(last) = page.last() else {
                break Ok(());
            };
            after = last.id;
            for head in page {
                done += 1;
                let Some(kind) = classify(&registry.llm, &head) else {
                    continue;
                };
                let Ok(Some(tx)) = self.store.get_transaction(head.id) else {
                    continue;
                };
                // When it ended: the stored start plus the duration (WebSocket messages: when
                // they passed, to the second).
                let at_ms = parse_timestamp_ms(&tx.timestamp).unwrap_or(0)
                    + if tx.upgrade_id.is_none() {
                        tx.duration_ms.unwrap_or(0)
                    } else {
                        0
                    };
                let job = Job {
                    tx,
                    kind,
                    at_ms,
                    weight: 0,
                };
                self.row(&job);
            }
            self.events
                .publish(progress(done, self.recorded - first_call, false));
        };
        self.publish = true;
        self.assembler.set_durable(true);
        if let Err(e) = self.store.set_llm_cursor(after) {
            tracing::warn!(error = %e, "cannot record where dissection stands");
        }
        let calls = self.recorded - first_call;
        self.events.publish(progress(done, calls, true));
        result.map(|()| (done, calls))
    }
}

/// Puts the calling thread at the lowest CPU priority (nice 19): when every core is busy,
/// forwarding comes first and dissection takes what is left — its queue is bounded and drops,
/// the forwarder never waits (docs/bench-log/llm.md: at nice 0 the dissection thread took a
/// quarter of the daemon's CPU from the forwarding on 2 saturated cores). On Linux the nice
/// value is per thread and `setpriority(PRIO_PROCESS, 0)` sets the calling thread's.
fn lowest_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        tracing::debug!(error = %e, "cannot lower the dissection thread's priority");
    }
}

/// Reads one HTTP call with its decoder.
pub(crate) fn dissect_http(decoder: Decoder, t: &Transaction) -> Dissected {
    match decoder {
        Decoder::Anthropic => anthropic::dissect(t),
        Decoder::OpenAiResponses | Decoder::OpenAiWs => responses::dissect(t),
        Decoder::OpenAiChat => chat::dissect(t),
        Decoder::GoogleAi => gemini::dissect(t),
    }
}

/// The call's error: what the dissector could not read, else a failed HTTP status.
fn call_error(t: &Transaction, d: &Dissected) -> Option<String> {
    d.response
        .error
        .clone()
        .or_else(|| d.request.error.clone())
        .or_else(|| {
            t.status_code
                .filter(|s| *s >= 400 && t.upgrade_id.is_none())
                .map(|s| format!("HTTP {s}"))
        })
        .or_else(|| t.error.clone())
}

/// The last non-empty line of the assistant's text, cut at 200 characters.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| preview(l, 200))
}
