"""Clip samplers: determinism, strides, coverage, non-overlap, overlap rate, gap distribution."""

from __future__ import annotations

import numpy as np
import pytest

from vidssl.data import samplers as S


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- basics ----------------------------------------------------------------------------------


def test_offsets_span_and_fps_stride():
    np.testing.assert_array_equal(S.clip_offsets(4, 2), [0, 2, 4, 6])
    np.testing.assert_array_equal(S.clip_offsets(4, 1.5), [0, 1, 3, 4])
    np.testing.assert_array_equal(S.clip_offsets(6, 0.5), [0, 0, 1, 1, 2, 2])  # slow motion
    assert S.clip_span(8, 2) == 16
    assert S.clip_span(4, 1.5) == 6
    assert S.stride_for_fps(30.0, 10.0) == 3.0
    assert S.stride_for_fps(25.0, 50.0) == 0.5
    with pytest.raises(ValueError, match="fps"):
        S.stride_for_fps(0.0, 10.0)


def test_short_video_modes_hand_written():
    idx = np.array([0, 2, 4, 6, 8])
    np.testing.assert_array_equal(S.fit_indices(idx, 5, "loop"), [0, 2, 4, 1, 3])
    np.testing.assert_array_equal(S.fit_indices(idx, 5, "clamp"), [0, 2, 4, 4, 4])
    # a short video: the clip starts at 0 on the virtual timeline
    np.testing.assert_array_equal(S.random_clip(5, 4, 2, rng(), short="loop"), [0, 2, 4, 1])
    np.testing.assert_array_equal(S.center_clip(5, 4, 2, short="clamp"), [0, 2, 4, 4])
    with pytest.raises(ValueError, match="short="):
        S.fit_indices(idx, 5, "wrap")
    with pytest.raises(ValueError, match="num_frames=0"):
        S.random_clip(0, 4, 2, rng())


def test_every_sampler_is_deterministic_given_seed():
    calls = {
        "random_clip": lambda r: S.random_clip(100, 8, 2, r),
        "two_clips_cvrl": lambda r: np.stack(S.two_clips(100, 8, 2, r, gap="cvrl")),
        "two_clips_random": lambda r: np.stack(S.two_clips(100, 8, 2, r, gap="random")),
        "sub_clips": lambda r: S.sub_clips(200, 4, 8, 1, r, window=60),
        "overlapping": lambda r: np.stack(S.overlapping_clips(100, 8, 2, 0.6, r)[:2]),
    }
    for name, call in calls.items():
        a, b = call(rng(7)), call(rng(7))
        assert a.dtype == np.int64, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        draws = {call(rng(s)).tobytes() for s in range(10)}
        assert len(draws) > 1, f"{name} ignores the seed"


# --- single and multiple clips ---------------------------------------------------------------


def test_random_clip_stride_range_and_coverage():
    n, clip_len, stride = 40, 8, 2
    starts = set()
    r = rng(1)
    for _ in range(2000):
        idx = S.random_clip(n, clip_len, stride, r)
        np.testing.assert_array_equal(np.diff(idx), np.full(clip_len - 1, stride))
        assert idx.min() >= 0 and idx.max() < n
        starts.add(int(idx[0]))
    assert starts == set(range(n - 16 + 1))  # every start in [0, n - span] is reached


def test_center_clip_hand_written():
    np.testing.assert_array_equal(S.center_clip(20, 4, 2), [6, 8, 10, 12])  # span 8, start 6


def test_uniform_clips_cover_the_video_evenly():
    idx = S.uniform_clips(100, 8, 2, 5)
    assert idx.shape == (5, 8)
    np.testing.assert_array_equal(idx[:, 0], [0, 21, 42, 63, 84])  # linspace(0, 84, 5)
    assert idx[-1, -1] == 98  # last clip covers [84, 100)
    np.testing.assert_array_equal(np.diff(idx, axis=1), np.full((5, 7), 2))
    np.testing.assert_array_equal(S.uniform_clips(100, 8, 2, 1)[0], S.center_clip(100, 8, 2))


# --- two clips and the CVRL gap distribution -----------------------------------------------


def test_gap_probabilities_cvrl_decreasing_and_random_flat():
    p = S.gap_probabilities(50, "cvrl", c_ratio=1.0)
    assert p.shape == (51,) and np.isclose(p.sum(), 1.0)
    assert np.all(np.diff(p) < 0) and p[-1] > 0
    # P(t) ∝ c - t with c = 51: a line through (51, 0)
    np.testing.assert_allclose(p, (51 - np.arange(51)) / (51 - np.arange(51)).sum())
    np.testing.assert_allclose(S.gap_probabilities(50, "random"), np.full(51, 1 / 51))
    flat = S.gap_probabilities(50, "cvrl", c_ratio=1000.0)
    assert flat.max() / flat.min() < 1.06  # c -> inf tends to uniform
    with pytest.raises(ValueError, match="c_ratio"):
        S.gap_probabilities(50, "cvrl", c_ratio=0.5)
    with pytest.raises(ValueError, match="gap="):
        S.gap_probabilities(50, "power")


def test_two_clips_cvrl_gaps_decrease_empirically():
    n, clip_len, stride = 64, 4, 2  # max gap 56
    r = rng(3)
    gaps = []
    for _ in range(6000):
        a, b = S.two_clips(n, clip_len, stride, r, gap="cvrl")
        np.testing.assert_array_equal(np.diff(a), [2, 2, 2])
        np.testing.assert_array_equal(np.diff(b), [2, 2, 2])
        assert 0 <= a.min() and b.max() < n
        gaps.append(int(b[0] - a[0]))
    gaps = np.asarray(gaps)
    assert gaps.min() >= 0 and gaps.max() <= 56
    counts = np.histogram(gaps, bins=6, range=(0, 57))[0]
    assert np.all(np.diff(counts) < 0), counts  # monotonically decreasing histogram
    # and the uniform-gap option is not
    flat = [
        int(np.subtract(*S.two_clips(n, clip_len, stride, r, gap="random")[::-1])[0])
        for _ in range(3000)
    ]
    flat_counts = np.histogram(flat, bins=3, range=(0, 57))[0]
    assert flat_counts.min() > 0.8 * flat_counts.max()


# --- sub-clips (CVTCL) ------------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, 50, 200])
def test_sub_clips_do_not_overlap_and_are_ordered(window):
    r = rng(4)
    n, num, clip_len, stride = 120, 4, 4, 2  # span 8
    for _ in range(300):
        idx = S.sub_clips(n, num, clip_len, stride, r, window=window)
        assert idx.shape == (num, clip_len)
        np.testing.assert_array_equal(np.diff(idx, axis=1), np.full((num, clip_len - 1), 2))
        starts = idx[:, 0]
        assert np.all(np.diff(starts) >= 8), starts  # covered intervals [s, s + 8) are disjoint
        assert idx.min() >= 0 and idx.max() < n
        w = 32 if window is None else min(window, n)
        assert idx[-1, 0] + 8 - idx[0, 0] <= w  # inside the window
    # default window: the sub-clips tile one contiguous clip
    tiled = S.sub_clips(n, num, clip_len, stride, r)
    np.testing.assert_array_equal(np.diff(tiled[:, 0]), [8, 8, 8])
    with pytest.raises(ValueError, match="window"):
        S.sub_clips(n, num, clip_len, stride, r, window=10)


# --- temporal overlap rate (CSTP STOR) --------------------------------------------------------


def covered_overlap(a: np.ndarray, b: np.ndarray, span: int) -> float:
    """Overlap of the covered intervals [a0, a0 + span) and [b0, b0 + span) over span."""
    lo, hi = max(a[0], b[0]), min(a[0], b[0]) + span
    return max(0, hi - lo) / span


def test_overlap_rate_is_realised_exactly_when_representable():
    clip_len, stride = 10, 2  # span 20: (1 - r) * 20 is an integer for every candidate
    r = rng(5)
    for rate in (0.2, 0.4, 0.6, 0.8, 1.0):
        for _ in range(50):
            a, b, realised = S.overlapping_clips(100, clip_len, stride, rate, r)
            assert realised == pytest.approx(rate, abs=1e-12)
            assert covered_overlap(a, b, 20) == pytest.approx(rate, abs=1e-12)
            np.testing.assert_array_equal(np.diff(a), np.full(9, 2))
            np.testing.assert_array_equal(np.diff(b), np.full(9, 2))


def test_overlap_rate_within_rounding_and_both_orders():
    clip_len, stride = 8, 2  # span 16
    r = rng(6)
    first_later = 0
    for rate in np.linspace(0.0, 1.0, 11):
        for _ in range(40):
            a, b, realised = S.overlapping_clips(60, clip_len, stride, float(rate), r)
            assert covered_overlap(a, b, 16) == pytest.approx(realised)
            assert abs(realised - rate) <= 0.5 / 16 + 1e-12
            assert a.min() >= 0 and max(a.max(), b.max()) < 60
            first_later += int(a[0] > b[0])
    assert 0 < first_later < 440  # the first clip is sometimes the later one
    with pytest.raises(ValueError, match="rate"):
        S.overlapping_clips(60, 8, 2, 1.5, r)
