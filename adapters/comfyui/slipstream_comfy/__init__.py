"""Slipstream's ComfyUI hooks: attention (attention.py), the Temporal Delta Cache (delta_cache.py),
the nodes over them (nodes.py), their widgets from the plugin manifests (params.py)."""
