#!/usr/bin/env bash
# Fails if a plaintext private key appears in what the tests produced: everything the rootroll
# binary printed in any test (kept under DIR by tests/it/common.rs when ROOTROLL_TEST_OUTPUT_DIR
# is set), the test log, the snapshots and every other file under tests/, except the declared
# fixtures (tests/fixtures/**, published test keys). The one run excluded is a `decrypt` given
# --insecure-write-plaintext: printing the plaintext is what that flag asks for.
# Usage: scripts/scan-test-output.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
# PEM armour of a private key, the same armour base64-encoded (a Secret's data) at each of the
# three alignments, and an age identity.
needles=(-e 'PRIVATE KEY-----' -e 'LS0tLS1CRUdJTi' -e 'UFJJVkFURSBLRVk' -e 'BSSVZBVEUgS0VZ'
  -e 'QUklWQVRFIEtFW' -e 'AGE-SECRET-KEY-1')

# The scan must be able to fail: a planted key is found.
canary=$(mktemp)
printf 'x\n-----BEGIN EC %s-----\n' 'PRIVATE KEY' > "$canary"
if ! grep -qF "${needles[@]}" "$canary"; then
  echo "scan-test-output: the scan does not find a planted key" >&2; rm -f "$canary"; exit 1
fi
rm -f "$canary"

runs=$(find "$dir" -type f -name '*.out' | wc -l)
if [ "$runs" -lt 100 ]; then
  echo "scan-test-output: only $runs recorded rootroll runs in $dir; is ROOTROLL_TEST_OUTPUT_DIR set?" >&2
  exit 1
fi
found=0
while IFS= read -r -d '' f; do
  if head -n1 "$f" | grep -q -- '--insecure-write-plaintext'; then continue; fi
  if grep -qF "${needles[@]}" "$f"; then
    echo "private key material in test output: $f ($(head -n1 "$f"))" >&2; found=1
  fi
done < <(find "$dir" -type f -print0)
# Snapshots get the full scan; other files under tests/ (sources, hostile inputs) are code
# that names the armour, so there only a real key block or a whole age identity counts.
while IFS= read -r -d '' f; do
  if grep -qF "${needles[@]}" "$f"; then
    echo "private key material in a snapshot: $f" >&2; found=1
  fi
done < <(find tests -path tests/fixtures -prune -o -type f \( -name '*.snap' -o -name '*.snap.new' \) -print0)
while IFS= read -r -d '' f; do
  if grep -qE '^[[:space:]]*-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[[:space:]]*$|AGE-SECRET-KEY-1[0-9A-Z]{58}' "$f"; then
    echo "private key outside tests/fixtures: $f" >&2; found=1
  fi
done < <(find tests -path tests/fixtures -prune -o -type f -print0)
if [ "$found" -ne 0 ]; then exit 1; fi
echo "scan-test-output: no private key in $runs recorded runs, the test log, snapshots or tests/ outside tests/fixtures"
