//! `greytui`: the terminal dashboard for greyproxyd.
//!
//! The interactive dashboard and `--once` scripting arrive with their own issue; until then the
//! binary only says so, so that packaging and the workspace layout are already in place.

fn main() {
    eprintln!(
        "greytui {}: the dashboard is not built yet; drive greyproxyd over its control WebSocket \
         (protocol version {}), see docs/protocol.md",
        env!("CARGO_PKG_VERSION"),
        greyproxy_protocol::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
