//! Random bytes: aws-lc's DRBG, seeded from the system (through aws-lc-rs).

pub use aws_lc_rs::rand::fill;
