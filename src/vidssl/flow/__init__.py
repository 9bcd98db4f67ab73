"""Optical flow for the two-stream (RGB + flow) methods: estimators and uint8 quantisation.

Every method is a ``FlowFn``: ``(prev (N, H, W) uint8, next (N, H, W) uint8) -> (N, H, W, 2)``
float32 flow (x, y) in pixels from ``prev`` to ``next`` (``prev[y, x] ~ next[y + v, x + u]``).
Methods are chosen by name from ``FLOW_METHODS``; implementations are imported only when
created, so ``import vidssl.flow`` needs neither OpenCV nor torch.

- ``"dis"``: OpenCV DIS, fast preset (the fast default of ``vidssl flow``);
- ``"tvl1"``: OpenCV contrib Dual TV-L1 (what CVTCL / CoCLR used, paper ref. [31]);
- ``"tvl1-torch"``: our batched TV-L1 in PyTorch (``vidssl.flow.tvl1_torch``), CPU or GPU;
- ``"farneback"``: OpenCV Farneback.

Extracting a video's flow into ``.vfs`` storage reads videos, so it lives in the data layer
(``vidssl.data.flow_extract``): ``flow`` never imports ``data``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (prev (N, H, W) uint8, next (N, H, W) uint8) -> (N, H, W, 2) float32 flow (x, y)
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FlowMethod:
    """Where a flow method lives: ``module.factory(**kw) -> FlowFn``."""

    module: str
    factory: str
    uses_device: bool  # the factory takes ``device=`` (torch methods)
    summary: str


FLOW_METHODS: dict[str, FlowMethod] = {
    "dis": FlowMethod("vidssl.flow.opencv", "dis", False, "OpenCV DIS, fast preset"),
    "tvl1": FlowMethod("vidssl.flow.opencv", "tvl1", False, "OpenCV contrib Dual TV-L1"),
    "tvl1-torch": FlowMethod(
        "vidssl.flow.tvl1_torch", "tvl1_torch", True, "batched TV-L1 in PyTorch (CPU/GPU)"
    ),
    "farneback": FlowMethod("vidssl.flow.opencv", "farneback", False, "OpenCV Farneback"),
}


def create_flow(name: str, device: str = "cpu") -> FlowFn:
    """The ``FlowFn`` of method ``name``; ``device`` is used by torch methods only.

    Raises ``KeyError`` naming the choices, ``vidssl.flow.opencv.OpenCVUnavailableError``
    (an ``ImportError``) when OpenCV / contrib is missing.
    """
    if name not in FLOW_METHODS:
        raise KeyError(f"unknown flow method {name!r}; choose from {sorted(FLOW_METHODS)}")
    method = FLOW_METHODS[name]
    factory = getattr(importlib.import_module(method.module), method.factory)
    return factory(device=device) if method.uses_device else factory()


# OpenCV's fixed-point RGB -> grey weights (0.299, 0.587, 0.114) * 2**15 (summing to 2**15)
_GRAY_WEIGHTS = np.array([9798, 19235, 3735], dtype=np.int32)
_GRAY_SHIFT = 15


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) RGB or (..., H, W, 1) uint8 -> (..., H, W) uint8 grey.

    Bit-exact with ``cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)``, so every method sees the
    same grey frames whether OpenCV is installed or not.
    """
    if frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"to_gray needs uint8 (..., C) frames, C 1 or 3, got {frames.shape}")
    if frames.shape[-1] == 1:
        return frames[..., 0]
    y = frames.astype(np.int32) @ _GRAY_WEIGHTS  # (..., H, W, 3) -> (..., H, W)
    return ((y + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT).astype(np.uint8)
