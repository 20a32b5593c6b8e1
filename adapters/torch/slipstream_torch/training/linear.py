"""NVFP4 training linear: TetraJet-v2's fully-quantized training numerics (papers.md 2.1) in torch.

    forward   y  = Q(x) @ Q(W).T (+ bias)        Q: double-block NVFP4 (NVFP4_TJ2), nearest-even
    backward  dX = Qs(dY S H) @ Qs(W.T S H).T    Qs: NVFP4_TJ2 with stochastic rounding, after a
              dW = Qs(dY.T S H) @ Qs(X.T S H).T  16-point Hadamard H and a random +-1 diagonal S
                                                 along each GEMM's reduction axis (they cancel)

The backward is the straight-through estimator: E[dX] = dY @ W and E[dW] = dY.T @ X over the
stochastic rounding, for any draw of S. Products are float32.

The codec is torch code with the native codec's float32 operations in the same order, so its values
are bit-identical to quant.dequantize(quant.quantize(x, "NVFP4_TJ2", ...)), stochastic draws included
(tests/test_training_linear.py checks both); it runs on any device and costs no host round trip.

- OsciReset (`OsciReset`): over a window, per weight D_q = sum |Q(W_k) - Q(W_k-1)| and
  D_w = sum |W_k - W_k-1|; a weight with D_q / D_w >= threshold oscillates between two grid points
  and its master value is set to Q(W), the centre of its current bin.
- OutControl (`OutControl`): per-input-channel L2 norms of x accumulated over a window; the top
  fraction of channels then goes MXFP8 (E4M3 elements, E8M0 scale per 32, see mxfp8) in the forward and dW
  GEMMs, the rest NVFP4; dX stays all NVFP4 (with the RHT).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..fakequant import hadamard

OUTER, INNER, MX_BLOCK, RHT = 128, 16, 32, 16
_INNER_GUARD = 2.0 ** -9  # the smallest E4M3 subnormal: what the codec stores for a zero inner scale
# (explicit mantissa bits, exponent of the smallest normal, largest magnitude), as element.h's Spec
_E2M1, _E4M3 = (1, 0, 6.0), (3, -6, 448.0)


# -- the native codec's counter-based draws (native/src/quant/rng.h) --------------------------------
# int64 tensors hold the uint64 words: multiplication wraps the same way, and a right shift is made
# logical by masking off the copies of the sign bit.
_M64 = (1 << 64) - 1


def _signed(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * _signed(0xBF58476D1CE4E5B9)
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * _signed(0x94D049BB133111EB)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def uniform01(seed: int, n: int, device=None) -> torch.Tensor:
    """The codec's stochastic-rounding draws of elements 0..n-1 for `seed`: float32 on a 2^-24 grid."""
    base = _mix64_int((seed & _M64) ^ 0x6A09E667F3BCC909)
    z = torch.arange(n, dtype=torch.int64, device=device) * _signed(0x9E3779B97F4A7C15) + _signed(base)
    return ((_mix64(z) >> 40) & 0xFFFFFF).to(torch.float32) * 2.0 ** -24


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (a layer's seed, a step, an operand), for independent draws."""
    h = 0x5851F42D4C957F2D
    for p in parts:
        h = _mix64_int((h + (p & _M64) * 0x9E3779B97F4A7C15) & _M64)
    return h >> 1


# -- codecs -----------------------------------------------------------------------------------------
def _pow2(e: torch.Tensor) -> torch.Tensor:
    """2^e for int32 e in [-126, 127], built from its bits so it is exact on every backend."""
    return ((e + 127) << 23).to(torch.int32).view(torch.float32)


def _round_magnitude(a: torch.Tensor, spec, u: Optional[torch.Tensor]) -> torch.Tensor:
    """|x| onto a small-float grid, element::round_magnitude: on the power-of-two quantum of a's
    binade, t = a / quantum is exact, then rint (ties to even) or floor(t + u); saturating."""
    mbits, emin, vmax = spec
    _, ex = torch.frexp(a)
    q = _pow2((ex - 1).clamp(emin, 127) - mbits)  # a == 0 gives ex 0: any quantum rounds it to 0
    t = a / q
    r = (torch.round(t) if u is None else torch.floor(t + u)) * q
    return r.clamp_max(vmax)


def _round_signed(v: torch.Tensor, spec, u) -> torch.Tensor:
    return torch.copysign(_round_magnitude(v.abs(), spec, u), v)


def _e2m1_signed(v: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
    """E2M1 rounding of v, the values of _round_signed(v, _E2M1, u) in fewer passes (the hot loop
    of training): the quantum of |v|'s binade (0.5 below 2, 1 below 4, else 2; past 8 both
    saturate) is clamp(|v|, 1, 4) truncated to a power of two by clearing its mantissa, halved."""
    a = v.abs()
    q = (a.clamp(1.0, 4.0).view(torch.int32) & -(1 << 23)).view(torch.float32) * 0.5
    if u is None:  # round-half-to-even is odd-symmetric: no need to split off the sign
        return (torch.round(v / q) * q).clamp_(-6.0, 6.0)
    return torch.copysign((torch.floor(a / q + u) * q).clamp_max_(6.0), v)


def _draws(seed: int, shape, device, exact: bool) -> torch.Tensor:
    """Stochastic-rounding draws: the codec's own (exact) or torch's generator seeded with `seed`
    (the same uniform distribution on a 2^-24 grid, ~10x cheaper on a CPU than the int64 hash)."""
    if exact:
        return uniform01(seed, math.prod(shape), device).view(shape)
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.rand(shape, generator=g, device=device)


def _check_rounding(rounding: str):
    if rounding not in ("nearest", "stochastic"):
        raise ValueError(f"expected 'nearest' or 'stochastic' for rounding, got {rounding!r}")


def nvfp4_tj2(x: torch.Tensor, rounding: str = "nearest", seed: int = 0, exact_draws: bool = True) -> torch.Tensor:
    """x through NVFP4_TJ2 and back (float32), bit-identical to the native codec with the same
    rounding and seed: S_o = amax_128 / 2688, S_i = RN_E4M3(amax_16 / (6 S_o)) (2^-9 if 0),
    element = E2M1(x / (S_o S_i)) * (S_o S_i). The last axis must be a multiple of 128.
    exact_draws=False takes stochastic draws from torch's generator instead (same distribution)."""
    _check_rounding(rounding)
    if x.dim() < 1 or x.shape[-1] % OUTER:
        raise ValueError(f"expected a last dimension divisible by 128 for x (NVFP4_TJ2 outer blocks), got {list(x.shape)}")
    x = x.detach().float().contiguous()
    b = x.view(*x.shape[:-1], -1, OUTER // INNER, INNER)
    u = _draws(seed, b.shape, x.device, exact_draws) if rounding == "stochastic" else None
    amax16 = b.abs().amax(-1, keepdim=True)
    so = amax16.amax(-2, keepdim=True) / 2688.0
    si = (amax16 / (so * 6.0)).clamp_max(448.0).to(torch.float8_e4m3fn).float()
    si = torch.where(so > 0, si, torch.zeros_like(si))
    si = torch.where(si == 0, torch.full_like(si, _INNER_GUARD), si)
    q = so * si
    # an all-zero 128-block (q = 0) has code +0: dividing by inf instead of 0 gives +-0, and adding
    # +0 there (-0 elsewhere, which changes nothing) turns a -0 into +0, all on the block scales
    zero = q == 0
    v = _e2m1_signed(b / torch.where(zero, math.inf, q), u) * q + torch.where(zero, 0.0, -0.0)
    return v.view(x.shape)


def mxfp8(x: torch.Tensor, rounding: str = "nearest", seed: int = 0, exact_draws: bool = True) -> torch.Tensor:
    """x through MXFP8 (E4M3 elements, one E8M0 scale 2^X per 32 along the last axis) and back
    (float32). X = ceil(log2(amax_32 / 448)), the no-clipping exponent, not OCP's
    floor(log2 amax) - 8, which saturates a block's top values by up to 12.5%: these channels are
    kept precisely because they are large. X is kept in [-126, 127] so 2^-X is a float32 normal
    (blocks below 2^-117 differ; they are zero in E4M3 either way)."""
    _check_rounding(rounding)
    if x.dim() < 1 or x.shape[-1] % MX_BLOCK:
        raise ValueError(f"expected a last dimension divisible by 32 for x (MXFP8 blocks), got {list(x.shape)}")
    x = x.detach().float().contiguous()
    b = x.view(*x.shape[:-1], -1, MX_BLOCK)
    m, ex = torch.frexp(b.abs().amax(-1, keepdim=True) / 448.0)  # = m 2^ex, m in [0.5, 1)
    xp = (ex - (m == 0.5).to(ex.dtype)).clamp(-126, 127)
    u = _draws(seed, b.shape, x.device, exact_draws) if rounding == "stochastic" else None
    return (_round_signed(b * _pow2(-xp), _E4M3, u) * _pow2(xp)).view(x.shape)


def rht_signs(n: int, seed: int, device=None) -> torch.Tensor:
    """The random +-1 diagonal of the 16-point random Hadamard transform (float32)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (n,), generator=g) * 2 - 1).to(device=device, dtype=torch.float32)


def _pad_last(t: torch.Tensor, multiple: int) -> torch.Tensor:
    extra = -t.shape[-1] % multiple
    return torch.nn.functional.pad(t, (0, extra)) if extra else t


def quantized_matmul(a: torch.Tensor, b: torch.Tensor, seed: int, rht: bool = True, codec=nvfp4_tj2,
                     exact_draws: bool = True) -> torch.Tensor:
    """a @ b.T (float32) for a [M, K], b [N, K], K the reduction axis: both operands are transformed
    by the same random Hadamard (if rht) and quantized with stochastic rounding and independent
    draws, so the expectation is the exact product. Zero padding of K to 128 changes no sum."""
    a, b = _pad_last(a.float(), OUTER), _pad_last(b.float(), OUTER)
    if rht:
        s = rht_signs(a.shape[-1], derive_seed(seed, 0), a.device)
        a, b = hadamard(a * s, RHT), hadamard(b * s, RHT)
    return (codec(a, "stochastic", derive_seed(seed, 1), exact_draws)
            @ codec(b, "stochastic", derive_seed(seed, 2), exact_draws).T)


# -- the autograd function ---------------------------------------------------------------------------
class _Config:
    """What a layer's forward hands to its backward, read at forward time."""

    def __init__(self, quantize: bool, rht: bool, mask: Optional[torch.Tensor], seed: int, exact_draws: bool):
        self.quantize, self.rht, self.mask, self.seed, self.exact = quantize, rht, mask, seed, exact_draws


def forward_quant(t: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """One forward operand [rows, K] dequantized (float32). With outlier channels the two partial
    GEMMs Q4(x_rest) Q4(W_rest).T + Q8(x_out) Q8(W_out).T have disjoint supports along K, so their
    sum is one GEMM of the merged operands. Masking by zeros, not gathering, keeps each channel in
    its own 16/128-block, so the NVFP4 part is exactly the codec applied to the masked tensor."""
    if mask is None:
        return nvfp4_tj2(t)
    t = t.detach().float()
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.where(mask, mxfp8(torch.where(mask, t, zero)), nvfp4_tj2(torch.where(mask, zero, t)))


class NVFP4LinearFunction(torch.autograd.Function):
    """y = x @ W.T + b with TetraJet-v2's quantized forward and backward (module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, cfg: _Config):
        x2 = x.reshape(-1, x.shape[-1])
        if cfg.quantize:
            xq, wq = forward_quant(x2, cfg.mask), forward_quant(weight, cfg.mask)
            y = (xq @ wq.T).to(x.dtype)
        else:
            y = x2 @ weight.T
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x2, weight)
        ctx.cfg, ctx.has_bias = cfg, bias is not None
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x2, w = ctx.saved_tensors
        cfg = ctx.cfg
        g2 = grad.reshape(-1, w.shape[0])
        dx = dw = db = None
        if not cfg.quantize:
            if ctx.needs_input_grad[0]:
                dx = g2 @ w
            if ctx.needs_input_grad[1]:
                dw = g2.T @ x2
        else:
            if ctx.needs_input_grad[0]:  # reduction over N; stays all NVFP4 (papers.md 2.1)
                dx = quantized_matmul(g2, w.T, derive_seed(cfg.seed, 1), cfg.rht, exact_draws=cfg.exact).to(x2.dtype)
            if ctx.needs_input_grad[1]:  # reduction over the tokens
                gt, xt = g2.T, x2.T
                dw = quantized_matmul(gt, xt, derive_seed(cfg.seed, 2), cfg.rht, exact_draws=cfg.exact)
                if cfg.mask is not None and bool(cfg.mask.any()):
                    dw[:, cfg.mask] = quantized_matmul(gt, xt[cfg.mask], derive_seed(cfg.seed, 3), cfg.rht, mxfp8,
                                                                     cfg.exact)
                dw = dw.to(w.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g2.sum(0)
        if dx is not None:
            dx = dx.reshape(*grad.shape[:-1], w.shape[1])
        return dx, dw, db, None


# -- the module --------------------------------------------------------------------------------------
def _positive_int(value, name: str, multiple: int = 1, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % multiple:
        what = f"a positive multiple of {multiple}" if multiple > 1 else "a positive int"
        raise ValueError(f"expected {what} for {name}{why}, got {value!r}")
    return value


class NVFP4Linear(nn.Module):
    """Drop-in nn.Linear trained with NVFP4 numerics. in_features must be a multiple of 128 (the
    NVFP4_TJ2 outer block along K); out_features and the token count are free (the backward pads
    its reduction axes with zeros). `quantize=False` gives the exact float product (for gradcheck
    and baselines); `rht=False` drops the backward Hadamard. Each forward uses fresh draws derived
    from `seed` and a step counter, so a run is reproducible; exact_draws=False takes them from
    torch's generator (faster on a CPU, no longer the native codec's draws bit for bit)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, quantize: bool = True,
                 rht: bool = True, seed: int = 0, exact_draws: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", OUTER, " (NVFP4_TJ2 outer blocks are 128 columns)")
        self.out_features = _positive_int(out_features, "out_features")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"expected a non-negative int for seed, got {seed!r}")
        self.quantize, self.rht, self.seed, self.calls = bool(quantize), bool(rht), seed, 0
        self.exact_draws = bool(exact_draws)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.register_buffer("outlier_mask", None)
        self._osc = None
        self._chan = None
        self.osci_last, self.osci_total = 0, 0
        self.reset_parameters()

    def reset_parameters(self):
        nn.Linear.reset_parameters(self)  # the same initialisation as nn.Linear

    @classmethod
    def from_linear(cls, linear: nn.Linear, **options) -> "NVFP4Linear":
        """A copy of `linear` (its weights, device, dtype) that trains in NVFP4."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"expected an nn.Linear for linear, got {type(linear).__name__}")
        w = linear.weight
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, device=w.device, dtype=w.dtype,
                **options)
        with torch.no_grad():
            m.weight.copy_(w)
            if linear.bias is not None:
                m.bias.copy_(linear.bias)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"expected a floating-point tensor for input, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected shape [..., {self.in_features}] for input (in_features), got {list(x.shape)}")
        if self._chan is not None and self.training:
            self._chan += x.detach().reshape(-1, self.in_features).float().norm(dim=0)
        cfg = _Config(self.quantize, self.rht, self.outlier_mask, derive_seed(self.seed, self.calls), self.exact_draws)
        self.calls += 1
        return NVFP4LinearFunction.apply(x, self.weight, self.bias, cfg)

    def quantized_operands(self, x: torch.Tensor):
        """(Q(x), Q(W)) as the forward multiplies them: float32, [tokens, K] and [N, K]."""
        return forward_quant(x.reshape(-1, self.in_features), self.outlier_mask), self.quantized_weight()

    def quantized_weight(self) -> torch.Tensor:
        return forward_quant(self.weight, self.outlier_mask)

    # OsciReset -----------------------------------------------------------------------------------
    def osci_begin(self):
        """Starts a detection window at the current weights."""
        w = self.weight.detach().float()
        q = self.quantized_weight()
        self._osc = {"w": w.clone(), "q": q, "dq": torch.zeros_like(w), "dw": torch.zeros_like(w)}

    def osci_observe(self):
        """Adds one optimizer step's movement of the master and the quantized weights."""
        if self._osc is None:
            raise RuntimeError("osci_observe: call osci_begin first")
        s, w, q = self._osc, self.weight.detach().float(), self.quantized_weight()
        s["dq"] += (q - s["q"]).abs()
        s["dw"] += (w - s["w"]).abs()
        s["w"], s["q"] = w.clone(), q

    def osci_detect(self, threshold: float) -> torch.Tensor:
        """The mask of weights with D_q / D_w >= threshold in the window so far (D_q > 0)."""
        if self._osc is None:
            raise RuntimeError("osci_detect: call osci_begin first")
        dq, dw = self._osc["dq"], self._osc["dw"]
        return (dq > 0) & (dq >= threshold * dw)  # the ratio without dividing by a zero D_w

    @torch.no_grad()
    def osci_reset(self, threshold: float, reset: bool = True) -> int:
        """Ends the window: oscillating weights go to their quantized value (their bin centre) if
        `reset`; returns how many oscillated (also in osci_last; osci_total sums the resets)."""
        mask = self.osci_detect(threshold)
        n = int(mask.sum())
        if reset and n:
            self.weight[mask] = self.quantized_weight()[mask].to(self.weight.dtype)
            self.osci_total += n
        self.osci_last, self._osc = n, None
        return n

    # OutControl ----------------------------------------------------------------------------------
    def outcontrol_begin(self):
        """Starts accumulating the L2 norm of each input channel over training forwards."""
        self._chan = torch.zeros(self.in_features, device=self.weight.device)

    def outcontrol_fix(self, fraction: float = 0.1, multiple: int = 1) -> torch.Tensor:
        """Fixes the top round(fraction * K) channels (rounded up to `multiple`: 128 in a real
        kernel) as the higher-precision set; returns their indices."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"expected a fraction in [0, 1] for fraction, got {fraction!r}")
        if self._chan is None:
            raise RuntimeError("outcontrol_fix: call outcontrol_begin first")
        n = min(self.in_features, -(-round(fraction * self.in_features) // multiple) * multiple)
        idx = torch.topk(self._chan, n).indices.sort().values
        mask = torch.zeros(self.in_features, dtype=torch.bool, device=self.weight.device)
        mask[idx] = True
        self.outlier_mask, self._chan = mask, None
        return idx

    def extra_repr(self) -> str:
        out = 0 if self.outlier_mask is None else int(self.outlier_mask.sum())
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"quantize={self.quantize}, rht={self.rht}, outlier_channels={out}")


def nvfp4_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, NVFP4Linear)]


class OsciReset:
    """TetraJet-v2's oscillation reset over a model's NVFP4Linear layers. Call step(it) after each
    optimizer step `it`: a window of `window` steps ends at every start + j * every (j >= 0), and
    the weights found oscillating there are reset (counted only, with reset=False). Paper (370M):
    threshold 8, window 50, every 400 from iteration 35,000 of 50,500."""

    def __init__(self, model: nn.Module, threshold: float = 8.0, window: int = 50, every: int = 400, start: int = 0,
                 reset: bool = True):
        self.layers = nvfp4_layers(model)
        if not self.layers:
            raise ValueError("expected a model with NVFP4Linear layers for model, got none")
        if not threshold > 0:
            raise ValueError(f"expected a positive threshold for threshold, got {threshold!r}")
        self.window = _positive_int(window, "window")
        self.every = _positive_int(every, "every")
        if self.window >= self.every:
            raise ValueError(f"expected window < every ({every}) for window, got {window}")
        self.threshold, self.start, self.reset = threshold, start, reset
        self.history = []  # (iteration, weights found oscillating)

    def step(self, iteration: int) -> Optional[int]:
        k = iteration - self.start
        phase = k % self.every
        if k >= -self.window and phase == self.every - self.window:
            for m in self.layers:
                m.osci_begin()
        elif k >= -self.window and self.layers[0]._osc is not None:
            for m in self.layers:
                m.osci_observe()
            if phase == 0:
                n = sum(m.osci_reset(self.threshold, self.reset) for m in self.layers)
                self.history.append((iteration, n))
                return n
        return None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.history)


class OutControl:
    """TetraJet-v2's static outlier-channel retention: per-channel norms accumulate over `window`
    training steps from `start`, then each layer's top `fraction` channels go MXFP8. Call step(it)
    before the forward of step `it`. Paper: start 501, window 50, fraction 0.1."""

    def __init__(self, model: nn.Module, start: int = 501, window: int = 50, fraction: float = 0.1, multiple: int = 1):
        self.layers = nvfp4_layers(model)
        if not self.layers:
            raise ValueError("expected a model with NVFP4Linear layers for model, got none")
        self.window, self.start = _positive_int(window, "window"), start
        self.fraction, self.multiple = fraction, _positive_int(multiple, "multiple")
        self.fixed = False

    def step(self, iteration: int):
        if iteration == self.start:
            for m in self.layers:
                m.outcontrol_begin()
        elif iteration == self.start + self.window:
            for m in self.layers:
                m.outcontrol_fix(self.fraction, self.multiple)
            self.fixed = True
