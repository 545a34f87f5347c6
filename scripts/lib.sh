# shellcheck shell=bash
# Shell functions shared by scripts/test.sh and scripts/sam-build.sh. Source it; do not run it.
# The caller sets ROOT to the checkout and runs under `set -euo pipefail`.

# Prints a section header.
section() {
    printf '\n==== %s ====\n' "$*"
}

# Prints the Python interpreter that creates the venvs: python3.11 when present, else python3 3.10+.
find_python() {
    local candidate
    for candidate in "${TWOFA_BOOTSTRAP_PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: no Python 3.10 or later found; install python3.11 or set TWOFA_BOOTSTRAP_PYTHON" >&2
    return 1
}

# Creates the venv DIR from the requirements file REQUIREMENTS, or reuses it when its stamp matches.
# The stamp is the SHA-256 of the requirements file and the interpreter version, written only after a
# successful install, so an interrupted install is redone on the next run.
ensure_venv() {
    local dir=$1 requirements=$2
    local python expected stamp_file="$dir/.twofa-stamp" started
    python=$(find_python)
    expected="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"

    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$expected" && -x "$dir/bin/python" ]]; then
        echo "reusing $dir ($(basename "$requirements") unchanged)"
        return 0
    fi

    started=$(date +%s)
    echo "creating $dir from $(basename "$requirements") with $python"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet -r "$requirements"
    echo "$expected" >"$stamp_file"
    echo "created $dir in $(($(date +%s) - started)) s"
}

# Installs the Debian packages PACKAGE... unless every COMMAND of the list is already on PATH.
# Usage: ensure_debian_packages "oathtool zbarimg" oathtool zbar-tools
ensure_debian_packages() {
    local commands=$1
    shift
    local missing=0 command_name
    for command_name in $commands; do
        command -v "$command_name" >/dev/null 2>&1 || missing=1
    done
    if [[ $missing -eq 0 ]]; then
        echo "already installed: $commands"
        return 0
    fi

    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "error: $commands not found. Run this script as root, or install the Debian packages first: apt-get install $*" >&2
            return 1
        fi
    fi
    echo "installing Debian packages: $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
