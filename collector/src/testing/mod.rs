//! Test support shared by the crate's unit tests.

pub mod strategies;
