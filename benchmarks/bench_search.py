"""``vidssl search`` over 1,000,000 stored 128-d embeddings: load time and time per query.

Random unit vectors (the worst case for an approximate index: no cluster structure) are
written as a ``vidssl embed`` collection (``embeddings.npy`` + ``manifest.tsv`` +
``embed.json``) in a temporary folder. Then, in this process:

1. load: :func:`vidssl.eval.collection.load_collection` (embeddings memory-mapped, manifest
   read) and building each backend's index over the embeddings;
2. query: the median time of ``--queries`` single-video searches (k = 10) for exact torch
   search, faiss ``IndexFlatIP`` (exact) and faiss ``IndexIVFFlat`` (approximate; recall@10
   against the exact neighbours is printed), when faiss is installed;
3. the whole command once: ``vidssl search EMB_DIR --query 123`` (load + search + print).

Target: a query answers in under 0.5 s once loaded (exact or indexed).

    python benchmarks/bench_search.py [--rows 1000000] [--dim 128] [--queries 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from vidssl.app.cli import main
from vidssl.eval.collection import (
    EMBEDDINGS_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    load_collection,
    write_meta,
)
from vidssl.eval.search import FaissSearch, TorchSearch, faiss_available


def write_collection(root: Path, rows: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(root / EMBEDDINGS_NAME, x)
    with open(root / MANIFEST_NAME, "w") as f:
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for i in range(rows):
            f.write(f"{i}\tvideos/{i:07d}.mp4\t10.000\t250\t25.000\t240\t320\t10\t\n")
    write_meta(root, {"checkpoint": "random", "weights": "random", "backbone": "r3d_18"})


def timed(fn):  # noqa: ANN001
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, t_write = timed(lambda: write_collection(root, args.rows, args.dim))
        print(f"collection: {args.rows:,} x {args.dim} float32 (written in {t_write:.1f} s)")
        coll, t_load = timed(lambda: load_collection(root))
        print(f"load_collection (mmap embeddings + manifest): {t_load:.2f} s")
        rng = np.random.default_rng(1)
        queries = np.asarray(coll.embeddings[rng.integers(0, args.rows, args.queries)])
        backends = {"torch exact": lambda: TorchSearch(coll.embeddings)}
        if faiss_available():
            backends["faiss flat (exact)"] = lambda: FaissSearch(coll.embeddings)
            backends["faiss IVF (built)"] = lambda: FaissSearch(coll.embeddings, root, 1)
            backends["faiss IVF (cached)"] = lambda: FaissSearch(coll.embeddings, root, 1)
        else:
            print("faiss not installed: torch only (pip install 'vidssl[search]')")
        exact_rows = None
        print(
            f"\n{'backend':<20} {'index load/build s':>18} {'median query s':>15} {'recall@10':>10}"
        )
        for name, make in backends.items():
            index, t_build = timed(make)
            times, found = [], []
            for q in queries:
                (_, rows), dt = timed(lambda q=q, ix=index: ix.search(q[None], args.k))
                times.append(dt)
                found.append(rows[0])
            if exact_rows is None:
                exact_rows = found
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, exact_rows)])
            print(f"{name:<20} {t_build:>18.2f} {np.median(times):>15.4f} {recall:>10.3f}")
            del index  # free its memory before the next backend
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            (rc, t_cli) = timed(
                lambda: main(["search", str(root), "--query", "123", "--backend", "torch"])
            )
        print(
            f"\nvidssl search EMB_DIR --query 123 --backend torch (load + search): {t_cli:.2f} s (exit {rc})"
        )


if __name__ == "__main__":
    main_bench()
