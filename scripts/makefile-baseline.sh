#!/usr/bin/env bash
# The baseline of scripts/bench.sh: one root, then per cluster an intermediate, made the way
# Istio's tools/certs Makefile.selfsigned.mk does it (`make root-ca`, then `make
# <cluster>-cacerts` once per cluster): one openssl process per step, one step after another,
# with the Makefile's subjects, extensions and validity (istio-ca-facts.md §5).
#   scripts/makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256
# rsa-4096 is the Makefile's own `openssl genrsa -out KEY 4096`; ecdsa-p256 swaps only the key
# generation for `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` and keeps
# every other step. The .conf files are written with one heredoc each, where the Makefile runs
# one shell per `echo` line: this is, if anything, faster than make.
set -euo pipefail
out=${1:?usage: makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256}
n=${2:?usage: makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256}
alg=${3:?usage: makefile-baseline.sh OUT_DIR CLUSTERS rsa-4096|ecdsa-p256}

genkey() {
  case $alg in
    rsa-4096) openssl genrsa -out "$1" 4096 2>/dev/null ;;
    ecdsa-p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
    *) echo "unknown algorithm $alg" >&2; exit 2 ;;
  esac
}

mkdir -p "$out"
cd "$out"

# make root-ca (common.mk defaults: ROOTCA_DAYS 3650, O=Istio, CN=Root CA)
cat > root-ca.conf <<'EOF'
[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
default_bits = 4096
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
[ req_dn ]
O = Istio
CN = Root CA
EOF
genkey root-key.pem
openssl req -sha256 -new -key root-key.pem -config root-ca.conf -out root-cert.csr
openssl x509 -req -sha256 -days 3650 -signkey root-key.pem \
  -extensions req_ext -extfile root-ca.conf -in root-cert.csr -out root-cert.pem 2>/dev/null

# make <cluster>-cacerts, once per cluster (INTERMEDIATE_DAYS 3650, L=<cluster>)
for i in $(seq 1 "$n"); do
  c=$(printf 'cluster-%04d' "$i")
  mkdir -p "$c"
  cat > "$c/intermediate.conf" <<EOF
[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
default_bits = 4096
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
subjectAltName=@san
[ san ]
DNS.1 = istiod.istio-system.svc
[ req_dn ]
O = Istio
CN = Intermediate CA
L = $c
EOF
  genkey "$c/ca-key.pem"
  openssl req -sha256 -new -config "$c/intermediate.conf" -key "$c/ca-key.pem" -out "$c/cluster-ca.csr"
  openssl x509 -req -sha256 -days 3650 -CA root-cert.pem -CAkey root-key.pem -CAcreateserial \
    -extensions req_ext -extfile "$c/intermediate.conf" \
    -in "$c/cluster-ca.csr" -out "$c/ca-cert.pem" 2>/dev/null
  cat "$c/ca-cert.pem" root-cert.pem > "$c/cert-chain.pem"
  cp root-cert.pem "$c/"
done
