"""Jigsaw tiles cut with a gap and per-tile jitter (Noroozi & Favaro 2016): no shared border."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidssl.data import pretext as P
from vidssl.data import transforms as T


def coordinate_clip(frames: int, side: int) -> torch.Tensor:
    """(3, T, H, W): channel 0 = row + 1, channel 1 = column + 1, channel 2 = frame + 1 (0 is
    the jigsaw's fill, so every pixel that came from the input is non-zero)."""
    t, y, x = torch.meshgrid(
        torch.arange(frames), torch.arange(side), torch.arange(side), indexing="ij"
    )
    return torch.stack([y, x, t]).float() + 1.0  # 3 x (T, H, W) -> (3, T, H, W)


def tile_sources(out: torch.Tensor, side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Source (rows, cols) of the pixels in each output cell (row-major), frame 0."""
    cell = side // 2
    sources = []
    for pos in range(4):
        i, j = divmod(pos, 2)
        block = out[:, 0, i * cell : (i + 1) * cell, j * cell : (j + 1) * cell]
        kept = block[0] > 0  # not fill
        sources.append(((block[0][kept] - 1).numpy(), (block[1][kept] - 1).numpy()))
    return sources


def chebyshev_gap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> int:
    """Pixels strictly between two pixel sets along the axis that separates them most (the
    smallest Chebyshev distance between their pixels, minus 1)."""
    far = [max(int(q.min() - p.max()), int(p.min() - q.max())) for p, q in zip(a, b)]
    return max(far) - 1  # per axis: the nearest rows (cols) of the two sets


def is_full_rectangle(rows: np.ndarray, cols: np.ndarray, side: int) -> bool:
    """The pixels are one side x side block, each pixel once."""
    unique = np.unique(rows.astype(np.int64) * 100_000 + cols.astype(np.int64)).size
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    return unique == rows.size == side * side and height == width == side


def test_margins_follow_the_fractions() -> None:
    assert T.jigsaw_margins(56, 0.075, 0.075) == (4, 4, 48)  # 112 px clips: 48 / 56 = 0.86
    assert T.jigsaw_margins(16, 0.075, 0.075) == (1, 1, 14)  # 32 px clips: at least 1 px
    assert T.jigsaw_margins(16, 0.0, 0.0) == (0, 0, 16)
    with pytest.raises(ValueError, match="no tile left"):
        T.jigsaw_margins(4, 0.5, 0.5)


@pytest.mark.parametrize("side", [16, 32, 112])
def test_adjacent_tiles_share_no_border_pixels(side: int) -> None:
    x = coordinate_clip(frames=3, side=side)
    gap_px, _, tile = T.jigsaw_margins(side // 2, T.JIGSAW_GAP, T.JIGSAW_JITTER)
    shifts = set()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        boxes = T.jigsaw_tile_boxes(side, side, T.JIGSAW_GAP, T.JIGSAW_JITTER, rng)
        shifts.update(box[:2] for box in boxes)
        for perm in T.JIGSAW_PERMUTATIONS:
            out = T.jigsaw_gapped(x, perm, boxes)
            sources = tile_sources(out, side)
            for pos, (rows, cols) in enumerate(sources):
                assert is_full_rectangle(rows, cols, tile)  # the whole tile, once
                src = perm[pos]  # the tile comes from source cell perm[pos]
                assert np.all(rows // (side // 2) == src // 2)
                assert np.all(cols // (side // 2) == src % 2)
            for a, b in itertools.combinations(sources, 2):
                assert chebyshev_gap(a, b) >= gap_px  # never a shared or adjacent border
    assert len(shifts) > 4  # the tiles do move


def test_the_plain_jigsaw_has_the_shortcut() -> None:
    """Control: without the gap, neighbouring tiles touch (0 pixels between them)."""
    out = T.jigsaw(coordinate_clip(frames=1, side=16), (3, 2, 1, 0))
    sources = tile_sources(out, 16)
    assert min(chebyshev_gap(a, b) for a, b in itertools.combinations(sources, 2)) == 0


def test_jitter_is_the_same_for_every_frame() -> None:
    x = coordinate_clip(frames=5, side=32)
    recipe = P.PretextClip(clip_len=5, size=32, tasks=("jigsaw",))
    for seed in range(5):
        out, labels = recipe.spatial(x, np.random.default_rng(seed), ("jigsaw",))
        filled = out[0] > 0  # (T, H, W)
        for t in range(5):
            assert torch.equal(filled[t], filled[0])
            assert torch.equal(out[:2, t], out[:2, 0])  # same source pixels in every frame
            assert torch.all(out[2, t][filled[t]] == t + 1)  # from frame t itself
        perm = T.JIGSAW_PERMUTATIONS[labels["jigsaw"]]
        sources = tile_sources(out, 32)
        for pos, (rows, cols) in enumerate(sources):
            assert np.all(rows // 16 == perm[pos] // 2) and np.all(cols // 16 == perm[pos] % 2)


def test_jigsaw_view_and_mtcl_views_use_the_gap() -> None:
    x = coordinate_clip(frames=2, side=16)
    view = T.JigsawView(lambda clip, rng: clip, gap=0.25, jitter=0.125)
    out, labels = view(x, np.random.default_rng(0))
    gap_px = T.jigsaw_margins(8, 0.25, 0.125)[0]
    assert gap_px == 2
    sources = tile_sources(out, 16)
    assert all(chebyshev_gap(a, b) >= 2 for a, b in itertools.combinations(sources, 2))
    recipe = P.PretextViews(clip_len=9, size=16, jigsaw_gap=0.25, jigsaw_jitter=0.125)
    assert (recipe.jigsaw_gap, recipe.jigsaw_jitter) == (0.25, 0.125)
    with pytest.raises(ValueError, match="data.recipe.jigsaw_gap"):
        P.PretextClip(clip_len=4, size=8, tasks=("jigsaw",), jigsaw_gap=0.5, jigsaw_jitter=0.5)
