#!/usr/bin/env bash
# Proves `probe sandbox` is faithful to Apple's and Google's OFFICIAL Python client
# libraries: builds the binary, starts a sandbox on a free loopback port, runs
# tests/compat/check_sandbox.py against it, stops it. Exit status is the check's.
#
#   bash .ci/compat.sh
#
# Needs python3 (3.11+) and network to PyPI; on Debian, python3-venv is installed with
# apt-get if missing and we are root. Non-interactive (CI=true, no stdin).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv="$root/.venv-compat"
req="$root/tests/compat/requirements.txt"

log() { printf 'compat.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is not installed"
command -v cargo >/dev/null || die "cargo is not installed"

# --- Python environment -----------------------------------------------------------------
make_venv() { rm -rf "$venv"; python3 -m venv "$venv" >/dev/null 2>&1; }
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    if ! make_venv; then
        # Debian ships venv without ensurepip unless python3-venv is installed.
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            log "python3 -m venv failed; installing python3-venv with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq </dev/null >/dev/null
            apt-get install -y -qq "python${pyver}-venv" </dev/null >/dev/null \
                || apt-get install -y -qq python3-venv </dev/null >/dev/null
            make_venv || die "python3 -m venv $venv failed even after installing python3-venv"
        else
            die "python3 -m venv $venv failed (on Debian: apt-get install python3-venv)"
        fi
    fi
    # Keep the venv out of git without touching the repository's .gitignore.
    printf '*\n' > "$venv/.gitignore"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$venv/bin/python" -m pip install --quiet --requirement "$req" </dev/null \
    || die "pip install -r tests/compat/requirements.txt failed"

# --- Binary -----------------------------------------------------------------------------
# `cargo test` passes the binary it built (tests/official_libraries.rs); run by hand, build it.
if [[ -n "${PROBE_BIN:-}" ]]; then
    probe=$PROBE_BIN
else
    cargo build --locked --quiet --bin probe </dev/null || die "cargo build --locked failed"
    probe="${CARGO_TARGET_DIR:-$root/target}/debug/probe"
fi
[[ -x "$probe" ]] || die "built binary not found at $probe"

# --- Sandbox ----------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iap-compat.XXXXXX")
sandbox_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$sandbox_pid" ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        kill "$sandbox_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$sandbox_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$probe" sandbox --listen 127.0.0.1:0 --state-dir "$tmp/state" \
    </dev/null >"$tmp/sandbox.log" 2>&1 &
sandbox_pid=$!

# Wait (at most ~60 s) for a complete manifest: it is written before serving starts.
manifest="$tmp/state/sandbox.json"
ready=""
for _ in $(seq 1 600); do
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
        log "the sandbox exited early; its output:"
        cat "$tmp/sandbox.log" >&2
        die "probe sandbox did not start"
    fi
    if [[ -s "$manifest" ]] && "$venv/bin/python" -c 'import json,sys; json.load(open(sys.argv[1]))' "$manifest" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    log "sandbox output so far:"
    cat "$tmp/sandbox.log" >&2
    die "timed out after 60 s waiting for $manifest"
fi

# --- Check ------------------------------------------------------------------------------
status=0
"$venv/bin/python" "$root/tests/compat/check_sandbox.py" "$tmp/state" </dev/null || status=$?
if [[ $status -ne 0 ]]; then
    log "compat check failed (exit $status); sandbox log (warnings and errors):"
    tail -n 50 "$tmp/sandbox.log" >&2 || true
fi
exit "$status"
