#!/bin/sh
# Make an app folder hold exactly a package, keeping its data: install-app.sh PACKAGE APP_DIR SHA256 OWNER
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
package=$1 app_dir=$2 sha=$3 owner=$4
staging="$app_dir.pyinfra-staging"
rm -rf "$staging"
mkdir -p "$staging"
tar -xzf "$package" -C "$staging" --no-same-owner
mkdir -p "$app_dir"
# private/ ships with the app (code and configuration); the server's own appconfig.ini and
# auth.key, and files only the server has, are kept.
if [ -d "$app_dir/private" ] && [ ! -L "$app_dir/private" ]; then
    mkdir -p "$staging/private"
    for kept in appconfig.ini auth.key; do
        if [ -f "$app_dir/private/$kept" ] && [ ! -L "$app_dir/private/$kept" ]; then
            cp -P "$app_dir/private/$kept" "$staging/private/$kept"
        fi
    done
    cp -a -n "$app_dir/private/." "$staging/private/"
fi
for data in databases sessions errors cache uploads; do
    if [ -e "$app_dir/$data" ]; then
        rm -rf "$staging/$data"
        mv "$app_dir/$data" "$staging/$data"
    else
        mkdir -p "$staging/$data"
    fi
done
old="$app_dir.pyinfra-old"
rm -rf "$old"
mv "$app_dir" "$old"
mv "$staging" "$app_dir"
rm -rf "$old"
chown -R "$owner" "$app_dir"
printf '%s\n' "$sha" > "$app_dir/.pyinfra-web2py-package"
