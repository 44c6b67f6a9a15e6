#!/usr/bin/env bash
# The baseline of scripts/bench.sh: one root, then per cluster an intermediate, made the way
# Istio's tools/certs Makefile.selfsigned.mk does it (`make root-ca`, then `make
# <cluster>-cacerts` once per cluster): one openssl process per step, one step after another,
# with the Makefile's subjects, extensions and validity (istio-ca-facts.md §5). The steps are
# those of the test fixtures' tests/fixtures/make-istio-certs.sh, run here for clusters
# cluster-0001 … cluster-<N>.
#   scripts/makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256
# rsa-4096 is the Makefile's own `openssl genrsa -out KEY 4096`; ecdsa-p256 swaps only the key
# generation for `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` and keeps
# every other step. The .conf files are written with one heredoc each, where the Makefile runs
# one shell per `echo` line: this is, if anything, faster than make.
set -euo pipefail
usage="usage: makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256"
out=${1:?$usage}
n=${2:?$usage}
case ${3:?$usage} in
  rsa-4096) alg=rsa ;;
  ecdsa-p256) alg=ecdsa-p256 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
mapfile -t clusters < <(seq -f 'cluster-%04g' 1 "$n")
KEYSZ=4096 KEYALG=$alg exec "$(dirname "$0")/../tests/fixtures/make-istio-certs.sh" "$out" "${clusters[@]}"
