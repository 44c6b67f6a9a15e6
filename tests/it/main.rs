//! rootroll's integration tests: one binary (link once), one module per area.

mod apiserver;
mod catalogue;
mod cli;
mod common;
mod encrypted;
mod envoy;
mod fleet;
mod handshake;
mod hardening;
mod holes;
mod import;
mod keyfree;
mod lifecycle;
mod live;
mod matrix;
mod plans;
mod promote;
mod recipients;
mod render;
mod repo;
mod report;
mod sops;
mod validate;
mod verify;
mod waves;
mod writes;
