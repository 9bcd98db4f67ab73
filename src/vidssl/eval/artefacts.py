"""The arrays ``vidssl report`` draws, saved by an evaluation run in ``RUN_DIR/eval/``:

- ``embedding.pt``: every video's feature and labels (:func:`vidssl.eval.features.save_features`);
- ``retrieval_examples.pt``: a few test queries (one per class first) and their top-3
  training neighbours, as frames (:class:`vidssl.eval.RetrievalExamples`);
- ``cam_examples.pt``: Grad-CAM of those queries (:class:`vidssl.eval.CamExamples`). Without a
  classifier the score is the cosine similarity to the query's top-1 neighbour (CSTP visualises
  the last conv stage with CAM, Fig. 6); a fine-tuned classifier uses its predicted class.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from vidssl.data.datasets import BuiltDataset, VideoDataset
from vidssl.eval.context import Context, make_recipe
from vidssl.eval.features import Features, save_features
from vidssl.eval.gradcam import CamExamples, grad_cam
from vidssl.eval.retrieval import RetrievalExamples, topk_neighbours
from vidssl.eval.splits import SplitData
from vidssl.models.backbones.base import Backbone


def display_clips(ctx: Context, built: BuiltDataset, indices: Sequence[int]) -> Tensor:
    """Centre clips of ``indices`` as model input: (n, C, T, H, W)."""
    recipe = make_recipe(ctx, "clip", False)
    dataset = VideoDataset(built.index, recipe, seed=0, opener=built.opener)
    return torch.stack([dataset[int(i)]["video"] for i in indices])


def to_frames(ctx: Context, clips: Tensor) -> tuple[Tensor, list[int]]:
    """(n, C, T, H, W) normalised clips -> (n, S, H, W, 3) uint8 frames and the S positions."""
    from vidssl.viz.plots import clip_to_frames, frame_indices

    recipe = make_recipe(ctx, "clip", False)
    count = ctx.cfg.example_frames
    frames = [clip_to_frames(c, recipe.mean, recipe.std, count) for c in clips]
    return torch.from_numpy(np.stack(frames)), frame_indices(clips.shape[2], count)


def pick_queries(labels: Tensor, count: int) -> list[int]:
    """Rows of ``labels`` showing as many classes as possible: first row of each class, then more."""
    first: dict[int, int] = {}
    for row, label in enumerate(labels.tolist()):
        first.setdefault(int(label), row)
    rows = list(first.values())[:count]
    rows += [r for r in range(len(labels)) if r not in rows][: count - len(rows)]
    return rows


def save_artefacts(
    ctx: Context,
    backbone: Backbone,
    data: SplitData,
    train: Features,
    test: Features,
    key: str,
    retrieval: bool,
) -> list[str]:
    """The report's arrays in ``eval_dir``: embedding map, and with ``retrieval`` the
    retrieval grid and Grad-CAM against the top-1 neighbour. Returns the written names."""
    assert ctx.eval_dir is not None
    both = Features(
        feats=torch.cat([test.feats, train.feats]),
        labels={k: torch.cat([test.labels[k], train.labels[k]]) for k in test.labels},
        indices=torch.arange(len(test.feats) + len(train.feats)),
    )
    save_features(ctx.eval_dir / "embedding.pt", both, data.class_names)
    written = ["embedding.pt"]
    if not retrieval or ctx.cfg.num_examples == 0:
        return written
    rows = pick_queries(test.labels[key], ctx.cfg.num_examples)
    sims, nbrs = topk_neighbours(test.feats[rows], train.feats, 3)  # (Q, k), (Q, k) rows
    q_idx = test.indices[rows].tolist()
    n_idx = train.indices[nbrs.reshape(-1)].tolist()
    q_clips = display_clips(ctx, data.test, q_idx)  # (Q, C, T, H, W)
    n_clips = display_clips(ctx, data.train, n_idx)  # (Q*k, C, T, H, W)
    q_frames, positions = to_frames(ctx, q_clips)  # (Q, S, H, W, 3)
    n_frames, _ = to_frames(ctx, n_clips)
    q, k = nbrs.shape
    names = data.class_names.get(key, [])
    RetrievalExamples(
        query_frames=q_frames,
        neighbour_frames=n_frames.reshape(q, k, *n_frames.shape[1:]),  # (Q*k, ...) -> (Q, k, ...)
        query_labels=test.labels[key][rows],
        neighbour_labels=train.labels[key][nbrs],
        sims=sims.float(),
        class_names=names,
    ).save(ctx.eval_dir / "retrieval_examples.pt")
    # Grad-CAM: evidence for the similarity to the top-1 neighbour (no classifier needed)
    cam_model = copy.deepcopy(backbone).float().cpu()
    cams = grad_cam(cam_model, q_clips, reference=train.feats[nbrs[:, 0]])  # (Q, T, H, W)
    titles = [
        f"{class_name(names, int(test.labels[key][r]))}: similarity to top-1 neighbour "
        f"({class_name(names, int(train.labels[key][nbrs[i, 0]]))}, {float(sims[i, 0]):.2f})"
        for i, r in enumerate(rows)
    ]
    CamExamples(q_frames, cams[:, positions].float(), titles).save(ctx.eval_dir / "cam_examples.pt")
    return [*written, "retrieval_examples.pt", "cam_examples.pt"]


def class_name(names: Sequence[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else f"class {label}"


class _Classifier(Backbone):
    """Backbone + head seen as one backbone with a classifier (what Grad-CAM's class score needs)."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.feature_dim, self.in_channels = backbone.feature_dim, backbone.in_channels

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x)

    def pool_features(self, fmap: Tensor) -> Tensor:
        return self.backbone.pool_features(fmap)

    def logits(self, feats: Tensor) -> Tensor:
        return self.head(feats)


def save_finetune_cam(
    ctx: Context, model: nn.Module, data: SplitData, key: str, test_labels: Tensor
) -> None:
    """Grad-CAM of the fine-tuned classifier's predicted class for a few test clips."""
    assert ctx.eval_dir is not None
    rows = pick_queries(test_labels, ctx.cfg.num_examples)
    clips = display_clips(ctx, data.test, rows)
    wrapped = copy.deepcopy(_Classifier(model.backbone, model.head)).float().cpu()
    with torch.no_grad():
        wrapped.eval()
        pred = wrapped.forward_head(wrapped.forward_features(clips)).argmax(dim=1)  # (Q,)
    cams = grad_cam(wrapped, clips, class_index=pred)  # (Q, T, H, W)
    frames, positions = to_frames(ctx, clips)
    names = data.class_names.get(key, [])
    titles = [
        f"{class_name(names, int(test_labels[r]))}: evidence for predicted {class_name(names, int(p))}"
        for r, p in zip(rows, pred.tolist())
    ]
    CamExamples(frames, cams[:, positions].float(), titles).save(ctx.eval_dir / "cam_examples.pt")
