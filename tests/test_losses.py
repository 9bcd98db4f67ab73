"""Losses against hand-written loop references (numpy, float64) on fixed tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidssl.losses import (
    byol_regression,
    info_nce,
    moco_logits,
    moco_loss,
    negative_cosine,
    nt_xent,
    symmetrised,
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.sqrt(np.dot(a, a)) * np.sqrt(np.dot(b, b))))


def _fixed(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d))).float()


def _ref_nt_xent(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """SimCLR with explicit loops: 2N anchors, each against the other 2N - 1 samples."""
    n = len(z1)
    zs = [*z1, *z2]  # sample i = view 1 of item i, sample n + i = view 2 of item i
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        denom = 0.0
        for k in range(2 * n):
            if k != a:
                denom += math.exp(_cos(zs[a], zs[k]) / t)
        total += -math.log(math.exp(_cos(zs[a], zs[pos]) / t) / denom)
    return total / (2 * n)


def test_nt_xent_matches_loop_reference() -> None:
    z1, z2 = _fixed(5, 7, 0), _fixed(5, 7, 1)
    for t in (0.1, 0.5, 1.0):
        got = nt_xent(z1, z2, t).item()
        assert got == pytest.approx(
            _ref_nt_xent(z1.double().numpy(), z2.double().numpy(), t), rel=1e-5
        )


def test_nt_xent_with_gathered_keys_equals_full_batch() -> None:
    """Chunks with the full batch as candidates and the right offset average to the full loss."""
    z1, z2 = _fixed(6, 4, 2), _fixed(6, 4, 3)
    full = nt_xent(z1, z2, 0.2)
    parts = [
        nt_xent(z1[s : s + 2], z2[s : s + 2], 0.2, z1_all=z1, z2_all=z2, offset=s)
        for s in (0, 2, 4)
    ]
    torch.testing.assert_close(torch.stack(parts).mean(), full)
    # The wrong offset gives a different loss, so the offset really selects the positive.
    wrong = nt_xent(z1[2:4], z2[2:4], 0.2, z1_all=z1, z2_all=z2, offset=0)
    assert not torch.allclose(wrong, parts[1])


def test_nt_xent_rejects_bad_input() -> None:
    z = _fixed(4, 3, 0)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="offset"):
        nt_xent(z[:2], z[:2], 0.1, z1_all=z, z2_all=z, offset=3)
    with pytest.raises(ValueError, match="both"):
        nt_xent(z, z, 0.1, z1_all=z)


def test_info_nce_matches_loop_reference() -> None:
    q, k_all = _fixed(3, 5, 4), _fixed(7, 5, 5)
    offset, t = 2, 0.3
    qn, kn = q.double().numpy(), k_all.double().numpy()
    ref = 0.0
    for i in range(3):
        logits = [_cos(qn[i], kn[j]) / t for j in range(7)]
        ref += -(logits[offset + i] - math.log(sum(math.exp(v) for v in logits)))
    got = info_nce(q, k_all[offset : offset + 3], t, key_all=k_all, offset=offset)
    assert got.item() == pytest.approx(ref / 3, rel=1e-5)


def test_moco_loss_matches_loop_reference() -> None:
    q, k = _fixed(4, 6, 6), _fixed(4, 6, 7)
    queue = torch.nn.functional.normalize(_fixed(9, 6, 8), dim=1)
    t = 0.07
    qn, kn, qu = q.double().numpy(), k.double().numpy(), queue.double().numpy()
    ref = 0.0
    for i in range(4):
        pos = _cos(qn[i], kn[i]) / t
        negs = [_cos(qn[i], qu[j]) / t for j in range(9)]
        ref += -(pos - math.log(math.exp(pos) + sum(math.exp(v) for v in negs)))
    assert moco_loss(q, k, queue, t).item() == pytest.approx(ref / 4, rel=1e-5)
    logits = moco_logits(q, k, queue, t)
    assert logits.shape == (4, 10)
    assert logits[1, 0].item() == pytest.approx(_cos(qn[1], kn[1]) / t, rel=1e-5)
    assert logits[2, 4].item() == pytest.approx(_cos(qn[2], qu[3]) / t, rel=1e-5)


def test_similarity_losses_match_loop_reference() -> None:
    p1, p2, z1, z2 = (_fixed(5, 4, s) for s in range(10, 14))
    a, b = p1.double().numpy(), z2.double().numpy()
    neg_cos = -sum(_cos(a[i], b[i]) for i in range(5)) / 5
    sq = sum(
        float(np.sum((a[i] / np.linalg.norm(a[i]) - b[i] / np.linalg.norm(b[i])) ** 2))
        for i in range(5)
    )
    assert negative_cosine(p1, z2).item() == pytest.approx(neg_cos, rel=1e-5)
    assert byol_regression(p1, z2).item() == pytest.approx(sq / 5, rel=1e-5)
    c, d = p2.double().numpy(), z1.double().numpy()
    other = -sum(_cos(c[i], d[i]) for i in range(5)) / 5
    got = symmetrised(negative_cosine, p1, p2, z1, z2).item()
    assert got == pytest.approx(0.5 * (neg_cos + other), rel=1e-5)
    with pytest.raises(ValueError, match="negative_cosine"):
        negative_cosine(p1, z2[:3])
