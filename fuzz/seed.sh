#!/usr/bin/env bash
# Seeds fuzz/corpus/<target> from the repository's own inputs (nothing is committed: the
# corpora grow while fuzzing and may hold mutated fixture keys).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/plan_validate fuzz/corpus/pem_bundle fuzz/corpus/sops_decrypt
cp plans/*.yaml tests/invalid/*.yaml fuzz/corpus/plan_validate/
find tests/hostile/plans -name '*.yaml' -size -64k -exec cp {} fuzz/corpus/plan_validate/ \;
n=0
for f in $(find tests/fixtures -name '*.pem' -o -name '*.crt'); do
  n=$((n + 1)); cp "$f" "fuzz/corpus/pem_bundle/$n-$(basename "$f")"
done
cp tests/hostile/sops/*.sops.yaml fuzz/corpus/sops_decrypt/
echo "seeded: $(ls fuzz/corpus/plan_validate | wc -l) plans, $(ls fuzz/corpus/pem_bundle | wc -l) PEM files, $(ls fuzz/corpus/sops_decrypt | wc -l) SOPS files"
