#![warn(missing_docs)]
//! rootroll compiles an Istio root CA rotation plan into ordered, encrypted GitOps manifests,
//! and checks each phase's gates before it is promoted.
//!
//! ```text
//! plan.yaml ─plan::load─▶ Plan ─materials::materialize─▶ Materials ─model::compile─▶ Rollout
//!   ─render::render─▶ Outputs ─seal::seal─▶ Outputs ─repo::write─▶ DIR
//!   DIR ─repo::Repo::open─▶ Repo ─verify::offline::execute─▶ Report
//! ```
//!
//! Modules that do I/O: [`plan`] (the plan and the files it imports), [`render`] (override
//! templates; [`render::execute`] reads and writes the output directory through [`repo`]),
//! [`repo`] (the rendered tree), [`init`] (import directories, the plan it writes),
//! [`promote`] (pointers, `git`), [`verify::offline`] (the tree), [`verify::cluster`] and
//! [`verify::dump`] (a cluster or a dump of one) and [`sops::load_identities`] (identity files).
//! Everything else is pure. The library never prints and never reads the clock: `now` is
//! passed in. ARCHITECTURE.md says where each kind of change goes.

pub mod duration;
pub mod fleet;
pub mod gates;
pub mod handshake;
pub mod init;
pub mod materials;
pub mod model;
pub mod parallel;
pub mod pki;
pub mod plan;
pub mod promote;
pub mod render;
pub mod repo;
pub mod seal;
pub mod sops;
pub mod state;
pub mod verify;

/// The `apiVersion` of every file format rootroll reads and writes (plans, key state).
pub const API_VERSION: &str = "rootroll.dev/v1alpha1";
