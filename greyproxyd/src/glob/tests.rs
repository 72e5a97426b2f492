//! Unit tests of the parent module: Go's own `path.Match` table, the cases every former
//! matcher was tested with (rule containers and destinations, middleware filters, the MITM
//! bypass list, the LLM registry), and one test per option showing both of its behaviours.

use super::*;

/// Go's `path.Match` exactly.
const GO_BYTES: Dialect = Dialect::Path(PathOptions::GO);

/// The same, but a star never splits a character.
const GO: Dialect = Dialect::Path(PathOptions {
    star_step: StarStep::Char,
    ..PathOptions::GO
});

const PATH_DIALECTS: [Dialect; 4] = [GO, GO_BYTES, Dialect::CONTAINER, Dialect::FILTER];

fn table(dialect: Dialect, cases: &[(&str, &str, bool)]) {
    for &(pattern, value, want) in cases {
        assert_eq!(
            dialect.matches(pattern, value),
            want,
            "{dialect:?}: {pattern:?} vs {value:?}"
        );
    }
}

/// Go's own table (path/match_test.go), malformed patterns shown as `false`; the answers are
/// the same whatever the options, as none of the values needs them.
#[rustfmt::skip]
pub(crate) const GO_TABLE: &[(&str, &str, bool)] = &[
    ("abc", "abc", true), ("*", "abc", true), ("*c", "abc", true), ("a*", "a", true),
    ("a*", "abc", true), ("a*", "ab/c", false), ("a*/b", "abc/b", true),
    ("a*/b", "a/c/b", false), ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false), ("a*b?c*x", "abxbbxdbxebxczzx", true),
    ("a*b?c*x", "abxbbxdbxebxczzy", false), ("ab[c]", "abc", true),
    ("ab[b-d]", "abc", true), ("ab[e-g]", "abc", false), ("ab[^c]", "abc", false),
    ("ab[^b-d]", "abc", false), ("ab[^e-g]", "abc", true), ("a\\*b", "a*b", true),
    ("a\\*b", "ab", false), ("a?b", "a☺b", true), ("a[^a]b", "a☺b", true),
    ("a???b", "a☺b", false), ("a[^a][^a][^a]b", "a☺b", false), ("[a-ζ]*", "α", true),
    ("*[a-ζ]", "A", false), ("a?b", "a/b", false), ("a*b", "a/b", false),
    ("[\\]a]", "]", true), ("[\\-]", "-", true), ("[x\\-]", "x", true),
    ("[x\\-]", "-", true), ("[x\\-]", "z", false), ("[\\-x]", "x", true),
    ("[\\-x]", "-", true), ("[\\-x]", "a", false), ("[]a]", "]", false),
    ("[-]", "-", false), ("[x-]", "x", false), ("[x-]", "-", false), ("[x-]", "z", false),
    ("[-x]", "x", false), ("[-x]", "-", false), ("[-x]", "a", false), ("\\", "a", false),
    ("[a-b-c]", "a", false), ("[", "a", false), ("[^", "a", false), ("[^bc", "a", false),
    ("a[", "a", false), ("a[", "ab", false), ("a[", "x", false), ("a/b[", "x", false),
    ("*x", "xxx", true),
    // Beyond Go's table: case, empty pattern and value, classes may match `/`.
    ("myapp-*", "myapp-web", true), ("myapp-*", "MyApp-web", false), ("Abc", "abc", false),
    ("", "", true), ("", "a", false), ("a", "", false), ("*", "", true), ("**", "ab", true),
    ("?", "", false), ("a[/]b", "a/b", true), ("a\\", "a", false),
    ("unknown-*", "unknown-10.0.0.1", true),
];

#[test]
fn go_path_match_table() {
    for dialect in PATH_DIALECTS {
        table(dialect, GO_TABLE);
    }
}

#[test]
fn malformed_patterns_never_match() {
    #[rustfmt::skip]
    let cases = [
        ("[]a]", "]"), ("[-]", "-"), ("[x-]", "x"), ("[x-]", "-"), ("[x-]", "z"), ("[-x]", "x"),
        ("[-x]", "-"), ("[-x]", "a"), ("\\", "a"), ("[a-b-c]", "a"), ("[", "a"), ("[^", "a"),
        ("[^bc", "a"), ("a[", "a"), ("a[", "ab"), ("a[", "x"), ("a/b[", "x"), ("*x[", "x"),
        ("[a-", "a"), ("a\\", "a\\"), ("[", ""), ("[", "["), ("*[", "abc"), ("x*[z", "xz"),
    ];
    for dialect in PATH_DIALECTS {
        for (pattern, value) in cases {
            assert!(
                !dialect.matches(pattern, value),
                "{dialect:?}: {pattern:?} vs {value:?}"
            );
            assert!(dialect.check(pattern).is_err(), "{dialect:?}: {pattern:?}");
        }
    }
}

#[test]
fn check_says_what_is_malformed() {
    for ok in [
        "*", "myapp", "myapp-*", "a?c", "[a-z]*", "a\\*b", "[^x]", "", "[\\]]",
    ] {
        assert_eq!(Dialect::CONTAINER.check(ok), Ok(()), "{ok}");
    }
    #[rustfmt::skip]
    let bad = [
        ("[", GlobError::UnclosedClass), ("a[", GlobError::UnclosedClass),
        ("[^", GlobError::UnclosedClass), ("[a-", GlobError::UnclosedClass),
        ("[\\", GlobError::UnclosedClass), ("[]", GlobError::MalformedClass),
        ("[-x]", GlobError::MalformedClass), ("[a-]", GlobError::MalformedClass),
        ("a\\", GlobError::TrailingBackslash), ("x*[z", GlobError::UnclosedClass),
    ];
    for (pattern, want) in bad {
        assert_eq!(Dialect::CONTAINER.check(pattern), Err(want), "{pattern:?}");
    }
    assert_eq!(
        GlobError::TrailingBackslash.to_string(),
        "trailing backslash escapes nothing"
    );
    assert_eq!(Dialect::Star.check("[\\"), Ok(()));
}

#[test]
fn escapes_inside_and_outside_classes() {
    for dialect in PATH_DIALECTS {
        #[rustfmt::skip]
        table(dialect, &[
            ("\\[a\\]", "[a]", true), ("[\\^]", "^", true), ("\\?", "?", true),
            ("\\?", "x", false), ("[\\*]", "*", true), ("a[*]b", "a*b", true),
            ("\\é", "é", true),
        ]);
    }
}

#[test]
fn utf8_is_matched_per_character() {
    for dialect in PATH_DIALECTS {
        #[rustfmt::skip]
        table(dialect, &[
            ("?", "é", true), ("??", "é", false), ("*é", "aaé", true), ("[é]x", "éx", true),
            ("[^é]x", "ex", true), ("[^é]x", "éx", false), ("*?", "é", true),
        ]);
    }
}

#[test]
fn many_stars_do_not_backtrack() {
    // Checked while fuzzing: a `*` commits to the first position where the chunk after it
    // matches (only the last chunk retries), so matching is linear here rather than
    // exponential in the number of stars.
    let value = "a".repeat(100_000);
    let start = std::time::Instant::now();
    for dialect in PATH_DIALECTS {
        assert!(!dialect.matches("*a*a*a*a*a*a*a*a*a*a*a*a*b", &value));
        assert!(dialect.matches("*a*a*a*a*a*a*a*a*a*a*a*a*", &value));
        assert!(!dialect.matches("*?*?*?*?*?*?*?*?*/", &value));
    }
    assert!(!Dialect::FILTER.matches("*a*a*a*a*a*b", &value));
    assert!(!Dialect::Star.matches("*a*a*a*a*a*a*a*a*a*a*a*a*b", &value));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn option_star_step() {
    // Go's star may stop inside `€` (3 bytes) or `é` (2 bytes); `?` and classes then read the
    // lone byte as U+FFFD.
    #[rustfmt::skip]
    let cases = [
        ("*??", "€", true, false), ("*[^é]", "é", true, false),
        ("*[\u{FFFD}]", "é", true, false), ("a*[^x]", "a€", true, true),
        ("*??", "ab", true, true), ("*?", "é", true, true),
    ];
    for (pattern, value, bytes, chars) in cases {
        assert_eq!(
            GO_BYTES.matches(pattern, value),
            bytes,
            "{pattern:?} vs {value:?}"
        );
        assert_eq!(
            GO.matches(pattern, value),
            chars,
            "{pattern:?} vs {value:?}"
        );
    }
    // The rule container and filter dialects pick one each.
    assert!(Dialect::CONTAINER.matches("*[^é]", "é"));
    assert!(!Dialect::FILTER.matches("*[^é]", "é"));
}

#[test]
fn option_lone_star_matches_all() {
    let all = Dialect::Path(PathOptions {
        lone_star_matches_all: true,
        ..PathOptions::GO
    });
    assert!(all.matches("*", "a/b"));
    assert!(!GO.matches("*", "a/b"));
    // Only the pattern `*` itself: other stars still stop at `/`.
    assert!(!all.matches("**", "a/b"));
    assert!(!all.matches("a*", "a/b"));
    assert!(Dialect::CONTAINER.matches("*", "a/b"));
    assert!(!Dialect::FILTER.matches("*", "a/b"));
}

#[test]
fn option_dot_suffix() {
    let suffix = Dialect::Path(PathOptions {
        dot_suffix: true,
        ..PathOptions::GO
    });
    let p = "*.openai.com";
    for dialect in [suffix, Dialect::FILTER] {
        assert!(dialect.matches(p, "api.openai.com"));
        assert!(dialect.matches(p, "a.b.openai.com"));
        assert!(!dialect.matches(p, "openai.com"));
        assert!(!dialect.matches(p, "api.openai.com:443"));
        assert!(!dialect.matches(p, "evilopenai.com"));
        // The suffix crosses `/` and is compared literally; otherwise Go's match decides.
        assert!(dialect.matches("*.com", "a/b.com"));
        assert!(dialect.matches("*.c?m", "x.c?m"));
        assert!(dialect.matches("*.c?m", "x.com"));
        assert!(!dialect.matches("*.c?m", "a/x.com"));
    }
    assert!(!GO.matches("*.com", "a/b.com"));
    assert!(!Dialect::CONTAINER.matches("*.com", "a/b.com"));
}

#[test]
fn filter_globs() {
    #[rustfmt::skip]
    table(Dialect::FILTER, &[
        ("text/*", "text/html", true), ("*", "application/json", false), ("*", "", true),
        ("*/*", "application/json", true), ("my-app-*", "my-app-1", true),
        ("Application/JSON", "application/json", false),
        ("api.openai.com:*", "api.openai.com:443", true),
    ]);
}

#[test]
fn container_globs() {
    #[rustfmt::skip]
    table(Dialect::CONTAINER, &[
        ("*", "a/b", true), ("*??", "€", true), ("*?", "é", true),
        ("unknown-*", "unknown-10.0.0.1", true), ("app-\\*", "app-*", true),
        ("app-\\*", "app-web", false),
    ]);
}

#[test]
fn star_dialect() {
    #[rustfmt::skip]
    table(Dialect::Star, &[
        ("", "", true), ("", "a", false), ("*", "", true), ("*", "a/b/c", true),
        ("/v1beta/models/*", "/v1beta/models/gemini-pro:generateContent", true),
        ("/v1beta/models/*", "/v1beta/models/a/b", true),
        ("/v1beta/models/*", "/v1beta/models", false), ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyycd", false), ("a*b", "ab", true), ("a*a*a", "aaaa", true),
        ("**", "x", true), ("a?c", "abc", false), ("a?c", "a?c", true), ("[a]", "a", false),
        ("[a]", "[a]", true), ("a\\b", "a\\b", true), ("*é", "xé", true), ("*é*", "aébé", true),
        ("abc", "ABC", false), ("*.example.com", "a.example.com", true),
        ("*.example.com", "example.com", false), ("api.*.com", "api.x.y.com", true),
    ]);
}

#[test]
fn host_forms() {
    #[rustfmt::skip]
    let cases = [
        ("*", "anything.example", true), ("*", "", true), ("*", "10.0.0.1", true),
        ("example.com", "example.com", true), ("Example.COM", "example.com", true),
        ("example.com", "api.example.com", false), ("*.example.com", "api.example.com", true),
        ("*.example.com", "a.b.example.com", true), ("*.example.com", "example.com", false),
        ("*.example.com", "badexample.com", false), ("**.example.com", "example.com", true),
        ("**.example.com", "a.b.example.com", true), ("**.example.com", "notexample.com", false),
        ("**.EXAMPLE.com", "Api.Example.Com", true),
        // Wildcards anywhere else are literal and never match real hosts.
        ("api.*", "api.example.com", false), ("*.*.npmjs.org", "a.b.npmjs.org", false),
        ("foo*bar", "foobar", false), ("api.*", "api.*", true),
        ("*.apple.com", "api.apple.com", true), ("*.apple.com", "apple.com", false),
        ("**.apple.com", "apple.com", true), ("Pinned.Example", "pinned.example", true),
        ("pinned.example", "other.example", false), ("*", "x", true),
        // Only ASCII letters fold.
        ("BÜCHER.de", "bücher.de", false), ("*.bücher.de", "x.bücher.DE", true),
    ];
    for dialect in [Dialect::DESTINATION, Dialect::BYPASS] {
        table(dialect, &cases);
    }
}

#[test]
fn option_empty_base() {
    #[rustfmt::skip]
    let cases = [
        ("*.", "a.", false, true), ("*.", "a", false, false), ("**.", "", false, true),
        ("**.", "a.", false, true), ("**.", "a", false, false), ("*.", ".", false, true),
        ("*.", "..", false, true),
    ];
    for (pattern, host, no_match, literal) in cases {
        assert_eq!(
            Dialect::DESTINATION.matches(pattern, host),
            no_match,
            "{pattern:?} {host:?}"
        );
        assert_eq!(
            Dialect::BYPASS.matches(pattern, host),
            literal,
            "{pattern:?} {host:?}"
        );
    }
    assert_eq!(
        Dialect::DESTINATION.check("*."),
        Err(GlobError::EmptyHostBase)
    );
    assert_eq!(
        Dialect::DESTINATION.check("**."),
        Err(GlobError::EmptyHostBase)
    );
    assert_eq!(Dialect::DESTINATION.check("*.x"), Ok(()));
    assert_eq!(Dialect::BYPASS.check("*."), Ok(()));
}
