"""Pretext label generators and recipes, pretext losses (MTCL eq. 9), the Pretext method."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from vidssl.data import pretext as P
from vidssl.data.transforms import (
    JIGSAW_PERMUTATIONS,
    KINETICS_MEAN,
    KINETICS_STD,
    box_overlap_rate,
    rotate90,
    unjigsaw,
)
from vidssl.losses.pretext import pretext_accuracy, pretext_contrastive, pretext_cross_entropy
from vidssl.methods.pretext import ClassifierHeads, Pretext
from vidssl.models.backbones import create_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


# augmentation that leaves pixels alone (full-frame crop of square frames, no photometrics)
NEUTRAL: dict[str, Any] = dict(
    scale=(1.0, 1.0), ratio=(1.0, 1.0), p_flip=0.0, jitter_strength=0.0, p_gray=0.0
)


class NoiseVideo:
    """VideoSource with random frames (a fixed function of the frame index)."""

    def __init__(self, num_frames: int = 80, height: int = 16, width: int = 16) -> None:
        self.path, self.num_frames, self.fps = "noise", num_frames, 25.0
        self.height, self.width = height, width

    def get_frames(self, indices: Any) -> np.ndarray:
        frames = [
            np.random.default_rng(int(i)).integers(0, 256, (self.height, self.width, 3))
            for i in np.asarray(indices)
        ]
        return np.stack(frames).astype(np.uint8)  # (T, H, W, 3)

    def close(self) -> None:
        pass


class CodedVideo(NoiseVideo):
    """Frame i is filled with the value i, so a clip's frame indices can be read back."""

    def get_frames(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        assert idx.max() < 256
        out = np.empty((len(idx), self.height, self.width, 3), dtype=np.uint8)
        out[...] = idx[:, None, None, None]
        return out


def decode_indices(x: torch.Tensor) -> np.ndarray:
    """Normalised coded clip (C, T, H, W) -> the frame index of every clip frame (T,)."""
    value = x[0].mean(dim=(1, 2)) * KINETICS_STD[0] + KINETICS_MEAN[0]  # (T,) in [0, 1]
    return np.round(value.numpy() * 255).astype(np.int64)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- label generators -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [P.PretextClip, P.PretextViews])
def test_rotation_label_rotated_back_equals_original(cls: type[P.PretextBase]) -> None:
    seen = set()
    for seed in range(12):
        plain = P.PretextClip(clip_len=4, size=16, tasks=())(NoiseVideo(), rng(seed))["video"]
        sample = cls(clip_len=4, size=16, tasks=("rotation",))(NoiseVideo(), rng(seed))
        x = sample["video"] if "video" in sample else sample["views"][0]
        k = sample["pretext"]["rotation"]
        seen.add(k)
        assert torch.equal(rotate90(x, -k), plain)  # every frame rotated by the same k * 90
        assert k == 0 or not torch.equal(x, plain)
    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize("cls", [P.PretextClip, P.PretextViews])
def test_jigsaw_label_unpermuted_equals_original(cls: type[P.PretextBase]) -> None:
    assert len(JIGSAW_PERMUTATIONS) == 24 == P.task_classes("jigsaw")
    seen = set()
    for seed in range(12):
        plain = P.PretextClip(clip_len=4, size=16, tasks=())(NoiseVideo(), rng(seed))["video"]
        no_gap = {"jigsaw_gap": 0.0, "jigsaw_jitter": 0.0}  # invertible (gapped: test_jigsaw_gap)
        sample = cls(clip_len=4, size=16, tasks=("jigsaw",), **no_gap)(NoiseVideo(), rng(seed))
        x = sample["video"] if "video" in sample else sample["views"][0]
        label = sample["pretext"]["jigsaw"]
        seen.add(label)
        assert torch.equal(unjigsaw(x, JIGSAW_PERMUTATIONS[label]), plain)
    assert len(seen) > 6


def test_shuffle_segments_hand_written() -> None:
    idx = np.arange(9)
    assert P.shuffle_segments(idx, (2, 0, 1)).tolist() == [6, 7, 8, 0, 1, 2, 3, 4, 5]
    for perm in P.ORDER_PERMUTATIONS:
        assert P.unshuffle_segments(P.shuffle_segments(idx, perm), perm).tolist() == idx.tolist()
    assert len(P.ORDER_PERMUTATIONS) == 6 == P.task_classes("order")
    with pytest.raises(ValueError, match="segments"):
        P.shuffle_segments(np.arange(8), (0, 1, 2))


@pytest.mark.parametrize("seed", range(8))
def test_pace_and_order_frames_at_claimed_stride_and_order(seed: int) -> None:
    recipe = P.PretextClip(
        clip_len=9, stride=2, size=8, tasks=("pace", "order"), paces=(1, 2, 3, 4), **NEUTRAL
    )
    sample = recipe(CodedVideo(num_frames=120, height=8, width=8), rng(seed))
    labels = sample["pretext"]
    frames = decode_indices(sample["video"])  # (9,)
    perm = P.ORDER_PERMUTATIONS[labels["order"]]
    ordered = P.unshuffle_segments(frames, perm)
    stride = 2 * (labels["pace"] + 1)
    assert np.all(np.diff(ordered) == stride), (frames, labels)
    # the shuffled clip: segment i of the output is segment perm[i] of the ordered clip
    assert frames.reshape(3, 3).tolist() == ordered.reshape(3, 3)[list(perm)].tolist()


def test_mtcl_views_one_transformation_each() -> None:
    no_gap = {"jigsaw_gap": 0.0, "jigsaw_jitter": 0.0}  # whole frames: the indices decode
    recipe = P.PretextViews(clip_len=9, stride=1, size=8, **NEUTRAL, **no_gap)
    assert recipe.tasks == ("pace", "order", "rotation", "jigsaw")
    for seed in range(6):
        sample = recipe(CodedVideo(num_frames=120, height=8, width=8), rng(seed))
        pace_view, order_view, rot_view, jig_view = (decode_indices(v) for v in sample["views"])
        labels = sample["pretext"]
        assert set(labels) == {"pace", "order", "rotation", "jigsaw"}
        assert np.all(np.diff(pace_view) == labels["pace"] + 1)
        perm = P.ORDER_PERMUTATIONS[labels["order"]]
        assert np.all(np.diff(P.unshuffle_segments(order_view, perm)) == 1)
        assert np.all(np.diff(rot_view) == 1) and np.all(np.diff(jig_view) == 1)


def test_recipe_field_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="data.clip_len"):
        P.PretextViews(clip_len=8, size=16)
    with pytest.raises(ValueError, match="data.size"):
        P.PretextClip(clip_len=4, size=15, tasks=("jigsaw",))
    with pytest.raises(ValueError, match="data.recipe.tasks"):
        P.PretextClip(clip_len=4, size=16, tasks=("colour",))
    with pytest.raises(ValueError, match="data.recipe.overlap_rates"):
        P.StorPair(clip_len=4, size=16, overlap_rates=(0.5, 1.5))


# --- STOR -------------------------------------------------------------------------------------


def covered_overlap(a: np.ndarray, b: np.ndarray, span: int) -> float:
    """Overlap of the intervals [start, start + span) of two clips, over span."""
    return max(0, min(a[0], b[0]) + span - max(a[0], b[0])) / span


@pytest.mark.parametrize(("clip_len", "stride"), [(5, 1), (10, 2), (4, 2.5)])
def test_stor_temporal_realised_overlap_equals_drawn(clip_len: int, stride: float) -> None:
    """With (1 - rate) * span a whole number of frames (span a multiple of 5) the realised rate
    is exactly the drawn candidate, measured on the returned indices."""
    rates = P.DEFAULT_OVERLAP_RATES
    span = round(clip_len * stride)
    labels = set()
    for seed in range(60):
        a, b, label, realised = P.stor_temporal(200, clip_len, stride, rates, rng(seed))
        labels.add(label)
        assert covered_overlap(a, b, span) == pytest.approx(rates[label], abs=1e-12)
        assert realised == pytest.approx(rates[label], abs=1e-12)
        assert np.array_equal(np.diff(a), np.diff(b))  # same length and playback rate
    assert labels == set(range(5))


def test_stor_temporal_other_spans_round_to_the_drawn_candidate() -> None:
    rates = P.DEFAULT_OVERLAP_RATES
    for seed in range(60):
        a, b, label, realised = P.stor_temporal(200, 8, 1, rates, rng(seed))
        assert covered_overlap(a, b, 8) == pytest.approx(realised)
        assert abs(realised - rates[label]) <= 0.5 / 8 + 1e-12
        assert int(np.argmin([abs(realised - r) for r in rates])) == label


@pytest.mark.parametrize(("height", "width"), [(16, 16), (112, 150)])
def test_stor_spatial_realised_overlap_equals_drawn(height: int, width: int) -> None:
    rates = P.DEFAULT_OVERLAP_RATES
    worst = 0.0
    for seed in range(100):
        box1, box2, label, realised = P.stor_spatial(height, width, rates, rng(seed))
        assert box1[2:] == box2[2:]  # same box size
        assert box_overlap_rate(box1, box2) == pytest.approx(realised)
        h, w = box1[2:]
        # exact up to pixel rounding (transforms.overlap_crop_pair's documented bound)
        assert abs(realised - rates[label]) <= 0.5 / min(h, w) + 1 / (h * w) + 1e-12
        assert int(np.argmin([abs(realised - r) for r in rates])) == label
        worst = max(worst, abs(realised - rates[label]))
    assert worst < 0.1


def test_stor_recipe_pair_labels_and_realised_overlap() -> None:
    recipe = P.StorPair(clip_len=5, stride=1, size=8, **NEUTRAL)
    seen = {"overlap_s": set(), "overlap_t": set(), "pace": set()}
    for seed in range(40):
        sample = recipe(CodedVideo(num_frames=200, height=8, width=8), rng(seed))
        v1, v2 = sample["views"]
        labels = sample["pretext"]
        assert v1.shape == v2.shape == (3, 5, 8, 8)
        for key in seen:
            seen[key].add(labels[key])
        a, b = decode_indices(v1), decode_indices(v2)
        stride = labels["pace"] + 1
        assert np.all(np.diff(a) == stride) and np.all(np.diff(b) == stride)  # same playback rate
        rate = P.DEFAULT_OVERLAP_RATES[labels["overlap_t"]]
        assert covered_overlap(a, b, 5 * stride) == pytest.approx(rate)
        assert labels["overlap_t_rate"] == pytest.approx(rate)
        assert abs(labels["overlap_s_rate"] - P.DEFAULT_OVERLAP_RATES[labels["overlap_s"]]) < 0.1
        assert 0 <= labels["rotation"] < 4 and 0 <= labels["rotation_pair"] < 4
    assert seen == {"overlap_s": set(range(5)), "overlap_t": set(range(5)), "pace": set(range(4))}
    same = P.StorPair(clip_len=5, stride=1, size=8, same_rotation=True)(NoiseVideo(), rng(0))
    assert same["pretext"]["rotation"] == same["pretext"]["rotation_pair"]


def test_recipes_on_a_real_video(shared_videos: Path) -> None:
    path = shared_videos / "carphone_pristine.mp4"  # 176x144, 120 frames
    from vidssl.data.sources import open_video

    video = open_video(path)
    try:
        for seed in range(3):
            stor = P.StorPair(clip_len=5, stride=2, size=32)(video, rng(seed))
            labels = stor["pretext"]
            assert [tuple(v.shape) for v in stor["views"]] == [(3, 5, 32, 32)] * 2
            assert labels["overlap_t_rate"] == pytest.approx(
                P.DEFAULT_OVERLAP_RATES[labels["overlap_t"]]
            )
            # crops of >= 30 % of 176x144 have sides >= ~70 px: pixel rounding < 0.01
            drawn_s = P.DEFAULT_OVERLAP_RATES[labels["overlap_s"]]
            assert abs(labels["overlap_s_rate"] - drawn_s) < 0.01
            views = P.PretextViews(clip_len=9, stride=1, size=32)(video, rng(seed))
            assert all(torch.isfinite(v).all() for v in views["views"])
            assert set(views["pretext"]) == {"pace", "order", "rotation", "jigsaw"}
    finally:
        video.close()


# --- losses -----------------------------------------------------------------------------------


def eq9_reference(h: torch.Tensor, groups: list[int], tau: float) -> float:
    """MTCL eq. (9) with explicit loops: same-kind pairs over all unordered pairs."""
    n, m, _ = h.shape
    total = 0.0
    for v in range(n):
        num, den = 0.0, 0.0
        has_positive = False
        for i in range(m):
            for j in range(i + 1, m):
                u, w = h[v, i], h[v, j]
                cos = float(u @ w) / (float(u.norm()) * float(w.norm()))
                e = math.exp(cos / tau)
                den += e
                if groups[i] == groups[j]:
                    num += e
                    has_positive = True
        if not has_positive:  # virtual positive with cos = 1
            num = math.exp(1.0 / tau)
            den += num
        total += -math.log(num / den)
    return total / n


@pytest.mark.parametrize("groups", [[0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1], [0, 1], [1, 0, 0, 1, 1]])
def test_pretext_contrastive_equals_hand_written_eq9(groups: list[int]) -> None:
    h = torch.randn(5, len(groups), 7, generator=torch.Generator().manual_seed(3))
    for tau in (0.07, 0.5):
        got = pretext_contrastive(h, groups, tau)
        assert got.item() == pytest.approx(eq9_reference(h, groups, tau), rel=1e-5, abs=1e-6)


def test_pretext_contrastive_mtcl_pairs_and_ordered_reading() -> None:
    """Four tasks TP, TO, SR, SJ: numerator (TP, TO) + (SR, SJ); counting ordered pairs in the
    denominator instead would add exactly log 2."""
    h = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(0))
    z = F.normalize(h, dim=-1)
    s = torch.einsum("nid,njd->nij", z, z) / 0.07
    pos = torch.exp(s[:, 0, 1]) + torch.exp(s[:, 2, 3])
    ordered = torch.exp(s).sum(dim=(1, 2)) - torch.exp(s.diagonal(dim1=1, dim2=2)).sum(1)
    ref_ordered = -torch.log(pos / ordered).mean()
    got = pretext_contrastive(h, [0, 0, 1, 1], 0.07)
    assert got.item() == pytest.approx(ref_ordered.item() - math.log(2), rel=1e-5)
    aligned = torch.zeros(2, 4, 6)
    aligned[:, :2, 0], aligned[:, 2:, 1] = 1.0, 1.0  # same kind identical, kinds orthogonal
    assert pretext_contrastive(aligned, [0, 0, 1, 1]).item() < 1e-5
    with pytest.raises(ValueError, match="groups"):
        pretext_contrastive(h, [0, 1, 1])


def test_pretext_cross_entropy_and_accuracy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = {"rotation": torch.randn(6, 4, generator=g), "pace": torch.randn(6, 3, generator=g)}
    labels = {
        "rotation": torch.tensor([0, 1, 2, 3, 0, 1]),
        "pace": torch.tensor([2, 2, 0, 1, 0, 1]),
    }
    losses = pretext_cross_entropy(logits, labels)
    for task in logits:
        torch.testing.assert_close(losses[task], F.cross_entropy(logits[task], labels[task]))
    acc = pretext_accuracy(logits, labels)
    ref = (logits["pace"].argmax(1) == labels["pace"]).float().mean()
    assert acc["pace"].item() == pytest.approx(ref.item())
    with pytest.raises(ValueError, match="'pace'.*labels must be in"):
        pretext_cross_entropy(logits, {**labels, "pace": torch.tensor([3, 0, 0, 0, 0, 0])})
    with pytest.raises(KeyError, match="'rotation'"):
        pretext_cross_entropy(logits, {"pace": labels["pace"]})


# --- heads and the Pretext method -----------------------------------------------------------


def tiny_backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone("r2plus1d_18", width=0.125)


def pretext_batch(
    method: Pretext, n: int = 8, seed: int = 0, clip_len: int = 6, **kw: Any
) -> dict[str, Any]:
    recipe = P.PRETEXT_RECIPES[method.recipe](
        clip_len=clip_len, stride=1, size=16, **method.recipe_overrides, **kw
    )
    video = NoiseVideo(num_frames=40, height=20, width=20)
    return default_collate([recipe(video, rng(seed * 1000 + i)) for i in range(n)])


@pytest.mark.parametrize(
    "tasks", [("pace",), ("order",), ("rotation",), ("jigsaw",), ("pace", "rotation", "jigsaw")]
)
def test_pretext_heads_forward_backward_no_nan(tasks: tuple[str, ...]) -> None:
    method = Pretext(tiny_backbone(), tasks=tasks)
    assert method.recipe_overrides["tasks"] == tasks
    out = method.training_step(pretext_batch(method, n=4))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    for task in tasks:
        assert torch.isfinite(out[f"loss_{task}"]) and 0 <= out[f"acc_{task}"] <= 1
        assert method.heads.heads[task].out_features == P.task_classes(task)
    out["loss"].backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_classifier_heads_shapes_and_errors() -> None:
    heads = ClassifierHeads(5, {"a": 3, "b": 24})
    out = heads(torch.randn(2, 5))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (2, 3), "b": (2, 24)}
    with pytest.raises(ValueError, match="classes"):
        ClassifierHeads(5, {"a": 1})
    with pytest.raises(ValueError, match="method.tasks"):
        Pretext(tiny_backbone(), tasks=("rotation", "rotation"))


def test_pretext_method_loss_falls_on_a_tiny_batch() -> None:
    method = Pretext(tiny_backbone(), tasks=("rotation", "jigsaw"))
    batch = pretext_batch(method, n=8, clip_len=4)
    opt = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(10):
        loss = method.training_step(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_pretext_method_names_missing_labels() -> None:
    method = Pretext(tiny_backbone(), tasks=("rotation", "jigsaw"))
    batch = pretext_batch(Pretext(tiny_backbone(), tasks=("rotation",)), n=2)
    with pytest.raises(KeyError, match="jigsaw"):
        method.training_step(batch)
