"""End-to-end fine-tuning: the whole network with a new linear head, through the engine.

The backbone (from a checkpoint or a random init) gets a new head
(:class:`vidssl.methods.supervised.Supervised`) and is trained by the engine's ``Trainer`` on
the training split (one random augmented clip per video), so ``torchrun`` DDP and resume work
as for pre-training: each fine-tune has its run folder ``RUN_DIR/eval/finetune/<name>/``
(``last.pt``, ``metrics.jsonl``) and an unfinished one continues from its ``last.pt``.
Testing averages the softmax over ``num_clips`` x ``num_crops`` views of every test video
(CSTP appendix: "the average of the scores of 10 clips uniformly sampled from the video").
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from vidssl.data.datasets import VideoDataset
from vidssl.eval.context import Context, make_recipe
from vidssl.eval.splits import SplitData, item_labels
from vidssl.models.backbones.base import Backbone


def train_network(
    ctx: Context, backbone: Backbone, seed: int, data: SplitData, key: str
) -> tuple[nn.Module, dict[str, Any]]:
    """Train backbone + new head on ``data.train`` with the engine (every rank under torchrun).

    Returns (the trained ``Supervised`` model, details of the run); the ``finetune`` protocol
    (:mod:`vidssl.eval.finetune`) tests it.
    """
    from vidssl.app.train.checkpoint import CHECKPOINT_NAME, seed_all
    from vidssl.app.train.loop import Trainer
    from vidssl.config import (
        Config,
        DataConfig,
        MethodConfig,
        ModelConfig,
        OptimConfig,
        TrainConfig,
    )
    from vidssl.methods.supervised import Supervised

    cfg, info = ctx.cfg, ctx.dist_info
    train_labels = item_labels(data.train, key)
    num_classes = max(int(train_labels.max()) + 1, len(data.class_names.get(key, [])))
    batch = min(cfg.finetune_batch_size, len(data.train.index) // info.world_size)
    hparams = {"num_classes": num_classes, "label_key": key, "dropout": cfg.finetune_dropout}
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k.startswith("finetune")}
    # the run folder names everything that changes the training, so a resume never mixes runs
    run_tag = hashlib.sha256(
        repr((ctx.weights.key(seed), ctx.dataset, ctx.root, data.args, ctx.clip, settings)).encode()
    ).hexdigest()[:10]
    name = f"{ctx.dataset}-split{data.split}-seed{seed}-{data.label_sets[key]}-{run_tag}"
    tmp = None
    if ctx.eval_dir is not None:
        run_dir = ctx.eval_dir / "finetune" / name
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vidssl-finetune-")
        run_dir = Path(tmp.name)
    try:
        train_cfg = Config(
            data=DataConfig(
                dataset=ctx.dataset,
                root=ctx.root or "",
                subset=cfg.train_subset,
                args=dict(data.args),
                batch_size=max(batch, 1),
                workers=cfg.workers,
                **ctx.clip,
            ),
            model=ModelConfig(backbone=ctx.weights.backbone, width=ctx.weights.width),
            method=MethodConfig(name="supervised", hparams=hparams),
            optim=OptimConfig(
                name=cfg.finetune_optim,
                lr=cfg.finetune_lr,
                weight_decay=cfg.finetune_weight_decay,
                warmup_epochs=cfg.finetune_warmup_epochs,
            ),
            train=TrainConfig(
                epochs=cfg.finetune_epochs,
                max_steps=cfg.finetune_max_steps,
                amp=cfg.amp,
                device="cpu" if ctx.device.type == "cpu" else "auto",
                seed=seed,
                out_dir=str(run_dir),
            ),
        )
        seed_all(seed)  # the new head's init
        method = Supervised(copy.deepcopy(backbone).train(), **hparams)
        recipe = make_recipe(ctx, Supervised.recipe, True, **cfg.finetune_recipe)
        dataset = VideoDataset(data.train.index, recipe, seed=seed, opener=data.train.opener)
        trainer = Trainer(train_cfg, method, dataset, info=info)
        last = run_dir / CHECKPOINT_NAME
        if cfg.finetune_resume and last.is_file():
            trainer.resume(last)
        trainer.fit()
        model = trainer.method
    finally:
        if tmp is not None:
            tmp.cleanup()
    run_info = {
        "steps": trainer.progress.step,
        "batch_size": train_cfg.data.batch_size,
        "run_dir": str(run_dir) if tmp is None else None,
        "finetune": settings,
    }
    return model, run_info
