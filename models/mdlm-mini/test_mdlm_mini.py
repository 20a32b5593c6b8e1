"""mdlm-mini without the corpus (CI lacks it): the entry parser, the preference-pair corruption, the encoding,
and the committed weights when present."""

import importlib.util
import random
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _load(name):
    """This folder's module under a name of its own (qwen3-mini and wan-mini have scripts of the same names)."""
    spec = importlib.util.spec_from_file_location(f"mdlm_mini_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mdlm = _load("mdlm")
LINE = 'Abbot \\Ab"bot\\ ([a^]b"b[u^]t), n. [AS. abbod.] 1. The superior or head of an abbey. 2. One of a class of bishops.'


def test_entries_split_headword_from_text_and_skip_lines_without_pronunciation(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text(LINE + "\nGCIDE is free software; you can redistribute it\n", encoding="utf-8")
    assert mdlm.entries(f) == [('Abbot \\Ab"bot\\', LINE[len('Abbot \\Ab"bot\\'):])]


def test_rejected_response_holds_the_same_words_in_another_order():
    response = LINE.split("\\", 2)[2]
    bad = mdlm.corrupt(response, random.Random(0), swaps=2)
    assert bad != response and sorted(bad.split(" ")) == sorted(response.split(" "))


def test_encoding_pads_with_eos_to_the_model_length():
    tok = mdlm.tokenizer()
    c = mdlm.Config(eos_id=tok.token_to_id("<|endoftext|>"))
    ids, plen = mdlm.encode(tok, c, 'Abbot \\Ab"bot\\', " n. The head of an abbey.")
    assert len(ids) == c.max_len and 0 < plen <= c.prompt_len and ids[-1] == c.eos_id


def test_committed_weights_load_and_score_only_the_selected_positions():
    assert (HERE / "model.safetensors").stat().st_size < 15 * 2**20
    model = mdlm.load()
    c = model.config
    ids = torch.randint(0, c.vocab_size, (2, c.max_len), generator=torch.Generator().manual_seed(0))
    ids[:, 5:9] = c.mask_id
    select = ids == c.mask_id
    with torch.no_grad():
        full, part = model(ids), model(ids, select=select)
    assert full.shape == (2, c.max_len, c.vocab_size)
    torch.testing.assert_close(part, full[select])
