//! HTTP helpers shared by every module that handles HTTP messages: canonical forms and
//! decoders that must give the same answer wherever they are used.

pub(crate) mod header;
pub(crate) mod percent;
