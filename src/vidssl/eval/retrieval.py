"""Nearest-neighbour video retrieval: recall at k (R@k).

Protocol (CSTP appendix "Video Retrieval Settings"; CVTCL section 3.1 (2)): test-split
features are the queries, train-split features the gallery; neighbours are ranked by cosine
similarity; a query counts as a hit at k when at least one of its top-k neighbours has the
query's class. R@k is the fraction of queries that are hits at k, for k in (1, 5, 10, 20, 50).

Ties: neighbours are ranked by a stable sort on (-similarity, gallery index), i.e. among
gallery items with exactly equal float32 similarity the one with the lower gallery index comes
first. The ranking is therefore deterministic and independent of the hardware's top-k
kernel. k larger than the gallery is clamped to the gallery size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidssl.eval.payload import load_payload, save_payload

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50)
EXAMPLES_FORMAT = "vidssl.retrieval_examples/1"


def cosine_similarity(query_feats: Tensor, gallery_feats: Tensor) -> Tensor:
    """query_feats (Q, D), gallery_feats (G, D) -> (Q, G) cosine similarities (float32)."""
    if query_feats.ndim != 2 or gallery_feats.ndim != 2:
        raise ValueError(
            f"features must be (N, D); got query {tuple(query_feats.shape)}, "
            f"gallery {tuple(gallery_feats.shape)}"
        )
    if query_feats.shape[1] != gallery_feats.shape[1]:
        raise ValueError(
            f"feature dims differ: query D={query_feats.shape[1]}, gallery D={gallery_feats.shape[1]}"
        )
    q = F.normalize(query_feats.float(), dim=1)
    g = F.normalize(gallery_feats.float(), dim=1)
    return torch.einsum("qd,gd->qg", q, g)


def topk_neighbours(
    query_feats: Tensor, gallery_feats: Tensor, k: int, chunk_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """The k most similar gallery items of every query, ties broken by lower gallery index.

    query_feats: (Q, D), gallery_feats: (G, D) -> (sims (Q, k'), indices (Q, k')) with
    k' = min(k, G), sorted by decreasing similarity. Queries are processed ``chunk_size`` at a
    time to bound memory at chunk_size * G similarities.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, gallery_feats.shape[0])
    sims_out, idx_out = [], []
    for start in range(0, query_feats.shape[0], chunk_size):
        sim = cosine_similarity(query_feats[start : start + chunk_size], gallery_feats)  # (q, G)
        # stable ascending sort of -sim == descending sim with ties kept in gallery order
        order = torch.sort(-sim, dim=1, stable=True).indices[:, :k]  # (q, k)
        sims_out.append(torch.gather(sim, 1, order))
        idx_out.append(order)
    if not sims_out:  # no queries
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(sims_out), torch.cat(idx_out)


def recall_at_k(
    query_feats: Tensor,
    query_labels: Tensor,
    gallery_feats: Tensor,
    gallery_labels: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[int, float]:
    """R@k for every k in ``ks``: the fraction of queries with a same-class item in their top-k.

    query_feats (Q, D), query_labels (Q,), gallery_feats (G, D), gallery_labels (G,).
    Returns {k: recall in [0, 1]} keyed by the requested k (a k above G is evaluated as G).
    """
    if query_labels.shape != (query_feats.shape[0],):
        raise ValueError(
            f"query_labels must be ({query_feats.shape[0]},), got {tuple(query_labels.shape)}"
        )
    if gallery_labels.shape != (gallery_feats.shape[0],):
        raise ValueError(
            f"gallery_labels must be ({gallery_feats.shape[0]},), got {tuple(gallery_labels.shape)}"
        )
    if query_feats.shape[0] == 0 or gallery_feats.shape[0] == 0:
        raise ValueError("recall_at_k needs at least one query and one gallery item")
    if (query_labels < 0).any() or (gallery_labels < 0).any():
        raise ValueError("recall_at_k needs labelled queries and gallery (found label -1)")
    if not ks:
        raise ValueError("ks must list at least one k")
    _, idx = topk_neighbours(query_feats, gallery_feats, max(ks))  # (Q, kmax)
    hits = gallery_labels[idx] == query_labels[:, None]  # (Q, kmax)
    hit_by = torch.cummax(hits.int(), dim=1).values.bool()  # (Q, kmax): a hit within the first j+1
    kmax = idx.shape[1]
    return {k: hit_by[:, min(k, kmax) - 1].float().mean().item() for k in ks}


def recall_metric_names(recalls: dict[int, float]) -> dict[str, float]:
    """{1: 0.4} -> {"R@1": 0.4}, the names used in eval result files."""
    return {f"R@{k}": v for k, v in recalls.items()}


@dataclass
class RetrievalExamples:
    """What the retrieval grid shows, saved by the eval run for the report.

    query_frames: (Q, S, H, W, 3) uint8, S frames of each query clip.
    neighbour_frames: (Q, k, S, H, W, 3) uint8.
    query_labels: (Q,) int64; neighbour_labels: (Q, k) int64; sims: (Q, k) float32.
    class_names: names indexed by label.
    """

    query_frames: Tensor
    neighbour_frames: Tensor
    query_labels: Tensor
    neighbour_labels: Tensor
    sims: Tensor
    class_names: list[str]

    def save(self, path: str | Path) -> Path:
        """Write as plain tensors + strings (loadable with ``weights_only=True``)."""
        return save_payload(self, path, EXAMPLES_FORMAT, str_lists=("class_names",))

    @classmethod
    def load(cls, path: str | Path) -> RetrievalExamples:
        """Read a file written by :meth:`save`; errors name the file."""
        path = Path(path)
        payload = load_payload(path, EXAMPLES_FORMAT, "retrieval examples")
        examples = cls(**payload)
        q, k = examples.neighbour_labels.shape
        if examples.query_frames.shape[0] != q or examples.neighbour_frames.shape[:2] != (q, k):
            raise ValueError(f"{path}: inconsistent shapes of frames and labels")
        return examples
