"""Imports libslipstream's torch ops (adapters/torch/slipstream_torch): beside this package when
`slipstream comfy install` put it there, else from the source tree this pack sits in."""

import sys
from pathlib import Path

try:
    import slipstream_torch  # noqa: F401
except ImportError:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "lib", here.parents[1] / "torch"):
        if (candidate / "slipstream_torch").is_dir():
            sys.path.insert(0, str(candidate))
            break
    import slipstream_torch  # noqa: F401

from slipstream_torch import ops  # noqa: E402,F401  (registers torch.ops.slipstream)
