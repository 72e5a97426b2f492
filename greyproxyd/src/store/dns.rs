//! The `dns_cache` table (`&str` IP → JSON [`DnsCacheRow`]): the IP → hostname mappings learnt
//! from DNS answers, kept so that connections to raw IPs are still named after a restart
//! (docs/design.md#plain-http-policy). Rows are written in batches by a [`super::spawn_writer`]
//! sink; expired rows are skipped at load and pruned once the table outgrows its bound.

use std::net::IpAddr;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Keyed by the IP's canonical text (`192.0.2.1`, `2001:db8::1`).
const DNS_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("dns_cache");

/// One IP → hostname mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DnsCacheRow {
    /// The answered address.
    pub(crate) ip: IpAddr,
    /// The question name (lower-case, no trailing dot).
    pub(crate) hostname: String,
    /// Unix seconds after which the mapping is no longer used.
    pub(crate) expires_at: u64,
}

impl Store {
    /// Inserts or replaces `rows` in one durable transaction. When the table then holds more
    /// than `max_rows + max_rows / 4` rows, expired rows and then the soonest-expiring ones are
    /// deleted until `max_rows` remain (`0` keeps everything); the slack keeps that full scan
    /// rare. Blocks on an fsync.
    pub(crate) fn put_dns_cache(
        &self,
        rows: &[DnsCacheRow],
        max_rows: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DNS_CACHE)?;
            for row in rows {
                let key = row.ip.to_canonical().to_string();
                table.insert(key.as_str(), serde_json::to_vec(row)?.as_slice())?;
            }
            if max_rows > 0 && table.len()? > max_rows.saturating_add(max_rows / 4) {
                let mut all: Vec<(u64, String)> = Vec::new();
                for entry in table.iter()? {
                    let (key, value) = entry?;
                    // An undecodable row counts as expired: it is useless anyway.
                    let expires = serde_json::from_slice::<DnsCacheRow>(value.value())
                        .map_or(0, |r| r.expires_at);
                    all.push((expires, key.value().to_string()));
                }
                all.sort_unstable();
                let excess = all
                    .len()
                    .saturating_sub(usize::try_from(max_rows).unwrap_or(0));
                for (i, (expires, key)) in all.iter().enumerate() {
                    if i >= excess && *expires > now {
                        break;
                    }
                    table.remove(key.as_str())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The mappings still valid at `now`, soonest-expiring first (so that inserting them in
    /// order into an LRU keeps the longest-lived ones when it overflows).
    pub(crate) fn load_dns_cache(&self, now: u64) -> Result<Vec<DnsCacheRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(DNS_CACHE) {
            Ok(t) => t,
            // Written by a build without DNS support, or nothing cached yet.
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            if let Ok(row) = serde_json::from_slice::<DnsCacheRow>(value.value())
                && row.expires_at > now
            {
                out.push(row);
            }
        }
        out.sort_by_key(|r| r.expires_at);
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(ip: &str, name: &str, expires_at: u64) -> DnsCacheRow {
        DnsCacheRow {
            ip: ip.parse().unwrap(),
            hostname: name.into(),
            expires_at,
        }
    }

    #[test]
    fn rows_round_trip_skip_expired_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.load_dns_cache(0).unwrap().is_empty());
        store
            .put_dns_cache(
                &[
                    row("10.0.0.1", "a.test", 200),
                    row("10.0.0.2", "b.test", 50),
                ],
                0,
                100,
            )
            .unwrap();
        // Replacing keeps one row per IP.
        store
            .put_dns_cache(&[row("10.0.0.1", "c.test", 300)], 0, 100)
            .unwrap();
        assert_eq!(
            store.load_dns_cache(100).unwrap(),
            vec![row("10.0.0.1", "c.test", 300)]
        );
        // Over the bound (4 + 1 slack): the expired row goes first, then the soonest-expiring.
        let many: Vec<_> = (3..10)
            .map(|i| row(&format!("10.0.0.{i}"), "x.test", 1000 + i))
            .collect();
        store.put_dns_cache(&many, 4, 100).unwrap();
        let left = store.load_dns_cache(0).unwrap();
        assert_eq!(left.len(), 4, "{left:?}");
        assert_eq!(left[0].expires_at, 1006);
    }
}
