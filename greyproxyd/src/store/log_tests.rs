//! Tests of the request-log writer and the activity-feed queries.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use greyproxy_protocol::Decision;

use super::query::LogPage;
use super::tests::{log, put_raw, temp_store};
use super::*;
use crate::records::RequestLogRecord;

fn ids(rows: &[RequestLogRecord]) -> Vec<u64> {
    rows.iter().map(|r| r.id).collect()
}

/// Waits for the writer to exit (it then drops its handle) and returns the store.
async fn until_sole_owner(mut store: Arc<Store>) -> Store {
    for _ in 0..500 {
        match Arc::try_unwrap(store) {
            Ok(store) => return store,
            Err(shared) => store = shared,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the log writer did not exit");
}

fn all_logs(store: &Store) -> LogPage {
    store
        .query_logs(&LogQuery {
            limit: usize::MAX,
            ..LogQuery::default()
        })
        .unwrap()
}

#[tokio::test]
async fn writer_batches_in_order_and_flush_waits_for_commit() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    // For each committed row: its id, and how many rows the table held when on_commit ran.
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let (seen2, store2) = (Arc::clone(&seen), Arc::clone(&store));
    let sink = spawn_log_writer(
        Arc::clone(&store),
        2000,
        0,
        Box::new(move |row| {
            let total = store2.query_logs(&LogQuery::default()).unwrap().total;
            seen2.lock().unwrap().push((row.id, total));
        }),
    );
    // The current-thread runtime does not run the writer until we await: all 1100 are queued.
    for i in 0..1100 {
        sink.record(log(
            &format!("c{i}"),
            "example.com",
            "HTTP",
            Decision::Allowed,
        ));
    }
    sink.flush().await;
    let seen = seen.lock().unwrap().clone();
    let expected_ids: Vec<u64> = (1..=1100).collect();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), expected_ids);
    // Three transactions of at most 512 rows, each published after its commit.
    assert!(seen[..512].iter().all(|s| s.1 == 512), "{:?}", &seen[..3]);
    assert!(seen[512..1024].iter().all(|s| s.1 == 1024));
    assert!(seen[1024..].iter().all(|s| s.1 == 1100));
    let page = all_logs(&store);
    assert_eq!(page.total, 1100);
    assert_eq!(page.items[0].container_name, "c1099");
    assert_eq!(sink.dropped(), 0);
}

#[tokio::test]
async fn writer_prunes_oldest_rows_beyond_max_rows() {
    let (_dir, path, store) = temp_store();
    let store = Arc::new(store);
    let sink = spawn_log_writer(Arc::clone(&store), 100, 10, Box::new(|_| {}));
    for _ in 0..25 {
        sink.record(log("web", "example.com", "HTTP", Decision::Blocked));
    }
    sink.flush().await;
    let page = all_logs(&store);
    assert_eq!(page.total, 10);
    assert_eq!(ids(&page.items), (16..=25).rev().collect::<Vec<_>>());
    // Ids keep counting after pruning and a restart.
    drop(sink);
    let store = until_sole_owner(store).await;
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.next_id(IdKind::RequestLog), 26);
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    let sink = spawn_log_writer(Arc::clone(&store), 4, 0, Box::new(|_| {}));
    let clone = sink.clone();
    for _ in 0..10 {
        clone.record(log("web", "example.com", "HTTP", Decision::Allowed));
    }
    assert_eq!(sink.dropped(), 6);
    sink.flush().await;
    assert_eq!(all_logs(&store).total, 4);
    assert_eq!(sink.dropped(), 6);
}

#[tokio::test]
async fn writer_drains_and_exits_when_sinks_are_dropped() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    let count = Arc::new(Mutex::new(0u64));
    let count2 = Arc::clone(&count);
    let sink = spawn_log_writer(
        Arc::clone(&store),
        16,
        0,
        Box::new(move |_| *count2.lock().unwrap() += 1),
    );
    for _ in 0..3 {
        sink.record(log("web", "example.com", "HTTP", Decision::Allowed));
    }
    drop(sink);
    let store = until_sole_owner(store).await;
    assert_eq!(*count.lock().unwrap(), 3);
    assert_eq!(all_logs(&store).total, 3);
}

/// Ten rows, ids 1..=10: containers alternate `Web-Frontend` / `worker`, results alternate
/// allowed / blocked, methods alternate `HTTP` / `SOCKS5`; row 7 is an IP with a resolved name.
fn seeded() -> (tempfile::TempDir, Store) {
    let (dir, _path, store) = temp_store();
    let mut rows: Vec<RequestLogRecord> = (1..=10)
        .map(|i| {
            let even = i % 2 == 0;
            log(
                if even { "Web-Frontend" } else { "worker" },
                &format!("host{i}.Example.com"),
                if even { "HTTP" } else { "SOCKS5" },
                if even {
                    Decision::Allowed
                } else {
                    Decision::Blocked
                },
            )
        })
        .collect();
    rows[6].destination_host = "93.184.216.34".into();
    rows[6].resolved_hostname = Some("api.GitHub.com".into());
    store.append_logs(&mut rows, 0).unwrap();
    assert_eq!(ids(&rows), (1..=10).collect::<Vec<_>>());
    (dir, store)
}

#[test]
fn unfiltered_pages_by_before_id() {
    let (_dir, store) = seeded();
    let mut q = LogQuery {
        limit: 4,
        ..LogQuery::default()
    };
    let p1 = store.query_logs(&q).unwrap();
    assert_eq!((ids(&p1.items), p1.total), (vec![10, 9, 8, 7], 10));
    assert_eq!(p1.next_before_id, Some(7));
    q.before_id = p1.next_before_id;
    let p2 = store.query_logs(&q).unwrap();
    assert_eq!((ids(&p2.items), p2.total), (vec![6, 5, 4, 3], 10));
    q.before_id = p2.next_before_id;
    let p3 = store.query_logs(&q).unwrap();
    assert_eq!(ids(&p3.items), vec![2, 1]);
    assert_eq!(p3.next_before_id, None);
    // Exactly a full last page: nothing follows it.
    q.before_id = Some(5);
    let p = store.query_logs(&q).unwrap();
    assert_eq!((ids(&p.items), p.next_before_id), (vec![4, 3, 2, 1], None));
    // Count only.
    let p = store.query_logs(&LogQuery::default()).unwrap();
    assert_eq!((p.items.len(), p.total, p.next_before_id), (0, 10, None));
}

#[test]
fn filters_match_case_insensitively() {
    let (_dir, store) = seeded();
    let query = |q: LogQuery| store.query_logs(&LogQuery { limit: 100, ..q }).unwrap();
    let p = query(LogQuery {
        container: Some("frontEND".into()),
        ..LogQuery::default()
    });
    assert_eq!((ids(&p.items), p.total), (vec![10, 8, 6, 4, 2], 5));
    let p = query(LogQuery {
        destination: Some("github".into()),
        ..LogQuery::default()
    });
    assert_eq!(ids(&p.items), vec![7]);
    let p = query(LogQuery {
        destination: Some("HOST3.example".into()),
        ..LogQuery::default()
    });
    assert_eq!(ids(&p.items), vec![3]);
    let p = query(LogQuery {
        method: Some("socks5".into()),
        ..LogQuery::default()
    });
    assert_eq!(ids(&p.items), vec![9, 7, 5, 3, 1]);
    let p = query(LogQuery {
        method: Some("SOCKS".into()),
        ..LogQuery::default()
    });
    assert_eq!(p.total, 0);
    let p = query(LogQuery {
        result: Some(Decision::Blocked),
        container: Some("work".into()),
        ..LogQuery::default()
    });
    assert_eq!(ids(&p.items), vec![9, 7, 5, 3, 1]);
    let p = query(LogQuery {
        result: Some(Decision::Blocked),
        container: Some("web".into()),
        ..LogQuery::default()
    });
    assert_eq!((p.items.len(), p.total), (0, 0));
    // Blank strings are no filter.
    let p = query(LogQuery {
        container: Some("  ".into()),
        ..LogQuery::default()
    });
    assert_eq!(p.total, 10);
}

#[test]
fn filtered_paging_keeps_the_full_total() {
    let (_dir, store) = seeded();
    let mut q = LogQuery {
        result: Some(Decision::Allowed),
        limit: 2,
        ..LogQuery::default()
    };
    let p1 = store.query_logs(&q).unwrap();
    assert_eq!(
        (ids(&p1.items), p1.total, p1.next_before_id),
        (vec![10, 8], 5, Some(8))
    );
    q.before_id = p1.next_before_id;
    let p2 = store.query_logs(&q).unwrap();
    assert_eq!(
        (ids(&p2.items), p2.total, p2.next_before_id),
        (vec![6, 4], 5, Some(4))
    );
    q.before_id = p2.next_before_id;
    let p3 = store.query_logs(&q).unwrap();
    assert_eq!(
        (ids(&p3.items), p3.total, p3.next_before_id),
        (vec![2], 5, None)
    );
}

#[test]
fn undecodable_log_rows_are_skipped() {
    let (_dir, store) = seeded();
    put_raw(&store, REQUEST_LOGS, 11, b"garbage");
    let p = store
        .query_logs(&LogQuery {
            limit: 3,
            ..LogQuery::default()
        })
        .unwrap();
    assert_eq!(ids(&p.items), vec![10, 9, 8]);
    let p = store
        .query_logs(&LogQuery {
            limit: 3,
            method: Some("http".into()),
            ..LogQuery::default()
        })
        .unwrap();
    assert_eq!((ids(&p.items), p.total), (vec![10, 8, 6], 5));
}
