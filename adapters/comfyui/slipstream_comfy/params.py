"""The nodes' widgets, read from manifests.json: the plugin manifests (plugins/<id>/manifest.ts)
declare each parameter once and adapters/comfyui/manifests.ts each node's own widgets; `npm run
schemas` writes this JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

_FILE = Path(__file__).with_name("manifests.json")


@dataclass(frozen=True)
class Param:
    name: str          # the widget's name (manifests.json's "x-widget": the key in snake_case)
    key: str           # the manifest's key
    kind: str          # "float", "int", "bool", "combo" or "string"
    default: Any
    tooltip: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: bool = False
    choices: tuple = ()


def _param(key: str, schema: dict) -> Param:
    kind = {"number": "float", "integer": "int", "boolean": "bool", "string": "string"}[schema["type"]]
    if "enum" in schema:
        kind = "combo"
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum")
    if hi is not None and hi > 2 ** 31:
        hi = None  # zod's "no maximum" for integers
    return Param(name=schema.get("x-widget", key), key=key, kind=kind, default=schema.get("default"), tooltip=schema.get("description", ""),
                 minimum=lo, maximum=hi, exclusive_minimum="exclusiveMinimum" in schema,
                 choices=tuple(schema.get("enum", ())))


def _load():
    data = json.loads(_FILE.read_text())
    plugins = {}
    for m in data["plugins"]:
        props = m["params"]["properties"]
        plugins[m["id"]] = {"title": m["title"], "description": m["description"], "source": m["source"],
                            "params": [_param(k, v) for k, v in props.items()]}
    return plugins, {n["id"]: n for n in data["nodes"]}


MANIFESTS, NODES = _load()


def node_widgets(node: str) -> list:
    """Node's widgets in order: its own before, the plugin's (those it lists), its own after.
    Each is a Param; the plugin's keep their manifest key, a node's own have key == name."""
    n = NODES[node]
    own = lambda ws: [_param(w["name"], w) for w in ws]  # noqa: E731
    keys = n.get("params")
    mid = [p for p in plugin_params(n["plugin"]) if keys is None or p.key in keys] if n["plugin"] else []
    if keys is not None:
        mid.sort(key=lambda p: keys.index(p.key))
    return own(n["before"]) + mid + own(n["after"])


def parse_node(node: str, values: dict) -> tuple:
    """(plugin params with every default, the node's own settings) from a node's widget values by
    name; errors name the node and the field."""
    n = NODES[node]
    own = {w["name"] for w in n["before"] + n["after"]}
    mine = {k: v for k, v in values.items() if k in own}
    settings = _check([_param(w["name"], w) for w in n["before"] + n["after"]], mine, node)
    if not n["plugin"]:
        rest = sorted(set(values) - own)
        if rest:
            raise ValueError(f"{node}: unknown input {rest[0]!r} (expected one of {sorted(own)})")
        return {}, settings
    plugin = {**parse(n["plugin"], {}, node),
              **parse(n["plugin"], {k: v for k, v in values.items() if k not in own}, node, n.get("params"))}
    return plugin, settings


def plugin_params(plugin: str) -> list:
    return MANIFESTS[plugin]["params"]


def parse(plugin: str, values: dict, node: str, only=None) -> dict:
    """The manifest's parameters of plugin (those keyed in only, if given) from widget values (by
    widget name), defaults filled in, keyed by the manifest's keys. Unknown names and out-of-range
    values raise ValueError naming the node and the field."""
    return _check([p for p in plugin_params(plugin) if only is None or p.key in only], values, node)


def _check(params: list, values: dict, node: str) -> dict:
    specs = {p.name: p for p in params}
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


def parse_profile(profile, where: str) -> dict:
    """A profile (plugin id -> that plugin's parameters by manifest key, as `slipstream comfy
    accelerate --profile` takes) checked against the manifests: {plugin id: params with defaults}."""
    if not isinstance(profile, dict):
        raise ValueError(f"{where}: expected a JSON object of plugin parameters by plugin id")
    out = {}
    for plugin, values in profile.items():
        if plugin not in MANIFESTS:
            raise ValueError(f"{where}: unknown plugin {plugin!r} (expected one of {sorted(MANIFESTS)})")
        if not isinstance(values, dict):
            raise ValueError(f"{where}: {plugin}: expected an object of parameters")
        keys = {p.key: p.name for p in plugin_params(plugin)}
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise ValueError(f"{where}: {plugin}: unknown parameter {unknown[0]!r} (expected one of {sorted(keys)})")
        out[plugin] = parse(plugin, {keys[k]: v for k, v in values.items()}, f"{where}: {plugin}")
    return out
