"""Training-time methods from the research notes, in plain PyTorch over the native kernels."""

from . import vrpo  # noqa: F401
from .attention import (  # noqa: F401
    BlockSparseAttentionFunction, SageAttentionFunction, SLA2Attention, block_sparse_attention, sage_attention,
    sla2_router_scores,
)
from .linear import NVFP4Linear, OsciReset, OutControl  # noqa: F401
