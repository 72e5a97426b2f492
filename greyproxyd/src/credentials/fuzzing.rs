//! The one public door the fuzz target (`fuzz/fuzz_targets/credential_scan.rs`) uses into the
//! crate-private placeholder scanner and substitution helpers: scan arbitrary bytes as a
//! header value, a query and both body kinds, substitute and scrub, and check the bounds they
//! promise. Nothing else in the daemon calls this.

use http::{HeaderMap, HeaderValue};

use super::scan::{MALFORMED_PREVIEW, MAX_FOUND, Scan, Token};
use super::secret::Secret;
use super::session::{HEX_LEN, PREFIX_V1};
use super::substitute;

/// Scans `data` everywhere a request can carry a placeholder, substitutes a fixed secret for
/// every placeholder found and scrubs it back; `Err` names the first broken promise.
pub fn check_scan(data: &[u8]) -> Result<(), String> {
    let mut scan = Scan::default();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert("authorization", v);
        scan.headers(&h);
    }
    let text = String::from_utf8_lossy(data);
    scan.query(&text);
    scan.json_body(data, 4096);
    scan.form_body(data, 4096);
    if scan.found.len() > MAX_FOUND {
        return Err(format!("{} findings kept", scan.found.len()));
    }
    let secret = Secret::new("sk-fuzz-secret-0123456789").map_err(|e| e.to_string())?;
    let mut placeholders = Vec::new();
    for f in &scan.found {
        match &f.token {
            Token::Placeholder { text, session } => {
                let ok = text.starts_with(PREFIX_V1)
                    && text.ends_with(|c: char| c.is_ascii_hexdigit())
                    && text.len() == PREFIX_V1.len() + session.len() + 1 + HEX_LEN;
                if !ok {
                    return Err(format!("bad placeholder {text:?}"));
                }
                placeholders.push(text.clone());
            }
            Token::Malformed(preview) if preview.len() > MALFORMED_PREVIEW => {
                return Err(format!("malformed preview of {} bytes", preview.len()));
            }
            Token::Malformed(_) => {}
        }
    }
    let pairs: Vec<(&str, &Secret)> = placeholders.iter().map(|p| (p.as_str(), &secret)).collect();
    let _ = substitute::query(&text, &pairs);
    let _ = substitute::form_body(data, &pairs);
    if let Some(out) = substitute::json_body(data, &pairs) {
        let back = substitute::Scrubber::new(&pairs).scrub(&out).unwrap_or(out);
        if back
            .windows(secret.expose().len())
            .any(|w| w == secret.expose().as_bytes())
        {
            return Err("the scrub left the secret in the body".into());
        }
    }
    Ok(())
}
