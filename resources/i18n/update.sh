#!/bin/sh
# Re-extract the UI strings into the .ts files (keeping existing translations), then compile the
# .qm files that the kiosk loads.  Run from the project root:  sh resources/i18n/update.sh
set -e
BIN=${BIN:-.venv/bin}
"$BIN/pyside6-lupdate" kiosk/ui/*.py -ts resources/i18n/kiosk_zh_CN.ts -target-language zh_CN \
    -no-obsolete -locations none
"$BIN/pyside6-lrelease" resources/i18n/kiosk_zh_CN.ts -qm resources/i18n/kiosk_zh_CN.qm
