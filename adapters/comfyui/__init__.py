"""Slipstream's ComfyUI node pack: this folder goes into ComfyUI/custom_nodes (`slipstream comfy
install` puts it there with libslipstream), and ComfyUI finds the V3 entry point below."""

from .slipstream_comfy.nodes import comfy_entrypoint  # noqa: F401

# The frontend extension (web/src, bundled by `npm run build:web`): settings, node badges, sidebar chart.
WEB_DIRECTORY = "./web/dist"
