"""Raw safetensors reading and writing for tests, for the dtypes numpy's safetensors binding
cannot hold (F8_E4M3, F8_E5M2, BF16): values come back as their bit patterns."""

import json
import struct
from pathlib import Path

import numpy as np

NUMPY_OF = {
    "F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
    "F8_E4M3": np.uint8, "F8_E5M2": np.uint8, "I8": np.int8, "U8": np.uint8,
    "I32": np.int32, "I64": np.int64,
}


def read_raw(path: Path) -> tuple[dict[str, tuple[str, np.ndarray]], dict]:
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[base + begin : base + end], dtype=NUMPY_OF[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out, meta


def write_raw(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: dict | None = None) -> None:
    header, chunks, offset = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(chunks))
