//! Test support for the end-to-end tests: start the real `greyproxyd` binary on a fresh state
//! dir with port-0 listeners ([`daemon`]), talk to its control WebSocket as a real client
//! ([`control`]), run real local origins ([`origin`], a mock LLM API in [`llm_mock`]), real
//! `curl` ([`mod@curl`]), the real agent CLIs ([`agents`]) and a real sshd ([`sshd`]).
#![allow(clippy::unwrap_used)]

pub mod agent_env;
pub mod agents;
pub mod badio;
pub mod control;
pub mod curl;
pub mod daemon;
pub mod fakemw;
pub mod fetch;
pub mod grep;
pub mod https_origin;
pub mod llm_mock;
pub mod mitm;
pub mod origin;
pub mod otlp;
pub mod python;
pub mod raw;
pub mod sshd;
pub mod tls;
pub mod wait;
pub mod wire;
pub mod wsprobe;

pub use control::Control;
pub use curl::{CurlResult, curl};
pub use daemon::{Daemon, DaemonBuilder, closed_port};
pub use python::python;
pub use wait::{
    Text, eventually, eventually_blocking, eventually_every, eventually_sync, within,
    within_blocking, within_sync,
};
