//! rootroll's integration tests: one binary (link once), one module per area.

mod common;
mod import;
mod plans;
mod render;
mod validate;
