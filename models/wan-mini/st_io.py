"""Minimal safetensors reader/writer (header JSON + raw little-endian bytes).

Why our own: the GPU training machine is not guaranteed to have the `safetensors`
package, and the future C++/TS runtimes read the same simple format. Supports the
dtypes this model uses (F32, F16, BF16, I64). Format: 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}},
padded with spaces to a multiple of 8, then the tensors' bytes back to back.
"""
import json
import struct

import torch

_TO_ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}


def save_file(tensors, path, metadata=None):
    """Write {name: tensor} to `path`; tensors are stored in their own dtype."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _TO_ST:
            raise ValueError(f"expected one of {list(_TO_ST.values())} for {name}, got {t.dtype}")
        # A uint8 view gives the raw bytes for every dtype, bf16 included (numpy has no bf16).
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the spec pads the header so the data is 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def load_file(path, with_metadata=False):
    """Read a safetensors file into {name: CPU tensor} (and its metadata if asked)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        dtype = _FROM_ST[info["dtype"]]
        buf = bytearray(data[a:b])
        t = torch.frombuffer(buf, dtype=torch.uint8) if b > a else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(dtype).reshape(info["shape"]).clone()
    return (out, meta) if with_metadata else out


SHARD_PREFIX = "diffusion_pytorch_model"
INDEX_NAME = SHARD_PREFIX + ".safetensors.index.json"


def save_sharded(state, out_dir, max_bytes=15 * 2**20 - 2**16, metadata=None):
    """Split {name: tensor} into shards under max_bytes each (default: 15 MiB less 64 KiB
    for the header), named diffusion_pytorch_model-0000N-of-0000M.safetensors, plus the
    diffusers-style index json mapping every tensor to its shard. Returns the file names."""
    groups, cur, size = [], {}, 0
    for name in sorted(state):
        n = state[name].numel() * state[name].element_size()
        if cur and size + n > max_bytes:
            groups.append(cur)
            cur, size = {}, 0
        cur[name], size = state[name], size + n
    groups.append(cur)
    names, weight_map = [], {}
    for i, g in enumerate(groups):
        fname = f"{SHARD_PREFIX}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(g, f"{out_dir}/{fname}", metadata)
        weight_map.update({k: fname for k in g})
        names.append(fname)
    total = sum(t.numel() * t.element_size() for t in state.values())
    with open(f"{out_dir}/{INDEX_NAME}", "w") as f:
        json.dump({"metadata": {"total_size": total, **(metadata or {})},
                   "weight_map": weight_map}, f, indent=1, sort_keys=True)
    return names + [INDEX_NAME]


def load_sharded(weights_dir):
    """Inverse of save_sharded: {name: tensor} from the index json and its shards."""
    with open(f"{weights_dir}/{INDEX_NAME}") as f:
        index = json.load(f)
    state = {}
    for fname in sorted(set(index["weight_map"].values())):
        state.update(load_file(f"{weights_dir}/{fname}"))
    return state
