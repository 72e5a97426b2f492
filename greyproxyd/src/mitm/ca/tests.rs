//! CA generation, persistence and validation against real files in temporary directories.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_writes_files_and_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested/state");
    let ca = generate(&state, false).unwrap();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&cert_path(&state)), 0o644);
    assert_eq!(mode(&key_path(&state)), 0o600);
    // No temporary files left behind.
    assert_eq!(fs::read_dir(&state).unwrap().count(), 2);

    assert!(
        ca.subject().contains("CN=greyproxy CA "),
        "{}",
        ca.subject()
    );
    assert!(ca.subject().contains("O=greyproxy"), "{}", ca.subject());
    assert_eq!(ca.fingerprint().len(), 32 * 3 - 1);
    assert!(
        ca.fingerprint()
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    let now = SystemTime::now();
    assert!(ca.not_before() < now && ca.not_before() > now - Duration::from_secs(2 * 3600));
    let years = ca.not_after().duration_since(now).unwrap().as_secs() / (365 * 24 * 3600);
    assert_eq!(years, 9, "just under ten years left");
    assert_eq!(
        fs::read_to_string(cert_path(&state)).unwrap(),
        ca.cert_pem()
    );

    let loaded = load(&state).unwrap();
    assert_eq!(loaded.fingerprint(), ca.fingerprint());
    assert_eq!(loaded.subject(), ca.subject());
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.not_after(), ca.not_after());
    assert_eq!(
        loaded.key().serialize_der(),
        ca.key().serialize_der(),
        "same key"
    );

    // The certificate says what we promised: CA, path length 0, certSign + cRLSign, P-256.
    let (_, x) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    let bc = x.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    assert_eq!(
        x.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2"
    );
    assert!(x.raw_serial().len() >= 16);

    // Two installs are distinguishable.
    let other = tempfile::tempdir().unwrap();
    let ca2 = generate(other.path(), false).unwrap();
    assert_ne!(ca2.subject(), ca.subject());
    assert_ne!(ca2.fingerprint(), ca.fingerprint());
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate(dir.path(), false).unwrap();
    let err = generate(dir.path(), false).unwrap_err();
    assert!(matches!(err, CaError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(load(dir.path()).unwrap().fingerprint(), first.fingerprint());

    // A lone key counts as existing too.
    fs::remove_file(cert_path(dir.path())).unwrap();
    let err = generate(dir.path(), false).unwrap_err();
    assert!(err.to_string().contains("ca-key.pem"), "{err}");

    let second = generate(dir.path(), true).unwrap();
    assert_ne!(second.fingerprint(), first.fingerprint());
    assert_eq!(
        load(dir.path()).unwrap().fingerprint(),
        second.fingerprint()
    );
}

#[test]
fn ensure_generates_once_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (a, generated) = ensure(dir.path()).unwrap();
    assert!(generated);
    let (b, generated) = ensure(dir.path()).unwrap();
    assert!(!generated);
    assert_eq!(a.fingerprint(), b.fingerprint());
}

#[test]
fn only_one_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), false).unwrap();
    fs::remove_file(key_path(dir.path())).unwrap();
    let err = ensure(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::OnlyOne { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ca-cert.pem") && msg.contains("ca-key.pem"),
        "{msg}"
    );
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem"));

    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), false).unwrap();
    fs::remove_file(cert_path(dir.path())).unwrap();
    let msg = ensure(dir.path()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("found {}", key_path(dir.path()).display())),
        "{msg}"
    );
}

#[test]
fn corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), false).unwrap();
    let (c, k) = (cert_path(dir.path()), key_path(dir.path()));
    let good_cert = fs::read(&c).unwrap();
    let good_key = fs::read(&k).unwrap();

    fs::write(&c, "hello\n").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::NotPem { .. }), "{err}");
    assert!(err.to_string().contains(&c.display().to_string()), "{err}");

    fs::write(
        &c,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("ca-cert.pem"), "{err}");

    fs::write(&c, &good_cert).unwrap();
    fs::write(&k, "garbage").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::NotPem { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem"), "{err}");

    // A valid key that is not the CA's.
    fs::write(&k, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem") && err.to_string().contains("ca-cert.pem"));

    fs::write(&k, &good_key).unwrap();
    load(dir.path()).unwrap();
}

#[test]
fn not_a_ca_and_expired_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (cert_path(dir.path()), key_path(dir.path()));
    let key = KeyPair::generate().unwrap();
    fs::write(&k, key.serialize_pem()).unwrap();

    let leaf = CertificateParams::new(vec!["example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    fs::write(&c, leaf.pem()).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::NotCa { .. }), "{err}");
    assert!(err.to_string().contains("ca-cert.pem"));

    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = (SystemTime::now() - Duration::from_secs(100 * 24 * 3600)).into();
    p.not_after = (SystemTime::now() - Duration::from_secs(3600)).into();
    fs::write(&c, p.self_signed(&key).unwrap().pem()).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("expired on"), "{err}");
}

#[test]
fn sec1_keys_written_by_greyproxy_load() {
    // greyproxy (Go) writes the key as `EC PRIVATE KEY` (SEC1). Convert ours and reload.
    let dir = tempfile::tempdir().unwrap();
    let ca = generate(dir.path(), false).unwrap();
    let pkcs8 = ca.key().serialize_der();
    let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
    )
    .unwrap();
    use aws_lc_rs::encoding::AsDer;
    let sec1: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'_> = kp.private_key().as_der().unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(sec1.as_ref());
    fs::write(
        key_path(dir.path()),
        format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n"),
    )
    .unwrap();
    assert_eq!(load(dir.path()).unwrap().fingerprint(), ca.fingerprint());
}

#[test]
fn loose_key_mode_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), false).unwrap();
    fs::set_permissions(key_path(dir.path()), fs::Permissions::from_mode(0o644)).unwrap();
    load(dir.path()).unwrap();
    assert_eq!(mode(&key_path(dir.path())), 0o600);
}
