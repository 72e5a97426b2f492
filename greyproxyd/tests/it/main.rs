//! greyproxyd's end-to-end tests, built as one test binary (one link instead of one per
//! file): each module covers one area and drives the real `greyproxyd` binary through
//! `greyproxy-testkit`. Run one area with `cargo test -p greyproxyd --test it <module>::`.
#![allow(clippy::unwrap_used)]

mod acceptance;
mod agents;
mod agents_export;
mod bad_input;
mod cert_cli;
mod cli;
mod control;
mod control_queries;
mod control_socket;
mod credentials;
mod credentials_holds;
mod dns;
mod export;
mod export_har;
mod fault_holds;
mod fault_kill;
mod fault_readonly;
mod fault_upstream_reset;
mod heartbeat;
mod holds;
mod host_map;
mod llm;
mod llm_checks;
mod middleware_acceptance;
mod middleware_cascade;
mod middleware_content;
mod middleware_decisions;
mod middleware_events;
mod middleware_examples;
mod middleware_failure;
mod middleware_flood;
mod middleware_framing;
mod middleware_handshake;
mod middleware_streaming;
mod mitm_activity;
mod mitm_basic;
mod mitm_bodies;
mod mitm_http;
mod mitm_tunnels;
mod operations;
mod rules;
mod rules_lifecycle;
mod scopes;
mod slow_client;
mod socks;
mod task_leak;
mod websocket_bench;
mod websocket_capture;
mod websocket_messages;
mod websocket_plain;
