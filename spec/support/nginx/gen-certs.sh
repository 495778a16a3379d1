#!/bin/sh
# Writes a throwaway PKI for the TLS specs into DIR (created if missing), with the openssl
# CLI only; keys are P-256 (fast to make) and everything expires in two days.
#   spec/support/nginx/gen-certs.sh DIR
#   ca.pem, ca.key                the test CA the clients are told to trust
#   localhost.pem, localhost.key  server certificate for localhost (and 127.0.0.1), from ca
#   other-ca.pem, other-ca.key    a second CA that nobody trusts
#   untrusted.pem, untrusted.key  server certificate for localhost, from other-ca
#   wrong-host.pem, wrong-host.key  server certificate for other.test, from ca
set -eu

if [ "$#" -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
mkdir -p "$1"
cd "$1"

new_ca() { # name, common name
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

new_leaf() { # name, issuing CA, common name, subjectAltName
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
    printf '%s\n' "subjectAltName=$4" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -days 2 \
        -set_serial "0x$(openssl rand -hex 8)" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

new_ca ca "ddb-optimistic test CA"
new_ca other-ca "ddb-optimistic untrusted CA"
new_leaf localhost ca localhost "DNS:localhost,IP:127.0.0.1"
new_leaf untrusted other-ca localhost "DNS:localhost,IP:127.0.0.1"
new_leaf wrong-host ca other.test "DNS:other.test"
openssl verify -CAfile ca.pem localhost.pem wrong-host.pem >/dev/null
