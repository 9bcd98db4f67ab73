"""Negative-free similarity losses: BYOL's normalised regression and SimSiam's negative cosine.

Pure functions. They do not detach anything: the caller applies stop-gradient to the target
(SimSiam) or computes it with a no-grad momentum network (BYOL).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def _check_pair(name: str, p: Tensor, z: Tensor) -> None:
    if p.ndim != 2 or p.shape != z.shape:
        raise ValueError(
            f"{name}: expected two (N, D) tensors, got {tuple(p.shape)}, {tuple(z.shape)}"
        )


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """SimSiam's D(p, z) (Chen & He 2021, eq. 1; CSTP eq. 3 up to the batch mean).

    p, z: (N, D). Returns the scalar -mean_i cos(p_i, z_i), in [-1, 1].
    """
    _check_pair("negative_cosine", p, z)
    return -F.cosine_similarity(p, z, dim=1).mean()


def byol_regression(p: Tensor, z: Tensor) -> Tensor:
    """BYOL's loss (Grill et al. 2020, eq. 2): ||p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z).

    p, z: (N, D). Returns the scalar mean_i (2 - 2 cos(p_i, z_i)), in [0, 4].
    """
    _check_pair("byol_regression", p, z)
    return 2 - 2 * F.cosine_similarity(p, z, dim=1).mean()


def symmetrised(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    p1: Tensor,
    p2: Tensor,
    z1: Tensor,
    z2: Tensor,
) -> Tensor:
    """Symmetrised loss: 0.5 * (loss_fn(p1, z2) + loss_fn(p2, z1)).

    p1, p2: (N, D) predictions from views 1 and 2; z1, z2: (N, D) targets from views 1 and 2.
    Each view's prediction regresses the other view's target (SimSiam eq. 2). BYOL sums the
    two terms (its L + L~); callers wanting that scale multiply by 2.
    """
    return 0.5 * (loss_fn(p1, z2) + loss_fn(p2, z1))
