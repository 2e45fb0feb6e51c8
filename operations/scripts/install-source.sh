#!/bin/sh
# Install or upgrade web2py from a source zip: install-source.sh ZIP ROOT SHA256 OWNER
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
zip=$1 root=$2 sha=$3 owner=$4
staging="$root.pyinfra-staging"
rm -rf "$staging"
mkdir -p "$staging"
unzip -q "$zip" -d "$staging"
if [ ! -f "$staging/web2py/handlers/wsgihandler.py" ]; then
    echo "$zip is not a web2py source zip: no web2py/handlers/wsgihandler.py" >&2
    rm -rf "$staging"
    exit 1
fi
# web2py 2.x imports modules Python 3.12 removed: refuse it there, before touching $root.
major=$(sed -n 's/.*Version \([0-9][0-9]*\)\..*/\1/p' "$staging/web2py/VERSION" | head -n 1)
if [ "${major:-0}" -lt 3 ] && python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    echo "web2py $(cat "$staging/web2py/VERSION") cannot run on $(python3 --version): use web2py 3.x" >&2
    rm -rf "$staging"
    exit 1
fi
cp "$staging/web2py/handlers/wsgihandler.py" "$staging/web2py/wsgihandler.py"
if [ ! -e "$root" ]; then
    mkdir -p "$(dirname "$root")"
    mv "$staging/web2py" "$root"
else
    for entry in "$staging"/web2py/* "$staging"/web2py/.[!.]*; do
        [ -e "$entry" ] || continue
        name=$(basename "$entry")
        [ "$name" = applications ] && continue
        rm -rf "$root/$name"
        mv "$entry" "$root/$name"
    done
    mkdir -p "$root/applications"
    for app in "$staging"/web2py/applications/*; do
        [ -e "$root/applications/$(basename "$app")" ] || mv "$app" "$root/applications/"
    done
fi
rm -rf "$staging"
# web2py makes these at import; made here, uWSGI's workers never race to make them at first start
for made in deposit logs site-packages; do mkdir -p "$root/$made"; done
chown -R "$owner" "$root"
printf '%s\n' "$sha" > "$root/.pyinfra-web2py-source"
