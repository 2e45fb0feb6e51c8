#!/bin/sh
# Set a password hash from a 0600 file of user:hash, then delete the file: set-password.sh FILE
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
file=$1
chpasswd -e < "$file"
rm -f "$file"
