//! The module integrity test: an HMAC-SHA-256 over the installed library file, compared with the
//! value recorded beside it (`<library>.hmac`) when the module was sealed (`tessera-util --seal`).
//! The HMAC key is fixed and public: the test detects modification, it keeps no secret.

use aws_lc_rs::hmac;
use std::fmt;
use std::path::{Path, PathBuf};

/// The fixed integrity key.
const KEY: &[u8] = b"Tessera module integrity key, v1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The library matches its recorded value.
    Verified,
    /// No value was recorded beside the library.
    Unsealed,
    /// The library does not match its recorded value.
    Mismatch,
    /// The library or its value could not be read.
    Unreadable(String),
    /// The core runs outside the library (inside `tessera-util`).
    NotApplicable,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Verified => write!(f, "integrity verified"),
            Status::Unsealed => write!(f, "no integrity value recorded (run tessera-util --seal)"),
            Status::Mismatch => write!(f, "the library does not match its integrity value (seal it again with tessera-util --seal after installing a new build)"),
            Status::Unreadable(e) => write!(f, "integrity value unreadable: {e}"),
            Status::NotApplicable => write!(f, "integrity test not applicable"),
        }
    }
}

/// Where a library's integrity value lives.
pub fn seal_path(library: &Path) -> PathBuf {
    let mut p = library.as_os_str().to_owned();
    p.push(".hmac");
    PathBuf::from(p)
}

/// HMAC-SHA-256 of a file, hex.
pub fn mac_file(path: &Path) -> std::io::Result<String> {
    let data = std::fs::read(path)?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, KEY), &data);
    Ok(tag.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Records the integrity value of a library.
pub fn seal(library: &Path) -> std::io::Result<PathBuf> {
    let mac = mac_file(library)?;
    let out = seal_path(library);
    std::fs::write(&out, format!("{mac}\n"))?;
    Ok(out)
}

/// Checks a library against its recorded value.
pub fn check(library: &Path) -> Status {
    let recorded = match std::fs::read_to_string(seal_path(library)) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Status::Unsealed,
        Err(e) => return Status::Unreadable(e.to_string()),
    };
    match mac_file(library) {
        Ok(_) if !super::kat::healthy("integrity") => Status::Mismatch,
        Ok(m) if aws_lc_rs::constant_time::verify_slices_are_equal(m.as_bytes(), recorded.as_bytes()).is_ok() => {
            Status::Verified
        }
        Ok(_) => Status::Mismatch,
        Err(e) => Status::Unreadable(e.to_string()),
    }
}
