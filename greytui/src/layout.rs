//! Screen geometry both halves of the dashboard rely on: the state machine pages and prefetches
//! by the number of rows a list shows, the drawing puts those rows on screen. Keeping the
//! counts here lets [`crate::app`] size its pages without importing the drawing code.

/// Rows of chrome around a list: view tabs, table header, footer hints, message, status bar.
pub(crate) const CHROME_ROWS: u16 = 5;

/// Rows of the upgrade summary and the table heading above a WebSocket upgrade's message list.
pub(crate) const WS_HEAD_ROWS: u16 = 8;

/// Visible rows of a list in a terminal `height` rows tall (at least one).
pub(crate) fn list_rows(height: u16) -> usize {
    height.saturating_sub(CHROME_ROWS).max(1) as usize
}

/// Visible rows of the message list of an upgrade's detail in a terminal `height` rows tall
/// (at least one): the detail has no table header of its own, the summary takes its place.
pub(crate) fn ws_rows(height: u16) -> usize {
    height.saturating_sub(CHROME_ROWS - 1 + WS_HEAD_ROWS).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_leave_room_for_the_chrome_and_never_drop_to_zero() {
        assert_eq!(list_rows(24), 19);
        assert_eq!(list_rows(3), 1);
        assert_eq!(ws_rows(24), 12);
        assert_eq!(ws_rows(5), 1);
    }
}
