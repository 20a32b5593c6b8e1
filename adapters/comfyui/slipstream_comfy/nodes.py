"""The node pack's nodes in ComfyUI's V3 schema, built from manifests.json (params.py): the plugin
parameters and each node's own widgets are declared once, in TypeScript. Every node clones the
MODEL it is given and patches the clone."""

from __future__ import annotations

from . import attention as attn
from . import delta_cache as cache
from . import mixed_precision as mixed
from . import prune
import json
from pathlib import Path

from .params import MANIFESTS, NODES, node_widgets, parse_node, parse_profile

CATEGORY = "slipstream"
_IO_KIND = {"float": "Float", "int": "Int", "bool": "Boolean", "combo": "Combo", "string": "String"}


def widget_specs(node: str) -> list:
    """(io input class name, widget name, options) of node's widgets, in order."""
    out = []
    for p in node_widgets(node):
        opts = {"tooltip": p.tooltip}
        if p.default is not None:
            opts["default"] = p.default
        if p.kind in ("float", "int"):
            if p.minimum is not None:
                opts["min"] = p.minimum
            if p.maximum is not None:
                opts["max"] = p.maximum
            if p.kind == "float":
                opts["step"] = 0.01
        if p.kind == "combo":
            opts["options"] = list(p.choices)
        out.append((_IO_KIND[p.kind], p.name, opts))
    return out


def _prompt_server():
    """ComfyUI's running PromptServer, or None (no server: ComfyUI used as a library, or no ComfyUI)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def _report(node: str):
    """Pushes a run's stats to the browser (the web extension listens for slipstream.stats)."""
    def send(stats: dict):
        server = _prompt_server()
        if server is not None:
            server.send_sync("slipstream.stats", {"node": node, **stats}, server.client_id)
    return send


def apply_attention(model, widgets: dict, node_id=None):
    params, own = parse_node("SlipstreamAttention", widgets)
    sla = None
    if own["mode"] == "sparse-linear":
        from slipstream_torch import sla2
        sla = sla2.load(_user_path(own["sla_weights"]), "SlipstreamAttention")
    m = model.clone()
    attn.install(m, attn.SlipstreamAttention(params, mode=own["mode"], min_tokens=own["min_tokens"], sla=sla,
                                             report=_report("SlipstreamAttention")))
    return m


def _progress_text(node_id):
    """Per-node progress text in the browser (ComfyUI's binary progress-text frame)."""
    if node_id is None:
        return None

    def send(text: str):
        server = _prompt_server()
        if server is not None:
            server.send_progress_text(text, node_id)
    return send


def apply_delta_cache(model, widgets: dict, node_id=None):
    params, own = parse_node("SlipstreamDeltaCache", widgets)
    m = model.clone()
    keys = cache.block_keys(m.get_model_object("diffusion_model"))
    cache.install(m, cache.DeltaCache(params, own["cache_device"], own["verbose"], _report("SlipstreamDeltaCache"),
                                      _progress_text(node_id)), keys)
    return m


def _user_dir() -> Path:
    try:
        import folder_paths  # ComfyUI's; absent outside it
        return Path(folder_paths.get_user_directory())
    except ImportError:
        return Path.cwd()


def _user_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else _user_dir() / path


def apply_mixed_precision(model, widgets: dict, node_id=None):
    params, own = parse_node("SlipstreamMixedPrecision", widgets)
    path = _user_path(own["calibration"])
    threshold = None
    if own["mode"] == "apply" and params["route"] == "dmpq":
        threshold = mixed.read_threshold(path)
    m = model.clone()
    mixed.install(m, mixed.DMPQ(params, own["mode"], path, own["target_error"], threshold,
                                report=_report("SlipstreamMixedPrecision")))
    return m


def apply_prune(model, widgets: dict, node_id=None):
    _, own = parse_node("SlipstreamPrune", widgets)
    return prune.apply(model, _user_path(own["masks"]))


def apply_profile(model, widgets: dict, node_id=None):
    """Every plugin a profile file names, with its parameters (the nodes' own settings at their
    defaults): attention and the delta cache, on one clone."""
    _, own = parse_node("SlipstreamProfile", widgets)
    path = _user_path(own["profile"])
    try:
        profile = parse_profile(json.loads(path.read_text()), str(path))
    except OSError as e:
        raise ValueError(f"SlipstreamProfile: cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"SlipstreamProfile: {path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    if "mixed-precision" in profile:
        raise ValueError(f"SlipstreamProfile: {path}: mixed-precision needs its calibration file: use a SlipstreamMixedPrecision node")
    m = model.clone()
    if "sparse-attention" in profile:
        attn.install(m, attn.SlipstreamAttention(profile["sparse-attention"], report=_report("SlipstreamAttention")))
    if "delta-cache" in profile:
        keys = cache.block_keys(m.get_model_object("diffusion_model"))
        cache.install(m, cache.DeltaCache(profile["delta-cache"], report=_report("SlipstreamDeltaCache"),
                                          progress=_progress_text(node_id)), keys)
    return m


APPLY = {"SlipstreamAttention": apply_attention, "SlipstreamDeltaCache": apply_delta_cache,
         "SlipstreamMixedPrecision": apply_mixed_precision, "SlipstreamPrune": apply_prune,
         "SlipstreamProfile": apply_profile}


def comfy_nodes():
    from comfy_api.latest import io  # ComfyUI's; imported only when ComfyUI loads the pack

    def make(node_id):
        spec = NODES[node_id]

        class Node(io.ComfyNode):
            @classmethod
            def define_schema(cls):
                return io.Schema(
                    node_id=node_id, display_name=spec["displayName"], category=CATEGORY,
                    description=MANIFESTS[spec["plugin"]]["description"] if spec["plugin"] else spec["description"],
                    inputs=[io.Model.Input("model"),
                            *(getattr(io, kind).Input(name, **opts) for kind, name, opts in widget_specs(node_id))],
                    outputs=[io.Model.Output()],
                    hidden=[io.Hidden.unique_id])

            @classmethod
            def execute(cls, model, **widgets):
                return io.NodeOutput(APPLY[node_id](model, widgets, cls.hidden.unique_id))

        Node.__name__ = Node.__qualname__ = node_id
        return Node

    return [make(n) for n in NODES]


async def comfy_entrypoint():
    from comfy_api.latest import ComfyExtension

    class SlipstreamExtension(ComfyExtension):
        async def get_node_list(self):
            return comfy_nodes()

    return SlipstreamExtension()
