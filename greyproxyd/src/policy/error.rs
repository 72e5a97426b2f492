//! Errors of policy mutations; their `Display` text is what control clients see.

use crate::store::StoreError;

/// Why a policy command failed. Nothing changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    /// Unknown pending id.
    #[error("pending request {0} not found")]
    PendingNotFound(u64),
    /// Unknown rule id.
    #[error("rule {0} not found")]
    RuleNotFound(u64),
    /// A pattern failed validation.
    #[error(transparent)]
    Pattern(#[from] super::pattern::PatternError),
    /// A duration failed validation.
    #[error(transparent)]
    Duration(#[from] super::duration::DurationError),
    /// Bad combination or value of arguments.
    #[error("{0}")]
    Invalid(String),
    /// Another rule already has these patterns and action.
    #[error("an identical rule already exists (id {0})")]
    Duplicate(u64),
    /// The store refused the write.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Encoding a setting failed.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking store task failed.
    #[error("store task failed: {0}")]
    Background(String),
}
