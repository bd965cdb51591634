"""Derive the JSON Schemas in this folder from the public CRDs they name.

    python deploy/schemas/derive.py CRD.yaml SOURCE > deploy/schemas/<kind>.json

A CRD's `openAPIV3Schema` is close to JSON Schema: descriptions are dropped (size), `status` is
dropped (never written by hand), `x-kubernetes-int-or-string` becomes integer-or-string, and an
object that lists its properties refuses others unless it says `x-kubernetes-preserve-unknown-
fields` (the API server prunes unknown fields silently; the test would rather fail on a typo).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def derive(crd_file: Path, source: str) -> dict[str, Any]:
    crd = next(d for d in yaml.safe_load_all(crd_file.read_text()) if d)
    served = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    version = served[0]
    schema = to_json_schema(version["schema"]["openAPIV3Schema"])
    schema["properties"].pop("status", None)
    schema["properties"]["metadata"] = {"type": "object"}  # Kubernetes' own ObjectMeta
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "spec"})
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"Derived by deploy/schemas/derive.py from {source}",
        "title": f"{kind} ({group}/{version['name']})",
        **schema,
    }


if __name__ == "__main__":
    print(json.dumps(derive(Path(sys.argv[1]), sys.argv[2]), indent=1, sort_keys=True))
