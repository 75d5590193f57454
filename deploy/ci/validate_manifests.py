#!/usr/bin/env python3
"""Validates deploy/kubernetes offline:

1. renders every kustomization (common, cronjob, daemon, overlays/*) with
   kustomize_lite.py — and, where `kubectl` exists, checks that `kubectl kustomize` renders
   exactly the same objects;
2. validates every rendered object and every example against the Kubernetes JSON schemas
   (kubernetes-validate, strict: unknown fields are errors) for each version in
   K8S_VERSIONS; the ServiceMonitor against schemas/servicemonitor.json;
3. checks the production rules the README promises: CronJobs with concurrencyPolicy
   Forbid, startingDeadlineSeconds, activeDeadlineSeconds above the run deadline,
   resources, non-root and read-only root filesystems, credentials from Secret files;
   overlays set the region label on objects and pod templates;
4. with PROBE_BIN set, runs `probe list` on every probe.toml the ConfigMaps carry (with
   probes_dir pointed at the repository's probes/), so the shipped configs parse.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import kustomize_lite  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
KDIR = ROOT / "deploy/kubernetes"
K8S_VERSIONS = ["1.30.0", "1.37.0"]
SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}", file=sys.stderr)


def ident(d):
    return f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"


def kustomizations():
    return sorted(p.parent for p in KDIR.rglob("kustomization.yaml"))


def compare_with_kubectl(folder, docs):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return "kubectl not installed: offline renderer only"
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{folder.relative_to(ROOT)}: kubectl kustomize: {out.stderr.strip()}")
        return None
    theirs = {ident(d): d for d in yaml.safe_load_all(out.stdout) if d}
    ours = {ident(d): d for d in docs}
    if theirs.keys() != ours.keys():
        fail(f"{folder.relative_to(ROOT)}: objects differ from kubectl kustomize: {sorted(theirs)} vs {sorted(ours)}")
    for k in theirs.keys() & ours.keys():
        if theirs[k] != ours[k]:
            fail(f"{folder.relative_to(ROOT)}: {k} differs from kubectl kustomize")
    return "same as kubectl kustomize"


def schema_check(doc, where):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in SCHEMAS:
        schema = json.loads((pathlib.Path(__file__).parent / "schemas" / SCHEMAS[key]).read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
        for e in errors:
            fail(f"{where}: {ident(doc)}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
        return
    for v in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{where}: {ident(doc)} (Kubernetes {v}): {'/'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            fail(f"{where}: {ident(doc)}: no schema: {e}")


def duration_seconds(text):
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h)\s*", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def run_deadline(docs, configmap):
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == configmap:
            m = re.search(r'(?m)^deadline\s*=\s*"([^"]+)"', d.get("data", {}).get("probe.toml", ""))
            if m:
                return duration_seconds(m.group(1))
    return 120  # the default [run] deadline


def pod_rules(where, name, pod, meta):
    sc = pod.get("securityContext", {})
    if not sc.get("runAsNonRoot"):
        fail(f"{where}: {name}: pod securityContext.runAsNonRoot must be true")
    if pod.get("automountServiceAccountToken") is not False:
        fail(f"{where}: {name}: automountServiceAccountToken must be false")
    secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    if not secret_volumes:
        fail(f"{where}: {name}: credentials must come from a Secret volume")
    for c in pod.get("containers", []):
        csc = c.get("securityContext", {})
        if not csc.get("readOnlyRootFilesystem"):
            fail(f"{where}: {name}/{c['name']}: readOnlyRootFilesystem must be true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: {name}/{c['name']}: allowPrivilegeEscalation must be false")
        if "ALL" not in (csc.get("capabilities", {}).get("drop") or []):
            fail(f"{where}: {name}/{c['name']}: capabilities must drop ALL")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                fail(f"{where}: {name}/{c['name']}: resources.{part} needs cpu and memory")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        if not secret_volumes & set(mounts):
            fail(f"{where}: {name}/{c['name']}: the credentials Secret is not mounted")
        for e in c.get("env", []):
            if "secretKeyRef" in (e.get("valueFrom") or {}):
                fail(f"{where}: {name}/{c['name']}: env {e['name']}: secrets are mounted as files, not env")


def production_rules(folder, docs):
    where = str(folder.relative_to(ROOT))
    for d in docs:
        kind, name = d.get("kind"), d["metadata"]["name"]
        if kind == "CronJob":
            s = d["spec"]
            if s.get("concurrencyPolicy") != "Forbid":
                fail(f"{where}: {name}: concurrencyPolicy must be Forbid")
            if not s.get("startingDeadlineSeconds"):
                fail(f"{where}: {name}: startingDeadlineSeconds is required")
            job = s["jobTemplate"]["spec"]
            pod = job["template"]["spec"]
            cm = next((v["configMap"]["name"] for v in pod.get("volumes", [])
                       if v["name"] == "config" and "configMap" in v), None)
            deadline = run_deadline(docs, cm)
            if (job.get("activeDeadlineSeconds") or 0) <= (deadline or 0):
                fail(f"{where}: {name}: activeDeadlineSeconds {job.get('activeDeadlineSeconds')} must be above the run deadline ({deadline} s)")
            pod_rules(where, name, pod, job["template"].get("metadata", {}))
        elif kind == "Deployment":
            pod_rules(where, name, d["spec"]["template"]["spec"], d["spec"]["template"].get("metadata", {}))
    if "overlays" in folder.parts:
        region = folder.name
        for d in docs:
            if d["metadata"].get("labels", {}).get("region") != region:
                fail(f"{where}: {ident(d)} lacks label region={region}")
            for meta in kustomize_lite.templates(copy_of(d)):
                if meta.get("labels", {}).get("region") != region:
                    fail(f"{where}: {ident(d)}: pod template lacks label region={region}")
            if d.get("kind") != "Namespace" and d["metadata"].get("namespace") != "iap-probe":
                fail(f"{where}: {ident(d)} is not in namespace iap-probe")


def copy_of(d):
    return json.loads(json.dumps(d))


def check_configs(folder, docs, probe_bin):
    for d in docs:
        if d.get("kind") != "ConfigMap" or "probe.toml" not in d.get("data", {}):
            continue
        text = d["data"]["probe.toml"].replace('"/etc/iap-probe/probes"', json.dumps(str(ROOT / "probes")))
        with tempfile.TemporaryDirectory() as tmp:
            cfg = pathlib.Path(tmp) / "probe.toml"
            cfg.write_text(text)
            out = subprocess.run([probe_bin, "list", "--config", str(cfg)], capture_output=True, text=True)
            if out.returncode != 0:
                fail(f"{folder.relative_to(ROOT)}: ConfigMap {d['metadata']['name']}: probe list: {out.stderr.strip()}")


def main():
    probe_bin = os.environ.get("PROBE_BIN")
    rendered = 0
    for folder in kustomizations():
        rel = folder.relative_to(ROOT)
        before = len(failures)
        try:
            docs = kustomize_lite.render(folder)
        except kustomize_lite.RenderError as e:
            fail(str(e))
            continue
        how = compare_with_kubectl(folder, copy_of(docs))
        for d in docs:
            schema_check(d, str(rel))
        production_rules(folder, docs)
        if probe_bin:
            check_configs(folder, docs, probe_bin)
        rendered += len(docs)
        if len(failures) == before:
            print(f"ok   {rel}: {len(docs)} objects valid ({how})")
    for f in sorted((KDIR / "examples").glob("*.yaml")):
        before = len(failures)
        for d in kustomize_lite.load_docs(f):
            schema_check(d, str(f.relative_to(ROOT)))
        if len(failures) == before:
            print(f"ok   {f.relative_to(ROOT)}")
    if failures:
        print(f"{len(failures)} problem(s) in deploy/kubernetes", file=sys.stderr)
        return 1
    print(f"ok   {rendered} rendered objects valid against Kubernetes {', '.join(K8S_VERSIONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
