//! Tests of the server core driven by the client core, in memory and in
//! virtual time: an `Instant` advanced by hand, a fake `RelaySockets`.

mod auth;
mod drain;
mod errors;
mod harness;
mod lifetimes;
mod limits;
mod offload;
mod rates;
mod relay;
mod stats;
