"""CVRL (Qian et al., CVPR 2021): SimCLR-style InfoNCE between two clips of one video.

The method itself is SimCLR's objective (CVRL eq. 1 is NT-Xent: each of the 2N clips is an
anchor, its partner clip the positive, the other 2N - 2 clips of the batch the negatives; see
``vidssl.losses.nt_xent``). What makes it CVRL lives in the data layer, selected through the
recipe: ``two_clips`` with ``gap="cvrl"`` draws the temporal gap between the two clips from a
monotonically decreasing distribution (sampling-based temporal augmentation) and applies one
random spatial augmentation to every frame of a clip (temporally consistent spatial
augmentation).

Defaults follow CVRL's released config: a projection head of three hidden layers of 2048
units (BN + ReLU) and a 128-d output, temperature 0.1, backbone R3D-50
(``model.backbone: r3d_50``). On CPU, override the backbone with a small one, e.g. ``r3d_18`` at
``width=0.25``, and pass ``hidden_dim=256, num_layers=2``; the objective is unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from vidssl.methods.simclr import SimCLR


class CVRL(SimCLR):
    recipe: ClassVar[str] = "two_clips"
    recipe_overrides: ClassVar[dict[str, Any]] = {"gap": "cvrl"}

    def __init__(
        self,
        backbone: nn.Module,
        *,
        temperature: float = 0.1,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 4,
    ) -> None:
        super().__init__(
            backbone,
            temperature=temperature,
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            num_layers=num_layers,
        )
