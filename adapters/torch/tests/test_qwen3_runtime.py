"""The native Qwen3 runtime (slip_qwen3_*) through ctypes against transformers' Qwen3ForCausalLM in
float32, on the committed models/qwen3-mini: prefill logits, decode steps over the KV cache, greedy
generation, a model with per-layer widths (pruned), and refusals of bad input."""

import ctypes
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="installed by scripts/python-env.js from requirements-test.txt")
safetensors_torch = pytest.importorskip("safetensors.torch")

from slipstream_torch import _lib  # noqa: E402
from slipstream_torch._lib import SlipTensor, SlipstreamError, check, tensor_from_numpy  # noqa: E402

MODEL = Path(__file__).resolve().parents[3] / "models" / "qwen3-mini"

c = ctypes
I64P = c.POINTER(c.c_int64)


class Qwen3Config(c.Structure):
    _fields_ = [
        ("vocab_size", c.c_int64),
        ("hidden_size", c.c_int64),
        ("layers", c.c_int64),
        ("heads", c.c_int64),
        ("kv_heads", c.c_int64),
        ("head_dim", c.c_int64),
        ("intermediate_size", c.c_int64),
        ("max_context", c.c_int64),
        ("rope_theta", c.c_double),
        ("rms_norm_eps", c.c_float),
        ("tie_word_embeddings", c.c_int32),
        ("attention_bias", c.c_int32),
        ("reserved0", c.c_int32),
        ("layer_heads", I64P),
        ("layer_kv_heads", I64P),
        ("layer_intermediate", I64P),
        ("reserved", c.c_int32 * 4),
    ]


class SampleParams(c.Structure):
    _fields_ = [("temperature", c.c_float), ("top_p", c.c_float), ("top_k", c.c_int32), ("reserved", c.c_int32 * 5)]


def api():
    d = _lib.declare
    S, P = c.c_int32, c.c_void_p
    return {
        "create": d("slip_qwen3_model_create", S, [c.POINTER(c.c_char_p), c.POINTER(SlipTensor), c.c_int64,
                                                   c.POINTER(Qwen3Config), P, c.POINTER(P)]),
        "model_free": d("slip_qwen3_model_free", None, [P]),
        "session_create": d("slip_qwen3_session_create", S, [P, c.POINTER(P)]),
        "session_free": d("slip_qwen3_session_free", None, [P]),
        "reset": d("slip_qwen3_session_reset", S, [P]),
        "position": d("slip_qwen3_session_position", S, [P, I64P]),
        "truncate": d("slip_qwen3_session_truncate", S, [P, c.c_int64]),
        "forward": d("slip_qwen3_session_forward", S, [P, c.POINTER(c.c_int32), c.c_int64, c.POINTER(SlipTensor)]),
        "sample": d("slip_qwen3_sample", S, [c.POINTER(SlipTensor), c.POINTER(SampleParams), c.POINTER(c.c_uint64),
                                             c.POINTER(c.c_int32)]),
    }


def native_config(cfg: dict, layer_lists: dict | None = None):
    """slip_qwen3_config from a config.json dict (rope_theta at the top level, or in rope_parameters as
    transformers 5 writes it); per-layer lists as adapters/vllm/prune.ts writes them."""
    rope = cfg.get("rope_parameters") or {}
    nc = Qwen3Config(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], layers=cfg["num_hidden_layers"],
        heads=cfg["num_attention_heads"], kv_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"], max_context=cfg["max_position_embeddings"],
        rope_theta=rope.get("rope_theta", cfg.get("rope_theta", 10000.0)), rms_norm_eps=cfg["rms_norm_eps"],
        tie_word_embeddings=int(cfg.get("tie_word_embeddings", False)), attention_bias=int(cfg.get("attention_bias", False)))
    keep = []
    for field, key in (("layer_heads", "layer_num_attention_heads"), ("layer_kv_heads", "layer_num_key_value_heads"),
                       ("layer_intermediate", "layer_intermediate_size")):
        if layer_lists and key in layer_lists:
            arr = (c.c_int64 * len(layer_lists[key]))(*layer_lists[key])
            keep.append(arr)
            setattr(nc, field, c.cast(arr, I64P))
    return nc, keep


class Runtime:
    """One native model and a session over it; weights given as torch tensors (F32 or BF16)."""

    def __init__(self, state: dict, cfg: dict, layer_lists: dict | None = None):
        self.f = api()
        self.vocab = cfg["vocab_size"]
        names, arrays, tensors = [], [], []
        for name, t in state.items():
            if t.dtype == torch.bfloat16:
                a = t.contiguous().view(torch.int16).numpy().view(np.uint16)
                tensors.append(tensor_from_numpy(a, "BF16"))
            else:
                a = np.ascontiguousarray(t.detach().float().numpy())
                tensors.append(tensor_from_numpy(a))
            names.append(name.encode())
            arrays.append(a)
        self.config, keep = native_config(cfg, layer_lists)
        name_arr = (c.c_char_p * len(names))(*names)
        tensor_arr = (SlipTensor * len(tensors))(*tensors)
        self.model = c.c_void_p()
        check(self.f["create"](name_arr, tensor_arr, len(names), c.byref(self.config), None, c.byref(self.model)))
        del arrays, keep  # the model holds its own FP32 copy
        self.session = c.c_void_p()
        check(self.f["session_create"](self.model, c.byref(self.session)))

    def close(self):
        self.f["session_free"](self.session)
        self.f["model_free"](self.model)

    def forward(self, ids, every=False) -> np.ndarray:
        toks = (c.c_int32 * len(ids))(*ids)
        out = np.zeros((len(ids), self.vocab) if every else (self.vocab,), np.float32)
        t = tensor_from_numpy(out)
        check(self.f["forward"](self.session, toks, len(ids), c.byref(t)))
        return out

    def position(self) -> int:
        p = c.c_int64()
        check(self.f["position"](self.session, c.byref(p)))
        return p.value

    def sample(self, logits: np.ndarray, temperature=1.0, top_p=1.0, top_k=0, state=None) -> tuple[int, int]:
        row = np.ascontiguousarray(logits, np.float32)
        t = tensor_from_numpy(row)
        p = SampleParams(temperature=temperature, top_p=top_p, top_k=top_k)
        st = c.c_uint64(state or 0)
        tok = c.c_int32()
        check(self.f["sample"](c.byref(t), c.byref(p), c.byref(st), c.byref(tok)))
        return tok.value, st.value


def checkpoint():
    cfg = json.loads((MODEL / "config.json").read_text())
    state = {}
    for shard in sorted(MODEL.glob("*.safetensors")):
        state.update(safetensors_torch.load_file(str(shard)))
    return cfg, state


@pytest.fixture(scope="module")
def mini():
    cfg, state = checkpoint()
    ref = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    rt = Runtime(state, cfg)
    yield cfg, state, ref, rt
    rt.close()


def prompt_ids(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, cfg["vocab_size"], (n,), generator=g).tolist()


def tolerance(cfg, logits: np.ndarray) -> float:
    """FP32 against FP32 with different summation orders (blocked GEMM, online softmax vs MKL and
    SDPA). A length-K dot product in FP32 carries a relative error of about sqrt(K) * 2^-24 of the
    magnitude it sums; RMSNorm renormalizes the residual stream at every layer, so relative errors
    add up (randomly, ~sqrt) over the 2 sublayers of each of the L layers instead of compounding.
    The logits are one more product of width D. With K the widest reduction (max of D, I, H d),
    u = 2^-24, a safety factor of 4 for the error that attention's softmax and the norms' 1/rms
    amplify: tol = 4 * u * sqrt(K) * sqrt(2 L + 1) * max|logit| (5.1e-4 on qwen3-mini, whose
    logits reach 18.7; measured: about 1e-5)."""
    u = 2.0 ** -24
    k = max(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"] * cfg["head_dim"])
    depth = 2 * cfg["num_hidden_layers"] + 1
    return 4 * u * math.sqrt(k) * math.sqrt(depth) * float(np.abs(logits).max())


def test_prefill_and_decode_logits_match_transformers_fp32(mini):
    cfg, _, ref, rt = mini
    check(rt.f["reset"](rt.session))
    prompt = prompt_ids(cfg, 37)
    steps = prompt_ids(cfg, 6, seed=1)
    with torch.no_grad():
        out = ref(torch.tensor([prompt]), use_cache=True)
        expected = [out.logits[0].numpy()]
        past = out.past_key_values
        for t in steps:
            out = ref(torch.tensor([[t]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            expected.append(out.logits[0].numpy())
    got = [rt.forward(prompt, every=True)] + [rt.forward([t])[None] for t in steps]
    assert rt.position() == len(prompt) + len(steps)
    diffs = [float(np.abs(g - e).max()) for g, e in zip(got, expected)]
    tol = tolerance(cfg, expected[0])
    print(f"qwen3-mini vs transformers FP32: max |logit diff| prefill {diffs[0]:.2e}, decode "
          f"{' '.join(f'{d:.2e}' for d in diffs[1:])}; tolerance {tol:.2e} (max |logit| {np.abs(expected[0]).max():.1f})")
    for d in diffs:
        assert d <= tol
    # A real mistake (a wrong RoPE pairing, a missing norm) moves logits by whole units; the bound
    # is far below that.
    assert tol < 0.05


def test_the_last_token_logits_equal_the_last_row_of_every_token_logits(mini):
    cfg, _, _, rt = mini
    prompt = prompt_ids(cfg, 12, seed=3)
    check(rt.f["reset"](rt.session))
    every = rt.forward(prompt, every=True)
    check(rt.f["reset"](rt.session))
    last = rt.forward(prompt)
    # Not bitwise: the GEMM blocks one row differently from twelve (another summation order).
    assert np.abs(last - every[-1]).max() <= tolerance(cfg, last)
    # Prefill in two pieces gives the same cache as one piece (up to the GEMM's row blocking).
    check(rt.f["truncate"](rt.session, 5))
    split = rt.forward(prompt[5:])
    assert np.abs(split - last).max() <= tolerance(cfg, last)


def test_greedy_generation_equals_transformers_generate(mini):
    cfg, _, ref, rt = mini
    tok = transformers.AutoTokenizer.from_pretrained(MODEL)
    prompt = tok("Lantern \\Lan\"tern\\, n. A case").input_ids
    n_new = 20
    with torch.no_grad():
        gen = ref.generate(torch.tensor([prompt]), max_new_tokens=n_new, do_sample=False, eos_token_id=None,
                           pad_token_id=0)[0, len(prompt):].tolist()
    check(rt.f["reset"](rt.session))
    logits = rt.forward(prompt)
    ours = []
    for _ in range(n_new):
        t, _ = rt.sample(logits, temperature=0.0)
        ours.append(t)
        logits = rt.forward([t])
    assert ours == gen


def test_sampling_is_seeded_and_honours_top_p_and_top_k(mini):
    _, _, _, rt = mini
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    draws = []
    state = 1234
    for _ in range(400):
        t, state = rt.sample(logits, temperature=1.0, top_p=0.7, state=state)
        draws.append(t)
    # top_p 0.7: {0, 1} reach 0.8 and 1 is the token that crosses; 2 and 3 are cut.
    assert set(draws) == {0, 1}
    assert abs(draws.count(0) / 400 - 0.5 / 0.8) < 0.08
    again, state2 = [], 1234
    for _ in range(400):
        t, state2 = rt.sample(logits, temperature=1.0, top_p=0.7, state=state2)
        again.append(t)
    assert again == draws
    assert {rt.sample(logits, temperature=1.0, top_k=1, state=s)[0] for s in range(20)} == {0}
    assert rt.sample(logits, temperature=0.0)[0] == 0


def test_refusals_name_the_problem(mini):
    cfg, state, _, rt = mini
    # A context longer than config.max_context: an error, and the session is unchanged.
    check(rt.f["reset"](rt.session))
    rt.forward(prompt_ids(cfg, 10))
    with pytest.raises(SlipstreamError, match=r"at most 512 tokens in the context"):
        rt.forward([1] * (cfg["max_position_embeddings"] - 9))
    assert rt.position() == 10
    with pytest.raises(SlipstreamError, match=r"token ids in \[0, 8192\)"):
        rt.forward([5, cfg["vocab_size"]])
    assert rt.position() == 10
    missing = {k: v for k, v in state.items() if k != "model.layers.3.self_attn.k_proj.weight"}
    with pytest.raises(SlipstreamError, match=r'"model\.layers\.3\.self_attn\.k_proj\.weight"'):
        Runtime(missing, cfg)
    wrong = dict(state)
    wrong["model.layers.2.mlp.down_proj.weight"] = torch.zeros(256, 700)
    with pytest.raises(SlipstreamError, match=r'"model\.layers\.2\.mlp\.down_proj\.weight"') as e:
        Runtime(wrong, cfg)
    assert e.value.code == "SLIP_STATUS_SHAPE_MISMATCH"


def test_per_layer_widths_match_the_masked_full_model(mini):
    """An uneven pruning (a different number of KV groups and MLP channels per layer) computes what
    the full model computes with the dropped groups' and channels' outputs zeroed."""
    cfg, state, ref, _ = mini
    L, G, per, d, I = (cfg["num_hidden_layers"], cfg["num_key_value_heads"],
                       cfg["num_attention_heads"] // cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"])
    g = torch.Generator().manual_seed(5)
    groups = [[0, 1] if i % 3 == 0 else [i % 2] for i in range(L)]
    channels = [sorted(torch.randperm(I, generator=g)[: I // 2 + 32 * i].tolist()) for i in range(L)]
    pruned, masked = {}, {k: v.float().clone() for k, v in state.items()}
    for k, v in state.items():
        pruned[k] = v
    for i in range(L):
        p = f"model.layers.{i}."
        q_rows = torch.tensor([h * d + j for grp in groups[i] for h in range(grp * per, (grp + 1) * per) for j in range(d)])
        kv_rows = torch.tensor([grp * d + j for grp in groups[i] for j in range(d)])
        ch = torch.tensor(channels[i])
        pruned[p + "self_attn.q_proj.weight"] = state[p + "self_attn.q_proj.weight"][q_rows]
        pruned[p + "self_attn.k_proj.weight"] = state[p + "self_attn.k_proj.weight"][kv_rows]
        pruned[p + "self_attn.v_proj.weight"] = state[p + "self_attn.v_proj.weight"][kv_rows]
        pruned[p + "self_attn.o_proj.weight"] = state[p + "self_attn.o_proj.weight"][:, q_rows].contiguous()
        pruned[p + "mlp.gate_proj.weight"] = state[p + "mlp.gate_proj.weight"][ch]
        pruned[p + "mlp.up_proj.weight"] = state[p + "mlp.up_proj.weight"][ch]
        pruned[p + "mlp.down_proj.weight"] = state[p + "mlp.down_proj.weight"][:, ch].contiguous()
        o_keep = torch.zeros(cfg["num_attention_heads"] * d, dtype=torch.bool)
        o_keep[q_rows] = True
        masked[p + "self_attn.o_proj.weight"][:, ~o_keep] = 0
        c_keep = torch.zeros(I, dtype=torch.bool)
        c_keep[ch] = True
        masked[p + "mlp.down_proj.weight"][:, ~c_keep] = 0
    lists = {"layer_num_key_value_heads": [len(x) for x in groups],
             "layer_num_attention_heads": [len(x) * per for x in groups],
             "layer_intermediate_size": [len(x) for x in channels]}
    ref_masked = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    ref_masked.load_state_dict(masked, strict=False)
    prompt = prompt_ids(cfg, 21, seed=9)
    with torch.no_grad():
        expected = ref_masked(torch.tensor([prompt])).logits[0].numpy()
    rt = Runtime(pruned, cfg, lists)
    try:
        widths = [c.c_int64(), c.c_int64(), c.c_int64()]
        f = _lib.declare("slip_qwen3_model_layer_widths", c.c_int32, [c.c_void_p, c.c_int64, I64P, I64P, I64P])
        check(f(rt.model, 1, *[c.byref(w) for w in widths]))
        assert [w.value for w in widths] == [per * len(groups[1]), len(groups[1]), len(channels[1])]
        got = rt.forward(prompt, every=True)
    finally:
        rt.close()
    diff = float(np.abs(got - expected).max())
    tol = tolerance(cfg, expected)
    print(f"pruned qwen3-mini (per-layer widths) vs masked transformers: max |logit diff| {diff:.2e}, tolerance {tol:.2e}")
    assert diff <= tol


def test_f32_weights_give_the_logits_of_the_same_bf16_weights_exactly(mini):
    """BF16 is widened to FP32 exactly at create, so both dtypes make the same model."""
    cfg, state, _, rt = mini
    prompt = prompt_ids(cfg, 9, seed=4)
    check(rt.f["reset"](rt.session))
    from_bf16 = rt.forward(prompt, every=True)
    f32 = Runtime({k: v.float() for k, v in state.items()}, cfg)
    try:
        np.testing.assert_array_equal(f32.forward(prompt, every=True), from_bf16)
    finally:
        f32.close()
