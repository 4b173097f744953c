//! The SSE wire format, pure: events and their encoding, the stream parser,
//! topic names, ids and jitter. Nothing here does I/O or imports anything of
//! the crate but [`crate::Error`].

pub(crate) mod event;
pub(crate) mod id;
pub(crate) mod parse;
pub(crate) mod topic;
