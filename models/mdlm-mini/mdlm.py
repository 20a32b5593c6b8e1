"""mdlm-mini's model, data and preference pairs, shared by train.py and bench/vrpo/bench.py.

The model is a small bidirectional transformer trained as a masked diffusion LM (LLaDA's recipe): no causal
mask, an extra [MASK] token after qwen3-mini's 8192 BPE tokens, and an output head over the 8192 real tokens only.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKENIZER = ROOT / "models" / "qwen3-mini" / "tokenizer.json"
CORPUS = ROOT / "models" / "qwen3-mini" / "corpus"


@dataclass
class Config:
    vocab_size: int = 8192      # qwen3-mini's BPE; the mask id is vocab_size
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    ffn_size: int = 512
    max_len: int = 48
    prompt_len: int = 12        # headword and pronunciation, truncated
    eos_id: int = 0             # filled from the tokenizer

    @property
    def mask_id(self) -> int:
        return self.vocab_size


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.heads = c.num_heads
        self.norm1 = nn.LayerNorm(c.hidden_size)
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.norm2 = nn.LayerNorm(c.hidden_size)
        self.up = nn.Linear(c.hidden_size, c.ffn_size)
        self.down = nn.Linear(c.ffn_size, c.hidden_size)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # bidirectional: every token sees every other
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class MDLM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.config = c
        self.embed = nn.Embedding(c.vocab_size + 1, c.hidden_size)
        self.pos = nn.Parameter(torch.zeros(c.max_len, c.hidden_size))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.hidden_size)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    accepts_select = True  # vrpo.elbo passes the masked positions; the 8192-way head is most of the cost

    def forward(self, ids: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        if select is not None:
            x = x[select]
        # tied head without the [MASK] row: predicting the mask token is never right
        return x @ self.embed.weight[: self.config.vocab_size].T


def save(model: MDLM, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load(folder: Path = HERE) -> MDLM:
    from safetensors.torch import load_file

    model = MDLM(Config(**json.loads((folder / "config.json").read_text())))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval()


def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER))


# "Abbot \Ab"bot\ ([a^]b"b[u^]t), n. [AS. ...] 1. The superior ..." -> prompt "Abbot \Ab"bot\", response the rest.
# Lines of the GCIDE licence header and entries without a pronunciation field don't match and are skipped.
ENTRY = re.compile(r"^([^\\]{1,40} \\[^\\]{1,60}\\)(.{8,})$")


def entries(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ENTRY.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def encode(tok, c: Config, prompt: str, response: str) -> tuple[list[int], int]:
    """Prompt + response + EOS, EOS-padded to max_len (LLaDA pads with EOS); returns ids and the prompt length."""
    p = tok.encode(prompt).ids[: c.prompt_len]
    r = tok.encode(response).ids[: c.max_len - len(p) - 1] + [c.eos_id]
    ids = p + r
    return ids + [c.eos_id] * (c.max_len - len(ids)), len(p)


def corrupt(response: str, rng: random.Random, swaps: int) -> str:
    """The rejected response: `swaps` transpositions of two different words among the first 24 words.

    Only the words inside the scored window are moved, so chosen and rejected hold (nearly) the same tokens
    and differ in order alone: a preference for fluent, correctly ordered definitions, not for length.
    """
    words = response.split(" ")
    window = min(len(words), 24)
    for _ in range(swaps):
        for _ in range(20):
            i, j = rng.sample(range(window), 2) if window >= 2 else (0, 0)
            if words[i] != words[j]:
                words[i], words[j] = words[j], words[i]
                break
    return " ".join(words)


def pairs(tok, c: Config, split: str, n: int, seed: int, swaps: int = 2):
    """n preference pairs from one corpus split: (chosen ids, rejected ids, chosen eligible, rejected eligible).

    Eligible marks the response tokens up to and including the first EOS: the prompt is never masked (it is x),
    and the padding is never scored.
    """
    rng = random.Random(seed)
    pool = [e for e in entries(CORPUS / f"{split}.txt") if len(e[1].split(" ")) >= 6]
    picked = rng.sample(pool, n)
    cw, cl, ew, el = [], [], [], []
    for prompt, response in picked:
        for ids_list, elig_list, text in ((cw, ew, response), (cl, el, corrupt(response, rng, swaps))):
            ids, plen = encode(tok, c, prompt, text)
            end = ids.index(c.eos_id, plen) + 1
            ids_list.append(ids)
            elig_list.append([plen <= i < end for i in range(c.max_len)])
    t = torch.tensor
    return t(cw), t(cl), t(ew), t(el)
