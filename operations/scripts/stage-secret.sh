#!/bin/sh
# Put a secret in place: stage-secret.sh TEMP OWNER MODE DEST
# Shipped to servers by pyinfra-web2py (operations/secrets_upload.py); runs as root.
# TEMP is the SSH user's private (0600) upload. The copy is staged under a random name in
# DEST's folder, and only when that folder and every one above it is root's and not writable by
# group or others (sticky folders excepted): in a folder another user may write in, it could
# swap the staged file for a link between two of root's steps, and cp or chown would follow it.
set -eu
temp=$1 owner=$2 mode=$3 dest=$4
umask 077
dir=$(dirname -- "$dest")
d=$dir
while :; do
    if [ ! -d "$d" ] || [ -L "$d" ]; then
        echo "$d: not a folder: refusing to stage a secret in it" >&2
        exit 1
    fi
    case $(stat -c %u:%A -- "$d") in
        0:d????-??-?|0:d????????[tT]) ;;
        *) echo "$d: not root's alone: refusing to stage a secret in it" >&2; exit 1;;
    esac
    [ "$d" = / ] && break
    d=$(dirname -- "$d")
done
staged=$(mktemp -- "$dir/.pyinfra-secret.XXXXXXXX")
trap 'rm -f -- "$staged"' EXIT
cp -- "$temp" "$staged"
chown -- "$owner" "$staged"
chmod -- "$mode" "$staged"
mv -f -- "$staged" "$dest"
trap - EXIT
