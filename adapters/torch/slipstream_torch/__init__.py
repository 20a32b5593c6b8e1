"""Slipstream for PyTorch hosts: the ctypes loader of libslipstream and the ops over it."""

from ._lib import SlipstreamError, capabilities, set_isa, set_num_threads

__all__ = ["SlipstreamError", "capabilities", "set_isa", "set_num_threads"]
