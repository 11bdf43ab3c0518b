#!/bin/sh
# Make a private CA and a broker certificate for Mosquitto's TLS listener (8883).
#
#   deploy/mosquitto/make-certs.sh OUT_DIR NAME [NAME...]
#
# NAMEs are the DNS names and IP addresses nodes use to reach the broker (the first is the
# certificate's common name). Writes OUT_DIR/ca.key, ca.crt, server.key, server.crt; an
# existing CA in OUT_DIR is reused so re-issuing the server certificate keeps nodes working.
# Flash ca.crt into the nodes; keep ca.key offline. A certificate from a public CA works too:
# put it in OUT_DIR as server.crt/server.key and its chain as ca.crt.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT_DIR NAME [NAME...]  (NAME: broker DNS name or IP address)" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "openssl is not installed: apt-get install -y openssl" >&2; exit 1; }
out=$1; shift
cn=$1
days=${CERT_DAYS:-825}
umask 077
mkdir -p "$out"
san=""
for name in "$@"; do
    case "$name" in
        *:*) entry="IP:$name" ;;           # IPv6
        *[!0-9.]*) entry="DNS:$name" ;;
        *) entry="IP:$name" ;;             # IPv4
    esac
    san="${san:+$san,}$entry"
done
if [ ! -f "$out/ca.key" ] || [ ! -f "$out/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -subj "/O=rivermon/CN=rivermon broker CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/O=rivermon/CN=$cn" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
ext="$out/server.ext"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > "$ext"
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$ext" "$out/ca.srl"
# The broker and the nodes need the certificates; only the broker needs server.key. Mosquitto
# reads all three after dropping root, as user mosquitto: the directory must be traversable and
# server.key readable by that user (root:mosquitto 0640 when the group exists).
chmod 755 "$out"
chmod 644 "$out/ca.crt" "$out/server.crt"
chmod 600 "$out/ca.key" "$out/server.key"
if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null 2>&1; then
    chgrp mosquitto "$out/server.key" && chmod 640 "$out/server.key"
fi
echo "wrote $out/ca.crt (give it to the nodes), $out/server.crt and $out/server.key (the broker's); SAN $san"
