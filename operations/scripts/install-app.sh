#!/bin/sh
# Make an app folder hold exactly a package, keeping its data: install-app.sh PACKAGE APP_DIR SHA256 OWNER
# Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root.
set -eu
umask 022
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
# The app's code is root's and not the app user's to change; its data folders (private/ too:
# web2py writes auth.key there) are the app user's, and their content, its data, is never
# walked here. find -P never follows a link; chown -h changes a link itself.
find -P "$app_dir" \( -path "$app_dir/databases" -o -path "$app_dir/sessions" \
    -o -path "$app_dir/errors" -o -path "$app_dir/cache" -o -path "$app_dir/uploads" \
    -o -path "$app_dir/private" \) -prune -o -exec chown -h root:root {} + \
    -exec sh -c 'for f; do [ -L "$f" ] || chmod go-w "$f"; done' chmod {} +
for data in databases sessions errors cache uploads private; do
    mkdir -p "$app_dir/$data"
    chown -h "$owner" "$app_dir/$data"
    [ -L "$app_dir/$data" ] || chmod 750 "$app_dir/$data"
done
printf '%s\n' "$sha" > "$app_dir/.pyinfra-web2py-package"
chmod 644 "$app_dir/.pyinfra-web2py-package"
