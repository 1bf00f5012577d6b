//! Tessera: a PKCS#11 3.2 software HSM.
//!
//! The C ABI (`abi/`) is a thin shim: it checks pointers and lengths, converts types and calls the
//! safe core (`services/` on a [`module::Module`]). `unsafe` code lives only in `abi/` and in the
//! direct aws-lc bindings of `crypto/` (each a small safe wrapper around one call); every other
//! module is compiled with `unsafe_code` denied. docs/architecture.md, "Layout and the path of one call",
//! names every file.

#![deny(unsafe_code)]

// The test-only fault-injection build always has debug assertions on: a debug build, or
// tests/build-fault-injection.sh's optimised build, which turns them on for this crate alone.
#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!("the fault-injection feature is for test builds only, never for release builds");

#[allow(unsafe_code)]
pub mod abi;
pub mod audit_hook;
pub mod config;
#[allow(unsafe_code)]
pub mod crypto;
pub mod error;
pub mod fips;
pub mod import;
pub mod keys;
pub mod log;
pub mod mechanisms;
pub mod migrate;
pub mod module;
pub mod object;
pub mod operation;
pub mod policy;
pub mod record;
pub mod services;
pub mod session;
pub mod session_table;
pub mod slots;
pub mod state;
pub mod store;
pub mod token;
