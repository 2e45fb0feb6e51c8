#!/bin/sh
# Make a self-signed certificate: self-signed-cert.sh CERT KEY BITS DAYS CN
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
cert=$1 key=$2 bits=$3 days=$4 cn=$5
mkdir -p "$(dirname "$cert")" "$(dirname "$key")"
umask 077
openssl req -x509 -newkey "rsa:$bits" -sha256 -nodes -days "$days" -subj "/CN=$cn" \
    -keyout "$key.new" -out "$cert.new" 2>/dev/null
chmod 644 "$cert.new"
mv -f "$key.new" "$key"
mv -f "$cert.new" "$cert"
