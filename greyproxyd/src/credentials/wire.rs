//! Conversions from the module's records to the control protocol's reports
//! (`greyproxy_protocol::credentials`): never the secret, only its preview.

use std::collections::BTreeMap;

use greyproxy_protocol::credentials::{
    CredentialDestination, CredentialInfo, CredentialPlaces, FoundIn, SessionInfo,
};

use super::model::{Credential, Places};
use super::scan::PlaceKind;
use super::session::Session;
use crate::time::rfc3339;

/// Places, protocol to model.
pub(crate) fn places_from(p: CredentialPlaces) -> Places {
    Places {
        headers: p.headers,
        query: p.query,
        json_body: p.json_body,
        form_body: p.form_body,
    }
}

/// Places, model to protocol.
pub(crate) fn places_to(p: Places) -> CredentialPlaces {
    CredentialPlaces {
        headers: p.headers,
        query: p.query,
        json_body: p.json_body,
        form_body: p.form_body,
    }
}

/// Where a placeholder was found, for the pending request.
pub(crate) fn found_in(k: PlaceKind) -> FoundIn {
    match k {
        PlaceKind::Header => FoundIn::Header,
        PlaceKind::Query => FoundIn::Query,
        PlaceKind::JsonBody => FoundIn::JsonBody,
        PlaceKind::FormBody => FoundIn::FormBody,
    }
}

/// The report of a credential with its substitution total.
pub(crate) fn credential(c: &Credential, substitutions: u64) -> CredentialInfo {
    CredentialInfo {
        id: c.id.clone(),
        label: c.label.clone(),
        preview: c.preview.clone(),
        destinations: c
            .destinations
            .iter()
            .map(|d| CredentialDestination {
                pattern: d.pattern(),
                expires_at: d.expires_at.map(rfc3339),
            })
            .collect(),
        containers: c.containers.clone(),
        places: places_to(c.places),
        allow_plaintext: c.allow_plaintext,
        expires_at: c.expires_at.map(rfc3339),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        substitutions,
    }
}

/// The report of a session; `by_label` holds its credentials' labels with their counts.
pub(crate) fn session(s: &Session, by_label: &BTreeMap<String, u64>, now: u64) -> SessionInfo {
    SessionInfo {
        session_id: s.id.clone(),
        container: s.container.clone(),
        credentials: by_label.keys().cloned().collect(),
        ttl_seconds: s.ttl_secs,
        created_at: rfc3339(s.created_at),
        last_heartbeat: rfc3339(s.last_heartbeat),
        expires_at: rfc3339(s.expires_at()),
        remaining_seconds: s.expires_at().saturating_sub(now),
        allow_all: s.allow_all,
        substitutions: by_label.clone(),
    }
}
