//! rootroll compiles an Istio root CA rotation plan into ordered, encrypted GitOps manifests.
//!
//! ```text
//! plan.yaml ─load─▶ RawPlan ─validate─▶ Plan ─materialize─▶ Materials ─compile(now)─▶ Rollout
//!                                                                      ─render─▶ Outputs ─write─▶ DIR
//! ```
//! Each arrow is a function; only `materialize` (key generation, reading imports and state)
//! and `write` touch the world. The library never prints and never reads the clock: `now` is
//! passed in.

pub mod duration;
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
