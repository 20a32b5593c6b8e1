"""The plugin parameters as ComfyUI widgets, read from manifests.json: the TypeScript manifests
(plugins/<id>/manifest.ts) declare each parameter once; `npm run schemas` writes this JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

_FILE = Path(__file__).with_name("manifests.json")


@dataclass(frozen=True)
class Param:
    name: str          # the widget's name: the manifest's camelCase key in snake_case
    key: str           # the manifest's key
    kind: str          # "float", "int", "bool", "combo" or "string"
    default: Any
    tooltip: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: bool = False
    choices: tuple = ()


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _param(key: str, schema: dict) -> Param:
    kind = {"number": "float", "integer": "int", "boolean": "bool", "string": "string"}[schema["type"]]
    if "enum" in schema:
        kind = "combo"
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum")
    if hi is not None and hi > 2 ** 31:
        hi = None  # zod's "no maximum" for integers
    return Param(name=snake(key), key=key, kind=kind, default=schema.get("default"), tooltip=schema.get("description", ""),
                 minimum=lo, maximum=hi, exclusive_minimum="exclusiveMinimum" in schema,
                 choices=tuple(schema.get("enum", ())))


def load() -> dict:
    """{plugin id: {"title", "description", "source", "params": [Param]}}."""
    out = {}
    for m in json.loads(_FILE.read_text()):
        props = m["params"]["properties"]
        out[m["id"]] = {"title": m["title"], "description": m["description"], "source": m["source"],
                        "params": [_param(k, v) for k, v in props.items()]}
    return out


MANIFESTS = load()


def plugin_params(plugin: str) -> list:
    return MANIFESTS[plugin]["params"]


def parse(plugin: str, values: dict, node: str, only=None) -> dict:
    """The manifest's parameters of plugin (those keyed in only, if given) from widget values (by
    widget name), defaults filled in, keyed by the manifest's keys. Unknown names and out-of-range
    values raise ValueError naming the node and the field."""
    specs = {p.name: p for p in plugin_params(plugin) if only is None or p.key in only}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"{node}: unknown input {unknown[0]!r} (expected one of {sorted(specs)})")
    out = {}
    for name, p in specs.items():
        v = values.get(name, p.default)
        if v is None:
            out[p.key] = None
            continue
        if p.kind == "bool":
            if not isinstance(v, bool):
                raise ValueError(f"{node}: expected {name} true or false, got {v!r}")
        elif p.kind == "combo":
            if v not in p.choices:
                raise ValueError(f"{node}: expected {name} one of {list(p.choices)}, got {v!r}")
        elif p.kind == "string":
            if not isinstance(v, str) or not v:
                raise ValueError(f"{node}: expected {name} a non-empty string, got {v!r}")
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise ValueError(f"{node}: expected {name} a number, got {v!r}")
            if p.kind == "int" and int(v) != v:
                raise ValueError(f"{node}: expected {name} a whole number, got {v!r}")
            if p.minimum is not None and (v <= p.minimum if p.exclusive_minimum else v < p.minimum):
                raise ValueError(f"{node}: expected {name} {'above' if p.exclusive_minimum else 'at least'} {p.minimum}, got {v!r}")
            if p.maximum is not None and v > p.maximum:
                raise ValueError(f"{node}: expected {name} at most {p.maximum}, got {v!r}")
            v = int(v) if p.kind == "int" else float(v)
        out[p.key] = v
    return out
