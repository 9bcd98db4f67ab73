"""One evaluation's shared state and the job a protocol runs on.

Features (:mod:`vidssl.eval.features`) are cached in ``feats-<weights>-<settings hash>.pt``
(the weights part is ``sha256-<16 hex>`` of the checkpoint file or ``random-<backbone>-
<width>-<seed>``), in memory for the run and on disk when there is a cache folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidssl import dist
from vidssl.data.datasets import BuiltDataset, VideoDataset
from vidssl.data.recipes import RECIPES
from vidssl.eval.embed import eval_recipe
from vidssl.eval.features import (
    Features,
    cached_features,
    extract_features,
    features_are_constant,
    load_features,
    save_features,
)
from vidssl.eval.protocols import EvalConfig
from vidssl.eval.splits import SplitData, item_labels, labelled_keys
from vidssl.eval.temporal_order import TimeReversed
from vidssl.eval.weights import Weights
from vidssl.models.backbones.base import Backbone
from vidssl.models.two_stream import stream_of

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything the protocols of one ``evaluate`` call share."""

    cfg: EvalConfig
    dataset: str
    root: str | None
    weights: Weights
    clip: dict[str, Any]  # resolved clip_len / stride / size
    device: torch.device
    amp_dtype: torch.dtype | None
    cache_dir: Path | None
    eval_dir: Path | None
    dist_info: dist.DistInfo  # this process's rank / world (torchrun), 0 of 1 otherwise
    memory: dict[str, Features] = field(default_factory=dict)  # in-process feature cache

    def info(self, data: SplitData) -> dict[str, Any]:
        """Details recorded in every result file."""
        return {
            "checkpoint": self.weights.checkpoint,
            "weights_sha256": self.weights.digest or None,
            "backbone": self.weights.backbone,
            "width": self.weights.width,
            "dataset": self.dataset,
            "root": self.root,
            "num_train": len(data.train.index),
            "num_test": len(data.test.index),
            "num_classes": len(data.class_names.get("label", [])),
            "num_clips": self.cfg.num_clips,
            "num_crops": self.cfg.num_crops,
            **self.clip,
        }


def resolve_clip(cfg: EvalConfig, weights: Weights) -> dict[str, Any]:
    """clip_len / stride / size: the EvalConfig's, else the checkpoint's, else the defaults."""
    return weights.clip_settings(cfg.clip_len, cfg.stride, cfg.size)


def make_recipe(ctx: Context, name: str, train: bool, **kw: Any) -> Any:
    return RECIPES[name](
        clip_len=ctx.clip["clip_len"],
        stride=ctx.clip["stride"],
        size=ctx.clip["size"],
        train=train,
        **kw,
    )


def multi_clip_loader(ctx: Context, built: BuiltDataset, model: nn.Module) -> DataLoader:
    """Deterministic ``num_clips`` x ``num_crops`` views per video, in index order, of the
    input ``model`` consumes (its ``modalities``)."""
    recipe = eval_recipe(
        model.modalities,
        ctx.clip,
        ctx.cfg.num_clips,
        ctx.cfg.num_crops,
        input_args=ctx.weights.input_args(),
        root=ctx.root,
    )
    dataset = VideoDataset(built.index, recipe, seed=0, opener=built.opener)
    return DataLoader(
        dataset,
        batch_size=ctx.cfg.batch_size,
        shuffle=False,
        num_workers=ctx.cfg.workers,
        pin_memory=ctx.device.type == "cuda",
    )


def features(
    ctx: Context, backbone: Backbone, seed: int, data: SplitData, subset: str, reverse: bool = False
) -> Features:
    """Video-level features of ``subset`` ("train" / "test") of ``data``: cache, else extract;
    ``reverse``: of every clip played backwards."""
    built = data.train if subset == "train" else data.test
    settings = {
        "checkpoint": ctx.weights.file_tag(seed),
        "weights": ctx.weights.key(seed),
        "backbone": ctx.weights.backbone,
        "width": ctx.weights.width,
        **({"stream": stream} if (stream := stream_of(backbone.modalities)) != "rgb" else {}),
        "dataset": ctx.dataset,
        "root": str(Path(ctx.root).resolve()) if ctx.root else "",
        "args": data.args,
        "subset": ctx.cfg.train_subset if subset == "train" else ctx.cfg.test_subset,
        "num_videos": len(built.index),
        "num_clips": ctx.cfg.num_clips,
        "num_crops": ctx.cfg.num_crops,
        "clip_norm": ctx.cfg.clip_norm,
        "amp": str(ctx.amp_dtype),
        **ctx.clip,
        **({"reverse": True} if reverse else {}),
    }
    key = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    if key in ctx.memory:
        return ctx.memory[key]
    path = cached_features(ctx.cache_dir, settings) if ctx.cache_dir is not None else None
    if path is not None and path.is_file():
        feats = load_features(path)
    else:
        feats = extract_features(
            TimeReversed(backbone) if reverse else backbone,
            multi_clip_loader(ctx, built, backbone),
            ctx.device,
            amp=ctx.amp_dtype is not None,
            clip_norm=ctx.cfg.clip_norm,
            desc=f"features {ctx.dataset} split {data.split} {subset}",
            progress=ctx.cfg.progress,
        )
        if path is not None:
            save_features(path, feats, data.class_names)
    if features_are_constant(feats.feats):
        log.warning(
            "%s: the %s features of %s are the same for every video (a collapsed network): "
            "every frozen metric will be at chance",
            ctx.weights.checkpoint,
            subset,
            ctx.dataset,
        )
    ctx.memory[key] = feats
    return feats


class Job:
    """One split and seed of an evaluation, as a protocol sees it
    (:class:`vidssl.eval.protocol_base.EvalJob`)."""

    def __init__(
        self,
        ctx: Context,
        model: Backbone,
        seed: int,
        data: SplitData,
        train_network: Callable[..., tuple[nn.Module, dict[str, Any]]] | None = None,
    ) -> None:
        self.ctx, self.model, self.seed, self.data = ctx, model, seed, data
        self._train = train_network  # (ctx, backbone, seed, data, key) -> (model, details)
        self.progress = ctx.cfg.progress
        self.is_main = ctx.dist_info.rank == 0
        self._keys: list[str] | None = None

    @property
    def label_keys(self) -> list[str]:
        if self._keys is None:
            self._keys = labelled_keys(self.data)
        return self._keys

    def features(self, subset: str, *, reverse: bool = False) -> Features:
        return features(self.ctx, self.model, self.seed, self.data, subset, reverse=reverse)

    def labels(self, subset: str, key: str) -> Any:
        return item_labels(self.data.train if subset == "train" else self.data.test, key)

    def train_network(self, key: str, settings: Any) -> tuple[nn.Module, dict[str, Any]]:
        if self._train is None:
            raise ValueError("this evaluation cannot train a network (no trainer was given)")
        return self._train(self.ctx, self.model, self.seed, self.data, key)

    def test_loader(self) -> Any:
        return multi_clip_loader(self.ctx, self.data.test, self.model)

    def device_and_amp(self) -> tuple[torch.device, torch.dtype | None]:
        return self.ctx.device, self.ctx.amp_dtype
