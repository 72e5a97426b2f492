//! greyproxyd: the greyproxy daemon as a library, so that the binary stays a thin CLI and the
//! end-to-end tests and benchmarks can reuse its parts.
//!
//! Data flow: a proxy front end ([`proxy`]) accepts a client, derives its identity and asks the
//! [`policy`] engine for a decision (which may hold the connection until a human decides over
//! the [`control`] WebSocket); decisions and rules are made durable in the [`store`]; every
//! change is published on the [`events`] bus that control clients subscribe to.
//!
//! # Layout
//!
//! Modules are layered, leaves first: bytes on sockets (`net`), HTTP forms and helpers
//! ([`http`]), the one pattern engine ([`glob`]), the reloadable settings (`live`) and the one
//! shutdown (`shutdown`) sit below storage ([`store`]) and the event bus, which sit below the
//! policy, the middlewares, the recording exchange ([`capture`]), TLS interception ([`mitm`])
//! and the front ends ([`proxy`]); the control plane ([`control`]) and the wiring ([`daemon`])
//! come last. A module uses only the ones before it in `LAYERS` (below); one that needs
//! something from a later one gets a handle passed in. The `layering` test enforces it, and
//! `docs/architecture.md` says what lives in each.
// The daemon's modules are crate-private but documented for its developers (`cargo doc
// --document-private-items`); module overviews link to those parts.
#![allow(rustdoc::private_intra_doc_links)]

pub mod accept;
mod atomic;
pub mod capture;
pub mod config;
pub mod control;
// Only `credentials::fuzzing` (the fuzz target's door) and `credentials::bench` (the proxy
// benchmark's) are public.
pub mod credentials;
pub mod daemon;
pub mod dissect;
pub mod endpoints;
pub mod events;
pub mod export;
pub mod glob;
pub mod http;
pub mod lifecycle;
pub mod live;
pub mod middleware;
pub mod mitm;
pub mod net;
pub mod notify;
pub mod policy;
pub mod proxy;
pub mod records;
pub mod reload;
pub mod shutdown;
pub mod store;
pub mod time;

/// The order of greyproxyd's top-level modules, leaves first: a module may use only the modules
/// before it. A module that needs something from one after it gets a handle passed in. Checked
/// by the `layering` test below.
#[cfg(test)]
const LAYERS: &[&str] = &[
    "time",
    "atomic",
    "net",
    "http",
    "glob",
    "endpoints",
    "live",
    "shutdown",
    "accept",
    "records",
    "store",
    "events",
    "dissect",
    "credentials",
    "policy",
    "middleware",
    "capture",
    "mitm",
    "proxy",
    "export",
    "control",
    "config",
    "reload",
    "notify",
    "lifecycle",
    "daemon",
];

#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    fn sources(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                sources(&e, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_path_buf());
        }
    }

    /// The top-level modules a module's source names as `crate::X`, comments excluded.
    fn uses(module: &str) -> BTreeSet<String> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        sources(&src.join(format!("{module}.rs")), &mut files);
        let mut found = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                for (i, _) in code.match_indices("crate::") {
                    let name: String = code[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != module {
                        found.insert(name);
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_module_is_layered() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
        let lib = std::fs::read_to_string(src).unwrap_or_default();
        for line in lib.lines() {
            let decl = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "));
            if let Some(m) = decl.and_then(|d| d.strip_suffix(';')) {
                assert!(LAYERS.contains(&m), "module {m} is missing from LAYERS");
            }
        }
    }

    #[test]
    fn imports_point_down() {
        let mut wrong = Vec::new();
        for (i, m) in LAYERS.iter().enumerate() {
            for used in uses(m) {
                match LAYERS.iter().position(|l| *l == used) {
                    Some(j) if j < i => {}
                    _ => wrong.push(format!("{m} -> {used}")),
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports against the layer order: {wrong:?}"
        );
    }
}
