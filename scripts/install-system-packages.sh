#!/bin/sh
# Install the system packages the harness uses, where this machine allows it:
# apt on Debian/Ubuntu, as root or with password-less sudo. Elsewhere, say what is missing
# and carry on: the features that need a package report it as missing when they run.
# The core's tools are listed here; a pattern that needs a program (a broker, say) lists it
# in its own folder, in patterns/<folder>/system-packages: one "command package" per line,
# where the command may also be found in /usr/sbin.
set -u
cd "$(dirname "$0")/.."

need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v h2load >/dev/null 2>&1 || need="$need nghttp2-client"
command -v curl >/dev/null 2>&1 || need="$need curl"
for listed in patterns/*/system-packages; do
    [ -f "$listed" ] || continue
    while read -r program package; do
        case "$program" in ''|'#'*) continue ;; esac
        command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] ||
            need="$need $package"
    done < "$listed"
done
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
