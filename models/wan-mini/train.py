"""Train wan-mini with rectified-flow matching on generated shape videos.

    python models/wan-mini/train.py --out OUT            # full run (CUDA if present)
    python models/wan-mini/train.py --smoke --out OUT    # 20 CPU steps, small clips

Objective (rectified flow, as Wan): x_t = (1 - s) x0 + s eps, the model predicts
v = eps - x0 and sees the timestep t = 1000 s (ComfyUI's flow multiplier). s is drawn
logit-normal(0, 1) (SD3's choice: it concentrates training on mid noise levels) with no
shift: our clips are only 512 tokens, and Wan's shift (5 for 480p, 8 in ComfyUI's Wan 2.1
default) exists to push large latents towards high noise. The sampler may still use a shift.

Conditioning: the fixed word table of prompts.py; 10% of samples get the all-zero context so
one model serves classifier-free guidance. Optimizer AdamW (betas 0.9/0.99, weight decay 0.01
on matrices only), linear warm-up then cosine decay to 10%, gradient clipping at 1, bf16
autocast on CUDA, an EMA of the weights (what we ship). The schedule's progress is
max(step / steps, elapsed / time budget), so a slower machine still finishes on time, with the
learning rate decayed, after fewer steps (train-log.txt records how many).

Writes to --out: the EMA weights as fp16 safetensors shards + index json, loss.csv,
fixture.safetensors (a small FP32 forward case for the native runtime's test), samples.png
(a few prompts, see sample.py) and train-log.txt.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

import data
import st_io
from codec import Codec
from model import CONFIG, WanMini, count_params
from prompts import PromptTable

VAL_SEED, FIXTURE_SEED = 777, 4242


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--time-budget", type=float, default=400.0,
                   help="seconds of training loop; the cosine schedule ends by then")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-samples", action="store_true", help="skip samples.png")
    p.add_argument("--smoke", action="store_true",
                   help="20 CPU steps on 2-frame 32x32 clips, batch 4, for tests")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.batch, a.device, a.frames, a.size = 20, 4, "cpu", 2, 32
        a.warmup, a.log_every, a.no_samples, a.lr = 5, 1, True, 1e-3
    return a


class Trainer:
    def __init__(self, args):
        self.args, self.dev = args, torch.device(args.device)
        torch.manual_seed(args.seed)
        self.model = WanMini(**CONFIG).to(self.dev)
        self.ema = WanMini(**CONFIG).to(self.dev).requires_grad_(False)
        self.ema.load_state_dict(self.model.state_dict())
        self.codec, self.table = Codec.load(), PromptTable()
        decay = [p for p in self.model.parameters() if p.ndim >= 2 and p.shape[0] > 1]
        other = [p for p in self.model.parameters() if not (p.ndim >= 2 and p.shape[0] > 1)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                      {"params": other, "weight_decay": 0.0}],
                                     lr=args.lr, betas=(0.9, 0.99),
                                     fused=self.dev.type == "cuda")
        # No torch.compile: on the H100 (torch 2.11) compiling took ~2 minutes of the
        # 8-minute budget, more than it could win back at ~9 steps/s.
        self.fwd = self.model
        self.data_gen = torch.Generator().manual_seed(args.seed)
        self.noise_gen = torch.Generator(self.dev).manual_seed(args.seed + 1)
        self.autocast = torch.autocast("cuda", torch.bfloat16, enabled=self.dev.type == "cuda")

    def make_batch(self, n, data_gen, noise_gen, drop=0.1):
        """Latents x0, contexts (some dropped to zero), and the flow-matching inputs."""
        a = self.args
        video, (c, s, m) = data.batch(n, data_gen, a.frames, a.size, self.dev)
        x0 = self.codec.encode(video)
        ctx = self.table.context(c, s, m, self.dev)
        keep = torch.rand(n, generator=data_gen) >= drop
        ctx = ctx * keep.to(self.dev)[:, None, None]
        sigma = torch.sigmoid(torch.randn(n, device=self.dev, generator=noise_gen))
        eps = torch.randn(x0.shape, device=self.dev, generator=noise_gen)
        sb = sigma[:, None, None, None, None]
        return (1 - sb) * x0 + sb * eps, sigma * 1000, ctx, eps - x0

    def lr_at(self, progress, step):
        warm = min(1.0, (step + 1) / self.args.warmup)
        return self.args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    @torch.no_grad()
    def val_loss(self, model):
        n = 8 if self.args.smoke else 64
        """Fixed videos, noise and noise levels: comparable across steps and runs."""
        g = torch.Generator().manual_seed(VAL_SEED)
        ng = torch.Generator(self.dev).manual_seed(VAL_SEED)
        xt, t, ctx, v = self.make_batch(n, g, ng, drop=0.0)
        with self.autocast:
            return F.mse_loss(model(xt, t, ctx).float(), v).item()

    def train(self, log):
        a, t0, step, rows = self.args, time.time(), 0, []
        window = []
        while True:
            elapsed = time.time() - t0
            progress = max(step / a.steps, elapsed / a.time_budget)
            if progress >= 1.0:
                break
            lr = self.lr_at(progress, step)
            for g in self.opt.param_groups:
                g["lr"] = lr
            xt, t, ctx, v = self.make_batch(a.batch, self.data_gen, self.noise_gen)
            with self.autocast:
                loss = F.mse_loss(self.fwd(xt, t, ctx).float(), v)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            d = min(a.ema, (1 + step) / (10 + step))  # short warm-up of the EMA
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - d)
            window.append(loss.detach())
            step += 1
            if step % a.log_every == 0 or step == a.steps:
                mean = torch.stack(window).mean().item()  # one sync per log line
                window = []
                val = self.val_loss(self.model) if step % (a.log_every * 10) == 0 else float("nan")
                rows.append((step, time.time() - t0, lr, mean, gnorm.item(), val))
                log(f"step {step:6d}  {rows[-1][1]:7.1f}s  lr {lr:.2e}  loss {mean:.4f}  "
                    f"gnorm {gnorm.item():.3f}" + ("" if math.isnan(val) else f"  val {val:.4f}"))
        return step, time.time() - t0, rows


def write_fixture(state16, path):
    """A small forward case in FP32 with the shipped (fp16-rounded) weights, on CPU."""
    model = WanMini(**CONFIG)
    model.load_state_dict({k: v.float() for k, v in state16.items()})
    model.eval()
    g = torch.Generator().manual_seed(FIXTURE_SEED)
    x = torch.randn(2, 16, 2, 8, 8, generator=g)
    t = torch.tensor([900.0, 250.0])
    table = PromptTable()
    prompt = "red circle right"
    ctx = torch.cat([table.encode_text(prompt), table.encode_text("")])
    hidden = []
    with torch.no_grad():
        out = model(x, t, ctx, hidden_out=hidden)
    tensors = {"x": x, "t": t, "context": ctx, "out": out}
    tensors.update({f"hidden.{i}": h.contiguous() for i, h in enumerate(hidden)})
    st_io.save_file(tensors, path, {
        "format": "wan-mini-fixture-1", "prompts": json.dumps([prompt, ""]),
        "note": "out = WanMini(x, t, context) in FP32 on CPU with the fp16 weights widened to "
                "FP32; hidden.0 = tokens after patch_embedding, hidden.i = after block i-1"})


def main(argv=None):
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    t_start = time.time()
    tr = Trainer(a)
    log(f"wan-mini: {count_params(tr.model):,} parameters, config {json.dumps(CONFIG)}")
    log(f"device {a.device} ({torch.cuda.get_device_name() if a.device.startswith('cuda') else 'cpu'}), "
        f"torch {torch.__version__}, args {vars(a)}")
    val0 = tr.val_loss(tr.model)
    steps, secs, rows = tr.train(log)
    val_raw, val_ema = tr.val_loss(tr.model), tr.val_loss(tr.ema)
    log(f"trained {steps} steps in {secs:.1f}s ({steps / secs:.2f} steps/s, batch {a.batch}); "
        f"val loss {val0:.4f} -> {val_raw:.4f} (raw), {val_ema:.4f} (EMA)")

    state16 = {k: v.detach().to("cpu", torch.float16) for k, v in tr.ema.state_dict().items()}
    meta = {"format": "pt", "model": "wan-mini", "config": json.dumps(CONFIG),
            "steps": str(steps), "batch": str(a.batch), "val_loss_ema": f"{val_ema:.5f}"}
    files = st_io.save_sharded(state16, a.out, metadata=meta)
    write_fixture(state16, os.path.join(a.out, "fixture.safetensors"))
    with open(os.path.join(a.out, "loss.csv"), "w") as f:
        f.write("step,seconds,lr,train_loss,grad_norm,val_loss\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]:.2f},{r[2]:.6g},{r[3]:.6f},{r[4]:.4f},{r[5]:.6f}\n")
    if not a.no_samples:
        import sample  # sample.py: Euler + CFG with the weights just written
        sample.main(["--weights", a.out, "--out", os.path.join(a.out, "samples.png"),
                     "--device", a.device, "--frames", str(a.frames), "--size", str(a.size)])
    log(f"wrote {files + ['fixture.safetensors', 'loss.csv', 'train-log.txt']} to {a.out}; "
        f"total {time.time() - t_start:.1f}s")
    with open(os.path.join(a.out, "train-log.txt"), "w") as f:
        f.write("\n".join(log_lines) + "\n")
    return {"steps": steps, "val_before": val0, "val_after": val_raw, "val_ema": val_ema,
            "rows": rows}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
