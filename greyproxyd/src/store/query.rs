//! Activity-feed queries over `request_logs`: newest first, filtered, paged by id.
//!
//! Paging uses `before_id` (a keyset cursor) rather than an offset, so a page stays stable
//! while new rows arrive at the top of the feed.

use std::borrow::Cow;

use greyproxy_protocol::Decision;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Deserialize;

use super::{REQUEST_LOGS, Store, StoreError};
use crate::records::RequestLogRecord;

/// Filters and page of an activity-feed query. Empty strings count as "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogQuery {
    /// Case-insensitive substring of the container name.
    pub(crate) container: Option<String>,
    /// Case-insensitive substring of the destination host or the resolved hostname.
    pub(crate) destination: Option<String>,
    /// Only rows with this outcome.
    pub(crate) result: Option<Decision>,
    /// Case-insensitive equality with the method (`HTTP`, `SOCKS5`).
    pub(crate) method: Option<String>,
    /// Most rows returned; `0` returns none but still counts `total`.
    pub(crate) limit: usize,
    /// Only rows with a smaller id (the previous page's `next_before_id`).
    pub(crate) before_id: Option<u64>,
    /// Only rows decided at or after this Unix second.
    pub(crate) since: Option<u64>,
    /// Only rows decided before this Unix second.
    pub(crate) until: Option<u64>,
}

/// One page of the activity feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogPage {
    /// Matching rows, newest (highest id) first.
    pub(crate) items: Vec<RequestLogRecord>,
    /// Rows matching the filters in the whole table, regardless of `before_id`.
    pub(crate) total: u64,
    /// Cursor for the next page when more matching rows may follow, else `None`.
    pub(crate) next_before_id: Option<u64>,
}

/// The fields the filters look at, borrowed from the row where the JSON allows: a filtered
/// query reads every row to count `total`, and only the rows on the page need decoding fully.
#[derive(Deserialize)]
struct FilterView<'a> {
    #[serde(borrow)]
    container_name: Cow<'a, str>,
    #[serde(borrow)]
    destination_host: Cow<'a, str>,
    #[serde(default)]
    resolved_hostname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    result: Decision,
    timestamp: u64,
}

/// A [`LogQuery`]'s filters, with the strings lowercased once.
struct Filter {
    container: Option<String>,
    destination: Option<String>,
    result: Option<Decision>,
    method: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
}

impl Filter {
    fn new(q: &LogQuery) -> Filter {
        let norm = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
        };
        Filter {
            container: norm(&q.container),
            destination: norm(&q.destination),
            result: q.result,
            method: norm(&q.method),
            since: q.since,
            until: q.until,
        }
    }

    fn is_empty(&self) -> bool {
        self.container.is_none()
            && self.destination.is_none()
            && self.result.is_none()
            && self.method.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    fn matches(&self, row: &FilterView<'_>) -> bool {
        self.since.is_none_or(|s| row.timestamp >= s)
            && self.until.is_none_or(|u| row.timestamp < u)
            && self.result.is_none_or(|r| r == row.result)
            && self.method.as_deref().is_none_or(|m| eq_ci(&row.method, m))
            && self
                .container
                .as_deref()
                .is_none_or(|c| contains_ci(&row.container_name, c))
            && self.destination.as_deref().is_none_or(|d| {
                contains_ci(&row.destination_host, d)
                    || row
                        .resolved_hostname
                        .as_deref()
                        .is_some_and(|h| contains_ci(h, d))
            })
    }
}

/// Whether `haystack` contains `needle_lower` ignoring case; allocation-free for ASCII, which
/// host and container names nearly always are.
fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    if haystack.is_ascii() && needle_lower.is_ascii() {
        let needle = needle_lower.as_bytes();
        needle.is_empty()
            || haystack
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
    } else {
        haystack.to_lowercase().contains(needle_lower)
    }
}

/// Whether `value` equals `expected_lower` ignoring case.
fn eq_ci(value: &str, expected_lower: &str) -> bool {
    if value.is_ascii() {
        value.eq_ignore_ascii_case(expected_lower)
    } else {
        value.to_lowercase() == expected_lower
    }
}

/// Undecodable rows met by one query, reported once per query rather than once per row: the
/// feed is polled, and a bad row would otherwise warn on every poll for every row.
#[derive(Default)]
struct BadRows {
    count: u64,
    first_key: u64,
}

impl BadRows {
    fn note(&mut self, key: u64) {
        if self.count == 0 {
            self.first_key = key;
        }
        self.count += 1;
    }

    fn report(&self) {
        if self.count > 0 {
            tracing::warn!(
                table = "request_logs",
                key = self.first_key,
                rows = self.count,
                "skipping undecodable rows in the store"
            );
        }
    }
}

impl Store {
    /// One page of request logs matching `q`, newest first. See [`LogQuery`] and [`LogPage`].
    ///
    /// Without filters only the page's rows are read; with filters every row is read (cheaply,
    /// only the filtered fields) to count `total`. Rows that fail to decode are skipped.
    pub(crate) fn query_logs(&self, q: &LogQuery) -> Result<LogPage, StoreError> {
        let filter = Filter::new(q);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REQUEST_LOGS)?;
        let mut page = LogPage::default();
        let mut bad = BadRows::default();
        let mut more = false;
        if filter.is_empty() {
            page.total = table.len()?;
            let rows = match q.before_id {
                Some(before) => table.range(..before)?,
                None => table.iter()?,
            };
            for entry in rows.rev() {
                let (key, value) = entry?;
                if page.items.len() >= q.limit {
                    more = true;
                    break;
                }
                match serde_json::from_slice::<RequestLogRecord>(value.value()) {
                    Ok(row) => page.items.push(row),
                    Err(_) => bad.note(key.value()),
                }
            }
        } else {
            for entry in table.iter()?.rev() {
                let (key, value) = entry?;
                let id = key.value();
                let Ok(view) = serde_json::from_slice::<FilterView<'_>>(value.value()) else {
                    bad.note(id);
                    continue;
                };
                if !filter.matches(&view) {
                    continue;
                }
                page.total += 1;
                if q.before_id.is_some_and(|before| id >= before) {
                    continue;
                }
                if page.items.len() >= q.limit {
                    // Keep scanning: the total still needs the rest of the table.
                    more = true;
                    continue;
                }
                match serde_json::from_slice::<RequestLogRecord>(value.value()) {
                    Ok(row) => page.items.push(row),
                    Err(_) => {
                        page.total -= 1;
                        bad.note(id);
                    }
                }
            }
        }
        bad.report();
        if more {
            page.next_before_id = page.items.last().map(|row| row.id);
        }
        Ok(page)
    }
}
