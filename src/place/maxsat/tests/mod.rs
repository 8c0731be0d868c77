//! Tests of the MaxSAT module: unit tests, property tests against brute
//! force, WCNF round trips, and an ignored timing harness.

mod bench;
mod brute;
mod generate;
mod prop;
mod unit;
