"""The attention fine-tuning recipes of bench/training/sparse_finetune.py (issue #8 item 2) on a tiny
random wan-mini-shaped model: 2 blocks of one 128-wide head, 2 x 4 x 4 = 32 tokens in 8 x 4 tiles
(4 x 8 tiles per head), real torch and libslipstream on the CPU."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("sparse_finetune", ROOT / "bench" / "training" / "sparse_finetune.py")
sf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sf)  # puts models/wan-mini on sys.path
from model import WanMini  # noqa: E402

BQ, BK = 8, 4


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """As in test_training_attention.py: tiny shapes, and torch's threads would contend with
    libslipstream's pool on a 2-core runner."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny():
    torch.manual_seed(0)
    m = WanMini(dim=128, ffn_dim=256, num_layers=2, text_dim=32, freq_dim=32)
    # adaLN-Zero starts the time projection and the output at zero: the velocity would be 0 and no
    # gradient would reach the blocks, so give them trained-like random weights.
    with torch.no_grad():
        for lin in (m.time_projection[1], m.head.head):
            torch.nn.init.xavier_uniform_(lin.weight)
    return m.eval().requires_grad_(False)


def _batch(seed=1, n=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, 2, 8, 8, generator=g)
    return x, torch.rand(n, generator=g) * 1000, torch.randn(n, 8, 32, generator=g)


def _self_attn_names(model):
    return {f"blocks.{i}.self_attn.{n}" for i, blk in enumerate(model.blocks) for n, _ in blk.self_attn.named_parameters()}


def test_all_ones_mask_student_is_the_dense_model():
    """Every tile kept: the block-sparse student's output and its self-attention gradients are the
    dense model's. Native FP32 attention against torch's FP32 SDPA, both summing 32 keys, through
    2 blocks: 1e-5 relative covers it (measured ~1e-7)."""
    teacher = _tiny()
    ones = torch.ones(4, 8, dtype=torch.bool)
    student = sf.make_student(teacher, lambda: sf.SpargeKernel(mask=ones, block_q=BQ, block_k=BK))
    dense = sf.make_student(teacher, sf.DenseKernel)  # same names and trainable set, SDPA inside
    x, t, ctx = _batch()
    outs = []
    for m in (student, dense):
        sf.trainable_groups(m, 1e-3, 1e-3)
        out = m(x, t, ctx)
        out.square().mean().backward()
        outs.append((out.detach(), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}))
    with torch.no_grad():
        ref = teacher(x, t, ctx)
    assert (outs[1][0] - ref).abs().max() == 0  # DenseKernel is model.Attention's own math
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    assert rel(outs[0][0], ref) < 1e-5
    assert outs[0][1].keys() == outs[1][1].keys() == _self_attn_names(student)
    for name, g in outs[0][1].items():
        assert rel(g, outs[1][1][name]) < 1e-5, name
    assert student.blocks[0].self_attn.kernel.kept == student.blocks[0].self_attn.kernel.total > 0


@pytest.mark.parametrize("recipe", ["sparge", "sla2"])
def test_distillation_steps_lower_the_loss_and_train_only_what_they_should(recipe, tmp_path):
    """Three distillation steps on one batch against the dense teacher: the loss falls, every
    self-attention weight (and SLA2's router, α and projection) gets a nonzero gradient, and no
    other parameter gets one."""
    teacher = _tiny()
    if recipe == "sparge":
        make = lambda: sf.SpargeKernel(topk=0.25, topp=0.0, block_q=BQ, block_k=BK)
    else:
        make = lambda: sf.SLA2Attention(1, 128, critical=0.25, block_q=BQ, block_k=BK, layout="NHD")
    student = sf.make_student(teacher, make)
    # SLA2's route is a hard Top-k of the router: a large first Adam step (every coordinate moves
    # by lr) can flip tiles between branches and raise the loss once, so its test steps are small.
    lr = 1e-3 if recipe == "sparge" else 1e-4
    groups = sf.trainable_groups(student, lr, lr)
    x, t, ctx = _batch(2, n=2)
    with torch.no_grad():
        target = teacher(x, t, ctx)
    batch = (x, t, ctx, None)
    losses = sf.distill(student, [batch] * 3, [target] * 3, groups, log=lambda *_: None)
    assert losses[2] < losses[1] < losses[0], losses
    with torch.no_grad():
        assert F.mse_loss(student(x, t, ctx), target).item() < losses[0]
    grads = {n for n, p in student.named_parameters() if p.grad is not None}
    assert grads == _self_attn_names(student)
    for n, p in student.named_parameters():
        if p.grad is not None:
            assert p.grad.abs().max() > 0, n
    if recipe == "sla2":
        assert {"blocks.0.self_attn.kernel.router_wq", "blocks.1.self_attn.kernel.alpha_logit",
                "blocks.1.self_attn.kernel.proj_w"} <= grads
        # --sla-out: what SlipstreamAttention's sparse-linear mode loads computes each trained block's SLA2.
        from slipstream_torch import sla2
        path = tmp_path / "sla2.safetensors"
        sf.export_sla2(student, path, 0.25)
        cfg, blocks = sla2.load(path)
        assert (cfg.critical, cfg.block_q, cfg.block_k, sorted(blocks)) == (0.25, BQ, BK, [0, 1])
        g = torch.Generator().manual_seed(3)
        q, k, v = (torch.randn(1, 32, 1, 128, generator=g) for _ in range(3))
        kernel = student.blocks[1].self_attn.kernel
        with torch.no_grad():
            want = kernel(q, k, v)
        got = sla2.attention(q, k, v, blocks[1], cfg, layout="NHD")
        assert (got - want).abs().max().item() <= 32 * 2.0 ** -24 * want.abs().max().item() * 4
    else:
        k = student.blocks[0].self_attn.kernel
        assert 0 < k.kept < k.total  # the predicted mask dropped tiles


def test_topp_calibration_reaches_the_target():
    """The bisection keeps the largest Top-p whose sparsity is still at least the target, so it
    lands on the target or one mask step above it (here 2 · 4 · 8 tiles per layer and clip)."""
    teacher = _tiny()
    batches = [(*_batch(s), None) for s in (3, 4)]
    topk, topp, reached = sf.calibrate_topp(teacher, batches, 0.7, BQ, BK, iters=12)
    assert topk == pytest.approx(0.15) and 0 < topp < 1
    assert 0.7 <= reached < 0.7 + 0.1


def test_teacher_trajectories_are_the_samplers_states():
    """--data trajectories: the recorded states are the ones sample.generate visits (its final
    latent is reproduced bit for bit), each with both CFG branches and the teacher's velocities
    as targets; split_branches makes batch-1 examples of every (state, branch) pair."""
    import sample

    teacher = _tiny()
    contexts = [torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(s)) for s in (5, 6)]
    steps, cfg = 3, 5.0
    batches, targets, finals = sf.teacher_trajectories(teacher, contexts, [41, 42], steps, cfg, 2, 32)
    assert len(batches) == len(targets) == 2 * steps
    for ctx, seed, final in zip(contexts, [41, 42], finals):
        ref = sample.generate(teacher, ctx, seed, steps, cfg, 1.0, 2, 32)
        assert torch.equal(final, ref)
    sig = sample.sigmas(steps, 1.0)
    for i, ((x, t, ctx, _), v) in enumerate(zip(batches[:steps], targets[:steps])):
        assert torch.equal(x[0], x[1]) and torch.equal(ctx[0:1], contexts[0]) and ctx[1].abs().max() == 0
        assert t.tolist() == pytest.approx([sig[i] * 1000] * 2)
        with torch.no_grad():
            assert torch.equal(teacher(x, t, ctx), v)
    ex, vs = sf.split_branches(batches, targets, 2 * len(batches), seed=0)
    assert all(b[0].shape[0] == 1 and v.shape[0] == 1 for b, v in zip(ex, vs))
    # every (state, branch) pair exactly once: each is a distinct view into its state's batch
    assert len({b[0].data_ptr() for b in ex}) == 2 * len(batches)
    assert sum(b[2].abs().max().item() == 0 for b in ex) == len(batches)  # half unconditional


def test_cosine_schedule_falls_from_the_full_rate_to_zero():
    f = [sf.rate_factor("cosine", i, 10) for i in range(11)]
    assert f[0] == 1.0 and abs(f[5] - 0.5) < 1e-12 and f[10] == 0.0
    assert all(a > b for a, b in zip(f, f[1:]))
    assert [sf.rate_factor("none", i, 10) for i in (0, 9)] == [1.0, 1.0]
    with pytest.raises(ValueError, match="linear"):
        sf.rate_factor("linear", 0, 10)

