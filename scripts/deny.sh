#!/usr/bin/env bash
# Dependency policy (deny.toml): bans, licenses and sources. Not in CI: cargo-deny takes over
# three minutes to build on a 2-core machine. Install once with `cargo install --locked cargo-deny`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "cargo-deny is not installed: cargo install --locked cargo-deny" >&2
  exit 2
fi
cargo deny --locked check bans licenses sources
