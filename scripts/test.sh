#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy, the Rust tests against a local moto server,
# and the SAM template checks. Every step runs, and the exit status is non-zero when any step failed.
#
# Installs on first use: the Debian packages oathtool, zbar-tools and librsvg2-bin (as root), and
# two venvs in the checkout, .venv-moto (moto server, pyotp) and .venv-sam (aws-sam-cli, cfn-lint,
# cargo-lambda, zig), pinned in scripts/requirements-*.txt and reused while those files are unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

started=$(date +%s)
failed_steps=()
step_report=()

# Runs one named step, records its result and duration, and never stops the script.
run_step() {
    local name=$1
    shift
    local step_started=$SECONDS status=0
    section "$name"
    echo "+ $*"
    "$@" || status=$?
    local duration=$((SECONDS - step_started))
    if [[ $status -eq 0 ]]; then
        step_report+=("ok      ${duration}s  $name")
    else
        step_report+=("FAILED  ${duration}s  $name (exit $status)")
        failed_steps+=("$name")
    fi
}

# ---------------------------------------------------------------- tools
section "Debian packages"
# zbarimg reads an SVG through ImageMagick, which hands it to rsvg-convert (librsvg2-bin).
ensure_debian_packages "oathtool zbarimg rsvg-convert" oathtool zbar-tools librsvg2-bin
command -v oathtool zbarimg rsvg-convert

section "Python venvs"
ensure_venv "$ROOT/.venv-moto" "$ROOT/scripts/requirements-moto.txt"
ensure_venv "$ROOT/.venv-sam" "$ROOT/scripts/requirements-sam.txt"
echo "moto $("$ROOT/.venv-moto/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))')," \
    "pyotp $("$ROOT/.venv-moto/bin/python" -c 'import importlib.metadata as m; print(m.version("pyotp"))')," \
    "$("$ROOT/.venv-sam/bin/sam" --version)"

# ---------------------------------------------------------------- moto server
section "moto server"
mkdir -p "$ROOT/target"
moto_log="$ROOT/target/moto-server.log"
moto_port=$("$ROOT/.venv-moto/bin/python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
moto_pid=""

stop_moto() {
    if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ROOT/.venv-moto/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!

# Waits up to 30 s for the server's management API to return HTTP 200.
if ! "$ROOT/.venv-moto/bin/python" - "$moto_port" <<'PY'; then
import sys, time, urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json"
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.2)
PY
    echo "error: moto server failed to start: no response on 127.0.0.1:$moto_port within 30 s. Its log:" >&2
    cat "$moto_log" >&2
    exit 1
fi
echo "moto server (pid $moto_pid) on http://127.0.0.1:$moto_port, log in ${moto_log#"$ROOT"/}"

export TWOFA_MOTO_URL="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL="$TWOFA_MOTO_URL"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_REGION=eu-central-1
export AWS_DEFAULT_REGION=eu-central-1
# No SDK call may reach the instance metadata service, whatever the credential chain tries.
export AWS_EC2_METADATA_DISABLED=true
export TWOFA_REQUIRE_MOTO=1
# Tests that use oathtool, zbarimg or pyotp fail instead of being skipped when the tool is missing.
export TWOFA_REQUIRE_TOOLS=1
export TWOFA_PYTHON="$ROOT/.venv-moto/bin/python"
export SAM_CLI_TELEMETRY=0

# ---------------------------------------------------------------- checks
run_step "cargo fmt" cargo fmt --all -- --check
run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings

test_log="$ROOT/target/cargo-test.log"
: >"$test_log"
# Runs every test binary, also after one fails, with the output also in $test_log, where the
# summary counts the results.
run_cargo_test() {
    echo "+ cargo test --workspace --no-fail-fast"
    cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log"
    return "${PIPESTATUS[0]}"
}
run_step "cargo test" run_cargo_test

run_step "cfn-lint" "$ROOT/.venv-sam/bin/cfn-lint" template.yaml
run_step "sam validate" "$ROOT/.venv-sam/bin/sam" validate --lint --template-file template.yaml

# ---------------------------------------------------------------- summary
section "Summary"
printf '%s\n' "${step_report[@]}"

# Sums the "test result:" lines of every test binary and doc-test run.
read -r passed failed ignored < <(awk '
    /^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i) ~ /^passed;?$/) p += $(i - 1)
            if ($(i) ~ /^failed;?$/) f += $(i - 1)
            if ($(i) ~ /^ignored;?$/) g += $(i - 1)
        }
    }
    END { printf "%d %d %d\n", p, f, g }' "$test_log" 2>/dev/null || echo "0 0 0")

echo "Total wall time: $(($(date +%s) - started)) s"
if [[ ${#failed_steps[@]} -gt 0 ]]; then
    echo "Failed steps: ${failed_steps[*]}"
fi
if ! grep -q '^test result:' "$test_log"; then
    echo "No test ran: cargo test failed before running any test binary (see its output above)."
fi
contract_on_moto=$(grep -cE '^test dynamo::[a-z0-9_]+ \.\.\. ok$' "$test_log" || true)
echo "DynamoDB store contract tests passed against moto: $contract_on_moto"
echo "tests: $passed passed, $failed failed, $ignored skipped"
[[ ${#failed_steps[@]} -eq 0 ]]
