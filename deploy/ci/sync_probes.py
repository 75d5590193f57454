#!/usr/bin/env python3
"""Writes (or, with --check, verifies) deploy/kubernetes/common/configmap-probes.yaml from
the repository's probes/*.toml, so the ConfigMap the cluster mounts is exactly the shipped
probe definitions."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = ROOT / "deploy/kubernetes/common/configmap-probes.yaml"

HEADER = """\
# Generated from probes/*.toml by deploy/ci/sync_probes.py: edit the probe files, then run
#   python3 deploy/ci/sync_probes.py
# (.ci/deploy-checks.sh fails when this file is out of date). Mounted at /etc/iap-probe/probes.
apiVersion: v1
kind: ConfigMap
metadata:
  name: iap-probe-probes
  labels:
    app.kubernetes.io/name: iap-probe
    app.kubernetes.io/part-of: iap-probe
data:
"""


def render() -> str:
    out = [HEADER]
    for f in sorted((ROOT / "probes").glob("*.toml")):
        text = f.read_text()
        if not text.endswith("\n"):
            text += "\n"
        out.append(f"  {f.name}: |\n")
        for line in text.splitlines():
            out.append(f"    {line}\n" if line else "\n")
    return "".join(out)


def main() -> int:
    want = render()
    if "--check" in sys.argv[1:]:
        have = TARGET.read_text() if TARGET.exists() else ""
        if have != want:
            print(f"{TARGET.relative_to(ROOT)} is out of date with probes/: run python3 deploy/ci/sync_probes.py", file=sys.stderr)
            return 1
        print(f"ok: {TARGET.relative_to(ROOT)} matches probes/")
        return 0
    TARGET.write_text(want)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
