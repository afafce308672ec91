#![deny(unsafe_code)]
pub mod counters;
pub mod engine;
pub mod l2;
pub mod parse;
pub mod socket;
pub mod worker;
