#!/bin/sh
# make-certs.sh: a private CA, node certificates and a client certificate
# for tally's TLS, made with the openssl command (docs/security.md).
#
#   deploy/make-certs.sh DIR [N]
#
# writes DIR/ca.crt + ca.key, DIR/nodeI.crt + nodeI.key for I = 1..N
# (default 3; CN=nodeI, which the Raft links check against the node id),
# and DIR/client.crt + client.key (CN=client; TALLY_CLIENT_CN overrides).
# Every node certificate names 127.0.0.1, ::1, localhost and nodeI; add
# the addresses clients and peers use to reach the nodes with
# TALLY_CERT_IPS="10.0.0.1 10.0.0.2" and TALLY_CERT_DNS="db1.example".
# Existing files are kept (so a second run adds missing ones only);
# TALLY_CERT_DAYS sets the validity of new certificates (default 825).
# Keys are P-256, readable by the owner only.
set -eu
dir=${1:?usage: make-certs.sh DIR [N]}
n=${2:-3}
days=${TALLY_CERT_DAYS:-825}
case $n in ''|*[!0-9]*) echo "make-certs.sh: N must be a number, not '$n'" >&2; exit 2;; esac
command -v openssl >/dev/null || { echo "make-certs.sh: the openssl command is missing (apt-get install openssl)" >&2; exit 2; }
mkdir -p "$dir"
umask 077

key() { [ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f "$dir/ca.crt" ]; then
    key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=tally CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.crt"
fi

# sign NAME CN SAN USAGE: DIR/NAME.crt signed by the CA.
sign() {
    [ -f "$dir/$1.crt" ] && return 0
    key "$dir/$1.key"
    ext="$dir/$1.ext"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$4"
        [ -n "$3" ] && echo "subjectAltName=$3"
    } > "$ext"
    openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$dir/$1.csr"
    openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$days" -sha256 -extfile "$ext" -out "$dir/$1.crt" 2>/dev/null
    rm -f "$dir/$1.csr" "$ext"
}

i=1
while [ "$i" -le "$n" ]; do
    san="IP:127.0.0.1,IP:::1,DNS:localhost,DNS:node$i"
    for ip in ${TALLY_CERT_IPS:-}; do san="$san,IP:$ip"; done
    for dns in ${TALLY_CERT_DNS:-}; do san="$san,DNS:$dns"; done
    # serverAuth for clients and accepted Raft links, clientAuth for the
    # Raft links this node dials.
    sign "node$i" "node$i" "$san" "serverAuth,clientAuth"
    i=$((i + 1))
done
sign client "${TALLY_CLIENT_CN:-client}" "" "clientAuth"
chmod 644 "$dir"/*.crt
echo "certificates in $dir: ca.crt, node1..node$n (.crt/.key), client (.crt/.key)"
