//! Random bytes: aws-lc's DRBG, seeded from the system (through aws-lc-rs).

/// SSP: DRBG entropy input, seed and state
pub use aws_lc_rs::rand::fill;
