//! What to do with one request's placeholders: the service's answer to the exchange. Every
//! well-formed placeholder found is either substituted (its binding holds) or secret egress
//! (it does not, with the reason); malformed ones carry no secret and are left as they are.

use super::bind::{Binding, Target, decide};
use super::scan::{PlaceKind, Scan, Token};
use super::secret::Secret;
use super::service::Service;
use super::substitute::Pair;

/// Reason given to every placeholder while the vault cannot be used.
pub(crate) const UNAVAILABLE: &str = "credentials_unavailable";

/// One placeholder to replace.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    /// The placeholder text.
    pub(crate) placeholder: String,
    /// Its secret.
    pub(crate) secret: Secret,
    /// Where it may be replaced.
    pub(crate) place: PlaceKind,
    /// Credential id (for the counters).
    pub(crate) credential: String,
    /// Session id (for the counters).
    pub(crate) session: String,
}

/// One placeholder that may not be replaced here.
#[derive(Debug, Clone)]
pub(crate) struct Egress {
    /// The placeholder text.
    pub(crate) placeholder: String,
    /// Where it was found.
    pub(crate) place: PlaceKind,
    /// The header or parameter name.
    pub(crate) name: String,
    /// Why (snake_case).
    pub(crate) reason: &'static str,
    /// The credential's label, when it exists.
    pub(crate) label: Option<String>,
    /// The credential's id, when it exists.
    pub(crate) credential: Option<String>,
    /// The session, when known.
    pub(crate) session: Option<String>,
}

/// The plan for one request.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Placeholders to substitute.
    pub(crate) subs: Vec<Sub>,
    /// Placeholders held as secret egress.
    pub(crate) egress: Vec<Egress>,
}

impl Plan {
    /// The pairs to apply in `place`.
    pub(crate) fn pairs(&self, place: PlaceKind) -> Vec<Pair<'_>> {
        self.subs
            .iter()
            .filter(|s| s.place == place)
            .map(|s| (s.placeholder.as_str(), &s.secret))
            .collect()
    }
}

impl Service {
    /// Decides every placeholder `scan` found in a request to `target` at `now`.
    pub(crate) fn plan(&self, scan: &Scan, target: &Target<'_>, now: u64) -> Plan {
        let mut plan = Plan::default();
        let available = self.unavailable().is_none();
        let st = self.lock();
        for f in &scan.found {
            let Token::Placeholder { text, .. } = &f.token else {
                continue;
            };
            let minted = st.tables.minted(text);
            let credential = minted
                .and_then(|m| st.tables.credential(&m.credential))
                .map(|c| (c.id.clone(), c.label.clone()));
            let binding = if available {
                decide(&st.tables, text, f.place.kind, target, now)
            } else {
                Binding::Egress {
                    reason: super::bind::EgressReason::UnknownPlaceholder,
                    label: None,
                    session: None,
                }
            };
            match binding {
                Binding::Substitute {
                    credential,
                    session,
                    place,
                } => match st.secrets.get(&credential) {
                    Some(secret) => plan.subs.push(Sub {
                        placeholder: text.clone(),
                        secret: secret.clone(),
                        place,
                        credential,
                        session,
                    }),
                    None => plan.egress.push(Egress {
                        placeholder: text.clone(),
                        place: f.place.kind,
                        name: f.place.name.clone(),
                        reason: UNAVAILABLE,
                        label: None,
                        credential: None,
                        session: Some(session),
                    }),
                },
                Binding::Egress {
                    reason,
                    label,
                    session,
                } => plan.egress.push(Egress {
                    placeholder: text.clone(),
                    place: f.place.kind,
                    name: f.place.name.clone(),
                    reason: if available {
                        reason.as_str()
                    } else {
                        UNAVAILABLE
                    },
                    label: label.or_else(|| credential.as_ref().map(|c| c.1.clone())),
                    credential: credential.map(|c| c.0),
                    session: session.or_else(|| minted.map(|m| m.session.clone())),
                }),
            }
        }
        plan
    }

    /// A human said "send it once with the secret": the held placeholders whose credential
    /// still exists become substitutions, wherever they were found.
    pub(crate) fn force(&self, plan: &mut Plan) {
        let st = self.lock();
        let mut rest = Vec::new();
        for e in plan.egress.drain(..) {
            let secret = e.credential.as_ref().and_then(|c| st.secrets.get(c));
            match (secret, &e.credential) {
                (Some(secret), Some(credential)) => plan.subs.push(Sub {
                    placeholder: e.placeholder.clone(),
                    secret: secret.clone(),
                    place: e.place,
                    credential: credential.clone(),
                    session: e.session.clone().unwrap_or_default(),
                }),
                _ => rest.push(e),
            }
        }
        plan.egress = rest;
    }
}
