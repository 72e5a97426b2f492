//! Reloading the CA from disk: swap on change, keep the old issuer on a broken pair, and the
//! polling watcher.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use super::*;

fn fingerprint(m: &MitmCerts) -> Option<String> {
    m.current().map(|i| i.ca().fingerprint().to_string())
}

#[test]
fn starts_empty_then_picks_up_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let m = MitmCerts::new(dir.path(), 8);
    assert!(m.current().is_none());
    assert!(matches!(m.reload(), Err(CaError::Missing { .. })));
    let ca = ca::generate(dir.path(), false).unwrap();
    assert!(m.reload().unwrap());
    assert_eq!(fingerprint(&m).as_deref(), Some(ca.fingerprint()));
}

#[test]
fn swaps_on_change_and_keeps_the_old_issuer_on_a_broken_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = ca::generate(dir.path(), false).unwrap();
    let m = MitmCerts::new(dir.path(), 8);
    let issuer = m.current().unwrap();
    assert_eq!(issuer.ca().fingerprint(), first.fingerprint());
    issuer.certified_key("example.com").unwrap();

    // A touch (same content) changes nothing; the cache survives.
    let pem = fs::read(ca::cert_path(dir.path())).unwrap();
    fs::write(ca::cert_path(dir.path()), &pem).unwrap();
    assert!(!m.reload().unwrap());
    assert!(Arc::ptr_eq(&issuer, &m.current().unwrap()));

    // A new pair swaps in a new issuer with an empty cache.
    let second = ca::generate(dir.path(), true).unwrap();
    assert!(m.reload().unwrap());
    let now = m.current().unwrap();
    assert_eq!(now.ca().fingerprint(), second.fingerprint());
    assert_eq!(now.issued(), 0);
    let ck = now.certified_key("example.com").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&ck.cert[0]).unwrap();
    assert_eq!(leaf.issuer().to_string(), second.subject());

    // A key that does not match: error, old issuer stays.
    let stray = rcgen::KeyPair::generate().unwrap();
    fs::write(ca::key_path(dir.path()), stray.serialize_pem()).unwrap();
    assert!(matches!(m.reload(), Err(CaError::KeyMismatch { .. })));
    assert!(Arc::ptr_eq(&now, &m.current().unwrap()));
    // Garbage, a missing file: same.
    fs::write(ca::cert_path(dir.path()), "junk").unwrap();
    assert!(m.reload().is_err());
    fs::remove_file(ca::key_path(dir.path())).unwrap();
    assert!(matches!(m.reload(), Err(CaError::OnlyOne { .. })));
    assert!(Arc::ptr_eq(&now, &m.current().unwrap()));

    // Fixed again: a third CA loads.
    let third = ca::generate(dir.path(), true).unwrap();
    assert!(m.reload().unwrap());
    assert_eq!(fingerprint(&m).as_deref(), Some(third.fingerprint()));
}

#[test]
fn broken_pair_at_start_means_no_issuer() {
    let dir = tempfile::tempdir().unwrap();
    ca::generate(dir.path(), false).unwrap();
    fs::write(ca::key_path(dir.path()), "nope").unwrap();
    assert!(MitmCerts::new(dir.path(), 8).current().is_none());
}

async fn wait_for(m: &MitmCerts, want: &str) -> Duration {
    let t = Instant::now();
    while fingerprint(m).as_deref() != Some(want) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "watcher did not reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.elapsed()
}

#[tokio::test]
async fn watcher_reloads_on_rotation_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(MitmCerts::new(dir.path(), 8));
    let stop = CancellationToken::new();
    let task = m
        .clone()
        .spawn_watcher(Duration::from_millis(50), stop.clone());

    let a = ca::generate(dir.path(), false).unwrap();
    let took = wait_for(&m, a.fingerprint()).await;
    eprintln!("watcher picked up a new CA after {took:?}");

    // Half a rotation (new key, old certificate) is not applied; the old issuer serves on.
    let before = m.current().unwrap();
    let b = rcgen::KeyPair::generate().unwrap();
    fs::write(ca::key_path(dir.path()), b.serialize_pem()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Arc::ptr_eq(&before, &m.current().unwrap()));

    // A complete rotation is.
    let c = ca::generate(dir.path(), true).unwrap();
    wait_for(&m, c.fingerprint()).await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
