#!/bin/sh
# Install the system packages the harness uses, where this machine allows it:
# apt on Debian/Ubuntu, as root or with password-less sudo. Elsewhere, say what is missing
# and carry on: the features that need a package report it as missing when they run.
set -u

need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v h2load >/dev/null 2>&1 || need="$need nghttp2-client"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
# Debian's python3 cannot create a virtual environment without python3-venv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"

[ -z "$need" ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo"
    else
        echo "note: missing system packages:$need (install them with: sudo apt-get install$need)" >&2
        exit 0
    fi
    echo "installing system packages:$need" >&2
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null ||
        echo "note: could not install:$need; features that need them will say so" >&2
else
    echo "note: missing system packages:$need; install them with your package manager" >&2
fi
exit 0
