"""Covariance pooling, Newton-Schulz matrix square root, auxiliary head, video-text loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidssl.losses.video_text import logit_scale_value, video_text_contrastive
from vidssl.models.cov_pool import (
    AuxHead,
    CovPool,
    covariance,
    sqrtm_newton_schulz,
    triu_vector,
)

scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy (dev extra) is not installed")


pytestmark = pytest.mark.usefixtures("one_thread")


def random_spd(n: int, d: int, seed: int = 0, cond: float = 20.0) -> torch.Tensor:
    """n SPD matrices (d x d) with eigenvalues spread over [1, cond]."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, math.log10(cond), d, dtype=torch.float64) * (
        1 + torch.rand(n, 1, generator=g, dtype=torch.float64)
    )
    return q @ torch.diag_embed(eig) @ q.transpose(1, 2)


def test_newton_schulz_matches_scipy_sqrtm() -> None:
    a = random_spd(3, 12)
    ours = sqrtm_newton_schulz(a, iterations=25)
    for i in range(a.shape[0]):
        ref = np.real(scipy_linalg.sqrtm(a[i].numpy()))
        np.testing.assert_allclose(ours[i].numpy(), ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ours @ ours, a)


def test_newton_schulz_few_iterations_fp32_is_close_and_differentiable() -> None:
    a = random_spd(2, 16, seed=1, cond=5.0).float().requires_grad_(True)
    root = sqrtm_newton_schulz(a, iterations=5)  # iSQRT-COV's default count
    ref = torch.from_numpy(np.real(scipy_linalg.sqrtm(a[0].detach().double().numpy())))
    rel = (root[0].double() - ref).norm() / ref.norm()
    assert rel < 0.05, rel  # approximate after 5 steps, as in iSQRT-COV
    root.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_newton_schulz_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="N, D, D"):
        sqrtm_newton_schulz(torch.ones(3, 4))
    with pytest.raises(ValueError, match="iterations"):
        sqrtm_newton_schulz(torch.eye(3)[None], iterations=0)


def test_covariance_matches_numpy() -> None:
    x = torch.randn(2, 50, 6, dtype=torch.float64)
    cov = covariance(x)
    for i in range(2):
        np.testing.assert_allclose(cov[i].numpy(), np.cov(x[i].numpy(), rowvar=False, bias=True))


def test_triu_vector_order_and_size() -> None:
    a = torch.arange(16.0).view(1, 4, 4)
    v = triu_vector(a)
    assert v.shape == (1, 10)
    assert v[0].tolist() == [0, 1, 2, 3, 5, 6, 7, 10, 11, 15]


def test_cov_pool_shape_is_8k_for_128() -> None:
    pool = CovPool(in_dim=24, dim=128, iterations=3)
    out = pool(torch.randn(2, 40, 24))
    assert out.shape == (2, 128 * 129 // 2) == (2, 8256)  # Table 3(b): D' = 128 -> "8K"
    assert torch.isfinite(out).all()


def test_aux_head_forward_backward() -> None:
    torch.manual_seed(0)
    head = AuxHead(16, num_classes=5, num_frames=4, cov_dim=8, heads=4)
    patches = torch.randn(3, 4, 6, 16, requires_grad=True)  # (N, T, P, E)
    video = torch.randn(3, 16, requires_grad=True)
    logits = head(patches, video)
    assert logits.shape == (3, 5)
    F.cross_entropy(logits, torch.tensor([0, 1, 4])).backward()
    assert torch.isfinite(patches.grad).all() and patches.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    # other clip lengths interpolate the temporal position embedding
    assert head(torch.randn(2, 3, 6, 16), torch.randn(2, 16)).shape == (2, 5)


def reference_contrastive(
    v: torch.Tensor, c: torch.Tensor, scale: float, labels: list[int]
) -> float:
    """Hand-written eqs. 15-17, loops over pairs, both directions averaged."""
    n = len(labels)
    total = 0.0
    for a, b in ((v, c), (c, v)):
        for i in range(n):
            sims = [scale * F.cosine_similarity(a[i], b[j], dim=0).item() for j in range(n)]
            log_z = math.log(sum(math.exp(s) for s in sims))
            pos = [j for j in range(n) if labels[j] == labels[i]]
            total += -sum(sims[j] - log_z for j in pos) / len(pos) / n
    return total / 2


def test_video_text_contrastive_matches_reference() -> None:
    g = torch.Generator().manual_seed(3)
    v, c = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    labels = [0, 1, 0, 2, 1, 3]  # repeated classes -> several positives per row
    logit_scale = torch.tensor(math.log(10.0))
    loss = video_text_contrastive(v, c, logit_scale, torch.tensor(labels))
    assert loss.item() == pytest.approx(reference_contrastive(v, c, 10.0, labels), rel=1e-5)
    # without labels: CLIP's symmetric cross-entropy on the diagonal
    logits = 10.0 * F.normalize(v, dim=1) @ F.normalize(c, dim=1).T
    target = torch.arange(6)
    clip_loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(video_text_contrastive(v, c, logit_scale), clip_loss)


def test_video_text_contrastive_gathered_rows_and_clamp() -> None:
    g = torch.Generator().manual_seed(4)
    v, c = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    scale = torch.tensor(2.0)
    full = video_text_contrastive(v, c, scale, labels)
    halves = [
        video_text_contrastive(
            v[s], c[s], scale, labels[s], video_all=v, text_all=c, labels_all=labels, offset=o
        )
        for s, o in ((slice(0, 4), 0), (slice(4, 8), 4))
    ]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, full)
    assert logit_scale_value(torch.tensor(10.0)).item() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="line up"):
        video_text_contrastive(v[:4], c, scale)
