"""Pretext-task losses: MTCL's pretext-task contrastive loss (eq. 9) and per-task cross-entropy.

Pure functions: no ``torch.distributed``, no device moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def pretext_contrastive(
    h: Tensor, groups: Sequence[int] | Tensor, temperature: float = 0.07
) -> Tensor:
    """MTCL eq. (9): the task views of one video attract within a kind and repel across kinds.

    ``h: (N, M, D)`` features of M task views of each of N videos; ``groups: (M,)`` the kind
    of every task (e.g. ``[0, 0, 1, 1]`` for TP, TO, SR, SJ). For video n, with
    ``s_ij = cos(h_ni, h_nj) / tau`` over the unordered pairs ``i < j``::

        L_n = -log( sum_{same-kind pairs} exp(s_ij) / sum_{all pairs} exp(s_ij) )

    and the loss is the mean over videos. With MTCL's four tasks the positives are (TP, TO) and
    (SR, SJ) and the negatives the four temporal-vs-spatial pairs, exactly as eq. (9); tau = 0.07
    (sec. 3.2).

    Notes on the reading of eq. (9):
    - Its denominator is written ``sum_{i != j}``; we count each unordered pair once, i.e. the
      set of the positive and negative pairs named in sec. 2.3.2. Counting ordered pairs would
      count every (symmetric) pair twice and only add ``log 2`` to the loss.
    - With no same-kind pair (one temporal + one spatial task, MTCL Table 1's "pair + L_con"
      rows) eq. (9) has an empty numerator. We then use a virtual positive of maximal similarity
      (cos = 1), which reduces the loss to ``log(1 + sum_neg exp((cos_ij - 1) / tau))``: only
      the temporal-vs-spatial separation remains (departure, MTCL does not define this case).
    """
    if h.ndim != 3 or h.shape[1] < 2:
        raise ValueError(f"pretext_contrastive: h must be (N, M >= 2, D), got {tuple(h.shape)}")
    if not temperature > 0:
        raise ValueError(f"pretext_contrastive: temperature must be > 0, got {temperature}")
    m = h.shape[1]
    g = torch.as_tensor(groups, device=h.device)
    if g.shape != (m,):
        raise ValueError(f"pretext_contrastive: groups must have M={m} entries, got {g.tolist()}")
    z = F.normalize(h.float(), dim=-1)
    sim = torch.einsum("nid,njd->nij", z, z) / temperature  # (N, M, M)
    i, j = torch.triu_indices(m, m, offset=1, device=h.device)  # unordered pairs, (P,) each
    logits = sim[:, i, j]  # (N, P)
    positive = g[i] == g[j]  # (P,)
    if bool(positive.any()):
        numerator = torch.logsumexp(logits[:, positive], dim=1)  # (N,)
    else:
        numerator = logits.new_full((logits.shape[0],), 1.0 / temperature)  # virtual positive
        logits = torch.cat([numerator[:, None], logits], dim=1)  # (N, 1 + P)
    return (torch.logsumexp(logits, dim=1) - numerator).mean()


def _check_labels(task: str, logits: Tensor, labels: Tensor) -> None:
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"pretext task {task!r}: expected {logits.shape[0]} labels, got {tuple(labels.shape)}"
        )
    classes = logits.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(
            f"pretext task {task!r}: labels must be in [0, {classes}), got "
            f"[{int(labels.min())}, {int(labels.max())}]; do the recipe's candidates "
            "(data.recipe) match the method's?"
        )


def pretext_cross_entropy(
    logits: Mapping[str, Tensor], labels: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Softmax cross-entropy per task, mean over the batch.

    ``logits[task]: (N, K_task)``, ``labels[task]: (N,)`` int. Returns ``{task: scalar}``.
    """
    out: dict[str, Tensor] = {}
    for task, x in logits.items():
        if task not in labels:
            raise KeyError(f"pretext task {task!r}: no labels (got {sorted(labels)})")
        y = labels[task].long()
        _check_labels(task, x, y)
        out[task] = F.cross_entropy(x.float(), y)
    return out


@torch.no_grad()
def pretext_accuracy(
    logits: Mapping[str, Tensor], labels: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Top-1 accuracy per task. Same inputs as :func:`pretext_cross_entropy`."""
    return {
        task: (x.argmax(dim=1) == labels[task].long()).float().mean() for task, x in logits.items()
    }
