//! The LLM layer (docs/llm.md): recognising LLM API calls in recorded traffic, reading their
//! wire formats into one model ([`model`]), counting usage and cost, and assembling
//! conversations — all off the forwarding path. A finished transaction or WebSocket message
//! whose endpoint the registry ([`crate::endpoints`]) recognises is queued to one dissection
//! task; the forwarder never waits for it.

// Until the dissection task calls it.
#[allow(dead_code)]
pub(crate) mod assemble;
// Until the task and the assembler read every part of the model.
#[allow(dead_code)]
pub(crate) mod model;
