//! The binding decision: may this placeholder, found here in this request, be replaced by its
//! secret? A pure function of the live tables, the request and the time. Every "no" is a
//! secret-egress attempt with a reason from a closed set, which the exchange holds for a human
//! rather than forwarding silently.
//!
//! Checks, in order (the first failing one is the reason): the placeholder is known, its
//! session is alive, its credential still exists and has not expired, the request comes from
//! the session's container and one the credential allows, the method is not an echoing one,
//! the transport is TLS (or plain HTTP is allowed), the destination is bound, and the
//! credential is substituted in this place.

use super::scan::PlaceKind;
use super::table::Tables;

/// How the request reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTPS the proxy terminated (MITM).
    InterceptedTls,
    /// Plain HTTP.
    PlainHttp,
}

/// What the decision needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The destination host (as the policy saw it).
    pub(crate) host: &'a str,
    /// The destination port.
    pub(crate) port: u16,
    /// The request target's path (query allowed; ignored).
    pub(crate) path: &'a str,
    /// The request method.
    pub(crate) method: &'a str,
    /// The container (proxy user name) the request came from.
    pub(crate) container: &'a str,
    /// TLS-intercepted or plain.
    pub(crate) transport: Transport,
}

/// Why a placeholder is not substituted: a closed set, shown to the human deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EgressReason {
    /// No session minted it (or its session was deleted or swept).
    UnknownPlaceholder,
    /// Its session is past its TTL (not yet swept).
    SessionExpired,
    /// Its credential was deleted.
    DeletedCredential,
    /// Its credential is past its expiry.
    CredentialExpired,
    /// The request comes from another container than the session's, or one the credential
    /// does not allow.
    WrongContainer,
    /// TRACE or TRACK: the origin would echo the request, secret included.
    EchoMethod,
    /// Plain HTTP, and the credential does not allow it.
    PlaintextNotAllowed,
    /// The destination is not one the credential is bound to (the echo attack's shape).
    DestinationNotBound,
    /// Found in a place (e.g. a body) where the credential is not substituted.
    PlaceNotEnabled,
}

impl EgressReason {
    /// Stable snake_case name, for events and the pending request.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EgressReason::UnknownPlaceholder => "unknown_placeholder",
            EgressReason::SessionExpired => "session_expired",
            EgressReason::DeletedCredential => "deleted_credential",
            EgressReason::CredentialExpired => "credential_expired",
            EgressReason::WrongContainer => "wrong_container",
            EgressReason::EchoMethod => "echo_method",
            EgressReason::PlaintextNotAllowed => "plaintext_not_allowed",
            EgressReason::DestinationNotBound => "destination_not_bound",
            EgressReason::PlaceNotEnabled => "place_not_enabled",
        }
    }
}

/// The decision for one found placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// Replace it with the secret of `credential`, in `place`.
    Substitute {
        /// The credential id (the secret is looked up by it).
        credential: String,
        /// The session that minted the placeholder.
        session: String,
        /// Where it was found.
        place: PlaceKind,
    },
    /// Do not substitute: a secret-egress attempt.
    Egress {
        /// Why.
        reason: EgressReason,
        /// The credential's label, when the placeholder is known and the credential exists.
        label: Option<String>,
        /// The session, when the placeholder is known.
        session: Option<String>,
    },
}

/// Decides for `placeholder`, found in `place` of a request to `target`, at `now` (Unix s).
pub(crate) fn decide(
    tables: &Tables,
    placeholder: &str,
    place: PlaceKind,
    target: &Target<'_>,
    now: u64,
) -> Binding {
    let egress = |reason, label: Option<&str>, session: Option<&str>| Binding::Egress {
        reason,
        label: label.map(str::to_string),
        session: session.map(str::to_string),
    };
    let Some(minted) = tables.minted(placeholder) else {
        return egress(EgressReason::UnknownPlaceholder, None, None);
    };
    let sid = Some(minted.session.as_str());
    let Some(session) = tables.session(&minted.session) else {
        return egress(EgressReason::UnknownPlaceholder, None, None);
    };
    let Some(credential) = tables.credential(&minted.credential) else {
        return egress(EgressReason::DeletedCredential, None, sid);
    };
    let label = Some(credential.label.as_str());
    if !session.live(now) {
        return egress(EgressReason::SessionExpired, label, sid);
    }
    if credential.expired(now) {
        return egress(EgressReason::CredentialExpired, label, sid);
    }
    if session.container != target.container || !credential.allows_container(target.container) {
        return egress(EgressReason::WrongContainer, label, sid);
    }
    if target.method.eq_ignore_ascii_case("TRACE") || target.method.eq_ignore_ascii_case("TRACK") {
        return egress(EgressReason::EchoMethod, label, sid);
    }
    if target.transport == Transport::PlainHttp && !credential.allow_plaintext {
        return egress(EgressReason::PlaintextNotAllowed, label, sid);
    }
    if !credential.allows_destination(target.host, target.port, target.path, now) {
        return egress(EgressReason::DestinationNotBound, label, sid);
    }
    let p = credential.places;
    let enabled = match place {
        PlaceKind::Header => p.headers,
        PlaceKind::Query => p.query,
        PlaceKind::JsonBody => p.json_body,
        PlaceKind::FormBody => p.form_body,
    };
    if !enabled {
        return egress(EgressReason::PlaceNotEnabled, label, sid);
    }
    Binding::Substitute {
        credential: credential.id.clone(),
        session: session.id.clone(),
        place,
    }
}
