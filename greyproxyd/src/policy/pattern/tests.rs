//! Unit tests of the parent module.

#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn container_globs_follow_go_path_match() {
    // Go's own path.Match table is the glob engine's (`crate::glob::tests::GO_TABLE`).
    for &(pattern, name, want) in crate::glob::tests::GO_TABLE {
        assert_eq!(
            container_matches(pattern, name),
            want,
            "{pattern:?} vs {name:?}"
        );
    }
    #[rustfmt::skip]
    let cases = [
        // Ours: case-sensitive, empty pattern, `*` short-circuit, classes may match `/`.
        ("myapp-*", "myapp-web", true), ("myapp-*", "MyApp-web", false), ("", "", true),
        ("", "a", false), ("*", "", true), ("*", "a/b", true), ("a[/]b", "a/b", true),
        // Go's star loop advances byte-wise, so `*??` matches a lone 3-byte rune.
        ("*??", "€", true), ("*?", "é", true), ("unknown-*", "unknown-10.0.0.1", true),
    ];
    for (pattern, name, want) in cases {
        assert_eq!(
            container_matches(pattern, name),
            want,
            "{pattern:?} vs {name:?}"
        );
    }
}

#[test]
fn container_validation() {
    for ok in ["*", "myapp", "myapp-*", "a?c", "[a-z]*", "a\\*b", "[^x]"] {
        assert_eq!(validate_container_pattern(ok), Ok(()), "{ok}");
    }
    for bad in ["", "[", "a[", "[]", "[-x]", "[a-]", "a\\", "x*[z", "[^"] {
        assert!(validate_container_pattern(bad).is_err(), "{bad}");
    }
    let e = validate_container_pattern("a\\").unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid container pattern \"a\\\\\": trailing backslash escapes nothing"
    );
}

#[test]
fn destinations() {
    #[rustfmt::skip]
    let cases = [
        ("*", "anything.example", true), ("*", "10.0.0.1", true),
        ("example.com", "example.com", true), ("Example.COM", "example.com", true),
        ("example.com", "EXAMPLE.com.", true), ("example.com", "api.example.com", false),
        ("*.example.com", "api.example.com", true), ("*.example.com", "a.b.example.com", true),
        ("*.example.com", "example.com", false), ("*.example.com", "badexample.com", false),
        ("**.example.com", "example.com", true), ("**.example.com", "a.b.example.com", true),
        ("**.example.com", "notexample.com", false),
        ("**.EXAMPLE.com", "Api.Example.Com", true),
        // Wildcards anywhere else are literal and never match real hosts (greyproxy's semantics).
        ("api.*", "api.example.com", false), ("*.*.npmjs.org", "a.b.npmjs.org", false),
        ("foo*bar", "foobar", false), ("*.", "a.", false), ("**.", "a", false),
        // CIDRs: IPs only, both families, IPv4-mapped hosts, bracketed hosts.
        ("10.0.0.0/8", "10.1.2.3", true), ("10.0.0.0/8", "11.1.2.3", false),
        ("10.0.0.0/8", "::ffff:10.1.2.3", true), ("10.0.0.0/8", "[::ffff:10.1.2.3]", true),
        ("0.0.0.0/0", "192.168.1.1", true), ("10.1.2.3/32", "10.1.2.3", true),
        ("10.1.2.3/8", "10.9.9.9", true), ("10.0.0.0/8", "example.com", false),
        ("0.0.0.0/0", "localhost", false), ("fd00::/8", "fd12::1", true),
        ("fd00::/8", "[fd12::1]", true), ("fd00::/8", "fe80::1", false),
        ("::/0", "10.0.0.1", false), ("::ffff:10.0.0.0/104", "10.2.3.4", true),
        ("10.0.0.0/33", "10.0.0.1", false), ("bogus/8", "10.0.0.1", false),
        // IP literals: brackets and spelling do not matter.
        ("::1", "[::1]", true), ("[::1]", "::1", true), ("0::1", "::1", true),
        ("127.0.0.1", "127.0.0.1", true), ("127.0.0.1", "::ffff:127.0.0.1", true),
    ];
    for (pattern, host, want) in cases {
        assert_eq!(
            destination_matches(pattern, host),
            want,
            "{pattern:?} vs {host:?}"
        );
    }
}

#[test]
fn destination_validation_and_normalisation() {
    #[rustfmt::skip]
    let good = [
        "*", "example.com", "*.example.com", "**.example.com", "10.0.0.0/8", "fd00::/8",
        "::1", "[::1]", "10.1.2.3", "Example.COM.", "my_host", "intranet", "bücher.de",
    ];
    for ok in good {
        assert_eq!(validate_destination_pattern(ok), Ok(()), "{ok}");
    }
    #[rustfmt::skip]
    let bad = [
        "", " ", "*.", "**.", "api.*", "*.*.x.com", "**", "foo*bar", "10.0.0.0/33", "::/129",
        "x.com/8", "10.0.0.0/", "10.0.0.0/+8", "a b.com", "example.com:443", ".example.com",
        "a..b", "exa?mple.com", "[bad",
    ];
    for bad in bad {
        assert!(validate_destination_pattern(bad).is_err(), "{bad}");
    }
    let e = validate_destination_pattern("10.0.0.0/33").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid destination pattern \"10.0.0.0/33\": \
         prefix length must be 0-32 for an IPv4 network"
    );
    assert_eq!(
        normalize_destination_pattern(" API.Example.COM. "),
        "api.example.com"
    );
    assert_eq!(normalize_destination_pattern("[::1]"), "::1");
    assert_eq!(normalize_destination_pattern("*.Foo.com"), "*.foo.com");
    assert_eq!(normalize_destination_pattern("*."), "*.");
    assert_eq!(validate_literal_host("[::1]"), Ok(()));
    assert_eq!(validate_literal_host("api.example.com"), Ok(()));
    for bad in ["*", "*.evil.com", "0.0.0.0/0", "", "a b"] {
        assert!(validate_literal_host(bad).is_err(), "{bad}");
    }
}

#[test]
fn ports() {
    #[rustfmt::skip]
    let cases = [
        ("*", 1, true), ("*", 65535, true), ("443", 443, true), (" 443 ", 443, true),
        ("443", 80, false), ("80,443", 443, true), ("80, 443", 443, true),
        ("80,443", 8080, false), ("8000-8999", 8000, true), ("8000-8999", 8999, true),
        ("8000-8999", 9000, false), ("8000 - 8999", 8500, true), ("22,8000-8999", 8080, true),
        ("9000-8000", 8500, false), ("http", 80, false), ("", 80, false),
        ("70000", 4464, false), ("80,bad", 80, true), ("1-2-3", 2, false), ("+80", 80, false),
    ];
    for (pattern, port, want) in cases {
        assert_eq!(port_matches(pattern, port), want, "{pattern:?} vs {port}");
    }
    for ok in ["*", "1", "65535", "80,443", "8000-8999", " 22 , 80-81 "] {
        assert_eq!(validate_port_pattern(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "0",
        "70000",
        "http",
        "80,",
        "9000-8000",
        "1-2-3",
        "80,*",
        "-5",
    ] {
        assert!(validate_port_pattern(bad).is_err(), "{bad}");
    }
    let e = validate_port_pattern("70000").unwrap_err().to_string();
    assert_eq!(e, "invalid port pattern \"70000\": port must be 1-65535");
}

#[test]
fn specificity_examples_from_the_reference() {
    #[rustfmt::skip]
    let cases = [
        (("*", "*", "*"), 0), (("myapp", "*", "*"), 200), (("myapp-*", "*", "*"), 100),
        (("*", "example.com", "*"), 20), (("*", "*.example.com", "*"), 10),
        (("*", "*", "443"), 1), (("myapp", "example.com", "443"), 221),
        (("myapp-*", "*.example.com", "443"), 111), (("*", "10.0.0.0/8", "80,443"), 21),
        (("a[bc]", "**.x.com", "1-2"), 111),
    ];
    for ((c, d, p), want) in cases {
        assert_eq!(specificity(c, d, p), want, "{c} {d} {p}");
    }
}
