#!/usr/bin/env bash
# Offline checks of everything under deploy/, the Dockerfile and the example workflow:
#   - the probes ConfigMap matches probes/*.toml
#   - promtool check rules + promtool test rules (deploy/prometheus)
#   - amtool check-config + routing tests of the Alertmanager example (when amtool exists)
#   - every kustomization rendered offline and validated against the Kubernetes schemas,
#     plus the production rules (deploy/ci/validate_manifests.py); with PROBE_BIN set,
#     every probe.toml in the ConfigMaps is parsed by `probe list`
#   - hadolint on the Dockerfile
#   - the example GitHub workflow against the GitHub workflow schema
# Needs python3 (with venv) and promtool; the validators come from PyPI into a venv
# (deploy/ci/requirements.txt, pinned). Run by .ci/run and by tests/deploy_checks.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${DEPLOY_CHECKS_VENV:-target/deploy-checks-venv}"
req=deploy/ci/requirements.txt
mkdir -p "$(dirname "$venv")"
# One venv, built once, even with several runs at the same time (cargo test and .ci/run).
exec 9>"$venv.lock"
flock 9
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$req" "$venv/.requirements"; then
    echo "== deploy-checks: creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" </dev/null
    cp "$req" "$venv/.requirements"
fi
flock -u 9
py="$venv/bin/python"

echo "== probes ConfigMap"
"$py" deploy/ci/sync_probes.py --check

echo "== promtool check rules"
promtool check rules deploy/prometheus/rules.yaml
echo "== promtool test rules"
promtool test rules deploy/prometheus/rules.test.yaml

echo "== Alertmanager example"
am=deploy/prometheus/alertmanager.example.yaml
if command -v amtool >/dev/null; then
    amtool check-config "$am"
    route() {
        local want=$1
        shift
        local got
        got=$(amtool config routes test --config.file="$am" "$@" 2>/dev/null)
        if [[ $got != "$want" ]]; then
            echo "alertmanager route for $*: got '$got', want '$want'" >&2
            exit 1
        fi
        echo "route $*: $got"
    }
    route iap-pagerduty,iap-slack alertname=IAPCompleteOutage severity=critical region=eu-west-1
    route iap-slack alertname=IAPCacheHitRatioLow severity=warning region=eu-west-1
else
    echo "amtool not installed: skipped (apt-get install prometheus-alertmanager)"
fi

echo "== Kubernetes manifests"
"$py" deploy/ci/validate_manifests.py

echo "== hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile && echo "ok   Dockerfile"

echo "== example workflow"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows \
    .github/workflows/post-deploy-example.yml

echo "deploy-checks: all passed"
