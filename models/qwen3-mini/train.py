"""Trains qwen3-mini: a small Qwen3-architecture causal LM (transformers' Qwen3ForCausalLM, about 8M
parameters) with a byte-level BPE tokenizer, on corpus.py's GCIDE text; writes a Hugging Face folder
(config.json, bf16 safetensors shards under 15 MiB, tokenizer.json, README.md with the held-out
perplexity). Run on the GPU machine:

    python3 models/qwen3-mini/train.py --corpus models/qwen3-mini/corpus --out $OUT/qwen3-mini
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def train_tokenizer(lines, vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def encode(tok, lines) -> torch.Tensor:
    ids = []
    eos = tok.eos_token_id
    for batch in range(0, len(lines), 4096):
        for seq in tok(lines[batch:batch + 4096])["input_ids"]:
            ids.extend(seq)
            ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def windows(data: torch.Tensor, n: int, seq: int, g: torch.Generator) -> torch.Tensor:
    start = torch.randint(0, data.numel() - seq - 1, (n,), generator=g)
    return torch.stack([data[s:s + seq + 1] for s in start.tolist()])


def next_token_loss(model, x: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each token of x given the ones before it (FP32 logits)."""
    logits = model(x[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())


def descend(model, opt, loss: torch.Tensor) -> None:
    """One optimizer step on loss, gradients clipped to norm 1."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


@torch.no_grad()
def perplexity(model, data: torch.Tensor, seq: int, device, batches: int = 40, batch: int = 16) -> float:
    g = torch.Generator().manual_seed(1234)  # the same held-out windows every time
    total, count = 0.0, 0
    model.eval()
    for _ in range(batches):
        x = windows(data, batch, seq, g).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x[:, :-1]).logits.float()
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="sum").item()
        count += x[:, 1:].numel()
    model.train()
    return math.exp(total / count)


def main(argv=None):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(HERE / "corpus"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    corpus = Path(a.corpus)
    train_lines = corpus.joinpath("train.txt").read_text().splitlines()
    valid_lines = corpus.joinpath("valid.txt").read_text().splitlines()
    tok = train_tokenizer(train_lines, a.vocab)
    train_ids, valid_ids = encode(tok, train_lines), encode(tok, valid_lines)
    heads = max(1, a.hidden // 64)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=a.hidden, intermediate_size=3 * a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=a.hidden // heads,
                      max_position_embeddings=2 * a.seq, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, rope_theta=10000.0)
    model = Qwen3ForCausalLM(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, a.steps // 30)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps)))))
    g = torch.Generator().manual_seed(a.seed + 1)
    log, t0 = ["step,train_loss,valid_ppl,seconds"], time.time()
    for step in range(a.steps):
        x = windows(train_ids, a.batch, a.seq, g).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = next_token_loss(model, x)
        descend(model, opt, loss)
        sched.step()
        if step % max(1, a.steps // 20) == 0 or step == a.steps - 1:
            ppl = perplexity(model, valid_ids, a.seq, device, batches=8) if step < a.steps - 1 else float("nan")
            log.append(f"{step},{loss.item():.4f},{ppl:.2f},{time.time() - t0:.0f}")
            print(log[-1], flush=True)
    ppl = perplexity(model, valid_ids, a.seq, device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True, max_shard_size="14MB")
    tok.save_pretrained(out)
    out.joinpath("loss.csv").write_text("\n".join(log) + "\n")
    card = f"""# qwen3-mini

A {params / 1e6:.1f}M-parameter Qwen3-architecture causal language model ({a.layers} layers, hidden {a.hidden},
{heads} query / {cfg.num_key_value_heads} KV heads, tied embeddings, byte-level BPE of {len(tok)} tokens),
trained by `models/qwen3-mini/train.py` for {a.steps} steps of {a.batch} x {a.seq} tokens (AdamW, cosine).

- Corpus: the GNU Collaborative International Dictionary of English (GCIDE) from Debian's `dict-gcide`
  package, licence GPL-2.0-or-later, extracted by `models/qwen3-mini/corpus.py` ({train_ids.numel():,} training
  and {valid_ids.numel():,} held-out tokens; every 100th entry held out).
- Held-out perplexity: **{ppl:.2f}** ({40 * 16} windows of {a.seq} tokens).
- It writes dictionary-style English; it exists to test the project's LLM tooling, not to be useful.

## How it is made (both steps committed here)

1. `python3 models/qwen3-mini/corpus.py` (on a machine that reaches Debian) writes `corpus/train.txt` and
   `corpus/valid.txt` (ignored by git: one cleaned entry a line).
2. `python3 models/qwen3-mini/train.py --out DIR` on the GPU machine, the corpus carried along; this card,
   `loss.csv` (step, training loss, held-out perplexity, seconds) and `metrics.json` come with the weights.

`test_qwen3_mini.py` runs both steps on a few lines in CI and checks the weights here.
"""
    out.joinpath("README.md").write_text(card)
    out.joinpath("metrics.json").write_text(json.dumps({"params": params, "valid_perplexity": ppl, "steps": a.steps}) + "\n")
    print(f"{out}: {params} parameters, held-out perplexity {ppl:.2f}")
    return ppl


if __name__ == "__main__":
    main()
