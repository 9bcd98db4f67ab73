"""Pretext-task label generators and the recipes that use them.

Tasks (``TASK_KINDS``; the kind groups them for MTCL's eq. 9):

- ``"pace"`` (temporal, MTCL "TP"; CSTP "playback rate"): the clip is sampled at
  ``paces[label]`` times the recipe's stride; default paces 1x-4x (MTCL sec. 2.1).
- ``"order"`` (temporal, MTCL "TO"): the clip is cut into three equal segments (3 frames each
  for MTCL's T = 9) that are shuffled; the label indexes ``ORDER_PERMUTATIONS`` (3! = 6).
- ``"rotation"`` (spatial, MTCL "SR"; CSTP "rotation"): every frame rotated by the same
  ``label * 90`` degrees (``transforms.rotate90``).
- ``"jigsaw"`` (spatial, MTCL "SJ"): every frame cut into 2x2 tiles permuted by the same
  permutation; the label indexes ``transforms.JIGSAW_PERMUTATIONS``. We use all 24
  permutations of S4 (identity included): with only 4 tiles the full set is a small, balanced
  24-way problem, so the maximal-Hamming-distance subset that Noroozi & Favaro need to cut
  3x3 puzzles (9! permutations) down to a tractable class count is not needed. MTCL does not
  state a subset. Against the tile-border shortcut (continuity of edges and texture across a
  tile border gives the permutation away) the tiles are cut with a gap and a random per-tile
  shift inside their cell, as Noroozi & Favaro's (``jigsaw_gap``, ``jigsaw_jitter``:
  ``transforms.jigsaw_tile_boxes``), the same for every frame, and placed centred in their
  output cell on the normalisation mean; MTCL (sec. 2.1) does not say how it cuts its tiles.
- STOR (CSTP sec. "Spatio-temporal Overlap Data Augmentation"): ``"overlap_s"`` /
  ``"overlap_t"``, the indices of the spatial and temporal overlap rates between the two clips
  of a pair, drawn from ``overlap_rates`` (default the 5 candidates of CSTP Table 4).

Temporal tasks act on frame indices before decoding, spatial tasks on the augmented float clip.
All randomness comes from the generator passed in.

Recipes (``PRETEXT_RECIPES``, merged into ``vidssl.data.recipes.RECIPES``):

- ``"pretext"``: one clip carrying every task of ``tasks`` at once
  (``{"video": (C, T, H, W), "pretext": {task: label}}``);
- ``"pretext_views"``: one view per task, MTCL's ``V_n^{task_i}`` (sec. 2.1)
  (``{"views": [(C, T, H, W)] * len(tasks), "pretext": {task: label}}``, views in task order);
- ``"stor"``: CSTP's two clips with a drawn spatial and temporal overlap, plus playback-rate
  and rotation labels of the first clip
  (``{"views": [v, v'], "pretext": {"pace", "rotation", "overlap_s", "overlap_t", ...}}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from vidssl.data import samplers
from vidssl.data.recipe_base import RecipeBase, Sample
from vidssl.data.transforms import (
    JIGSAW_GAP,
    JIGSAW_JITTER,
    JIGSAW_PERMUTATIONS,
    Box,
    JigsawView,
    PretextLabels,
    RotationView,
    jigsaw,
    jigsaw_gapped,
    jigsaw_margins,
    jigsaw_tile_boxes,
    overlap_crop_pair,
    rotate90,
)

if TYPE_CHECKING:
    from vidssl.data.sources import VideoSource

Indices = np.ndarray

TEMPORAL = "temporal"
SPATIAL = "spatial"

# task name -> kind (MTCL sec. 2.3.2: same-kind task pairs are positives, cross-kind negatives)
TASK_KINDS: dict[str, str] = {
    "pace": TEMPORAL,
    "order": TEMPORAL,
    "rotation": SPATIAL,
    "jigsaw": SPATIAL,
}

DEFAULT_PACES: tuple[int, ...] = (1, 2, 3, 4)  # MTCL sec. 2.1: 1x, 2x, 3x, 4x
DEFAULT_OVERLAP_RATES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)  # CSTP Table 4, 5 candidates
NUM_ROTATIONS = 4  # 0, 90, 180, 270 degrees
ORDER_SEGMENTS = 3  # MTCL sec. 2.1: three segments of 3 frames
# segment order p -> output segment i is input segment ORDER_PERMUTATIONS[p][i]
ORDER_PERMUTATIONS: list[tuple[int, ...]] = list(itertools.permutations(range(ORDER_SEGMENTS)))


def task_classes(task: str, paces: Sequence[int] = DEFAULT_PACES) -> int:
    """Number of classes of ``task`` (``paces`` sets the pace task's)."""
    counts = {
        "pace": len(paces),
        "order": len(ORDER_PERMUTATIONS),
        "rotation": NUM_ROTATIONS,
        "jigsaw": len(JIGSAW_PERMUTATIONS),
    }
    if task not in counts:
        raise ValueError(f"unknown pretext task {task!r}; expected one of {sorted(counts)}")
    return counts[task]


def check_tasks(tasks: Sequence[str], field: str = "tasks") -> tuple[str, ...]:
    """``tasks`` as a tuple of known, distinct task names; raises naming ``field`` otherwise."""
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TASK_KINDS]
    if unknown:
        raise ValueError(f"{field}: unknown task(s) {unknown}; expected from {sorted(TASK_KINDS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"{field}: tasks must be distinct, got {list(tasks)}")
    return tasks


def check_paces(paces: Sequence[int], field: str = "paces") -> tuple[int, ...]:
    paces = tuple(int(p) for p in paces)
    if any(p < 1 for p in paces) or len(set(paces)) != len(paces):
        raise ValueError(f"{field}: expected distinct frame-stride multiples >= 1, got {paces}")
    return paces


def check_rates(rates: Sequence[float], field: str = "overlap_rates") -> tuple[float, ...]:
    rates = tuple(float(r) for r in rates)
    if not rates or any(not 0.0 <= r <= 1.0 for r in rates) or len(set(rates)) != len(rates):
        raise ValueError(f"{field}: expected distinct overlap rates in [0, 1], got {rates}")
    return rates


# --- temporal label generators (frame indices) --------------------------------------------------


def pace_clip(
    num_frames: int,
    clip_len: int,
    stride: float,
    pace: int,
    rng: np.random.Generator,
    short: str = "loop",
) -> Indices:
    """A random clip played ``pace`` times faster: stride ``stride * pace``. ``(clip_len,)``."""
    return samplers.random_clip(num_frames, clip_len, stride * pace, rng, short)


def shuffle_segments(indices: Indices, perm: Sequence[int]) -> Indices:
    """Cut ``indices`` ``(L,)`` into ``len(perm)`` equal segments; output segment i is input
    segment ``perm[i]``. ``L`` must be a multiple of ``len(perm)``."""
    if len(indices) % len(perm):
        raise ValueError(f"clip of {len(indices)} frames does not split into {len(perm)} segments")
    segments = indices.reshape(len(perm), -1)  # (L,) -> (S, L/S)
    return segments[list(perm)].reshape(-1)  # (S, L/S) -> (L,)


def unshuffle_segments(indices: Indices, perm: Sequence[int]) -> Indices:
    """Undo :func:`shuffle_segments` with the same ``perm``."""
    return shuffle_segments(indices, list(np.argsort(perm)))


# --- STOR two-step overlap sampling (CSTP) ------------------------------------------------------


def stor_temporal(
    num_frames: int,
    clip_len: int,
    stride: float,
    rates: Sequence[float],
    rng: np.random.Generator,
    short: str = "loop",
) -> tuple[Indices, Indices, int, float]:
    """Two clips of equal length and stride whose temporal overlap rate is a drawn candidate.

    Returns ``(first, second, label, realised)``: ``rates[label]`` is the drawn rate and
    ``realised`` the exact rate of the clips' covered intervals (``samplers.overlapping_clips``:
    equal to the drawn rate when ``(1 - rate) * span`` is a whole number of frames, else within
    ``0.5 / span``).
    """
    label = int(rng.integers(len(rates)))
    first, second, realised = samplers.overlapping_clips(
        num_frames, clip_len, stride, rates[label], rng, short
    )
    return first, second, label, realised


def stor_spatial(
    height: int,
    width: int,
    rates: Sequence[float],
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (0.5, 2.0),
) -> tuple[Box, Box, int, float]:
    """Two equal-size boxes whose spatial overlap rate (overlap area / box area) is a drawn
    candidate. Returns ``(box1, box2, label, realised)`` (``transforms.overlap_crop_pair``:
    realised within pixel rounding of ``rates[label]``)."""
    label = int(rng.integers(len(rates)))
    box1, box2, realised = overlap_crop_pair(height, width, rates[label], rng, scale, ratio)
    return box1, box2, label, realised


# --- recipes -------------------------------------------------------------------------------------


@dataclass
class PretextBase(RecipeBase):
    """Shared pretext-recipe fields. ``paces``: pace candidates (multiples of the stride)."""

    tasks: tuple[str, ...] = ("rotation",)
    paces: tuple[int, ...] = DEFAULT_PACES
    # jigsaw: fraction of a tile cell kept between neighbouring tiles at least (0 = tiles touch)
    jigsaw_gap: float = JIGSAW_GAP
    # jigsaw: fraction of a tile cell by which each tile shifts at random (one draw per clip)
    jigsaw_jitter: float = JIGSAW_JITTER

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tasks = check_tasks(self.tasks, "data.recipe.tasks")
        self.paces = check_paces(self.paces, "data.recipe.paces")
        if "order" in self.tasks and self.clip_len % ORDER_SEGMENTS:
            raise ValueError(
                f"data.clip_len={self.clip_len}: the 'order' task needs a multiple of "
                f"{ORDER_SEGMENTS} frames (MTCL: three 3-frame segments, T = 9)"
            )
        if "jigsaw" in self.tasks and self.size % 2:
            raise ValueError(f"data.size={self.size}: the 'jigsaw' task needs an even crop size")
        if "jigsaw" in self.tasks:
            try:
                jigsaw_margins(self.size // 2, self.jigsaw_gap, self.jigsaw_jitter)
            except ValueError as err:
                raise ValueError(f"data.recipe.jigsaw_gap / jigsaw_jitter: {err}") from err
        if "pace" in self.tasks and not self.paces:
            raise ValueError("data.recipe.paces: the 'pace' task needs at least one pace")

    def temporal(
        self, video: VideoSource, rng: np.random.Generator, tasks: Sequence[str]
    ) -> tuple[Indices, PretextLabels]:
        """Frame indices of one clip with the temporal tasks of ``tasks`` applied."""
        labels: PretextLabels = {}
        pace = 1
        if "pace" in tasks:
            labels["pace"] = int(rng.integers(len(self.paces)))
            pace = self.paces[labels["pace"]]
        n, stride = video.num_frames, self.stride_for(video)
        if self.train:
            idx = pace_clip(n, self.clip_len, stride, pace, rng, self.short)
        else:
            idx = samplers.center_clip(n, self.clip_len, stride * pace, self.short)
        if "order" in tasks:
            labels["order"] = int(rng.integers(len(ORDER_PERMUTATIONS)))
            idx = shuffle_segments(idx, ORDER_PERMUTATIONS[labels["order"]])
        return idx, labels

    def spatial(
        self, x: Tensor, rng: np.random.Generator, tasks: Sequence[str]
    ) -> tuple[Tensor, PretextLabels]:
        """``x: (C, T, H, W)`` with the spatial tasks of ``tasks`` applied (rotation first)."""
        labels: PretextLabels = {}
        if "rotation" in tasks:
            labels["rotation"] = int(rng.integers(NUM_ROTATIONS))
            x = rotate90(x, labels["rotation"])
        if "jigsaw" in tasks:
            labels["jigsaw"] = int(rng.integers(len(JIGSAW_PERMUTATIONS)))
            perm = JIGSAW_PERMUTATIONS[labels["jigsaw"]]
            if self.jigsaw_gap == 0 and self.jigsaw_jitter == 0:
                x = jigsaw(x, perm)
            else:  # one set of tile boxes for every frame (temporally consistent)
                h, w = x.shape[-2:]
                boxes = jigsaw_tile_boxes(h, w, self.jigsaw_gap, self.jigsaw_jitter, rng)
                x = jigsaw_gapped(x, perm, boxes)
        return x, labels


@dataclass
class PretextClip(PretextBase):
    """One clip carrying every task of ``tasks``: ``{"video": (C, T, H, W), "pretext": {...}}``."""

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        idx, labels = self.temporal(video, rng, self.tasks)
        x = self.transform(self.read(video, idx), rng)  # (C, T, H, W)
        x, spatial_labels = self.spatial(x, rng, self.tasks)
        return {"video": x, "pretext": {**labels, **spatial_labels}}


# spatial task -> the transforms view that applies it and draws its label
SPATIAL_VIEWS: dict[str, type[RotationView] | type[JigsawView]] = {
    "rotation": RotationView,
    "jigsaw": JigsawView,
}


@dataclass
class PretextViews(PretextBase):
    """MTCL's multitask views (sec. 2.1): one independently sampled and augmented clip per task,
    transformed by that task only. ``{"views": [(C, T, H, W)] * M, "pretext": {task: label}}``
    with the views in ``tasks`` order."""

    tasks: tuple[str, ...] = ("pace", "order", "rotation", "jigsaw")

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        sampled = [self.temporal(video, rng, (task,)) for task in self.tasks]
        frames = self.read(video, np.stack([idx for idx, _ in sampled]))  # (M, T, H, W, 3)
        views: list[Tensor] = []
        labels: PretextLabels = {}
        for task, (_, temporal_labels), clip in zip(self.tasks, sampled, frames):
            view_type = SPATIAL_VIEWS.get(task)
            if view_type is None:  # a temporal task: the indices carry it
                x, view_labels = self.transform(clip, rng), temporal_labels
            elif view_type is JigsawView:
                view = JigsawView(self.transform, gap=self.jigsaw_gap, jitter=self.jigsaw_jitter)
                x, view_labels = view(clip, rng)
            else:
                x, view_labels = view_type(self.transform)(clip, rng)
            views.append(x)
            labels.update(view_labels)
        return {"views": views, "pretext": labels}


@dataclass
class StorPair(RecipeBase):
    """CSTP's two-step overlap sampling: ``{"views": [v, v'], "pretext": {...}}``.

    (1) the first clip ``v``: random playback rate (``paces``, label ``"pace"``), random
    position, random resized crop; (2) a spatial and a temporal overlap rate drawn from
    ``overlap_rates`` (labels ``"overlap_s"``, ``"overlap_t"``: candidate indices); (3) the
    second clip ``v'`` at the same playback rate, length and box size, placed so that the overlaps
    are those rates up to frame / pixel rounding (``stor_temporal`` / ``stor_spatial``; the
    realised rates are in ``"overlap_t_rate"``, ``"overlap_s_rate"``). Both clips then get the rest of the base
    augmentation independently (flip, colour jitter, grayscale, blur) and, with ``rotate``,
    a random 0/90/180/270 rotation (label ``"rotation"`` for ``v``, ``"rotation_pair"`` for
    ``v'``). CSTP's base augmentation includes random rotation and "base data augmentation
    except from random cropping and temporal jittering is implemented on v'", so by default
    ``v'`` gets its own rotation; ``same_rotation=True`` rotates it like ``v``.

    Departure: the union of the two clips / boxes is placed at random (with a random order)
    instead of placing the first clip first, so that every rate fits in every video
    (see ``samplers.overlapping_clips``). ``paces=()`` keeps the recipe's fixed stride (no
    playback-rate augmentation, no ``"pace"`` label).
    """

    paces: tuple[int, ...] = DEFAULT_PACES
    overlap_rates: tuple[float, ...] = DEFAULT_OVERLAP_RATES
    rotate: bool = True
    same_rotation: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.paces = check_paces(self.paces, "data.recipe.paces")
        self.overlap_rates = check_rates(self.overlap_rates, "data.recipe.overlap_rates")

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        labels: PretextLabels = {}
        stride = self.stride_for(video)
        if self.paces:
            labels["pace"] = int(rng.integers(len(self.paces)))
            stride *= self.paces[labels["pace"]]
        first, second, labels["overlap_t"], labels["overlap_t_rate"] = stor_temporal(
            video.num_frames, self.clip_len, stride, self.overlap_rates, rng, self.short
        )
        frames = self.read(video, np.stack([first, second]))  # (2, T, H, W, 3)
        h, w = frames.shape[2:4]
        box1, box2, labels["overlap_s"], labels["overlap_s_rate"] = stor_spatial(
            h, w, self.overlap_rates, rng, tuple(self.scale), tuple(self.ratio)
        )
        views = [
            self.augment(clip, rng, box=box) if self.train else self.eval_transform(clip, box=box)
            for clip, box in zip(frames, (box1, box2))
        ]
        if self.rotate:
            k, k_pair = (int(k) for k in rng.integers(NUM_ROTATIONS, size=2))
            k_pair = k if self.same_rotation else k_pair
            views = [rotate90(views[0], k), rotate90(views[1], k_pair)]
            labels["rotation"], labels["rotation_pair"] = k, k_pair
        return {"views": views, "pretext": labels}


# recipe name -> class; the lead merges these into vidssl.data.recipes.RECIPES
PRETEXT_RECIPES: dict[str, type[RecipeBase]] = {
    "pretext": PretextClip,
    "pretext_views": PretextViews,
    "stor": StorPair,
}
