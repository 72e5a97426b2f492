//! Which `greyproxyd` binary a benchmark measures (shared by `benches/proxy.rs` and
//! `benches/llm.rs`).

/// The daemon to measure when `BENCH_DAEMON` is not set. The binary cargo builds for a bench
/// target (`CARGO_BIN_EXE_greyproxyd`) carries the dev-dependencies' features, among them
/// tokio's `test-util` (paused time for the unit tests), which puts a lock on every clock
/// read and timer: a full run measures the daemon as `cargo build --release` makes it
/// instead, built once into `target/bench-daemon` (its own target dir, so the bench's own
/// build lock is not in the way). A smoke run (`cargo test --benches`) uses the bench's
/// binary as it is.
pub fn production_daemon(full: bool) -> String {
    let bench_bin = env!("CARGO_BIN_EXE_greyproxyd").to_string();
    if !full {
        return bench_bin;
    }
    build(&[]).to_string_lossy().into_owned()
}

/// `target/bench-daemon` of this workspace.
fn target_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-daemon")
}

/// `cargo build --release` of the daemon into [`target_dir`] with `features` (cargo flags);
/// returns the binary. Panics when the build fails (nothing to measure).
fn build(features: &[&str]) -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir();
    eprintln!(
        "      building the release daemon {features:?} without dev-dependency features into {}…",
        target.display()
    );
    let ok = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "greyproxyd",
            "--bin",
            "greyproxyd",
        ])
        .args(features)
        .arg("--manifest-path")
        .arg(manifest.join("../Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "cannot build the release daemon into {}",
        target.display()
    );
    target.join("release/greyproxyd")
}

/// The release daemon with another allocator, for the soak's comparison: `glibc` (no
/// allocator feature: glibc's malloc), `jemalloc` or `mimalloc` alone. Built into the same
/// target dir as the production daemon (the dependencies are shared, only the daemon crate is
/// rebuilt), copied to `target/bench-daemon/greyproxyd-<name>`, after which the production
/// build is restored (cargo keeps both, so that is a copy, not a rebuild).
// `benches/llm.rs` shares this file and has no soak.
#[allow(dead_code)]
pub fn variant(name: &str) -> String {
    let features: &[&str] = match name {
        "glibc" => &["--no-default-features"],
        "jemalloc" => &["--no-default-features", "--features", "jemalloc"],
        "mimalloc" => &["--no-default-features", "--features", "mimalloc"],
        other => panic!("no daemon variant {other:?}"),
    };
    let built = build(features);
    let copy = target_dir().join(format!("greyproxyd-{name}"));
    std::fs::copy(&built, &copy)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", built.display(), copy.display()));
    build(&[]);
    copy.to_string_lossy().into_owned()
}
