"""Two-stream evaluation backbone: RGB and optical flow in one ``Backbone``-like module."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class TwoStreamBackbone(nn.Module):
    """Two-stream evaluation: x (N, 3 + 2, T, H, W) -> mean of the L2-normalised RGB and flow
    features (N, D). Both backbones must have the same ``feature_dim``."""

    def __init__(self, rgb: nn.Module, flow: nn.Module) -> None:
        super().__init__()
        if rgb.feature_dim != flow.feature_dim:
            raise ValueError(f"feature dims differ: {rgb.feature_dim} vs {flow.feature_dim}")
        self.rgb, self.flow = rgb, flow
        self.feature_dim: int = rgb.feature_dim

    def forward_features(self, x: Tensor) -> Tensor:
        f_rgb = F.normalize(self.rgb.forward_features(x[:, :3]), dim=1)
        f_flow = F.normalize(self.flow.forward_features(x[:, 3:]), dim=1)
        return (f_rgb + f_flow) / 2

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)
