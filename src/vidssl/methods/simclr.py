"""SimCLR (Chen et al. 2020) on video clips, as compared in CSTP (Table 3, eq. 1).

Two augmented clips of a video pass through the same backbone and projection head; NT-Xent
(``vidssl.losses.nt_xent``) pulls them together against every other clip of the batch.
Under DDP the projections are gathered from all ranks with a gradient-preserving all_gather,
so the negatives are the global batch (2 * global_N - 2 per anchor), as SimCLR does.

Defaults and departures:
- Head n -> 4096 -> 128 with BN + ReLU (CSTP appendix; see ``vidssl.models.heads``).
- temperature 0.1: SimCLR's ImageNet setting (cf. its Table 5) and CVRL's.
  CSTP's appendix states alpha = 1 "following SimCLR / MoCo"; with cosine logits in [-1, 1]
  that gives almost no contrast, so we keep 0.1 (pass ``temperature=1.0`` to follow CSTP).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl import dist
from vidssl.losses import nt_xent
from vidssl.methods.base import Method
from vidssl.models.backbones.base import pooled_features
from vidssl.models.heads import ProjectionHead


class SimCLR(Method):
    def __init__(
        self,
        backbone: nn.Module,
        *,
        temperature: float = 0.1,
        hidden_dim: int = 4096,
        out_dim: int = 128,
        num_layers: int = 2,
    ) -> None:
        super().__init__(backbone)
        if temperature <= 0:
            raise ValueError(f"{type(self).__name__}: temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.projector = ProjectionHead(
            self.feature_dim, hidden_dim, out_dim, num_layers=num_layers, batch_norm=True
        )

    def project(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> z: (N, out_dim)."""
        return self.projector(pooled_features(self.backbone, x))

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        v1, v2 = self.two_views(batch)
        z1, z2 = self.project(v1), self.project(v2)  # (N, D) each
        z1_all = dist.all_gather_with_grad(z1)  # (W*N, D), rank-major
        z2_all = dist.all_gather_with_grad(z2)
        offset = dist.get_rank() * z1.shape[0]
        loss = nt_xent(z1, z2, self.temperature, z1_all=z1_all, z2_all=z2_all, offset=offset)
        with torch.no_grad():
            pos_sim = F.cosine_similarity(z1, z2, dim=1).mean()
        return {"loss": loss, "pos_sim": pos_sim}
