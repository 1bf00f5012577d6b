//! The services of the module, one file per chapter of the specification. Each is a safe method
//! on [`crate::module::Module`] that the thin C ABI layer calls.

pub mod digest;
pub mod general;
pub mod objects;
pub mod random;
pub mod sessions;
