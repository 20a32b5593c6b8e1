"""W8A8 of shapes-det calibrated on real vs synthesised (zero-shot) images, and zero-shot +
distillation QAT: writes bench/zsq.md (do not edit it by hand) and bench/zsq/results.json.

    SLIPSTREAM_LIB=$PWD/build/Release/libslipstream.so .venv/bin/python bench/zsq/bench.py

CPU, one thread. Every row is scored by the same mAP@0.5 on the same held-out images.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
sys.path.insert(0, str(ROOT / "models" / "shapes-det"))
import map_eval  # noqa: E402
import shapes  # noqa: E402
import train as shapes_train  # noqa: E402
from slipstream_torch import zsq  # noqa: E402


def score(model, images, labels):
    m, aps = map_eval.mean_ap(shapes.detect(model, images), labels, len(shapes.CLASSES))
    return m, aps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--synth-steps", type=int, default=150)
    ap.add_argument("--resample-every", type=int, default=5)
    ap.add_argument("--max-targets", type=int, default=4, help="the task prior: at most 4 shapes an image")
    ap.add_argument("--synth-lr", type=float, default=0.2)
    ap.add_argument("--qat-steps", type=int, default=100)
    ap.add_argument("--qat-batch", type=int, default=32)
    ap.add_argument("--qat-lr", type=float, default=1e-4)
    ap.add_argument("--stress-bits", type=int, default=4, help="a second, narrower activation width")
    ap.add_argument("--out", default=str(ROOT / "bench"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    log = lambda s: print(s, flush=True)  # noqa: E731
    fp = shapes_train.load()
    ev_x, ev_y = shapes.make_set(a.eval, shapes.EVAL_SEED)
    real_x, _ = shapes.make_set(a.calib, shapes.CALIB_SEED)
    rows, times, qat_losses = [], {}, {}

    def add(name, model, calib, note):
        m, aps = score(model, ev_x, ev_y)
        rows.append({"config": name, "map50": m, "ap50": dict(zip(shapes.CLASSES, aps)), "calibration": calib,
                     "note": note})
        log(f"{name}: mAP@0.5 {m:.4f}")

    add("FP32", fp, "-", "the committed model")
    g = torch.Generator().manual_seed(0)
    noise_x = torch.rand(a.calib, 3, shapes.SIZE, shapes.SIZE, generator=g)
    for bits in (8, a.stress_bits):
        tag = "W8A8" if bits == 8 else f"W8A{bits} (stress)"
        q_real = zsq.calibrate(zsq.quantize_w8a8(fp, act_bits=bits), [real_x])
        add(f"{tag}, real calibration", q_real, f"{a.calib} held-out real images", "amax / qmax per activation")
        q_noise = zsq.calibrate(zsq.quantize_w8a8(fp, act_bits=bits), [noise_x])
        add(f"{tag}, uniform-noise calibration (control)", q_noise, f"{a.calib} noise images", "no synthesis")

    t0 = time.time()
    labels = zsq.sample_box_labels(a.calib, shapes.SIZE, len(shapes.CLASSES), min_side=shapes.MIN_SIDE,
                                   max_side=shapes.MAX_SIDE, generator=g)
    synth_x, synth_y, hist = zsq.synthesize(
        fp, labels, task_loss=shapes.detection_loss, encode_targets=shapes.encode_targets,
        image_shape=(3, shapes.SIZE, shapes.SIZE), steps=a.synth_steps, lr=a.synth_lr,
        detect=lambda m, x: shapes.detect(m, x, min_score=0.001), resample_every=a.resample_every,
        max_targets=a.max_targets, generator=g, log=log)
    times["synthesis_s"] = time.time() - t0
    boxes_after = sum(len(c) for _, c in synth_y) / len(synth_y)
    for bits in (8, a.stress_bits):
        tag = "W8A8" if bits == 8 else f"W8A{bits} (stress)"
        q_syn = zsq.calibrate(zsq.quantize_w8a8(fp, act_bits=bits), [synth_x])
        add(f"{tag}, zero-shot calibration", q_syn, f"{a.calib} synthetic images", f"{a.synth_steps} synthesis steps")
        t0 = time.time()
        qat_hist = zsq.distill_qat(q_syn, fp, synth_x, steps=a.qat_steps, batch=a.qat_batch, lr=a.qat_lr,
                                   output_loss=shapes.distill_loss, generator=g, log=log)
        times[f"qat_a{bits}_s"] = time.time() - t0
        qat_losses[f"a{bits}"] = [qat_hist[0], qat_hist[-1]]
        add(f"{tag}, zero-shot + distillation QAT", q_syn, f"{a.calib} synthetic images",
            f"+ {a.qat_steps} QAT steps of {a.qat_batch}")
    # How well the synthetic set recovered the task's own statistics: the FP detector's
    # detections on it vs on real images.
    fp_syn = shapes.detect(fp, synth_x, min_score=0.3)
    dets_per_img = sum(len(s) for _, s, _ in fp_syn) / len(fp_syn)

    settings = {"eval_images": a.eval, "calibration_images": a.calib, "synthesis_steps": a.synth_steps,
                "resample_every": a.resample_every, "max_targets": a.max_targets,
                "synthesis_lr": a.synth_lr, "qat_steps": a.qat_steps, "qat_batch": a.qat_batch, "qat_lr": a.qat_lr,
                "synthesis_objective_first_last": [hist[0], hist[-1]], "qat_loss_first_last": qat_losses,
                "targets_per_synthetic_image_after_box_sampling": boxes_after,
                "fp_detections_per_synthetic_image_at_0.3": dets_per_img,
                "seconds": {k: round(v, 1) for k, v in times.items()}, "cpu": platform.processor() or platform.machine(),
                "threads": 1, "torch": torch.__version__}
    out = Path(a.out)
    (out / "zsq").mkdir(parents=True, exist_ok=True)
    (out / "zsq" / "results.json").write_text(json.dumps({"rows": rows, "settings": settings}, indent=1) + "\n")
    (out / "zsq.md").write_text(render(rows, settings))
    log(json.dumps(settings))


def render(rows, s):
    lines = [
        "# Zero-shot W8A8 calibration of shapes-det (generated by `bench/zsq/bench.py`; do not edit by hand)",
        "",
        "The detector is `models/shapes-det` (a 42k-parameter CenterNet-style CNN on 64x64 synthetic shapes). W8A8 is",
        "`slipstream_torch.zsq`: BatchNorm folded, per-output-channel INT8 weights (the native INT8 codec's `row`",
        "numerics via `fakequant.int8_rows`), per-tensor static INT8 activations at every conv input (scale = amax / 127",
        "over the calibration images, the codec's `tensor` numerics). Zero-shot = the task-specific recipe of",
        "papers.md section 3: one sampled box + category per image, images optimised from noise against the FP32",
        "detector (detection loss 0.5, BN statistics 0.01 with the first BN x2, TV 5e-4, Adam lr "
        f"{s['synthesis_lr']}) with the adaptive box sampler after a 32% warm-up (every {s['resample_every']} steps, at most"
        f" {s['max_targets']} targets an image: the task prior); QAT distils the FP32 detector's",
        "features (MSE, weight 1.0) and outputs (soft heatmap + size/offset, weight 0.1) on the synthetic images, no labels.",
        "",
        f"mAP@0.5 (VOC all-point AP, `models/shapes-det/map_eval.py`) on the same {s['eval_images']} held-out images.",
        "",
        "| configuration | calibration data | mAP@0.5 | AP circle | AP square | AP triangle | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: "stress" in r["config"]):  # stable: W8A8 rows first
        ap = r["ap50"]
        lines.append(f"| {r['config']} | {r['calibration']} | **{r['map50']:.4f}** | {ap['circle']:.4f} | "
                     f"{ap['square']:.4f} | {ap['triangle']:.4f} | {r['note']} |")
    sec = s["seconds"]
    lines += [
        "",
        "W8A8 rows use the native INT8 codec's numerics. The W8A4 stress rows (same arithmetic, codes in [-7, 7], not a",
        "native format) show where the calibration source starts to matter on a model this small.",
        "",
        f"Budget (CPU, {s['threads']} thread, shared machine, torch {s['torch']}): {s['calibration_images']} calibration "
        f"images; synthesis {s['synthesis_steps']} steps ({sec['synthesis_s']} s; the paper uses 2,500 steps and 2k "
        f"images), QAT {s['qat_steps']} steps of batch {s['qat_batch']} at lr {s['qat_lr']} ({sec['qat_a8_s']} s at A8).",
        f"Synthesis objective {s['synthesis_objective_first_last'][0]:.3f} -> {s['synthesis_objective_first_last'][1]:.3f};"
        f" targets per synthetic image after box sampling {s['targets_per_synthetic_image_after_box_sampling']:.2f};"
        f" FP32 detections (score > 0.3) per synthetic image {s['fp_detections_per_synthetic_image_at_0.3']:.2f}.",
        "QAT loss (first -> last step): " + "; ".join(f"{k.upper()} {v[0]:.5f} -> {v[1]:.5f}"
                                                      for k, v in s["qat_loss_first_last"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
