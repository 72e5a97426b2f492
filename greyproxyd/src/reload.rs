//! SIGHUP: re-reads the config file and applies what can change without a restart — the MITM
//! bypass list, the extra redaction patterns and the hold timeout (unless pinned by the
//! command line). Open connections are untouched; new ones use the new settings. Rules live in
//! the store, not in the file, so there is nothing to reload for them. A file that does not
//! parse or validate leaves every setting as it was.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::capture::redact::Redactor;
use crate::config::{DEFAULT_HOLD_TIMEOUT, FileConfig};
use crate::mitm::intercept::MitmCtx;
use crate::policy::Policy;

/// What a reload may change, and where the settings come from.
#[derive(Debug)]
pub struct Reloader {
    /// The config file (`None`: started without one; a reload then changes nothing).
    pub(crate) file: Option<PathBuf>,
    /// The hold timeout was given on the command line, which wins over the file.
    pub(crate) hold_timeout_pinned: bool,
    /// Hold timeout.
    pub(crate) policy: Arc<Policy>,
    /// Bypass list and redaction.
    pub(crate) mitm: Arc<MitmCtx>,
}

impl Reloader {
    /// Re-reads the file and applies it; returns a one-line summary. On error nothing changes.
    pub(crate) fn reload(&self) -> anyhow::Result<String> {
        let Some(path) = &self.file else {
            return Ok("no config file: nothing to reload".into());
        };
        let file = FileConfig::load(path)?;
        let bypass = file
            .mitm
            .as_ref()
            .and_then(|m| m.bypass.clone())
            .unwrap_or_default();
        let extra = file
            .capture
            .as_ref()
            .and_then(|c| c.redact_headers.clone())
            .unwrap_or_default();
        let redactor = Redactor::new(&extra).context("invalid capture.redact_headers")?;
        let hold = (!self.hold_timeout_pinned)
            .then(|| Duration::from_secs(file.hold_timeout.unwrap_or(DEFAULT_HOLD_TIMEOUT)));
        // Everything is validated above; apply all at once.
        let summary = format!(
            "reloaded {}: {} bypass globs, {} extra redaction patterns{}",
            path.display(),
            bypass.len(),
            extra.len(),
            hold.map(|h| format!(", hold timeout {}s", h.as_secs()))
                .unwrap_or_default()
        );
        let llm_rules = file.llm_endpoint.clone().unwrap_or_default();
        crate::middleware::llm::validate(&llm_rules)
            .map_err(|e| anyhow::anyhow!("llm_endpoint: {e}"))?;
        self.mitm.set_bypass(bypass);
        self.mitm.capture.middlewares.set_llm_rules(llm_rules);
        self.mitm.capture.recorder.set_redactor(redactor);
        if let Some(h) = hold {
            self.policy.set_hold_timeout(h);
        }
        Ok(summary)
    }
}
