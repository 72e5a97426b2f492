//! The IP → hostname cache filled from DNS answers (docs/configuration.md#dns): bounded (LRU),
//! TTL-aware (record TTLs clamped to [[`TTL_FLOOR`], [`TTL_CEILING`]]) and mirrored in the store's
//! `dns_cache` table through a batching [`Sink`], so that lookups never touch the disk.
//!
//! Last writer wins: an IP shared by several names maps to whichever was answered last, as in
//! greyproxy.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RData;
use lru::LruCache;

use crate::store::{DnsCacheRow, Sink, Store, WriteBatch, spawn_writer};
use crate::time::now_secs;

/// Shortest time a mapping is kept, whatever the record's TTL: short TTLs (CDNs answer 20 s)
/// would otherwise forget a name between the lookup and a connection made a little later.
pub(crate) const TTL_FLOOR: u64 = 60;
/// Longest time a mapping is kept.
pub(crate) const TTL_CEILING: u64 = 7 * 24 * 3600;
/// Default number of IPs remembered.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// One remembered name.
#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    expires_at: u64,
    /// Expiry of the copy in the store (0 = none): a repeated answer is written again only
    /// when the stored copy has used up half its life, not on every query.
    persisted_until: u64,
}

/// The cache. `Send + Sync`; share it as `Arc<DnsCache>`.
pub(crate) struct DnsCache {
    map: Mutex<LruCache<IpAddr, Entry>>,
    capacity: usize,
    sink: Option<Sink<DnsCacheRow>>,
}

impl std::fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("persisted", &self.sink.is_some())
            .finish()
    }
}

impl DnsCache {
    /// An in-memory cache of at most `capacity` IPs (at least 1), persisting nothing.
    pub(crate) fn new(capacity: usize) -> DnsCache {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        DnsCache {
            map: Mutex::new(LruCache::new(cap)),
            capacity: cap.get(),
            sink: None,
        }
    }

    /// A cache mirrored in `store`: loads the unexpired rows, then starts the batching writer
    /// (on the current tokio runtime) that stores new mappings. Blocks on a store read.
    pub(crate) fn open(
        store: Arc<Store>,
        capacity: usize,
    ) -> Result<DnsCache, crate::store::StoreError> {
        let mut cache = DnsCache::new(capacity);
        let now = now_secs();
        let rows = store.load_dns_cache(now)?;
        {
            let mut map = cache.lock();
            for row in rows {
                map.put(
                    row.ip.to_canonical(),
                    Entry {
                        name: Arc::from(row.hostname),
                        expires_at: row.expires_at,
                        persisted_until: row.expires_at,
                    },
                );
            }
        }
        let max_rows = u64::try_from(cache.capacity).unwrap_or(u64::MAX);
        let write: WriteBatch<DnsCacheRow> =
            Arc::new(move |store: &Store, rows| store.put_dns_cache(rows, max_rows, now_secs()));
        cache.sink = Some(spawn_writer(
            store,
            4096,
            "dns cache",
            write,
            Box::new(|_| {}),
        ));
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<IpAddr, Entry>> {
        // A panic while holding the lock leaves a consistent map (each operation is one call).
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of IPs remembered (expired ones included until looked up or evicted).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers `ip → name` for `ttl` seconds (clamped) from `now`. `name` is normalised:
    /// lower-case, no trailing dot; an empty name is ignored.
    pub(crate) fn insert(&self, ip: IpAddr, name: &str, ttl: u32, now: u64) {
        let name = normalise(name);
        if name.is_empty() {
            return;
        }
        let ip = ip.to_canonical();
        let ttl = u64::from(ttl).clamp(TTL_FLOOR, TTL_CEILING);
        let expires_at = now.saturating_add(ttl);
        let persist = {
            let mut map = self.lock();
            let (name, persisted_until) = match map.get(&ip) {
                Some(e) if *e.name == *name => (e.name.clone(), e.persisted_until),
                _ => (Arc::from(name.as_str()), 0),
            };
            // Never shorten a mapping the store already holds for longer (a repeated answer
            // with a lower remaining TTL is the same mapping, counted down).
            let expires_at = expires_at.max(persisted_until);
            let persist = persisted_until < now.saturating_add(ttl / 2);
            map.put(
                ip,
                Entry {
                    name,
                    expires_at,
                    persisted_until: if persist { expires_at } else { persisted_until },
                },
            );
            persist.then_some(expires_at)
        };
        if let (Some(expires_at), Some(sink)) = (persist, &self.sink) {
            sink.record(DnsCacheRow {
                ip,
                hostname: name,
                expires_at,
            });
        }
    }

    /// The name remembered for `ip`, if still valid at `now`.
    pub(crate) fn lookup(&self, ip: IpAddr, now: u64) -> Option<String> {
        let ip = ip.to_canonical();
        let mut map = self.lock();
        match map.get(&ip) {
            Some(e) if e.expires_at > now => Some(e.name.to_string()),
            Some(_) => {
                map.pop(&ip);
                None
            }
            None => None,
        }
    }

    /// The name remembered for a destination host when it is an IP literal (brackets allowed);
    /// `None` for names and unknown IPs. What the proxy front ends put in
    /// [`ConnRequest::resolved`](crate::policy::ConnRequest::resolved).
    pub(crate) fn resolve_host(&self, host: &str) -> Option<String> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = literal.parse().ok()?;
        self.lookup(ip, now_secs())
    }

    /// Learns from one DNS response (wire bytes): each A/AAAA answer maps its address to the
    /// question name (not the record's owner, which after a CNAME chain is the CDN's name).
    /// Returns how many addresses were learnt; anything unparsable learns nothing.
    pub(crate) fn learn(&self, response: &[u8], now: u64) -> usize {
        let Ok(msg) = Message::from_vec(response) else {
            return 0;
        };
        if msg.metadata.message_type != MessageType::Response {
            return 0;
        }
        let Some(question) = msg.queries.first() else {
            return 0;
        };
        let name = question.name().to_ascii();
        let mut learnt = 0;
        for record in &msg.answers {
            let ip = match &record.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            self.insert(ip, &name, record.ttl, now);
            learnt += 1;
        }
        learnt
    }

    /// Waits until every mapping queued for the store so far is written (at shutdown).
    pub(crate) async fn flush(&self) {
        if let Some(sink) = &self.sink {
            sink.flush().await;
        }
    }
}

/// Lower-case, without the trailing dot of a fully qualified name.
fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ttl_is_clamped_and_expired_entries_are_forgotten() {
        let c = DnsCache::new(16);
        c.insert(ip("10.0.0.1"), "Example.TEST.", 5, 1000);
        assert_eq!(
            c.lookup(ip("10.0.0.1"), 1000).as_deref(),
            Some("example.test")
        );
        // 5 s is raised to the floor.
        assert!(c.lookup(ip("10.0.0.1"), 1000 + TTL_FLOOR - 1).is_some());
        assert!(c.lookup(ip("10.0.0.1"), 1000 + TTL_FLOOR).is_none());
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        c.insert(ip("10.0.0.2"), "b.test", u32::MAX, 0);
        assert!(c.lookup(ip("10.0.0.2"), TTL_CEILING - 1).is_some());
        assert!(c.lookup(ip("10.0.0.2"), TTL_CEILING).is_none());
    }

    #[tokio::test]
    async fn mappings_are_stored_without_rewrites_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let c = DnsCache::open(store.clone(), 8).unwrap();
        let now = now_secs();
        c.insert(ip("10.0.0.1"), "a.test", 300, now);
        // The same answer again soon after: memory is extended, the store is not rewritten.
        c.insert(ip("10.0.0.1"), "a.test", 300, now + 10);
        c.flush().await;
        let rows = store.load_dns_cache(now).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].expires_at, now + 300);
        assert_eq!(rows[0].hostname, "a.test");
        let again = DnsCache::open(store, 8).unwrap();
        assert_eq!(
            again.lookup(ip("10.0.0.1"), now + 1).as_deref(),
            Some("a.test")
        );
    }

    #[test]
    fn bounded_lru_and_last_writer_wins() {
        let c = DnsCache::new(2);
        c.insert(ip("10.0.0.1"), "a.test", 300, 0);
        c.insert(ip("10.0.0.2"), "b.test", 300, 0);
        // Touch .1 so that .2 is the least recently used.
        assert!(c.lookup(ip("10.0.0.1"), 1).is_some());
        c.insert(ip("10.0.0.3"), "c.test", 300, 0);
        assert_eq!(c.len(), 2);
        assert!(c.lookup(ip("10.0.0.2"), 1).is_none());
        c.insert(ip("10.0.0.1"), "z.test", 300, 0);
        assert_eq!(c.lookup(ip("10.0.0.1"), 1).as_deref(), Some("z.test"));
        assert!(DnsCache::new(0).capacity >= 1);
    }

    #[test]
    fn mapped_v6_and_bracketed_literals_find_the_v4_entry() {
        let c = DnsCache::new(4);
        c.insert(ip("::ffff:127.0.0.100"), "x.test", 300, now_secs());
        assert_eq!(c.resolve_host("127.0.0.100").as_deref(), Some("x.test"));
        c.insert(ip("2001:db8::1"), "v6.test", 300, now_secs());
        assert_eq!(c.resolve_host("[2001:db8::1]").as_deref(), Some("v6.test"));
        assert!(c.resolve_host("example.test").is_none());
    }

    #[test]
    fn learns_a_and_aaaa_answers_under_the_question_name() {
        use hickory_proto::op::{OpCode, Query};
        use hickory_proto::rr::rdata::{A, AAAA, CNAME};
        use hickory_proto::rr::{Name, Record, RecordType};
        let q = Name::from_ascii("WWW.Example.test.").unwrap();
        let cdn = Name::from_ascii("edge.cdn.test.").unwrap();
        let mut m = Message::response(7, OpCode::Query);
        m.add_query(Query::query(q.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(q, 30, RData::CNAME(CNAME(cdn.clone()))));
        m.add_answer(Record::from_rdata(
            cdn.clone(),
            30,
            RData::A(A::new(192, 0, 2, 7)),
        ));
        m.add_answer(Record::from_rdata(
            cdn,
            30,
            RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
        ));
        let c = DnsCache::new(8);
        assert_eq!(c.learn(&m.to_vec().unwrap(), 0), 2);
        assert_eq!(
            c.lookup(ip("192.0.2.7"), 1).as_deref(),
            Some("www.example.test")
        );
        assert_eq!(
            c.lookup(ip("2001:db8::7"), 1).as_deref(),
            Some("www.example.test")
        );
        assert_eq!(c.learn(b"garbage", 0), 0);
        // A query is not an answer.
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(c.learn(&query.to_vec().unwrap(), 0), 0);
    }
}
