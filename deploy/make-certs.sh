#!/usr/bin/env bash
# Creates, with the openssl command, what possync's mutual TLS and device tokens need:
#
#   deploy/make-certs.sh DIR [--days N] [--token-key] NAME=NODEID[@host,host...] ...
#
# - DIR/ca.pem, DIR/ca.key: the deployment's certificate authority (made once; an
#   existing CA in DIR is reused, so nodes can be added later). Keep ca.key offline.
# - DIR/NAME.pem, DIR/NAME.key for each NAME=NODEID: a certificate whose common name is
#   the node id (16 hex digits; HQ checks it against the node's Hello and token), usable
#   as server and client (mutual TLS). Subject alternative names: localhost, 127.0.0.1
#   and the hosts after '@' (the names upstreams are dialed by).
#   NAME=admin makes the operator's certificate for `possync ctl` (common name "admin").
# - --token-key: DIR/token.key (HQ's Ed25519 token signing key: stays on HQ) and
#   DIR/token.pub (its public key: every HQ and branch node verifies tokens with it).
#
# Example: a CA, HQ, one branch and two terminals, and the token key:
#   deploy/make-certs.sh /etc/possync/tls --token-key hq=4000000000000001@hq.example.com \
#       branch-b1=00000000000000b1@store1.example.com till-1=0000000000000071 till-2=0000000000000072
#
# Files are written with mode 0600 (keys) / 0644 (certificates). Exit 2 on bad arguments.
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
dir="$1"
shift
days=825
token_key=0
entries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
    --token-key) token_key=1; shift ;;
    -h|--help) usage ;;
    *=*) entries+=("$1"); shift ;;
    *) echo "make-certs: '$1' is not NAME=NODEID[@hosts]" >&2; exit 2 ;;
  esac
done
command -v openssl >/dev/null || { echo "make-certs: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 -subj "/O=possync/CN=possync CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 644 "$dir/ca.pem"
  echo "made $dir/ca.pem (CA; keep $dir/ca.key offline)"
fi

for e in "${entries[@]+"${entries[@]}"}"; do
  name="${e%%=*}"
  rest="${e#*=}"
  id="${rest%%@*}"
  hosts=""
  [ "$rest" != "$id" ] && hosts="${rest#*@}"
  if ! [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then echo "make-certs: bad name '$name'" >&2; exit 2; fi
  if [ "$id" != "admin" ] && ! [[ "$id" =~ ^[0-9a-f]{16}$ ]]; then
    echo "make-certs: '$id' is not a node id (16 lower-case hex digits) or 'admin'" >&2
    exit 2
  fi
  san="DNS:localhost,IP:127.0.0.1,IP:::1"
  if [ -n "$hosts" ]; then
    IFS=',' read -ra hs <<<"$hosts"
    for h in "${hs[@]}"; do
      if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
    done
  fi
  ext="$(mktemp)"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/O=possync/CN=$id" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/$name.pem" -days "$days" -extfile "$ext" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
  chmod 644 "$dir/$name.pem"
  echo "made $dir/$name.pem (CN $id; $san)"
done

if [ "$token_key" = 1 ]; then
  if [ ! -f "$dir/token.key" ]; then
    openssl genpkey -algorithm ed25519 -out "$dir/token.key"
    openssl pkey -in "$dir/token.key" -pubout -out "$dir/token.pub"
    chmod 644 "$dir/token.pub"
    echo "made $dir/token.key (HQ only) and $dir/token.pub (HQ and branches)"
  fi
fi
