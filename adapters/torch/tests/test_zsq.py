"""slipstream_torch.zsq and the shapes-det mAP evaluator, on tiny random models (no training): the
VOC AP on cases computed by hand, W8A8 numerics against the native INT8 codec bit for bit,
synthesis lowering its objective, distillation QAT touching only the quantized model, and the
diffusion / LLM calibration collectors on toy callables."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from slipstream_torch import quant, zsq

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "models" / "shapes-det"))
import map_eval  # noqa: E402
import shapes  # noqa: E402


def tiny_detector(seed=0):
    torch.manual_seed(seed)
    m = shapes.ShapesDet(width=8)
    with torch.no_grad():  # non-trivial BN statistics, as a trained model has
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.1, 0.1)
    return m.eval()


# --- mAP@0.5 ------------------------------------------------------------------------------------

GT = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 0])),
      (np.array([[5, 5, 15, 15]], np.float32), np.array([0]))]


def test_perfect_detections_give_ap_one():
    dets = [(b, np.array([0.9, 0.8]), c) for b, c in GT[:1]] + [(GT[1][0], np.array([0.7]), GT[1][1])]
    m, aps = map_eval.mean_ap(dets, GT, num_classes=2)
    assert m == 1.0 and aps == [1.0, None]  # class 1 has no ground truth: left out of the mean


def test_a_false_positive_ranked_first_gives_the_voc_value():
    # Ranked: FP (0.95), TP, TP, TP. Precision 0, 1/2, 2/3, 3/4 at recall 0, 1/3, 2/3, 1; the
    # envelope is 3/4 everywhere, so AP = 3/4 (the raw curve's area would be 1/6 + 2/9 + 1/4).
    dets = [(np.array([[40, 40, 50, 50], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.95, 0.9, 0.8]),
             np.array([0, 0, 0])),
            (np.array([[5, 5, 15, 15]], np.float32), np.array([0.7]), np.array([0]))]
    assert map_eval.class_ap(dets, GT, 0) == pytest.approx(0.75, abs=1e-12)


def test_duplicates_misses_and_the_iou_threshold():
    # TP (0.9), the same box again (0.8: its ground truth is claimed, so a FP), a box at IoU
    # 81/100 (TP); the third ground truth is missed. Precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3;
    # the envelope gives AP = 1/3 * 1 + 1/3 * 2/3.
    dets = [(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [21, 21, 30, 30]], np.float32), np.array([0.9, 0.8, 0.7]),
             np.array([0, 0, 0])), (np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64))]
    assert map_eval.class_ap(dets, GT, 0) == pytest.approx(1 / 3 + 2 / 9, abs=1e-12)
    shifted = [(np.array([[0, 5, 10, 15]], np.float32), np.array([0.9]), np.array([0])), dets[1]]  # IoU 1/3
    assert map_eval.class_ap(shifted, GT, 0) == 0.0


# --- W8A8 numerics --------------------------------------------------------------------------------

def native(x: torch.Tensor, granularity: str) -> np.ndarray:
    x2 = x.reshape(x.shape[0], -1).numpy() if granularity == "row" else x.reshape(1, -1).numpy()
    return quant.dequantize(quant.quantize(x2, "INT8", granularity=granularity), x2.shape).reshape(x.shape)


def test_weights_match_the_native_row_codec_bit_for_bit():
    q = zsq.quantize_w8a8(tiny_detector())
    convs = [m for m in q.modules() if isinstance(m, zsq.W8A8Conv2d)]
    assert len(convs) == 7
    for m in convs:
        w = m.weight.detach()
        # Equal as floats: torch's round keeps the sign of a code of zero (-0.0), the codec's int8 has none.
        assert np.array_equal(zsq.int8_weight(w).numpy(), native(w, "row"))


def test_static_activations_match_the_native_tensor_codec_when_calibrated_on_the_same_tensor():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g) * 3
    x[0, 0, 0, :4] = torch.tensor([0.5, 1.5, 2.5, -2.5]) * (x.abs().max() / 127)  # ties after the division
    layer = zsq.W8A8Conv2d(nn.Conv2d(3, 4, 3, padding=1))
    zsq.calibrate(layer, [x])
    assert np.array_equal(layer.act(x).detach().numpy(), native(x, "tensor"))
    # Another input, clipped at the calibration range: codes saturate at +-127.
    y = layer.act(x * 2).detach()
    assert float(y.abs().max()) == pytest.approx(float(x.abs().max()), rel=1e-6)


def test_quantize_w8a8_folds_bn_and_leaves_the_model_alone():
    fp = tiny_detector()
    before = {k: v.clone() for k, v in fp.state_dict().items()}
    q = zsq.quantize_w8a8(fp)
    assert all(torch.equal(before[k], v) for k, v in fp.state_dict().items())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    assert q.zsq_features["backbone.0.0"] == "backbone.0.1" and q.zsq_features["head"] == "head"
    x = torch.rand(2, 3, 64, 64)
    zsq.calibrate(q, [x])
    with torch.no_grad():
        a, b = fp(x)[0], q(x)[0]
    assert (a - b).abs().max() < 0.05 * a.abs().max()  # INT8 error, not a folding mistake


# --- synthesis and QAT ----------------------------------------------------------------------------

def test_synthesis_lowers_its_objective_and_keeps_pixels_in_range():
    model = tiny_detector()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    labels = zsq.sample_box_labels(4, 64, 3, min_side=8, max_side=26, generator=g)
    x, _, hist = zsq.synthesize(model, labels, task_loss=shapes.detection_loss, encode_targets=shapes.encode_targets,
                                image_shape=(3, 64, 64), steps=12, lr=0.05, generator=g)
    assert hist[-1] < hist[0]
    assert x.shape == (4, 3, 64, 64) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_box_resampling_adds_confident_new_boxes_and_drops_unfound_ones():
    labels = [(np.array([[0, 0, 10, 10], [30, 30, 40, 40]], np.float32), np.array([0, 1]))]
    dets = [(np.array([[1, 1, 10, 10], [50, 50, 60, 60], [20, 0, 60, 60], [0, 40, 10, 50]], np.float32),
             np.array([0.9, 0.5, 0.9, 0.1]), np.array([0, 2, 1, 0]))]
    [(boxes, classes)], counts = zsq.resample_boxes(labels, dets, [2], 64)
    # Kept: [0..10] (found at IoU 0.81); dropped: [30..40] (best IoU 100/2400); added, by score:
    # [20..60] (0.9, area 0.59) then [50..60] (0.5, area 0.024); skipped: [1..10] (a duplicate of
    # a target) and [0, 40..] (0.1 < 0.2).
    assert boxes.tolist() == [[0, 0, 10, 10], [20, 0, 60, 60], [50, 50, 60, 60]] and classes.tolist() == [0, 1, 2]
    assert counts == [1]
    [(capped, _)], _ = zsq.resample_boxes(labels, dets, [2], 64, max_targets=2)
    assert capped.tolist() == [[0, 0, 10, 10], [20, 0, 60, 60]]


def test_distillation_qat_updates_only_the_quantized_model():
    teacher = tiny_detector()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    q = zsq.calibrate(zsq.quantize_w8a8(teacher), [torch.rand(4, 3, 64, 64)])
    q_before = {k: v.clone() for k, v in q.state_dict().items()}
    hist = zsq.distill_qat(q, teacher, torch.rand(8, 3, 64, 64), steps=3, batch=4, lr=1e-2,
                           generator=torch.Generator().manual_seed(0))
    assert len(hist) == 3 and all(np.isfinite(hist))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    changed = [k for k, v in q.state_dict().items() if not torch.equal(q_before[k], v)]
    assert any(k.endswith("weight") for k in changed) and any(k.endswith("act.scale") for k in changed)


# --- other model kinds ----------------------------------------------------------------------------

def test_diffusion_inputs_come_from_the_trajectory_evenly_spaced():
    def sample(callback, generator):  # a toy 10-step sampler: x shrinks towards 0
        x = torch.randn(1, 4, generator=generator)
        for i, t in enumerate(torch.linspace(1, 0.1, 10).tolist()):
            callback(i, t, x, cond="c")
            x = x * 0.5

    got = zsq.diffusion_calibration_inputs(sample, 2, steps_per_trajectory=4, generator=torch.Generator().manual_seed(0))
    assert [d["step"] for d in got] == [0, 3, 6, 9] * 2 and got[0]["cond"] == "c"
    assert torch.allclose(got[1]["x"], got[0]["x"] * 0.125) and got[3]["t"] == pytest.approx(0.1)


def test_llm_inputs_are_the_models_own_continuations_of_a_random_first_token():
    def generate(prefix, n, generator):  # a toy "model": each next token is the previous + 1
        out = prefix
        for _ in range(n):
            out = torch.cat([out, (out[:, -1:] + 1) % 50], 1)
        return out

    seqs = zsq.llm_calibration_inputs(generate, 3, vocab_size=50, max_new_tokens=5, first_tokens=[7, 9],
                                      generator=torch.Generator().manual_seed(0))
    assert len(seqs) == 3 and all(s.shape == (6,) and int(s[0]) in (7, 9) for s in seqs)
    assert all(torch.equal(s, torch.arange(int(s[0]), int(s[0]) + 6)) for s in seqs)
    with pytest.raises(ValueError, match="starting with the prefix"):
        zsq.llm_calibration_inputs(lambda p, n, g: torch.zeros(1, 3, dtype=torch.long) + 99, 1, vocab_size=50,
                                   max_new_tokens=2)
