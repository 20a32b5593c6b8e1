"""Loads the node pack into ComfyUI itself and runs ComfyUI's own prompt validation
(execution.validate_prompt) on workflows/comfyui/*.api.json: our nodes must register from the V3
entry point and pass; the only errors allowed are model files this machine does not have.

    python3 bench/comfyui/validate.py --comfyui third_party/comfyui
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from bench import load_comfyui  # noqa: E402


async def check(comfy_dir: Path) -> int:
    stubbed = load_comfyui(comfy_dir)
    import execution
    import nodes
    await nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False)
    if not await nodes.load_custom_node(str(ROOT / "adapters" / "comfyui")):
        print("the node pack did not load")
        return 1
    ours = sorted(n for n in nodes.NODE_CLASS_MAPPINGS if n.startswith("Slipstream"))
    print(f"stubbed: {', '.join(stubbed) or 'none'}; registered: {', '.join(ours)}")
    # The UI format's widgets_values are positional: ComfyUI's inputs order must be the manifests'.
    from slipstream_comfy.params import node_widgets
    failures = 0
    for name in ours:
        declared = [k for k in nodes.NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"] if k != "model"]
        expected = [p.name for p in node_widgets(name)]
        if declared != expected:
            print(f"{name}: ComfyUI lists its widgets as {declared}, the manifests as {expected}")
            failures += 1
    for file in sorted((ROOT / "workflows" / "comfyui").glob("*.api.json")):
        prompt = json.loads(file.read_text())
        valid, error, outputs, node_errors = await execution.validate_prompt("check", prompt, None)
        bad = []
        for node_id, e in node_errors.items():
            for err in e["errors"]:
                model_file = err["type"] == "value_not_in_list" and err["extra_info"]["input_name"] in (
                    "unet_name", "clip_name", "clip_name1", "clip_name2", "vae_name")
                if not model_file:
                    bad.append(f"node {node_id} ({e['class_type']}): {err['message']}: {err.get('details', '')}")
        if not valid and not node_errors:
            bad.append(f"{error.get('message')}: {error.get('details')}")
        print(f"{file.name}: ok ({len(node_errors)} node(s) with errors, all missing model files)"
              if not bad else f"{file.name}: FAILED\n  " + "\n  ".join(bad))
        failures += bool(bad)
    return 1 if failures or not ours else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    sys.exit(asyncio.run(check(Path(ap.parse_args().comfyui).resolve())))


if __name__ == "__main__":
    main()
