"""VRPO (LLaDA 1.5): DPO for masked diffusion LMs with ELBOs in place of log-likelihoods.

A masked diffusion LM has no tractable log-likelihood, so DPO's log pi(y|x) is replaced by the ELBO

    B_pi(y|x) = E_t E_{y_t ~ q(.|t,y)} [ w(t) * sum_i 1[y_t^i = M] log pi(y^i | y_t, x) ]

estimated by Monte Carlo with n_t timesteps and n_y masks per timestep (budget n = n_t * n_y).
The DPO logit ("preference score") is beta * [(B_pi(y_w) - B_ref(y_w)) - (B_pi(y_l) - B_ref(y_l))];
the bias and variance of the loss and of its gradient are bounded by this score's variance
(papers.md §4, [S19][S21]), which VRPO lowers at no extra cost by

* optimal allocation: n_t = n, n_y = 1 (each draw gets its own timestep), against the naive n_t = 1, n_y = n;
* antithetic sampling: pi and ref score the same response under the very same timesteps and masks, so
  the noise they share cancels in B_pi - B_ref.

Two noise schedules. "continuous" is the notes' one: t ~ U(0, 1], each token masked with prob. t, w = 1/t.
Its variance grows like log(1/t_min), so t is floored LLaDA-style at p = eps + (1 - eps) u; the estimate stays
unbiased for the ELBO of that floored schedule. "discrete" is LLaDA's likelihood-evaluation variant: l ~ U{1..L},
exactly l of the L eligible tokens masked, w = L/l; its variance is finite.

Models are callables ids [N, L] (long) -> logits [N, L, V] (an object with `.logits` is accepted too).
Positions that `eligible` leaves False (prompt, padding) are never masked and never scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

SCHEDULES = ("continuous", "discrete")
STRATEGIES = ("naive", "optimal")


@dataclass(frozen=True)
class MaskDraw:
    """The Monte Carlo noise for one ELBO estimate per sequence: K = n_t * n_y draws."""

    mask: torch.Tensor    # [B, K, L] bool, True where the token is replaced by the mask id
    weight: torch.Tensor  # [B, K] the importance weight w of each draw (1/t or L/l)
    n_t: int
    n_y: int


def allocate(budget: int, strategy: str) -> tuple[int, int]:
    """(n_t, n_y) for a budget of n = n_t * n_y masked copies per sequence."""
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"expected a positive int for budget but received {budget!r}")
    if strategy == "optimal":
        return budget, 1
    if strategy == "naive":
        return 1, budget
    raise ValueError(f"expected one of {STRATEGIES} for strategy but received {strategy!r}")


def draw_masks(eligible: torch.Tensor, n_t: int, n_y: int, *, generator: torch.Generator | None = None,
               schedule: str = "continuous", eps: float = 1e-3) -> MaskDraw:
    """Draws n_t timesteps per sequence and n_y masks per timestep over the eligible positions [B, L]."""
    if eligible.dim() != 2 or eligible.dtype != torch.bool:
        raise ValueError("expected a [B, L] bool tensor for eligible but received "
                         f"{tuple(eligible.shape)} {eligible.dtype}")
    if schedule not in SCHEDULES:
        raise ValueError(f"expected one of {SCHEDULES} for schedule but received {schedule!r}")
    b, length = eligible.shape
    dev = eligible.device
    k = n_t * n_y
    u = torch.rand(b, k, length, generator=generator, device=dev)
    if schedule == "continuous":
        t = eps + (1.0 - eps) * (1.0 - torch.rand(b, n_t, generator=generator, device=dev))  # (eps, 1]
        t = t.repeat_interleave(n_y, dim=1)                                                  # [B, K]
        mask = (u < t[..., None]) & eligible[:, None, :]
        weight = 1.0 / t
    else:
        count = eligible.sum(-1, keepdim=True).clamp_min(1)                                  # [B, 1]
        l = (torch.rand(b, n_t, generator=generator, device=dev) * count).floor().long() + 1
        l = l.clamp_max(count).repeat_interleave(n_y, dim=1)                                 # [B, K]
        # the l smallest uniforms among the eligible positions: a uniformly random l-subset
        u = u.masked_fill(~eligible[:, None, :], 2.0)
        rank = u.argsort(-1).argsort(-1)
        mask = (rank < l[..., None]) & eligible[:, None, :]
        weight = count.to(u.dtype) / l.to(u.dtype)
    return MaskDraw(mask=mask, weight=weight, n_t=n_t, n_y=n_y)


def _masked_log_probs(model: Callable, noisy: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log pi(target_i | noisy) at the masked positions, flattened in mask order [M]."""
    if getattr(model, "accepts_select", False):
        # the head and the softmax only where a token is scored: half of the positions on average
        logits = model(noisy, select=mask)
    else:
        out = model(noisy)
        logits = getattr(out, "logits", out)[mask]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # sums of many log-probs times weights up to 1/eps lose too much in half precision
    return torch.log_softmax(logits, -1).gather(-1, target[mask][:, None]).squeeze(-1)


def elbo(model: Callable, ids: torch.Tensor, draw: MaskDraw, mask_id: int) -> torch.Tensor:
    """The ELBO estimate of each sequence [B] under the given noise: mean over draws of w * masked log-probs.

    A model that sets `accepts_select = True` is called as model(ids, select=mask [N, L] bool) and returns the
    logits of the selected positions only [M, V], in row-major order.
    """
    b, k, length = draw.mask.shape
    if ids.shape != (b, length):
        raise ValueError(f"expected ids of shape {(b, length)} for the draw but received {tuple(ids.shape)}")
    target = ids[:, None, :].expand(b, k, length).reshape(b * k, length)
    mask = draw.mask.reshape(b * k, length)
    noisy = torch.where(mask, torch.full_like(target, mask_id), target)
    logp = _masked_log_probs(model, noisy, target, mask)
    per_pos = torch.zeros(b * k, length, dtype=logp.dtype, device=logp.device).masked_scatter(mask, logp)
    per_draw = per_pos.sum(-1).view(b, k) * draw.weight.to(logp.dtype)
    return per_draw.mean(-1)


@dataclass(frozen=True)
class Draws:
    """The noise behind one preference score: per response, the policy's draw and the reference's."""

    policy_w: MaskDraw
    ref_w: MaskDraw
    policy_l: MaskDraw
    ref_l: MaskDraw


def draw_pair(eligible_w: torch.Tensor, eligible_l: torch.Tensor, *, budget: int, strategy: str = "optimal",
              antithetic: bool = True, generator: torch.Generator | None = None, schedule: str = "continuous",
              eps: float = 1e-3) -> Draws:
    """Noise for one preference score. Antithetic: ref reuses the policy's timesteps and masks per response."""
    n_t, n_y = allocate(budget, strategy)

    def one(e):
        return draw_masks(e, n_t, n_y, generator=generator, schedule=schedule, eps=eps)

    pw, pl = one(eligible_w), one(eligible_l)
    if antithetic:
        return Draws(pw, pw, pl, pl)
    return Draws(pw, one(eligible_w), pl, one(eligible_l))


def preference_score(policy: Callable, reference: Callable, chosen: torch.Tensor, rejected: torch.Tensor,
                     draws: Draws, *, mask_id: int, beta: float) -> torch.Tensor:
    """beta * [(B_pi(y_w) - B_ref(y_w)) - (B_pi(y_l) - B_ref(y_l))], one per pair [B].

    The reference runs under no_grad: it is frozen, and DPO's gradient must reach the policy only.
    """
    with torch.no_grad():
        ref_w = elbo(reference, chosen, draws.ref_w, mask_id)
        ref_l = elbo(reference, rejected, draws.ref_l, mask_id)
    pol_w = elbo(policy, chosen, draws.policy_w, mask_id)
    pol_l = elbo(policy, rejected, draws.policy_l, mask_id)
    return beta * ((pol_w - ref_w) - (pol_l - ref_l))


def dpo_elbo_loss(policy: Callable, reference: Callable, chosen: torch.Tensor, rejected: torch.Tensor,
                  draws: Draws, *, mask_id: int, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """VRPO's DPO-E loss, -mean log sigmoid(score), and the scores [B] (detached) for logging."""
    score = preference_score(policy, reference, chosen, rejected, draws, mask_id=mask_id, beta=beta)
    return -F.logsigmoid(score).mean(), score.detach()
