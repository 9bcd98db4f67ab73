"""CVTCL losses (Wang et al., sec. 2.2-2.3): local / local-temporal contrast, multi-instance
InfoNCE over a memory with mined positives (CoCLR's L_RF), and top-K neighbour mining.

Pure functions. Queries and keys are L2-normalised here; ``memory`` / ``queue`` rows are
expected to be unit-norm already (MoCo keys). ``exclude`` masks drop memory entries from a
row's candidates (e.g. stale keys of the query's own video).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _neg_logits(q: Tensor, queue: Tensor, exclude: Tensor | None) -> Tensor:
    """q (N, D), queue (K, D) -> (N, K) similarities, -inf where ``exclude`` (N, K) is True."""
    neg = torch.einsum("nd,kd->nk", q, queue)  # (N, K)
    return neg if exclude is None else neg.masked_fill(exclude, float("-inf"))


def local_loss(
    query: Tensor,
    pos_keys: Tensor,
    queue: Tensor,
    temperature: float = 0.07,
    exclude: Tensor | None = None,
) -> Tensor:
    """L_local (eq. 6): ``1/P sum_p L_NCE(z_1, z_p, queue)`` over positives {s1^a, s2, s3, s4}.

    query: (N, D) anchor ``z_1``; pos_keys: (N, P, D) its P positives; queue: (K, D) negatives
    (other videos); exclude: optional (N, K) bool. Logits laid out as Algorithm 1: (P*N, 1+K),
    positive-major rows, the negatives repeated for every positive; cross-entropy with target
    0 averaged over the P*N rows (= the 1/P of eq. 6, then the mean over the batch).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n, p, _ = pos_keys.shape
    q = F.normalize(query, dim=1)
    k = F.normalize(pos_keys, dim=2)
    pos = torch.einsum("nd,npd->pn", q, k).reshape(p * n, 1)  # (P, N) -> (P*N, 1)
    neg = _neg_logits(q, queue, exclude).repeat(p, 1)  # (N, K) -> (P*N, K)
    logits = torch.cat([pos, neg], dim=1) / temperature  # (P*N, 1 + K)
    target = torch.zeros(p * n, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def local_temporal_loss(
    query: Tensor, anchor_key: Tensor, other_keys: Tensor, temperature: float = 0.07
) -> Tensor:
    """L_LT (eq. 7): positive s1^a, negatives the other sub-clips {s2, s3, s4} of the video.

    query: (N, D) ``z_1``; anchor_key: (N, D) ``z_1^a``; other_keys: (N, M, D). Logits
    (N, 1 + M), target 0 (Algorithm 1's ``logits1``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = F.normalize(query, dim=1)
    pos = torch.einsum("nd,nd->n", q, F.normalize(anchor_key, dim=1)).unsqueeze(1)  # (N, 1)
    neg = torch.einsum("nd,nmd->nm", q, F.normalize(other_keys, dim=2))  # (N, M)
    logits = torch.cat([pos, neg], dim=1) / temperature  # (N, 1 + M)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def multi_instance_nce(
    query: Tensor,
    key: Tensor,
    memory: Tensor,
    pos_mask: Tensor,
    temperature: float = 0.07,
    exclude: Tensor | None = None,
) -> Tensor:
    """CoCLR's multi-instance InfoNCE (L_RF, eqs. 2-5) against a memory bank.

        l_i = -log( sum_{p in P_i} exp(q_i . p / t) / sum_{c} exp(q_i . c / t) )

    query, key: (N, D) -- ``key`` row i is query i's own positive (the other augmentation);
    memory: (M, D) unit-norm candidates; pos_mask: (N, M) bool, further positives of row i
    (mined neighbours, own-video entries); exclude: optional (N, M) bool, dropped entries.
    The candidates c are the own key and every non-excluded memory entry. With no mined
    positive this is MoCo's InfoNCE. Returns the mean over the N rows.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = F.normalize(query, dim=1)
    own = torch.einsum("nd,nd->n", q, F.normalize(key, dim=1)).unsqueeze(1)  # (N, 1)
    logits = torch.cat([own, _neg_logits(q, memory, exclude)], dim=1) / temperature  # (N, 1+M)
    own_col = torch.ones_like(pos_mask[:, :1])  # (N, 1) the own key is always positive
    positive = torch.cat([own_col, pos_mask], dim=1)  # (N, 1 + M)
    if exclude is not None:
        positive[:, 1:] &= ~exclude
    log_pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)  # (N,)
    return (torch.logsumexp(logits, dim=1) - log_pos).mean()


def topk_neighbours(query: Tensor, memory: Tensor, k: int, exclude: Tensor | None = None) -> Tensor:
    """Eqs. 3 and 5: the K memory rows most similar (dot product) to each query.

    query: (N, D), memory: (M, D), exclude: (N, M) bool (never chosen, e.g. the query's own
    video and unfilled slots). Returns (N, k) long indices into ``memory`` (k = 0: (N, 0)).
    A row with fewer than k candidates (a memory still filling up) also gets excluded
    indices: drop them with ``indices_to_mask(...) & ~exclude``.
    """
    if not 0 <= k <= memory.shape[0]:
        raise ValueError(f"topk: k must be in [0, {memory.shape[0]}] (memory rows), got {k}")
    sim = _neg_logits(F.normalize(query, dim=1), memory, exclude)  # (N, M)
    return sim.topk(k, dim=1).indices  # (N, k)


def indices_to_mask(indices: Tensor, size: int) -> Tensor:
    """(N, k) long -> (N, size) bool with True at the given columns."""
    mask = torch.zeros(indices.shape[0], size, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, indices, True)
