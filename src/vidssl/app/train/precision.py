"""Mixed precision and memory format: what runs fast on this device.

CPU: bf16 autocast (oneDNN bf16 convolutions, ~2.8x fp32 on this machine's CPU) with the model
and 5-D inputs in ``channels_last_3d``. GPU: bf16 autocast when supported, else fp16 with a
``GradScaler``. ``amp="none"`` trains in fp32.

A oneDNN defect (seen with torch 2.13 CPU / oneDNN 3.12): the bf16 weight gradient of a
``Conv3d`` with temporal zero padding whose input depth T satisfies ``1 < T < kernel depth``
(e.g. a 3x3x3 conv on T=2: R3D-18's third stage for 8-frame clips) is garbage -- NaN, inf or
~1e38, different on every call. The same convolution on an explicitly zero-padded input
(depth T + 2p >= kernel depth, no temporal padding) is correct, so :func:`guard_bf16_conv3d`
computes exactly those calls that way, still in bf16. ``tests/test_engine.py`` checks the
guarded gradients against fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# train.amp -> autocast dtype (None = fp32); "auto" is resolved by resolve_amp
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "none": None,
}


def _cpu_bf16_supported() -> bool:
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` on ``device`` (None = fp32)."""
    if amp != "auto":
        return AMP_DTYPES[amp]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_bf16_supported() else None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype``, or nothing for fp32."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (bf16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


class Bf16SafeConv3d(nn.Conv3d):
    """``Conv3d`` that pads time explicitly where oneDNN's bf16 weight gradient is wrong."""

    def forward(self, input: Tensor) -> Tensor:
        depth, kd, pd = input.shape[2], self.kernel_size[0], self.padding[0]
        faulty = (
            1 < depth < kd
            and isinstance(pd, int)
            and pd > 0
            and self.padding_mode == "zeros"
            and input.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
        )
        if not faulty:
            return super().forward(input)
        x = F.pad(input, (0, 0, 0, 0, pd, pd))  # (N, C, T, H, W) -> (N, C, T + 2p, H, W)
        return F.conv3d(
            x,
            self.weight,
            self.bias,
            self.stride,
            (0, *self.padding[1:]),
            self.dilation,
            self.groups,
        )


def guard_bf16_conv3d(model: nn.Module) -> int:
    """Turn every ``Conv3d`` with kernel depth > 2 into :class:`Bf16SafeConv3d` (in place).

    Only the class changes (same parameters, state-dict keys and outputs outside the faulty
    case). Returns the number of guarded layers.
    """
    count = 0
    for module in model.modules():
        if type(module) is nn.Conv3d and module.kernel_size[0] > 2:
            module.__class__ = Bf16SafeConv3d
            count += 1
    return count


def model_to_channels_last(model: nn.Module) -> nn.Module:
    """5-D parameters and buffers (Conv3d weights) in channels_last_3d, in place; others untouched.

    (``Module.to(memory_format=...)`` would also try to convert 4-D tensors, e.g. a ViT's
    Conv2d patch embedding, and fail.)
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.ndim == 5:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    return model
