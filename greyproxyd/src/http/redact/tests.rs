#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn redactor(extra: &[&str]) -> Redactor {
    Redactor::new(&extra.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn defaults_are_valid_and_applied() {
    for p in DEFAULT_HEADER_PATTERNS.iter().chain(DEFAULT_URL_PATTERNS) {
        Pattern::parse(p).unwrap();
    }
    let r = Redactor::default();
    for name in [
        "Authorization",
        "authorization",
        "PROXY-AUTHORIZATION",
        "Cookie",
        "set-cookie",
        "x-api-key",
        "X-Goog-Api-Key",
        "api-key",
        "X-Auth-Token",
        "x-csrf-token",
        "X-Client-Secret",
        "anthropic-api-key",
    ] {
        assert!(r.is_sensitive(name), "{name}");
    }
    for name in [
        "Content-Type",
        "Authorization-Extra",
        "Cookies",
        "X-Api-Version",
        "User-Agent",
        "anthropic-version",
    ] {
        assert!(!r.is_sensitive(name), "{name}");
    }
    // URL-only defaults are not header patterns.
    assert!(!r.is_sensitive("key"));
    assert!(!r.is_sensitive("sig"));
}

#[test]
fn pattern_forms() {
    let exact = redactor(&["X-Session"]);
    assert!(exact.is_sensitive("x-session"));
    assert!(!exact.is_sensitive("x-session-id"));
    assert!(!exact.is_sensitive("my-x-session"));

    let contains = redactor(&["*pass*"]);
    assert!(contains.is_sensitive("X-Password-Hash"));
    assert!(contains.is_sensitive("pass"));
    assert!(contains.is_sensitive("bypass"));

    let suffix = redactor(&["*-Signature"]);
    assert!(suffix.is_sensitive("X-Amz-Signature"));
    assert!(!suffix.is_sensitive("X-Signature-Version"));

    let prefix = redactor(&["X-Private-*"]);
    assert!(prefix.is_sensitive("x-private-thing"));
    assert!(!prefix.is_sensitive("x-public-private-thing"));

    let all = redactor(&["*"]);
    assert!(all.is_sensitive("Content-Type"));
    assert!(all.is_sensitive(""));
    assert!(redactor(&["**"]).is_sensitive("Accept"));

    // Patterns are trimmed and case-insensitive.
    assert!(redactor(&["  X-SECRET-ISH "]).is_sensitive("x-secret-ish"));
}

#[test]
fn bad_patterns_are_refused() {
    for bad in ["", "   ", "x-*-key", "a**b", "***", "*a*b*"] {
        let err = Redactor::new(&[bad.to_string()]).unwrap_err();
        let RedactError::Pattern { pattern, .. } = &err;
        assert_eq!(pattern, bad);
        assert!(
            err.to_string().starts_with("invalid redaction pattern"),
            "{err}"
        );
    }
    let err = Redactor::new(&["x-*-key".to_string()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid redaction pattern \"x-*-key\": `*` may only appear at the start or the end"
    );
}

#[test]
fn duplicates_collapse() {
    let r = redactor(&["authorization", "AUTHORIZATION", "*token*"]);
    assert_eq!(r.header.len(), DEFAULT_HEADER_PATTERNS.len());
}

#[test]
fn headers_are_redacted_and_canonical() {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("authorization", HeaderValue::from_static("Bearer sk-live"));
    h.append("set-cookie", HeaderValue::from_static("a=1"));
    h.append("set-cookie", HeaderValue::from_static("b=2"));
    h.append("accept", HeaderValue::from_static("text/plain"));
    h.append("accept", HeaderValue::from_static("application/json"));
    h.insert("x-api-key", HeaderValue::from_static("sk-ant-123"));
    h.insert(
        HeaderName::from_static("x-raw"),
        HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    );
    let out = redactor(&[]).headers(&h);
    let expected: BTreeMap<String, Vec<String>> = [
        ("Accept", vec!["text/plain", "application/json"]),
        ("Authorization", vec![REDACTED]),
        ("Content-Type", vec!["application/json"]),
        ("Set-Cookie", vec![REDACTED]),
        ("X-Api-Key", vec![REDACTED]),
        ("X-Raw", vec!["caf\u{fffd}"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(out, expected);
    assert_eq!(
        serde_json::to_string(&out["Authorization"]).unwrap(),
        "[\"[REDACTED]\"]"
    );
}

#[test]
fn extra_patterns_apply_to_headers() {
    let mut h = HeaderMap::new();
    h.insert("x-session-id", HeaderValue::from_static("abc"));
    h.insert("x-other", HeaderValue::from_static("keep"));
    let out = redactor(&["x-session-*"]).headers(&h);
    assert_eq!(out["X-Session-Id"], vec![REDACTED.to_string()]);
    assert_eq!(out["X-Other"], vec!["keep".to_string()]);
    assert!(redactor(&[]).headers(&HeaderMap::new()).is_empty());
}

#[test]
fn url_query_values_are_redacted() {
    let r = redactor(&[]);
    assert_eq!(
        r.url(
            "https://generativelanguage.googleapis.com/v1beta/models/gemini:streamGenerateContent?alt=sse&key=AIzaSyXYZ"
        ),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini:streamGenerateContent?alt=sse&key=[REDACTED]"
    );
    assert_eq!(
        r.url("/cb?access_token=abc&state=x%20y&API_KEY=1&Signature=s&sig=z&user_password=p"),
        "/cb?access_token=[REDACTED]&state=x%20y&API_KEY=[REDACTED]&Signature=[REDACTED]&sig=[REDACTED]&user_password=[REDACTED]"
    );
    // Header patterns apply to parameter names too.
    assert_eq!(
        r.url("/x?refresh_token=t&client_secret=s&x-api-key=k&keyboard=qwerty"),
        "/x?refresh_token=[REDACTED]&client_secret=[REDACTED]&x-api-key=[REDACTED]&keyboard=qwerty"
    );
    assert_eq!(
        r.url("https://bucket.s3.amazonaws.com/o?X-Amz-Credential=AKIA&X-Amz-Signature=ff&X-Amz-Security-Token=t"),
        "https://bucket.s3.amazonaws.com/o?X-Amz-Credential=AKIA&X-Amz-Signature=[REDACTED]&X-Amz-Security-Token=[REDACTED]"
    );
}

#[test]
fn url_edge_cases() {
    let r = redactor(&["session"]);
    // No query: unchanged.
    for url in [
        "https://api.anthropic.com/v1/messages",
        "/",
        "",
        "https://h/p#key=frag",
        "https://h/p#frag?key=1",
    ] {
        assert_eq!(r.url(url), url);
    }
    // Fragment kept, and never treated as query.
    assert_eq!(r.url("/p?key=1#key=2"), "/p?key=[REDACTED]#key=2");
    // Repeated parameters: every occurrence.
    assert_eq!(
        r.url("/p?key=1&a=b&key=2"),
        "/p?key=[REDACTED]&a=b&key=[REDACTED]"
    );
    // Without `=`, or with an empty value: nothing to hide.
    assert_eq!(r.url("/p?key&key=&token"), "/p?key&key=&token");
    // Empty pieces and odd separators survive byte for byte.
    assert_eq!(r.url("/p?&&a=1&&"), "/p?&&a=1&&");
    assert_eq!(r.url("/p?"), "/p?");
    // Only the first `=` separates; the value may contain more.
    assert_eq!(r.url("/p?key=a=b&x=c=d"), "/p?key=[REDACTED]&x=c=d");
    // Encoded names are recognised; the name itself is kept as written.
    assert_eq!(
        r.url("/p?api%5Fkey=1&api+key=2"),
        "/p?api%5Fkey=[REDACTED]&api+key=2"
    );
    assert_eq!(
        r.url("/p?%4Bey=1&%zz=2&%4=3"),
        "/p?%4Bey=[REDACTED]&%zz=2&%4=3"
    );
    // Extra patterns apply to URLs.
    assert_eq!(
        r.url("/p?Session=abc&sessions=x"),
        "/p?Session=[REDACTED]&sessions=x"
    );
    // Non-ASCII and other bytes are untouched.
    assert_eq!(r.url("/ü?q=é&key=ü"), "/ü?q=é&key=[REDACTED]");
}

#[test]
fn url_userinfo_password_is_redacted() {
    let r = redactor(&[]);
    assert_eq!(
        r.url("https://user:hunter2@example.com/p?q=1"),
        "https://user:[REDACTED]@example.com/p?q=1"
    );
    assert_eq!(
        r.url("http://u:p@ss@example.com"),
        "http://u:[REDACTED]@example.com"
    );
    // No password, empty password, `@` only in the path: unchanged.
    for url in [
        "https://user@example.com/",
        "https://user:@example.com/",
        "https://example.com/a:b@c",
        "/origin:form@path",
    ] {
        assert_eq!(r.url(url), url);
    }
}
