#!/bin/sh
# Install a staged sudoers drop-in only if visudo -c accepts it: install-sudoers.sh STAGED DEST
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
staged=$1 dest=$2
if ! visudo -c -q -f "$staged" >/dev/null; then
    echo "sudoers drop-in for $dest does not pass visudo -c: not installed" >&2
    rm -f "$staged"
    exit 1
fi
mv -f "$staged" "$dest"
