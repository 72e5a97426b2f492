//! Closed sets of names: enums that travel as one lower-case string each (`"auto"`,
//! `"tagged-allow"`, …). `wire_names!` writes the wire name of every variant once and derives
//! from it `as_str`, `Display`, `FromStr` and serde, so the JSON shape, the stored bytes and
//! the parser cannot drift apart. Parsing an unknown name fails with [`UnknownName`], which
//! lists the accepted ones.

/// A string that is not one of the names of a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: use {}", accepted(.names))]
pub struct UnknownName {
    /// What the set is called (`transaction result`, `control.auth`, …).
    pub what: &'static str,
    /// The string as given.
    pub value: String,
    /// The accepted names.
    pub names: &'static [&'static str],
}

/// `a`, `a or b`, `a, b or c`.
fn accepted(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Declares an enum of unit variants, each with its wire name, plus `NAMES`, `as_str`,
/// `Display`, `FromStr` (errors with [`UnknownName`]) and serde as that string.
macro_rules! wire_names {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $name:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $ty {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// The wire name of every variant, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::names::UnknownName {
                        what: $what,
                        value: s.to_string(),
                        names: Self::NAMES,
                    }),
                }
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "a {}", $what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

pub(crate) use wire_names;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    wire_names! {
        /// A test set.
        pub enum Sample ("sample") {
            /// First.
            One = "one",
            /// Second.
            TwoWords = "two-words",
            /// Third.
            Three = "three_x",
        }
    }

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for (v, n) in Sample::ALL.iter().zip(Sample::NAMES) {
            assert_eq!(v.as_str(), *n);
            assert_eq!(v.to_string(), *n);
            assert_eq!(n.parse::<Sample>().unwrap(), *v);
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{n}\""));
            assert_eq!(
                serde_json::from_str::<Sample>(&format!("\"{n}\"")).unwrap(),
                *v
            );
            // An owned string (escapes force one) decodes too.
            let value = serde_json::Value::String(n.to_string());
            assert_eq!(serde_json::from_value::<Sample>(value).unwrap(), *v);
        }
    }

    #[test]
    fn unknown_names_list_the_accepted_ones() {
        let e = "One".parse::<Sample>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid sample \"One\": use one, two-words or three_x"
        );
        let e = serde_json::from_str::<Sample>("\"four\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid sample \"four\": use one, two-words or three_x"),
            "{e}"
        );
        let e = serde_json::from_str::<Sample>("4").unwrap_err();
        assert!(e.to_string().contains("expected a sample"), "{e}");
        assert_eq!(accepted(&["a", "b"]), "a or b");
        assert_eq!(accepted(&["a"]), "a");
    }
}
