//! A list the operator moves a selection over, and the keyed collection behind the pending,
//! rules and middlewares views: [`Listed`] keeps its items in order and its selection on the
//! same item (by key) while items are added, replaced and removed under it.

use std::ops::Deref;

/// A selection and the first visible row of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nav {
    /// Selected row.
    pub selected: usize,
    /// First visible row.
    pub offset: usize,
}

impl Nav {
    /// Keeps the selection inside `len` rows and visible in a window of `rows` rows.
    pub(crate) fn clamp(&mut self, len: usize, rows: usize) {
        let rows = rows.max(1);
        self.selected = self.selected.min(len.saturating_sub(1));
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
        // Do not leave empty space below the last row when the list shrank.
        self.offset = self.offset.min(len.saturating_sub(rows));
    }

    /// Moves the selection by `delta` rows.
    pub(crate) fn step(&mut self, delta: isize, len: usize, rows: usize) {
        self.selected = self.selected.saturating_add_signed(delta);
        self.clamp(len, rows);
    }

    /// Selects row `idx`.
    #[cfg(test)]
    pub(crate) fn go(&mut self, idx: usize, len: usize, rows: usize) {
        self.selected = idx;
        self.clamp(len, rows);
    }
}

/// What identifies an item of a [`Listed`] across updates from the daemon.
pub trait Keyed {
    /// The identity: an id, a URL.
    type Key: PartialEq;
    /// This item's identity.
    fn key(&self) -> Self::Key;
}

/// Items and the selection over them. Reads go through the slice it derefs to; every change
/// goes through a method that keeps the same item selected (by key) and the selection visible
/// in a window of `rows` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    items: Vec<T>,
    /// Selection and first visible row.
    pub(crate) nav: Nav,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed {
            items: Vec::new(),
            nav: Nav::default(),
        }
    }
}

impl<T> Deref for Listed<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> From<Vec<T>> for Listed<T> {
    fn from(items: Vec<T>) -> Self {
        Listed {
            items,
            nav: Nav::default(),
        }
    }
}

impl<T> Listed<T> {
    /// Empties the list; the selection goes back to the top.
    pub fn clear(&mut self) {
        self.items.clear();
        self.nav = Nav::default();
    }

    /// The selected item.
    pub(crate) fn selected(&self) -> Option<&T> {
        self.items.get(self.nav.selected)
    }

    /// Keeps the selection in the list and visible in `rows` rows.
    pub(crate) fn clamp(&mut self, rows: usize) {
        self.nav.clamp(self.items.len(), rows);
    }

    /// Moves the selection by `delta` rows.
    pub(crate) fn step(&mut self, delta: isize, rows: usize) {
        self.nav.step(delta, self.items.len(), rows);
    }
}

impl<T: Keyed> Listed<T> {
    /// Whether an item with `key` is listed.
    pub(crate) fn contains_key(&self, key: &T::Key) -> bool {
        self.items.iter().any(|x| x.key() == *key)
    }

    /// The item with `key`, to change in place (its key must stay the same).
    pub(crate) fn find_mut(&mut self, key: &T::Key) -> Option<&mut T> {
        self.items.iter_mut().find(|x| x.key() == *key)
    }

    /// Runs `change` on the items, then selects again the item that was selected before (when
    /// it is still there; the same row, clamped, when it is gone).
    fn keeping_selection(&mut self, rows: usize, change: impl FnOnce(&mut Vec<T>)) {
        let selected = self.selected().map(Keyed::key);
        change(&mut self.items);
        if let Some(i) = selected.and_then(|k| self.items.iter().position(|x| x.key() == k)) {
            self.nav.selected = i;
        }
        self.nav.clamp(self.items.len(), rows);
    }

    /// Replaces every item (a first page, a fresh list).
    pub(crate) fn replace(&mut self, items: Vec<T>, rows: usize) {
        self.keeping_selection(rows, |v| *v = items);
    }

    /// Appends items (a further page).
    #[cfg(test)]
    pub(crate) fn extend(&mut self, items: Vec<T>, rows: usize) {
        self.keeping_selection(rows, |v| v.extend(items));
    }

    /// Replaces one block of the list (the items `block` says `Equal` to; those before it say
    /// `Less`, after it `Greater`) with `items`, in their order: one host's page in a fleet.
    pub(crate) fn replace_block(
        &mut self,
        block: impl Fn(&T) -> std::cmp::Ordering,
        items: Vec<T>,
        rows: usize,
    ) {
        self.keeping_selection(rows, |v| {
            v.retain(|x| block(x) != std::cmp::Ordering::Equal);
            let at = v
                .iter()
                .position(|x| block(x) == std::cmp::Ordering::Greater)
                .unwrap_or(v.len());
            v.splice(at..at, items);
        });
    }

    /// Appends `items` at the end of one block (see [`Listed::replace_block`]).
    pub(crate) fn extend_block(
        &mut self,
        block: impl Fn(&T) -> std::cmp::Ordering,
        items: Vec<T>,
        rows: usize,
    ) {
        self.keeping_selection(rows, |v| {
            let at = v
                .iter()
                .position(|x| block(x) == std::cmp::Ordering::Greater)
                .unwrap_or(v.len());
            v.splice(at..at, items);
        });
    }

    /// Removes the item with `key`, if listed.
    pub(crate) fn remove(&mut self, key: &T::Key, rows: usize) {
        self.keeping_selection(rows, |v| v.retain(|x| x.key() != *key));
    }
}

impl<T: Keyed> Listed<T>
where
    T::Key: Ord,
{
    /// Replaces the item with the same key where it is, or inserts a new one in a list kept
    /// newest first: before the first item with a smaller key.
    pub(crate) fn upsert(&mut self, item: T, rows: usize) {
        self.keeping_selection(rows, |v| {
            let key = item.key();
            match v.iter_mut().find(|x| x.key() == key) {
                Some(x) => *x = item,
                None => {
                    let at = v.iter().position(|x| x.key() < key).unwrap_or(v.len());
                    v.insert(at, item);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id and a version, to see whether an item was replaced.
    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64, &'static str);

    impl Keyed for Item {
        type Key = u64;
        fn key(&self) -> u64 {
            self.0
        }
    }

    fn ids(l: &Listed<Item>) -> Vec<u64> {
        l.iter().map(|i| i.0).collect()
    }

    fn list(ids: &[u64]) -> Listed<Item> {
        ids.iter()
            .map(|&i| Item(i, "v1"))
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn nav_stays_visible_and_in_bounds() {
        let mut n = Nav::default();
        n.step(5, 10, 3);
        assert_eq!(
            n,
            Nav {
                selected: 5,
                offset: 3
            }
        );
        n.step(-5, 10, 3);
        assert_eq!(
            n,
            Nav {
                selected: 0,
                offset: 0
            }
        );
        n.step(100, 10, 3);
        assert_eq!(
            n,
            Nav {
                selected: 9,
                offset: 7
            }
        );
        n.clamp(2, 3);
        assert_eq!(
            n,
            Nav {
                selected: 1,
                offset: 0
            }
        );
        n.clamp(0, 3);
        assert_eq!(
            n,
            Nav {
                selected: 0,
                offset: 0
            }
        );
    }

    #[test]
    fn upsert_keeps_newest_first_and_the_selected_item() {
        let mut l = list(&[9, 5, 2]);
        l.nav.go(1, l.len(), 10); // on 5
        l.upsert(Item(7, "v1"), 10);
        assert_eq!(ids(&l), [9, 7, 5, 2]);
        assert_eq!(
            l.selected(),
            Some(&Item(5, "v1")),
            "selection follows the item"
        );
        l.upsert(Item(12, "v1"), 10);
        l.upsert(Item(1, "v1"), 10);
        assert_eq!(ids(&l), [12, 9, 7, 5, 2, 1]);
        assert_eq!(l.nav.selected, 3);
        l.upsert(Item(9, "v2"), 10);
        assert_eq!(ids(&l), [12, 9, 7, 5, 2, 1], "replaced in place");
        assert_eq!(l[1], Item(9, "v2"));
        assert_eq!(l.selected(), Some(&Item(5, "v1")));
    }

    #[test]
    fn an_insert_above_keeps_the_selection_visible() {
        let mut l = list(&[3, 2, 1]);
        l.nav.go(2, l.len(), 1); // on 1, one row shown
        l.upsert(Item(4, "v1"), 1);
        assert_eq!(
            l.nav,
            Nav {
                selected: 3,
                offset: 3
            }
        );
    }

    #[test]
    fn removing_the_selected_item_clamps_to_its_neighbour() {
        let mut l = list(&[4, 3, 2, 1]);
        l.nav.go(1, l.len(), 10); // on 3
        l.remove(&3, 10);
        assert_eq!(ids(&l), [4, 2, 1]);
        assert_eq!(
            l.selected(),
            Some(&Item(2, "v1")),
            "the next row takes its place"
        );
        l.nav.go(2, l.len(), 10); // on 1, the last
        l.remove(&1, 10);
        assert_eq!(l.selected(), Some(&Item(2, "v1")), "the last row moves up");
        l.remove(&4, 10);
        assert_eq!(
            l.selected(),
            Some(&Item(2, "v1")),
            "removal above keeps the item"
        );
        l.remove(&99, 10);
        assert_eq!(ids(&l), [2]);
        l.remove(&2, 10);
        assert!(l.is_empty());
        assert_eq!(l.nav, Nav::default());
    }

    #[test]
    fn pages_replace_or_extend_and_keep_the_selected_item() {
        let mut l = list(&[5, 4, 3]);
        l.nav.go(2, l.len(), 10); // on 3
        l.replace(vec![Item(6, "v1"), Item(5, "v1"), Item(3, "v2")], 10);
        assert_eq!(l.selected(), Some(&Item(3, "v2")));
        l.replace(vec![Item(8, "v1")], 10);
        assert_eq!((ids(&l), l.nav.selected), (vec![8], 0), "gone: clamped");
        l.extend(vec![Item(7, "v1"), Item(6, "v1")], 10);
        assert_eq!(ids(&l), [8, 7, 6]);
        assert_eq!(l.nav.selected, 0);
        l.step(5, 10);
        assert_eq!(l.selected(), Some(&Item(6, "v1")));
        l.clear();
        assert!(l.selected().is_none());
    }

    #[test]
    fn items_are_found_and_changed_by_key() {
        let mut l = list(&[2, 1]);
        assert!(l.contains_key(&1) && !l.contains_key(&3));
        if let Some(i) = l.find_mut(&1) {
            i.1 = "v2";
        }
        assert_eq!(l[1], Item(1, "v2"));
        assert!(l.find_mut(&3).is_none());
    }
}
