//! Mechanisms of the hmac family (registered in `mechanisms/mod.rs`).

use super::Registry;

pub fn register(_r: &mut Registry) {}
