//! Credentials: the model's validation, sessions, and persistence (encrypted) across a reopen.

#![allow(clippy::unwrap_used)]

use super::model::{Destination, ModelError, Places, check_label};
use super::session::{Session, SessionError, mint_placeholder};
use super::*;

pub(super) const SECRET: &str = "sk-proj-REAL-SECRET-abcdefghijklmnopqrstuvwxyz012345";

pub(super) fn new_cred(label: &str, hosts: &[&str]) -> NewCredential {
    NewCredential {
        label: label.into(),
        secret: Secret::new(SECRET).unwrap(),
        destinations: hosts.iter().map(|h| h.to_string()).collect(),
        containers: vec![],
        places: Places::default(),
        allow_plaintext: false,
        expires_at: None,
    }
}

#[test]
fn labels_are_env_like_names() {
    for ok in ["OPENAI_API_KEY", "_X", "gh_token2"] {
        assert!(check_label(ok).is_ok(), "{ok}");
    }
    for bad in ["", "2FA", "MY-KEY", "A B", "ÉTÉ", &"A".repeat(129)] {
        assert!(
            matches!(check_label(bad), Err(ModelError::Label(_))),
            "{bad}"
        );
    }
}

#[test]
fn destinations_parse_with_port_and_path_and_refuse_nonsense() {
    let d = Destination::parse("API.OpenAI.com.:443/v1").unwrap();
    assert_eq!(d.host, "api.openai.com");
    assert_eq!(d.port, Some(443));
    assert_eq!(d.path_prefix.as_deref(), Some("/v1"));
    assert_eq!(
        Destination::parse("**.github.com/").unwrap().path_prefix,
        None
    );
    for (bad, why) in [
        ("*", "every host"),
        ("https://api.openai.com", "without a scheme"),
        ("api.openai.com:http", "port"),
        ("api.openai.com:0", "port 0"),
        (":443", "no host"),
        ("api.*.com", "wildcard"),
        ("*.*.com", "wildcard"),
        ("a b.com", "characters"),
        ("x.com/v1/../admin", "segments"),
        ("x.com/v1?x=1", "'?'"),
    ] {
        let e = Destination::parse(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn destinations_match_host_port_and_path_on_segment_boundaries() {
    let d = Destination::parse("*.openai.com:443/v1").unwrap();
    assert!(d.matches("api.openai.com", 443, "/v1/chat/completions?x=1"));
    assert!(d.matches("API.openai.com.", 443, "/v1"));
    assert!(!d.matches("openai.com", 443, "/v1"));
    assert!(!d.matches("api.openai.com", 8443, "/v1"));
    assert!(!d.matches("api.openai.com", 443, "/v1beta"));
    assert!(!d.matches("api.openai.com", 443, "/v1/../admin"));
    assert!(!d.matches("api.openai.com", 443, "/v1/%2E%2e/admin"));
    assert!(!d.matches("api.openai.com.evil.test", 443, "/v1"));
    let any = Destination::parse("api.anthropic.com").unwrap();
    assert!(any.matches("api.anthropic.com", 80, "/"));
}

#[test]
fn create_validates_seals_and_refuses_duplicate_labels() {
    let vault = vault::Vault::from_key(&[3; 32]).unwrap();
    let mut tables = Tables::default();
    let c = create(
        &vault,
        &tables,
        &new_cred("OPENAI_API_KEY", &["api.openai.com"]),
        100,
    )
    .unwrap();
    assert!(c.id.starts_with("cr-") && c.id.len() == 19, "{}", c.id);
    assert_eq!(c.containers, ["*"]);
    assert_eq!(c.preview, "sk-p…(52 chars)");
    assert_eq!(reveal(&vault, &c).unwrap().expose(), SECRET);
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains(SECRET) && !format!("{c:?}").contains(SECRET));
    tables.put_credential(c);
    let dup = create(&vault, &tables, &new_cred("OPENAI_API_KEY", &["x.com"]), 1).unwrap_err();
    assert_eq!(
        dup.to_string(),
        "a credential labelled OPENAI_API_KEY exists already"
    );
    let none = create(&vault, &tables, &new_cred("B", &[]), 1).unwrap_err();
    assert!(matches!(
        none,
        CredentialError::Model(ModelError::NoDestination)
    ));
    let mut bad = new_cred("C", &["x.com"]);
    bad.containers = vec!["[".into()];
    let e = create(&vault, &tables, &bad, 1).unwrap_err().to_string();
    assert!(e.contains("container pattern \"[\""), "{e}");
    let mut nowhere = new_cred("D", &["x.com"]);
    nowhere.places = Places {
        headers: false,
        query: false,
        json_body: false,
        form_body: false,
    };
    assert!(matches!(
        create(&vault, &tables, &nowhere, 1),
        Err(CredentialError::Model(ModelError::NoPlace))
    ));
}

#[test]
fn rotation_keeps_the_id_and_opens_the_new_secret() {
    let vault = vault::Vault::from_key(&[3; 32]).unwrap();
    let mut c = create(&vault, &Tables::default(), &new_cred("K", &["x.com"]), 1).unwrap();
    let id = c.id.clone();
    rotate(
        &vault,
        &mut c,
        &Secret::new("second-secret-value-xyz").unwrap(),
        5,
    )
    .unwrap();
    assert_eq!(c.id, id);
    assert_eq!(c.updated_at, 5);
    assert_eq!(
        reveal(&vault, &c).unwrap().expose(),
        "second-secret-value-xyz"
    );
}

#[test]
fn placeholders_have_greyproxys_shape_and_are_unguessable() {
    let p = mint_placeholder("gw-0123456789abcdef").unwrap();
    let hex = p
        .strip_prefix("greyproxy:credential:v1:gw-0123456789abcdef:")
        .unwrap();
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(p, mint_placeholder("gw-0123456789abcdef").unwrap());
    assert!(matches!(mint_placeholder("a:b"), Err(SessionError::Id(_))));
}

#[test]
fn sessions_expire_after_their_ttl_unless_heartbeaten() {
    let vault = vault::Vault::from_key(&[3; 32]).unwrap();
    let c = create(&vault, &Tables::default(), &new_cred("K", &["x.com"]), 1).unwrap();
    let mut s = Session::new("gw-1", "sandbox-a", Some(60), &[&c], false, 1_000).unwrap();
    assert_eq!(s.placeholders.len(), 1);
    assert!(s.live(1_059) && !s.live(1_060));
    s.heartbeat(1_050);
    assert!(s.live(1_109) && !s.live(1_110));
    s.heartbeat(10); // a clock going backwards never shortens it
    assert_eq!(s.expires_at(), 1_110);
    assert_eq!(
        Session::new("gw-2", "c", None, &[], false, 0)
            .unwrap()
            .ttl_secs,
        900
    );
    assert_eq!(
        Session::new("gw-2", "c", Some(3_601), &[], false, 0).unwrap_err(),
        SessionError::Ttl(3_601)
    );
    assert_eq!(
        Session::new("gw-2", " ", None, &[], false, 0).unwrap_err(),
        SessionError::NoContainer
    );
    let mut tables = Tables::new(vec![c], vec![s]);
    assert!(tables.sweep(1_109).is_empty());
    let swept = tables.sweep(1_110);
    assert_eq!(swept.len(), 1);
    assert!(tables.session("gw-1").is_none());
}

#[test]
fn credentials_and_sessions_persist_encrypted_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("greyproxy.redb");
    let (id, placeholder) = {
        let store = Store::open(&db).unwrap();
        let (vault, tables) = load(&store, dir.path()).unwrap();
        let c = create(
            &vault,
            &tables,
            &new_cred("OPENAI_API_KEY", &["api.openai.com"]),
            1,
        )
        .unwrap();
        let s = Session::new("gw-1", "sandbox-a", None, &[&c], false, 1).unwrap();
        save(
            &store,
            &[put_credential(&c).unwrap(), put_session(&s).unwrap()],
        )
        .unwrap();
        (c.id.clone(), s.placeholders[&c.id].clone())
    };
    let raw = std::fs::read(&db).unwrap();
    assert!(!raw.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    assert!(!raw.windows(12).any(|w| w == &SECRET.as_bytes()[20..32]));
    let store = Store::open(&db).unwrap();
    let (vault, tables) = load(&store, dir.path()).unwrap();
    let c = tables.credential(&id).unwrap();
    assert_eq!(reveal(&vault, c).unwrap().expose(), SECRET);
    assert_eq!(tables.minted(&placeholder).unwrap().credential, id);
    // Deleting rows is durable too.
    save(&store, &[delete_session("gw-1"), delete_credential(&id)]).unwrap();
    drop(store);
    let store = Store::open(&db).unwrap();
    let (_, tables) = load(&store, dir.path()).unwrap();
    assert_eq!(tables.credentials().count() + tables.sessions().count(), 0);
}

#[test]
fn stored_credentials_without_their_key_are_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("greyproxy.redb");
    let store = Store::open(&db).unwrap();
    let (vault, tables) = load(&store, dir.path()).unwrap();
    let c = create(&vault, &tables, &new_cred("K", &["x.com"]), 1).unwrap();
    save(&store, &[put_credential(&c).unwrap()]).unwrap();
    std::fs::remove_file(dir.path().join(vault::KEY_FILE)).unwrap();
    let e = load(&store, dir.path()).unwrap_err();
    assert!(
        matches!(e, CredentialError::Vault(VaultError::KeyMissing { .. })),
        "{e}"
    );
    assert!(!dir.path().join(vault::KEY_FILE).exists());
}
