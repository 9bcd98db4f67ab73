"""SimSiam (Chen & He 2021) on video clips, as compared in CSTP (Table 3).

One Siamese encoder (backbone + projector) and a predictor; no momentum network, no
negatives. Each view's prediction regresses the other view's projection under stop-gradient:
loss = 0.5 * D(p1, sg(z2)) + 0.5 * D(p2, sg(z1)) with D = negative cosine (SimSiam eq. 2),
range [-1, 1].

Defaults and departures: projector n -> 4096 -> 128 (CSTP appendix; SimSiam uses three
2048-wide layers) with BN + ReLU in the hidden layer and BN without ReLU on the output, as
SimSiam (Sec. 4.4); predictor 128 -> 512 -> 128 (SimSiam's 512-wide hidden layer; with a
128-d output it widens instead of SimSiam's 4x bottleneck).

``fix_predictor_lr``: the predictor keeps the base learning rate while the rest follows the
schedule (SimSiam Sec. 4.2, Table 1d: "h with a constant lr (without decay)", better than the
decayed baseline; the authors' released command turns it on). Off by default, so that the
method as CSTP compares it keeps one schedule for every parameter.

``projector_layers`` (vidssl extension; default 2, CSTP's): linear layers of the projector
(the last one with its BN), 1 for a linear one, so that the path to the loss is 3 layers
instead of 4 (the motion ablation found depth between backbone and loss decisive for CVRL at
CPU sizes).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.losses import negative_cosine, symmetrised
from vidssl.methods.base import Method
from vidssl.models.backbones.base import pooled_features
from vidssl.models.heads import PredictorHead, ProjectionHead


class SimSiam(Method):
    def __init__(
        self,
        backbone: nn.Module,
        *,
        hidden_dim: int = 4096,
        out_dim: int = 128,
        predictor_hidden_dim: int = 512,
        fix_predictor_lr: bool = False,
        projector_layers: int = 2,
    ) -> None:
        super().__init__(backbone)
        self.fix_predictor_lr = fix_predictor_lr
        self.projector = ProjectionHead(
            self.feature_dim,
            hidden_dim,
            out_dim,
            num_layers=projector_layers,
            batch_norm=True,
            last_batch_norm=True,
        )
        self.predictor = PredictorHead(out_dim, predictor_hidden_dim)

    def constant_lr_prefixes(self) -> tuple[str, ...]:
        """The predictor with ``fix_predictor_lr`` (SimSiam Table 1d), else none."""
        return ("predictor.",) if self.fix_predictor_lr else ()

    def project(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> z: (N, D)."""
        return self.projector(pooled_features(self.backbone, x))

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        v1, v2 = self.two_views(batch)
        z1, z2 = self.project(v1), self.project(v2)  # (N, D) each
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = symmetrised(negative_cosine, p1, p2, z1.detach(), z2.detach())  # stop-gradient
        with torch.no_grad():
            # Collapse monitor (SimSiam Fig. 2): per-dim std of unit-norm z, ~1/sqrt(D) if healthy.
            z_std = F.normalize(z1, dim=1).std(dim=0).mean()
        return {"loss": loss, "pos_sim": -loss.detach(), "z_std": z_std}
