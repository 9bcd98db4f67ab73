"""Power-normalised covariance pooling and the spatio-temporal auxiliary head (seed 004, Sec. 3.4).

Covariance pooling follows iSQRT-COV (Li et al., CVPR 2018; seed 004 refs. [50-51]):

    Sigma = 1/M X^T (I - 1/M 11^T) X                      (eq. 19, second-order statistics)
    Y_0 = Sigma / tr(Sigma), Z_0 = I                      (pre-normalisation by the trace)
    T_k = (3I - Z_{k-1} Y_{k-1}) / 2, Y_k = Y_{k-1} T_k, Z_k = T_k Z_{k-1}   (Newton-Schulz)
    Sigma^(1/2) ~= sqrt(tr(Sigma)) Y_K                    (post-compensation)

then the upper triangle is flattened (D'(D'+1)/2 values: 8256 for D' = 128, the "8K" of
Table 3(b)). Everything runs in fp32 with autocast off.

The auxiliary head (Fig. 4): the visual tokens of all frames go through a temporal transformer
(per spatial position, over time, with its own temporal position embedding, "as for the class
tokens"), a 1x1 reduction D -> D' = 128 (+ BN + ReLU, as iSQRT-COV's reduction layer),
covariance pooling with the matrix square root, dropout (Sec. 4.2; the rate is not given, we
use 0.5), and is fused with the video embedding v by two FC layers whose logits are added,
``softmax(FC(Z_GCP) + FC(v))`` (eq. 20); cross-entropy on these logits is L_s (eq. 21).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.models.temporal import TemporalTransformer, init_new_module_


def covariance(x: Tensor) -> Tensor:
    """x: (N, M, D) M samples of D features -> (N, D, D) biased covariance (divided by M)."""
    xc = x - x.mean(dim=1, keepdim=True)
    return torch.einsum("nmd,nme->nde", xc, xc) / x.shape[1]


def sqrtm_newton_schulz(a: Tensor, iterations: int = 5, eps: float = 1e-12) -> Tensor:
    """Approximate square root of SPD matrices by iSQRT-COV's Newton-Schulz iteration.

    a: (N, D, D) symmetric positive (semi-)definite -> (N, D, D) with result @ result ~= a.
    Pre-normalised by the trace (so the iteration converges), post-compensated by sqrt(trace).
    Differentiable by autograd.
    """
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"sqrtm_newton_schulz expects (N, D, D), got {tuple(a.shape)}")
    if iterations < 1:
        raise ValueError(f"sqrtm_newton_schulz: iterations must be >= 1, got {iterations}")
    d = a.shape[-1]
    eye = torch.eye(d, dtype=a.dtype, device=a.device).expand_as(a)
    trace = torch.einsum("nii->n", a).clamp_min(eps)[:, None, None]  # (N, 1, 1)
    y = a / trace
    z = eye
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def triu_vector(a: Tensor) -> Tensor:
    """a: (N, D, D) -> (N, D(D+1)/2), the upper triangle (diagonal included), row-major."""
    d = a.shape[-1]
    rows, cols = torch.triu_indices(d, d, device=a.device)
    return a[:, rows, cols]


class CovPool(nn.Module):
    """1x1 reduction D -> D' (+ BN + ReLU), covariance, matrix square root, upper triangle.

    x: (N, M, D) tokens -> (N, D'(D'+1)/2).
    """

    def __init__(self, in_dim: int, dim: int = 128, iterations: int = 5) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"CovPool: dim must be >= 1, got {dim}")
        self.dim, self.iterations = dim, iterations
        self.out_dim = dim * (dim + 1) // 2
        self.reduce = nn.Linear(in_dim, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)
        init_new_module_(self)

    def forward(self, x: Tensor) -> Tensor:
        n, m, _ = x.shape
        y = self.reduce(x).reshape(n * m, self.dim)  # (N, M, D') -> (N*M, D')
        y = F.relu(self.bn(y)).view(n, m, self.dim)  # (N*M, D') -> (N, M, D')
        with torch.autocast(device_type=y.device.type, enabled=False):
            cov = covariance(y.float())  # eq. (19)
            return triu_vector(sqrtm_newton_schulz(cov, self.iterations))


class AuxHead(nn.Module):
    """Spatio-temporal auxiliary supervision head (Fig. 4, eqs. 18-20).

    patches: (N, T, P, E) visual tokens, video: (N, E) -> class logits (N, num_classes).
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        num_frames: int = 8,
        cov_dim: int = 128,
        iterations: int = 5,
        heads: int = 8,
        layers: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"AuxHead: num_classes must be >= 1, got {num_classes}")
        self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        nn.init.trunc_normal_(self.temporal_embedding, std=0.02)
        self.temporal = TemporalTransformer(embed_dim, heads, layers)
        self.pool = CovPool(embed_dim, cov_dim, iterations)
        self.dropout = nn.Dropout(dropout)
        self.fc_cov = nn.Linear(self.pool.out_dim, num_classes)
        self.fc_video = nn.Linear(embed_dim, num_classes)
        init_new_module_(self.fc_cov)
        init_new_module_(self.fc_video)

    def forward(self, patches: Tensor, video: Tensor) -> Tensor:
        n, t, p, e = patches.shape
        pos = self.temporal_embedding
        if t != pos.shape[1]:  # (1, T0, E) -> (1, E, T) -> (1, T, E)
            pos = F.interpolate(pos.transpose(1, 2), size=t, mode="linear", align_corners=False)
            pos = pos.transpose(1, 2)
        x = patches.transpose(1, 2).reshape(n * p, t, e)  # (N, T, P, E) -> (N*P, T, E)
        x = self.temporal(x + pos.to(x.dtype))  # temporal modelling of H (Sec. 3.4)
        x = x.view(n, p * t, e)  # (N*P, T, E) -> (N, P*T, E): all N*T tokens of a video
        z = self.dropout(self.pool(x))  # (N, D'(D'+1)/2), eq. (19) + power normalisation
        return self.fc_cov(z.to(video.dtype)) + self.fc_video(video)  # eq. (20) logits
