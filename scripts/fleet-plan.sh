#!/usr/bin/env bash
# Prints a fleet plan: N clusters sharing one root, one intermediate per cluster and root.
#   scripts/fleet-plan.sh N NEW_ALGORITHM [NAME]
# The current root A and its intermediates are generated ECDSA P-256 stand-ins (as in
# plans/demo.yaml; a real mesh imports today's root, see plans/import.yaml). The new root B
# and its N intermediates use NEW_ALGORITHM: that is the hierarchy Istio's Makefile would
# make (one root, then one intermediate per cluster), and what scripts/bench.sh compares.
# plans/fleet-100-ecdsa.yaml and plans/fleet-10-rsa.yaml were written by this script.
set -euo pipefail
n=${1:?usage: fleet-plan.sh N NEW_ALGORITHM [NAME]}
alg=${2:?usage: fleet-plan.sh N NEW_ALGORITHM [NAME]}
name=${3:-fleet-$n}
cat <<EOF
# $n clusters sharing one root: the benchmark fleet of scripts/bench.sh, written by
# \`scripts/fleet-plan.sh $n $alg $name\`. The current root A is a generated ECDSA P-256
# stand-in (a real mesh imports today's root, see import.yaml); the new root B and one
# intermediate per cluster are $alg, the hierarchy Istio's Makefile makes.
apiVersion: rootroll.dev/v1alpha1
kind: RotationPlan
metadata:
  name: $name
spec:
  mesh:
    trustDomain: cluster.local
    minIstioVersion: "1.26"
  timing:
    workloadCertTTL: 24h
    propagationDelay: 3m
    safetyMargin: 30m
  gitops:
    # DEMO key (plans/demo.agekey): replace with your Flux/Argo CD and operator keys.
    ageRecipients:
      - age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66et
    engine: flux
    repoPath: infrastructure/istio-ca
  roots:
    current:
      generate:
        algorithm: ecdsa-p256
        validity: 3650d
        subject: {organization: Istio, commonName: Root CA}
    new:
      generate:
        algorithm: $alg
        validity: 3650d
        subject: {organization: Istio, commonName: Root CA G2}
  clusters:
EOF
for i in $(seq 1 "$n"); do
  c=$(printf 'cluster-%04d' "$i")
  cat <<EOF
    - name: $c
      intermediates:
        current: {generate: {algorithm: ecdsa-p256}}
        new: {generate: {algorithm: $alg, validity: 1825d}}
EOF
done
