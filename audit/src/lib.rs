//! Tessera's audit log: the record format ([`format`]), the forward-secure keyed chain
//! ([`chain`]), the state beside the log ([`state`]), the writer the module appends with
//! ([`writer`]) and the verifier ([`verify`]) that `tessera-audit verify` runs.
//!
//! A log directory holds `audit.log`, one JSON line per record, each MACed with its own key, the
//! keys evolving one-way after every record; and `audit.state`, the chain's next key and where
//! the log ends. `tessera-audit init DIR` creates both and writes the verification seed for the
//! auditor; the module appends through [`writer::Writer`].

pub mod chain;
pub mod format;
pub mod names;
pub mod state;
pub mod verify;
pub mod writer;

pub use format::Record;
pub use writer::Writer;
