//! greytui's end-to-end tests, built as one test binary: render snapshots, the dashboard
//! against a real daemon (and one fed by the mock LLM origin), `--once`, shell completions and
//! the real binary in tmux, and the real Claude Code CLI watched and decided in the dashboard.
//! Run one area with `cargo test -p greytui --test it <module>::`.
#![allow(clippy::unwrap_used)]

mod agent;
mod common;
mod completions;
mod conversations;
mod credentials;
mod credentials_render;
mod dashboard;
mod export;
mod fleet;
mod launcher;
mod llm;
mod llm_once;
mod once;
mod render;
mod tmux;
mod usage;
