#!/usr/bin/env bash
# Builds every function of template.yaml with `sam build` (cargo lambda, release profile) into
# .aws-sam/build, using the tools of .venv-sam, and prints the size of each bootstrap binary.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/sam-build.sh [--arch arm64|x86_64] [-- SAM_BUILD_OPTION...]

Builds the Lambda functions of template.yaml with sam build and cargo lambda.

  --arch ARCH   instruction set of the functions: arm64 or x86_64; sets the template parameter
                Architecture. Without it, the template default (arm64) applies.
  -h, --help    print this help

arm64 needs the Rust target aarch64-unknown-linux-gnu (rustup target add aarch64-unknown-linux-gnu);
x86_64 needs x86_64-unknown-linux-gnu. Options after -- go to sam build unchanged.
EOF
}

arch=""
sam_options=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --arch)
            [[ $# -ge 2 ]] || { echo "error: --arch needs a value: arm64 or x86_64" >&2; exit 2; }
            arch=$2
            shift 2
            ;;
        --arch=*)
            arch=${1#--arch=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            sam_options+=("$@")
            break
            ;;
        *)
            echo "error: unknown option $1" >&2
            usage >&2
            exit 2
            ;;
    esac
done

ensure_venv "$ROOT/.venv-sam" "$ROOT/scripts/requirements-sam.txt"
# cargo lambda finds zig as `python3 -m ziglang` through the venv's python3.
export PATH="$ROOT/.venv-sam/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_EC2_METADATA_DISABLED=true

# The architecture that the build resolves: the option, else the template default.
effective_arch=$arch
if [[ -z "$effective_arch" ]]; then
    effective_arch=$("$ROOT/.venv-sam/bin/python" - <<'PY'
from samcli.yamlhelper import yaml_parse

with open("template.yaml", encoding="utf-8") as template:
    print(yaml_parse(template.read())["Parameters"]["Architecture"]["Default"])
PY
)
fi
case $effective_arch in
    arm64) rust_target=aarch64-unknown-linux-gnu ;;
    x86_64) rust_target=x86_64-unknown-linux-gnu ;;
    *)
        echo "error: unknown architecture $effective_arch; use arm64 or x86_64" >&2
        exit 2
        ;;
esac

# Stop here with the install command, because cargo lambda would download a missing target with rustup.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$rust_target"; then
    echo "error: the Rust target $rust_target for $effective_arch is not installed." >&2
    echo "Install it with 'rustup target add $rust_target', or build for another architecture with --arch." >&2
    exit 1
fi

build_command=(sam build --template-file template.yaml)
if [[ -n "$arch" ]]; then
    build_command+=(--parameter-overrides "Architecture=$arch")
fi
build_command+=("${sam_options[@]}")

section "sam build ($effective_arch)"
echo "+ ${build_command[*]}"
started=$(date +%s)
"${build_command[@]}"
elapsed=$(($(date +%s) - started))

section "Artifacts"
for bootstrap in .aws-sam/build/*/bootstrap; do
    [[ -e "$bootstrap" ]] || continue
    printf '%-55s %8s KiB  %s\n' "$bootstrap" "$(($(stat -c %s "$bootstrap") / 1024))" \
        "$(file -b "$bootstrap" 2>/dev/null | cut -d, -f1-2 || true)"
done
echo "sam build wall time: $elapsed s"
