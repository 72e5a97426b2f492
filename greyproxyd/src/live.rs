//! The settings a config reload (SIGHUP) may change while the daemon runs — the MITM bypass
//! list, the header and URL redaction, the LLM endpoint rules, the hold timeout and the host
//! map — as one immutable [`Live`] snapshot in one [`LiveCell`].
//!
//! A reload builds a whole new snapshot (validating everything first) and swaps it in at once;
//! a reader takes the snapshot once (per hold, per tunnel, per exchange) and uses that one
//! throughout, so it never sees the new redaction with the old endpoint rules. A reload that
//! fails validation builds nothing and leaves the cell untouched.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::endpoints::{self, LlmRegistry, LlmRule};
use crate::http::redact::{RedactError, Redactor};
use crate::net::HostMap;

/// Why a set of settings cannot become a snapshot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LiveError {
    /// A `capture.redact_headers` pattern does not compile.
    #[error("invalid capture.redact_headers")]
    Redact(#[from] RedactError),
    /// An `[[llm_endpoint]]` table is incomplete.
    #[error("llm_endpoint: {0}")]
    Llm(#[from] crate::endpoints::EmptyKey),
}

/// One consistent set of the reloadable settings. Never changed in place: a reload replaces
/// the whole value in its [`LiveCell`].
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// Host globs tunnelled raw instead of intercepted (pinned clients).
    pub(crate) bypass: Vec<String>,
    /// Header and URL redaction of recorded exchanges.
    pub(crate) redactor: Redactor,
    /// The LLM endpoint registry (built-in rules plus the user's).
    pub(crate) llm: LlmRegistry,
    /// How long a connection is held waiting for a decision.
    pub(crate) hold_timeout: Duration,
    /// Names dialled at a fixed address instead of resolved (shared with the dial closures of
    /// the tunnels that took this snapshot).
    pub(crate) hosts: Arc<HostMap>,
}

impl Live {
    /// Builds a snapshot, validating every part first.
    pub(crate) fn new(
        bypass: Vec<String>,
        redact_extra: Vec<String>,
        llm_rules: Vec<LlmRule>,
        hold_timeout: Duration,
    ) -> Result<Live, LiveError> {
        let redactor = Redactor::new(&redact_extra)?;
        endpoints::validate(&llm_rules)?;
        Ok(Live {
            bypass,
            redactor,
            llm: LlmRegistry::new(llm_rules),
            hold_timeout,
            hosts: Arc::new(HostMap::new()),
        })
    }

    /// This snapshot with `hosts` as its host map (none by default).
    pub(crate) fn with_hosts(self, hosts: HostMap) -> Live {
        Live {
            hosts: Arc::new(hosts),
            ..self
        }
    }
}

/// The cell every reader shares: one lock around one pointer, held only to clone or replace
/// the pointer (never across an await or while the snapshot is used).
#[derive(Debug)]
pub(crate) struct LiveCell(RwLock<Arc<Live>>);

impl LiveCell {
    /// A cell holding `live`.
    pub(crate) fn new(live: Live) -> Arc<LiveCell> {
        Arc::new(LiveCell(RwLock::new(Arc::new(live))))
    }

    /// The snapshot in force now. Keep it for the whole unit of work it decides.
    pub(crate) fn load(&self) -> Arc<Live> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the snapshot; readers that already hold the old one keep it.
    pub(crate) fn store(&self, live: Live) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rule(host: &str) -> LlmRule {
        LlmRule {
            host: host.into(),
            path: "/v1/x".into(),
            method: "POST".into(),
            decoder: "openai-chat".into(),
            priority: 0,
            enabled: true,
        }
    }

    #[test]
    fn an_invalid_part_builds_no_snapshot() {
        let bad_redact = Live::new(vec![], vec!["a*b".into()], vec![], Duration::from_secs(1));
        assert!(matches!(bad_redact, Err(LiveError::Redact(_))));
        let mut empty_host = rule("");
        empty_host.host = " ".into();
        let bad_llm = Live::new(vec![], vec![], vec![empty_host], Duration::from_secs(1));
        assert!(matches!(bad_llm, Err(LiveError::Llm(m)) if m.to_string().contains("host")));
    }

    #[test]
    fn a_held_snapshot_survives_a_swap_whole() {
        let cell = LiveCell::new(
            Live::new(
                vec!["*.old.example".into()],
                vec![],
                vec![rule("old.example")],
                Duration::from_secs(5),
            )
            .unwrap(),
        );
        let before = cell.load();
        cell.store(
            Live::new(
                vec!["*.new.example".into()],
                vec!["x-new".into()],
                vec![rule("new.example")],
                Duration::from_secs(9),
            )
            .unwrap(),
        );
        let after = cell.load();
        assert_eq!(before.bypass, ["*.old.example"]);
        assert!(!before.redactor.is_sensitive("X-New"));
        assert!(before.llm.lookup("old.example", "/v1/x", "POST").is_some());
        assert_eq!(before.hold_timeout, Duration::from_secs(5));
        assert_eq!(after.bypass, ["*.new.example"]);
        assert!(after.redactor.is_sensitive("X-New"));
        assert!(after.llm.lookup("old.example", "/v1/x", "POST").is_none());
        assert!(after.llm.lookup("new.example", "/v1/x", "POST").is_some());
        assert_eq!(after.hold_timeout, Duration::from_secs(9));
    }
}
