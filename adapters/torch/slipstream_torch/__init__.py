"""Slipstream for PyTorch hosts: the ctypes loader of libslipstream and the ops over it.

`quant` (number formats: encode, decode, pack, quantize), `linear` (quantized matrix products)
and `attention` (dense, Sage, sparse, SLA2) work on numpy arrays; the library is loaded on first use, so importing never fails.
"""

from . import attention, linear, quant
from ._lib import SlipstreamError, capabilities, set_isa, set_num_threads

__all__ = ["SlipstreamError", "attention", "capabilities", "linear", "quant", "set_isa", "set_num_threads"]
