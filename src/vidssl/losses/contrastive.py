"""Contrastive losses: InfoNCE, NT-Xent (SimCLR / CVRL) and MoCo's queue loss.

Pure functions: no ``torch.distributed``, no device moves. Similarities are cosines (inputs
are L2-normalised here). For a multi-rank batch the caller gathers the candidates (see
``vidssl.dist.all_gather_with_grad``) and passes them with ``offset`` = the row of its first
local sample in the gathered tensor (``rank * N`` for rank-major gathering).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _check_rows(name: str, local: Tensor, gathered: Tensor, offset: int) -> None:
    if local.ndim != 2 or gathered.ndim != 2 or local.shape[1] != gathered.shape[1]:
        raise ValueError(
            f"{name}: expected (N, D) local and (M, D) gathered, got "
            f"{tuple(local.shape)} and {tuple(gathered.shape)}"
        )
    if not 0 <= offset <= gathered.shape[0] - local.shape[0]:
        raise ValueError(
            f"{name}: offset {offset} puts {local.shape[0]} local rows outside the "
            f"{gathered.shape[0]} gathered rows"
        )


def info_nce(
    query: Tensor,
    key: Tensor,
    temperature: float = 0.1,
    *,
    key_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """One-directional InfoNCE (Oord et al. 2018) with in-batch negatives.

    query, key: (N, D) -- row i of ``key`` is the positive of row i of ``query``.
    key_all: (M, D) keys of the global batch (default ``key``); query i's positive is row
    ``offset + i``, the other M - 1 rows are its negatives.

        loss = mean_i -log( exp(q_i . k_{offset+i} / t) / sum_j exp(q_i . k_j / t) )

    with q, k unit-normalised. Returns a scalar.
    """
    _check_temperature(temperature)
    key_all = key if key_all is None else key_all
    _check_rows("info_nce", query, key_all, offset)
    q = F.normalize(query, dim=1)
    k = F.normalize(key_all, dim=1)
    logits = torch.einsum("nd,md->nm", q, k) / temperature  # (N, M)
    target = torch.arange(query.shape[0], device=query.device) + offset
    return F.cross_entropy(logits, target)


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    *,
    z1_all: Tensor | None = None,
    z2_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """NT-Xent: SimCLR's loss (CSTP eq. 1; CVRL eq. 1), both views as anchors.

    z1, z2: (N, D) projections of the two views of the local batch.
    z1_all, z2_all: (M, D) the same projections gathered over ranks (default z1, z2, M = N);
    local sample i is row ``offset + i`` of both.

    The 2N local anchors a (both views) are compared with the 2M candidates (both views of
    the global batch). With positive p(a) (the other view of the same sample):

        l_a  = -log( exp(s(a, p(a)) / t) / sum_{k != a} exp(s(a, k) / t) )
        loss = mean over the 2N anchors of l_a

    s is cosine similarity; the denominator has 2M - 1 terms, the positive and 2M - 2
    negatives (both views of every other sample). Returns a scalar.
    """
    _check_temperature(temperature)
    if (z1_all is None) != (z2_all is None):
        raise ValueError("nt_xent: pass both z1_all and z2_all or neither")
    z1_all = z1 if z1_all is None else z1_all
    z2_all = z2 if z2_all is None else z2_all
    _check_rows("nt_xent z1", z1, z1_all, offset)
    _check_rows("nt_xent z2", z2, z2_all, offset)
    n, m = z1.shape[0], z1_all.shape[0]
    anchors = F.normalize(torch.cat([z1, z2]), dim=1)  # 2 x (N, D) -> (2N, D)
    cands = F.normalize(torch.cat([z1_all, z2_all]), dim=1)  # 2 x (M, D) -> (2M, D)
    logits = torch.einsum("ad,kd->ak", anchors, cands) / temperature  # (2N, 2M)
    local = torch.arange(n, device=z1.device) + offset  # (N,) rows of the local samples
    self_col = torch.cat([local, local + m])  # (2N,) each anchor's own column
    pos_col = torch.cat([local + m, local])  # (2N,) the other view of the same sample
    is_self = F.one_hot(self_col, 2 * m).bool()  # (2N, 2M)
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, pos_col)


def moco_logits(query: Tensor, key: Tensor, queue: Tensor, temperature: float = 0.07) -> Tensor:
    """MoCo logits (He et al. 2020, eq. 1): column 0 is the positive, then the queue.

    query, key: (N, D) online queries and momentum-encoder keys (normalised here).
    queue: (K, D) unit-norm keys of earlier batches (the negatives).
    Returns (N, 1 + K) logits already divided by the temperature.
    """
    _check_temperature(temperature)
    if query.shape != key.shape or queue.ndim != 2 or queue.shape[1] != query.shape[1]:
        raise ValueError(
            f"moco_logits: expected query/key (N, D) and queue (K, D), got "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(queue.shape)}"
        )
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1)
    pos = torch.einsum("nd,nd->n", q, k).unsqueeze(1)  # (N,) -> (N, 1)
    neg = torch.einsum("nd,kd->nk", q, queue)  # (N, K)
    return torch.cat([pos, neg], dim=1) / temperature  # (N, 1 + K)


def moco_loss(query: Tensor, key: Tensor, queue: Tensor, temperature: float = 0.07) -> Tensor:
    """Cross-entropy over [positive, queue negatives] / t, target 0. Shapes as ``moco_logits``."""
    logits = moco_logits(query, key, queue, temperature)
    target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)
