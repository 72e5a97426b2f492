//! What the OTLP exporter reads (docs/export.md): calls and transactions after its cursor in
//! id order, the newest ids (its lag), and its cursors, kept in `settings` so that a restart
//! resumes where the last accepted request ended (at-least-once).

use greyproxy_protocol::llm::LlmCall;
use redb::{ReadableDatabase, ReadableTable, TableError};

use super::{LLM_CALLS, Op, Store, StoreError, TRANSACTIONS};

impl Store {
    /// Calls with ids above `after_id`, ascending, at most `limit`; rows that do not parse are
    /// skipped.
    pub(crate) fn llm_calls_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<LlmCall>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(LLM_CALLS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in t.range(after_id.saturating_add(1)..)? {
            let (_, v) = e?;
            if let Ok(c) = serde_json::from_slice::<LlmCall>(v.value()) {
                out.push(c);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The highest stored call id and transaction id (0 when none).
    pub(crate) fn newest_ids(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let last = |def| -> Result<u64, StoreError> {
            match txn.open_table(def) {
                Ok(t) => Ok(t.last()?.map_or(0, |(k, _)| k.value())),
                Err(TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(e.into()),
            }
        };
        Ok((last(LLM_CALLS)?, last(TRANSACTIONS)?))
    }

    /// A cursor of the exporter (`settings` key `key`), 0 when never written.
    pub(crate) fn export_cursor(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .get_setting(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// Moves a cursor of the exporter, durably.
    pub(crate) fn set_export_cursor(&self, key: &str, id: u64) -> Result<(), StoreError> {
        self.apply(&[Op::PutSetting(key.to_owned(), id.to_le_bytes().to_vec())])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_call;
    use super::*;

    #[test]
    fn calls_after_a_cursor_in_id_order_and_cursors_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Store::open(&path).unwrap();
        assert!(s.llm_calls_after(0, 10).unwrap().is_empty());
        assert_eq!(s.newest_ids().unwrap(), (0, 0));
        let calls: Vec<LlmCall> = (1..=5)
            .map(|i| test_call(i, 1_000 * i, "dev", Some("c")))
            .collect();
        s.put_llm_calls(&calls).unwrap();
        let ids = |v: Vec<LlmCall>| v.iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(s.llm_calls_after(0, 2).unwrap()), [1, 2]);
        assert_eq!(ids(s.llm_calls_after(3, 10).unwrap()), [4, 5]);
        assert_eq!(s.newest_ids().unwrap().0, 5);
        assert_eq!(s.export_cursor("export.otlp.calls").unwrap(), 0);
        s.set_export_cursor("export.otlp.calls", 3).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.export_cursor("export.otlp.calls").unwrap(), 3);
    }
}
