"""Temporal modules over per-frame tokens, the ablation of Table 1 (seed 004, Sec. 4.3).

Every module maps frame tokens ``x: (N, T, D) -> (N, T, D)`` and contains its own residual
connection, so it is the whole of eq. (4) ``M^ = M + TWS(M)`` for the message tokens of each
layer (Sec. 3.2), or ``h_delta`` of eq. (12) at the end of the video encoder. Chosen by name
from ``TEMPORAL_MODULES``:

- ``"none"``: identity (the CLIP baseline; in the video ViT it also removes the message tokens);
- ``"conv"`` (TC): a temporal convolution, kernel 3 (Sec. 4.3 (1)), ``x + conv(x)``;
- ``"shift"`` (TS): the parameter-free shift of 1/8 channels each way, ``x + TS(x)``;
- ``"transformer"`` (Transf.): attention + FFN blocks over time, 8 heads, as X-CLIP;
- ``"tws"``: temporal weighted shift, eqs. (4)-(8): ``x + TS(f_w(x))``, ``f_w`` a kernel-1
  grouped convolution with groups = channels (one weight and bias per channel).

New modules are randomly initialised (Sec. 4.2): weights ~ truncated N(0, 0.02), biases 0, as
X-CLIP does for its new modules, so every residual branch starts close to zero and the
pretrained CLIP path is barely disturbed at the first step.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from vidssl.models.transformer import ResidualAttentionBlock, SelfAttention

SHIFT_DIV = 8  # a/D = c/D = 1/8 (Sec. 3.2, after eq. 8)


def init_new_module_(module: nn.Module, std: float = 0.02) -> None:
    """Random init of modules not in CLIP: truncated-normal weights, zero biases, unit LN."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, SelfAttention):
            nn.init.trunc_normal_(m.in_proj_weight, std=std)
            nn.init.zeros_(m.in_proj_bias)


def temporal_shift(x: Tensor, shift_div: int = SHIFT_DIV) -> Tensor:
    """Parameter-free temporal shift TS of eqs. (7)-(8).

    x: (N, T, D) split along channels into [S_a, S_b, S_c] with a = c = D // shift_div:
    S_a(t) = S_a(t - 1) (moved forward in time), S_b unchanged, S_c(t) = S_c(t + 1) (moved
    backward); the frames shifted in from outside the clip are zeros. Returns (N, T, D).
    """
    if x.ndim != 3:
        raise ValueError(f"temporal_shift expects (N, T, D), got {tuple(x.shape)}")
    if shift_div < 2:
        raise ValueError(f"temporal_shift: shift_div must be >= 2, got {shift_div}")
    d = x.shape[-1]
    fold = d // shift_div
    out = x.clone()
    out[:, :, :fold].zero_()
    out[:, :, d - fold :].zero_()
    out[:, 1:, :fold] = x[:, :-1, :fold]  # S_a(t) = S_a(t - 1); t = 0 gets zeros
    out[:, :-1, d - fold :] = x[:, 1:, d - fold :]  # S_c(t) = S_c(t + 1); t = T - 1 gets zeros
    return out


class TemporalShift(nn.Module):
    """TS ablation: x + TS(x). x: (N, T, D) -> (N, T, D)."""

    def __init__(self, shift_div: int = SHIFT_DIV) -> None:
        super().__init__()
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        return x + temporal_shift(x, self.shift_div)


class TemporalWeightedShift(nn.Module):
    """TWS, eqs. (4)-(8): x + TS(f_w(x)), f_w a kernel-1 conv with groups = channels.

    x: (N, T, D) -> (N, T, D). ``channel_conv`` holds one weight and one bias per channel
    (eq. 5); the shift is parameter free (eq. 6).
    """

    def __init__(self, width: int, shift_div: int = SHIFT_DIV) -> None:
        super().__init__()
        self.shift_div = shift_div
        self.channel_conv = nn.Conv1d(width, width, kernel_size=1, groups=width)
        init_new_module_(self)

    def forward(self, x: Tensor) -> Tensor:
        weighted = self.channel_conv(x.transpose(1, 2)).transpose(1, 2)  # (N, D, T) per channel
        return x + temporal_shift(weighted, self.shift_div)


class TemporalConv(nn.Module):
    """TC ablation: x + Conv1d_k(x) over time (kernel 3, Sec. 4.3 (1)). x: (N, T, D).

    The paper does not say whether TC is depthwise; its GFLOPs (+0.2 over the baseline vs +0.1
    for TWS, Table 1) match a dense D x D x 3 convolution, which is what we use.
    """

    def __init__(self, width: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"TemporalConv: kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2)
        init_new_module_(self)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x.transpose(1, 2)).transpose(1, 2)  # (N, T, D) <-> (N, D, T)


class TemporalTransformer(nn.Module):
    """Transf.: ``layers`` self-attention + FFN blocks over time. x: (N, T, D) -> (N, T, D).

    8 heads (Sec. 4.3 (1), as X-CLIP). Position embeddings are not part of this module: the
    video encoder adds E_temp before the final one (eq. 12).
    """

    def __init__(self, width: int, heads: int = 8, layers: int = 1) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"TemporalTransformer: layers must be >= 1, got {layers}")
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        init_new_module_(self)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


def _none(width: int, heads: int = 8, layers: int = 1) -> nn.Module:
    return nn.Identity()


def _conv(width: int, heads: int = 8, layers: int = 1) -> nn.Module:
    return TemporalConv(width)


def _shift(width: int, heads: int = 8, layers: int = 1) -> nn.Module:
    return TemporalShift()


def _transformer(width: int, heads: int = 8, layers: int = 1) -> nn.Module:
    return TemporalTransformer(width, heads, layers)


def _tws(width: int, heads: int = 8, layers: int = 1) -> nn.Module:
    return TemporalWeightedShift(width)


# name -> factory(width, heads=..., layers=...) -> module (N, T, D) -> (N, T, D)
TEMPORAL_MODULES: dict[str, Callable[..., nn.Module]] = {
    "none": _none,
    "conv": _conv,
    "shift": _shift,
    "transformer": _transformer,
    "tws": _tws,
}


def create_temporal(name: str, width: int, *, heads: int = 8, layers: int = 1) -> nn.Module:
    """Temporal module ``name`` (a key of ``TEMPORAL_MODULES``) for ``width`` channels."""
    if name not in TEMPORAL_MODULES:
        raise ValueError(
            f"unknown temporal module {name!r}; valid names: {', '.join(sorted(TEMPORAL_MODULES))}"
        )
    return TEMPORAL_MODULES[name](width, heads=heads, layers=layers)
