//! The services of the module, one file per chapter of the specification. Each is a safe method
//! on [`crate::module::Module`] that the thin C ABI layer calls.

pub mod crypto;
pub mod digest;
pub mod general;
pub mod key_use;
pub mod keys;
pub mod message;
pub mod objects;
pub mod operations;
pub mod random;
pub mod sessions;
pub mod vendor;

/// What a call that produces output gives back under the two-call length convention.
pub enum Output {
    /// The caller asked for the length only (NULL buffer) or its buffer is too small; the
    /// operation stays active.
    Length { len: usize, too_small: bool },
    /// The result.
    Done(Vec<u8>),
}

/// Hands out a computed result, or keeps it for the next call when the caller's buffer (`cap`,
/// `None` for NULL) cannot take it.
pub fn deliver(pending: &mut Option<Vec<u8>>, cap: Option<usize>) -> Output {
    let len = pending.as_ref().map(|v| v.len()).unwrap_or(0);
    length_only(len, cap).unwrap_or_else(|| Output::Done(pending.take().unwrap_or_default()))
}

/// The answer to a call that cannot take a result of `len` bytes in the caller's buffer (`cap`,
/// `None` for NULL): the length, and whether the buffer was too small. `None` when it can.
pub fn length_only(len: usize, cap: Option<usize>) -> Option<Output> {
    match cap {
        None => Some(Output::Length { len, too_small: false }),
        Some(c) if c < len => Some(Output::Length { len, too_small: true }),
        _ => None,
    }
}
