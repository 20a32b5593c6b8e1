"""NVFP4 weights for wan-mini's block linears by GPTQ in a Hadamard-rotated basis.

    .venv/bin/python models/wan-mini/quantize_nvfp4.py [--out DIR] [--damp 0.03] [--eval]

Writes DIR/model.safetensors (default models/wan-mini/nvfp4/) holding, for every block linear
<name> = blocks.{i}.{self_attn,cross_attn}.{q,k,v,o} and blocks.{i}.ffn.{0,2}, exactly the
tensors compressed-tensors stores for an NVFP4 weight:

    <name>.weight_packed        U8       [N, K/2]   E2M1 codes, column 2j in the low nibble
    <name>.weight_scale         F8_E4M3  [N, K/16]  one scale per 16 input columns
    <name>.weight_global_scale  F32      [1]        g = 448*6 / amax, "a divisor":
                                                    w = code * scale / g
    <name>.bias                 F16      [N]        the shipped bias, unchanged

The decoded weight is W·Had, not W: Had is the orthonormal blocked Walsh-Hadamard transform of
size `hadamard_block` (metadata; slip_hadamard's Sylvester order, 1/sqrt(128) scaled) along
the input axis K. Had is symmetric and orthogonal, so a runtime that applies the same rotation
to the activations gets (x·Had)(W·Had)ᵀ = x·Wᵀ. Everything that is not a block linear
(embeddings, norms, modulations, head) is not in this file: runtimes take it from the shipped
fp16 shards.

Why GPTQ: round-to-nearest NVFP4 of these weights costs ~27 dB pixel PSNR against the FP32
model's own videos, short of the 28 dB target. GPTQ (Frantar et al. 2022, "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers") quantizes a weight column
by column and moves each column's rounding error onto the columns not yet quantized, weighted
by the inverse Hessian H = 2 XᵀX of the layer's inputs, so that the layer's *output* error on
real activations is minimal rather than the weight error. The result is still plain NVFP4:
any NVFP4 reader decodes it unchanged.

Calibration runs the FP32 model's own sampler (Euler, 30 steps, CFG 5, conditional and
unconditional halves) on CALIBRATION_PROMPTS, none of which is one of EVAL_PROMPTS. Blocks are
quantized in order, each from inputs produced by the already-quantized blocks before it.
Deterministic (fixed seeds, fixed thread count); about 4 minutes on 2 CPU cores.

Needs libslipstream (adapters/torch/slipstream_torch; set SLIPSTREAM_LIB if the library is not
at build/Release/) for the E4M3/E2M1 element codecs, the Hadamard transform and the
dequantizer the result is checked against, so the file is bit-exact with the native runtime's
NVFP4 numerics.
"""
import argparse
import copy
import json
import os
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "adapters", "torch"))

import sample  # noqa: E402
from codec import Codec  # noqa: E402
from prompts import PromptTable  # noqa: E402
from slipstream_torch import quant  # noqa: E402

F32 = np.float32
HADAMARD_BLOCK = 128
GROUP = 16            # NVFP4: one E4M3 scale per 16 input columns
GPTQ_BLOCK = 128      # columns per lazy batch update (GPTQ's "lazy batch" of B = 128)
STEPS, CFG = 30, 5.0  # the sampler settings the model ships with (README)
# Disjoint from EVAL_PROMPTS; together they use every word of the vocabulary, so the
# cross-attention k/v see every text row a prompt can produce.
CALIBRATION_PROMPTS = ["green circle left", "red square up", "blue triangle right",
                       "yellow circle rotate", "red triangle recolour", "green square down",
                       "blue circle up", "yellow square left"]
CALIBRATION_SEED0 = 100
EVAL_PROMPTS = ["red circle right", "blue square rotate", "yellow triangle down"]  # seeds 0..2
# Linears of one block that read the same input share one Hessian.
INPUTS = {"self_attn.q": ("self_attn.q", "self_attn.k", "self_attn.v"),
          "self_attn.o": ("self_attn.o",),
          "cross_attn.q": ("cross_attn.q",),
          "cross_attn.k": ("cross_attn.k", "cross_attn.v"),
          "cross_attn.o": ("cross_attn.o",),
          "ffn.0": ("ffn.0",),
          "ffn.2": ("ffn.2",)}
LINEARS = [name for group in INPUTS.values() for name in group]


# ---------------------------------------------------------------- NVFP4 numerics
# The same float32 operation order as libslipstream's quantize_nvfp4 (compressed-tensors'):
# s = RN_E4M3(g * (amax_16 / 6)), eff = s / g, code = RNE_sat_E2M1(x / eff), x' = code * eff.

def round_e4m3(x):
    return quant.decode_elements("E4M3", quant.encode_elements("E4M3", np.asarray(x, F32)))


def global_scale(w_rot):
    g = F32(2688.0) / max(F32(np.abs(w_rot).max()), np.finfo(F32).tiny)
    return F32(g) if np.isfinite(g) else F32(1.0)


def e2m1(x, eff):
    """Codes and decoded values of x [N, c] under per-row steps eff [N, 1]."""
    codes = quant.encode_elements("E2M1", (x.astype(F32) / eff).astype(F32))
    return codes, quant.decode_elements("E2M1", codes) * eff


def group_scale(wg, g):
    """E4M3 scale [N] for the 16-column groups wg [N, 16].

    Candidates are the amax/6 scale and the 6 E4M3 values below it; the one whose codes give
    the least squared error wins (ties to the larger). Clipping a group's largest value
    slightly can cost less than coarser steps for the other 15, and on these weights it lowers
    the layer-output error GPTQ leaves (the plain amax/6 scale is candidate 0).
    """
    wg = wg.astype(F32)
    s0 = round_e4m3(g * (np.abs(wg).max(1) / F32(6.0)))
    s0 = np.where(s0 == 0, F32(0.125), s0).astype(F32)  # compressed-tensors' zero-scale placeholder
    best, best_err = s0.copy(), np.full(s0.shape, np.inf, F32)
    code0 = quant.encode_elements("E4M3", s0).astype(np.int32)
    for step in range(7):
        code = code0 - step
        s = quant.decode_elements("E4M3", np.clip(code, 0, 255).astype(np.uint8))
        ok = (code > 0) & (s > 0)
        _, q = e2m1(wg, (np.where(ok, s, F32(1.0)) / g).astype(F32)[:, None])
        err = ((q - wg) ** 2).sum(1)
        better = ok & (err < best_err)
        best[better], best_err[better] = s[better], err[better]
    return best


def gptq_nvfp4(w, xtx, damp):
    """GPTQ of one linear in the rotated basis.

    w [N, K] (original basis), xtx [K, K] = mean of xᵀx over calibration tokens (original
    basis). Returns codes uint8 [N, K], scales float32 [N, K/16] (E4M3 values), g.
    """
    had = quant.hadamard(np.eye(w.shape[1], dtype=F32), HADAMARD_BLOCK).astype(np.float64)
    w_rot = quant.hadamard(w, HADAMARD_BLOCK)
    h = had @ xtx @ had  # the Hessian of the rotated inputs x·Had; the factor 2 cancels below
    n, k = w_rot.shape
    # The global scale comes from the weight before GPTQ moves it, as compressed-tensors
    # computes it from the weight; updated columns may exceed that amax and saturate.
    g = global_scale(w_rot)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h += damp * np.mean(np.diag(h)) * np.eye(k)
    # GPTQ's Cholesky reformulation: the rows of the upper factor U of H⁻¹ = UᵀU give every
    # update H⁻¹[q, q:] / [H⁻¹]_qq of the sequential OBS steps without re-inverting.
    chol = torch.linalg.cholesky(torch.from_numpy(h))
    u = torch.linalg.cholesky(torch.cholesky_inverse(chol), upper=True).numpy()
    wq = w_rot.astype(np.float64)
    codes = np.zeros((n, k), np.uint8)
    scales = np.zeros((n, k // GROUP), F32)
    for b0 in range(0, k, GPTQ_BLOCK):
        b1 = min(b0 + GPTQ_BLOCK, k)
        blk, err = wq[:, b0:b1].copy(), np.zeros((n, b1 - b0))
        ub = u[b0:b1, b0:b1]
        for i in range(b1 - b0):
            col = b0 + i
            if col % GROUP == 0:
                # A group's scale is fixed when GPTQ first reaches it, from its current
                # (error-updated) weights: the scale then fits what will actually be rounded.
                s = group_scale(blk[:, i:i + GROUP], g)
                scales[:, col // GROUP] = s
                eff = (s / g).astype(F32)[:, None]
            c, q = e2m1(blk[:, i:i + 1], eff)
            codes[:, col] = c[:, 0]
            e = (blk[:, i] - q[:, 0]) / ub[i, i]
            blk[:, i:] -= np.outer(e, ub[i, i:])
            err[:, i] = e
        # Lazy batch update: columns after this block get the whole block's error at once.
        wq[:, b1:] -= err @ u[b0:b1, b1:]
    return codes, scales, g


def pack(codes, scales, g):
    """The dict slipstream_torch.quant.quantize returns (compressed-tensors layout)."""
    n, k = codes.shape
    return {"codes": quant.pack_nibbles(codes.reshape(-1)).reshape(n, k // 2),
            "scales": quant.encode_elements("E4M3", scales),
            "global": np.array([g], F32), "format": "NVFP4", "options": {}}


def decode(q, shape):
    """Decoded weight in the original basis (what a rotated runtime effectively multiplies)."""
    return quant.hadamard(quant.dequantize(q, shape), HADAMARD_BLOCK)


# ---------------------------------------------------------------- calibration

def capture_block0_inputs(model, table):
    """(x, e0, ctx) entering block 0 at every sampler step of every calibration prompt, and
    the RoPE tables (the same for every step: one video size)."""
    cap, rope = [], []

    def f(mod, args):
        cap.append(tuple(a.clone() for a in args[:3]))
        rope[:] = [args[3]]

    hook = model.blocks[0].register_forward_pre_hook(f)
    try:
        for i, text in enumerate(CALIBRATION_PROMPTS):
            sample.generate(model, table.encode_text(text), CALIBRATION_SEED0 + i, STEPS, CFG)
    finally:
        hook.remove()
    return cap, rope[0]


def block_hessians(block, cap, rope):
    """Mean xᵀx (float64) of each input of `block` over all captured tokens."""
    acc = {}

    def hook(name):
        def f(mod, args):
            x = args[0].reshape(-1, args[0].shape[-1])
            a = acc.setdefault(name, [np.zeros((x.shape[1],) * 2), 0])
            a[0] += (x.T @ x).double().numpy()
            a[1] += x.shape[0]
        return f

    mods = dict(block.named_modules())
    hooks = [mods[name].register_forward_pre_hook(hook(name)) for name in INPUTS]
    try:
        for x, e0, ctx in cap:
            block(x, e0, ctx, rope)
    finally:
        for h in hooks:
            h.remove()
    return {lin: acc[src][0] / acc[src][1] for src, lins in INPUTS.items() for lin in lins}


@torch.no_grad()
def quantize_model(model, table, damp, log):
    """{name: quant dict} for every block linear, and a copy of model using the decoded weights."""
    t0 = time.time()
    cap, rope = capture_block0_inputs(model, table)
    log(f"captured {len(cap)} block inputs ({time.time() - t0:.0f} s)")
    qmodel = copy.deepcopy(model)
    out = {}
    for i, (fp_block, q_block) in enumerate(zip(model.blocks, qmodel.blocks)):
        # Hessians from the FP32 block run on inputs the quantized blocks < i produced:
        # each block corrects for the error already made upstream (GPTQ's sequential order).
        hess = block_hessians(fp_block, cap, rope)
        q_mods = dict(q_block.named_modules())
        for lin in LINEARS:
            w = q_mods[lin].weight.numpy().astype(F32)
            q = pack(*gptq_nvfp4(w, hess[lin], damp))
            out[f"blocks.{i}.{lin}"] = q
            q_mods[lin].weight.copy_(torch.from_numpy(decode(q, w.shape)))
        cap = [(q_block(x, e0, ctx, rope), e0, ctx) for x, e0, ctx in cap]
        log(f"block {i} quantized ({time.time() - t0:.0f} s)")
    return out, qmodel


# ---------------------------------------------------------------- file

ST_DTYPES = {torch.uint8: "U8", torch.float8_e4m3fn: "F8_E4M3", torch.float32: "F32",
             torch.float16: "F16"}


def save_safetensors(tensors, path, metadata):
    """safetensors with a sorted header, so that equal tensors give byte-identical files (the
    safetensors package writes metadata in hash order)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = dict(sorted(metadata.items()))
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.writelines(blobs)


def write(path, qs, model, damp):
    params = dict(model.named_parameters())
    tensors = {}
    for name, q in qs.items():
        tensors[f"{name}.weight_packed"] = torch.from_numpy(q["codes"])
        tensors[f"{name}.weight_scale"] = torch.from_numpy(q["scales"]).view(torch.float8_e4m3fn)
        tensors[f"{name}.weight_global_scale"] = torch.from_numpy(q["global"])
        # The shards store fp16, so this is the shipped bias exactly.
        tensors[f"{name}.bias"] = params[f"{name}.bias"].detach().half()
    meta = {"format": "slipstream-wan-nvfp4/1", "hadamard_block": str(HADAMARD_BLOCK),
            "method": "gptq", "calibration_prompts": json.dumps(CALIBRATION_PROMPTS),
            "calibration_seeds": json.dumps(list(range(CALIBRATION_SEED0,
                                                       CALIBRATION_SEED0 + len(CALIBRATION_PROMPTS)))),
            "damp": repr(damp), "scales": "mse-of-7", "sequential": "blocks"}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(tensors, path, meta)


def verify(path, qs, qmodel):
    """The file decodes (by libslipstream) to exactly the weights qmodel runs with; read back
    by the safetensors package, as an independent check of the file format."""
    from safetensors.torch import load_file
    got = load_file(path)
    mods = dict(qmodel.named_modules())
    assert len(got) == 4 * len(qs), f"expected {4 * len(qs)} tensors, got {len(got)}"
    for name, ref in qs.items():
        q = {"codes": got[f"{name}.weight_packed"].numpy(),
             "scales": got[f"{name}.weight_scale"].view(torch.uint8).numpy(),
             "global": got[f"{name}.weight_global_scale"].numpy(), "format": "NVFP4", "options": {}}
        for key in ("codes", "scales", "global"):
            assert np.array_equal(q[key], ref[key]), f"{name}: {key} differs after the round trip"
        w = mods[name].weight.detach().numpy()
        assert np.array_equal(decode(q, w.shape), w), f"{name}: decoded weight differs"


def pixel_psnr(model, qmodel, table):
    """Per-prompt PSNR (dB) of the decoded 8-bit videos of qmodel against model's."""
    codec = Codec.load()

    def pixels(m, text, seed):
        z = sample.generate(m, table.encode_text(text), seed, STEPS, CFG)
        return torch.round(codec.decode(z).clamp(-1, 1) * 127.5 + 127.5).numpy()

    out = []
    for seed, text in enumerate(EVAL_PROMPTS):
        mse = np.mean((pixels(model, text, seed) - pixels(qmodel, text, seed)) ** 2)
        out.append(10 * np.log10(255.0 ** 2 / mse))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(HERE, "nvfp4"), help="output folder")
    p.add_argument("--damp", type=float, default=0.03,
                   help="GPTQ dampening as a fraction of mean(diag H)")
    p.add_argument("--eval", action="store_true",
                   help="also report pixel PSNR against the FP32 model on the evaluation prompts")
    a = p.parse_args(argv)
    # Fixed thread count: float reductions (hence the Hessians, hence codes) can depend on it.
    torch.set_num_threads(2)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model, table = sample.load_model(HERE), PromptTable()
    qs, qmodel = quantize_model(model, table, a.damp, log)
    path = os.path.join(a.out, "model.safetensors")
    write(path, qs, model, a.damp)
    verify(path, qs, qmodel)
    log(f"wrote {path}: {len(qs)} linears, {os.path.getsize(path) / 2**20:.2f} MiB, verified")
    if a.eval:
        psnr = pixel_psnr(model, qmodel, table)
        log("pixel PSNR vs FP32: " + ", ".join(f"{t} {v:.2f} dB" for t, v in zip(EVAL_PROMPTS, psnr))
            + f"; mean {np.mean(psnr):.2f} dB")


if __name__ == "__main__":
    main()
