//! `kafka-consumer`: the consumer API, built on `kafka-core`. Not yet implemented: see the open issue
//! for the consumer in the tracker; this crate exists so the workspace layout is fixed early.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
