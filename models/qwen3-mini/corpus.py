"""The training text of qwen3-mini: the GNU Collaborative International Dictionary of English (GCIDE,
GPL-2 or later; mostly Webster's 1913 with later additions), from Debian's `dict-gcide` package, the
only sizeable English prose this project's machines can fetch (npm and Debian only).

    python3 models/qwen3-mini/corpus.py [--out models/qwen3-mini/corpus]

apt-get download + dpkg-deb -x, then the dictd data (dictzip reads as gzip): one entry per headword
block, Webster source tags such as "[1913 Webster]" dropped, wrapped lines joined, one entry per
line; every 100th entry (in order) is held out. Writes train.txt and valid.txt (the folder is
ignored by git and carried to the GPU machine) and prints their sizes and sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

SOURCE_TAG = re.compile(r"^\s*\[[^\]]*\]\s*$")


def entries(text: str):
    """Headword blocks of dictd text: a block starts at a line with no indentation."""
    block: list[str] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and block:
            yield block
            block = []
        block.append(line)
    if block:
        yield block


def clean(block: list[str]) -> str:
    """One entry as one line: source tags dropped, whitespace collapsed."""
    kept = [ln.strip() for ln in block if ln.strip() and not SOURCE_TAG.match(ln)]
    return re.sub(r"\s+", " ", " ".join(kept)).strip()


def split(text: str, every: int = 100):
    train, valid = [], []
    for i, block in enumerate(entries(text)):
        line = clean(block)
        if len(line) < 20 or line.startswith("00-database"):  # dictd headers, cross-reference stubs
            continue
        (valid if i % every == 0 else train).append(line)
    return train, valid


def fetch_gcide(work: Path) -> str:
    subprocess.run(["apt-get", "download", "dict-gcide"], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("dict-gcide_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    return gzip.open(work / "x" / "usr" / "share" / "dictd" / "gcide.dict.dz").read().decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "corpus"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        train, valid = split(fetch_gcide(Path(work)))
    for name, lines in (("train.txt", train), ("valid.txt", valid)):
        data = ("\n".join(lines) + "\n").encode()
        tmp = out / f"{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out / name)
        print(f"{out / name}: {len(lines)} entries, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
