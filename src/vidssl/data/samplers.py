"""Pure, seeded clip samplers: which frame indices of a video make up a clip.

Every sampler is a pure function of ``(num_frames, <sizes>, rng)`` that returns ``int64`` frame
indices; given the same generator state it returns the same indices, so a sample is
deterministic given the dataset's ``(seed, epoch, index)``.

Time model. A clip of ``clip_len`` frames at ``stride`` (frames of the source video per clip
frame; may be fractional, see :func:`stride_for_fps`) starting at frame ``s`` reads frames
``s + floor(i * stride)`` for ``i < clip_len`` and *covers* the interval ``[s, s + span)`` with
``span = clip_span(clip_len, stride) = ceil(clip_len * stride)``: each clip frame stands for
``stride`` source frames. Overlap and non-overlap are measured on these intervals.

Short videos. When a video has fewer frames than a sampler needs, the sampler lays the clips
out on a *virtual* timeline as if the video were long enough (starting at frame 0) and then
maps the indices into ``[0, num_frames)`` with one of :data:`SHORT_VIDEO_MODES`:
``"loop"`` (default: ``i mod num_frames``, the video plays again from the start, so motion
never freezes) or ``"clamp"`` (``min(i, num_frames - 1)``, the last frame repeats). Both are
deterministic; geometric properties (strides, gaps, overlap rates) hold on the virtual
timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Indices = np.ndarray  # int64 frame indices


def _loop(indices: Indices, num_frames: int) -> Indices:
    return np.mod(indices, num_frames)


def _clamp(indices: Indices, num_frames: int) -> Indices:
    return np.clip(indices, 0, num_frames - 1)


# how indices beyond the end of a short video are mapped back into it
SHORT_VIDEO_MODES: dict[str, Callable[[Indices, int], Indices]] = {"loop": _loop, "clamp": _clamp}


def fit_indices(indices: Indices, num_frames: int, short: str = "loop") -> Indices:
    """Map virtual-timeline frame indices (any shape) into ``[0, num_frames)``."""
    _check_frames(num_frames)
    if short not in SHORT_VIDEO_MODES:
        raise ValueError(f"short={short!r}: expected one of {sorted(SHORT_VIDEO_MODES)}")
    return SHORT_VIDEO_MODES[short](np.asarray(indices, dtype=np.int64), num_frames)


def _check_frames(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: a video needs at least one frame")


def _check_clip(clip_len: int, stride: float) -> None:
    if clip_len < 1:
        raise ValueError(f"clip_len={clip_len}: must be >= 1")
    if not stride > 0:
        raise ValueError(f"stride={stride}: must be > 0")


def stride_for_fps(video_fps: float, target_fps: float) -> float:
    """Stride (source frames per clip frame) that plays a ``video_fps`` video at ``target_fps``."""
    if not (video_fps > 0 and target_fps > 0):
        raise ValueError(f"fps must be > 0, got video_fps={video_fps}, target_fps={target_fps}")
    return video_fps / target_fps


def clip_offsets(clip_len: int, stride: float) -> Indices:
    """Frame offsets of one clip from its start: ``floor(i * stride)``, shape ``(clip_len,)``."""
    _check_clip(clip_len, stride)
    # the 1e-9 keeps e.g. 3 * (1/3 * 3) from flooring to 2 through round-off
    return np.floor(np.arange(clip_len) * float(stride) + 1e-9).astype(np.int64)


def clip_span(clip_len: int, stride: float) -> int:
    """Source frames covered by one clip: ``ceil(clip_len * stride)`` (``clip_len*stride`` for int)."""
    _check_clip(clip_len, stride)
    return max(1, math.ceil(clip_len * float(stride) - 1e-9))


def _clip_at(start: int, clip_len: int, stride: float) -> Indices:
    return np.int64(start) + clip_offsets(clip_len, stride)


def random_clip(
    num_frames: int, clip_len: int, stride: float, rng: np.random.Generator, short: str = "loop"
) -> Indices:
    """One clip at a uniformly random start. Returns ``(clip_len,)`` int64."""
    _check_frames(num_frames)
    span = clip_span(clip_len, stride)
    start = int(rng.integers(0, num_frames - span + 1)) if num_frames >= span else 0
    return fit_indices(_clip_at(start, clip_len, stride), num_frames, short)


def center_clip(num_frames: int, clip_len: int, stride: float, short: str = "loop") -> Indices:
    """The clip in the middle of the video (deterministic eval sampling). ``(clip_len,)``."""
    _check_frames(num_frames)
    start = max(0, (num_frames - clip_span(clip_len, stride)) // 2)
    return fit_indices(_clip_at(start, clip_len, stride), num_frames, short)


def uniform_clips(
    num_frames: int, clip_len: int, stride: float, num_clips: int, short: str = "loop"
) -> Indices:
    """``num_clips`` clips with evenly spaced starts covering the video (multi-clip testing).

    The first clip starts at frame 0 and the last ends at the last frame; one clip is centred.
    Returns ``(num_clips, clip_len)`` int64.
    """
    _check_frames(num_frames)
    if num_clips < 1:
        raise ValueError(f"num_clips={num_clips}: must be >= 1")
    if num_clips == 1:
        return center_clip(num_frames, clip_len, stride, short)[None]
    last = max(0, num_frames - clip_span(clip_len, stride))
    starts = np.round(np.linspace(0, last, num_clips)).astype(np.int64)  # (K,)
    idx = starts[:, None] + clip_offsets(clip_len, stride)[None, :]  # (K, 1) + (1, L) -> (K, L)
    return fit_indices(idx, num_frames, short)


# --- gap distributions for two clips of one video ------------------------------------------


def _uniform_gap_weights(max_gap: int, c_ratio: float) -> np.ndarray:
    return np.ones(max_gap + 1)


def _cvrl_gap_weights(max_gap: int, c_ratio: float) -> np.ndarray:
    # CVRL (Qian et al., 2021, sec. 3.2) draws the interval t between the two clips from a
    # monotonically decreasing P(t) ∝ -t + c over [0, T]. Here t is the integer distance between
    # the two clip starts, T = max_gap and c = c_ratio * (T + 1): c_ratio = 1 gives the steepest
    # linear decay that keeps P(T) > 0; c_ratio -> inf tends to the uniform distribution.
    if c_ratio < 1:
        raise ValueError(f"c_ratio={c_ratio}: must be >= 1 so that P(t) > 0 on [0, T]")
    t = np.arange(max_gap + 1, dtype=np.float64)
    return c_ratio * (max_gap + 1) - t


# gap (distance between clip starts, in frames) -> unnormalised weights over 0..max_gap
GAP_DISTRIBUTIONS: dict[str, Callable[[int, float], np.ndarray]] = {
    "random": _uniform_gap_weights,  # uniform gap: CVRL's "uniform" ablation baseline
    "cvrl": _cvrl_gap_weights,  # linearly decreasing gap: CVRL's default
}


def gap_probabilities(max_gap: int, gap: str = "cvrl", c_ratio: float = 1.0) -> np.ndarray:
    """P(gap = t) for ``t = 0..max_gap`` under distribution ``gap``. ``(max_gap + 1,)`` float64."""
    if gap not in GAP_DISTRIBUTIONS:
        raise ValueError(f"gap={gap!r}: expected one of {sorted(GAP_DISTRIBUTIONS)}")
    w = GAP_DISTRIBUTIONS[gap](max(0, int(max_gap)), c_ratio)
    return w / w.sum()


def two_clips(
    num_frames: int,
    clip_len: int,
    stride: float,
    rng: np.random.Generator,
    gap: str = "cvrl",
    c_ratio: float = 1.0,
    short: str = "loop",
) -> tuple[Indices, Indices]:
    """Two clips of one video whose start-to-start gap ``t`` follows ``GAP_DISTRIBUTIONS[gap]``.

    ``t`` is drawn over ``[0, num_frames - span]`` (both clips fit), then the earlier clip starts
    uniformly in ``[0, num_frames - span - t]`` and the later one ``t`` frames after it. The
    first returned clip is the earlier one. Returns two ``(clip_len,)`` int64 arrays.
    """
    _check_frames(num_frames)
    span = clip_span(clip_len, stride)
    max_gap = max(0, num_frames - span)
    t = int(rng.choice(max_gap + 1, p=gap_probabilities(max_gap, gap, c_ratio)))
    first = int(rng.integers(0, max_gap - t + 1))
    a = _clip_at(first, clip_len, stride)
    b = _clip_at(first + t, clip_len, stride)
    return fit_indices(a, num_frames, short), fit_indices(b, num_frames, short)


def sub_clips(
    num_frames: int,
    num_clips: int,
    clip_len: int,
    stride: float,
    rng: np.random.Generator,
    window: int | None = None,
    short: str = "loop",
) -> Indices:
    """``num_clips`` non-overlapping sub-clips in temporal order (CVTCL local clips, sec. 2.3).

    A window of ``window`` frames (default ``num_clips * span``: the sub-clips tile one longer
    clip, as in TCLR which CVTCL follows) is placed at a random start; inside it the free
    frames ``window - num_clips * span`` are split at random into ``num_clips + 1`` gaps, so
    the sub-clips' covered intervals never overlap. Returns ``(num_clips, clip_len)`` int64.
    """
    _check_frames(num_frames)
    if num_clips < 1:
        raise ValueError(f"num_clips={num_clips}: must be >= 1")
    span = clip_span(clip_len, stride)
    needed = num_clips * span
    window = needed if window is None else int(window)
    if window < needed:
        raise ValueError(f"window={window}: {num_clips} clips of span {span} need >= {needed}")
    window = min(window, max(num_frames, needed))
    win_start = int(rng.integers(0, max(num_frames, window) - window + 1))
    free = window - needed
    # random composition of `free` into num_clips + 1 non-negative gaps (stars and bars)
    cuts = np.sort(rng.integers(0, free + 1, size=num_clips))  # (N,)
    starts = win_start + cuts + np.arange(num_clips) * span  # (N,)
    idx = starts[:, None] + clip_offsets(clip_len, stride)[None, :]  # (N, 1) + (1, L) -> (N, L)
    return fit_indices(idx, num_frames, short)


def clip_with_sub_clips(
    num_frames: int,
    clip_len: int,
    stride: float,
    num_clips: int,
    sub_len: int,
    sub_stride: float,
    rng: np.random.Generator,
) -> tuple[Indices, Indices]:
    """One clip at a random start and ``num_clips`` sub-clips inside its span (CVTCL: the
    global clip of eq. 1 and the local clips s1..s4 of eqs. 6-7 cut from it, sec. 2.3).

    The clip covers ``[start, start + span)``, ``span = clip_span(clip_len, stride)``; the
    sub-clips are :func:`sub_clips` of that interval (non-overlapping, in temporal order,
    random gaps), so no sub-clip frame lies outside the clip's span. There is no short-video
    mapping: a video with fewer than ``span`` frames raises ``ValueError`` (the caller decides
    what a too-short video means). Returns ``(clip_len,)`` and ``(num_clips, sub_len)`` int64.
    """
    _check_frames(num_frames)
    span = clip_span(clip_len, stride)
    if num_frames < span:
        raise ValueError(f"{num_frames} frames: the clip needs {span} ({clip_len} x {stride})")
    start = int(rng.integers(0, num_frames - span + 1))
    # sub_clips over a virtual video of exactly `span` frames: every index is in [0, span)
    subs = sub_clips(span, num_clips, sub_len, sub_stride, rng, window=span)  # (N, L)
    return _clip_at(start, clip_len, stride), subs + start


def overlapping_clips(
    num_frames: int,
    clip_len: int,
    stride: float,
    rate: float,
    rng: np.random.Generator,
    short: str = "loop",
) -> tuple[Indices, Indices, float]:
    """Two clips with temporal overlap rate ``rate`` (CSTP's STOR, "two-step overlap sampling").

    CSTP defines the temporal overlap rate as ``gamma_t = tau_o / tau``: the overlapping
    duration over the (common) clip duration. Step 1 fixes the first clip's length and
    stride; step 2 places the second clip of the same length and stride ``d = round((1 - rate)
    * span)`` frames before or after it, so ``gamma_t = (span - d) / span``. To keep the pair
    inside the video for every rate, the union ``[0, span + d)`` is placed at a uniformly
    random start and which clip comes first is a coin flip (a departure from drawing the first
    clip fully at random: that can leave no room for the second, CSTP sec. "Spatio-temporal
    Overlap Data Augmentation").

    Returns ``(first, second, realised_rate)``: two ``(clip_len,)`` int64 arrays and the exact
    overlap rate of their covered intervals, which equals ``rate`` up to ``0.5 / span``
    (exactly when ``(1 - rate) * span`` is an integer).
    """
    _check_frames(num_frames)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate={rate}: a temporal overlap rate must be in [0, 1]")
    span = clip_span(clip_len, stride)
    d = int(np.floor((1.0 - rate) * span + 0.5 + 1e-9))  # round half up, robust to round-off
    union = span + d
    start = int(rng.integers(0, num_frames - union + 1)) if num_frames >= union else 0
    starts = [start, start + d]
    if rng.random() < 0.5:
        starts.reverse()
    a = _clip_at(starts[0], clip_len, stride)
    b = _clip_at(starts[1], clip_len, stride)
    realised = (span - d) / span
    return fit_indices(a, num_frames, short), fit_indices(b, num_frames, short), realised
