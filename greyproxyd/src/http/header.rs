//! The canonical form of header names: Go's `textproto.CanonicalMIMEHeaderKey`, because the
//! middleware wire protocol and greyproxy's stored transactions both show header names the
//! way Go writes them (`x-api-key` → `X-Api-Key`).

/// Go's `CanonicalMIMEHeaderKey`: the first letter and every letter after a `-` upper-cased,
/// every other letter lower-cased; digits and symbols stay (`content-md5` → `Content-Md5`,
/// `x-1a` → `X-1a`). A name with any byte that is not an RFC 7230 token character — a space,
/// a control or non-ASCII byte, `:` — is returned unchanged, as is the empty name.
pub(crate) fn canonical(name: &str) -> String {
    if !name.bytes().all(is_token_byte) {
        return name.to_owned();
    }
    let mut upper = true;
    name.bytes()
        .map(|b| {
            let out = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            char::from(out)
        })
        .collect()
}

/// RFC 7230 `tchar` (Go's `validHeaderFieldByte`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        #[rustfmt::skip]
        let cases = [
            ("x-foo-bar", "X-Foo-Bar"), ("CONTENT-TYPE", "Content-Type"), ("te", "Te"),
            ("content-type", "Content-Type"), ("x-api-key", "X-Api-Key"),
            ("www-authenticate", "Www-Authenticate"), ("anthropic-beta", "Anthropic-Beta"),
            ("X-Foo-Bar", "X-Foo-Bar"), ("content-md5", "Content-Md5"),
            // Odd but valid names: a `-` upper-cases whatever letter follows it.
            ("x--y", "X--Y"), ("x--double-", "X--Double-"), ("-x", "-X"), ("x-", "X-"),
            ("-", "-"), ("x-1a", "X-1a"), ("1a-b2", "1a-B2"), ("123", "123"),
            ("x_y-z", "X_y-Z"), ("a.b-c", "A.b-C"), ("~a", "~a"),
            // Not token characters: returned unchanged.
            ("", ""), ("a b", "a b"), ("bad name", "bad name"), ("x-foo ", "x-foo "),
            ("ÿ", "ÿ"), ("x-ÿ-y", "x-ÿ-y"), ("x:y", "x:y"), ("x\ty", "x\ty"),
            ("a\"b", "a\"b"), ("(x)", "(x)"),
        ];
        for (name, want) in cases {
            assert_eq!(canonical(name), want, "{name:?}");
        }
    }
}
