"""Slipstream for PyTorch hosts: the ctypes loader of libslipstream and the ops over it.

`quant` (number formats: encode, decode, pack, quantize) and `linear` (quantized matrix
products) work on numpy arrays; the library is loaded on first use, so importing never fails.
"""

from . import linear, quant
from ._lib import SlipstreamError, capabilities, set_isa, set_num_threads

__all__ = ["SlipstreamError", "capabilities", "linear", "quant", "set_isa", "set_num_threads"]
