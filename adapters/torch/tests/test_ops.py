"""torch.ops.slipstream.* (slipstream_torch/ops.py): the custom ops on the CPU path, their fake
implementations under torch.compile(fullgraph=True), and torch.library.opcheck's registration
checks. The CUDA path runs on the GPU machine (bench/gpu/attention.py compares it with the CPU
reference there); CI has no GPU, so these tests exercise the CPU kernels only.
"""

import numpy as np
import pytest
import torch

from slipstream_torch import attention, ops  # noqa: F401  (ops registers torch.ops.slipstream)
from slipstream_torch._lib import SlipstreamError


def inputs(b=1, hq=2, hk=1, n=200, d=64, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, n, d, generator=g)
    k = torch.randn(b, hk, n, d, generator=g) + 3.0  # a key mean: smooth-K's case
    v = torch.randn(b, hk, n, d, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def test_cpu_op_is_the_native_cpu_kernel():
    q, k, v = inputs()
    out, lse = torch.ops.slipstream.sage_attention(q, k, v, True)
    ref, ref_lse = attention.sage(q.numpy(), k.numpy(), v.numpy(), causal=True, return_lse=True)
    assert out.dtype == q.dtype and out.shape == q.shape and lse.shape == (1, 2, 200)
    assert torch.equal(out, torch.from_numpy(ref)) and torch.equal(lse, torch.from_numpy(ref_lse))


def test_bf16_in_bf16_out_through_float32():
    q, k, v = inputs(dtype=torch.bfloat16)
    out, _ = torch.ops.slipstream.sage_attention(q, k, v)
    ref = attention.sage(q.float().numpy(), k.float().numpy(), v.float().numpy())
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, torch.from_numpy(ref).to(torch.bfloat16))


def test_block_sparse_op_keeps_and_drops_tiles():
    q, k, v = inputs(n=300)
    full = torch.ones(1, 2, 3, 5, dtype=torch.uint8)  # ceil(300/128) x ceil(300/64)
    dense, _ = torch.ops.slipstream.sage_attention(q, k, v)
    sparse, _ = torch.ops.slipstream.sage_attention_block_sparse(q, k, v, full)
    assert torch.equal(dense, sparse)
    none = torch.zeros_like(full)
    empty, lse = torch.ops.slipstream.sage_attention_block_sparse(q, k, v, none)
    assert torch.equal(empty, torch.zeros_like(q)) and torch.isneginf(lse).all()


def test_compiles_fullgraph_with_the_fake_implementation():
    q, k, v = inputs(n=128)

    def layer(q, k, v):
        out, lse = torch.ops.slipstream.sage_attention(q, k, v)
        return out * 2 + lse.unsqueeze(-1)

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(q, k, v), layer(q, k, v))


def test_opcheck():
    q, k, v = inputs(n=96)
    torch.library.opcheck(torch.ops.slipstream.sage_attention.default, (q, k, v, False, 0.0, "HND", "thread", True),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def test_bad_inputs_are_named():
    q, k, v = inputs()
    with pytest.raises(SlipstreamError, match="k"):
        torch.ops.slipstream.sage_attention(q, k[..., :32].contiguous(), v)
    with pytest.raises(SlipstreamError, match="granularity"):
        torch.ops.slipstream.sage_attention(q, k, v, granularity="row")
    nan = q.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(SlipstreamError, match="q"):
        torch.ops.slipstream.sage_attention(nan, k, v)


def test_lowbit_op_is_the_cpu_kernel_dense_and_block_sparse():
    import math

    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 300, 128, generator=g) for _ in range(3))
    ref = torch.softmax(q.double() @ k.double().transpose(-1, -2) / math.sqrt(128), -1) @ v.double()
    out = torch.ops.slipstream.lowbit_attention(q, k, v)
    # INT8 Q/K per token and BF16 P/V: issue 5's bar for low-bit attention against float64.
    assert ((out.double() - ref).abs().sum() / ref.abs().sum()).item() <= 0.02
    mask = torch.ops.slipstream.sparse_predict(q, k, False, topk=0.5)
    np_out = attention.lowbit(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    assert torch.equal(torch.ops.slipstream.lowbit_attention(q, k, v, mask), torch.from_numpy(np_out))
    torch.library.opcheck(torch.ops.slipstream.lowbit_attention.default, (q, k, v, mask, 0.0, "HND"))
