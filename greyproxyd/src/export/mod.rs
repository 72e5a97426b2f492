//! Export past the one machine (docs/export.md): the OTLP exporter, which turns stored LLM
//! calls and transactions into OpenTelemetry spans and posts them as OTLP/HTTP protobuf to a
//! collector, and the HAR 1.2 pages of the control `export` command.
//!
//! - [`spans`]: LLM calls as GenAI CLIENT spans (one trace per conversation tree, a subagent's
//!   calls under the tool call that spawned it), transactions as HTTP client spans;
//! - [`client`]: the one-request-at-a-time HTTP/1.1 client (hyper, rustls, gzip);
//! - [`deliver`]: the loop that reads the store behind persisted cursors and retries;
//! - [`har`]: transactions as HAR entries.
//!
//! The exporter only reads the store, in its own task and on the blocking pool: the proxy never
//! waits for it, whatever the collector does.

pub(crate) mod client;
pub(crate) mod deliver;
pub(crate) mod har;
pub(crate) mod spans;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub(crate) use deliver::{Exporter, spawn};

/// `[export]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFileConfig {
    /// `[export.otlp]`: the OTLP exporter (off when absent).
    pub otlp: Option<OtlpFileConfig>,
}

/// `[export.otlp]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpFileConfig {
    /// Full URL of the traces endpoint (`http://127.0.0.1:4318/v1/traces`).
    pub endpoint: String,
    /// Extra request headers (`authorization = "Basic …"` for Langfuse).
    pub headers: Option<BTreeMap<String, String>>,
    /// Per-request timeout (humantime, default `10s`).
    pub timeout: Option<String>,
    /// Most spans per request (default 512).
    pub batch_size: Option<usize>,
    /// How often the store is read for new records (humantime, default `5s`).
    pub interval: Option<String>,
    /// Most records the exporter may fall behind before it skips the oldest (default 100 000).
    pub queue: Option<u64>,
    /// `llm_calls` (default), `transactions` or `both`.
    pub what: Option<String>,
    /// Add the stored message content to LLM spans (default false, as the conventions advise).
    pub include_content: Option<bool>,
}

/// What the exporter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// LLM calls as GenAI spans.
    LlmCalls,
    /// HTTP transactions as HTTP client spans.
    Transactions,
    /// Both.
    Both,
}

impl What {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            What::LlmCalls => "llm_calls",
            What::Transactions => "transactions",
            What::Both => "both",
        }
    }

    fn calls(self) -> bool {
        matches!(self, What::LlmCalls | What::Both)
    }

    fn transactions(self) -> bool {
        matches!(self, What::Transactions | What::Both)
    }
}

/// Resolved `[export.otlp]` settings.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's traces endpoint, parsed.
    pub endpoint: client::Endpoint,
    /// Extra headers, sent as given (never logged: they usually carry credentials).
    pub headers: client::Headers,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Most spans per request.
    pub batch_size: usize,
    /// Store polling interval.
    pub interval: Duration,
    /// Lag bound in records.
    pub queue: u64,
    /// What is exported.
    pub what: What,
    /// Whether stored content goes into LLM spans.
    pub include_content: bool,
}

impl OtlpSettings {
    /// From the `[export]` table; `None` when no exporter is configured. Errors name the key.
    pub fn from_file(f: Option<&ExportFileConfig>) -> anyhow::Result<Option<OtlpSettings>> {
        let Some(o) = f.and_then(|f| f.otlp.as_ref()) else {
            return Ok(None);
        };
        let endpoint = client::Endpoint::parse(&o.endpoint)
            .map_err(|e| anyhow::anyhow!("export.otlp.endpoint: {e}"))?;
        let span = |v: &Option<String>, key: &str, default: Duration| -> anyhow::Result<Duration> {
            match v {
                Some(s) => humantime::parse_duration(s)
                    .map_err(|e| anyhow::anyhow!("export.otlp.{key}: invalid duration {s:?}: {e}"))
                    .and_then(|d| {
                        if d.is_zero() {
                            anyhow::bail!("export.otlp.{key}: must be more than 0")
                        }
                        Ok(d)
                    }),
                None => Ok(default),
            }
        };
        let what = match o.what.as_deref().unwrap_or("llm_calls") {
            "llm_calls" => What::LlmCalls,
            "transactions" => What::Transactions,
            "both" => What::Both,
            other => anyhow::bail!(
                "export.otlp.what: {other:?} is not one of llm_calls, transactions, both"
            ),
        };
        let mut headers = Vec::new();
        for (k, v) in o.headers.iter().flatten() {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                anyhow::bail!("export.otlp.headers: {k:?} is not a valid header name and value");
            }
            headers.push((k.clone(), v.clone()));
        }
        let batch_size = o.batch_size.unwrap_or(512);
        if batch_size == 0 {
            anyhow::bail!("export.otlp.batch_size: must be at least 1");
        }
        Ok(Some(OtlpSettings {
            endpoint,
            headers: client::Headers(headers),
            timeout: span(&o.timeout, "timeout", Duration::from_secs(10))?,
            batch_size: batch_size.min(10_000),
            interval: span(&o.interval, "interval", Duration::from_secs(5))?,
            queue: o.queue.unwrap_or(100_000).max(1),
            what,
            include_content: o.include_content.unwrap_or(false),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> anyhow::Result<Option<OtlpSettings>> {
        let f: ExportFileConfig = toml::from_str(toml_text).unwrap();
        OtlpSettings::from_file(Some(&f))
    }

    #[test]
    fn settings_defaults_and_errors_name_the_key() {
        assert!(OtlpSettings::from_file(None).unwrap().is_none());
        let s = parse("[otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.what, What::LlmCalls);
        assert_eq!(s.batch_size, 512);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert!(!s.include_content);
        let e = parse("[otlp]\nendpoint = \"not a url\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("export.otlp.endpoint:"), "{e}");
        let e = parse("[otlp]\nendpoint = \"http://h/v1/traces\"\nwhat = \"spans\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("export.otlp.what"), "{e}");
        let e = parse("[otlp]\nendpoint = \"http://h/v1/traces\"\ninterval = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("export.otlp.interval"), "{e}");
        let e = parse("[otlp]\nendpoint = \"http://h/\"\nheaders = { \"a b\" = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("export.otlp.headers"), "{e}");
    }
}
