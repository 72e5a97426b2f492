//! What a credential is (label, sealed secret, where it may go, from which containers, where in
//! a request it is substituted, expiry) and how its parts are validated. Sessions and
//! placeholders live in [`super::session`].
//!
//! Records are serde JSON in the store, as every record is; the secret is in them only as the
//! vault's ciphertext ([`Credential::sealed`], base64).

use serde::{Deserialize, Serialize};

use crate::glob::Dialect;

/// Longest label, in characters.
pub(crate) const MAX_LABEL: usize = 128;

/// Most destinations or container patterns on one credential.
pub(crate) const MAX_PATTERNS: usize = 64;

/// Longest destination or container pattern, in bytes.
pub(crate) const MAX_PATTERN_LEN: usize = 512;

/// Why a credential's description is refused; shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ModelError {
    /// The label is not an environment-variable-like name.
    #[error(
        "label {0:?} is not valid: use letters, digits and '_' (not first a digit), at most \
         {MAX_LABEL} characters, e.g. OPENAI_API_KEY"
    )]
    Label(String),
    /// No destination: a credential must name where it may go.
    #[error("a credential needs at least one destination (host[:port][/path-prefix])")]
    NoDestination,
    /// A destination could not be read.
    #[error("destination {pattern:?} is not valid: {why}")]
    Destination {
        /// What was given.
        pattern: String,
        /// Why it is refused.
        why: String,
    },
    /// No container pattern.
    #[error("a credential needs at least one container pattern ('*' for any container)")]
    NoContainer,
    /// A container pattern is malformed.
    #[error("container pattern {pattern:?} is not valid: {why}")]
    Container {
        /// What was given.
        pattern: String,
        /// Why it is refused.
        why: String,
    },
    /// Too many destinations or containers.
    #[error("at most {MAX_PATTERNS} destinations and {MAX_PATTERNS} container patterns")]
    TooMany,
    /// Nowhere to substitute.
    #[error("a credential must be substituted somewhere (headers, query or a body kind)")]
    NoPlace,
}

/// Checks a label: `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_LABEL`] characters (it becomes an
/// environment variable name in a launcher's `export LABEL=<placeholder>`).
pub(crate) fn check_label(label: &str) -> Result<(), ModelError> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with(|c: char| c.is_ascii_digit())
        && label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModelError::Label(label.chars().take(MAX_LABEL).collect()))
    }
}

/// Where a credential may be sent: a host glob ([`Dialect::DESTINATION`]: `api.openai.com`,
/// `*.openai.com`, `**.openai.com`), an optional port, an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Destination {
    /// Lower-case host pattern.
    pub(crate) host: String,
    /// Only this port, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    /// Only paths under this prefix (starting with `/`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path_prefix: Option<String>,
    /// Unix seconds after which it no longer applies: a timed binding a human made from a
    /// held request (`decide_credential` with `bind` and a duration); `None` is permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
}

impl Destination {
    /// Reads `host[:port][/path-prefix]` (no scheme). A bare `*` is refused: a secret bound
    /// to every host is not bound at all.
    pub(crate) fn parse(text: &str) -> Result<Destination, ModelError> {
        let bad = |why: &str| ModelError::Destination {
            pattern: text.chars().take(MAX_PATTERN_LEN).collect(),
            why: why.to_string(),
        };
        if text.len() > MAX_PATTERN_LEN {
            return Err(bad("too long"));
        }
        if text.contains("://") {
            return Err(bad("give host[:port][/path], without a scheme"));
        }
        let (hostport, path) = match text.find('/') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => {
                let port: u16 = p.parse().map_err(|_| bad("the port is not a number"))?;
                if port == 0 {
                    return Err(bad("port 0"));
                }
                (h, Some(port))
            }
            None => (hostport, None),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host == "*" || host == "**" {
            return Err(bad(
                "'*' would send the secret to every host; name its hosts",
            ));
        }
        if !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'*' | b'_'))
        {
            return Err(bad("the host has characters a host name cannot have"));
        }
        if host.contains('*') && !(host.starts_with("*.") || host.starts_with("**.")) {
            return Err(bad(
                "a wildcard is only allowed as '*.domain' or '**.domain'",
            ));
        }
        Dialect::DESTINATION
            .check(&host)
            .map_err(|e| bad(&e.to_string()))?;
        if host
            .trim_start_matches('*')
            .trim_start_matches('.')
            .contains('*')
        {
            return Err(bad(
                "a wildcard is only allowed as '*.domain' or '**.domain'",
            ));
        }
        let path_prefix = match path {
            None | Some("/") => None,
            Some(p) => {
                if p.bytes()
                    .any(|c| !c.is_ascii_graphic() || c == b'?' || c == b'#')
                {
                    return Err(bad("the path has blanks, '?' or '#'"));
                }
                if has_dot_segment(p) {
                    return Err(bad("the path has '.' or '..' segments"));
                }
                Some(p.to_string())
            }
        };
        Ok(Destination {
            host,
            port,
            path_prefix,
            expires_at: None,
        })
    }

    /// The `host[:port][/path-prefix]` text it was read from (normalised).
    pub(crate) fn pattern(&self) -> String {
        let mut s = self.host.clone();
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        if let Some(prefix) = &self.path_prefix {
            s.push_str(prefix);
        }
        s
    }

    /// True when a request to `host`:`port` with `path` (origin-form, query allowed) is one this
    /// destination names. A path with dot segments never matches a path prefix (the origin
    /// would resolve `/v1/../admin` outside it).
    pub(crate) fn matches(&self, host: &str, port: u16, path: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !Dialect::DESTINATION.matches(&self.host, &host) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let Some(prefix) = &self.path_prefix else {
            return true;
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        if has_dot_segment(path) {
            return false;
        }
        match path.strip_prefix(prefix.as_str()) {
            None => false,
            // `/v1` covers `/v1` and `/v1/...`, not `/v1beta`.
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

/// A `.` or `..` segment, literally or percent-encoded (`%2e`).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

/// Where in a request a credential's placeholder is replaced by its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Places {
    /// Header values.
    pub(crate) headers: bool,
    /// URL query parameter values.
    pub(crate) query: bool,
    /// JSON request bodies (within the body cap).
    pub(crate) json_body: bool,
    /// `application/x-www-form-urlencoded` bodies (within the body cap).
    pub(crate) form_body: bool,
}

impl Default for Places {
    /// Headers and query, as greyproxy; bodies are opt-in.
    fn default() -> Places {
        Places {
            headers: true,
            query: true,
            json_body: false,
            form_body: false,
        }
    }
}

/// A credential as stored and held in memory (the secret sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credential {
    /// Stable id (`cr-` + 16 hex); the vault binds the ciphertext to it.
    pub(crate) id: String,
    /// Unique name, e.g. `OPENAI_API_KEY`.
    pub(crate) label: String,
    /// The vault's `nonce ‖ ciphertext ‖ tag`, base64 in JSON.
    #[serde(with = "b64")]
    pub(crate) sealed: Vec<u8>,
    /// What lists show instead of the secret (`sk-p…(51 chars)`).
    pub(crate) preview: String,
    /// Where it may be sent; never empty.
    pub(crate) destinations: Vec<Destination>,
    /// Container globs ([`Dialect::CONTAINER`]) it may be used from; `*` for any.
    pub(crate) containers: Vec<String>,
    /// Where it is substituted.
    #[serde(default)]
    pub(crate) places: Places,
    /// Plain HTTP allowed (otherwise only TLS-intercepted requests).
    #[serde(default)]
    pub(crate) allow_plaintext: bool,
    /// Unix seconds after which it is no longer substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    /// Unix seconds.
    pub(crate) created_at: u64,
    /// Unix seconds of the last change (a rotation included).
    pub(crate) updated_at: u64,
}

impl Credential {
    /// Checks everything but the secret (checked when it is wrapped in a
    /// [`super::secret::Secret`]).
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        check_label(&self.label)?;
        if self.destinations.is_empty() {
            return Err(ModelError::NoDestination);
        }
        if self.destinations.len() > MAX_PATTERNS || self.containers.len() > MAX_PATTERNS {
            return Err(ModelError::TooMany);
        }
        if self.containers.is_empty() {
            return Err(ModelError::NoContainer);
        }
        for c in &self.containers {
            check_container(c)?;
        }
        let p = self.places;
        if !(p.headers || p.query || p.json_body || p.form_body) {
            return Err(ModelError::NoPlace);
        }
        Ok(())
    }

    /// True when `container` may use this credential.
    pub(crate) fn allows_container(&self, container: &str) -> bool {
        self.containers
            .iter()
            .any(|p| Dialect::CONTAINER.matches(p, container))
    }

    /// True when a request to this destination may carry the secret at `now` (Unix seconds;
    /// a timed binding past its end no longer counts).
    pub(crate) fn allows_destination(&self, host: &str, port: u16, path: &str, now: u64) -> bool {
        self.destinations
            .iter()
            .any(|d| d.expires_at.is_none_or(|t| now < t) && d.matches(host, port, path))
    }

    /// Expired at `now` (Unix seconds).
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// Checks a container glob.
pub(crate) fn check_container(pattern: &str) -> Result<(), ModelError> {
    let bad = |why: String| ModelError::Container {
        pattern: pattern.chars().take(MAX_PATTERN_LEN).collect(),
        why,
    };
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return Err(bad("empty or too long".into()));
    }
    Dialect::CONTAINER
        .check(pattern)
        .map_err(|e| bad(e.to_string()))
}

/// Base64 (standard, padded) for the sealed bytes.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
