"""Flow <-> uint8, the storage mapping of CoCLR / I3D practice (clip to +-bound, then linear).

    q = rint((clip(f, -bound, bound) + bound) / (2 * bound) * 255)      (round half to even)
    f' = (q - 127.5) * (2 * bound / 255)        (= q / 255 * 2 * bound - bound)

With the default ``bound = 20`` pixels one step is 40 / 255 = 0.157 px, so a flow inside the
bound comes back within half a step (0.078 px). Zero flow maps to 128 (127.5 rounded to even)
and reads back as +0.078 px; flows beyond the bound saturate at 0 / 255. The read-back is
antisymmetric: ``dequantize(255 - q) == -dequantize(q)`` exactly, so a horizontal flip of a
stored flow clip mirrors the pixels and turns x into ``255 - x`` (``hflip_flow``).
"""

from __future__ import annotations

import numpy as np

DEFAULT_BOUND = 20.0


def _check_bound(bound: float) -> None:
    if not bound > 0:
        raise ValueError(f"flow bound must be positive, got {bound}")


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(..., 2) float flow in pixels -> (..., 2) uint8 (see the module docstring)."""
    _check_bound(bound)
    f = np.nan_to_num(np.asarray(flow, dtype=np.float32), nan=0.0)  # a diverged pixel -> 0
    f = np.clip(f, -bound, bound)
    return np.rint((f + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(..., 2) uint8 -> (..., 2) float32 flow in pixels, the inverse of ``quantize_flow``."""
    _check_bound(bound)
    if q.dtype != np.uint8:
        raise ValueError(f"dequantize_flow needs uint8 input, got {q.dtype}")
    # (q - 127.5) * step == q * step - bound; centring first makes 255 - q read back as
    # exactly minus the value of q
    return (q.astype(np.float32) - np.float32(127.5)) * np.float32(2.0 * bound / 255.0)


def hflip_flow(q: np.ndarray) -> np.ndarray:
    """Mirror a uint8 flow clip left-right: (..., H, W, 2) -> (..., H, W, 2).

    The pixels are mirrored and the x component is negated (``255 - x``); y is unchanged.
    """
    if q.dtype != np.uint8 or q.shape[-1] != 2:
        raise ValueError(f"hflip_flow needs uint8 (..., H, W, 2) flow, got {q.dtype} {q.shape}")
    out = q[..., ::-1, :].copy()
    out[..., 0] = 255 - out[..., 0]
    return out
