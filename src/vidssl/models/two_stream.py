"""Two-stream checkpoints as one backbone: the RGB stream, the flow stream or both averaged.

A backbone says which inputs it consumes (:attr:`vidssl.models.backbones.base.Backbone.
modalities`: ``("rgb",)`` for 3 channels, ``("flow",)`` for 2); :class:`TwoStreamBackbone`
consumes ``("rgb", "flow")``, channel-concatenated (3 + 2). The evaluation data path asks the
backbone for its modalities and builds the matching clips; the stream choice
(:data:`STREAMS`) is made once, when a checkpoint is turned into a backbone
(:func:`select_stream`, used by ``vidssl.eval.weights.read_weights``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

# stream name (``vidssl eval --stream``) -> the input modalities of its backbone
STREAMS: dict[str, tuple[str, ...]] = {
    "rgb": ("rgb",),
    "flow": ("flow",),
    "both": ("rgb", "flow"),
}


def stream_of(modalities: tuple[str, ...]) -> str:
    """The stream name of a backbone's input modalities (the inverse of :data:`STREAMS`)."""
    for name, mods in STREAMS.items():
        if mods == tuple(modalities):
            return name
    raise ValueError(f"no stream consumes the modalities {modalities}; known: {STREAMS}")


class TwoStreamBackbone(nn.Module):
    """Two-stream evaluation: x (N, 3 + 2, T, H, W) -> mean of the L2-normalised RGB and flow
    features (N, D). ``rgb`` / ``flow``: ``vidssl.models.backbones`` backbones (not imported
    here: ``models`` stays free of a ``models`` <-> ``models.backbones`` cycle) with the same
    ``feature_dim``."""

    modalities: tuple[str, ...] = STREAMS["both"]  # RGB channels, then flow channels

    def __init__(self, rgb: nn.Module, flow: nn.Module) -> None:
        super().__init__()
        if rgb.feature_dim != flow.feature_dim:
            raise ValueError(f"feature dims differ: {rgb.feature_dim} vs {flow.feature_dim}")
        self.rgb, self.flow = rgb, flow
        self.feature_dim: int = rgb.feature_dim
        self.in_channels: int = rgb.in_channels + flow.in_channels

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, 3 + 2, T, H, W) -> the unpooled maps of the RGB and of the flow backbone."""
        c = self.rgb.in_channels
        return self.rgb.forward_features(x[:, :c]), self.flow.forward_features(x[:, c:])

    def forward_head(self, maps: tuple[Tensor, Tensor], pre_logits: bool = False) -> Tensor:
        """The two maps -> mean of the L2-normalised pooled features (N, D). No classifier:
        ``pre_logits`` changes nothing."""
        f_rgb = F.normalize(self.rgb.forward_head(maps[0], pre_logits=True), dim=1)
        f_flow = F.normalize(self.flow.forward_head(maps[1], pre_logits=True), dim=1)
        return (f_rgb + f_flow) / 2

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def select_stream(rgb: nn.Module, flow: nn.Module, stream: str) -> nn.Module:
    """The backbone of ``stream`` (a key of :data:`STREAMS`) of a two-stream network."""
    chosen = {
        "rgb": lambda: rgb,
        "flow": lambda: flow,
        "both": lambda: TwoStreamBackbone(rgb, flow),
    }
    if stream not in chosen:
        raise ValueError(f"unknown stream {stream!r}; choose from {list(STREAMS)}")
    return chosen[stream]()
