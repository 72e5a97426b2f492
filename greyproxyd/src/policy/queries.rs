//! Read-only views of the policy state for the control protocol: paged lists of pending
//! requests and rules, and counts for `status`.

use greyproxy_protocol::command::ListArgs;
use greyproxy_protocol::{Page, PendingRequest, Rule};

use super::engine::Policy;
use super::error::PolicyError;

/// Default and maximum page sizes of list commands.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Largest page a client may ask for.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Decodes a list cursor (an offset, opaque to clients) and the page size.
pub(crate) fn page_bounds(args: &ListArgs) -> Result<(usize, usize), PolicyError> {
    let offset = match args.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse()
            .map_err(|_| PolicyError::Invalid(format!("invalid cursor {c:?}")))?,
    };
    let limit = args
        .limit
        .map(|l| (l as usize).clamp(1, MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    Ok((offset, limit))
}

/// Cuts one page out of `items` (already filtered and sorted).
pub(crate) fn paginate<T>(items: Vec<T>, offset: usize, limit: usize) -> Page<T> {
    let total = items.len() as u64;
    let end = offset.saturating_add(limit);
    let next_cursor = (end < items.len()).then(|| end.to_string());
    let items = items.into_iter().skip(offset).take(limit).collect();
    Page {
        items,
        total,
        next_cursor,
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

impl Policy {
    /// Pending requests, most recently seen first, with live waiting counts.
    pub(crate) fn list_pending(
        &self,
        args: &ListArgs,
    ) -> Result<Page<PendingRequest>, PolicyError> {
        let (offset, limit) = page_bounds(args)?;
        let st = self.lock();
        let mut items: Vec<PendingRequest> = st
            .pending
            .values()
            .filter(|p| {
                args.container
                    .as_deref()
                    .is_none_or(|c| contains_ci(&p.container_name, c))
            })
            .filter(|p| {
                args.destination.as_deref().is_none_or(|d| {
                    contains_ci(&p.destination_host, d)
                        || p.resolved_hostname
                            .as_deref()
                            .is_some_and(|r| contains_ci(r, d))
                })
            })
            .map(|p| p.to_wire(st.waiters.get(&p.id).copied().unwrap_or(0)))
            .collect();
        items.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.id.cmp(&a.id)));
        Ok(paginate(items, offset, limit))
    }

    /// Rules, newest first. `include_expired` defaults to true.
    pub(crate) fn list_rules(&self, args: &ListArgs) -> Result<Page<Rule>, PolicyError> {
        let (offset, limit) = page_bounds(args)?;
        let now = self.clock.now_secs();
        let include_expired = args.include_expired.unwrap_or(true);
        let st = self.lock();
        let mut items: Vec<Rule> = st
            .rules
            .iter()
            .filter(|r| include_expired || r.is_active(now))
            .filter(|r| args.action.is_none_or(|a| r.action == a))
            .filter(|r| {
                args.container
                    .as_deref()
                    .is_none_or(|c| contains_ci(&r.container_pattern, c))
            })
            .filter(|r| {
                args.destination
                    .as_deref()
                    .is_none_or(|d| contains_ci(&r.destination_pattern, d))
            })
            .map(|r| r.to_wire(now))
            .collect();
        items.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(paginate(items, offset, limit))
    }

    /// Number of pending requests.
    pub(crate) fn pending_count(&self) -> u64 {
        self.lock().pending.len() as u64
    }

    /// Number of rules, expired included.
    pub(crate) fn rule_count(&self) -> u64 {
        self.lock().rules.len() as u64
    }

    /// A rule by id.
    #[cfg(test)]
    pub(crate) fn rule(&self, id: u64) -> Option<Rule> {
        let now = self.clock.now_secs();
        self.lock()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.to_wire(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_cursors() {
        let p = paginate((0..5).collect::<Vec<_>>(), 0, 2);
        assert_eq!(
            (p.items, p.total, p.next_cursor.as_deref()),
            (vec![0, 1], 5, Some("2"))
        );
        let p = paginate((0..5).collect::<Vec<_>>(), 4, 2);
        assert_eq!((p.items, p.next_cursor), (vec![4], None));
        let bad = ListArgs {
            cursor: Some("x".into()),
            ..Default::default()
        };
        assert!(page_bounds(&bad).is_err());
        let big = ListArgs {
            limit: Some(1_000_000),
            ..Default::default()
        };
        assert_eq!(page_bounds(&big).ok(), Some((0, MAX_LIMIT)));
    }
}
