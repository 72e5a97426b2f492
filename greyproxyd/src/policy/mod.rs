//! Policy: rule patterns and precedence, scopes and durations, the pending registry, holds,
//! silent mode and revocation of live connections. Every change goes through one path
//! (`apply`) and every reading of the time through one [`Clock`].

pub mod allow_all;
mod apply;
pub mod clock;
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

pub use clock::Clock;
pub use engine::{ConnRequest, FrontEnd, Policy, Reason, Verdict};
pub use error::PolicyError;
#[cfg(test)]
mod tests;
