#!/usr/bin/env bash
# Runs one coverage-guided fuzzing campaign with AFL++ (stable Rust) and prints its figures;
# exits 1 when the target crashed (the inputs are copied to fuzz/crashes/<target>/).
#
#   scripts/fuzz.sh TARGET SECONDS      TARGET: plan_validate pem_bundle inspect sops_decrypt
#                                               dump_snapshot (fuzz/Cargo.toml), or `build`
#
# The engine is Debian's AFL++ (package `afl++`: afl-fuzz and its runtime afl-compiler-rt.o),
# installed by scripts/test.sh. The targets are built with rustc's own SanitizerCoverage (the
# flags cargo-afl passes, written out below) and linked to that runtime, so no cargo-afl install
# and no AFL++ build from source is needed (fuzz/README.md has the figures).
#
# Seeds: fuzz/corpus/TARGET (checked in, fuzz/seed.sh). Output: $FUZZ_OUT, by default
# target/fuzz/TARGET (replaced on every run; its queue/ is the grown corpus). Environment:
#   FUZZ_TIMEOUT_MS  one execution longer than this is a hang (default 2000: this machine's 2
#                    cores are shared, so AFL++'s own calibration would call slow runs hangs)
#   FUZZ_MAX_EXECS   stop after this many executions as well
#   FUZZ_TARGET_DIR  where the instrumented targets are built (default target/afl-O<level>)
#   FUZZ_OPT_LEVEL   rustc opt-level of the instrumented build (default 1; scripts/test.sh uses 0)
# Hangs are reported, and saved beside the crashes, but do not fail the run: on a loaded
# machine a timeout is not proof of one.
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

# The engine: afl-fuzz and the runtime every target links (Debian `afl++`).
afl_rt=${AFL_COMPILER_RT:-/usr/lib/afl/afl-compiler-rt.o}
if ! command -v afl-fuzz >/dev/null 2>&1 || [[ ! -f $afl_rt ]]; then
  echo "fuzz: AFL++ is missing: install Debian's afl++ (apt-get install afl++), which has afl-fuzz and $afl_rt" >&2
  exit 2
fi

# The targets: instrumented, release, in their own target dir (the flags differ from every
# other build), pinned to rootroll's own lock file (the fuzz crate adds only afl to it). They
# link rootroll's library without its features (no command line, no cluster client), and
# `--target` keeps RUSTFLAGS off build scripts and proc macros, which then build as plain host
# code. The coverage flags are cargo-afl's (0.18, stable rustc: SanitizerCoverage with
# trace-pc-guard and compare tracing, `--cfg fuzzing`, the AFL++ runtime linked in);
# FUZZ_OPT_LEVEL (1, or 0 for the short CI campaigns) and 16 codegen units trade execution
# speed for build time: CI builds cold.
cp Cargo.lock fuzz/Cargo.lock
# One target dir per opt-level: switching flags in one dir would rebuild everything cold.
opt_level=${FUZZ_OPT_LEVEL:-1}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-target/afl-O$opt_level}
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$CARGO_TARGET_DIR/$host/release
flags=(
  -C debug-assertions -C overflow_checks
  -C "opt-level=$opt_level" -C codegen-units=16 -C target-cpu=native
  -C passes=sancov-module
  -C llvm-args=-sanitizer-coverage-level=3
  -C llvm-args=-sanitizer-coverage-trace-pc-guard
  -C llvm-args=-sanitizer-coverage-prune-blocks=0
  -C llvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
  -C "link-arg=$afl_rt"
)
start=$(date +%s)
# CARGO_ENCODED_RUSTFLAGS would win over RUSTFLAGS and leave the targets uninstrumented.
unset CARGO_ENCODED_RUSTFLAGS
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" \
  cargo build --release --quiet --target "$host" --manifest-path fuzz/Cargo.toml --bins
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
  afl-fuzz -V "$seconds" -t "${FUZZ_TIMEOUT_MS:-2000}" "${extra[@]}" \
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
