//! The activity feed: connection decisions (`request_logs`) and recorded transactions merged
//! newest first, filtered in the daemon, paged with a cursor that remembers where each of the
//! two sources stopped (`c<log id>_t<transaction id>`), and `get_transaction`.

use greyproxy_protocol::command::ListArgs;
use greyproxy_protocol::{ActivityItem, Decision, Page, Transaction};

use super::handlers::Handler;
use crate::policy::PolicyError;
use crate::policy::queries::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::{LogQuery, TxQuery};
use crate::time::parse_timestamp;

/// Where each source stopped: `None` = from the newest; `Some(0)` = exhausted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Next log rows are below this id.
    pub(crate) logs: Option<u64>,
    /// Next transactions are below this id.
    pub(crate) txs: Option<u64>,
}

impl Cursor {
    /// Parses `c<id>_t<id>` (either id may be empty).
    pub(crate) fn parse(s: &str) -> Option<Cursor> {
        let (c, t) = s.split_once('_')?;
        let part = |p: &str, prefix: char| -> Option<Option<u64>> {
            let v = p.strip_prefix(prefix)?;
            if v.is_empty() {
                Some(None)
            } else {
                v.parse().ok().map(Some)
            }
        };
        Some(Cursor {
            logs: part(c, 'c')?,
            txs: part(t, 't')?,
        })
    }

    /// The wire form.
    pub(crate) fn render(&self) -> String {
        let f = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        format!("c{}_t{}", f(self.logs), f(self.txs))
    }
}

fn bad(msg: String) -> PolicyError {
    PolicyError::Invalid(msg)
}

fn time_arg(name: &str, v: &Option<String>) -> Result<Option<u64>, PolicyError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_timestamp(s)
            .map(Some)
            .ok_or_else(|| bad(format!("invalid {name} {s:?}: expected RFC 3339"))),
    }
}

fn item_time(item: &ActivityItem) -> (u64, u64) {
    match item {
        ActivityItem::Connection(r) => (parse_timestamp(&r.timestamp).unwrap_or(0), r.id),
        ActivityItem::Transaction(t) => (parse_timestamp(&t.timestamp).unwrap_or(0), t.id),
        // The daemon builds every item itself; a kind it does not know sorts oldest.
        _ => (0, 0),
    }
}

impl Handler {
    /// `list_activity`.
    pub(crate) async fn list_activity(
        &self,
        a: ListArgs,
    ) -> Result<Page<ActivityItem>, PolicyError> {
        let kind = a.kind.as_deref().map(str::trim).filter(|k| !k.is_empty());
        let (want_logs, mut want_txs) = match kind {
            None => (true, true),
            Some("connection") => (true, false),
            Some("transaction" | "http") => (false, true),
            Some(other) => {
                return Err(bad(format!(
                    "invalid kind {other:?}: use connection or transaction"
                )));
            }
        };
        let result = match a.result.as_deref() {
            None | Some("") => None,
            Some("allowed") => Some(Decision::Allowed),
            Some("blocked") => Some(Decision::Blocked),
            Some(other) => {
                return Err(bad(format!(
                    "invalid result filter {other:?}: use allowed or blocked"
                )));
            }
        };
        // Allowed/blocked describes connection decisions only.
        if result.is_some() {
            want_txs = false;
        }
        let want_logs = want_logs && a.status.is_none() && a.upgrade_id.is_none();
        let cursor = match a.cursor.as_deref() {
            None | Some("") => Cursor::default(),
            Some(c) => Cursor::parse(c).ok_or_else(|| bad(format!("invalid cursor {c:?}")))?,
        };
        let limit = a
            .limit
            .map(|l| (l as usize).clamp(1, MAX_LIMIT))
            .unwrap_or(DEFAULT_LIMIT);
        let since = time_arg("since", &a.since)?;
        let until = time_arg("until", &a.until)?;

        self.policy.flush_logs().await;
        self.transactions.flush().await;
        let lq = LogQuery {
            container: a.container.clone(),
            destination: a.destination.clone(),
            result,
            method: a.method.clone(),
            limit,
            before_id: cursor.logs,
            since,
            until,
        };
        let tq = TxQuery {
            container: a.container,
            destination: a.destination,
            method: a.method,
            status: a.status,
            upgrade_id: a.upgrade_id,
            since,
            until,
            limit,
            before_id: cursor.txs,
        };
        let store = self.store.clone();
        let logs_done = cursor.logs == Some(0);
        let txs_done = cursor.txs == Some(0);
        let (logs, txs) = tokio::task::spawn_blocking(move || {
            let logs = if want_logs && !logs_done {
                Some(store.query_logs(&lq))
            } else {
                None
            };
            let txs = if want_txs && !txs_done {
                Some(store.query_transactions(&tq))
            } else {
                None
            };
            (logs, txs)
        })
        .await
        .map_err(|e| PolicyError::Background(e.to_string()))?;
        let logs = logs.transpose()?;
        let txs = txs.transpose()?;

        let mut total = 0;
        let mut merged: Vec<ActivityItem> = Vec::new();
        let mut log_more = false;
        let mut tx_more = false;
        if let Some(p) = &logs {
            total += p.total;
            log_more = p.next_before_id.is_some();
            merged.extend(
                p.items
                    .iter()
                    .map(|r| ActivityItem::Connection(r.to_wire())),
            );
        }
        if let Some(p) = &txs {
            total += p.total;
            tx_more = p.next_before_id.is_some();
            merged.extend(p.items.iter().cloned().map(ActivityItem::Transaction));
        }
        // Newest first; within one second, higher ids first.
        merged.sort_by_key(|i| std::cmp::Reverse(item_time(i)));
        let leftover_logs = merged
            .iter()
            .skip(limit)
            .any(|i| matches!(i, ActivityItem::Connection(_)));
        let leftover_txs = merged
            .iter()
            .skip(limit)
            .any(|i| matches!(i, ActivityItem::Transaction(_)));
        merged.truncate(limit);
        let last_log = merged.iter().rev().find_map(|i| match i {
            ActivityItem::Connection(r) => Some(r.id),
            _ => None,
        });
        let last_tx = merged.iter().rev().find_map(|i| match i {
            ActivityItem::Transaction(t) => Some(t.id),
            _ => None,
        });
        let next = Cursor {
            logs: if !want_logs || logs_done || (!log_more && !leftover_logs) {
                Some(0)
            } else {
                last_log.or(cursor.logs)
            },
            txs: if !want_txs || txs_done || (!tx_more && !leftover_txs) {
                Some(0)
            } else {
                last_tx.or(cursor.txs)
            },
        };
        let next_cursor = (next.logs != Some(0) || next.txs != Some(0)).then(|| next.render());
        Ok(Page {
            items: merged,
            total,
            next_cursor,
        })
    }

    /// `get_transaction`.
    pub(crate) async fn get_transaction(&self, id: u64) -> Result<Transaction, PolicyError> {
        self.transactions.flush().await;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.get_transaction(id))
            .await
            .map_err(|e| PolicyError::Background(e.to_string()))??
            .ok_or_else(|| bad(format!("transaction {id} not found")))
    }

    /// One page of the `export` command (HAR entries).
    pub(crate) async fn export_page(
        &self,
        a: greyproxy_protocol::export::ExportArgs,
    ) -> Result<greyproxy_protocol::export::ExportPage, String> {
        self.transactions.flush().await;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || crate::export::har::page(&store, &a))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursor_round_trip() {
        for c in [
            Cursor::default(),
            Cursor {
                logs: Some(12),
                txs: None,
            },
            Cursor {
                logs: Some(0),
                txs: Some(7),
            },
        ] {
            assert_eq!(Cursor::parse(&c.render()), Some(c));
        }
        assert_eq!(Cursor::parse("12"), None);
        assert_eq!(Cursor::parse("cx_t1"), None);
    }
}
