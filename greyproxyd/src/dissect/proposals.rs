//! Endpoint-rule proposals: an unknown host receiving what looks like a chat API call (a POST
//! with a JSON body that has a `model` and `messages`, `input` or `contents`) is proposed as an
//! endpoint rule — an event and an entry in `list_endpoint_rules` — and never turned into a rule
//! by itself (greyproxy created the rule silently: traffic wrote configuration). Proposals are
//! kept in the store's settings so they survive a restart; there are at most
//! [`MAX_PROPOSALS`].

use std::sync::{Arc, Mutex};

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::EndpointProposal;
use serde_json::Value;

use super::model::Decoder;
use crate::endpoints::url_path;
use crate::store::{Op, Store};
use crate::time::{now_secs, rfc3339};

/// Proposals kept at most (the oldest goes).
pub(crate) const MAX_PROPOSALS: usize = 64;
/// Settings key of the stored list.
const KEY: &str = "llm.endpoint_proposals";

/// The list, shared by the dissection task (adds) and the control plane (lists, removes).
#[derive(Debug)]
pub(crate) struct Proposals {
    store: Arc<Store>,
    list: Mutex<Vec<EndpointProposal>>,
}

impl Proposals {
    /// Loads the stored list.
    pub(crate) fn load(store: Arc<Store>) -> Proposals {
        let list = store
            .get_setting(KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Proposals {
            store,
            list: Mutex::new(list),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EndpointProposal>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The proposals, oldest first.
    pub(crate) fn list(&self) -> Vec<EndpointProposal> {
        self.lock().clone()
    }

    /// Drops the proposals a new rule now covers.
    pub(crate) fn retain(&self, keep: impl Fn(&EndpointProposal) -> bool) {
        let mut g = self.lock();
        let before = g.len();
        g.retain(|p| keep(p));
        if g.len() != before {
            self.save(&g);
        }
    }

    /// Looks at a probe row; returns the proposal when it is new (published once).
    pub(crate) fn observe(&self, t: &Transaction) -> Option<EndpointProposal> {
        let body = super::request_body(t)?;
        let decoder = guess_decoder(&body)?;
        let path = url_path(&t.url).to_owned();
        let host = t.destination_host.to_ascii_lowercase();
        let mut g = self.lock();
        if let Some(p) = g.iter_mut().find(|p| p.host == host && p.path == path) {
            p.seen += 1;
            return None;
        }
        let p = EndpointProposal {
            host,
            path,
            decoder: decoder.name().to_owned(),
            seen: 1,
            first_seen: rfc3339(now_secs()),
            example_transaction_id: t.id,
        };
        g.push(p.clone());
        if g.len() > MAX_PROPOSALS {
            g.remove(0);
        }
        self.save(&g);
        Some(p)
    }

    fn save(&self, list: &[EndpointProposal]) {
        if let Ok(bytes) = serde_json::to_vec(list)
            && let Err(e) = self.store.apply(&[Op::PutSetting(KEY.into(), bytes)])
        {
            tracing::warn!(error = %e, "cannot store endpoint proposals");
        }
    }
}

/// Which decoder would read a body, if it looks like an LLM call at all.
pub(crate) fn guess_decoder(body: &[u8]) -> Option<Decoder> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let model = v.get("model").and_then(Value::as_str).unwrap_or("");
    let non_empty = |k: &str| match v.get(k) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        _ => false,
    };
    if non_empty("contents") {
        return Some(Decoder::GoogleAi);
    }
    if model.is_empty() {
        return None;
    }
    if non_empty("messages") {
        // Anthropic's Messages API requires `max_tokens` and puts the system prompt apart.
        let anthropic = v.get("max_tokens").is_some()
            && (v.get("system").is_some() || v.get("anthropic_version").is_some());
        return Some(if anthropic {
            Decoder::Anthropic
        } else {
            Decoder::OpenAiChat
        });
    }
    non_empty("input").then_some(Decoder::OpenAiResponses)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guesses_only_chat_shaped_bodies() {
        let g = |s: &str| guess_decoder(s.as_bytes());
        assert_eq!(
            g(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
            Some(Decoder::OpenAiChat)
        );
        assert_eq!(
            g(
                r#"{"model":"m","max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}]}"#
            ),
            Some(Decoder::Anthropic)
        );
        assert_eq!(
            g(r#"{"model":"m","input":"hi"}"#),
            Some(Decoder::OpenAiResponses)
        );
        assert_eq!(g(r#"{"contents":[{"parts":[]}]}"#), Some(Decoder::GoogleAi));
        assert_eq!(g(r#"{"model":"","messages":[1]}"#), None);
        assert_eq!(g(r#"{"model":"m","messages":[]}"#), None);
        assert_eq!(g(r#"{"query":"x"}"#), None);
        assert_eq!(g("not json"), None);
    }

    #[test]
    fn proposes_once_counts_sightings_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let p = Proposals::load(store.clone());
        let t = Transaction {
            id: 5,
            destination_host: "LLM.internal".into(),
            url: "https://llm.internal/v1/chat/completions".into(),
            method: "POST".into(),
            request_body: Some(
                r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#.into(),
            ),
            ..Default::default()
        };
        let first = p.observe(&t).unwrap();
        assert_eq!(
            (first.host.as_str(), first.path.as_str()),
            ("llm.internal", "/v1/chat/completions")
        );
        assert_eq!(first.decoder, "openai-chat");
        assert!(p.observe(&t).is_none());
        let again = Proposals::load(store);
        assert_eq!(again.list()[0].example_transaction_id, 5);
        assert_eq!(p.list()[0].seen, 2);
        p.retain(|x| x.host != "llm.internal");
        assert!(p.list().is_empty());
    }
}
