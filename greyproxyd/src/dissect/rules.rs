//! Endpoint rules beyond the built-ins: those of the configuration file (`[[endpoint_rule]]`,
//! also spelled `[[llm_endpoint]]`, replaced on reload) and those created over `/ws` (stored in
//! the settings table, kept across restarts and reloads). Every change rebuilds the registry in
//! the live snapshot, which the recorder's queue and the middleware `llm` filter both read.
//!
//! Ids: built-ins 1–7, configured rules 50 + their position, `/ws` rules from 100 up; only the
//! last can be changed or deleted over `/ws`.

use std::sync::{Arc, Mutex};

use greyproxy_protocol::command::{CreateEndpointRuleArgs, UpdateEndpointRuleArgs};
use greyproxy_protocol::llm::EndpointRule;
use serde::{Deserialize, Serialize};

use super::model::Decoder;
use crate::endpoints::{self, LlmRegistry, LlmRule, builtin_rules};
use crate::live::LiveCell;
use crate::store::{Op, Store};

/// Settings key of the `/ws` rules.
const KEY: &str = "llm.endpoint_rules";
/// First id of a `/ws` rule.
const FIRST_WS_ID: u64 = 100;
/// `/ws` rules kept at most.
const MAX_WS_RULES: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    id: u64,
    rule: LlmRule,
}

#[derive(Debug, Default)]
struct Inner {
    config: Vec<LlmRule>,
    ws: Vec<Stored>,
}

/// The user's endpoint rules.
#[derive(Debug)]
pub(crate) struct EndpointRules {
    store: Arc<Store>,
    live: Arc<LiveCell>,
    inner: Mutex<Inner>,
}

impl EndpointRules {
    /// Loads the `/ws` rules and puts `config` + them in the live registry.
    pub(crate) fn load(
        store: Arc<Store>,
        live: Arc<LiveCell>,
        config: Vec<LlmRule>,
    ) -> EndpointRules {
        let ws: Vec<Stored> = store
            .get_setting(KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let r = EndpointRules {
            store,
            live,
            inner: Mutex::new(Inner { config, ws }),
        };
        r.apply(&r.lock());
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// On reload: the new configured rules, followed by the `/ws` ones, for the snapshot being
    /// built.
    pub(crate) fn merged(&self, config: Vec<LlmRule>) -> Vec<LlmRule> {
        let mut g = self.lock();
        g.config = config;
        g.config
            .iter()
            .cloned()
            .chain(g.ws.iter().map(|s| s.rule.clone()))
            .collect()
    }

    fn apply(&self, g: &Inner) {
        let rules: Vec<LlmRule> = g
            .config
            .iter()
            .cloned()
            .chain(g.ws.iter().map(|s| s.rule.clone()))
            .collect();
        let mut next = (*self.live.load()).clone();
        next.llm = LlmRegistry::new(rules);
        self.live.store(next);
    }

    fn save(&self, g: &Inner) -> Result<(), String> {
        let bytes = serde_json::to_vec(&g.ws).map_err(|e| e.to_string())?;
        self.store
            .apply(&[Op::PutSetting(KEY.into(), bytes)])
            .map_err(|e| format!("cannot store endpoint rules: {e}"))
    }

    /// Every rule, in matching-relevant listing order: built-ins, configured, `/ws`.
    pub(crate) fn list(&self) -> Vec<EndpointRule> {
        let g = self.lock();
        let wire = |id, r: &LlmRule, source: &str| EndpointRule {
            id,
            host: r.host.clone(),
            path: r.path.clone(),
            method: r.method.clone(),
            decoder: r.decoder.clone(),
            priority: r.priority,
            enabled: r.enabled,
            source: source.into(),
        };
        let mut out: Vec<EndpointRule> = builtin_rules()
            .iter()
            .enumerate()
            .map(|(i, r)| wire(i as u64 + 1, r, "builtin"))
            .collect();
        out.extend(
            g.config
                .iter()
                .enumerate()
                .map(|(i, r)| wire(50 + i as u64, r, "config")),
        );
        out.extend(g.ws.iter().map(|s| wire(s.id, &s.rule, "user")));
        out
    }

    /// Creates a `/ws` rule.
    pub(crate) fn create(&self, a: &CreateEndpointRuleArgs) -> Result<EndpointRule, String> {
        let rule = LlmRule {
            host: a.host.trim().to_owned(),
            path: a.path.trim().to_owned(),
            method: a.method.clone().unwrap_or_else(|| "POST".into()),
            decoder: a.decoder.clone(),
            priority: a.priority.unwrap_or(10),
            enabled: a.enabled.unwrap_or(true),
        };
        check(&rule)?;
        let mut g = self.lock();
        if g.ws.len() >= MAX_WS_RULES {
            return Err(format!("too many endpoint rules (at most {MAX_WS_RULES})"));
        }
        let id = g.ws.iter().map(|s| s.id + 1).max().unwrap_or(FIRST_WS_ID);
        g.ws.push(Stored { id, rule });
        if let Err(e) = self.save(&g) {
            g.ws.pop();
            return Err(e);
        }
        self.apply(&g);
        drop(g);
        self.get(id)
    }

    /// Changes a `/ws` rule.
    pub(crate) fn update(&self, a: &UpdateEndpointRuleArgs) -> Result<EndpointRule, String> {
        let mut g = self.lock();
        let Some(pos) = g.ws.iter().position(|s| s.id == a.rule_id) else {
            return Err(not_editable(a.rule_id));
        };
        let old = g.ws[pos].rule.clone();
        let mut r = old.clone();
        if let Some(v) = &a.host {
            r.host = v.trim().to_owned();
        }
        if let Some(v) = &a.path {
            r.path = v.trim().to_owned();
        }
        if let Some(v) = &a.method {
            r.method = v.clone();
        }
        if let Some(v) = &a.decoder {
            r.decoder = v.clone();
        }
        if let Some(v) = a.priority {
            r.priority = v;
        }
        if let Some(v) = a.enabled {
            r.enabled = v;
        }
        check(&r)?;
        g.ws[pos].rule = r;
        if let Err(e) = self.save(&g) {
            g.ws[pos].rule = old;
            return Err(e);
        }
        self.apply(&g);
        drop(g);
        self.get(a.rule_id)
    }

    /// Deletes a `/ws` rule.
    pub(crate) fn delete(&self, id: u64) -> Result<(), String> {
        let mut g = self.lock();
        let Some(pos) = g.ws.iter().position(|s| s.id == id) else {
            return Err(not_editable(id));
        };
        let removed = g.ws.remove(pos);
        if let Err(e) = self.save(&g) {
            g.ws.insert(pos, removed);
            return Err(e);
        }
        self.apply(&g);
        Ok(())
    }

    fn get(&self, id: u64) -> Result<EndpointRule, String> {
        self.list()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("endpoint rule {id} not found"))
    }
}

fn not_editable(id: u64) -> String {
    if id < FIRST_WS_ID {
        format!("endpoint rule {id} is built in or configured: change the configuration file")
    } else {
        format!("endpoint rule {id} not found")
    }
}

fn check(r: &LlmRule) -> Result<(), String> {
    endpoints::validate(std::slice::from_ref(r)).map_err(|e| e.to_string())?;
    if Decoder::from_name(&r.decoder).is_none() {
        return Err(format!(
            "unknown decoder {:?}: use anthropic, openai, openai-ws, openai-chat or google-ai",
            r.decoder
        ));
    }
    if !r.path.starts_with('/') && r.path != "*" {
        return Err(format!("path {:?} must start with /", r.path));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::live::Live;

    fn setup() -> (tempfile::TempDir, Arc<Store>, Arc<LiveCell>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let live =
            LiveCell::new(Live::new(vec![], vec![], vec![], Duration::from_secs(1)).unwrap());
        (dir, store, live)
    }

    fn create(host: &str) -> CreateEndpointRuleArgs {
        CreateEndpointRuleArgs {
            host: host.into(),
            path: "/v1/chat/completions".into(),
            decoder: "openai-chat".into(),
            ..Default::default()
        }
    }

    #[test]
    fn ws_rules_reach_the_registry_persist_and_survive_reloads() {
        let (_d, store, live) = setup();
        let rules = EndpointRules::load(store.clone(), live.clone(), vec![]);
        let r = rules.create(&create("llm.internal")).unwrap();
        assert_eq!((r.id, r.source.as_str(), r.priority), (100, "user", 10));
        assert_eq!(
            live.load()
                .llm
                .lookup("llm.internal", "/v1/chat/completions", "POST"),
            Some("openai-chat")
        );
        // A reload with other configured rules keeps the /ws rule.
        let cfg = LlmRule {
            host: "cfg.internal".into(),
            path: "/x".into(),
            method: "POST".into(),
            decoder: "anthropic".into(),
            priority: 0,
            enabled: true,
        };
        let merged = rules.merged(vec![cfg]);
        assert_eq!(merged.len(), 2);
        let ids: Vec<_> = rules
            .list()
            .iter()
            .map(|r| (r.id, r.source.clone()))
            .collect();
        assert_eq!(ids.len(), 9);
        assert_eq!(ids[7], (50, "config".to_string()));
        // Restart: loaded from the store.
        let again = EndpointRules::load(store, live.clone(), vec![]);
        assert_eq!(again.list().last().unwrap().host, "llm.internal");
        let u = again
            .update(&UpdateEndpointRuleArgs {
                rule_id: 100,
                enabled: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert!(!u.enabled);
        assert_eq!(
            live.load()
                .llm
                .lookup("llm.internal", "/v1/chat/completions", "POST"),
            None
        );
        again.delete(100).unwrap();
        assert!(again.delete(100).unwrap_err().contains("not found"));
    }

    #[test]
    fn bad_rules_and_builtins_are_refused() {
        let (_d, store, live) = setup();
        let rules = EndpointRules::load(store, live, vec![]);
        let mut bad = create("x");
        bad.decoder = "klingon".into();
        assert!(rules.create(&bad).unwrap_err().contains("unknown decoder"));
        assert!(rules.create(&create(" ")).unwrap_err().contains("host"));
        let mut rel = create("x");
        rel.path = "v1".into();
        assert!(
            rules
                .create(&rel)
                .unwrap_err()
                .contains("must start with /")
        );
        assert!(
            rules
                .delete(3)
                .unwrap_err()
                .contains("built in or configured")
        );
        assert_eq!(rules.list().len(), 7);
    }
}
