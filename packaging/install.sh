#!/usr/bin/env bash
# Install (or upgrade) the kiosk bundle for the current user and make it start on login.
# The bundle carries this script:   ./kiosk/install.sh        (or: install.sh BUNDLE_DIR)
#
# * copies the bundle to ~/.local/opt/kiosk/<version>-<time>/ and switches the `current` link
#   to it only after the copy's own self-test passed (the previous version stays for rollback:
#   point `current` back at it);
# * installs the systemd user unit and the desktop autostart entry, and restarts a running
#   kiosk when systemd is there;
# * never touches the store's data folder (~/.local/share/kiosk, or $KIOSK_DATA_DIR): the
#   catalogue, gallery, index, transactions, settings and logs survive every upgrade; the new
#   version migrates the database when it first opens it.
set -euo pipefail
src="$(cd "${1:-$(dirname "$0")}" && pwd)"
[ -x "$src/kiosk" ] || { echo "install.sh: $src/kiosk is not a kiosk bundle" >&2; exit 2; }
version="$("$src/kiosk" --version | awk '{print $2}')"
root="${KIOSK_INSTALL_ROOT:-$HOME/.local/opt/kiosk}"
dest="$root/$version-$(date +%Y%m%d%H%M%S)-$$"
mkdir -p "$root"
rm -rf "$dest.partial"
cp -a "$src" "$dest.partial"
mv "$dest.partial" "$dest"
echo "installed $dest; running its self-test"
if ! "$dest/kiosk" --self-test; then
    echo "install.sh: the self-test of $dest failed; the kiosk stays on the previous version" >&2
    exit 1
fi
ln -sfn "$dest" "$root/current.new"
mv -T "$root/current.new" "$root/current"
config="${XDG_CONFIG_HOME:-$HOME/.config}"
mkdir -p "$config/systemd/user" "$config/autostart"
cp "$src/kiosk.service" "$config/systemd/user/kiosk.service"
cp "$src/kiosk-autostart.desktop" "$config/autostart/kiosk.desktop"
echo "kiosk $version is current: $root/current"
if command -v systemctl >/dev/null && systemctl --user show-environment >/dev/null 2>&1; then
    systemctl --user daemon-reload
    systemctl --user enable kiosk.service
    if systemctl --user is-active --quiet kiosk.service; then
        systemctl --user restart kiosk.service
        echo "restarted the running kiosk"
    fi
else
    echo "no systemd user session here: the kiosk starts at the next desktop login"
fi
