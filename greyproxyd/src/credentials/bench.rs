//! The public door the proxy benchmark's credentials section (`benches/proxy/credentials.rs`)
//! uses into the crate-private scanner: the scan every intercepted request goes through, to
//! time it on requests that carry no placeholder. Nothing in the daemon calls this.

use http::HeaderMap;

use super::scan::Scan;

/// Scans `headers` and `query` as the exchange's credentials stage does; returns how many
/// tokens were found.
pub fn scan_request(headers: &HeaderMap, query: Option<&str>) -> usize {
    let mut scan = Scan::default();
    scan.headers(headers);
    if let Some(q) = query {
        scan.query(q);
    }
    scan.found.len()
}
