"""Writes bench/vrpo.md: VRPO's preference-score variance by allocation and one DPO-with-ELBO run, on mdlm-mini.

    .venv/bin/python bench/vrpo/bench.py            # CPU, about 15 minutes on a busy 2-core machine

Needs models/mdlm-mini/model.safetensors (models/mdlm-mini/train.py) and the local GCIDE corpus (pairs come from it).
Order: (1) held-out preference accuracy of the pretrained model; (2) DPO-E training of a copy against the frozen
pretrained reference (optimal allocation + antithetic); (3) accuracy after; (4) the variance of the preference score
with the trained policy against the reference, since with policy == reference antithetic sampling is trivially exact.
Never asserts.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models" / "mdlm-mini"))
sys.path.insert(0, str(ROOT / "adapters" / "torch"))

import mdlm  # noqa: E402
from slipstream_torch.training import vrpo  # noqa: E402


def chunks(n, size):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def elbo_batched(model, ids, draw, mask_id, rows=32):
    """vrpo.elbo over row chunks (the masked copies of 32 sequences at a time) to bound memory."""
    out = []
    for s in chunks(ids.shape[0], rows):
        out.append(vrpo.elbo(model, ids[s], vrpo.MaskDraw(draw.mask[s], draw.weight[s], draw.n_t, draw.n_y), mask_id))
    return torch.cat(out)


@torch.no_grad()
def ranking_accuracy(model, pairs, mask_id, draws_per_seq, seed):
    """Share of pairs with ELBO(y_w) > ELBO(y_l), both estimated with the same seed before and after training."""
    cw, cl, ew, el = pairs
    g = torch.Generator().manual_seed(seed)
    dw = vrpo.draw_masks(ew, draws_per_seq, 1, generator=g, schedule="discrete")
    dl = vrpo.draw_masks(el, draws_per_seq, 1, generator=g, schedule="discrete")
    bw, bl = elbo_batched(model, cw, dw, mask_id), elbo_batched(model, cl, dl, mask_id)
    return (bw > bl).float().mean().item(), (bw - bl).mean().item()


@torch.no_grad()
def held_out_dpo(policy, ref, pairs, mask_id, beta, budget, seed):
    """Held-out DPO-E loss and implicit-reward accuracy (score > 0), optimal allocation + antithetic."""
    cw, cl, ew, el = pairs
    g = torch.Generator().manual_seed(seed)
    scores = []
    for s in chunks(cw.shape[0], 16):
        d = vrpo.draw_pair(ew[s], el[s], budget=budget, antithetic=True, generator=g)
        scores.append(vrpo.preference_score(policy, ref, cw[s], cl[s], d, mask_id=mask_id, beta=beta))
    score = torch.cat(scores)
    return -torch.nn.functional.logsigmoid(score).mean().item(), (score > 0).float().mean().item()


def per_draw_terms(model, ids, draw, mask_id):
    """The weighted masked log-prob of every single draw [B, K] (the ELBO estimate is their mean)."""
    b, k, length = draw.mask.shape
    flat = vrpo.MaskDraw(draw.mask.reshape(b * k, 1, length), draw.weight.reshape(b * k, 1), 1, 1)
    rep = ids[:, None, :].expand(b, k, length).reshape(b * k, length)
    return elbo_batched(model, rep, flat, mask_id, rows=256).view(b, k)


@torch.no_grad()
def variance_study(policy, ref, pairs, mask_id, budgets, repeats, seed, schedule):
    """Per-pair variance of the bracket (B_pi(y_w) - B_ref(y_w)) - (B_pi(y_l) - B_ref(y_l)) across estimator draws.

    Optimal allocation draws are i.i.d. single-timestep draws, so one pool of D = repeats * max(budget) of them per
    response, scored by both models on two independent sets A and B, gives every budget's estimates by chunking:
    antithetic = chunk means of (pi_A - ref_A); independent = chunk mean of pi_A - chunk mean of ref_B.
    Naive draws share a timestep within an estimate, so each budget gets its own draws (policy on C, ref on D),
    as many estimates as the optimal rows: a heavy-tailed sample variance must not be compared across sample sizes.
    """
    cw, cl, ew, el = pairs
    g = torch.Generator().manual_seed(seed)
    pool = repeats * max(budgets)
    terms = {}
    for name, ids, elig in (("w", cw, ew), ("l", cl, el)):
        a = vrpo.draw_masks(elig, pool, 1, generator=g, schedule=schedule)
        b = vrpo.draw_masks(elig, pool, 1, generator=g, schedule=schedule)
        terms[name] = {"pA": per_draw_terms(policy, ids, a, mask_id), "rA": per_draw_terms(ref, ids, a, mask_id),
                       "rB": per_draw_terms(ref, ids, b, mask_id)}
    out = {}
    for n in budgets:
        k = pool // n  # estimates per pair at this budget

        def est(x):  # [P, pool] -> [P, k] chunk means
            return x[:, : k * n].reshape(x.shape[0], k, n).mean(-1)

        tw, tl = terms["w"], terms["l"]
        anti = (est(tw["pA"] - tw["rA"])) - (est(tl["pA"] - tl["rA"]))
        indep = (est(tw["pA"]) - est(tw["rB"])) - (est(tl["pA"]) - est(tl["rB"]))
        naive, groups = [], []
        for ids, elig in ((cw, ew), (cl, el)):
            c = vrpo.draw_masks(elig, k, n, generator=g, schedule=schedule)
            d = vrpo.draw_masks(elig, k, n, generator=g, schedule=schedule)
            gp, gr = grouped_terms(policy, ids, c, mask_id, n), grouped_terms(ref, ids, d, mask_id, n)
            naive.append(gp.mean(-1) - gr.mean(-1))
            groups += [gp, gr]
        naive = naive[0] - naive[1]
        # one-way ANOVA on the naive draws (n masks share a timestep): the mask part E_t[Var(X|t)] and the
        # timestep part Var_t(E[X|t]) of one draw's variance, summed over the four independent ELBOs
        within = sum(x.var(-1).mean(-1) for x in groups)
        between = sum(x.mean(-1).var(-1) for x in groups) - within / n
        out[n] = {"naive": naive.var(1).mean().item(), "optimal": indep.var(1).mean().item(),
                  "optimal + antithetic": anti.var(1).mean().item(),
                  "estimates per pair": (naive.shape[1], indep.shape[1], anti.shape[1]),
                  "mask part": within.mean().item(), "timestep part": between.mean().item()}
    return out


def grouped_terms(model, ids, draw, mask_id, n):
    """Per-draw terms of naive draws [P, estimates, n]: the n masks of one estimate share its timestep."""
    terms = per_draw_terms(model, ids, draw, mask_id)
    return terms.view(terms.shape[0], -1, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "vrpo.md")
    ap.add_argument("--model", type=Path, default=mdlm.HERE)
    ap.add_argument("--train-pairs", type=int, default=4096)
    ap.add_argument("--eval-pairs", type=int, default=128)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--var-pairs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--budgets", default="2,4,8")
    ap.add_argument("--threads", type=int, default=1)  # see models/mdlm-mini/train.py
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.time()

    tok = mdlm.tokenizer()
    ref = mdlm.load(args.model)
    ref.requires_grad_(False)
    c = ref.config
    policy = copy.deepcopy(ref).train()
    policy.requires_grad_(True)
    train_pairs = mdlm.pairs(tok, c, "train", args.train_pairs, seed=11)
    eval_pairs = mdlm.pairs(tok, c, "valid", args.eval_pairs, seed=12)

    acc_before, gap_before = ranking_accuracy(ref, eval_pairs, c.mask_id, 16, seed=21)
    print(f"before: ranking accuracy {acc_before:.3f}, mean ELBO gap {gap_before:.3f}", flush=True)

    opt = torch.optim.AdamW(policy.parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(31)
    log = []
    window = []
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, args.train_pairs, (args.batch,), generator=g)
        cw, cl, ew, el = (x[idx] for x in train_pairs)
        draws = vrpo.draw_pair(ew, el, budget=args.budget, strategy="optimal", antithetic=True, generator=g)
        loss, score = vrpo.dpo_elbo_loss(policy, ref, cw, cl, draws, mask_id=c.mask_id, beta=args.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        window.append((loss.item(), (score > 0).float().mean().item()))
        if step % 20 == 0:
            l, a = (sum(x) / len(window) for x in zip(*window))
            log.append((step, l, a, time.time() - t0))
            window = []
            print(f"step {step}: loss {l:.4f} reward acc {a:.3f} ({time.time() - t0:.0f} s)", flush=True)
    policy.eval()
    acc_after, gap_after = ranking_accuracy(policy, eval_pairs, c.mask_id, 16, seed=21)
    dpo_loss, reward_acc = held_out_dpo(policy, ref, eval_pairs, c.mask_id, args.beta, 8, seed=22)
    print(f"after: ranking accuracy {acc_after:.3f}, gap {gap_after:.3f}, held-out DPO loss {dpo_loss:.4f}, "
          f"reward acc {reward_acc:.3f}", flush=True)
    train_seconds = time.time() - t0

    budgets = [int(b) for b in args.budgets.split(",")]
    vp = tuple(x[: args.var_pairs] for x in eval_pairs)
    var = {}
    for schedule in vrpo.SCHEDULES:
        var[schedule] = variance_study(policy, ref, vp, c.mask_id, budgets, args.repeats, seed=41, schedule=schedule)
        print(schedule, var[schedule], flush=True)
    total = time.time() - t0
    write(args, c, log, acc_before, gap_before, acc_after, gap_after, dpo_loss, reward_acc, var, budgets,
          train_seconds, total)


def write(args, c, log, acc_before, gap_before, acc_after, gap_after, dpo_loss, reward_acc, var, budgets,
          train_seconds, total):
    lines = [
        "# VRPO on mdlm-mini: preference-score variance and a DPO-with-ELBO run",
        "",
        "<!-- generated by bench/vrpo/bench.py: do not edit by hand -->",
        "",
        f"Command: `.venv/bin/python bench/vrpo/bench.py` (defaults), CPU "
        f"({platform.processor() or platform.machine()}, torch threads: {args.threads}, machine shared), "
        f"torch {torch.__version__}; {total:.0f} s in all.",
        "Model: models/mdlm-mini (a 1.85M-parameter bidirectional masked diffusion LM, 48-token sequences). "
        "Method: slipstream_torch/training/vrpo.py; notes: shared/research/papers.md §4.",
        "",
        "Preference pairs (models/mdlm-mini/mdlm.py `pairs`): prompt x = a GCIDE headword and its pronunciation, "
        "chosen y_w = the entry's real text, rejected y_l = the same text with two transpositions of two different "
        "words among its first 24; responses truncated to fill 48 tokens. "
        f"Training pairs: {args.train_pairs} from train.txt (seed 11); held-out pairs: {args.eval_pairs} from "
        "valid.txt (seed 12), entries the model never saw.",
        "",
        "## Variance of the preference score across estimator draws",
        "",
        "Bracket (B_pi(y_w) - B_ref(y_w)) - (B_pi(y_l) - B_ref(y_l)), i.e. the score at beta = 1 (multiply by beta^2 "
        "for the DPO logit), nats^2. Policy: the DPO-trained model below; reference: the pretrained one. Per-pair "
        f"sample variance over independent estimates, averaged over the first {args.var_pairs} held-out pairs "
        "(seed 41). Budget n = masked copies per ELBO and model: naive n_t = 1, n_y = n; optimal n_t = n, n_y = 1; "
        "antithetic: the reference scores the policy's masked copies. Equal compute within a row. Estimates per "
        "pair: naive / optimal / optimal + antithetic.",
        "",
        "With the continuous schedule a draw at t near 0.001 weighs up to 1000 and the score's fourth moment grows "
        "like 1/eps^2, so its sample variances rest on a few rare draws and are noisy (optimal <= naive holds in "
        "expectation: Var = Var_t(E[X|t]) / n_t + E_t[Var(X|t)] / n); the discrete schedule's weights are at most L "
        "and its table is the steadier one.",
    ]
    titles = {"continuous": "Continuous schedule, the notes' (t ~ U(0.001, 1], each token masked with prob. t, "
                            "w = 1/t)",
              "discrete": "Discrete schedule, LLaDA's likelihood evaluation (l ~ U{1..L}, exactly l tokens masked, "
                          "w = L/l)"}
    for schedule, table in var.items():
        lines += ["", f"### {titles[schedule]}", "",
                  "| budget n | naive | optimal | optimal + antithetic | naive / optimal | optimal / antithetic "
                  "| estimates per pair |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for n in budgets:
            v = table[n]
            lines.append(f"| {n} | {v['naive']:.4g} | {v['optimal']:.4g} | {v['optimal + antithetic']:.4g} | "
                         f"{v['naive'] / v['optimal']:.2f}x | {v['optimal'] / v['optimal + antithetic']:.1f}x | "
                         f"{' / '.join(str(x) for x in v['estimates per pair'])} |")
        n = max(budgets)
        vt, vm = table[n]["timestep part"], table[n]["mask part"]
        pred = " / ".join(f"{(b * vt + vm) / (vt + vm):.2f}x" for b in budgets)
        lines += ["", f"Where the naive/optimal gap comes from (one-way ANOVA of the naive draws at n = {n}, "
                  f"summed over the four ELBOs, mean over pairs): mask part E_t[Var(X|t)] = {vm:.4g}, timestep part "
                  f"Var_t(E[X|t]) = {vt:.4g} ({100 * vt / (vt + vm):.1f}% of one draw's variance). Naive / optimal "
                  f"should then be (n Vt + Vm) / (Vt + Vm) = {pred} at n = "
                  f"{' / '.join(str(b) for b in budgets)}."]
    lines += [
        "",
        "## One DPO-E run (VRPO: optimal allocation + antithetic)",
        "",
        f"{args.steps} steps of {args.batch} pairs, ELBO budget n = {args.budget} per response and model, beta = "
        f"{args.beta}, AdamW lr {args.lr}, gradient clip 1.0; the reference frozen; {train_seconds:.0f} s including "
        "the evaluations.",
        "",
        "| step | training loss (mean of 20 steps) | training reward accuracy (score > 0) | seconds |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {l:.4f} | {a:.3f} | {t:.0f} |" for s, l, a, t in log]
    lines += [
        "",
        f"Held-out ({args.eval_pairs} pairs) | before | after",
        "---|---:|---:",
        f"ranking accuracy, ELBO(y_w) > ELBO(y_l) (16 discrete-schedule draws each, same noise before and after) | "
        f"{acc_before:.3f} | {acc_after:.3f}",
        f"mean ELBO(y_w) - ELBO(y_l), nats | {gap_before:.3f} | {gap_after:.3f}",
        f"DPO-E loss (n = 8, antithetic) | {math.log(2):.4f} (policy = reference) | {dpo_loss:.4f}",
        f"implicit-reward accuracy (score > 0) | - (score = 0) | {reward_acc:.3f}",
        "",
    ]
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
