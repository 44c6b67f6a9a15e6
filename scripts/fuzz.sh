#!/usr/bin/env bash
# Runs one coverage-guided fuzzing campaign with AFL++ (cargo-afl, stable Rust) and prints its
# figures; exits 1 when the target crashed (the inputs are copied to fuzz/crashes/<target>/).
#
#   scripts/fuzz.sh TARGET SECONDS      TARGET: plan_validate pem_bundle inspect sops_decrypt
#                                               dump_snapshot (fuzz/Cargo.toml), or `build`
#
# Seeds: fuzz/corpus/TARGET (checked in, fuzz/seed.sh). Output: $FUZZ_OUT, by default
# target/fuzz/TARGET (replaced on every run; its queue/ is the grown corpus). Environment:
#   FUZZ_TIMEOUT_MS  one execution longer than this is a hang (default 2000: this machine's 2
#                    cores are shared, so AFL++'s own calibration would call slow runs hangs)
#   FUZZ_MAX_EXECS   stop after this many executions as well (AFL_EXIT_ON_TIME is not used)
#   FUZZ_TARGET_DIR  where the instrumented targets are built (default target/afl)
# Hangs are reported, and saved beside the crashes, but do not fail the run: on a loaded
# machine a timeout is not proof of one. cargo-afl is installed with `cargo install --locked`
# when it is missing (it builds the AFL++ copy shipped in the crate: cc and make).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(plan_validate pem_bundle inspect sops_decrypt dump_snapshot)
usage() {
  echo "usage: scripts/fuzz.sh TARGET SECONDS   (TARGET: ${targets[*]}), or scripts/fuzz.sh build" >&2
  exit 2
}
target=${1:-}
[[ -n $target ]] || usage
if [[ $target != build ]]; then
  [[ " ${targets[*]} " == *" $target "* ]] || usage
  seconds=${2:-}
  [[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
fi

# The engine.
if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-afl (cargo install --locked cargo-afl)"
  start=$(date +%s)
  cargo install --locked --quiet cargo-afl
  echo "fuzz: cargo-afl installed in $(($(date +%s) - start)) s"
fi
# (afl-fuzz -h exits 1 even when all is well: look for cargo-afl's own complaint instead.)
if cargo afl fuzz -h 2>&1 | grep -q 'was not built'; then
  echo "fuzz: building AFL++ (cargo afl config --build)"
  cargo afl config --build --force
fi

# The targets: instrumented, release, in their own target dir (the flags differ from every
# other build), pinned to rootroll's own lock file (the fuzz crate adds only afl to it). They
# link rootroll's library without its features (no command line, no cluster client), and
# `--target` keeps cargo-afl's RUSTFLAGS off build scripts and proc macros, which then build
# as plain host code instead of instrumented at opt-level 3. AFL_OPT_LEVEL (cargo-afl's own
# knob, default here 1) and one codegen unit per 16 trade execution speed for build time:
# CI builds cold every run (fuzz/README.md has the figures).
cp Cargo.lock fuzz/Cargo.lock
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-target/afl}
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$CARGO_TARGET_DIR/$host/release
start=$(date +%s)
AFL_OPT_LEVEL=${AFL_OPT_LEVEL:-1} RUSTFLAGS="-C codegen-units=16 ${RUSTFLAGS:-}" \
  cargo afl build --release --quiet --target "$host" --manifest-path fuzz/Cargo.toml --bins
echo "fuzz: targets built in $(($(date +%s) - start)) s"
[[ $target == build ]] && exit 0

out=${FUZZ_OUT:-target/fuzz/$target}
rm -rf "$out"
mkdir -p "$out"
scratch=$(mktemp -d "${TMPDIR_FUZZ:-/dev/shm}/rootroll-fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
log="$out/afl-fuzz.log"
extra=()
[[ -n ${FUZZ_MAX_EXECS:-} ]] && extra+=(-E "$FUZZ_MAX_EXECS")

echo "fuzz: $target for ${seconds} s from fuzz/corpus/$target ($(ls "fuzz/corpus/$target" | wc -l) seeds), log $log"
set +e
ROOTROLL_FUZZ_SCRATCH="$scratch" \
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_FAST_CAL=1 AFL_NO_WARN_INSTABILITY=1 \
  cargo afl fuzz -V "$seconds" -t "${FUZZ_TIMEOUT_MS:-2000}" "${extra[@]}" \
  -i "fuzz/corpus/$target" -o "$out" -- "$bin_dir/$target" >"$log" 2>&1
rc=$?
set -e

stats="$out/default/fuzzer_stats"
if [[ ! -f $stats ]]; then
  echo "fuzz: afl-fuzz did not start (exit $rc); the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 2
fi
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
execs=$(stat execs_done)
run_time=$(stat run_time)
crashes=$(stat saved_crashes)
hangs=$(stat saved_hangs)
per_sec=$(awk -v e="$execs" -v t="$run_time" 'BEGIN { printf "%.0f", (t > 0 ? e / t : 0) }')
echo "fuzz: $target: $execs executions in $run_time s ($per_sec execs/s), corpus $(stat corpus_count) inputs, coverage $(stat bitmap_cvg), $crashes crashes, $hangs hangs"

for kind in crashes hangs; do
  found=$(find "$out/default/$kind" -type f -name 'id:*' 2>/dev/null)
  [[ -z $found ]] && continue
  dest=fuzz/crashes/$target
  [[ $kind == hangs ]] && dest=fuzz/crashes/$target/hangs
  mkdir -p "$dest"
  for f in $found; do
    sum=$(sha256sum "$f" | cut -c1-16)
    cp "$f" "$dest/$sum"
    echo "fuzz: $kind input $dest/$sum (replay: $bin_dir/$target < $dest/$sum)"
  done
done
if [[ $rc -ne 0 ]]; then
  echo "fuzz: afl-fuzz exited $rc; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 2
fi
[[ $crashes == 0 ]] || exit 1
