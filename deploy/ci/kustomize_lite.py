#!/usr/bin/env python3
"""An offline renderer for the subset of kustomize that deploy/kubernetes uses, so CI can
validate the rendered manifests without kubectl or kustomize binaries.

Supported kustomization keys: resources (files and folders), namespace, labels (pairs,
includeTemplates; includeSelectors must be false), images (name, newName, newTag, digest)
and patches with `path` (strategic merge: maps merged, lists of named items merged by
name, other lists replaced). Anything else is refused, so a kustomization cannot silently
use a feature this renderer would get wrong. Where `kubectl` exists, deploy-checks.sh
also compares this renderer's output with `kubectl kustomize`.

    kustomize_lite.py DIR            # prints the rendered YAML stream
"""
import copy
import pathlib
import sys

import yaml

ALLOWED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass",
}


class RenderError(Exception):
    pass


def load_docs(path: pathlib.Path):
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def merge(base, patch):
    """Strategic-merge (the subset): maps recursively, named lists by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            for i, have in enumerate(out):
                if have["name"] == item["name"]:
                    out[i] = merge(have, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def templates(doc):
    """The pod-template-like metadata blocks labels reach with includeTemplates."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec.setdefault("template", {}).setdefault("metadata", {})
    elif kind == "CronJob":
        jt = spec.setdefault("jobTemplate", {})
        yield jt.setdefault("metadata", {})
        yield jt.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})


def containers(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "CronJob":
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif kind == "Pod":
        pod = spec
    else:
        pod = spec.get("template", {}).get("spec", {})
    for key in ("initContainers", "containers"):
        yield from pod.get(key, []) or []


def split_image(image: str):
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, None, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:], None
    return image, None, None


def render(folder: pathlib.Path):
    kfile = folder / "kustomization.yaml"
    if not kfile.exists():
        raise RenderError(f"{folder}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - ALLOWED
    if unknown:
        raise RenderError(f"{kfile}: unsupported keys {sorted(unknown)}")
    if k.get("kind", "Kustomization") != "Kustomization":
        raise RenderError(f"{kfile}: kind must be Kustomization")
    docs = []
    for res in k.get("resources", []):
        p = (folder / res).resolve()
        if p.is_dir():
            docs.extend(render(p))
        elif p.is_file():
            docs.extend(load_docs(p))
        else:
            raise RenderError(f"{kfile}: resource {res} not found")
    seen = set()
    for d in docs:
        ident = (d.get("kind"), d.get("metadata", {}).get("name"))
        if ident in seen:
            raise RenderError(f"{kfile}: {ident} defined twice")
        seen.add(ident)
    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path: FILE` is supported")
        for patch in load_docs(folder / p["path"]):
            ident = (patch.get("kind"), patch.get("metadata", {}).get("name"))
            hits = [i for i, d in enumerate(docs)
                    if (d.get("kind"), d.get("metadata", {}).get("name")) == ident]
            if not hits:
                raise RenderError(f"{kfile}: patch {p['path']} matches no resource {ident}")
            for i in hits:
                docs[i] = merge(docs[i], patch)
    ns = k.get("namespace")
    if ns:
        for d in docs:
            if d.get("kind") not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = ns
    for spec in k.get("labels", []):
        if spec.get("includeSelectors"):
            raise RenderError(f"{kfile}: labels with includeSelectors are not supported")
        if set(spec) - {"pairs", "includeTemplates", "includeSelectors"}:
            raise RenderError(f"{kfile}: unsupported labels options {sorted(spec)}")
        pairs = spec.get("pairs", {})
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if spec.get("includeTemplates"):
                for meta in templates(d):
                    meta.setdefault("labels", {}).update(pairs)
    for img in k.get("images", []):
        if set(img) - {"name", "newName", "newTag", "digest"}:
            raise RenderError(f"{kfile}: unsupported images options {sorted(img)}")
        for d in docs:
            for c in containers(d):
                name, tag, digest = split_image(c.get("image", ""))
                if name != img["name"]:
                    continue
                name = img.get("newName", name)
                if "digest" in img:
                    c["image"] = f"{name}@{img['digest']}"
                elif "newTag" in img:
                    c["image"] = f"{name}:{img['newTag']}"
                else:
                    c["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return docs


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        docs = render(pathlib.Path(argv[1]))
    except (RenderError, yaml.YAMLError, OSError) as e:
        print(f"kustomize_lite: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
