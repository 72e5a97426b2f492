//! Policy: rule patterns and precedence, scopes and durations, the pending registry, holds,
//! silent mode and revocation of live connections. Every change goes through one path
//! (`apply`) and every reading of the time through one [`clock::Clock`].

pub(crate) mod allow_all;
mod apply;
pub(crate) mod clock;
pub(crate) mod duration;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod hold;
pub(crate) mod matching;
pub(crate) mod mutate;
pub(crate) mod pattern;
pub(crate) mod queries;
pub(crate) mod scope;
pub(crate) mod selfaddr;
pub(crate) mod tracker;

pub(crate) use engine::{ConnRequest, FrontEnd, Policy, Verdict};
pub(crate) use error::PolicyError;
#[cfg(test)]
mod tests;
