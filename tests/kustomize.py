"""Render a kustomization the way `kubectl kustomize` does, for the parts certsync's
overlays use: resources (files and folders), strategic-merge patches and common
labels. `kustomize` or `kubectl` is used instead when the machine has one.

Strategic merge, as Kubernetes does it for these fields: maps merge key by key, a
null deletes the key, lists of named objects (containers, env, volumes, ports,
volumeMounts) merge item by item on `name`, other lists are replaced.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value)
            else:
                out[key] = value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    ):
        merged = {item["name"]: item for item in base}
        for item in patch:
            merged[item["name"]] = _merge(merged.get(item["name"], {}), item)
        return list(merged.values())
    return patch


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(folder: Path) -> list[dict[str, Any]]:
    """Every resource the kustomization in `folder` produces."""
    tool = shutil.which("kustomize") or shutil.which("kubectl")
    if tool is not None:
        args = (
            [tool, "build", str(folder)]
            if "kustomize" in tool
            else [tool, "kustomize", str(folder)]
        )
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = folder / entry
        resources += render(target) if target.is_dir() else _documents(target)
    for patch_entry in spec.get("patches", []):
        for patch in _documents(folder / patch_entry["path"]):
            matches = [
                i
                for i, r in enumerate(resources)
                if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
            ]
            assert matches, f"patch {patch_entry['path']} matches no resource"
            for i in matches:
                resources[i] = _merge(resources[i], patch)
    for label in spec.get("labels", []):
        for resource in resources:
            labels = resource["metadata"].setdefault("labels", {})
            labels.update(label["pairs"])
    return resources
