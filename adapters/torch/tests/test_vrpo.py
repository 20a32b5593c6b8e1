"""slipstream_torch.training.vrpo on tiny random models (real torch, CPU, float64): the ELBO estimator against
exact expectations, the allocations, antithetic sampling, and the DPO-E loss's gradients."""

import itertools
import math

import pytest
import torch
import torch.nn as nn

from slipstream_torch.training import vrpo

V, MASK = 7, 7  # vocabulary 0..6 and the mask id after it


class ContextFree(nn.Module):
    """Per-position logits that ignore the input: its ELBO's expectation is exactly sum_i log q_i(y_i)."""

    def __init__(self, length, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(length, V, generator=g, dtype=torch.float64))

    def forward(self, ids):
        return self.table.expand(ids.shape[0], -1, -1)


class Tiny(nn.Module):
    """A one-layer bidirectional transformer: predictions depend on which tokens are masked."""

    def __init__(self, length, seed=0, d=8):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(V + 1, d)
        self.pos = nn.Parameter(torch.randn(length, d))
        self.layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, V)
        self.double().eval()

    def forward(self, ids):
        return self.head(self.layer(self.embed(ids) + self.pos))


def per_draw_estimates(model, ids, eligible, n, schedule, eps, seed=0):
    """n independent one-draw ELBO estimates of one sequence, as one batch."""
    g = torch.Generator().manual_seed(seed)
    draw = vrpo.draw_masks(eligible.expand(n, -1), 1, 1, generator=g, schedule=schedule, eps=eps)
    with torch.no_grad():
        return vrpo.elbo(model, ids.expand(n, -1), draw, MASK)


def assert_unbiased(est, exact):
    # 5 standard errors: a false alarm about once in 3.5 million runs with a fixed seed, i.e. never
    se = est.std().item() / math.sqrt(est.numel())
    assert abs(est.mean().item() - exact) < 5 * se, (est.mean().item(), exact, se)
    assert se < 0.05 * abs(exact)  # the check has teeth: the bound is tight against the value


@pytest.mark.parametrize("schedule", vrpo.SCHEDULES)
def test_elbo_of_a_context_free_model_is_unbiased_for_its_exact_log_likelihood(schedule):
    length = 9
    model = ContextFree(length)
    ids = torch.randint(0, V, (1, length), generator=torch.Generator().manual_seed(3))
    eligible = torch.tensor([[False, False] + [True] * 6 + [False]])  # prompt of 2, one padding slot
    logq = torch.log_softmax(model.table.detach(), -1).gather(-1, ids[0, :, None]).squeeze(-1)
    exact = logq[eligible[0]].sum().item()
    assert_unbiased(per_draw_estimates(model, ids, eligible, 20000, schedule, eps=1e-2), exact)


def exact_elbo(model, ids, eligible, schedule, eps):
    """E over the schedule of w * masked log-probs, by enumerating every mask of the eligible positions."""
    pos = eligible[0].nonzero().flatten().tolist()
    n = len(pos)
    total = 0.0
    for k in range(1, n + 1):
        if schedule == "discrete":
            # P(l = k) * P(this k-subset) * weight n/k
            coef = (1 / n) * (1 / math.comb(n, k)) * (n / k)
        else:
            # int_{eps}^{1} p^k (1-p)^(n-k) * (1/p) dp / (1 - eps), expanded binomially and integrated exactly
            coef = sum(math.comb(n - k, j) * (-1) ** j * (1 - eps ** (k + j)) / (k + j) for j in range(n - k + 1))
            coef /= 1 - eps
        for subset in itertools.combinations(pos, k):
            noisy = ids.clone()
            noisy[0, list(subset)] = MASK
            with torch.no_grad():
                logp = torch.log_softmax(model(noisy), -1)[0]
            total += coef * sum(logp[i, ids[0, i]].item() for i in subset)
    return total


@pytest.mark.parametrize("schedule", vrpo.SCHEDULES)
def test_elbo_of_a_bidirectional_transformer_is_unbiased_against_enumeration(schedule):
    length = 7
    model = Tiny(length)
    ids = torch.randint(0, V, (1, length), generator=torch.Generator().manual_seed(5))
    eligible = torch.tensor([[False] + [True] * 5 + [False]])
    exact = exact_elbo(model, ids, eligible, schedule, eps=1e-2)
    assert_unbiased(per_draw_estimates(model, ids, eligible, 20000, schedule, eps=1e-2, seed=1), exact)


def test_select_protocol_gives_the_same_elbo_as_full_logits():
    length = 6
    full = Tiny(length)

    class Selecting(nn.Module):
        accepts_select = True

        def forward(self, ids, select):
            return full(ids)[select]

    ids = torch.randint(0, V, (3, length))
    draw = vrpo.draw_masks(torch.ones(3, length, dtype=torch.bool), 4, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(vrpo.elbo(Selecting(), ids, draw, MASK), vrpo.elbo(full, ids, draw, MASK),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("schedule", vrpo.SCHEDULES)
def test_optimal_allocation_spends_the_budget_on_timesteps_and_naive_on_masks(schedule):
    assert vrpo.allocate(8, "optimal") == (8, 1)
    assert vrpo.allocate(8, "naive") == (1, 8)
    eligible = torch.ones(4, 30, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    opt = vrpo.draw_pair(eligible, eligible, budget=8, strategy="optimal", generator=g, schedule=schedule).policy_w
    naive = vrpo.draw_pair(eligible, eligible, budget=8, strategy="naive", generator=g, schedule=schedule).policy_w
    assert opt.mask.shape == naive.mask.shape == (4, 8, 30)
    assert (opt.n_t, opt.n_y, naive.n_t, naive.n_y) == (8, 1, 1, 8)
    # one timestep per draw: weights vary across draws; naive: one timestep shared by all 8 masks
    assert all(len(set(row.tolist())) > 1 for row in opt.weight)
    assert all(len(set(row.tolist())) == 1 for row in naive.weight)
    assert not torch.equal(naive.mask[:, 0], naive.mask[:, 1])


def test_discrete_schedule_masks_exactly_l_eligible_tokens():
    eligible = torch.zeros(5, 12, dtype=torch.bool)
    eligible[:, 3:10] = True
    d = vrpo.draw_masks(eligible, 16, 2, generator=torch.Generator().manual_seed(0), schedule="discrete")
    counts = d.mask.sum(-1)
    assert (d.mask & ~eligible[:, None]).sum() == 0
    assert (counts >= 1).all() and (counts <= 7).all()
    torch.testing.assert_close(d.weight, 7 / counts.float(), rtol=1e-6, atol=0)


class Recorder(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, ids):
        self.seen.append(ids.clone())
        return self.inner(ids)


def pair_batch(length=8, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    eligible = torch.ones(b, length, dtype=torch.bool)
    eligible[:, :2] = False
    return torch.randint(0, V, (b, length), generator=g), torch.randint(0, V, (b, length), generator=g), eligible


def test_antithetic_sampling_feeds_policy_and_reference_the_same_noise_and_cancels_when_they_are_equal():
    chosen, rejected, eligible = pair_batch()
    model = Tiny(8)
    pol, ref = Recorder(model), Recorder(model)
    draws = vrpo.draw_pair(eligible, eligible, budget=4, antithetic=True, generator=torch.Generator().manual_seed(0))
    assert draws.policy_w is draws.ref_w and draws.policy_l is draws.ref_l
    score = vrpo.preference_score(pol, ref, chosen, rejected, draws, mask_id=MASK, beta=0.5)
    assert len(pol.seen) == len(ref.seen) == 2
    for a, b in zip(pol.seen, ref.seen):
        assert torch.equal(a, b)  # same timesteps, same masked sequences
    # zero up to rounding: torch may pick a different kernel for the no_grad reference pass
    assert score.abs().max() < 1e-12

    # independent noise: the same model no longer cancels, so the score has variance of its own
    g = torch.Generator().manual_seed(1)
    scores = torch.stack([vrpo.preference_score(model, model, chosen, rejected,
                                                vrpo.draw_pair(eligible, eligible, budget=4, antithetic=False,
                                                               generator=g), mask_id=MASK, beta=0.5).detach()
                          for _ in range(20)])
    assert (scores.var(0) > 1e-4).all()


def test_dpo_loss_gradient_reaches_the_policy_only():
    chosen, rejected, eligible = pair_batch()
    policy, reference = Tiny(8, seed=1), Tiny(8, seed=2)
    draws = vrpo.draw_pair(eligible, eligible, budget=2, generator=torch.Generator().manual_seed(0))
    loss, score = vrpo.dpo_elbo_loss(policy, reference, chosen, rejected, draws, mask_id=MASK, beta=0.1)
    loss.backward()
    assert not score.requires_grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    assert all(p.grad is None for p in reference.parameters())


def test_dpo_loss_passes_gradcheck_with_fixed_masks():
    length, d = 6, 4
    chosen, rejected, eligible = pair_batch(length, b=2, seed=4)
    g = torch.Generator().manual_seed(9)
    draws = vrpo.draw_pair(eligible, eligible, budget=3, antithetic=False, generator=g)
    ref_e = torch.randn(V + 1, d, dtype=torch.float64, generator=g)
    ref_w = torch.randn(d, V, dtype=torch.float64, generator=g)

    def model(emb, head):
        # token embedding plus the mean over the sequence: bidirectional context, small enough for gradcheck
        def f(ids):
            h = emb[ids]
            return torch.tanh(h + h.mean(1, keepdim=True)) @ head
        return f

    def loss(emb, head):
        return vrpo.dpo_elbo_loss(model(emb, head), model(ref_e, ref_w), chosen, rejected, draws,
                                  mask_id=MASK, beta=0.7)[0]

    emb = torch.randn(V + 1, d, dtype=torch.float64, generator=g, requires_grad=True)
    head = torch.randn(d, V, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(loss, (emb, head), eps=1e-6, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="budget"):
        vrpo.allocate(0, "optimal")
    with pytest.raises(ValueError, match="strategy"):
        vrpo.allocate(4, "greedy")
    with pytest.raises(ValueError, match="schedule"):
        vrpo.draw_masks(torch.ones(1, 3, dtype=torch.bool), 1, 1, schedule="cosine")
    with pytest.raises(ValueError, match="eligible"):
        vrpo.draw_masks(torch.ones(1, 3), 1, 1)
