#!/usr/bin/env bash
# Makes the test PKI in DIR:
#   mesh-ca.pem            the mesh CA (like Istio's root-cert.pem)
#   agent.{pem,key}        node agent, URI SAN spiffe://cluster.local/ns/sluice-system/sa/sluice-agent
#   gateway.{pem,key}      egress gateway, URI SAN spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account
#   public-ca.pem          a separate "public" CA that signs the origins (what apps trust)
#   origin-<host>.{pem,key} one per host name given after DIR
#   rogue-ca.pem, rogue-agent.{pem,key}  another CA, with an agent cert claiming the agent's ID
# Usage: pki.sh DIR HOST...
set -euo pipefail
dir=${1:?usage: pki.sh DIR HOST...}
shift
mkdir -p "$dir"
cd "$dir"
days=7

new_ca() { # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -subj "$2" -keyout "$1.key" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

new_leaf() { # name ca subject san eku
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$5" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days $days \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

new_ca mesh-ca "/O=sluice test mesh/CN=mesh root CA"
new_leaf agent mesh-ca "/O=sluice test mesh/CN=sluice-agent" \
  "URI:spiffe://cluster.local/ns/sluice-system/sa/sluice-agent" clientAuth
new_leaf gateway mesh-ca "/O=sluice test mesh/CN=sluice-gateway" \
  "URI:spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account" serverAuth
new_ca public-ca "/O=sluice test public/CN=public root CA"
for host in "$@"; do
  new_leaf "origin-$host" public-ca "/CN=$host" "DNS:$host" serverAuth
done
new_ca rogue-ca "/O=not the mesh/CN=rogue CA"
new_leaf rogue-agent rogue-ca "/O=not the mesh/CN=sluice-agent" \
  "URI:spiffe://cluster.local/ns/sluice-system/sa/sluice-agent" clientAuth
chmod 600 ./*.key
