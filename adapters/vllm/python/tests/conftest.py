import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # slipstream_vllm
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "torch"))  # slipstream_torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "torch" / "tests"))  # test_prepare_prune's helpers
