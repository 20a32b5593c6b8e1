"""The node pack's nodes in ComfyUI's V3 schema. Each plugin parameter is a widget built from
manifests.json (params.py); only the node's own settings (mode, minimum tokens, cache device,
verbose) are declared here. Every node clones the MODEL it is given and patches the clone."""

from __future__ import annotations

from . import attention as attn
from . import delta_cache as cache
from .params import MANIFESTS, parse, plugin_params

CATEGORY = "slipstream"
# The delta cache's Temporal Delta Cache parameters; its PDR ones act on Slipstream's quantized
# linears, which this pack does not install yet.
TDC_PARAMS = ("threshold", "maxSkips", "warmupSteps", "finalSteps")


def widget_specs(plugin: str, only=None) -> list:
    """(kind, name, options) of each manifest parameter's widget: kind is io's input class name."""
    out = []
    for p in plugin_params(plugin):
        if only is not None and p.key not in only:
            continue
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
        out.append(({"float": "Float", "int": "Int", "bool": "Boolean", "combo": "Combo", "string": "String"}[p.kind],
                    p.name, opts))
    return out


def _report(node: str):
    """Pushes a run's stats to the browser (the web extension listens for slipstream.stats)."""
    def send(stats: dict):
        try:
            from server import PromptServer  # ComfyUI's; absent outside a server
        except ImportError:
            return
        PromptServer.instance.send_sync("slipstream.stats", {"node": node, **stats}, PromptServer.instance.client_id)
    return send


def apply_attention(model, mode: str, min_tokens: int, widgets: dict):
    params = parse("sparse-attention", widgets, "SlipstreamAttention")
    m = model.clone()
    attn.install(m, attn.SlipstreamAttention(params, mode=mode, min_tokens=min_tokens))
    return m


def apply_delta_cache(model, cache_device: str, verbose: bool, widgets: dict):
    params = {**parse("delta-cache", {}, "SlipstreamDeltaCache"), **parse("delta-cache", widgets, "SlipstreamDeltaCache", TDC_PARAMS)}
    m = model.clone()
    blocks = len(m.get_model_object("diffusion_model").blocks)
    cache.install(m, cache.DeltaCache(params, cache_device, verbose, _report("SlipstreamDeltaCache")), blocks)
    return m


def comfy_nodes():
    from comfy_api.latest import io  # ComfyUI's; imported only when ComfyUI loads the pack

    def inputs(plugin, only=None):
        return [getattr(io, kind).Input(name, **opts) for kind, name, opts in widget_specs(plugin, only)]

    class SlipstreamAttention(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            m = MANIFESTS["sparse-attention"]
            return io.Schema(
                node_id="SlipstreamAttention", display_name="Slipstream Attention", category=CATEGORY,
                description=m["description"],
                inputs=[io.Model.Input("model"),
                        io.Combo.Input("mode", options=["sparse", "low-bit"], default="sparse",
                                       tooltip="sparse: SpargeAttention2 block mask + SageAttention2; low-bit: dense SageAttention2"),
                        io.Int.Input("min_tokens", default=0, min=0, tooltip="shorter sequences keep ComfyUI's attention"),
                        *inputs("sparse-attention")],
                outputs=[io.Model.Output()])

        @classmethod
        def execute(cls, model, mode, min_tokens, **widgets):
            return io.NodeOutput(apply_attention(model, mode, min_tokens, widgets))

    class SlipstreamDeltaCache(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            m = MANIFESTS["delta-cache"]
            return io.Schema(
                node_id="SlipstreamDeltaCache", display_name="Slipstream Delta Cache", category=CATEGORY,
                description=m["description"],
                inputs=[io.Model.Input("model"), *inputs("delta-cache", TDC_PARAMS),
                        io.Combo.Input("cache_device", options=["same", "cpu"], default="same",
                                       tooltip="where cached block deltas live (cpu frees VRAM)"),
                        io.Boolean.Input("verbose", default=False, tooltip="log computed and skipped blocks per run")],
                outputs=[io.Model.Output()])

        @classmethod
        def execute(cls, model, cache_device, verbose, **widgets):
            return io.NodeOutput(apply_delta_cache(model, cache_device, verbose, widgets))

    return [SlipstreamAttention, SlipstreamDeltaCache]


async def comfy_entrypoint():
    from comfy_api.latest import ComfyExtension

    class SlipstreamExtension(ComfyExtension):
        async def get_node_list(self):
            return comfy_nodes()

    return SlipstreamExtension()
