"""MTCL's spatio-temporal attention (STA) blocks for R(2+1)D-18 (seed 000, sec. 2.2).

- Spatial-channel attention (SA, eqs. 1-3): per frame t, squeeze the map over space,
  ``z_t = mean_{h,w} u_t`` (eq. 1, ``(C,)``), excite ``s_t = sigmoid(FC(ReLU(FC(z_t))))``
  with a ``C -> C/r -> C`` bottleneck, r = 16 (eq. 2, SE-style), and gate the channels,
  ``x'_t = s_t * u_t`` (eq. 3).
- Temporal attention (TA, eqs. 4-6): squeeze every frame to one number,
  ``z'_t = mean_{c,h,w} u'_t`` (eq. 4), excite ``S' = sigmoid(FC(ReLU(FC(Z'))))`` with a
  ``T -> T/r' -> T`` bottleneck over the frames, r' = 3 (eq. 5), and gate the frames,
  ``X'' = S' * U'`` (eq. 6). The FCs act on the temporal axis, so a TA block is built for
  the number of frames at its stage (``stage_frames`` of the clip length ``num_frames``,
  MTCL's T = 9). Bottleneck widths are ``max(1, C // r)`` and ``max(1, T // r')``.
  Extension (not in MTCL): a clip of another length still runs - the descriptor ``Z'`` is
  resampled linearly to the built length before the FCs and the gates ``S'`` back to the
  clip's length - so a backbone pre-trained on 9-frame clips can be evaluated on 16-frame
  clips; at the built length the block is exactly eqs. (4)-(6).

"Gates" are the sigmoid outputs ``s_t`` (eq. 2) and ``S'`` (eq. 5), the multipliers of eqs. (3)
and (6). With a gate at 1 everywhere (``s_t = 1``, ``S' = 1``) eqs. (3) and (6) are the
identity, ``x'_t = u_t`` and ``X'' = U'``, so an STA block is exactly the plain R(2+1)D residual
block. ``gates(x)`` returns them; the tests pin them to 1 by zeroing the last FC's weight and
setting its bias to a large value (sigmoid saturates to exactly 1.0 in float32).

Placement (departure, documented): MTCL applies SA to the output ``u_t`` of the (2+1)D
convolution's spatial part and TA after its temporal part (sec. 2.2.1-2.2.2). We insert SA
then TA through ``resnet3d``'s per-residual-block hook (``block_extra``): on the residual branch
after the block's second (2+1)D convolution and its BN, before the shortcut is added - where
SE-ResNets place SE - in every block of stages 2-5 (``layer1..4``). This keeps the plain
R(2+1)D-18 weights and key layout intact (attention adds ``layerK.J.extra.*`` keys only).

``ATTENTION_BACKBONES`` holds the backbones to merge into ``BACKBONES``: ``r2plus1d_18_sa``,
``r2plus1d_18_ta``, ``r2plus1d_18_sta`` (SA + TA), each built for ``num_frames=9`` input frames
(MTCL sec. 3.2, T = 9) unless told otherwise; attention ``"none"`` is the plain R(2+1)D-18.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # not at run time: vidssl.models.backbones may import this module
    from vidssl.models.backbones.base import Backbone
    from vidssl.models.backbones.resnet3d import StemName

SPATIAL_REDUCTION = 16  # r, MTCL sec. 3.2
TEMPORAL_REDUCTION = 3  # r', MTCL sec. 3.2
MTCL_FRAMES = 9  # T, MTCL sec. 3.2

# attention name -> (spatial-channel attention, temporal attention)
ATTENTION: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "sa": (True, False),
    "ta": (False, True),
    "sa+ta": (True, True),
}


class SpatialChannelAttention(nn.Module):
    """SA, eqs. (1)-(3): per-frame SE channel gating. x: (N, C, T, H, W) -> same shape."""

    def __init__(self, channels: int, reduction: int = SPATIAL_REDUCTION) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(
                f"SpatialChannelAttention: need channels, r >= 1, got {channels}, {reduction}"
            )
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gates(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> s: (N, T, C), the per-frame channel gates of eq. (2)."""
        z = torch.einsum("ncthw->ntc", x) / (x.shape[3] * x.shape[4])  # eq. (1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # eq. (2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> x'_t = s_t * u_t, eq. (3)."""
        s = self.gates(x)  # (N, T, C)
        return x * s.permute(0, 2, 1)[..., None, None]  # (N, T, C) -> (N, C, T, 1, 1)


class TemporalAttention(nn.Module):
    """TA, eqs. (4)-(6): frame gating from a T -> T/r' -> T bottleneck.

    x: (N, C, T, H, W) -> same shape. Exactly eqs. (4)-(6) when ``T == num_frames``; any other
    ``T`` is resampled to ``num_frames`` before the FCs and the gates back to ``T`` (see the
    module docstring).
    """

    def __init__(self, num_frames: int, reduction: int = TEMPORAL_REDUCTION) -> None:
        super().__init__()
        if num_frames < 1 or reduction < 1:
            raise ValueError(f"TemporalAttention: need T, r' >= 1, got {num_frames}, {reduction}")
        self.num_frames = num_frames
        hidden = max(1, num_frames // reduction)
        self.fc1 = nn.Linear(num_frames, hidden)
        self.fc2 = nn.Linear(hidden, num_frames)

    def gates(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> S': (N, T), the frame gates of eq. (5)."""
        t = x.shape[2]
        z = torch.einsum("ncthw->nt", x) / (x.shape[1] * x.shape[3] * x.shape[4])  # eq. (4)
        z = _resample(z, self.num_frames)  # (N, T) -> (N, num_frames); identity when equal
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # eq. (5)
        return _resample(s, t)  # (N, num_frames) -> (N, T)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> X'' = S' * U', eq. (6)."""
        return x * self.gates(x)[:, None, :, None, None]  # (N, T) -> (N, 1, T, 1, 1)


def _resample(z: Tensor, length: int) -> Tensor:
    """Linear resampling along the last axis: z (N, T) -> (N, length); identity for T == length."""
    if z.shape[-1] == length:
        return z
    # (N, T) -> (N, 1, T) -> (N, 1, length) -> (N, length)
    return F.interpolate(z[:, None], size=length, mode="linear", align_corners=False)[:, 0]


class STABlock(nn.Sequential):
    """SA then TA (either may be off; keys ``sa.*``, ``ta.*``). x: (N, C, T, H, W) -> same."""

    def __init__(
        self,
        channels: int,
        num_frames: int,
        *,
        spatial: bool = True,
        temporal: bool = True,
        reduction: int = SPATIAL_REDUCTION,
        temporal_reduction: int = TEMPORAL_REDUCTION,
    ) -> None:
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        if spatial:
            modules["sa"] = SpatialChannelAttention(channels, reduction)
        if temporal:
            modules["ta"] = TemporalAttention(num_frames, temporal_reduction)
        super().__init__(modules)


def stage_frames(num_frames: int, stage: int) -> int:
    """Frames at R(2+1)D-18 stage ``layer{stage}`` (1..4) for a ``num_frames`` input.

    The stem and layer1 keep T; layer2..4 stride 2 in time with a 3-tap, padding-1 temporal
    convolution: ``T -> (T - 1) // 2 + 1``.
    """
    if not 1 <= stage <= 4:
        raise ValueError(f"stage={stage}: R(2+1)D-18 has stages 1..4 (layer1..layer4)")
    t = num_frames
    for _ in range(stage - 1):
        t = (t - 1) // 2 + 1
    return t


def sta_block_extra(
    attention: str,
    num_frames: int = MTCL_FRAMES,
    reduction: int = SPATIAL_REDUCTION,
    temporal_reduction: int = TEMPORAL_REDUCTION,
) -> Callable[[int, int], nn.Module] | None:
    """The ``block_extra(channels, stage)`` hook that adds ``attention`` to every residual block
    (``None`` for ``"none"``)."""
    if attention not in ATTENTION:
        raise ValueError(f"attention={attention!r}: expected one of {sorted(ATTENTION)}")
    spatial, temporal = ATTENTION[attention]
    if not (spatial or temporal):
        return None

    def extra(channels: int, stage: int) -> nn.Module:
        return STABlock(
            channels,
            stage_frames(num_frames, stage),
            spatial=spatial,
            temporal=temporal,
            reduction=reduction,
            temporal_reduction=temporal_reduction,
        )

    return extra


def r2plus1d_18_sta(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    attention: str = "sa+ta",
    num_frames: int = MTCL_FRAMES,
    stem: StemName = "default",
) -> Backbone:
    """R(2+1)D-18 with MTCL's attention in every residual block of stages 2-5.

    ``attention`` in ``ATTENTION``; ``"none"`` gives the plain ``r2plus1d_18``. ``num_frames``
    is the input clip length the temporal attention is built for. ``stem``: see
    ``resnet3d.StemName`` (``"small"`` for small inputs; not in MTCL).
    """
    # imported here: vidssl.models.backbones may import this module to register the factories
    from vidssl.models.backbones.resnet3d import r2plus1d_18

    return r2plus1d_18(
        num_classes=num_classes,
        width=width,
        in_channels=in_channels,
        block_extra=sta_block_extra(attention, num_frames),
        stem=stem,
    )


# backbone name -> factory; the lead merges these into vidssl.models.backbones.BACKBONES
ATTENTION_BACKBONES: dict[str, Callable[..., Backbone]] = {
    "r2plus1d_18_sa": partial(r2plus1d_18_sta, attention="sa"),
    "r2plus1d_18_ta": partial(r2plus1d_18_sta, attention="ta"),
    "r2plus1d_18_sta": partial(r2plus1d_18_sta, attention="sa+ta"),
}
