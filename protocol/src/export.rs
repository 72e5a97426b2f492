//! Wire types of the export paths (docs/export.md): the OTLP exporter's state in `status`
//! ([`ExportStatus`]) and the `export` command, which streams recorded transactions as HAR 1.2
//! entries in pages ([`ExportArgs`], [`ExportPage`]).

use serde::{Deserialize, Serialize};

use crate::names::wire_names;

wire_names! {
    /// How the OTLP exporter stands.
    pub enum ExportState ("export state") {
        /// Nothing to send, or the last request was accepted.
        Ok = "ok",
        /// The collector is unreachable or answered a retryable status (429, 502, 503, 504):
        /// the same batch is sent again after a backoff, nothing is skipped.
        Retrying = "retrying",
        /// The collector refuses the requests (another 4xx or 5xx): retried slowly, the
        /// configuration probably needs a look (`last_error` says why).
        Failing = "failing",
    }
}

/// The OTLP exporter in `status` (only when `[export.otlp]` is configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    /// The collector URL, without credentials or query.
    pub endpoint: String,
    /// `llm_calls`, `transactions` or `both`.
    pub what: String,
    /// Ok, retrying or failing.
    pub state: ExportState,
    /// Stored records (calls and transactions) not exported yet.
    pub lag: u64,
    /// Spans the collector accepted since the daemon started.
    pub exported_spans: u64,
    /// Requests sent again after a failure, since start.
    pub retries: u64,
    /// Records skipped because the exporter fell more than `queue` records behind, since
    /// start (the store's own retention may also drop records before they are exported).
    #[serde(default)]
    pub skipped: u64,
    /// The last failure, when the latest request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a request was last accepted, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
}

/// Arguments of `export`: recorded transactions as HAR 1.2 entries, newest first, one page per
/// command; ask again with `before_id` set to the page's `next_before_id` until it is absent.
/// Filters combine (AND); none given exports everything stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExportArgs {
    /// Only `har` today.
    #[serde(default = "har")]
    pub format: String,
    /// Container name (case-insensitive substring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Host or URL (case-insensitive substring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Unix seconds, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Unix seconds, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Only the transactions of this conversation's LLM calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Only transactions with an id below this (paging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<u64>,
    /// Entries per page (default 100, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

fn har() -> String {
    "har".into()
}

/// One page of `export`: HAR 1.2 `entries` (objects as the HAR spec writes them, WebSocket
/// messages of an upgrade entry under `_webSocketMessages`), newest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExportPage {
    /// HAR entries.
    pub entries: Vec<serde_json::Value>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_id: Option<u64>,
}
