//! The scanner (headers, query, bodies, malformed tokens, bounds) and the substitution and
//! scrub helpers.

#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderValue};

use super::scan::{MAX_FOUND, PlaceKind, Scan, Token, tokens};
use super::secret::Secret;
use super::substitute;

const P: &str = "greyproxy:credential:v1:gw-1:0123456789abcdef0123456789abcdef";
const SECRET: &str = "sk-live/\"quoted\"+secret";

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

fn texts(scan: &Scan) -> Vec<(PlaceKind, String, String)> {
    scan.found
        .iter()
        .map(|f| {
            let t = match &f.token {
                Token::Placeholder { text, .. } => text.clone(),
                Token::Malformed(m) => format!("MALFORMED {m}"),
            };
            (f.place.kind, f.place.name.clone(), t)
        })
        .collect()
}

#[test]
fn placeholders_are_found_in_headers_query_and_bodies() {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {P}")).unwrap(),
    );
    h.insert("x-other", HeaderValue::from_static("nothing here"));
    let mut scan = Scan::default();
    scan.headers(&h);
    scan.query(&format!("a=1&key={}&b", P.replace(':', "%3A")));
    scan.json_body(format!("{{\"api_key\":\"{P}\"}}").as_bytes(), 1024);
    scan.form_body(format!("token={P}&x=y").as_bytes(), 1024);
    let all = texts(&scan);
    assert_eq!(
        all,
        [
            (PlaceKind::Header, "authorization".into(), P.into()),
            (PlaceKind::Query, "key".into(), P.into()),
            (PlaceKind::JsonBody, "".into(), P.into()),
            (PlaceKind::FormBody, "token".into(), P.into()),
        ]
    );
    match &scan.found[0].token {
        Token::Placeholder { session, .. } => assert_eq!(session, "gw-1"),
        other => panic!("{other:?}"),
    }
    assert!(!scan.truncated && !scan.body_cut);
}

#[test]
fn malformed_placeholders_are_reported_with_a_bounded_preview() {
    let cases = [
        (
            "greyproxy:credential:v2:gw-1:0123456789abcdef0123456789abcdef",
            true,
        ),
        ("greyproxy:credential:v1:gw-1:0123", true),
        (
            "greyproxy:credential:v1:gw-1:0123456789ABCDEF0123456789abcdef",
            true,
        ),
        (
            "greyproxy:credential:v1::0123456789abcdef0123456789abcdef",
            true,
        ),
        (
            "greyproxy:credential:v1:gw-1:0123456789abcdef0123456789abcdef00",
            true,
        ),
        ("greyproxy:credential:", true),
    ];
    for (text, malformed) in cases {
        let found: Vec<Token> = tokens(format!("x {text}\"").as_bytes()).collect();
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!(matches!(found[0], Token::Malformed(_)), malformed, "{text}");
    }
    let long = format!("greyproxy:credential:v1:{}", "a".repeat(10_000));
    match tokens(long.as_bytes()).next().unwrap() {
        Token::Malformed(m) => assert_eq!(m.len(), 96),
        other => panic!("{other:?}"),
    }
    // A well-formed one ends at a delimiter; two in a row are both found.
    let two = format!("{P},{P}");
    assert_eq!(tokens(two.as_bytes()).count(), 2);
}

#[test]
fn the_scan_is_bounded_in_findings_and_body_length() {
    let many = format!("{P} ").repeat(MAX_FOUND + 5);
    let mut scan = Scan::default();
    scan.json_body(many.as_bytes(), usize::MAX);
    assert_eq!(scan.found.len(), MAX_FOUND);
    assert!(scan.truncated);
    let mut scan = Scan::default();
    let body = format!("{}{P}", " ".repeat(100));
    scan.json_body(body.as_bytes(), 100);
    assert!(scan.is_empty() && scan.body_cut);
    let mut scan = Scan::default();
    scan.form_body(&[0xff, 0xfe, b'&'], 10);
    scan.query("%%%&=&==&k=greyproxy%3Acredential%3A");
    assert_eq!(texts(&scan).len(), 1, "{:?}", scan.found);
}

#[test]
fn headers_are_substituted_in_place_and_marked_sensitive() {
    let mut h = HeaderMap::new();
    h.insert("x-first", HeaderValue::from_static("keep"));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {P}")).unwrap(),
    );
    h.append("x-first", HeaderValue::from_static("second"));
    let s = secret();
    assert_eq!(substitute::headers(&mut h, &[(P, &s)]), 1);
    assert_eq!(h["authorization"], format!("Bearer {SECRET}").as_str());
    assert!(h["authorization"].is_sensitive());
    let firsts: Vec<_> = h.get_all("x-first").iter().collect();
    assert_eq!(firsts, ["keep", "second"]);
    assert_eq!(substitute::headers(&mut h, &[(P, &s)]), 0);
}

#[test]
fn only_the_changed_query_value_is_re_encoded() {
    let s = secret();
    let q = format!("z=%7e1&key={}&a=b+c", P.replace(':', "%3a"));
    let out = substitute::query(&q, &[(P, &s)]).unwrap();
    assert_eq!(out, "z=%7e1&key=sk-live%2F%22quoted%22%2Bsecret&a=b+c");
    assert_eq!(substitute::query("a=1&b=2", &[(P, &s)]), None);
    let form = substitute::form_body(format!("k={P}").as_bytes(), &[(P, &s)]).unwrap();
    assert_eq!(form, b"k=sk-live%2F%22quoted%22%2Bsecret");
}

#[test]
fn json_bodies_get_the_secret_json_escaped() {
    let s = secret();
    let body = format!("{{\"key\":\"{P}\",\"again\":\"x{P}\"}}");
    let out = substitute::json_body(body.as_bytes(), &[(P, &s)]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["key"], SECRET);
    assert_eq!(v["again"], format!("x{SECRET}"));
    assert_eq!(substitute::json_body(b"{}", &[(P, &s)]), None);
}

#[test]
fn an_echoed_secret_is_scrubbed_back_to_the_placeholder_in_every_form() {
    let s = secret();
    // httpbin-like echo: raw in text, JSON-escaped in JSON, percent-encoded in an echoed URL.
    let body = format!(
        "Authorization: Bearer {SECRET}\n{{\"h\":{}}}\nurl=/?k=sk-live%2F%22quoted%22%2Bsecret",
        serde_json::to_string(SECRET).unwrap()
    );
    let out = String::from_utf8(
        substitute::Scrubber::new(&[(P, &s)])
            .scrub(body.as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert!(!out.contains("sk-live"), "{out}");
    assert_eq!(out.matches(P).count(), 3, "{out}");
    assert_eq!(
        substitute::Scrubber::new(&[(P, &s)]).scrub(b"nothing"),
        None
    );
}

#[test]
fn the_fuzz_check_holds_on_typical_inputs() {
    use super::fuzzing::check_scan;
    for input in [
        format!("Bearer {P}"),
        format!("{{\"k\":\"{P}\"}}"),
        format!("a={}&b", P.replace(':', "%3A")),
        "greyproxy:credential:v1:".repeat(50),
        String::new(),
    ] {
        check_scan(input.as_bytes()).unwrap();
    }
    check_scan(&[0xff, 0, b'%', 0x80]).unwrap();
}
