"""OpenCV optical flow: TV-L1 (contrib ``cv2.optflow``), DIS and Farneback.

Each factory returns a ``FlowFn``: ``(prev (N, H, W) uint8, next (N, H, W) uint8) ->
(N, H, W, 2) float32`` flow (x, y) in pixels from ``prev`` to ``next``, one pair at a time on
the CPU. OpenCV is the optional ``flow`` extra; importing this module does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from vidssl.flow import FlowFn

INSTALL_HINT = "pip install 'vidssl[flow]'"

# Farneback parameters of OpenCV's own examples (samples/python/opt_flow.py):
# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
FARNEBACK_PARAMS: tuple[float, int, int, int, int, float, int] = (0.5, 3, 15, 3, 5, 1.2, 0)


class OpenCVUnavailableError(ImportError):
    """OpenCV (or its contrib modules) is missing; the message says what to install."""


def import_cv2(contrib: bool = False) -> ModuleType:
    """``cv2``, or ``OpenCVUnavailableError`` naming the ``vidssl[flow]`` extra."""
    try:
        import cv2
    except ImportError as exc:
        raise OpenCVUnavailableError(
            f"optical flow with OpenCV needs opencv-contrib-python-headless: {INSTALL_HINT}"
        ) from exc
    if contrib and not hasattr(cv2, "optflow"):
        raise OpenCVUnavailableError(
            f"TV-L1 flow needs OpenCV's contrib modules (cv2.optflow), missing from this "
            f"OpenCV {getattr(cv2, '__version__', '?')} (a plain opencv-python build?): "
            f"pip uninstall opencv-python opencv-python-headless, then {INSTALL_HINT}"
        )
    return cv2


def _pairwise(calc: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> FlowFn:
    """Lift a one-pair function ((H, W), (H, W)) -> (H, W, 2) to a batch ``FlowFn``."""

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape or prev.ndim != 3 or prev.dtype != np.uint8:
            raise ValueError(
                f"flow needs two (N, H, W) uint8 batches, got {prev.dtype} {prev.shape} "
                f"and {nxt.dtype} {nxt.shape}"
            )
        out = [calc(np.ascontiguousarray(a), np.ascontiguousarray(b)) for a, b in zip(prev, nxt)]
        return np.stack(out).astype(np.float32, copy=False)  # (N, H, W, 2)

    return flow


def tvl1(**params: Any) -> FlowFn:
    """OpenCV contrib's Dual TV-L1 (the CVTCL / CoCLR flow), OpenCV defaults unless given
    (keywords of ``cv2.optflow.DualTVL1OpticalFlow_create``, e.g. ``nscales=5``)."""
    cv2 = import_cv2(contrib=True)
    algo = cv2.optflow.DualTVL1OpticalFlow_create(**params)
    return _pairwise(lambda a, b: algo.calc(a, b, None))


def dis(preset: str = "fast") -> FlowFn:
    """Dense Inverse Search (``cv2.DISOpticalFlow_create``); ``preset`` ultrafast/fast/medium."""
    cv2 = import_cv2()
    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise ValueError(f"unknown DIS preset {preset!r}; choose from {sorted(presets)}")
    algo = cv2.DISOpticalFlow_create(presets[preset])
    return _pairwise(lambda a, b: algo.calc(a, b, None))


def farneback() -> FlowFn:
    """Farneback polynomial-expansion flow with ``FARNEBACK_PARAMS``."""
    cv2 = import_cv2()
    return _pairwise(lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK_PARAMS))


def set_threads(threads: int) -> None:
    """Limit OpenCV's own thread pool (a no-op without OpenCV)."""
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(threads)
