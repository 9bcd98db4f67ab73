"""Nearest neighbours by cosine similarity over an embedded collection.

Two backends, chosen by name from :data:`SEARCH_BACKENDS`:

- ``"torch"``: exact search, one matrix product of the queries with every stored embedding
  (rows are L2-normalised, so the dot product is the cosine similarity) and a top-k.
- ``"faiss"`` (the ``search`` extra, ``pip install vidssl[search]``): a faiss index. Below
  :data:`IVF_MIN_ROWS` rows it is ``IndexFlatIP`` (exact, same neighbours as ``"torch"``);
  from :data:`IVF_MIN_ROWS` rows an inverted-file index ``IndexIVFFlat`` (``sqrt(N)`` lists,
  :data:`IVF_NPROBE` visited per query: approximate) that is built once and saved beside the
  embeddings, so later searches only load it.

``"auto"`` (:func:`choose_backend`) takes ``"faiss"`` from :data:`AUTO_FAISS_MIN_ROWS` rows
when faiss is installed, else ``"torch"``.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

IVF_MIN_ROWS = 2_000_000  # from this many rows the faiss backend builds an IVF index
IVF_NPROBE = 64  # inverted lists visited per query
IVF_TRAIN_PER_LIST = 64  # training vectors per list (k-means sample)
AUTO_FAISS_MIN_ROWS = 2_000_000  # "auto" picks faiss from this many rows (when installed)


class SearchIndex(Protocol):
    """``search(queries (Q, D), k) -> (scores (Q, k) float32, rows (Q, k) int64)``, best first."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class TorchSearch:
    """Exact cosine search with torch (embeddings held in memory as one float32 tensor)."""

    def __init__(self, embeddings: np.ndarray, cache_dir: Path | None = None) -> None:
        x = np.ascontiguousarray(embeddings, dtype=np.float32)  # (N, D), maybe a read-only mmap
        with warnings.catch_warnings():  # never written: a read-only array is fine
            warnings.simplefilter("ignore", UserWarning)
            self.emb = torch.from_numpy(x)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # (Q, D)
        k = min(k, self.emb.shape[0])
        sims = self.emb @ q.T  # (N, D) @ (D, Q) -> (N, Q) cosine similarities
        scores, rows = torch.topk(sims, k, dim=0)  # (k, Q) each, best first
        return scores.T.contiguous().numpy(), rows.T.contiguous().numpy()  # -> (Q, k)


def faiss_available() -> bool:
    """True when the ``faiss`` module (package faiss-cpu) can be imported."""
    return importlib.util.find_spec("faiss") is not None


class FaissSearch:
    """faiss inner-product index: flat (exact) below ``ivf_min_rows``, IVF (approximate) above.

    ``cache_dir``: where the IVF index is saved (``faiss-ivf-<N>x<D>.index``) and reloaded.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        cache_dir: Path | None = None,
        ivf_min_rows: int = IVF_MIN_ROWS,
        nprobe: int = IVF_NPROBE,
    ) -> None:
        if not faiss_available():
            raise RuntimeError(
                "the faiss backend needs faiss-cpu: pip install 'vidssl[search]' (or use --backend torch)"
            )
        import faiss

        x = np.ascontiguousarray(embeddings, dtype=np.float32)  # (N, D)
        n, d = x.shape
        if n < ivf_min_rows:
            self.kind = "flat"
            self.index = faiss.IndexFlatIP(d)
            self.index.add(x)
            return
        self.kind = "ivf"
        path = cache_dir / f"faiss-ivf-{n}x{d}.index" if cache_dir is not None else None
        if path is not None and path.is_file():
            self.index = faiss.read_index(str(path))
        else:
            nlist = max(1, int(math.sqrt(n)))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.own_fields = True  # the index keeps its quantizer alive
            quantizer.this.disown()
            step = max(1, n // (nlist * IVF_TRAIN_PER_LIST))
            index.train(x[::step])  # k-means on an evenly spaced sample
            index.add(x)
            if path is not None:
                faiss.write_index(index, str(path))
            self.index = index
        self.index.nprobe = min(nprobe, self.index.nlist)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores, rows = self.index.search(q, min(k, self.index.ntotal))
        return scores, rows.astype(np.int64)


# backend name -> index class (embeddings, cache_dir) -> SearchIndex
SEARCH_BACKENDS: dict[str, type] = {"torch": TorchSearch, "faiss": FaissSearch}


def choose_backend(name: str, num_rows: int) -> str:
    """``"auto"`` -> ``"faiss"`` from :data:`AUTO_FAISS_MIN_ROWS` rows when installed, else
    ``"torch"``; other names are checked and returned."""
    if name == "auto":
        return "faiss" if num_rows >= AUTO_FAISS_MIN_ROWS and faiss_available() else "torch"
    if name not in SEARCH_BACKENDS:
        raise ValueError(
            f"unknown search backend {name!r}; choose from {['auto', *SEARCH_BACKENDS]}"
        )
    return name


def build_index(
    embeddings: np.ndarray, backend: str = "auto", cache_dir: Path | None = None
) -> SearchIndex:
    """The search index of ``embeddings`` (N, D) with ``backend`` (see :func:`choose_backend`)."""
    name = choose_backend(backend, len(embeddings))
    return SEARCH_BACKENDS[name](embeddings, cache_dir)
