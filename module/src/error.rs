//! The one error type of the core. It carries the `CK_RV` the specification names for the failure;
//! the ABI layer turns it into a return value in exactly one place (`abi::guard`).

use cryptoki_sys::*;
use std::fmt;

/// A PKCS#11 failure, carrying its `CK_RV`. Small and `Copy`: it travels through every hot
/// path. What caused a failure below the specification's level (the token store, the file
/// system), which `CKR_DEVICE_ERROR` alone would not tell an operator, goes with the running
/// call's record instead ([`Error::because`]) and reaches the diagnostic log where the error
/// becomes a return value (`abi::guard`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Error(pub CK_RV);

/// Result type of every core function.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `CK_RV` to hand back to the application.
    pub fn rv(self) -> CK_RV {
        self.0
    }

    /// An error whose cause the diagnostic log should show: noted in the running call's record
    /// (`record::cause`), logged with the call's name if the call returns this `CK_RV`.
    pub fn because(rv: CK_RV, cause: impl fmt::Display) -> Error {
        let text = cause.to_string();
        tracing::debug!("{text}");
        crate::record::cause(rv, text);
        Error(rv)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CKR(0x{:08x})", self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the core: `Err(err(CKR_X))`.
pub fn err(rv: CK_RV) -> Error {
    Error(rv)
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::because(CKR_DEVICE_ERROR, format_args!("token store: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::because(CKR_DEVICE_ERROR, format_args!("token directory: {e}"))
    }
}

/// `len` zero bytes, `CKR_HOST_MEMORY` when they cannot be allocated.
pub fn try_zeroed(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| err(CKR_HOST_MEMORY))?;
    v.resize(len, 0);
    Ok(v)
}

/// Copies a caller's buffer, answering `CKR_HOST_MEMORY` when it cannot be allocated (a length
/// far beyond any real input) instead of aborting the application's process.
pub fn try_copy(b: &[u8]) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(b.len()).map_err(|_| err(CKR_HOST_MEMORY))?;
    v.extend_from_slice(b);
    Ok(v)
}
