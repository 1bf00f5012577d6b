//! Tessera's audit log: the record format ([`format`]), the forward-secure keyed chain
//! ([`chain`]), the state beside the log ([`state`]), the writer the module appends with
//! ([`writer`]) and the verifier ([`verify`]) that `tessera-audit verify` runs.
//!
//! A log directory holds `audit.log`, one JSON line per record, each MACed with its own key, the
//! keys evolving one-way after every record; and `audit.state`, the chain's next key and where
//! the log ends. `tessera-audit init DIR` creates both and writes the verification seed for the
//! auditor; the module appends through [`writer::Writer`].
//!
//! Signed checkpoints ([`checkpoint`]) over a Merkle tree of the records ([`merkle`], the
//! writer's frontier in [`tree`]) let anyone with the anchor public keys verify the log
//! ([`public`]), prove one record in it or that it grew without changing ([`proof`]). The
//! checkpoint keys are forward-secure: each checkpoint certifies the next signing pair and the
//! old one is erased; [`keychain`] follows that chain from the anchor. [`query`] reads a log for
//! people: `show`, `export`, `report`.

pub mod chain;
pub mod checkpoint;
pub mod format;
pub mod keychain;
pub mod merkle;
pub mod names;
pub mod proof;
pub mod public;
pub mod query;
pub mod state;
pub mod tree;
pub mod verify;
pub mod writer;

pub use format::Record;
pub use writer::Writer;
