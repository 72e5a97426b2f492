//! The live tables a request is checked against: credentials by id, sessions by id, and the
//! placeholder index (placeholder → session and credential). Plain data; the owner (the
//! daemon's credentials service) swaps or edits it under its lock and persists each change.

use std::collections::{BTreeMap, HashMap};

use super::model::Credential;
use super::session::Session;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Minted {
    /// The session that minted it.
    pub(crate) session: String,
    /// The credential it stands for (which may have been deleted since).
    pub(crate) credential: String,
}

/// Credentials, sessions and the placeholder index, kept consistent by the methods here.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    credentials: BTreeMap<String, Credential>,
    sessions: BTreeMap<String, Session>,
    placeholders: HashMap<String, Minted>,
}

impl Tables {
    /// Tables over loaded rows.
    pub(crate) fn new(credentials: Vec<Credential>, sessions: Vec<Session>) -> Tables {
        let mut t = Tables::default();
        for c in credentials {
            t.put_credential(c);
        }
        for s in sessions {
            t.put_session(s);
        }
        t
    }

    /// Adds or replaces a credential (a rotation keeps its id, so placeholders stay valid).
    pub(crate) fn put_credential(&mut self, c: Credential) {
        self.credentials.insert(c.id.clone(), c);
    }

    /// Removes a credential; its placeholders stay indexed so that a request still carrying
    /// one is recognised as using a deleted credential.
    pub(crate) fn remove_credential(&mut self, id: &str) -> Option<Credential> {
        self.credentials.remove(id)
    }

    /// Adds or replaces a session and indexes its placeholders.
    pub(crate) fn put_session(&mut self, s: Session) {
        if let Some(old) = self.sessions.remove(&s.id) {
            self.unindex(&old);
        }
        for (credential, placeholder) in &s.placeholders {
            self.placeholders.insert(
                placeholder.clone(),
                Minted {
                    session: s.id.clone(),
                    credential: credential.clone(),
                },
            );
        }
        self.sessions.insert(s.id.clone(), s);
    }

    /// Removes a session and forgets its placeholders.
    pub(crate) fn remove_session(&mut self, id: &str) -> Option<Session> {
        let s = self.sessions.remove(id)?;
        self.unindex(&s);
        Some(s)
    }

    fn unindex(&mut self, s: &Session) {
        for placeholder in s.placeholders.values() {
            self.placeholders.remove(placeholder);
        }
    }

    /// The sessions expired at `now`, removed (for the sweeper to delete from the store and
    /// announce).
    pub(crate) fn sweep(&mut self, now: u64) -> Vec<Session> {
        let dead: Vec<String> = self
            .sessions
            .values()
            .filter(|s| !s.live(now))
            .map(|s| s.id.clone())
            .collect();
        dead.iter()
            .filter_map(|id| self.remove_session(id))
            .collect()
    }

    /// A credential by id.
    pub(crate) fn credential(&self, id: &str) -> Option<&Credential> {
        self.credentials.get(id)
    }

    /// A credential by label.
    pub(crate) fn credential_by_label(&self, label: &str) -> Option<&Credential> {
        self.credentials.values().find(|c| c.label == label)
    }

    /// A session by id.
    pub(crate) fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// What a placeholder stands for.
    pub(crate) fn minted(&self, placeholder: &str) -> Option<&Minted> {
        self.placeholders.get(placeholder)
    }

    /// All credentials, by id.
    pub(crate) fn credentials(&self) -> impl Iterator<Item = &Credential> {
        self.credentials.values()
    }

    /// All sessions, by id.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// True when some credential substitutes in bodies (only then are bodies scanned).
    pub(crate) fn any_body_places(&self) -> bool {
        self.credentials
            .values()
            .any(|c| c.places.json_body || c.places.form_body)
    }
}
