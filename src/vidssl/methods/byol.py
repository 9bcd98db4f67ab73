"""BYOL (Grill et al. 2020) on video clips, CSTP's best contrastive scheme (Table 3, eq. 3).

An online network (backbone, projector, predictor) predicts a momentum target network's
projection of the other view; no negatives. The loss is BYOL's normalised regression
2 - 2 cos(q, z'), symmetrised by swapping the views and summed (BYOL's L + L~, range [0, 8]).
Composed into CSTP the loss enters at a quarter, 1 - mean cos, the scale of CSTP's eq. (3)
that its λ_ctr = 0.1 weighs (``vidssl.methods.cstp.CTR_SCALE``).
The target follows xi <- tau xi + (1 - tau) theta after every optimiser step, with tau rising
from ``base_momentum`` to ``final_momentum`` on BYOL's cosine schedule (Sec. 3.2).

Defaults: base tau 0.998 (CSTP appendix, "following BYOL"; BYOL's ImageNet value is 0.996);
projector n -> 4096 -> 128 (CSTP appendix; BYOL uses a 256-d output); predictor
128 -> 4096 -> 128 (BYOL's hidden width). BN + ReLU in every hidden layer, as BYOL.

``fix_predictor_lr`` (vidssl extension, off by default): the predictor keeps the base learning
rate while the rest follows the schedule, SimSiam's Table 1d applied to BYOL's predictor
(a predictor that keeps up with the representation; not in BYOL or CSTP).

``projector_layers`` (vidssl extension; default 2, BYOL's): linear layers of the projector,
1 for a linear one, so that the online path to the loss is 3 layers instead of 4 (the motion
ablation found depth between backbone and loss decisive for CVRL at CPU sizes).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.losses import byol_regression, symmetrised
from vidssl.methods.base import Method, check_progress, cosine_momentum, ema_update_, frozen_copy
from vidssl.models.backbones.base import pooled_features
from vidssl.models.heads import PredictorHead, ProjectionHead


class BYOL(Method):
    def __init__(
        self,
        backbone: nn.Module,
        *,
        base_momentum: float = 0.998,
        final_momentum: float = 1.0,
        hidden_dim: int = 4096,
        out_dim: int = 128,
        predictor_hidden_dim: int = 4096,
        fix_predictor_lr: bool = False,
        projector_layers: int = 2,
    ) -> None:
        super().__init__(backbone)
        self.fix_predictor_lr = fix_predictor_lr
        if not 0.0 <= base_momentum <= final_momentum <= 1.0:
            raise ValueError(
                "BYOL: need 0 <= base_momentum <= final_momentum <= 1, got "
                f"{base_momentum}, {final_momentum}"
            )
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.momentum = base_momentum  # current tau, set from progress after each step
        self.projector = ProjectionHead(
            self.feature_dim, hidden_dim, out_dim, num_layers=projector_layers, batch_norm=True
        )
        self.predictor = PredictorHead(out_dim, predictor_hidden_dim)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)

    def constant_lr_prefixes(self) -> tuple[str, ...]:
        """The predictor with ``fix_predictor_lr``, else none."""
        return ("predictor.",) if self.fix_predictor_lr else ()

    def predict(self, x: Tensor) -> Tensor:
        """Online branch. x: (N, C, T, H, W) -> q: (N, D)."""
        return self.predictor(self.projector(pooled_features(self.backbone, x)))

    @torch.no_grad()
    def target(self, x: Tensor) -> Tensor:
        """Target branch, no grad. x: (N, C, T, H, W) -> z': (N, D)."""
        return self.target_projector(pooled_features(self.target_backbone, x))

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        v1, v2 = self.two_views(batch)
        q1, q2 = self.predict(v1), self.predict(v2)  # (N, D) each
        t1, t2 = self.target(v1), self.target(v2)  # (N, D) each
        loss = 2 * symmetrised(byol_regression, q1, q2, t1, t2)  # L + L~
        with torch.no_grad():
            pos_sim = 0.5 * (
                F.cosine_similarity(q1, t2).mean() + F.cosine_similarity(q2, t1).mean()
            )
        # float32: under bf16 autocast the loss is bf16, which would log tau 0.99 as 0.988
        tau = loss.new_tensor(self.momentum, dtype=torch.float32)
        return {"loss": loss, "pos_sim": pos_sim, "momentum": tau}

    def on_after_optimizer_step(self, progress: float) -> None:
        check_progress(progress)
        self.momentum = cosine_momentum(self.base_momentum, self.final_momentum, progress)
        ema_update_(self.target_backbone, self.backbone, self.momentum)
        ema_update_(self.target_projector, self.projector, self.momentum)
