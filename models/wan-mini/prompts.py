"""Text conditioning without a text encoder: a fixed table of word embeddings at width 4096.

Each vocabulary word (the colours, shapes and motions of data.py) gets one seeded N(0, 1)
vector of Wan's text width (4096). A prompt's context is [colour, shape, motion] followed by
zero rows up to CONTEXT_LEN = 8 (zeros, not a learned pad, so a runtime needs nothing but the
table). The unconditional prompt for classifier-free guidance is all zeros.

`python prompts.py` rewrites prompts.safetensors (committed; deterministic). Its metadata
holds the vocabulary in row order, so runtimes in other languages can look words up.
"""
import json
import os

import torch

import data
import st_io

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "prompts.safetensors")
TEXT_DIM, CONTEXT_LEN, SEED = 4096, 8, 2024
VOCAB = list(data.COLOURS) + list(data.SHAPES) + list(data.MOTIONS)


def build():
    g = torch.Generator().manual_seed(SEED)
    table = torch.randn(len(VOCAB), TEXT_DIM, generator=g)
    meta = {"format": "wan-mini-prompts-1", "vocab": json.dumps(VOCAB),
            "context_len": str(CONTEXT_LEN), "prompt": "colour shape motion",
            "pad": "zeros", "unconditional": "all zeros", "seed": str(SEED)}
    return {"words": table}, meta


class PromptTable:
    def __init__(self, path=PATH):
        tensors, meta = st_io.load_file(path, with_metadata=True)
        self.words = tensors["words"].float()  # [V, 4096]
        self.vocab = json.loads(meta["vocab"])
        nc, ns = len(data.COLOURS), len(data.SHAPES)
        assert self.vocab == VOCAB, "prompts.safetensors is stale: run python prompts.py"
        # Row offsets of each label kind inside the table.
        self.offsets = (0, nc, nc + ns)

    def context(self, colour, shape, motion, device="cpu"):
        """Label tensors [B] -> context [B, 8, 4096] (3 word rows, then zero rows)."""
        rows = torch.stack([colour + self.offsets[0], shape + self.offsets[1],
                            motion + self.offsets[2]], dim=1)  # [B, 3]
        words = self.words.to(device)  # gather on the device: no 8 MB host copy per batch
        pad = torch.zeros(rows.shape[0], CONTEXT_LEN - 3, TEXT_DIM, device=device)
        return torch.cat([words[rows.to(device)], pad], dim=1)

    def encode_text(self, text, device="cpu"):
        """'red circle right' -> [1, 8, 4096]; '' -> the unconditional (zero) context."""
        if not text.strip():
            return torch.zeros(1, CONTEXT_LEN, TEXT_DIM, device=device)
        c, s, m = (torch.tensor([i]) for i in data.parse_prompt(text))
        return self.context(c, s, m, device)


if __name__ == "__main__":
    tensors, meta = build()
    st_io.save_file(tensors, PATH, meta)
    print(f"wrote {PATH}: {len(VOCAB)} words x {TEXT_DIM}")
