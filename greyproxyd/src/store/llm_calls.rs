//! LLM call records (`llm_calls`, id → JSON [`LlmCall`]) with an index by conversation, kept
//! under their own retention (a count and an age) so that calls outlive the transactions they
//! were read from.

use greyproxy_protocol::llm::LlmCall;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{IdKind, LLM_CALLS, META, Store, StoreError, TRANSACTIONS, raise};

/// `meta` key: the highest transaction id a stored call was read from. Transactions above it
/// were never dissected (recorded while the layer was off, or by a build without it).
const CURSOR_KEY: &str = "llm.cursor";
use crate::time::parse_timestamp_ms;

/// `(conversation id, call id) → ()`: the calls of one conversation without a scan.
pub(super) const LLM_CALLS_BY_CONV: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("llm_calls_by_conversation");

/// What `list_llm_calls` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallQuery {
    /// Only this conversation.
    pub(crate) conversation_id: Option<String>,
    /// Only this container.
    pub(crate) container: Option<String>,
    /// Only ids below this.
    pub(crate) before_id: Option<u64>,
    /// Page size.
    pub(crate) limit: usize,
}

impl Store {
    /// Stores calls (new or replaced) in one durable commit.
    pub(crate) fn put_llm_calls(&self, calls: &[LlmCall]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        let mut high = [0u64; super::N_KINDS];
        let cursor = calls
            .iter()
            .flat_map(|c| {
                std::iter::once(c.transaction_id).chain(c.response_transaction_ids.iter().copied())
            })
            .max()
            .unwrap_or(0);
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(CURSOR_KEY)?.is_none_or(|v| v.value() < cursor) {
                meta.insert(CURSOR_KEY, cursor)?;
            }
        }
        {
            let mut t = txn.open_table(LLM_CALLS)?;
            let mut by_conv = txn.open_table(LLM_CALLS_BY_CONV)?;
            for c in calls {
                if let Some(old) = t.insert(c.id, serde_json::to_vec(c)?.as_slice())?
                    && let Ok(old) = serde_json::from_slice::<LlmCall>(old.value())
                    && let Some(conv) = &old.conversation_id
                {
                    by_conv.remove((conv.as_str(), c.id))?;
                }
                if let Some(conv) = &c.conversation_id {
                    by_conv.insert((conv.as_str(), c.id), ())?;
                }
                raise(&mut high, IdKind::LlmCall, c.id);
            }
        }
        self.persist_counters(&txn, &high)?;
        txn.commit()?;
        Ok(())
    }

    /// One call.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) fn get_llm_call(&self, id: u64) -> Result<Option<LlmCall>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LLM_CALLS)?;
        Ok(match t.get(id)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// Calls newest first, filtered; the flag says whether more match beyond the page.
    pub(crate) fn list_llm_calls(&self, q: &CallQuery) -> Result<(Vec<LlmCall>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LLM_CALLS)?;
        let before = q.before_id.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let push = |c: LlmCall, out: &mut Vec<LlmCall>| -> bool {
            if q.container
                .as_ref()
                .is_some_and(|want| *want != c.container_name)
            {
                return true;
            }
            if out.len() == q.limit {
                return false;
            }
            out.push(c);
            true
        };
        let mut more = false;
        if let Some(conv) = &q.conversation_id {
            // Created with the first call that has a conversation: none yet, no calls.
            let idx = match txn.open_table(LLM_CALLS_BY_CONV) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok((out, false)),
                Err(e) => return Err(e.into()),
            };
            for e in idx
                .range((conv.as_str(), 0)..(conv.as_str(), before))?
                .rev()
            {
                let id = e?.0.value().1;
                let Some(v) = t.get(id)? else { continue };
                let Ok(c) = serde_json::from_slice::<LlmCall>(v.value()) else {
                    continue;
                };
                if !push(c, &mut out) {
                    more = true;
                    break;
                }
            }
        } else {
            for e in t.range(..before)?.rev() {
                let (_, v) = e?;
                let Ok(c) = serde_json::from_slice::<LlmCall>(v.value()) else {
                    continue;
                };
                if !push(c, &mut out) {
                    more = true;
                    break;
                }
            }
        }
        Ok((out, more))
    }

    /// Visits the calls whose timestamp is in `[since_ms, until_ms)`, newest first. Ids follow
    /// dissection order, which follows time closely but not exactly (a long stream finishes
    /// after shorter ones that started later): the walk goes on for an hour of timestamps past
    /// the window's start before it stops.
    pub(crate) fn scan_llm_calls(
        &self,
        since_ms: u64,
        until_ms: u64,
        mut f: impl FnMut(&LlmCall),
    ) -> Result<(), StoreError> {
        const SLACK_MS: u64 = 3_600_000;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LLM_CALLS)?;
        for e in t.iter()?.rev() {
            let (_, v) = e?;
            let Ok(c) = serde_json::from_slice::<LlmCall>(v.value()) else {
                continue;
            };
            let ts = parse_timestamp_ms(&c.timestamp).unwrap_or(0);
            if ts < since_ms.saturating_sub(SLACK_MS) {
                break;
            }
            if ts >= since_ms && ts < until_ms {
                f(&c);
            }
        }
        Ok(())
    }

    /// Where dissection stands (see `CURSOR_KEY`), and the newest transaction id: `None` for
    /// the first when no call was ever stored.
    pub(crate) fn llm_cursor(&self) -> Result<(Option<u64>, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let cursor = meta.get(CURSOR_KEY)?.map(|v| v.value());
        let newest = txn
            .open_table(TRANSACTIONS)?
            .last()?
            .map_or(0, |(k, _)| k.value());
        Ok((cursor, newest))
    }

    /// Records that every transaction up to `id` was looked at (a rebuild over a store with no
    /// LLM calls at all).
    pub(crate) fn set_llm_cursor(&self, id: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(CURSOR_KEY)?.is_none_or(|v| v.value() < id) {
                meta.insert(CURSOR_KEY, id)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Number of stored calls.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) fn count_llm_calls(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(LLM_CALLS)?.len()?)
    }

    /// Deletes the oldest calls beyond `max_rows` (0 = no limit) and those older than
    /// `older_than_ms` (0 = no age limit). Returns how many went.
    pub(crate) fn prune_llm_calls(
        &self,
        max_rows: u64,
        older_than_ms: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut t = txn.open_table(LLM_CALLS)?;
            let mut by_conv = txn.open_table(LLM_CALLS_BY_CONV)?;
            let mut len = t.len()?;
            loop {
                let Some((id, conv, ts)) = t.first()?.map(|(k, v)| {
                    let c = serde_json::from_slice::<LlmCall>(v.value()).ok();
                    let ts = c
                        .as_ref()
                        .and_then(|c| parse_timestamp_ms(&c.timestamp))
                        .unwrap_or(0);
                    (k.value(), c.and_then(|c| c.conversation_id), ts)
                }) else {
                    break;
                };
                let over = max_rows > 0 && len > max_rows;
                let old = older_than_ms > 0 && ts < older_than_ms;
                if !over && !old {
                    break;
                }
                t.remove(id)?;
                if let Some(conv) = conv {
                    by_conv.remove((conv.as_str(), id))?;
                }
                len -= 1;
                removed += 1;
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Deletes every call (before a rebuild).
    pub(crate) fn clear_llm_calls(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(LLM_CALLS)?.retain(|_, _| false)?;
            txn.open_table(LLM_CALLS_BY_CONV)?.retain(|_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// A minimal call for tests of the layers above.
#[cfg(test)]
pub(crate) fn test_call(id: u64, ms: u64, container: &str, conv: Option<&str>) -> LlmCall {
    tests::call(id, ms, container, conv)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use greyproxy_protocol::llm::{Cost, LlmClient, LlmThread, PriceState, SessionSource};

    use super::*;
    use crate::time::rfc3339_ms;

    pub(crate) fn call(id: u64, ms: u64, container: &str, conv: Option<&str>) -> LlmCall {
        LlmCall {
            id,
            transaction_id: id * 10,
            response_transaction_ids: vec![],
            upgrade_id: None,
            timestamp: rfc3339_ms(ms),
            container_name: container.into(),
            client: LlmClient::ClaudeCode,
            provider: "anthropic".into(),
            operation: "chat".into(),
            decoder: "anthropic".into(),
            host: "api.anthropic.com".into(),
            model_requested: Some("claude-sonnet-4-5".into()),
            model_answered: None,
            response_id: None,
            session_id: None,
            session_source: SessionSource::Wire,
            thread: LlmThread::Main,
            conversation_id: conv.map(str::to_owned),
            turn: None,
            stream: true,
            stop_reason: None,
            status_code: Some(200),
            duration_ms: None,
            ttft_ms: None,
            tool_calls: vec![],
            last_text: None,
            error: None,
            usage: None,
            usage_raw: None,
            cost: Cost {
                state: PriceState::NoUsage,
                micro_usd: None,
                price_model: None,
                table_version: "t".into(),
                provider_micro_usd: None,
            },
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, s)
    }

    fn ids(v: &[LlmCall]) -> Vec<u64> {
        v.iter().map(|c| c.id).collect()
    }

    #[test]
    fn list_filters_pages_and_follows_conversation_moves() {
        let (_d, s) = store();
        let calls: Vec<_> = (1..=6)
            .map(|i| {
                let conv = if i % 2 == 0 { Some("a") } else { Some("b") };
                call(i, i * 1000, if i <= 3 { "c1" } else { "c2" }, conv)
            })
            .collect();
        s.put_llm_calls(&calls).unwrap();
        let q =
            |conv: Option<&str>, container: Option<&str>, before: Option<u64>, limit| CallQuery {
                conversation_id: conv.map(str::to_owned),
                container: container.map(str::to_owned),
                before_id: before,
                limit,
            };
        let (page, more) = s.list_llm_calls(&q(None, None, None, 4)).unwrap();
        assert_eq!((ids(&page), more), (vec![6, 5, 4, 3], true));
        let (page, more) = s.list_llm_calls(&q(None, None, Some(3), 4)).unwrap();
        assert_eq!((ids(&page), more), (vec![2, 1], false));
        let (page, _) = s.list_llm_calls(&q(Some("a"), None, None, 10)).unwrap();
        assert_eq!(ids(&page), vec![6, 4, 2]);
        let (page, _) = s
            .list_llm_calls(&q(Some("a"), Some("c1"), None, 10))
            .unwrap();
        assert_eq!(ids(&page), vec![2]);
        // Re-storing a call under another conversation moves it in the index.
        let mut moved = calls[1].clone();
        moved.conversation_id = Some("b".into());
        s.put_llm_calls(&[moved]).unwrap();
        let (page, _) = s.list_llm_calls(&q(Some("a"), None, None, 10)).unwrap();
        assert_eq!(ids(&page), vec![6, 4]);
        assert_eq!(
            s.get_llm_call(2)
                .unwrap()
                .unwrap()
                .conversation_id
                .as_deref(),
            Some("b")
        );
        // Ids handed out continue past what was stored, across a reopen too.
        assert!(s.next_id(IdKind::LlmCall) > 6);
    }

    #[test]
    fn scan_window_prune_and_clear() {
        let (_d, s) = store();
        let calls: Vec<_> = (1..=5).map(|i| call(i, i * 1000, "c", Some("x"))).collect();
        s.put_llm_calls(&calls).unwrap();
        let mut seen = vec![];
        s.scan_llm_calls(2000, 4000, |c| seen.push(c.id)).unwrap();
        assert_eq!(seen, vec![3, 2]);
        assert_eq!(s.prune_llm_calls(3, 0).unwrap(), 2);
        assert_eq!(s.count_llm_calls().unwrap(), 3);
        assert_eq!(s.prune_llm_calls(0, 4000).unwrap(), 1);
        let (page, _) = s
            .list_llm_calls(&CallQuery {
                conversation_id: Some("x".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&page), vec![5, 4]);
        s.clear_llm_calls().unwrap();
        assert_eq!(s.count_llm_calls().unwrap(), 0);
    }
}
