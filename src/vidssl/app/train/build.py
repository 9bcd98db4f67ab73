"""Config -> backbone, method, dataset and Trainer, through the library's registries.

    backbone = create_backbone(model.backbone, num_classes=0, width=model.width, **model.args)
    method   = METHODS[method.name](backbone, **method.hparams)
    recipe   = RECIPES[method.recipe](clip_len, stride, size, train=True,
                                      **method.recipe_overrides, **data.recipe)
    dataset  = VideoDataset(index, recipe, seed=train.seed, opener=opener)
               where index, opener = open_split(data.dataset, data.root, data.subset, data.args)

``data.recipe`` entries win over the method's ``recipe_overrides`` (e.g. ``gap: random`` for a
CVRL ablation). A method whose ``train_item_filter()`` returns a predicate keeps only the
training videos it accepts (X-CLIP's zero-shot protocol removes its held-out classes this way,
so they never reach any rank). A language-supervised method (``matches_text``, e.g. X-CLIP) gets
the dataset's class names as its class texts unless ``method.class_texts`` is given. A method
whose negative queue (``Method.negative_queues``) is longer than the training set gets a
logged warning naming the config field (``warn_long_queues``).
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from vidssl import dist
from vidssl.app.train.checkpoint import seed_all
from vidssl.app.train.loop import Trainer
from vidssl.config import Config, ConfigError
from vidssl.methods.base import Method

log = logging.getLogger(__name__)


def build_method(cfg: Config) -> Method:
    """The method of ``cfg`` around a freshly initialised backbone."""
    from vidssl.methods import METHODS
    from vidssl.models.backbones import create_backbone

    backbone = create_backbone(
        cfg.model.backbone, num_classes=0, width=cfg.model.width, **cfg.model.args
    )
    return METHODS[cfg.method.name](backbone, **cfg.method.hparams)


def build_dataset(cfg: Config, method: Method, train: bool = True) -> Any:
    """The ``VideoDataset`` the method trains on (its recipe, the config's data)."""
    from vidssl.data.datasets import VideoDataset, open_split
    from vidssl.data.layouts import DatasetIndex
    from vidssl.data.recipes import RECIPES

    d = cfg.data
    recipe_kwargs = {**method.recipe_overrides, **d.recipe}
    recipe = RECIPES[method.recipe](
        clip_len=d.clip_len, stride=d.stride, size=d.size, train=train, **recipe_kwargs
    )
    index, opener = open_split(d.dataset, d.root, d.subset, d.args)
    keep = method.train_item_filter()
    if train and keep is not None:
        items = [item for item in index.items if keep(item)]
        if not items:
            raise ValueError(
                f"{type(method).__name__}.train_item_filter rejects every one of the "
                f"{len(index.items)} videos of data.dataset={d.dataset!r}"
            )
        index = DatasetIndex(items, index.classes)
    return VideoDataset(index, recipe, seed=cfg.train.seed, opener=opener)


def warn_long_queues(method: nn.Module, num_videos: int) -> list[str]:
    """Log a warning for every negative queue (``Method.negative_queues``) longer than the
    ``num_videos`` training videos; returns the warnings.

    Such a queue holds stale keys of the query's own video as negatives (MoCo's K = 65536 on
    UCF101's 9,537 training videos: about 7 per query).
    """
    queues = method.negative_queues() if isinstance(method, Method) else {}
    messages = [
        f"method.{name}={size} exceeds the {num_videos} training videos: the queue holds "
        f"about {size / max(num_videos, 1):.1f} stale keys of every query's own video as "
        f"negatives; set method.{name} below {num_videos}"
        for name, size in queues.items()
        if size > num_videos
    ]
    for message in messages:
        log.warning(message)
    return messages


def build_trainer(cfg: Config, info: dist.DistInfo | None = None) -> Trainer:
    """Seeded model init (identical on every rank), dataset, Trainer.

    Errors the library raises on bad values (a method's range checks, a dataset builder's
    missing list file, ...) become a :class:`ConfigError` naming the config section.
    """
    seed_all(cfg.train.seed)
    try:
        method = build_method(cfg)
    except (ValueError, TypeError) as err:
        raise ConfigError("method", f"cannot build {cfg.method.name!r}: {err}") from err
    try:
        dataset = build_dataset(cfg, method)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError("data", f"cannot build dataset {cfg.data.dataset!r}: {err}") from err
    if info is None or info.rank == 0:
        warn_long_queues(method, len(dataset))
    if method.matches_text and not cfg.method.hparams.get("class_texts"):
        method.set_class_texts(dataset.classes)  # language-supervised: class names as texts
    return Trainer(cfg, method, dataset, info=info)
