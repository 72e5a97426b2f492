//! The credential forms of the Credentials view: a new credential (its secret typed into a
//! field that shows only dots and is never printed with `{:?}`) and a credential's bindings to
//! edit (a new secret there is a rotation). Validated here, turned into `create_credential` /
//! `update_credential`; the daemon checks the patterns again and says what is wrong.

use greyproxy_protocol::credentials::{
    CreateCredentialArgs, CredentialInfo, CredentialPlaces, UpdateCredentialArgs, WireSecret,
};

use super::form::{Field, FieldKind, Form, FormPurpose, choice, text};

/// Where to substitute, as the form offers it.
const PLACES: &[&str] = &["headers, query", "+ JSON bodies", "+ form bodies", "+ both"];
const PLAINTEXT: &[&str] = &["no", "yes"];

fn secret(label: &'static str, help: &'static str) -> Field {
    Field {
        label,
        kind: FieldKind::Secret(WireSecret::default()),
        help,
    }
}

fn places_index(p: &CredentialPlaces) -> usize {
    usize::from(p.json_body) + 2 * usize::from(p.form_body)
}

fn places_of(choice: &str) -> CredentialPlaces {
    let idx = PLACES.iter().position(|c| *c == choice).unwrap_or(0);
    CredentialPlaces {
        headers: true,
        query: true,
        json_body: idx & 1 == 1,
        form_body: idx & 2 == 2,
    }
}

/// A comma- or space-separated list.
fn list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

impl Form {
    /// An empty credential.
    pub(crate) fn new_credential() -> Form {
        Form {
            purpose: FormPurpose::NewCredential,
            title: "New credential".into(),
            fields: vec![
                text(
                    "label",
                    "",
                    "the variable name agents get, e.g. OPENAI_API_KEY",
                ),
                secret(
                    "secret",
                    "typed without echo; never shown again (a preview only)",
                ),
                text(
                    "destinations",
                    "",
                    "where it may go: host[:port][/path], *.x or **.x; comma-separated",
                ),
                text("containers", "", "container globs; empty = any container"),
                choice(
                    "substitute",
                    PLACES,
                    0,
                    "where to put the secret; ←/→ or space",
                ),
                choice(
                    "plain HTTP",
                    PLAINTEXT,
                    0,
                    "also over unencrypted HTTP (not advised)",
                ),
                text("expires", "", "empty = never, or 30d, 12h…"),
            ],
            focus: 0,
            error: None,
        }
    }

    /// A credential's bindings, to edit; a typed secret rotates it (placeholders stay valid).
    pub(crate) fn edit_credential(c: &CredentialInfo) -> Form {
        let destinations: Vec<&str> = c.destinations.iter().map(|d| d.pattern.as_str()).collect();
        Form {
            purpose: FormPurpose::EditCredential(Box::new(c.clone())),
            title: format!("Edit credential {}", c.label),
            fields: vec![
                text(
                    "destinations",
                    &destinations.join(", "),
                    "where it may go: host[:port][/path], *.x or **.x; comma-separated",
                ),
                text(
                    "containers",
                    &c.containers.join(", "),
                    "container globs; empty = any container",
                ),
                choice(
                    "substitute",
                    PLACES,
                    places_index(&c.places),
                    "where to put the secret; ←/→ or space",
                ),
                choice(
                    "plain HTTP",
                    PLAINTEXT,
                    usize::from(c.allow_plaintext),
                    "also over unencrypted HTTP (not advised)",
                ),
                secret(
                    "new secret",
                    "empty = unchanged; typed = rotation (placeholders stay valid)",
                ),
            ],
            focus: 0,
            error: None,
        }
    }

    /// The secret typed into field `i` (empty for other kinds).
    pub(crate) fn secret(&self, i: usize) -> &str {
        match self.fields.get(i).map(|f| &f.kind) {
            Some(FieldKind::Secret(s)) => &s.0,
            _ => "",
        }
    }
}

/// `create_credential`'s arguments from the new-credential form.
pub(crate) fn create_args(f: &Form) -> Result<CreateCredentialArgs, String> {
    let destinations = list(f.text(2));
    if f.text(0).is_empty() || f.secret(1).is_empty() || destinations.is_empty() {
        return Err("label, secret and at least one destination are required".into());
    }
    Ok(CreateCredentialArgs {
        label: f.text(0).to_string(),
        secret: WireSecret(f.secret(1).to_string()),
        destinations,
        containers: list(f.text(3)),
        places: Some(places_of(f.choice(4))),
        allow_plaintext: Some(f.choice(5) == "yes"),
        expires_at: None,
        duration: Some(f.text(6).to_string()).filter(|d| !d.is_empty()),
    })
}

/// `update_credential`'s arguments from the edit form: only what changed.
pub(crate) fn update_args(f: &Form, c: &CredentialInfo) -> Result<UpdateCredentialArgs, String> {
    let destinations = list(f.text(0));
    if destinations.is_empty() {
        return Err("at least one destination is required (delete the credential instead)".into());
    }
    let old: Vec<String> = c.destinations.iter().map(|d| d.pattern.clone()).collect();
    let containers = list(f.text(1));
    let places = places_of(f.choice(2));
    let plaintext = f.choice(3) == "yes";
    Ok(UpdateCredentialArgs {
        label: c.label.clone(),
        secret: Some(WireSecret(f.secret(4).to_string())).filter(|s| !s.0.is_empty()),
        destinations: (destinations != old).then_some(destinations),
        containers: (containers != c.containers).then_some(containers),
        places: (places != c.places).then_some(places),
        allow_plaintext: (plaintext != c.allow_plaintext).then_some(plaintext),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_and_places() {
        assert_eq!(list(" a.x, b.y  c.z,,"), ["a.x", "b.y", "c.z"]);
        for (i, name) in PLACES.iter().enumerate() {
            assert_eq!(places_index(&places_of(name)), i, "{name}");
        }
        assert_eq!(places_of("?"), CredentialPlaces::default());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let mut f = Form::new_credential();
        if let FieldKind::Secret(s) = &mut f.fields[1].kind {
            s.0.push_str("sk-live-very-secret");
        }
        assert_eq!(f.secret(1), "sk-live-very-secret");
        assert!(!format!("{f:?}").contains("very-secret"));
    }
}
