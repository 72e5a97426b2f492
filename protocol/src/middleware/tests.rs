//! Decoding pinned against the Go greyproxy's behaviour (docs/middleware.md#messages; cases A and C
//! of docs/middleware.md#tests).

use super::*;

#[test]
fn proxy_hello_is_exact() {
    assert_eq!(
        serde_json::to_string(&ProxyHello::default()).unwrap(),
        r#"{"type":"hello","version":1}"#
    );
}

#[test]
fn hello_keys_fold_case_and_null_is_absent() {
    let h = MiddlewareHello::decode(
        br#"{"Type":"hello","NAME":"x","Max_Body_Bytes":4096,"min_version":null,
            "hooks":[{"TYPE":"http-request","Filters":{"Host":["*.a.com"],"TLS":true,"llm":null}},
                     {"type":"http-foo","filters":null}],"extra":{"a":1}}"#,
    )
    .unwrap();
    assert_eq!(h.kind, "hello");
    assert_eq!(h.name, "x");
    assert_eq!(h.max_body_bytes, 4096);
    assert_eq!(h.min_version, 0);
    assert_eq!(h.hooks.len(), 2);
    let f = h.hooks[0].filters.as_ref().unwrap();
    assert_eq!(f.host, vec!["*.a.com"]);
    assert_eq!(f.tls, Some(true));
    assert_eq!(f.llm, None);
    assert_eq!(h.hooks[1].kind, "http-foo");
    assert!(h.hooks[1].filters.is_none());
}

#[test]
fn hello_with_a_bare_string_filter_fails() {
    let e = MiddlewareHello::decode(
        br#"{"type":"hello","hooks":[{"type":"http-request","filters":{"host":"*.openai.com"}}]}"#,
    );
    assert!(e.is_err());
    assert!(MiddlewareHello::decode(b"{nope").is_err());
}

#[test]
fn decision_body_null_empty_and_absent_differ() {
    let d = Decision::decode(br#"{"id":"a","action":"rewrite","body":""}"#).unwrap();
    assert_eq!(d.body, Some(Vec::new()));
    let d = Decision::decode(br#"{"id":"a","action":"rewrite","body":null}"#).unwrap();
    assert_eq!(d.body, None);
    let d = Decision::decode(br#"{"id":"a","action":"rewrite"}"#).unwrap();
    assert_eq!(d.body, None);
    let d = Decision::decode(br#"{"id":"a","action":"deny","body":"aGk=\r\n"}"#).unwrap();
    assert_eq!(d.body.as_deref(), Some(&b"hi"[..]));
}

#[test]
fn decision_rejects_url_safe_or_unpadded_base64_and_wrong_types() {
    // "+/8=" in standard = 0xfb 0xff; the URL-safe spelling is "-_8=".
    assert!(Decision::decode(br#"{"id":"a","action":"deny","body":"-_8="}"#).is_err());
    assert!(Decision::decode(br#"{"id":"a","action":"deny","body":"aGk"}"#).is_err());
    assert!(Decision::decode(br#"{"id":"a","action":"deny","status_code":"403"}"#).is_err());
    assert!(Decision::decode(br#"{"id":"a","action":"rewrite","headers":{"X":"1"}}"#).is_err());
    assert!(Decision::decode(b"{not json").is_err());
}

#[test]
fn decision_keys_fold_but_header_and_tag_keys_do_not() {
    let d = Decision::decode(
        br#"{"TYPE":"whatever","ID":"abc","Action":"rewrite","STATUS_CODE":201,
            "headers":{"x-New":["1"],"X-Gone":null},"tags":{"Cost.USD":0.5}}"#,
    )
    .unwrap();
    assert_eq!(d.id, "abc");
    assert_eq!(d.kind, "whatever");
    assert_eq!(d.action, DecisionAction::Rewrite);
    assert_eq!(d.status_code, 201);
    assert_eq!(d.headers["x-New"], vec!["1"]);
    assert!(d.headers["X-Gone"].is_empty());
    assert!(d.tags.contains_key("Cost.USD"));
}

#[test]
fn request_message_has_all_ten_keys() {
    let m = HttpRequestMessage {
        kind: "http-request".into(),
        id: "0".repeat(32),
        host: "h".into(),
        method: "POST".into(),
        uri: "/".into(),
        proto: "HTTP/1.1".into(),
        headers: WireHeaders::new(),
        body: None,
        container: String::new(),
        tls: true,
    };
    let v = serde_json::to_value(&m).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10);
    assert!(v["body"].is_null());
    let m = HttpRequestMessage {
        body: Some(Vec::new()),
        ..m
    };
    assert_eq!(serde_json::to_value(&m).unwrap()["body"], "");
}

#[test]
fn version_negotiation_table() {
    assert_eq!(negotiate_version(0, 0), Ok(1));
    assert_eq!(negotiate_version(1, 1), Ok(1));
    assert_eq!(negotiate_version(1, 5), Ok(1));
    assert!(
        negotiate_version(2, 5)
            .unwrap_err()
            .to_string()
            .contains("requires protocol v>=2")
    );
    assert!(
        negotiate_version(0, 2)
            .unwrap_err()
            .to_string()
            .contains("invalid version range [0,2]")
    );
    assert!(
        negotiate_version(1, 0)
            .unwrap_err()
            .to_string()
            .contains("invalid version range [1,0]")
    );
    assert!(
        negotiate_version(3, 2)
            .unwrap_err()
            .to_string()
            .contains("invalid version range [3,2]")
    );
}

#[test]
fn decision_actions_outside_the_protocol_are_kept_as_sent() {
    for (name, action) in [
        ("allow", DecisionAction::Allow),
        ("deny", DecisionAction::Deny),
        ("rewrite", DecisionAction::Rewrite),
        ("passthrough", DecisionAction::Passthrough),
        ("block", DecisionAction::Block),
    ] {
        let d = Decision::decode(format!(r#"{{"id":"a","action":"{name}"}}"#).as_bytes()).unwrap();
        assert_eq!(d.action, action);
        assert!(d.action.is_known());
        assert_eq!(serde_json::to_value(&d).unwrap()["action"], name);
    }
    // Case-sensitive, as in greyproxy; unknown and missing actions survive a round trip.
    let d = Decision::decode(br#"{"id":"a","action":"Deny"}"#).unwrap();
    assert_eq!(d.action, DecisionAction::Other("Deny".into()));
    assert!(!d.action.is_known());
    assert_eq!(serde_json::to_value(&d).unwrap()["action"], "Deny");
    let d = Decision::decode(br#"{"id":"a"}"#).unwrap();
    assert_eq!(d.action.as_str(), "");
    assert_eq!(serde_json::to_value(&d).unwrap()["action"], "");
    assert!(Decision::decode(br#"{"id":"a","action":3}"#).is_err());
}

#[test]
fn on_disconnect_from_config_fails_open_only_for_exactly_allow() {
    assert_eq!(OnDisconnect::from_config("allow"), OnDisconnect::Allow);
    for s in ["deny", "Allow", "ALLOW", "", "open"] {
        assert_eq!(OnDisconnect::from_config(s), OnDisconnect::Deny, "{s}");
    }
    assert_eq!(OnDisconnect::default(), OnDisconnect::Deny);
}

/// Fuzz finding (`fuzz/corpus/middleware_decode/float_roundtrip`): a tag holding an integer too
/// large for u64 decoded to one f64, and the number serialized from it decoded to the next f64
/// up, so a decision relayed through the daemon changed its tags. Numbers must decode to the
/// nearest f64 (as Go's encoding/json does) and then survive any number of round trips.
#[test]
fn tag_numbers_keep_their_value_through_round_trips() {
    let finding = br#"{"Typd":"dBecision","ID":"2","Actio":403,"~ody":"bm8=","ta":403,"body":"bm8=","tags":{"k":1001675067745475449833200000167506774547}}"#;
    let d = Decision::decode(finding).unwrap();
    let exact: f64 = "1001675067745475449833200000167506774547".parse().unwrap();
    assert_eq!(d.tags["k"].as_f64(), Some(exact));
    let again = Decision::decode(&serde_json::to_vec(&d).unwrap()).unwrap();
    assert_eq!(again.tags["k"].as_f64(), Some(exact));
    assert_eq!(again, d);

    // Hard cases for a fast float parser: halfway and subnormal boundaries, the extremes.
    for text in [
        "1.0016750677454753e39",
        "0.1",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "5e-324",
        "1.7976931348623157e308",
        "9007199254740993.0",
        "0.30000000000000004",
        "-123456789.12345679",
    ] {
        let exact: f64 = text.parse().unwrap();
        let sent = format!(r#"{{"action":"allow","tags":{{"n":{text}}}}}"#);
        let d = Decision::decode(sent.as_bytes()).unwrap();
        assert_eq!(d.tags["n"].as_f64(), Some(exact), "{text}");
        let mut relayed = d.clone();
        for _ in 0..3 {
            relayed = Decision::decode(&serde_json::to_vec(&relayed).unwrap()).unwrap();
        }
        assert_eq!(relayed, d, "{text}");
        assert_eq!(
            relayed.tags["n"].as_f64().map(f64::to_bits),
            Some(exact.to_bits())
        );
    }
}
