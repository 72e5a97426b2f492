//! Policy: rule patterns and precedence, scopes and durations, the pending registry, holds,
//! silent mode and revocation of live connections.

pub mod allow_all;
pub mod duration;
pub mod engine;
pub mod error;
pub mod hold;
pub mod matching;
pub mod mutate;
pub mod pattern;
pub mod queries;
pub mod scope;
pub mod tracker;

pub use engine::{ConnRequest, FrontEnd, Policy, Reason, Verdict};
pub use error::PolicyError;
