//! Tests of the store's tables, ids and open checks, on real redb files in temp dirs.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use greyproxy_protocol::{Action, Decision, RuleType};

use super::*;
use crate::records::RequestLogRecord;

pub(super) fn temp_store() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("greyproxy.redb");
    let store = Store::open(&path).unwrap();
    (dir, path, store)
}

pub(super) fn rule(id: u64, dest: &str) -> RuleRecord {
    RuleRecord {
        id,
        container_pattern: "*".into(),
        destination_pattern: dest.into(),
        port_pattern: "443".into(),
        action: Action::Allow,
        rule_type: RuleType::Permanent,
        created_at: 1_776_852_000,
        expires_at: None,
        last_used_at: Some(1_776_852_100),
        created_by: "admin".into(),
        notes: Some("note".into()),
        session_id: None,
    }
}

pub(super) fn pending(id: u64, host: &str) -> PendingRecord {
    PendingRecord {
        id,
        container_name: "web".into(),
        container_id: "abc".into(),
        destination_host: host.into(),
        destination_port: 443,
        resolved_hostname: None,
        first_seen: 10,
        last_seen: 20,
        attempt_count: 3,
        llm_context: None,
    }
}

pub(super) fn log(container: &str, host: &str, method: &str, result: Decision) -> RequestLogRecord {
    RequestLogRecord {
        id: 0,
        timestamp: 1_776_852_000,
        container_name: container.into(),
        container_id: None,
        destination_host: host.into(),
        destination_port: 443,
        resolved_hostname: None,
        method: method.into(),
        result,
        rule_id: None,
        rule_summary: None,
        response_time_ms: 1,
        reason: "rule".into(),
        mitm: None,
    }
}

/// Writes raw bytes under `key` in an id-keyed table, bypassing the encoder.
pub(super) fn put_raw(store: &Store, def: TableDefinition<u64, &[u8]>, key: u64, bytes: &[u8]) {
    let txn = store.db.begin_write().unwrap();
    txn.open_table(def).unwrap().insert(key, bytes).unwrap();
    txn.commit().unwrap();
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Store>();
    check::<StoreError>();
    check::<LogSink>();
}

#[test]
fn rules_pending_and_settings_round_trip_across_reopen() {
    let (_dir, path, store) = temp_store();
    let r1 = rule(store.next_id(IdKind::Rule), "a.example");
    let r2 = rule(store.next_id(IdKind::Rule), "b.example");
    let p1 = pending(store.next_id(IdKind::Pending), "c.example");
    store
        .apply(&[
            Op::PutRule(r1.clone()),
            Op::PutRule(r2.clone()),
            Op::PutPending(p1.clone()),
            Op::PutSetting("allow_all".into(), b"{\"on\":true}".to_vec()),
            Op::PutSetting("gone".into(), b"x".to_vec()),
        ])
        .unwrap();
    store
        .apply(&[Op::DeleteSetting("gone".into()), Op::DeleteRule(999)])
        .unwrap();
    assert_eq!(store.load_rules().unwrap(), vec![r1.clone(), r2.clone()]);
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.load_rules().unwrap(), vec![r1.clone(), r2]);
    assert_eq!(store.load_pending().unwrap(), vec![p1.clone()]);
    assert_eq!(
        store.get_setting("allow_all").unwrap().as_deref(),
        Some(&b"{\"on\":true}"[..])
    );
    assert_eq!(store.get_setting("gone").unwrap(), None);

    // Replace and delete.
    let mut r1b = r1.clone();
    r1b.notes = None;
    store
        .apply(&[
            Op::PutRule(r1b.clone()),
            Op::DeleteRule(2),
            Op::DeletePending(p1.id),
        ])
        .unwrap();
    assert_eq!(store.load_rules().unwrap(), vec![r1b]);
    assert!(store.load_pending().unwrap().is_empty());
    store.apply(&[]).unwrap();
}

#[test]
fn ids_are_monotonic_and_never_reused() {
    let (_dir, path, store) = temp_store();
    let a = store.next_id(IdKind::Rule);
    let b = store.next_id(IdKind::Rule);
    assert_eq!((a, b), (1, 2));
    // Sequences are independent.
    assert_eq!(store.next_id(IdKind::Pending), 1);
    store
        .apply(&[Op::PutRule(rule(a, "a")), Op::PutRule(rule(b, "b"))])
        .unwrap();
    // Delete the newest row, then the last row: the counter must survive both and a restart.
    store.apply(&[Op::DeleteRule(b)]).unwrap();
    store.apply(&[Op::DeleteRule(a)]).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert!(store.load_rules().unwrap().is_empty());
    assert_eq!(store.next_id(IdKind::Rule), 3);
    // Pending id 1 was handed out but never written: only written ids are guaranteed.
    assert_eq!(store.next_id(IdKind::Pending), 1);

    // A row written with an explicit id (an import) pushes the sequence past it at once.
    store.apply(&[Op::PutPending(pending(40, "x"))]).unwrap();
    assert_eq!(store.next_id(IdKind::Pending), 41);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.next_id(IdKind::Pending), 41);
}

#[test]
fn existing_keys_are_a_floor_when_the_counter_is_behind() {
    let (_dir, path, store) = temp_store();
    put_raw(
        &store,
        RULES,
        7,
        &serde_json::to_vec(&rule(7, "seven")).unwrap(),
    );
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.next_id(IdKind::Rule), 8);
}

#[test]
fn newer_schema_version_is_refused_without_touching_the_file() {
    let (_dir, path, store) = temp_store();
    {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    drop(store);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew {
            found: 2,
            supported: 1,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(msg.contains("schema version 2"), "{msg}");
    assert!(msg.contains("version 1"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // The refused open wrote nothing: the version is still the newer one.
    let db = Database::create(&path).unwrap();
    assert_eq!(read_schema_version(&db).unwrap(), Some(SCHEMA_VERSION + 1));
}

#[test]
fn non_redb_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    for content in ["this is not a database\n".repeat(400), "hi".to_string()] {
        std::fs::write(&path, &content).unwrap();
        let err = Store::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
        assert!(msg.starts_with("cannot open store "), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.to_lowercase().contains("not a redb database"), "{msg}");
        // The foreign file is left as it was.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    }

    let missing = dir.path().join("no/such/dir/greyproxy.redb");
    let msg = Store::open(&missing).unwrap_err().to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
}

#[test]
fn second_open_of_the_same_file_is_refused() {
    let (_dir, path, _store) = temp_store();
    let msg = Store::open(&path).unwrap_err().to_string();
    assert!(msg.contains("another process"), "{msg}");
}

#[test]
fn undecodable_rows_are_skipped_not_fatal() {
    let (_dir, _path, store) = temp_store();
    store
        .apply(&[Op::PutRule(rule(1, "a")), Op::PutRule(rule(3, "c"))])
        .unwrap();
    put_raw(&store, RULES, 2, b"{not json");
    put_raw(&store, PENDING, 5, b"[]");
    let rules = store.load_rules().unwrap();
    assert_eq!(rules.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 3]);
    assert!(store.load_pending().unwrap().is_empty());
}

/// Result, MITM outcome and middleware actions were plain strings in the JSON the store keeps;
/// rows written then decode into the enums and encode back to the very same bytes.
#[test]
fn rows_written_when_closed_sets_were_strings_still_read() {
    use greyproxy_protocol::middleware::EventAction;
    use greyproxy_protocol::{MitmOutcome, TransactionResult};

    let (_dir, _path, store) = temp_store();
    let log = br#"{"id":3,"timestamp":1776852000,"container_name":"c","container_id":null,"destination_host":"h.example","destination_port":443,"resolved_hostname":null,"method":"HTTP","result":"allowed","rule_id":1,"rule_summary":null,"response_time_ms":2,"reason":"rule","mitm":"client_closed"}"#;
    put_raw(&store, REQUEST_LOGS, 3, log);
    let head = br#"{"id":4,"timestamp":"2026-11-22T10:00:00Z","container_name":"c","destination_host":"h.example","destination_port":443,"method":"POST","url":"https://h.example/","status_code":403,"result":"denied","middleware_events":[{"sequence":0,"middleware_url":"","hook":"mitm-request","action":"tagged-passthrough","created_at":"2026-11-22T10:00:00Z"},{"sequence":1,"middleware_url":"","hook":"mitm-request","action":"deny","status_code":403,"created_at":"2026-11-22T10:00:00Z"}]}"#;
    put_raw(&store, TRANSACTIONS, 4, head);
    // The transaction writer creates the bodies table along with the first head.
    let txn = store.db.begin_write().unwrap();
    txn.open_table(BODIES).unwrap();
    txn.commit().unwrap();

    let logs = store
        .query_logs(&crate::store::LogQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(logs.items.len(), 1);
    assert_eq!(logs.items[0].mitm, Some(MitmOutcome::ClientClosed));
    assert_eq!(serde_json::to_vec(&logs.items[0]).unwrap(), log);

    let t = store.get_transaction(4).unwrap().unwrap();
    assert_eq!(t.result, TransactionResult::Denied);
    let actions: Vec<EventAction> = t.middleware_events.iter().map(|e| e.action).collect();
    assert_eq!(actions, [EventAction::TaggedPassthrough, EventAction::Deny]);
    assert_eq!(serde_json::to_vec(&t).unwrap(), head);
    let page = store
        .query_transactions(&crate::store::TxQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, [t]);
}
