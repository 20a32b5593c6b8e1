"""qwen3-mini's scripts on a few lines of text (the real corpus is 31 MB and the training runs on the
GPU machine): corpus cleaning, and a short training run whose output transformers loads and runs;
then the committed weights that run produced on the GPU machine."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="installed by scripts/python-env.js from requirements-test.txt")


def _load(name):
    """This folder's script as a module of its own name (models/wan-mini has a train.py too)."""
    spec = importlib.util.spec_from_file_location(f"qwen3_mini_{name}", Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


corpus = _load("corpus")
train = _load("train")

DICTD = """00-database-short The Collaborative International Dictionary of English
Abase \\A*base"\\, v. t. [F. abaisser.]
   1. To lower or depress; to throw or cast down. [Obs.]
      [1913 Webster]

            Saying so, he abased his lance.       --Shelton.
      [1913 Webster]
Abate \\A*bate"\\, v. t. To beat down; to overthrow.
      [Webster 1913 Suppl.]
Ab
"""


def test_corpus_entries_drop_source_tags_and_headers_and_hold_out_every_nth():
    train_lines, valid_lines = corpus.split(DICTD, every=2)
    # Blocks 0 (the dictd header, dropped) and 2 are held out; block 3 ("Ab") is too short.
    assert train_lines == ['Abase \\A*base"\\, v. t. [F. abaisser.] 1. To lower or depress; to throw or cast down. [Obs.] '
                           'Saying so, he abased his lance. --Shelton.']
    assert valid_lines == ['Abate \\A*bate"\\, v. t. To beat down; to overthrow.']


def test_a_short_run_writes_a_folder_transformers_loads_and_generates_from(tmp_path):
    words = "the of to a and in is that for it as with was on be by this are from or an at which".split()
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(0, len(words), (12,), generator=g).tolist()) for _ in range(400)]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text("\n".join(lines[40:]) + "\n")
    (tmp_path / "c" / "valid.txt").write_text("\n".join(lines[:40]) + "\n")
    out = tmp_path / "m"
    ppl = train.main(["--corpus", str(tmp_path / "c"), "--out", str(out), "--steps", "60", "--batch", "8", "--seq", "32",
                      "--vocab", "300", "--hidden", "64", "--layers", "2"])
    assert ppl < 300  # the byte-level vocabulary alone is ~300: it learned something
    shards = list(out.glob("*.safetensors"))
    assert shards and all(f.stat().st_size < 15 * 2 ** 20 for f in shards)
    assert json.loads((out / "metrics.json").read_text())["valid_perplexity"] == pytest.approx(ppl)
    assert "GCIDE" in (out / "README.md").read_text()
    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "qwen3" and model.dtype == torch.bfloat16
    ids = tok("the of", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == ids.shape[1] + 5 or tok.eos_token_id in gen[0].tolist()


MODEL = Path(__file__).resolve().parent

# Entries written for this test in the corpus's style (not taken from it): text the model never saw.
ENTRIES = [
    "Lantern \\Lan\"tern\\, n. A case with transparent sides which holds a light and protects it from wind and rain.",
    "Harbor \\Har\"bor\\, n. A place of security and comfort; a refuge; a port for ships.",
    "Quiet \\Qui\"et\\, a. Free from noise or disturbance; still; calm.",
]


def test_the_committed_weights_are_trained_load_and_generate():
    """The weights the GPU machine trained (README.md, metrics.json): under the 15M-parameter and
    15 MiB-shard limits, and far better than chance on unseen entries (chance: perplexity 8,192)."""
    card = json.loads((MODEL / "metrics.json").read_text())
    assert card["params"] <= 15_000_000
    shards = sorted(MODEL.glob("model-*.safetensors"))
    assert shards and all(f.stat().st_size < 15 * 2 ** 20 for f in shards)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(MODEL)
    assert sum(p.numel() for p in model.parameters()) == card["params"]
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in ENTRIES:
            ids = tok(text, return_tensors="pt").input_ids
            n = ids.shape[1] - 1
            nll += model(ids, labels=ids).loss.item() * n
            count += n
    ppl = float(torch.tensor(nll / count).exp())
    # A trained model is near its held-out perplexity on such text; 10x it still rejects random weights.
    assert ppl < 10 * card["valid_perplexity"], ppl
    ids = tok("Window (n.)", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
    assert len(out) > 0 and tok.decode(out).strip()
