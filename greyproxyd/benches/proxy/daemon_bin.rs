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
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = manifest.join("../target/bench-daemon");
    eprintln!(
        "      building the release daemon without dev-dependency features into {}…",
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
    target
        .join("release/greyproxyd")
        .to_string_lossy()
        .into_owned()
}
